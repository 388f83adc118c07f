//! Watch streams: newline-delimited JSON events over a chunked response.
//!
//! Opening a watch (under the store lock, so nothing is missed or sent
//! twice): with `resourceVersion` N, replay the history entries newer than
//! N (410 ERROR when N is below the history floor); with "" or "0", or with
//! `sendInitialEvents=true`, send ADDED for every matching object (then,
//! for `sendInitialEvents` with bookmarks, a BOOKMARK annotated
//! `k8s.io/initial-events-end`); then live events from the broadcast until
//! `timeoutSeconds`, `force_gone` (410 ERROR), `drop_watches` (abrupt end),
//! lag beyond the broadcast buffer (410 ERROR) or shutdown.

use super::Shared;
use super::resources::ResourceType;
use super::selectors::Selectors;
use super::status;
use super::store::{Change, ChangeKind, Store, WatchMsg};
use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A parsed watch request.
pub struct WatchRequest {
    pub rt: ResourceType,
    pub ns: Option<String>,
    pub selectors: Selectors,
    /// `None` for "" or "0" (start from the current state).
    pub resource_version: Option<u64>,
    pub timeout: Option<Duration>,
    pub bookmarks: bool,
    pub send_initial_events: bool,
}

/// Which events of the kind this watch passes on.
struct Filter {
    rt: ResourceType,
    ns: Option<String>,
    selectors: Selectors,
}

impl Filter {
    fn matches(&self, obj: &Value) -> bool {
        let ns_ok = self.ns.as_deref().is_none_or(|ns| {
            obj.pointer("/metadata/namespace").and_then(Value::as_str) == Some(ns)
        });
        ns_ok && self.selectors.matches(obj)
    }

    /// The event line for `change`, if this watch sees it. An update that
    /// moves an object into / out of the selection is ADDED / DELETED.
    fn event_for(&self, change: &Change) -> Option<Bytes> {
        if change.gvr != self.rt.gvr {
            return None;
        }
        let now = self.matches(&change.object);
        let kind = match change.kind {
            ChangeKind::Added => now.then_some("ADDED"),
            ChangeKind::Deleted => now.then_some("DELETED"),
            ChangeKind::Modified => {
                let before = change.old.as_ref().is_some_and(|o| self.matches(o));
                match (before, now) {
                    (true, true) => Some("MODIFIED"),
                    (false, true) => Some("ADDED"),
                    (true, false) => Some("DELETED"),
                    (false, false) => None,
                }
            }
        }?;
        Some(line(kind, &change.object))
    }
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut v =
        serde_json::to_vec(&json!({ "type": kind, "object": object })).expect("serializable event");
    v.push(b'\n');
    Bytes::from(v)
}

fn expired_line(message: &str) -> Bytes {
    line("ERROR", &status::expired(message))
}

/// Counts the stream as open while it lives.
struct OpenGuard(Arc<Shared>);

impl OpenGuard {
    fn new(shared: Arc<Shared>, store: &mut Store) -> Self {
        store.open_watches += 1;
        store.notify();
        Self(shared)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.open_watches -= 1;
        st.notify();
    }
}

struct Stream {
    pending: VecDeque<Bytes>,
    rx: Option<broadcast::Receiver<WatchMsg>>,
    filter: Filter,
    deadline: Option<Instant>,
    shutdown: CancellationToken,
    /// The watcher's User-Agent (for `drop_watches` of one caller).
    user_agent: String,
    _guard: OpenGuard,
}

/// Opens a watch; the response streams until the watch ends.
pub(crate) fn open(shared: &Arc<Shared>, req: WatchRequest, user_agent: String) -> Response {
    let filter = Filter {
        rt: req.rt,
        ns: req.ns,
        selectors: req.selectors,
    };
    let mut pending = VecDeque::new();
    let mut st = shared.lock();
    let mut rx = None;
    let floor = st.floor();
    match req.resource_version {
        Some(rv) if rv < floor && !req.send_initial_events => {
            pending.push_back(expired_line(&format!(
                "too old resource version: {rv} ({floor})"
            )));
        }
        Some(rv) if !req.send_initial_events => {
            for change in st.history_since(&filter.rt.gvr, rv) {
                pending.extend(filter.event_for(&change));
            }
            rx = Some(st.subscribe());
        }
        _ => {
            for obj in st.list_matching(&filter.rt.gvr, filter.ns.as_deref(), &filter.selectors) {
                pending.push_back(line("ADDED", &obj));
            }
            if req.send_initial_events && req.bookmarks {
                let bookmark = json!({
                    "apiVersion": filter.rt.api_version(),
                    "kind": filter.rt.kind,
                    "metadata": {
                        "resourceVersion": st.resource_version().to_string(),
                        "annotations": { "k8s.io/initial-events-end": "true" },
                    },
                });
                pending.push_back(line("BOOKMARK", &bookmark));
            }
            rx = Some(st.subscribe());
        }
    }
    let guard = OpenGuard::new(shared.clone(), &mut st);
    drop(st);
    let state = Stream {
        pending,
        rx,
        filter,
        deadline: req.timeout.map(|t| Instant::now() + t),
        shutdown: shared.shutdown.clone(),
        user_agent,
        _guard: guard,
    };
    let body = futures::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(bytes) = s.pending.pop_front() {
                return Some((Ok::<_, std::io::Error>(bytes), s));
            }
            let rx = s.rx.as_mut()?;
            let deadline = s.deadline;
            let msg = tokio::select! {
                _ = s.shutdown.cancelled() => return None,
                _ = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                } => return None,
                msg = rx.recv() => msg,
            };
            match msg {
                Ok(WatchMsg::Change(change)) => s.pending.extend(s.filter.event_for(&change)),
                Ok(WatchMsg::Gone) => {
                    s.rx = None;
                    s.pending
                        .push_back(expired_line("the watch history was compacted (force_gone)"));
                }
                Ok(WatchMsg::Drop(Some(ua))) if !s.user_agent.contains(&ua) => {}
                Ok(WatchMsg::Drop(_)) => {
                    s.rx = None;
                    let err = std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "watch dropped by fake_kube",
                    );
                    return Some((Err(err), s));
                }
                Err(RecvError::Lagged(n)) => {
                    s.rx = None;
                    s.pending
                        .push_back(expired_line(&format!("watch fell {n} events behind")));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(body))
        .expect("valid response")
}
