//! Starts the control plane of one replica: its Lease and the watch of its
//! peers' (`membership.rs`), the janitor election and the janitor
//! (`janitor.rs`), and one kube-runtime Controller per watched namespace
//! (or one for all) reconciling the resources this replica holds, with the
//! event bridge and the ack tasks — all owned, all ended by one token.
//! Every replica runs all of it; none stands by.

use super::budget::WriteBudget;
use super::context::Ctx;
use super::health::ControllerHealth;
use super::index::ResourceIndex;
use super::leader::{self, LeaderConfig};
use super::membership::{self, Membership, ReplicaConfig};
use super::metrics::ControlMetrics;
use super::reconcile::{error_policy, reconcile};
use super::runtime::Runtimes;
use super::{bridge, janitor, watch};
use crate::crd::CryptoClient;
use crate::streaming::StreamingHandle;
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{Config, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch as tokio_watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// Control-plane settings.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Namespaces to watch; empty: all.
    pub namespaces: Vec<String>,
    /// `lastHeartbeat` is written at most this often per client.
    pub status_heartbeat_interval: Duration,
    /// Reconciles running at once.
    pub concurrency: u16,
    /// Longest a reconcile (its API calls) or a Kubernetes Event write may
    /// take; a reconcile past it fails and is retried with backoff, so an
    /// API request that never answers cannot hold a resource (and every
    /// wake-up queued behind it) for kube's 295 s read timeout.
    pub api_timeout: Duration,
    /// This replica, its Leases and its peers.
    pub replica: ReplicaConfig,
    /// Status writes per second the whole fleet may make (shared by the
    /// live replicas).
    pub write_qps: f64,
    /// The fleet's write burst.
    pub write_burst: u32,
    /// The most sessions a replica over its share moves per minute, in
    /// percent of its sessions (0: never rebalance).
    pub rebalance_rate: f64,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            namespaces: Vec::new(),
            status_heartbeat_interval: Duration::from_secs(30),
            concurrency: 16,
            api_timeout: DEFAULT_API_TIMEOUT,
            replica: ReplicaConfig::default(),
            write_qps: DEFAULT_WRITE_QPS,
            write_burst: DEFAULT_WRITE_BURST,
            rebalance_rate: DEFAULT_REBALANCE_RATE,
        }
    }
}

/// Default of [`ControllerConfig::write_qps`].
pub const DEFAULT_WRITE_QPS: f64 = 100.0;
/// Default of [`ControllerConfig::write_burst`].
pub const DEFAULT_WRITE_BURST: u32 = 500;

/// Default of [`ControllerConfig::rebalance_rate`]: 1 % per minute.
pub const DEFAULT_REBALANCE_RATE: f64 = 1.0;

/// Default of [`ControllerConfig::api_timeout`].
pub const DEFAULT_API_TIMEOUT: Duration = Duration::from_secs(30);

/// What the control plane runs against.
#[derive(Clone)]
pub struct Wiring {
    /// The Kubernetes client.
    pub client: kube::Client,
    /// The streaming core.
    pub handle: StreamingHandle,
    /// Client id -> resource; the core's admission policy.
    pub index: Arc<ResourceIndex>,
    /// The controller's metrics.
    pub metrics: Arc<ControlMetrics>,
    /// The controller's part of readiness.
    pub health: Arc<ControllerHealth>,
    /// This replica and its peers.
    pub membership: Arc<Membership>,
}

/// Runs the control plane until `stop`; this replica's Lease is released
/// last.
pub async fn run(w: Wiring, cfg: ControllerConfig, stop: CancellationToken) {
    let tasks = TaskTracker::new();
    let leases: Api<Lease> = Api::namespaced(w.client.clone(), &cfg.replica.lease_namespace);
    // The replica Lease outlives everything else of the controller.
    let lease_stop = CancellationToken::new();
    let lease = tokio::spawn(membership::keep_lease(
        leases.clone(),
        w.membership.clone(),
        {
            let handle = w.handle.clone();
            move || handle.connected()
        },
        lease_stop.clone(),
    ));
    tasks.spawn(membership::watch_peers(
        leases.clone(),
        w.membership.clone(),
        stop.clone(),
    ));
    tasks.spawn(super::rebalance::run(
        w.membership.clone(),
        w.handle.clone(),
        cfg.rebalance_rate,
        stop.clone(),
    ));
    let (janitor_tx, janitor_rx) = tokio_watch::channel(false);
    tasks.spawn(leader::run(
        leases,
        LeaderConfig {
            namespace: cfg.replica.lease_namespace.clone(),
            name: cfg.replica.janitor_lease_name(),
            identity: cfg.replica.id.clone(),
            lease_duration: cfg.replica.lease_duration,
        },
        janitor_tx,
        stop.clone(),
    ));
    reconcile_all(w, &cfg, janitor_rx, stop.clone(), &tasks).await;
    tasks.close();
    tasks.wait().await;
    lease_stop.cancel();
    let _ = lease.await;
}

