//! Leader election with a `coordination.k8s.io/v1` Lease: the holder renews
//! it every `lease_duration / 3`; another replica takes it over once it has
//! not been renewed for `lease_duration`. Writes use the Lease's
//! resourceVersion (optimistic concurrency), so two replicas never both
//! win. Losing the lease (or failing to renew it in time) is reported at
//! once.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Lease settings.
#[derive(Debug, Clone)]
pub struct LeaderConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// How long a lease lasts without renewal.
    pub lease_duration: Duration,
}

/// Whether this replica leads.
pub type LeaderState = watch::Receiver<bool>;

fn now_micro() -> MicroTime {
    MicroTime(Timestamp::now())
}

/// Runs the election until `stop`; `tx` carries whether this replica leads.
pub async fn run(
    api: Api<Lease>,
    cfg: LeaderConfig,
    tx: watch::Sender<bool>,
    stop: CancellationToken,
) {
    let renew_every = (cfg.lease_duration / 3).max(Duration::from_millis(100));
    let mut last_renewed: Option<Instant> = None;
    loop {
        let leading = match try_acquire(&api, &cfg).await {
            Ok(true) => {
                last_renewed = Some(Instant::now());
                true
            }
            Ok(false) => false,
            Err(e) => {
                warn!(error = %e, lease = %cfg.name, "lease request failed");
                // Still the leader only while the last renewal is fresh.
                *tx.borrow() && last_renewed.is_some_and(|t| t.elapsed() < cfg.lease_duration)
            }
        };
        if *tx.borrow() != leading {
            if leading {
                info!(identity = %cfg.identity, lease = %cfg.name, "became the leader");
            } else {
                warn!(identity = %cfg.identity, lease = %cfg.name, "lost the leadership");
            }
            tx.send_replace(leading);
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(renew_every) => {}
        }
    }
    if *tx.borrow() {
        release(&api, &cfg).await;
        tx.send_replace(false);
    }
}

/// One acquire-or-renew round; `Ok(true)` when this replica holds the lease.
async fn try_acquire(api: &Api<Lease>, cfg: &LeaderConfig) -> Result<bool, kube::Error> {
    let secs = i32::try_from(cfg.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX);
    let Some(mut lease) = api.get_opt(&cfg.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(cfg.name.clone()),
                namespace: Some(cfg.namespace.clone()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(cfg.identity.clone()),
                lease_duration_seconds: Some(secs),
                acquire_time: Some(now_micro()),
                renew_time: Some(now_micro()),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.get_or_insert_with(Default::default);
    let mine = spec.holder_identity.as_deref() == Some(cfg.identity.as_str());
    let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
        (Some(MicroTime(t)), Some(d)) => {
            let age = Timestamp::now().duration_since(*t);
            age.as_secs() >= i64::from(d)
        }
        _ => true,
    };
    let free = spec.holder_identity.as_deref().is_none_or(str::is_empty);
    if !mine && !expired && !free {
        return Ok(false);
    }
    if !mine {
        spec.holder_identity = Some(cfg.identity.clone());
        spec.acquire_time = Some(now_micro());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.renew_time = Some(now_micro());
    spec.lease_duration_seconds = Some(secs);
    match api.replace(&cfg.name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Gives the lease up on shutdown so another replica takes over at once.
async fn release(api: &Api<Lease>, cfg: &LeaderConfig) {
    let Ok(Some(mut lease)) = api.get_opt(&cfg.name).await else {
        return;
    };
    let Some(spec) = lease.spec.as_mut() else {
        return;
    };
    if spec.holder_identity.as_deref() != Some(cfg.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    spec.renew_time = None;
    if let Err(e) = api.replace(&cfg.name, &PostParams::default(), &lease).await {
        warn!(error = %e, "could not release the lease");
    }
}
