//! The catch-all HTTP handler: fault injection, routing, verbs, the request log.

use super::Shared;
use super::faults::{self, Outage};
use super::log::{RequestRecord, parse_query};
use super::resources::{Gvr, ResourceType};
use super::selectors::Selectors;
use super::status::ApiError;
use super::store::{Scope, Store, check_type};
use super::watch::{self, WatchRequest};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// What a request gets.
enum Reply {
    Json(u16, Value),
    Watch(WatchRequest),
}

impl Reply {
    fn code(&self) -> u16 {
        match self {
            Reply::Json(code, _) => *code,
            Reply::Watch(_) => 200,
        }
    }
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Self {
        Reply::Json(e.code, e.to_status())
    }
}

/// A request, parsed once.
struct Req<'a> {
    method: &'a str,
    params: BTreeMap<String, String>,
    /// The media type without parameters (`application/json`).
    media_type: String,
    body: &'a Bytes,
}

impl Req<'_> {
    fn param(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.param(key), Some("true" | "1"))
    }

    fn json(&self) -> Result<Value, ApiError> {
        serde_json::from_slice(self.body)
            .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
    }
}

fn json_response(code: u16, body: &Value) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(body).expect("serializable")))
        .expect("valid response")
}

/// The body as JSON (YAML for apply patches), for the log and for apply.
fn parse_body(bytes: &Bytes, media_type: &str) -> Option<Value> {
    if bytes.is_empty() {
        return None;
    }
    serde_json::from_slice(bytes).ok().or_else(|| {
        media_type
            .contains("yaml")
            .then(|| serde_yaml::from_slice::<Value>(bytes).ok())
            .flatten()
    })
}

/// Every request lands here. The request is processed in a task of its
/// own, so a request held by a fault is still applied after it heals even
/// if its caller gave up (as a real API server applies a write whose
/// client timed out).
pub(crate) async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 64 << 20)
        .await
        .unwrap_or_default();
    let task = tokio::spawn(process(shared, parts, bytes));
    task.await
        .unwrap_or_else(|_| json_response(500, &json!({"kind": "Status", "code": 500})))
}

fn record(
    method: &str,
    path: &str,
    query: &str,
    content_type: Option<&String>,
    user_agent: &str,
    body: Option<Value>,
) -> RequestRecord {
    RequestRecord {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        content_type: content_type.cloned(),
        user_agent: user_agent.to_string(),
        body,
        status: 0,
        response: None,
        delayed: false,
        at: std::time::Instant::now(),
    }
}

async fn process(shared: Arc<Shared>, parts: axum::http::request::Parts, bytes: Bytes) -> Response {
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let media_type = content_type
        .as_deref()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let request = Req {
        method: &method,
        params: parse_query(&query).into_iter().rev().collect(),
        media_type,
        body: &bytes,
    };
    let mut rec = record(
        &method,
        &path,
        &query,
        content_type.as_ref(),
        &user_agent,
        parse_body(&bytes, &request.media_type),
    );

    let stalled = {
        let mut st = shared.lock();
        let stall = st.stall_status > 0 && method == "PATCH" && path.ends_with("/status");
        if stall {
            st.stall_status -= 1;
            st.log.push(rec.clone());
            st.notify();
        }
        stall
    };
    if stalled {
        // An API server that accepted the request and never answers.
        shared.shutdown.cancelled().await;
        return json_response(503, &json!({"kind": "Status", "code": 503}));
    }

    // Faults: fail now, or hold until healed (then go on, late).
    let mut hung_id = None;
    loop {
        let mut changes = {
            let mut st = shared.lock();
            match faults::find(&st.faults, &user_agent, &method, &path).map(|f| f.outage) {
                Some(Outage::Fail(code)) => {
                    if let Some(id) = hung_id {
                        st.unhang(id);
                    }
                    let e = ApiError::new(code, format!("injected failure ({code})"));
                    rec.status = code;
                    rec.delayed = hung_id.is_some();
                    st.log.push(rec);
                    st.notify();
                    return json_response(code, &e.to_status());
                }
                Some(Outage::Hang) => {
                    if hung_id.is_none() {
                        hung_id = Some(st.hang(rec.clone()));
                    }
                    st.subscribe_changes()
                }
                None => {
                    if let Some(id) = hung_id {
                        st.unhang(id);
                    }
                    break;
                }
            }
        };
        tokio::select! {
            () = shared.shutdown.cancelled() => {
                return json_response(503, &json!({"kind": "Status", "code": 503}));
            }
            _ = changes.changed() => {}
        }
    }
    let mut st = shared.lock();
    let reply = match st.fail.take() {
        Some((n, code)) => {
            if n > 1 {
                st.fail = Some((n - 1, code));
            }
            ApiError::new(code, format!("injected failure (fail_next {code})")).into()
        }
        None => route(&mut st, &path, &request).unwrap_or_else(Reply::from),
    };
    rec.status = reply.code();
    rec.delayed = hung_id.is_some();
    rec.at = std::time::Instant::now();
    if let Reply::Json(code, body) = &reply
        && (200..300).contains(code)
        && rec.is_write()
    {
        rec.response = Some(body.clone());
    }
    st.log.push(rec);
    st.notify();
    drop(st);
    match reply {
        Reply::Json(code, body) => json_response(code, &body),
        Reply::Watch(w) => watch::open(&shared, w, user_agent),
    }
}

