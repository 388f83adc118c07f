//! `fake_kube` — a stateful **fake Kubernetes API server for tests**.
//!
//! This is a TEST DOUBLE, not a real API server: no etcd, no admission, no
//! RBAC, no authentication (any bearer token is accepted), no OpenAPI schema
//! validation, defaulting or pruning. It serves plain HTTP on 127.0.0.1:0 so
//! that a real `kube::Client` (typed `Api`s, `Api<DynamicObject>`,
//! kube-runtime's `watcher` / `Controller`, the events `Recorder`,
//! `Api<Lease>`) can talk to it through an ordinary kubeconfig
//! ([`FakeKube::write_kubeconfig`], [`FakeKube::client`]).
//!
//! # What it implements
//!
//! - Kinds keyed by (group, version, plural) — [`ResourceType`]; built in:
//!   `crypto.fleet.dev/v1alpha1` `cryptoclients` (namespaced, status
//!   subresource), `coordination.k8s.io/v1` `leases`, `events.k8s.io/v1`
//!   `events`, core `v1` `events`, `secrets`, `configmaps`, `namespaces`, and
//!   `apiextensions.k8s.io/v1` `customresourcedefinitions`;
//!   [`FakeKube::register`] adds more. Unknown paths answer 404.
//! - Paths `/apis/{g}/{v}[/namespaces/{ns}]/{plural}[/{name}[/status]]` and
//!   the same under `/api/v1`; discovery (`/api`, `/apis`, `/api/v1`,
//!   `/apis/{g}/{v}`) and `/version`.
//! - One global, monotonically increasing `resourceVersion` (a decimal
//!   string) assigned on every write; `metadata.uid`,
//!   `metadata.creationTimestamp`, `metadata.generation` (1 on create, +1
//!   only when something outside `metadata` / `status` changes — for a
//!   custom resource, `spec`). A write that changes nothing answers 200 with
//!   the stored object but gets no new resourceVersion and no watch event.
//! - Secrets: `stringData` is stored as base64 `data`, as a real server
//!   does (it is never stored itself).
//! - Status subresource: main-resource writes (create, replace, patch,
//!   apply) keep the stored `status` (create drops it); `/status` writes
//!   change only `status`.
//! - LIST (`labelSelector` with `=`, `==`, `!=`, `in`, `notin`, exists,
//!   `!exists`; `fieldSelector` with `=`, `==`, `!=` on any dotted path),
//!   always the current state in one page: `resourceVersion`,
//!   `resourceVersionMatch`, `limit`, `continue` are accepted and ignored.
//! - WATCH (`watch=true|1`): see [`watch`](self::watch) — history replay
//!   from `resourceVersion`, ADDED for all objects for ""/"0" and for
//!   `sendInitialEvents=true` (with the `k8s.io/initial-events-end`
//!   BOOKMARK), live events, end at `timeoutSeconds`, 410 `Expired` ERROR
//!   events. kube-runtime 5.0's default watcher (LIST with `limit=500`, or
//!   `resourceVersion=0&resourceVersionMatch=NotOlderThan` with
//!   `ListSemantic::Any`; then WATCH with
//!   `allowWatchBookmarks=true&timeoutSeconds=290` from the list's
//!   resourceVersion; re-list after a 410) and its streaming-list mode
//!   (`sendInitialEvents=true`) both work.
//! - GET, POST (201; 409 `AlreadyExists`; `generateName`), PUT (409
//!   `Conflict` when the body's `resourceVersion` is set and stale; an
//!   empty one is an unconditional update), DELETE (returns the object;
//!   `preconditions`; with `metadata.finalizers` it only sets
//!   `deletionTimestamp`, and the object goes once an update empties the
//!   finalizers), DELETE on a collection.
//! - PATCH: `application/merge-patch+json` (RFC 7386; a
//!   `metadata.resourceVersion` in the patch is a precondition),
//!   `application/json-patch+json` (RFC 6902, via the `json-patch` crate),
//!   `application/apply-patch+yaml` (JSON or YAML body; `fieldManager`
//!   required, `force`), `application/strategic-merge-patch+json` (415 for
//!   custom resources like a real server; a plain merge patch for built-in
//!   kinds).
//! - A request log ([`RequestRecord`]: User-Agent, body, status, the
//!   stored object a write answered), fault injection
//!   ([`FakeKube::fail_next`], [`FakeKube::force_gone`],
//!   [`FakeKube::drop_watches`]; by User-Agent, [`FakeKube::cut_off`] a
//!   replica, [`FakeKube::outage`] for everyone, [`FakeKube::heal`] — see
//!   [`faults`]) and waits on change notifications
//!   ([`FakeKube::wait_for`]) — never on sleeps.
//!
//! # What it simplifies
//!
//! - **Server-side apply**: per (object, subresource, fieldManager) the fake
//!   remembers the *leaf paths* of the last applied configuration (a leaf is
//!   a scalar, a list or an empty map — lists are atomic, so `conditions`
//!   are replaced wholesale, not merged per `type`). An apply starts from the
//!   current object, removes the leaves the same manager applied last time
//!   and no longer applies (unless another applier also owns them) and any
//!   parent object such a removal leaves empty, then
//!   deep-merges the new configuration (`null` removes a field). Conflicts
//!   (409) are only detected against other *appliers* owning a leaf with a
//!   different value; `force=true` takes the leaf over. A non-apply write
//!   that changes a leaf takes it away from every applier. No
//!   `managedFields` are returned. Apply creates a missing main object; an
//!   apply to `/status` of a missing object is 404.
//! - No schema: objects are stored as given (apart from server metadata).
//!   Namespaces need not exist. `dryRun` answers 400.
//! - LIST ignores `limit` / `continue` (one page) and serves the current
//!   state for any `resourceVersion`. Watches keep the last
//!   [`store::HISTORY_LIMIT`] events; no periodic BOOKMARKs. A watch
//!   falling more than [`store::BROADCAST_CAPACITY`] events behind ends with 410.
//! - `fail_next` counts every request, watches included. kube's client
//!   retries 429/503/504 on its own, so use e.g. 500 to see a failure.
//! - Test helpers ([`FakeKube::create`], [`FakeKube::merge_patch`],
//!   [`FakeKube::delete`]) behave like API writes (resourceVersion, watch
//!   events, finalizers) but are privileged: they may set `status` directly
//!   and they are not in the request log.
//!
//! Every task it spawns (the server and its connections) ends when the
//! handle is dropped or [`FakeKube::shutdown`] is called: open watches end,
//! idle connections close.

