//! Client id -> `CryptoClient` resource, kept from the watch for every
//! resource (a slim record: where it is, its token Secret, who holds it —
//! not the whole object). It is the cluster-mode [`ClientPolicy`]: a client
//! whose id matches no resource is refused (PERMISSION_DENIED); a replica
//! that has not synced or cannot reach the API admits nobody (UNAVAILABLE);
//! a client another live replica claimed moments ago is refused rather than
//! moved (the flap bound); pause, resume and config of a resource-managed
//! client can only change through the resource (FAILED_PRECONDITION naming
//! it).

use super::membership::Membership;
use crate::commands::CommandKind;
use crate::crd::{CryptoClient, Holder};
use crate::proto::ClientRegistration;
use crate::streaming::ClientIdentity;
use crate::streaming::ClientPolicy;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};
use tonic::Status;

/// Where a client's resource is.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The client id the resource names.
    pub client_id: String,
    /// `metadata.uid`, for the reference Kubernetes Events name.
    pub uid: Option<String>,
    /// The Secret (name, key) holding the client's token, if any.
    pub token_secret: Option<(String, String)>,
    /// `status.holder`: the replica holding the client's session.
    pub holder: Option<Holder>,
    /// Whether the resource has a status at all (never-connected ones get
    /// `Pending` from the janitor).
    pub has_status: bool,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// `status.observedGeneration`.
    pub observed_generation: Option<i64>,
}

impl ResourceRef {
    /// The reference a Kubernetes Event names (built when one is sent,
    /// not kept: it repeats the kind and apiVersion per resource).
    pub fn object_ref(&self) -> ObjectReference {
        ObjectReference {
            api_version: Some(CryptoClient::api_version(&()).into_owned()),
            kind: Some(CryptoClient::kind(&()).into_owned()),
            name: Some(self.name.clone()),
            namespace: Some(self.namespace.clone()),
            uid: self.uid.clone(),
            ..ObjectReference::default()
        }
    }
}

#[derive(Default)]
struct Maps {
    /// Boxed: a map's empty slots cost the value's size each, and every
    /// replica indexes the whole fleet (docs/BENCHMARKS.md, "fleet-wide
    /// store").
    by_client: HashMap<String, Box<ResourceRef>>,
    by_object: HashMap<(String, String), String>,
}

/// Client id -> resource.
pub struct ResourceIndex {
    maps: RwLock<Maps>,
    admitting: AtomicBool,
    membership: Option<std::sync::Arc<Membership>>,
    changed: tokio::sync::Notify,
}

/// What changed when a resource was indexed.
#[derive(Debug, PartialEq)]
pub enum Indexed {
    /// New or unchanged mapping.
    Ok,
    /// The resource now names another client id; the old one is returned.
    ClientIdChanged(String),
    /// Another resource already claims this client id.
    Conflict(Box<ResourceRef>),
}

impl ResourceIndex {
    /// An empty index; `admitting` says whether this replica admits
    /// clients (it leads and its caches are synced).
    pub fn new(admitting: bool) -> Self {
        Self {
            maps: RwLock::new(Maps::default()),
            admitting: AtomicBool::new(admitting),
            membership: None,
            changed: tokio::sync::Notify::new(),
        }
    }