/// A resolved resource path.
struct Target {
    rt: ResourceType,
    ns: Option<String>,
    name: Option<String>,
    status: bool,
}

fn route(st: &mut Store, path: &str, req: &Req) -> Result<Reply, ApiError> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segs.as_slice() {
        ["version"] => return get_only(req, version_info()),
        ["api"] => return get_only(req, api_versions()),
        ["apis"] => return get_only(req, api_groups(st)),
        ["api", "v1"] => return get_only(req, resource_list(st, "", "v1")?),
        ["apis", g, v] => return get_only(req, resource_list(st, g, v)?),
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::no_route()),
    };
    let target = resolve(st, group, version, rest)?;
    if req.params.contains_key("dryRun") {
        return Err(ApiError::bad_request(
            "dryRun is not supported by fake_kube",
        ));
    }
    let ns = target.ns.as_deref();
    let rt = &target.rt;
    let scope = if target.status {
        Scope::Status
    } else {
        Scope::Main
    };
    match (req.method, target.name.as_deref()) {
        ("GET", None) if req.flag("watch") => watch_request(req, &target).map(Reply::Watch),
        ("GET", None) => list(st, req, &target),
        ("POST", None) if rt.namespaced && ns.is_none() => Err(ApiError::method_not_allowed()),
        ("POST", None) => {
            let obj = st.create(rt, ns, req.json()?, false)?;
            Ok(Reply::Json(201, obj))
        }
        ("DELETE", None) => delete_collection(st, req, &target),
        ("GET", Some(name)) => Ok(Reply::Json(200, st.current(rt, ns, name)?)),
        ("PUT", Some(name)) => {
            let body = req.json()?;
            check_type(rt, &body, false)?;
            if let Some(n) = body.pointer("/metadata/name").and_then(Value::as_str)
                && n != name
            {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
            let precondition = resource_version(&body);
            let obj = st.update(rt, ns, name, scope, precondition.as_deref(), |_| Ok(body))?;
            Ok(Reply::Json(200, obj))
        }
        ("PATCH", Some(name)) => patch(st, req, &target, name, scope),
        ("DELETE", Some(name)) if !target.status => {
            let opts = if req.body.is_empty() {
                json!({})
            } else {
                req.json()?
            };
            let uid = opts.pointer("/preconditions/uid").and_then(Value::as_str);
            let rv = opts
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str);
            Ok(Reply::Json(200, st.delete(rt, ns, name, uid, rv)?))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn get_only(req: &Req, body: Value) -> Result<Reply, ApiError> {
    if req.method != "GET" {
        return Err(ApiError::method_not_allowed());
    }
    Ok(Reply::Json(200, body))
}

/// `[namespaces/{ns}/]{plural}[/{name}[/status]]`.
fn resolve(st: &Store, group: &str, version: &str, rest: &[&str]) -> Result<Target, ApiError> {
    let namespaced = |plural: &str| {
        st.registry
            .get(&Gvr::new(group, version, plural))
            .is_some_and(|rt| rt.namespaced)
    };
    let (ns, rest) = match rest {
        ["namespaces", ns, plural, ..] if namespaced(plural) => (Some(ns.to_string()), &rest[2..]),
        _ => (None, rest),
    };
    let (plural, name, sub) = match rest {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(name.to_string()), None),
        [plural, name, sub] => (*plural, Some(name.to_string()), Some(*sub)),
        _ => return Err(ApiError::no_route()),
    };
    let rt = st.resource(&Gvr::new(group, version, plural))?;
    if rt.namespaced && ns.is_none() && name.is_some() {
        return Err(ApiError::no_route());
    }
    let status = match sub {
        None => false,
        Some("status") if rt.status_subresource => true,
        Some(_) => return Err(ApiError::no_route()),
    };
    Ok(Target {
        rt,
        ns,
        name,
        status,
    })
}

fn resource_version(obj: &Value) -> Option<String> {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .map(String::from)
}

fn selectors(req: &Req) -> Result<Selectors, ApiError> {
    Selectors::parse(req.param("labelSelector"), req.param("fieldSelector"))
}

/// LIST: always the current state, in one page (`limit` / `continue` /
/// `resourceVersion` / `resourceVersionMatch` are accepted and ignored).
fn list(st: &Store, req: &Req, t: &Target) -> Result<Reply, ApiError> {
    let items = st.list_matching(&t.rt.gvr, t.ns.as_deref(), &selectors(req)?);
    Ok(Reply::Json(
        200,
        json!({
            "apiVersion": t.rt.api_version(),
            "kind": format!("{}List", t.rt.kind),
            "metadata": { "resourceVersion": st.resource_version().to_string() },
            "items": items,
        }),
    ))
}

fn watch_request(req: &Req, t: &Target) -> Result<WatchRequest, ApiError> {
    let resource_version = match req.param("resourceVersion").unwrap_or("") {
        "" | "0" => None,
        rv => Some(
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
        ),
    };
    let timeout = match req.param("timeoutSeconds") {
        Some(s) => Some(Duration::from_secs(s.parse().map_err(|_| {
            ApiError::bad_request(format!("invalid timeoutSeconds {s:?}"))
        })?)),
        None => None,
    };
    Ok(WatchRequest {
        rt: t.rt.clone(),
        ns: t.ns.clone(),
        selectors: selectors(req)?,
        resource_version,
        timeout,
        bookmarks: req.flag("allowWatchBookmarks"),
        send_initial_events: req.flag("sendInitialEvents"),
    })
}

fn delete_collection(st: &mut Store, req: &Req, t: &Target) -> Result<Reply, ApiError> {
    let names: Vec<(String, String)> = st
        .list_matching(&t.rt.gvr, t.ns.as_deref(), &selectors(req)?)
        .iter()
        .map(|o| {
            let s = |p: &str| {
                o.pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            (s("/metadata/namespace"), s("/metadata/name"))
        })
        .collect();
    let mut items = Vec::new();
    for (ns, name) in names {
        items.push(st.delete(&t.rt, Some(&ns), &name, None, None)?);
    }
    Ok(Reply::Json(
        200,
        json!({
            "apiVersion": t.rt.api_version(),
            "kind": format!("{}List", t.rt.kind),
            "metadata": { "resourceVersion": st.resource_version().to_string() },
            "items": items,
        }),
    ))
}

fn patch(
    st: &mut Store,
    req: &Req,
    t: &Target,
    name: &str,
    scope: Scope,
) -> Result<Reply, ApiError> {
    let rt = &t.rt;
    let ns = t.ns.as_deref();
    let obj = match req.media_type.as_str() {
        "application/strategic-merge-patch+json" if rt.custom => {
            return Err(ApiError::unsupported_media_type(&req.media_type));
        }
        // Built-in kinds: treated as a JSON merge patch (lists replaced).
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
            let patch = req.json()?;
            let precondition = resource_version(&patch);
            st.update(rt, ns, name, scope, precondition.as_deref(), |old| {
                let mut c = old.clone();
                json_patch::merge(&mut c, &patch);
                Ok(c)
            })?
        }
        "application/json-patch+json" => {
            let ops: json_patch::Patch = serde_json::from_slice(req.body)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            st.update(rt, ns, name, scope, None, |old| {
                let mut c = old.clone();
                json_patch::patch(&mut c, &ops)
                    .map_err(|e| ApiError::invalid(rt, name, e.to_string()))?;
                Ok(c)
            })?
        }
        "application/apply-patch+yaml" => {
            let config = parse_body(req.body, &req.media_type)
                .ok_or_else(|| ApiError::bad_request("the apply body is neither JSON nor YAML"))?;
            let manager = req
                .param("fieldManager")
                .filter(|m| !m.is_empty())
                .ok_or_else(|| {
                    ApiError::bad_request("PATCH with apply requires the fieldManager parameter")
                })?;
            st.apply(rt, ns, name, scope, manager, config, req.flag("force"))?
        }
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    Ok(Reply::Json(200, obj))
}

fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-fake-kube",
        "gitCommit": "fake",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn api_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1" }],
    })
}

fn api_groups(st: &Store) -> Value {
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for rt in st.registry.all() {
        if !rt.gvr.group.is_empty() {
            let versions = groups.entry(&rt.gvr.group).or_default();
            if !versions.contains(&rt.gvr.version.as_str()) {
                versions.push(&rt.gvr.version);
            }
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(g, vs)| {
            let versions: Vec<Value> = vs
                .iter()
                .map(|v| json!({ "groupVersion": format!("{g}/{v}"), "version": v }))
                .collect();
            json!({ "name": g, "preferredVersion": versions[0], "versions": versions })
        })
        .collect();
    json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
}

fn resource_list(st: &Store, group: &str, version: &str) -> Result<Value, ApiError> {
    let types: Vec<&ResourceType> = st
        .registry
        .all()
        .iter()
        .filter(|rt| rt.gvr.group == group && rt.gvr.version == version)
        .collect();
    if types.is_empty() {
        return Err(ApiError::no_route());
    }
    let mut resources = Vec::new();
    for rt in &types {
        resources.push(json!({
            "name": rt.gvr.plural,
            "singularName": rt.kind.to_ascii_lowercase(),
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        }));
        if rt.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", rt.gvr.plural),
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let group_version = types[0].api_version();
    Ok(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}