pub mod audit;
pub mod faults;
pub mod kubeconfig;
pub mod log;
pub mod resources;
pub mod selectors;
pub mod server;
pub mod service;
pub mod status;
pub mod store;
pub mod tree;
pub mod watch;

// Re-exports for tests; test binaries that do not use them must not warn.
#[allow(unused_imports)]
pub use faults::Outage;
#[allow(unused_imports)]
pub use log::RequestRecord;
#[allow(unused_imports)]
pub use resources::{
    CRYPTO_GROUP, CRYPTO_KIND, CRYPTO_PLURAL, CRYPTO_VERSION, Gvr, ResourceType,
    crypto_client_api_resource,
};
#[allow(unused_imports)]
pub use status::ApiError;
#[allow(unused_imports)]
pub use store::Store;

use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use store::Scope;
use tokio::sync::watch as notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// State shared by the handle and the server.
pub(crate) struct Shared {
    store: Mutex<Store>,
    pub(crate) shutdown: CancellationToken,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running fake API server. Dropping it stops the server.
pub struct FakeKube {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: Option<JoinHandle<()>>,
}

impl FakeKube {
    /// Starts a fake API server on 127.0.0.1 with an ephemeral port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("fake_kube binds 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new(notify::channel(0).0)),
            shutdown: CancellationToken::new(),
        });
        let app = axum::Router::new()
            .fallback(server::handle)
            .with_state(shared.clone());
        let stop = shared.shutdown.clone();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
        Self {
            shared,
            addr,
            server: Some(server),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The kubeconfig (see [`kubeconfig::yaml`]).
    pub fn kubeconfig_yaml(&self) -> String {
        kubeconfig::yaml(self.addr)
    }

    /// Writes `dir/kubeconfig` and returns its path.
    pub fn write_kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        std::fs::write(&path, self.kubeconfig_yaml()).expect("kubeconfig written");
        path
    }

    /// A `kube::Client` configured from the kubeconfig (namespace `default`).
    pub async fn client(&self) -> kube::Client {
        kubeconfig::client(&self.kubeconfig_yaml()).await
    }

    /// Serves another kind (replacing one with the same group/version/plural).
    pub fn register(&self, rt: ResourceType) {
        self.shared.lock().registry.register(rt);
    }

    fn resource(
        &self,
        st: &Store,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Result<ResourceType, ApiError> {
        st.resource(&Gvr::new(group, version, plural))
    }

    /// Creates an object like a POST would (kind from `apiVersion`/`kind`,
    /// namespace from `metadata.namespace`, else "default"), keeping any
    /// `status` it carries.
    pub fn create(&self, obj: Value) -> Result<Value, ApiError> {
        let mut st = self.shared.lock();
        let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
        let rt = st
            .registry
            .by_kind(api_version, kind)
            .cloned()
            .ok_or_else(|| {
                ApiError::bad_request(format!("fake_kube does not serve {api_version} {kind}"))
            })?;
        st.create(&rt, None, obj, true)
    }

    /// One object (`ns` is ignored for cluster-scoped kinds).
    pub fn get(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        ns: &str,
        name: &str,
    ) -> Option<Value> {
        let st = self.shared.lock();
        let rt = self.resource(&st, group, version, plural).ok()?;
        st.current(&rt, Some(ns), name).ok()
    }

    /// Objects of a kind in `ns`, or in all namespaces.
    pub fn list(&self, group: &str, version: &str, plural: &str, ns: Option<&str>) -> Vec<Value> {
        let st = self.shared.lock();
        st.list(group, version, plural, ns)
            .into_iter()
            .cloned()
            .collect()
    }

    /// A JSON merge patch on the whole object (spec, metadata and status),
    /// as an API write: new resourceVersion and a watch event when it changes
    /// something, generation +1 when `spec` changes.
    pub fn merge_patch(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        ns: &str,
        name: &str,
        patch: Value,
    ) -> Result<Value, ApiError> {
        let mut st = self.shared.lock();
        let rt = self.resource(&st, group, version, plural)?;
        st.update(&rt, Some(ns), name, Scope::All, None, |old| {
            let mut c = old.clone();
            json_patch::merge(&mut c, &patch);
            Ok(c)
        })
    }

    /// Deletes like an API DELETE (finalizers respected).
    pub fn delete(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        ns: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        let mut st = self.shared.lock();
        let rt = self.resource(&st, group, version, plural)?;
        st.delete(&rt, Some(ns), name, None, None)
    }

    /// Events created so far (`events.k8s.io/v1` and core `v1`), oldest
    /// write first.
    pub fn events(&self) -> Vec<Value> {
        self.shared.lock().events().into_iter().cloned().collect()
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().resource_version()
    }

    /// Watch streams open right now.
    pub fn open_watches(&self) -> usize {
        self.shared.lock().open_watches()
    }

    /// A copy of the request log.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.lock().requests().to_vec()
    }

    /// How many logged requests match `pred`.
    pub fn count(&self, mut pred: impl FnMut(&RequestRecord) -> bool) -> usize {
        self.shared
            .lock()
            .requests()
            .iter()
            .filter(|r| pred(r))
            .count()
    }

    /// Empties the request log.
    pub fn clear_log(&self) {
        self.shared.lock().log.clear();
    }

    /// Waits until `pred` holds for the store (checked now and after every
    /// write, logged request and watch open/close); false on timeout.
    pub async fn wait_for(&self, mut pred: impl FnMut(&Store) -> bool, timeout: Duration) -> bool {
        self.wait_map(|st| pred(st).then_some(()), timeout)
            .await
            .is_some()
    }

    /// Waits for a logged request matching `pred` (already logged ones count).
    pub async fn wait_for_request(
        &self,
        mut pred: impl FnMut(&RequestRecord) -> bool,
        timeout: Duration,
    ) -> Option<RequestRecord> {
        self.wait_map(
            |st| st.requests().iter().find(|r| pred(r)).cloned(),
            timeout,
        )
        .await
    }

    /// Waits until `f` returns `Some`; `None` on timeout.
    pub async fn wait_map<T>(
        &self,
        mut f: impl FnMut(&Store) -> Option<T>,
        timeout: Duration,
    ) -> Option<T> {
        let mut changes = self.shared.lock().subscribe_changes();
        let wait = async {
            loop {
                if let Some(v) = f(&self.shared.lock()) {
                    return v;
                }
                if changes.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.ok()
    }

    /// Open watches end with a 410 `Expired` ERROR event, and every
    /// resourceVersion handed out so far becomes too old to watch from
    /// (clients must re-list).
    pub fn force_gone(&self) {
        self.shared.lock().force_gone();
    }

    /// The next `n` requests (any verb, watches included) answer `status`
    /// with a `Status` body.
    pub fn fail_next(&self, n: u32, status: u16) {
        let mut st = self.shared.lock();
        st.fail = (n > 0).then_some((n, status));
    }

    /// The next `n` status writes (PATCH on `/status`) are logged and never
    /// answered (until the server shuts down): an API server that hangs.
    pub fn stall_status_writes(&self, n: u32) {
        self.shared.lock().stall_status = n;
    }

    /// Closes every open watch stream abruptly (no ERROR event).
    pub fn drop_watches(&self) {
        self.shared.lock().drop_watches(None);
    }

    /// Cuts off the callers whose User-Agent contains `user_agent` (a
    /// replica partitioned from the API server): their open watches drop
    /// and their requests meet `outage` until [`FakeKube::heal`].
    pub fn cut_off(&self, user_agent: &str, outage: Outage) {
        let mut st = self.shared.lock();
        st.faults.push(faults::Fault {
            user_agent: Some(user_agent.to_owned()),
            status_writes_only: false,
            outage,
        });
        st.drop_watches(Some(user_agent.to_owned()));
    }

    /// A whole API outage: every watch drops and every request meets
    /// `outage` until [`FakeKube::heal`].
    pub fn outage(&self, outage: Outage) {
        let mut st = self.shared.lock();
        st.faults.push(faults::Fault {
            user_agent: None,
            status_writes_only: false,
            outage,
        });
        st.drop_watches(None);
    }

    /// Holds every status write (PATCH of `/status`) until
    /// [`FakeKube::heal`], so that racing writers arrive together.
    pub fn hold_status_writes(&self) {
        let mut st = self.shared.lock();
        st.faults.push(faults::Fault {
            user_agent: None,
            status_writes_only: true,
            outage: Outage::Hang,
        });
        st.notify();
    }

    /// Ends every fault: held requests are applied now (late), in no
    /// particular order.
    pub fn heal(&self) {
        let mut st = self.shared.lock();
        st.faults.clear();
        st.notify();
    }

    /// The requests a fault holds right now.
    pub fn hung(&self) -> Vec<RequestRecord> {
        self.shared.lock().hung().cloned().collect()
    }

    /// Stops the server and waits (up to 5 s) for its connections to close.
    pub async fn shutdown(mut self) {
        self.shared.shutdown.cancel();
        if let Some(mut server) = self.server.take()
            && tokio::time::timeout(Duration::from_secs(5), &mut server)
                .await
                .is_err()
        {
            server.abort();
        }
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}
