//! The fake's state: objects, the global resourceVersion, the watch history,
//! server-side-apply bookkeeping, the request log and fault switches. Every
//! write goes through here, under one lock, so a write, its history entry
//! and its broadcast to open watches happen together.

use super::faults::Fault;
use super::log::RequestRecord;
use super::resources::{Gvr, Registry, ResourceType};
use super::selectors::Selectors;
use super::status::ApiError;
use super::tree::{self, FieldPath};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::{broadcast, watch};

/// Watch events kept for resuming watches; older resourceVersions get 410.
pub const HISTORY_LIMIT: usize = 4096;
/// Broadcast slots per open watch; a watch that falls further behind ends
/// with 410 (as a slow real watcher would be dropped).
pub const BROADCAST_CAPACITY: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

/// One committed write, as watches see it.
#[derive(Debug)]
pub struct Change {
    pub gvr: Gvr,
    pub kind: ChangeKind,
    pub object: Value,
    /// The previous state, for MODIFIED (to turn selector transitions into
    /// ADDED / DELETED).
    pub old: Option<Value>,
    pub rv: u64,
}

/// What open watches receive.
#[derive(Clone, Debug)]
pub enum WatchMsg {
    Change(Arc<Change>),
    /// End with a 410 ERROR event.
    Gone,
    /// End abruptly, without an ERROR event: every watch (`None`) or those
    /// whose User-Agent contains this.
    Drop(Option<String>),
}

/// Which part of an object a write may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The main resource: `status` is kept when the kind has a status subresource.
    Main,
    /// The `/status` subresource: only `status` changes.
    Status,
    /// Test helpers: everything except server-managed metadata.
    All,
}

impl Scope {
    fn subresource(self) -> &'static str {
        match self {
            Scope::Status => "status",
            _ => "",
        }
    }
}