/// Runs the controllers and the janitor until `term`.
async fn reconcile_all(
    w: Wiring,
    cfg: &ControllerConfig,
    janitor_rx: tokio_watch::Receiver<bool>,
    term: CancellationToken,
    tasks: &TaskTracker,
) {
    let Wiring {
        client,
        handle,
        index,
        metrics,
        health: ready,
        membership,
    } = w;
    let scopes: Vec<Option<String>> = if cfg.namespaces.is_empty() {
        vec![None]
    } else {
        cfg.namespaces.iter().cloned().map(Some).collect()
    };
    let mut triggers = HashMap::new();
    let mut trigger_rx = Vec::new();
    for scope in &scopes {
        let (tx, rx) = mpsc::channel::<ObjectRef<CryptoClient>>(1024);
        triggers.insert(scope.clone(), tx);
        trigger_rx.push(rx);
    }
    let reporter = Reporter {
        controller: "crypto-operator".into(),
        instance: Some(cfg.replica.id.clone()),
    };
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), reporter),
        client: client.clone(),
        handle: handle.clone(),
        index,
        runtimes: Runtimes::default(),
        tasks: TaskTracker::new(),
        triggers,
        status_every: cfg.status_heartbeat_interval,
        pacer: super::pacing::Pacer::new(cfg.status_heartbeat_interval, cfg.concurrency),
        api_timeout: cfg.api_timeout,
        stop: term.clone(),
        metrics,
        budget: WriteBudget::new(cfg.write_qps, cfg.write_burst, membership.clone()),
        membership,
    });
    ctx.tasks.spawn(bridge::run(
        ctx.clone(),
        handle.subscribe_to(crate::streaming::Interest::Lifecycle),
        term.clone(),
    ));
    tasks.spawn(janitor::run(ctx.clone(), janitor_rx, term.clone()));

    let mut controllers = Vec::new();
    let mut stores = Vec::new();
    for (scope, rx) in scopes.into_iter().zip(trigger_rx) {
        let api: Api<watch::Guarded> = match &scope {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let (reader, writer) = reflector::store::<CryptoClient>();
        stores.push(reader.clone());
        let events = watch::wake_ups(
            watch::events(api, ctx.clone(), scope.clone())
                .reflect(writer)
                .applied_objects(),
        );
        let controller = Controller::for_stream(events, reader)
            .with_config(Config::default().concurrency(cfg.concurrency))
            .reconcile_on(ReceiverStream::new(rx))
            .graceful_shutdown_on(term.clone().cancelled_owned())
            .run(reconcile, error_policy, ctx.clone())
            .for_each(|res| async move {
                if let Err(e) = res {
                    tracing::debug!(error = %e, "reconcile error");
                }
            });
        controllers.push(controller);
        info!(
            namespace = scope.as_deref().unwrap_or("<all>"),
            "watching CryptoClient resources"
        );
    }
    let synced = {
        let ready = ready.clone();
        let index = ctx.index.clone();
        let term = term.clone();
        async move {
            for s in stores {
                tokio::select! {
                    _ = term.cancelled() => return,
                    r = s.wait_until_ready() => if r.is_err() { return },
                }
            }
            info!("caches synced");
            index.set_admitting(true);
            ready.set_synced(true);
        }
    };
    tokio::join!(futures::future::join_all(controllers), synced);
    ctx.index.set_admitting(false);
    ready.set_synced(false);
    ctx.tasks.close();
    if tokio::time::timeout(Duration::from_secs(5), ctx.tasks.wait())
        .await
        .is_err()
    {
        warn!("controller tasks still running after 5 s");
    }
}
