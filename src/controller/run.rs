//! Starts the control plane: optional leader election, then one
//! kube-runtime Controller per watched namespace (or one for all), the
//! event bridge and the ack tasks — all owned, all ended by one token.

use super::context::Ctx;
use super::health::ControllerHealth;
use super::index::ResourceIndex;
use super::leader::{self, LeaderConfig};
use super::metrics::ControlMetrics;
use super::reconcile::{error_policy, reconcile};
use super::runtime::Runtimes;
use super::{bridge, watch};
use crate::crd::CryptoClient;
use crate::streaming::StreamingHandle;
use futures::StreamExt;
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
    /// Leader election; `None` when this is the only replica.
    pub leader: Option<LeaderConfig>,
    /// Reconciles running at once.
    pub concurrency: u16,
    /// Longest a reconcile (its API calls) or a Kubernetes Event write may
    /// take; a reconcile past it fails and is retried with backoff, so an
    /// API request that never answers cannot hold a resource (and every
    /// wake-up queued behind it) for kube's 295 s read timeout.
    pub api_timeout: Duration,
}

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
}

/// Runs the control plane until `stop`.
pub async fn run(w: Wiring, cfg: ControllerConfig, stop: CancellationToken) {
    let Wiring {
        client,
        handle,
        index,
        metrics,
        health: ready,
    } = w;
    let (leader_tx, mut leading) = tokio_watch::channel(cfg.leader.is_none());
    let tasks = TaskTracker::new();
    if let Some(lc) = cfg.leader.clone() {
        let api = Api::namespaced(client.clone(), &lc.namespace);
        tasks.spawn(leader::run(api, lc, leader_tx, stop.clone()));
    }
    loop {
        // Wait to lead.
        index.set_admitting(false);
        ready.set_leader(false);
        while !*leading.borrow_and_update() {
            tokio::select! {
                _ = stop.cancelled() => return finish(tasks).await,
                changed = leading.changed() => if changed.is_err() { return finish(tasks).await },
            }
        }
        ready.set_leader(true);
        let term = stop.child_token();
        let lost = {
            let term = term.clone();
            let mut leading = leading.clone();
            async move {
                tokio::select! {
                    _ = term.cancelled() => false,
                    _ = leading.wait_for(|l| !*l) => true,
                }
            }
        };
        let running = lead(
            Wiring {
                client: client.clone(),
                handle: handle.clone(),
                index: index.clone(),
                metrics: metrics.clone(),
                health: ready.clone(),
            },
            &cfg,
            term.clone(),
        );
        tokio::pin!(running);
        let lost_lease = tokio::select! {
            _ = &mut running => false,
            l = lost => l,
        };
        term.cancel();
        running.await;
        if !lost_lease {
            return finish(tasks).await;
        }
        warn!(
            "leadership lost: reconciling stopped; ending every session so clients reconnect to the new leader"
        );
        index.set_admitting(false);
        ready.set_leader(false);
        handle.kick_all("this replica lost the leadership");
    }
}

async fn finish(tasks: TaskTracker) {
    tasks.close();
    tasks.wait().await;
}

/// Runs the controllers while this replica leads (until `term`).
async fn lead(w: Wiring, cfg: &ControllerConfig, term: CancellationToken) {
    let Wiring {
        client,
        handle,
        index,
        metrics,
        health: ready,
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
        instance: cfg.leader.as_ref().map(|l| l.identity.clone()),
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
    });
    ctx.tasks.spawn(bridge::run(
        ctx.clone(),
        handle.subscribe_to(crate::streaming::Interest::Lifecycle),
        term.clone(),
    ));

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