    /// An index that also refuses clients while this replica cannot reach
    /// the API, and applies the flap bound against the live replicas of
    /// `membership`.
    pub fn with_membership(admitting: bool, membership: std::sync::Arc<Membership>) -> Self {
        Self {
            membership: Some(membership),
            ..Self::new(admitting)
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Maps> {
        self.maps
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Maps> {
        self.maps
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets whether this replica admits clients: only while it leads and
    /// its caches are synced (before that every client would look unknown).
    pub fn set_admitting(&self, admitting: bool) {
        self.admitting.store(admitting, Ordering::SeqCst);
    }

    /// Resolves when a resource without a holder (or without a status) was
    /// indexed since the last call: the janitor's wake-up.
    pub(crate) async fn changed(&self) {
        self.changed.notified().await;
    }

    /// The resource of `client_id`.
    pub fn lookup(&self, client_id: &str) -> Option<ResourceRef> {
        self.read().by_client.get(client_id).map(|r| (**r).clone())
    }

    /// The client id indexed for a resource.
    pub fn client_of(&self, namespace: &str, name: &str) -> Option<String> {
        self.read()
            .by_object
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Indexes (or re-indexes) a resource.
    pub fn upsert(&self, obj: &CryptoClient) -> Indexed {
        let (Some(ns), Some(name)) = (obj.metadata.namespace.clone(), obj.metadata.name.clone())
        else {
            return Indexed::Ok;
        };
        let client_id = obj.client_id().to_owned();
        let mut maps = self.write();
        if let Some(existing) = maps.by_client.get(&client_id)
            && (existing.namespace != ns || existing.name != name)
        {
            return Indexed::Conflict(existing.clone());
        }
        let key = (ns.clone(), name.clone());
        let previous = maps.by_object.insert(key, client_id.clone());
        let mut result = Indexed::Ok;
        if let Some(prev) = previous
            && prev != client_id
        {
            maps.by_client.remove(&prev);
            result = Indexed::ClientIdChanged(prev);
        }
        maps.by_client.insert(
            client_id.clone(),
            Box::new(ResourceRef {
                namespace: ns,
                name,
                client_id,
                uid: obj.metadata.uid.clone(),
                token_secret: obj
                    .spec
                    .auth
                    .as_ref()
                    .and_then(|a| a.token_secret_ref.as_ref())
                    .map(|r| (r.name.clone(), r.key.clone())),
                holder: obj.status.as_ref().and_then(|s| s.holder.clone()),
                has_status: obj.status.is_some(),
                generation: obj.metadata.generation,
                observed_generation: obj.status.as_ref().and_then(|s| s.observed_generation),
            }),
        );
        drop(maps);
        if obj.status.as_ref().is_none_or(|s| s.holder.is_none()) {
            self.changed.notify_one();
        }
        result
    }

    /// Forgets a resource; returns what it mapped.
    pub fn remove(&self, namespace: &str, name: &str) -> Option<ResourceRef> {
        let mut maps = self.write();
        let client_id = maps
            .by_object
            .remove(&(namespace.to_owned(), name.to_owned()))?;
        maps.by_client.remove(&client_id).map(|r| *r)
    }

    /// Every indexed resource in `namespace` (all when `None`).
    pub fn in_namespace(&self, namespace: Option<&str>) -> Vec<ResourceRef> {
        self.read()
            .by_client
            .values()
            .filter(|r| namespace.is_none_or(|ns| r.namespace == ns))
            .map(|r| (**r).clone())
            .collect()
    }
}

impl ClientPolicy for ResourceIndex {
    fn admit(&self, client_id: &str, _: &ClientRegistration) -> Result<ClientIdentity, Status> {
        if !self.admitting.load(Ordering::SeqCst) {
            return Err(Status::unavailable(
                "this replica is still syncing; connect through the Service and retry",
            ));
        }
        if let Some(m) = &self.membership
            && !m.api_ok()
        {
            return Err(Status::unavailable(
                "this replica cannot reach the Kubernetes API; connect through the Service and retry",
            ));
        }
        let Some(r) = self.lookup(client_id) else {
            return Err(Status::permission_denied(format!(
                "no CryptoClient resource has client id {client_id:?}"
            )));
        };
        if let (Some(m), Some(h)) = (&self.membership, &r.holder)
            && let Some(wait) = flap_wait(m, h)
        {
            return Err(crate::proto::retry::with_retry_hint(
                Status::unavailable(format!(
                    "client {client_id} moved to replica {} {}s ago; retry in {}s",
                    h.replica,
                    m.config().min_hold.saturating_sub(wait).as_secs(),
                    wait.as_secs().max(1)
                )),
                wait,
            ));
        }
        Ok(ClientIdentity {
            resource: Some((r.namespace, r.name)),
        })
    }

    fn allow_command(&self, client_id: &str, kind: CommandKind) -> Result<(), Status> {
        let managed = matches!(
            kind,
            CommandKind::Pause | CommandKind::Resume | CommandKind::UpdateConfig
        );
        match self.lookup(client_id) {
            Some(r) if managed => Err(Status::failed_precondition(format!(
                "client {client_id} is managed by CryptoClient {}/{}: change spec.{} on the resource instead",
                r.namespace,
                r.name,
                if kind == CommandKind::UpdateConfig {
                    "config"
                } else {
                    "paused"
                }
            ))),
            _ => Ok(()),
        }
    }
}

/// How long a client claimed by another live replica must wait before it
/// may move here, or `None` when it may now.
fn flap_wait(m: &Membership, h: &Holder) -> Option<std::time::Duration> {
    if h.replica == m.me() || !m.is_live(&h.replica) {
        return None;
    }
    let since = std::time::SystemTime::from(h.since.0);
    let held_for = since.elapsed().unwrap_or_default();
    m.config()
        .min_hold
        .checked_sub(held_for)
        .filter(|w| !w.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::CryptoClientSpec;

    fn cc(ns: &str, name: &str, id: Option<&str>) -> CryptoClient {
        let mut c = CryptoClient::new(
            name,
            CryptoClientSpec {
                client_id: id.map(str::to_owned),
                ..Default::default()
            },
        );
        c.metadata.namespace = Some(ns.into());
        c
    }

    #[test]
    fn admits_only_indexed_clients_and_only_as_leader() {
        let idx = ResourceIndex::new(true);
        assert_eq!(idx.upsert(&cc("prod", "eth", Some("eth-1"))), Indexed::Ok);
        let reg = ClientRegistration::default();
        let id = idx.admit("eth-1", &reg).unwrap();
        assert_eq!(id.resource, Some(("prod".into(), "eth".into())));
        assert_eq!(
            idx.admit("btc-1", &reg).unwrap_err().code(),
            tonic::Code::PermissionDenied
        );
        idx.set_admitting(false);
        assert_eq!(
            idx.admit("eth-1", &reg).unwrap_err().code(),
            tonic::Code::Unavailable
        );
    }

    #[test]
    fn a_client_claimed_moments_ago_by_a_live_peer_waits_before_it_may_move() {
        use super::super::membership::{Membership, ReplicaConfig};
        use crate::crd::CryptoClientStatus;
        let m = std::sync::Arc::new(Membership::new(ReplicaConfig {
            id: "b".into(),
            min_hold: std::time::Duration::from_secs(60),
            ..ReplicaConfig::default()
        }));
        m.mark_renewed();
        let idx = ResourceIndex::with_membership(true, m.clone());
        let mut c = cc("prod", "eth", None);
        let now = std::time::SystemTime::now();
        c.status = Some(CryptoClientStatus {
            holder: Some(Holder {
                replica: "a".into(),
                session_id: "s".into(),
                since: super::super::status::time_precise(now),
            }),
            ..Default::default()
        });
        idx.upsert(&c);
        let reg = ClientRegistration::default();
        // "a" is not a live peer: the client may move at once.
        assert!(idx.admit("eth", &reg).is_ok());
        m.observe(&k8s_openapi::api::coordination::v1::Lease {
            metadata: Default::default(),
            spec: Some(k8s_openapi::api::coordination::v1::LeaseSpec {
                holder_identity: Some("a".into()),
                lease_duration_seconds: Some(15),
                renew_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
                    k8s_openapi::jiff::Timestamp::now(),
                )),
                ..Default::default()
            }),
        });
        let e = idx.admit("eth", &reg).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unavailable);
        assert!(
            e.message().contains("moved to replica a") && e.message().contains("retry"),
            "{}",
            e.message()
        );
        // Claimed long enough ago: it may move.
        c.status.as_mut().unwrap().holder.as_mut().unwrap().since =
            super::super::status::time_precise(now - std::time::Duration::from_secs(120));
        idx.upsert(&c);
        assert!(idx.admit("eth", &reg).is_ok());
    }

    #[test]
    fn refuses_managed_commands_naming_the_resource() {
        let idx = ResourceIndex::new(true);
        idx.upsert(&cc("prod", "eth", None));
        let err = idx.allow_command("eth", CommandKind::Pause).unwrap_err();
        assert_eq!(err.code(), tonic::Code::FailedPrecondition);
        assert!(err.message().contains("prod/eth"));
        assert!(idx.allow_command("eth", CommandKind::Ping).is_ok());
        assert!(idx.allow_command("eth", CommandKind::SyncWallets).is_ok());
        assert!(idx.allow_command("other", CommandKind::Pause).is_ok());
    }

    #[test]
    fn tracks_client_id_changes_conflicts_and_removal() {
        let idx = ResourceIndex::new(true);
        idx.upsert(&cc("a", "x", Some("one")));
        assert_eq!(
            idx.upsert(&cc("a", "x", Some("two"))),
            Indexed::ClientIdChanged("one".into())
        );
        assert!(idx.lookup("one").is_none());
        assert!(
            matches!(idx.upsert(&cc("b", "y", Some("two"))), Indexed::Conflict(r) if r.name == "x")
        );
        assert_eq!(
            idx.remove("a", "x").map(|r| r.client_id),
            Some("two".into())
        );
        assert!(idx.lookup("two").is_none());
    }
}