/// (namespace, or "" for cluster-scoped; name).
type ObjKey = (String, String);
/// (kind, namespace, name, subresource).
type ManagedKey = (Gvr, String, String, &'static str);

/// Metadata the server owns; clients cannot set or change it.
const SERVER_METADATA: [&str; 8] = [
    "name",
    "namespace",
    "uid",
    "creationTimestamp",
    "generation",
    "resourceVersion",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// RFC 3339 UTC, seconds precision, like `metav1.Time`.
pub fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn rv_of(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
}

/// Everything but metadata, status, apiVersion and kind: changes here bump
/// `metadata.generation` (for a custom resource that is `spec`).
fn spec_like(obj: &Value) -> Value {
    let mut m = obj.as_object().cloned().unwrap_or_default();
    for k in ["metadata", "status", "apiVersion", "kind"] {
        m.remove(k);
    }
    Value::Object(m)
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

/// The fake's whole state. Tests read it through `wait_for` predicates and
/// the handle's helpers.
pub struct Store {
    pub(crate) registry: Registry,
    rv: u64,
    objects: HashMap<Gvr, BTreeMap<ObjKey, Value>>,
    history: VecDeque<Arc<Change>>,
    /// Watches from a resourceVersion below this get 410 Expired.
    floor: u64,
    managed: HashMap<ManagedKey, BTreeMap<String, BTreeSet<FieldPath>>>,
    pub(crate) log: Vec<RequestRecord>,
    /// (requests left, status) for `fail_next`.
    pub(crate) fail: Option<(u32, u16)>,
    /// Status writes left to leave unanswered (`stall_status_writes`).
    pub(crate) stall_status: u32,
    /// Active faults (`FakeKube::cut_off`, `outage`, `hold_status_writes`).
    pub(crate) faults: Vec<Fault>,
    /// Requests a fault holds right now, by id.
    hung: BTreeMap<u64, RequestRecord>,
    next_hung: u64,
    pub(crate) open_watches: usize,
    tx: broadcast::Sender<WatchMsg>,
    changed: watch::Sender<u64>,
}

impl Store {
    pub(crate) fn new(changed: watch::Sender<u64>) -> Self {
        Self {
            registry: Registry::new(),
            rv: 0,
            objects: HashMap::new(),
            history: VecDeque::new(),
            floor: 0,
            managed: HashMap::new(),
            log: Vec::new(),
            fail: None,
            stall_status: 0,
            faults: Vec::new(),
            hung: BTreeMap::new(),
            next_hung: 0,
            open_watches: 0,
            tx: broadcast::channel(BROADCAST_CAPACITY).0,
            changed,
        }
    }

    // ----- reads (public: usable in `wait_for` predicates) -----

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// One object.
    pub fn get(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        ns: &str,
        name: &str,
    ) -> Option<&Value> {
        self.objects
            .get(&Gvr::new(group, version, plural))?
            .get(&(ns.to_string(), name.to_string()))
    }

    /// Objects of a kind, in one namespace or all (`None`), ordered by
    /// namespace then name.
    pub fn list(&self, group: &str, version: &str, plural: &str, ns: Option<&str>) -> Vec<&Value> {
        self.objects
            .get(&Gvr::new(group, version, plural))
            .into_iter()
            .flat_map(|m| m.iter())
            .filter(|((n, _), _)| ns.is_none_or(|ns| ns == n))
            .map(|(_, v)| v)
            .collect()
    }

    /// Events from both `events.k8s.io/v1` and core `v1`, oldest write first.
    pub fn events(&self) -> Vec<&Value> {
        let mut out = self.list("events.k8s.io", "v1", "events", None);
        out.extend(self.list("", "v1", "events", None));
        out.sort_by_key(|e| rv_of(e).and_then(|r| r.parse::<u64>().ok()));
        out
    }

    /// The request log.
    pub fn requests(&self) -> &[RequestRecord] {
        &self.log
    }

    /// Watch streams open right now.
    pub fn open_watches(&self) -> usize {
        self.open_watches
    }

    /// Requests a fault holds right now, oldest first.
    pub fn hung(&self) -> impl Iterator<Item = &RequestRecord> {
        self.hung.values()
    }

    // ----- internals -----

    pub(crate) fn subscribe_changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    pub(crate) fn notify(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    pub(crate) fn resource(&self, gvr: &Gvr) -> Result<ResourceType, ApiError> {
        self.registry
            .get(gvr)
            .cloned()
            .ok_or_else(ApiError::no_route)
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<WatchMsg> {
        self.tx.subscribe()
    }

    pub(crate) fn floor(&self) -> u64 {
        self.floor
    }

    /// History entries of `gvr` newer than `rv`.
    pub(crate) fn history_since(&self, gvr: &Gvr, rv: u64) -> Vec<Arc<Change>> {
        self.history
            .iter()
            .filter(|c| c.rv > rv && &c.gvr == gvr)
            .cloned()
            .collect()
    }

    pub(crate) fn list_matching(&self, gvr: &Gvr, ns: Option<&str>, sel: &Selectors) -> Vec<Value> {
        self.list(&gvr.group, &gvr.version, &gvr.plural, ns)
            .into_iter()
            .filter(|o| sel.matches(o))
            .cloned()
            .collect()
    }

    fn key(rt: &ResourceType, ns: Option<&str>, name: &str) -> ObjKey {
        let ns = if rt.namespaced { ns.unwrap_or("") } else { "" };
        (ns.to_string(), name.to_string())
    }

    pub(crate) fn current(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.objects
            .get(&rt.gvr)
            .and_then(|m| m.get(&Self::key(rt, ns, name)))
            .cloned()
            .ok_or_else(|| ApiError::not_found(rt, name))
    }

    fn emit(&mut self, gvr: &Gvr, kind: ChangeKind, object: Value, old: Option<Value>) {
        let change = Arc::new(Change {
            gvr: gvr.clone(),
            kind,
            object,
            old,
            rv: self.rv,
        });
        self.history.push_back(change.clone());
        while self.history.len() > HISTORY_LIMIT {
            if let Some(dropped) = self.history.pop_front() {
                self.floor = dropped.rv;
            }
        }
        let _ = self.tx.send(WatchMsg::Change(change));
        self.notify();
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    /// Forgets every field-manager record for the object.
    fn forget_managers(&mut self, gvr: &Gvr, key: &ObjKey) {
        self.managed
            .retain(|(g, ns, name, _), _| !(g == gvr && ns == &key.0 && name == &key.1));
    }

    /// A non-apply write changed `paths`: appliers lose those fields.
    fn release_fields(&mut self, gvr: &Gvr, key: &ObjKey, paths: &BTreeSet<FieldPath>) {
        for ((g, ns, name, _), managers) in self.managed.iter_mut() {
            if g == gvr && ns == &key.0 && name == &key.1 {
                for set in managers.values_mut() {
                    set.retain(|q| !paths.iter().any(|p| tree::overlaps(p, q)));
                }
            }
        }
    }

    // ----- writes -----

    /// Creates an object. `ns` is the namespace from the path (`None`: take
    /// the body's, else "default"). `keep_status`: test helpers may seed
    /// `status`; API creates drop it for kinds with a status subresource.
    pub(crate) fn create(
        &mut self,
        rt: &ResourceType,
        ns: Option<&str>,
        obj: Value,
        keep_status: bool,
    ) -> Result<Value, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        }
        let mut obj = obj;
        check_type(rt, &obj, false)?;
        secret_string_data(rt, &mut obj);
        obj["apiVersion"] = json!(rt.api_version());
        obj["kind"] = json!(rt.kind);
        let meta = meta_mut(&mut obj);
        let body_ns = meta
            .get("namespace")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from);
        let namespace = if rt.namespaced {
            match (ns, body_ns) {
                (Some(p), Some(b)) if p != b => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                (Some(p), _) => p.to_string(),
                (None, Some(b)) => b,
                (None, None) => "default".to_string(),
            }
        } else {
            String::new()
        };
        let mut name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let generate = meta
            .get("generateName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let objects = self.objects.entry(rt.gvr.clone()).or_default();
        if name.is_empty() {
            if generate.is_empty() {
                return Err(ApiError::invalid(
                    rt,
                    "",
                    "metadata.name: Required value: name or generateName is required",
                ));
            }
            name = loop {
                let candidate = format!("{generate}{}", random_suffix());
                if !objects.contains_key(&(namespace.clone(), candidate.clone())) {
                    break candidate;
                }
            };
        }
        let key = (namespace.clone(), name.clone());
        if objects.contains_key(&key) {
            return Err(ApiError::already_exists(rt, &name));
        }
        for k in SERVER_METADATA.iter().chain(&["managedFields", "selfLink"]) {
            meta.remove(*k);
        }
        meta.insert("name".into(), json!(name));
        if rt.namespaced {
            meta.insert("namespace".into(), json!(namespace));
        }
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        meta.insert("generation".into(), json!(1));
        if !keep_status && rt.status_subresource {
            obj.as_object_mut().expect("object").remove("status");
        }
        let rv = self.next_rv();
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        self.objects
            .entry(rt.gvr.clone())
            .or_default()
            .insert(key, obj.clone());
        self.emit(&rt.gvr, ChangeKind::Added, obj.clone(), None);
        Ok(obj)
    }

    /// Replaces / patches an existing object: `f` turns the current object
    /// into the desired one. `precondition`: a resourceVersion that must
    /// match the current one (empty = unconditional).
    pub(crate) fn update(
        &mut self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        scope: Scope,
        precondition: Option<&str>,
        f: impl FnOnce(&Value) -> Result<Value, ApiError>,
    ) -> Result<Value, ApiError> {
        let old = self.current(rt, ns, name)?;
        if let Some(want) = precondition.filter(|s| !s.is_empty())
            && Some(want) != rv_of(&old)
        {
            return Err(ApiError::conflict(rt, name));
        }
        let candidate = f(&old)?;
        if !candidate.is_object() {
            return Err(ApiError::bad_request("the result must be a JSON object"));
        }
        self.commit_update(rt, &Self::key(rt, ns, name), old, candidate, scope, true)
    }

    /// Normalizes `candidate` against `old` for `scope`, then stores it —
    /// unless nothing changed, in which case `old` is returned untouched
    /// (no new resourceVersion, no watch event).
    fn commit_update(
        &mut self,
        rt: &ResourceType,
        key: &ObjKey,
        old: Value,
        candidate: Value,
        scope: Scope,
        take_ownership: bool,
    ) -> Result<Value, ApiError> {
        let mut new = match scope {
            Scope::Status => {
                let mut n = old.clone();
                match candidate.get("status") {
                    Some(s) if !s.is_null() => n["status"] = s.clone(),
                    _ => {
                        n.as_object_mut().expect("object").remove("status");
                    }
                }
                n
            }
            Scope::Main if rt.status_subresource => {
                let mut n = candidate;
                let m = n.as_object_mut().expect("object");
                match old.get("status") {
                    Some(s) => m.insert("status".into(), s.clone()),
                    None => m.remove("status"),
                };
                n
            }
            _ => candidate,
        };
        secret_string_data(rt, &mut new);
        new["apiVersion"] = old["apiVersion"].clone();
        new["kind"] = old["kind"].clone();
        let old_meta = old["metadata"].as_object().cloned().unwrap_or_default();
        let meta = meta_mut(&mut new);
        meta.remove("managedFields");
        meta.remove("selfLink");
        for k in SERVER_METADATA {
            match old_meta.get(k) {
                Some(v) => meta.insert(k.into(), v.clone()),
                None => meta.remove(k),
            };
        }
        if new == old {
            return Ok(old);
        }
        if take_ownership {
            let changed = tree::changed_leaves(&old, &new);
            self.release_fields(&rt.gvr, key, &changed);
        }
        if spec_like(&old) != spec_like(&new) {
            let generation = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            meta_mut(&mut new).insert("generation".into(), json!(generation + 1));
        }
        let rv = self.next_rv();
        meta_mut(&mut new).insert("resourceVersion".into(), json!(rv.to_string()));
        let deleting = new.pointer("/metadata/deletionTimestamp").is_some();
        let finalizers_left = new
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if deleting && !finalizers_left {
            self.objects.entry(rt.gvr.clone()).or_default().remove(key);
            self.forget_managers(&rt.gvr, key);
            self.emit(&rt.gvr, ChangeKind::Deleted, new.clone(), None);
            return Ok(new);
        }
        self.objects
            .entry(rt.gvr.clone())
            .or_default()
            .insert(key.clone(), new.clone());
        self.emit(&rt.gvr, ChangeKind::Modified, new.clone(), Some(old));
        Ok(new)
    }

    /// Server-side apply (simplified; see the module docs).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn apply(
        &mut self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        scope: Scope,
        manager: &str,
        config: Value,
        force: bool,
    ) -> Result<Value, ApiError> {
        if !config.is_object() {
            return Err(ApiError::bad_request(
                "the apply configuration must be an object",
            ));
        }
        check_type(rt, &config, true)?;
        if let Some(n) = config.pointer("/metadata/name").and_then(Value::as_str)
            && !n.is_empty()
            && n != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        let scoped = scope_config(rt, &config, scope);
        let new_paths = tree::leaf_paths(&scoped);
        let key = Self::key(rt, ns, name);
        let mkey: ManagedKey = (
            rt.gvr.clone(),
            key.0.clone(),
            key.1.clone(),
            scope.subresource(),
        );
        let old = match self.current(rt, ns, name) {
            Ok(old) => old,
            Err(e) if scope == Scope::Status => return Err(e),
            Err(_) => {
                let mut obj = config.clone();
                meta_mut(&mut obj).insert("name".into(), json!(name));
                let created = self.create(rt, ns, obj, false)?;
                self.managed
                    .entry(mkey)
                    .or_default()
                    .insert(manager.to_string(), new_paths);
                return Ok(created);
            }
        };
        if let Some(want) = rv_of(&config).filter(|s| !s.is_empty())
            && Some(want) != rv_of(&old)
        {
            return Err(ApiError::conflict(rt, name));
        }
        let managers = self.managed.entry(mkey.clone()).or_default();
        let mut conflicts = Vec::new();
        for (other, set) in managers.iter() {
            if other == manager {
                continue;
            }
            for p in &new_paths {
                let owned = set.iter().any(|q| tree::overlaps(p, q));
                if owned && tree::value_at(&old, p) != tree::value_at(&config, p) {
                    conflicts.push((other.clone(), p.clone()));
                }
            }
        }
        if !conflicts.is_empty() {
            if !force {
                let list = conflicts
                    .iter()
                    .map(|(m, p)| format!("conflict with \"{m}\": .{}", p.join(".")))
                    .collect::<Vec<_>>()
                    .join("\n- ");
                let mut e = ApiError::conflict(rt, name);
                e.message = format!("Apply failed with {} conflict(s): {list}", conflicts.len());
                return Err(e);
            }
            for (other, p) in &conflicts {
                if let Some(set) = managers.get_mut(other) {
                    set.retain(|q| !tree::overlaps(p, q));
                }
            }
        }
        let previous = managers.get(manager).cloned().unwrap_or_default();
        let others: Vec<FieldPath> = managers
            .iter()
            .filter(|(m, _)| m.as_str() != manager)
            .flat_map(|(_, s)| s.iter().cloned())
            .collect();
        let mut candidate = old.clone();
        for p in &previous {
            let still_applied = new_paths.iter().any(|n| tree::overlaps(p, n));
            let shared = others.iter().any(|q| tree::overlaps(p, q));
            if !still_applied && !shared {
                tree::remove_path(&mut candidate, p);
            }
        }
        tree::deep_merge(&mut candidate, &scoped);
        let result = self.commit_update(rt, &key, old, candidate, scope, false)?;
        if self.current(rt, ns, name).is_ok() {
            self.managed
                .entry(mkey)
                .or_default()
                .insert(manager.to_string(), new_paths);
        }
        Ok(result)
    }

    /// Deletes an object; with finalizers it only gets `deletionTimestamp`
    /// and is removed once an update empties `metadata.finalizers`.
    pub(crate) fn delete(
        &mut self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        uid: Option<&str>,
        precondition_rv: Option<&str>,
    ) -> Result<Value, ApiError> {
        let old = self.current(rt, ns, name)?;
        let old_uid = old.pointer("/metadata/uid").and_then(Value::as_str);
        if uid.is_some_and(|u| Some(u) != old_uid)
            || precondition_rv.is_some_and(|r| !r.is_empty() && Some(r) != rv_of(&old))
        {
            return Err(ApiError::conflict(rt, name));
        }
        let key = Self::key(rt, ns, name);
        let has_finalizers = old
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if has_finalizers {
            if old.pointer("/metadata/deletionTimestamp").is_some() {
                return Ok(old);
            }
            let mut new = old.clone();
            let rv = self.next_rv();
            let meta = meta_mut(&mut new);
            meta.insert("deletionTimestamp".into(), json!(now_rfc3339()));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            meta.insert("resourceVersion".into(), json!(rv.to_string()));
            self.objects
                .entry(rt.gvr.clone())
                .or_default()
                .insert(key, new.clone());
            self.emit(&rt.gvr, ChangeKind::Modified, new.clone(), Some(old));
            return Ok(new);
        }
        let mut gone = old;
        let rv = self.next_rv();
        meta_mut(&mut gone).insert("resourceVersion".into(), json!(rv.to_string()));
        self.objects.entry(rt.gvr.clone()).or_default().remove(&key);
        self.forget_managers(&rt.gvr, &key);
        self.emit(&rt.gvr, ChangeKind::Deleted, gone.clone(), None);
        Ok(gone)
    }

    /// Forgets the watch history: open watches end with 410 and every
    /// resourceVersion handed out so far is too old to watch from.
    pub(crate) fn force_gone(&mut self) {
        let rv = self.next_rv();
        self.floor = rv;
        self.history.clear();
        let _ = self.tx.send(WatchMsg::Gone);
        self.notify();
    }

    pub(crate) fn drop_watches(&mut self, user_agent: Option<String>) {
        let _ = self.tx.send(WatchMsg::Drop(user_agent));
        self.notify();
    }

    pub(crate) fn hang(&mut self, rec: RequestRecord) -> u64 {
        self.next_hung += 1;
        self.hung.insert(self.next_hung, rec);
        self.notify();
        self.next_hung
    }

    pub(crate) fn unhang(&mut self, id: u64) {
        self.hung.remove(&id);
    }
}

/// `apiVersion` / `kind` in a body must name `rt` (required for apply).
pub(crate) fn check_type(rt: &ResourceType, obj: &Value, required: bool) -> Result<(), ApiError> {
    let api_version = obj.get("apiVersion").and_then(Value::as_str);
    let kind = obj.get("kind").and_then(Value::as_str);
    match (api_version, kind) {
        (None, None) | (Some(""), Some("")) if !required => Ok(()),
        (Some(a), Some(k)) if a == rt.api_version() && k == rt.kind => Ok(()),
        (a, k) => Err(ApiError::bad_request(format!(
            "invalid object type: apiVersion {:?}, kind {:?} (this endpoint serves {}, Kind={})",
            a.unwrap_or(""),
            k.unwrap_or(""),
            rt.api_version(),
            rt.kind
        ))),
    }
}

/// The part of an apply configuration that `scope` may change, without
/// apiVersion, kind and server-managed metadata.
fn scope_config(rt: &ResourceType, config: &Value, scope: Scope) -> Value {
    let mut c = config.as_object().cloned().unwrap_or_default();
    c.remove("apiVersion");
    c.remove("kind");
    if let Some(Value::Object(meta)) = c.get_mut("metadata") {
        for k in SERVER_METADATA
            .iter()
            .chain(&["managedFields", "selfLink", "generateName"])
        {
            meta.remove(*k);
        }
    }
    if c.get("metadata")
        .is_some_and(|m| m.as_object().is_none_or(|m| m.is_empty()))
    {
        c.remove("metadata");
    }
    match scope {
        Scope::Status => {
            let mut only = Map::new();
            if let Some(s) = c.remove("status") {
                only.insert("status".into(), s);
            }
            Value::Object(only)
        }
        Scope::Main if rt.status_subresource => {
            c.remove("status");
            Value::Object(c)
        }
        _ => Value::Object(c),
    }
}

fn random_suffix() -> String {
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| CHARS[fastrand::usize(..CHARS.len())] as char)
        .collect()
}

/// A Secret's write-only `stringData` goes into `data` (base64), as the
/// real API server does; `stringData` is never stored.
fn secret_string_data(rt: &ResourceType, obj: &mut Value) {
    if rt.gvr.group.is_empty()
        && rt.gvr.plural == "secrets"
        && let Some(Value::Object(strings)) =
            obj.as_object_mut().and_then(|m| m.remove("stringData"))
    {
        if !obj["data"].is_object() {
            obj["data"] = json!({});
        }
        for (k, v) in strings {
            let bytes = k8s_openapi::ByteString(v.as_str().unwrap_or_default().as_bytes().to_vec());
            obj["data"][k] = serde_json::to_value(bytes).expect("base64");
        }
    }
}
