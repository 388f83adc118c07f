//! Membership: every replica keeps a `coordination.k8s.io/v1` Lease of its
//! own — its id, the address its peers reach it at and its session count —
//! renewed every `lease_duration / 3`, and watches its peers' Leases. A
//! peer is live while its renewal was observed within its lease duration
//! (measured on this replica's clock from when the renewal was seen, as
//! client-go's leader election does, so clock skew between replicas does
//! not matter). A replica whose own renewals fail for the renew deadline
//! (two thirds of the duration) knows it cannot reach the API: it stops
//! admitting and writing, and asks its peers whether they can
//! (`partition.rs`).

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Api;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, RwLock};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Label that groups one deployment's Leases.
pub const LEASE_GROUP_LABEL: &str = "crypto.fleet.dev/lease-group";
/// Label saying what a Lease is for (`replica`, `janitor`).
pub const LEASE_ROLE_LABEL: &str = "crypto.fleet.dev/lease-role";
/// Annotation: where peers reach the replica (`host:port` of its gRPC port).
pub const ADVERTISE_ANNOTATION: &str = "crypto.fleet.dev/advertise-addr";
/// Annotation: how many sessions the replica holds.
pub const SESSIONS_ANNOTATION: &str = "crypto.fleet.dev/sessions";

/// This replica and its Leases.
#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    /// This replica's id (the pod name).
    pub id: String,
    /// Where peers reach this replica (`host:port`); `None` until the
    /// server knows its gRPC port.
    pub advertise: Option<String>,
    /// Namespace of the Leases.
    pub lease_namespace: String,
    /// Lease names: `<prefix>-replica-<id>` and `<prefix>-janitor`.
    pub lease_prefix: String,
    /// How long a Lease lasts without renewal.
    pub lease_duration: Duration,
    /// A client that another live replica claimed less than this ago is
    /// refused (UNAVAILABLE, retry later) instead of moved: the bound on
    /// how fast a client can flap between replicas.
    pub min_hold: Duration,
    /// How long the janitor waits after a holder's Lease expired before it
    /// marks the holder's resources Disconnected.
    pub holder_grace: Duration,
    /// The token replicas present to each other's peer service.
    pub peer_token: Option<String>,
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        Self {
            id: "crypto-operator".into(),
            advertise: None,
            lease_namespace: "default".into(),
            lease_prefix: "crypto-operator".into(),
            lease_duration: Duration::from_secs(15),
            min_hold: Duration::from_secs(5),
            holder_grace: Duration::from_secs(10),
            peer_token: None,
        }
    }
}

impl ReplicaConfig {
    /// The name of this replica's Lease.
    pub fn lease_name(&self) -> String {
        self.lease_name_of(&self.id)
    }

    /// The name of replica `id`'s Lease.
    pub fn lease_name_of(&self, id: &str) -> String {
        format!("{}-replica-{id}", self.lease_prefix)
    }

    /// The name of the janitor's Lease.
    pub fn janitor_lease_name(&self) -> String {
        format!("{}-janitor", self.lease_prefix)
    }

    /// How often the Lease is renewed.
    pub fn renew_every(&self) -> Duration {
        (self.lease_duration / 3).max(Duration::from_millis(100))
    }

    /// How long renewals may fail before this replica stops admitting.
    pub fn renew_deadline(&self) -> Duration {
        self.lease_duration * 2 / 3
    }
}

/// A live peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its replica id.
    pub id: String,
    /// Where it is reached.
    pub advertise: String,
    /// Sessions it holds (as of its last renewal).
    pub sessions: u64,
}

struct Seen {
    peer: Peer,
    renew: Option<String>,
    duration: Duration,
    observed: Instant,
}

/// What this replica knows of the fleet.
pub struct Membership {
    cfg: ReplicaConfig,
    advertise: RwLock<String>,
    peers: RwLock<HashMap<String, Seen>>,
    renewed: Mutex<Option<Instant>>,
    /// When the current streak of renewals within the deadline began.
    streak: Mutex<Option<Instant>>,
}

