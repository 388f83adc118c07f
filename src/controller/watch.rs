//! The watch over `CryptoClient` resources, made lenient with kube's
//! `DeserializeGuard`: an object that does not deserialize is logged,
//! counted and skipped instead of failing the whole list and stopping the
//! watch. The stream also keeps the client index current and acts on
//! deletions (the client's session ends, its series go). Watch restarts
//! (410 Gone) and API errors are retried by kube's watcher with backoff.

use super::context::Ctx;
use super::index::Indexed;
use crate::crd::{CryptoClient, CryptoClientSpec};
use futures::{Stream, StreamExt};
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::core::ObjectMeta;
use kube::runtime::{PredicateConfig, WatchStreamExt, predicates, watcher};
use std::collections::HashSet;
use std::sync::Arc;
use tracing::{info, warn};

/// A watched object: a `CryptoClient`, or one that does not read as one.
pub(crate) type Guarded = DeserializeGuard<CryptoClient>;

fn meta(obj: &Guarded) -> &ObjectMeta {
    match &obj.0 {
        Ok(o) => &o.metadata,
        Err(invalid) => &invalid.metadata,
    }
}

fn key(obj: &Guarded) -> (String, String) {
    let m = meta(obj);
    (
        m.namespace.clone().unwrap_or_default(),
        m.name.clone().unwrap_or_default(),
    )
}

/// A resource gone from the cluster: end its client's session and forget it.
pub(crate) fn forget(ctx: &Ctx, namespace: &str, name: &str) {
    if let Some(r) = ctx.index.remove(namespace, name) {
        info!(client_id = %r.client_id, %namespace, %name, "resource deleted; ending its client's session");
        ctx.handle
            .kick(&r.client_id, "CryptoClient resource deleted");
        ctx.handle.forget_client(namespace, name, &r.client_id);
    }
    ctx.runtimes
        .remove(&(namespace.to_owned(), name.to_owned()));
}

fn index(ctx: &Ctx, obj: &CryptoClient) {
    // Another replica claimed this client for a newer session: ours ends
    // (status-only changes wake no reconcile, so the watch does it).
    if let Some(h) = obj.status.as_ref().and_then(|s| s.holder.as_ref())
        && h.replica != ctx.membership.me()
        && let Some(local) = ctx.handle.session(obj.client_id())
        && super::holder::newer_than(h, ctx.membership.me(), local.connected_at)
    {
        info!(client_id = %obj.client_id(), by = %h.replica, "claimed by a newer session on another replica; ending ours");
        ctx.handle.supersede(obj.client_id(), &h.replica);
    }
    match ctx.index.upsert(obj) {
        Indexed::Ok => {}
        Indexed::ClientIdChanged(old) => {
            let (ns, name) = (
                obj.metadata.namespace.clone().unwrap_or_default(),
                obj.metadata.name.clone().unwrap_or_default(),
            );
            info!(old_client_id = %old, client_id = %obj.client_id(), "spec.clientId changed; ending the old client's session");
            ctx.handle
                .kick(&old, "CryptoClient now names another client id");
            ctx.handle.forget_client(&ns, &name, &old);
        }
        Indexed::Conflict(other) => warn!(
            client_id = %obj.client_id(),
            namespace = obj.metadata.namespace.as_deref().unwrap_or(""),
            name = obj.metadata.name.as_deref().unwrap_or(""),
            claimed_by = %format!("{}/{}", other.namespace, other.name),
            "client id already claimed by another CryptoClient; ignoring this one"
        ),
    }
}

/// How the watches retry after an error: full jitter over 0.5 s · 2^n, at
/// most 5 s, back to the start after an event. kube's default climbs to
/// 30 s, so a replica could sit up to half a minute on a stale cache after
/// the API returns from an outage; a few replicas retrying every few
/// seconds cost the API server nothing.
pub(crate) struct WatchBackoff(crate::backoff::Backoff);

impl Default for WatchBackoff {
    fn default() -> Self {
        Self(crate::backoff::Backoff::new(
            std::time::Duration::from_millis(500),
            std::time::Duration::from_secs(5),
        ))
    }
}

impl Iterator for WatchBackoff {
    type Item = std::time::Duration;

    fn next(&mut self) -> Option<Self::Item> {
        Some(self.0.next_delay())
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.0.reset();
    }
}