impl Membership {
    /// Membership of the replica `cfg` describes (nothing renewed yet).
    pub fn new(cfg: ReplicaConfig) -> Self {
        let advertise = cfg.advertise.clone().unwrap_or_default();
        Self {
            cfg,
            advertise: RwLock::new(advertise),
            peers: RwLock::new(HashMap::new()),
            renewed: Mutex::new(None),
            streak: Mutex::new(None),
        }
    }

    /// This replica's id.
    pub fn me(&self) -> &str {
        &self.cfg.id
    }

    /// The settings.
    pub fn config(&self) -> &ReplicaConfig {
        &self.cfg
    }

    /// Sets where peers reach this replica (once the gRPC port is bound).
    pub fn set_advertise(&self, addr: String) {
        *self
            .advertise
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = addr;
    }

    /// Where peers reach this replica.
    pub fn advertise(&self) -> String {
        self.advertise
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Whether this replica renewed its Lease within the renew deadline:
    /// it can reach the API and may admit clients and write.
    pub fn api_ok(&self) -> bool {
        self.last_renewal()
            .is_some_and(|t| t.elapsed() < self.cfg.renew_deadline())
    }

    /// When this replica last renewed its Lease.
    pub fn last_renewal(&self) -> Option<Instant> {
        *self
            .renewed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn mark_renewed(&self) {
        let now = Instant::now();
        let mut renewed = self
            .renewed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut streak = self
            .streak
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A renewal after the deadline passed starts a new streak.
        if renewed.is_none_or(|t| now.duration_since(t) >= self.cfg.renew_deadline()) {
            *streak = Some(now);
        }
        *renewed = Some(now);
    }

    /// How long this replica has reached the API without missing the
    /// renew deadline (`None` when it does not reach it now).
    pub fn reachable_for(&self) -> Option<Duration> {
        if !self.api_ok() {
            return None;
        }
        self.streak
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .map(|t| t.elapsed())
    }

    /// How long this replica has not renewed (`None` before its first
    /// renewal).
    pub fn failing_for(&self) -> Option<Duration> {
        self.last_renewal().map(|t| t.elapsed())
    }

    /// The live peers (other replicas), sorted by id.
    pub fn peers(&self) -> Vec<Peer> {
        let peers = self
            .peers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out: Vec<Peer> = peers
            .values()
            .filter(|s| s.peer.id != self.cfg.id && s.observed.elapsed() < s.duration)
            .map(|s| s.peer.clone())
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// Whether replica `id` is live (this replica is while it can renew).
    pub fn is_live(&self, id: &str) -> bool {
        if id == self.cfg.id {
            return self.api_ok();
        }
        self.peers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .is_some_and(|s| s.observed.elapsed() < s.duration)
    }

    /// Live replicas, this one included: at least 1.
    pub fn live_count(&self) -> usize {
        self.peers().len() + 1
    }

    /// Records a peer's Lease as seen now.
    pub(crate) fn observe(&self, lease: &Lease) {
        let Some(spec) = &lease.spec else { return };
        let Some(id) = spec.holder_identity.clone().filter(|s| !s.is_empty()) else {
            return;
        };
        let ann = lease.metadata.annotations.clone().unwrap_or_default();
        let renew = spec.renew_time.as_ref().map(|t| t.0.to_string());
        let duration = Duration::from_secs(
            u64::try_from(spec.lease_duration_seconds.unwrap_or(15)).unwrap_or(15),
        );
        let peer = Peer {
            id: id.clone(),
            advertise: ann.get(ADVERTISE_ANNOTATION).cloned().unwrap_or_default(),
            sessions: ann
                .get(SESSIONS_ANNOTATION)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
        };
        let mut peers = self
            .peers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let fresh_by_wall_clock = spec.renew_time.as_ref().is_some_and(|t| {
            let age = k8s_openapi::jiff::Timestamp::now().duration_since(t.0);
            age.as_secs() < i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
        });
        let observed = match peers.get(&id) {
            // A renewal we have seen already: liveness runs from when we
            // first saw it.
            Some(s) if s.renew == renew => s.observed,
            // A new renewal, or (first sight) a recent one.
            Some(_) => Instant::now(),
            None if fresh_by_wall_clock => Instant::now(),
            None => Instant::now()
                .checked_sub(duration)
                .unwrap_or_else(Instant::now),
        };
        peers.insert(
            id,
            Seen {
                peer,
                renew,
                duration,
                observed,
            },
        );
    }

    fn forget(&self, lease: &Lease) {
        if let Some(id) = lease.spec.as_ref().and_then(|s| s.holder_identity.clone()) {
            self.peers
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&id);
        }
    }
}

fn now_micro() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

/// This replica's Lease as it should be now.
fn own_lease(m: &Membership, sessions: usize, previous: Option<Lease>) -> Lease {
    let cfg = m.config();
    let secs = i32::try_from(cfg.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX);
    let mut lease = previous.unwrap_or_else(|| Lease {
        metadata: ObjectMeta {
            name: Some(cfg.lease_name()),
            namespace: Some(cfg.lease_namespace.clone()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            acquire_time: Some(now_micro()),
            ..Default::default()
        }),
    });
    lease.metadata.labels = Some(BTreeMap::from([
        (LEASE_GROUP_LABEL.to_owned(), cfg.lease_prefix.clone()),
        (LEASE_ROLE_LABEL.to_owned(), "replica".to_owned()),
    ]));
    let ann = lease.metadata.annotations.get_or_insert_with(BTreeMap::new);
    ann.insert(ADVERTISE_ANNOTATION.to_owned(), m.advertise());
    ann.insert(SESSIONS_ANNOTATION.to_owned(), sessions.to_string());
    let spec = lease.spec.get_or_insert_with(Default::default);
    spec.holder_identity = Some(cfg.id.clone());
    spec.lease_duration_seconds = Some(secs);
    spec.renew_time = Some(now_micro());
    lease
}

/// One renewal (create the Lease if it is missing); bounded by `limit`.
async fn renew(
    api: &Api<Lease>,
    m: &Membership,
    sessions: usize,
    limit: Duration,
) -> Result<(), String> {
    let name = m.config().lease_name();
    let round = async {
        let previous = api.get_opt(&name).await.map_err(|e| e.to_string())?;
        let create = previous.is_none();
        let lease = own_lease(m, sessions, previous);
        if create {
            api.create(&PostParams::default(), &lease).await
        } else {
            api.replace(&name, &PostParams::default(), &lease).await
        }
        .map(drop)
        .map_err(|e| e.to_string())
    };
    tokio::time::timeout(limit, round)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {limit:?}")))
}

/// Keeps this replica's Lease renewed until `stop`, then deletes it (the
/// last thing the replica does, so peers see it gone at once). `sessions`
/// reads the current session count.
pub async fn keep_lease(
    api: Api<Lease>,
    m: std::sync::Arc<Membership>,
    sessions: impl Fn() -> usize + Send,
    stop: CancellationToken,
) {
    let every = m.config().renew_every();
    // One attempt may take until the renew deadline: a slow answer that
    // still comes in time is a renewal (the deadline, not one attempt's
    // timeout, decides whether the API is reachable). A failed attempt is
    // retried soon, so several fit before the deadline, as client-go's
    // leader election retries every RetryPeriod within its RenewDeadline.
    let limit = m.config().renew_deadline();
    let retry = (every / 5).max(Duration::from_millis(100));
    let mut failing = false;
    loop {
        let started = Instant::now();
        let next = match renew(&api, &m, sessions(), limit).await {
            Ok(()) => {
                m.mark_renewed();
                if failing {
                    info!(replica = m.me(), "replica Lease renewed again");
                    failing = false;
                }
                every.saturating_sub(started.elapsed())
            }
            Err(e) => {
                if !failing {
                    warn!(replica = m.me(), error = %e, "cannot renew the replica Lease; retrying");
                }
                failing = true;
                retry
            }
        };
        tokio::select! {
            _ = stop.cancelled() => break,
            () = tokio::time::sleep(next) => {}
        }
    }
    let name = m.config().lease_name();
    match tokio::time::timeout(every, api.delete(&name, &DeleteParams::default())).await {
        Ok(Ok(_)) => debug!(lease = %name, "replica Lease released"),
        Ok(Err(e)) => warn!(lease = %name, error = %e, "could not release the replica Lease"),
        Err(_) => warn!(lease = %name, "releasing the replica Lease timed out"),
    }
}

/// Watches the replica Leases of this deployment until `stop`.
pub async fn watch_peers(api: Api<Lease>, m: std::sync::Arc<Membership>, stop: CancellationToken) {
    let selector = format!(
        "{LEASE_GROUP_LABEL}={},{LEASE_ROLE_LABEL}=replica",
        m.config().lease_prefix
    );
    let stream = watcher(api, watcher::Config::default().labels(&selector))
        .backoff(super::watch::WatchBackoff::default());
    tokio::pin!(stream);
    loop {
        let ev = tokio::select! {
            _ = stop.cancelled() => return,
            ev = stream.next() => match ev {
                Some(ev) => ev,
                None => return,
            },
        };
        match ev {
            Ok(watcher::Event::Apply(l) | watcher::Event::InitApply(l)) => m.observe(&l),
            Ok(watcher::Event::Delete(l)) => m.forget(&l),
            Ok(watcher::Event::Init | watcher::Event::InitDone) => {}
            Err(e) => debug!(error = %e, "replica Lease watch error; retrying"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(id: &str, renew: Option<k8s_openapi::jiff::Timestamp>, secs: i32) -> Lease {
        let mut l = Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: Some(id.into()),
                lease_duration_seconds: Some(secs),
                renew_time: renew.map(MicroTime),
                ..Default::default()
            }),
        };
        l.metadata.annotations = Some(BTreeMap::from([
            (ADVERTISE_ANNOTATION.to_owned(), format!("{id}:50051")),
            (SESSIONS_ANNOTATION.to_owned(), "7".to_owned()),
        ]));
        l
    }

    #[tokio::test(start_paused = true)]
    async fn a_renewal_after_a_missed_deadline_starts_a_new_reachable_streak() {
        let m = Membership::new(ReplicaConfig {
            id: "a".into(),
            lease_duration: Duration::from_secs(3),
            ..Default::default()
        });
        assert_eq!(m.reachable_for(), None);
        m.mark_renewed();
        tokio::time::advance(Duration::from_secs(1)).await;
        m.mark_renewed();
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(m.reachable_for(), Some(Duration::from_secs(2)));
        // Thirty seconds without a renewal (an outage), then one.
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(m.reachable_for(), None);
        assert_eq!(m.failing_for(), Some(Duration::from_secs(31)));
        m.mark_renewed();
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(m.reachable_for(), Some(Duration::from_millis(500)));
    }

    #[test]
    fn peers_are_live_while_renewals_are_seen_and_self_while_renewing() {
        let m = Membership::new(ReplicaConfig {
            id: "a".into(),
            ..Default::default()
        });
        assert!(!m.api_ok(), "nothing renewed yet");
        m.mark_renewed();
        assert!(m.api_ok() && m.is_live("a"));
        let now = k8s_openapi::jiff::Timestamp::now();
        m.observe(&lease("b", Some(now), 15));
        // Renewed an hour ago by its own clock: not live on first sight.
        let old = now
            .checked_sub(k8s_openapi::jiff::SignedDuration::from_hours(1))
            .unwrap();
        m.observe(&lease("c", Some(old), 15));
        assert_eq!(
            m.peers(),
            [Peer {
                id: "b".into(),
                advertise: "b:50051".into(),
                sessions: 7
            }]
        );
        assert!(m.is_live("b") && !m.is_live("c"));
        assert_eq!(m.live_count(), 2);
        m.forget(&lease("b", None, 15));
        assert!(!m.is_live("b"));
        assert_eq!(m.live_count(), 1);
    }
}