/// The typed, lenient event stream for `api`.
pub(crate) fn events(
    api: Api<Guarded>,
    ctx: Arc<Ctx>,
    namespace: Option<String>,
) -> impl Stream<Item = Result<watcher::Event<CryptoClient>, watcher::Error>> + Send + 'static {
    let mut relisted: Option<HashSet<(String, String)>> = None;
    watcher(api, watcher::Config::default())
        .backoff(WatchBackoff::default())
        .filter_map(move |ev| {
            let out = match ev {
                Err(e) => {
                    warn!(error = %e, "watch error; retrying with backoff");
                    Some(Err(e))
                }
                Ok(watcher::Event::Init) => {
                    relisted = Some(HashSet::new());
                    Some(Ok(watcher::Event::Init))
                }
                Ok(watcher::Event::InitDone) => {
                    if let Some(seen) = relisted.take() {
                        for r in ctx.index.in_namespace(namespace.as_deref()) {
                            if !seen.contains(&(r.namespace.clone(), r.name.clone())) {
                                forget(&ctx, &r.namespace, &r.name);
                            }
                        }
                    }
                    Some(Ok(watcher::Event::InitDone))
                }
                Ok(watcher::Event::InitApply(obj)) => {
                    if let Some(seen) = relisted.as_mut() {
                        seen.insert(key(&obj));
                    }
                    typed(&ctx, &obj).map(|o| Ok(watcher::Event::InitApply(o)))
                }
                Ok(watcher::Event::Apply(obj)) => {
                    typed(&ctx, &obj).map(|o| Ok(watcher::Event::Apply(o)))
                }
                Ok(watcher::Event::Delete(obj)) => {
                    let (ns, name) = key(&obj);
                    forget(&ctx, &ns, &name);
                    let mut gone = CryptoClient::new(&name, CryptoClientSpec::default());
                    gone.metadata = meta(&obj).clone();
                    Some(Ok(watcher::Event::Delete(gone)))
                }
            };
            futures::future::ready(out)
        })
}

fn typed(ctx: &Ctx, obj: &Guarded) -> Option<CryptoClient> {
    match &obj.0 {
        Ok(o) => {
            index(ctx, o);
            Some(super::slim::stored(&ctx.handle, o))
        }
        Err(invalid) => {
            let (ns, name) = key(obj);
            warn!(namespace = %ns, %name, error = %invalid.error, "malformed CryptoClient skipped");
            ctx.metrics.invalid_resource();
            None
        }
    }
}

/// The objects whose reconcile a watch event asks for: resources seen for
/// the first time (per uid) and spec changes (a new `metadata.generation`).
/// Status-only changes — above all the operator's own status writes — do
/// not wake the controller: otherwise every status write would cost a
/// second reconcile, doubling the reconcile load of the heartbeat refresh
/// (N / `--status-heartbeat-interval` writes per second). Everything else
/// that needs a reconcile arrives as a trigger (connects, acks) or a
/// requeue.
pub(crate) fn wake_ups<S>(
    applied: S,
) -> impl Stream<Item = Result<CryptoClient, watcher::Error>> + Send + 'static
where
    S: Stream<Item = Result<CryptoClient, watcher::Error>> + Send + 'static,
{
    applied.predicate_filter(predicates::generation, PredicateConfig::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::CryptoClientStatus;

    fn obj(uid: &str, generation: i64, rv: &str, phase: Option<crate::crd::Phase>) -> CryptoClient {
        let mut o = CryptoClient::new("c-1", CryptoClientSpec::default());
        o.metadata.namespace = Some("default".into());
        o.metadata.uid = Some(uid.into());
        o.metadata.generation = Some(generation);
        o.metadata.resource_version = Some(rv.into());
        o.status = phase.map(|p| CryptoClientStatus {
            phase: Some(p),
            ..Default::default()
        });
        o
    }

    #[tokio::test]
    async fn status_only_changes_do_not_wake_the_controller() {
        use crate::crd::Phase;
        let events = vec![
            obj("u-1", 1, "10", None),                   // first seen: wakes
            obj("u-1", 1, "11", Some(Phase::Pending)),   // our status write
            obj("u-1", 1, "12", Some(Phase::Connected)), // our status write
            obj("u-1", 2, "13", Some(Phase::Connected)), // spec change: wakes
            obj("u-1", 2, "14", Some(Phase::Paused)),    // our status write
            obj("u-2", 1, "15", None),                   // deleted and re-created: wakes
        ];
        let woken: Vec<String> = wake_ups(futures::stream::iter(events.into_iter().map(Ok)))
            .map(|o| {
                o.expect("no error")
                    .metadata
                    .resource_version
                    .unwrap_or_default()
            })
            .collect()
            .await;
        assert_eq!(woken, ["10", "13", "15"]);
    }
}
