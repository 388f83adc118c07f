//! The janitor: the one replica holding the `<prefix>-janitor` Lease looks
//! after the resources nobody holds. A resource whose holder's Lease
//! expired is marked Disconnected (its claim cleared) once the holder has
//! been gone for `holder_grace`; a resource never written gets Pending.
//! Both are fenced writes (on the dead holder, or on the resourceVersion)
//! within the write budget, and at most `MAX_MARKS` per sweep. The janitor
//! also exports `crypto_client_up 0` for every resource without a live
//! holder, so alerts see clients nobody holds. Losing the role ends no
//! session: the replica stops sweeping, and withdraws those series once
//! another replica has the role (while the API is out, nobody can take it,
//! so it keeps them).

use super::context::Ctx;
use super::fence::{self, Fence, Written};
use super::index::ResourceRef;
use super::runtime::ClientRuntime;
use super::status::{Observed, compute_status};
use crate::commands::config_hash;
use crate::crd::{CryptoClient, Holder};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Most marks one sweep writes (the rest wait for the next sweep).
const MAX_MARKS: usize = 100;

type ResourceKey = (String, String, String);

/// Runs until `stop`; sweeps while `elected` says this replica is the
/// janitor.
pub(crate) async fn run(
    ctx: Arc<Ctx>,
    mut elected: watch::Receiver<bool>,
    stop: CancellationToken,
) {
    let every = ctx.membership.config().renew_every();
    // The `up 0` series this replica exports. Kept while the role is lost
    // to an API outage (nobody can be the janitor then, and alerts must not
    // go blind); withdrawn once the API is reachable and another replica
    // took the role.
    let mut exported: HashSet<ResourceKey> = HashSet::new();
    loop {
        while !*elected.borrow_and_update() {
            if !exported.is_empty() && ctx.membership.api_ok() {
                for (ns, name, client_id) in exported.drain() {
                    ctx.handle.forget_client(&ns, &name, &client_id);
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                changed = elected.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(every), if !exported.is_empty() => {}
            }
        }
        info!(replica = ctx.membership.me(), "this replica is the janitor");
        ctx.metrics.set_janitor(true);
        let mut gone_since: HashMap<(String, String), Instant> = HashMap::new();
        loop {
            sweep(&ctx, &mut gone_since, &mut exported).await;
            tokio::select! {
                _ = stop.cancelled() => break,
                changed = elected.changed() => if changed.is_err() || !*elected.borrow() { break },
                () = ctx.index.changed() => {}
                () = tokio::time::sleep(every) => {}
            }
        }
        ctx.metrics.set_janitor(false);
        if stop.is_cancelled() {
            return;
        }
        info!(replica = ctx.membership.me(), "no longer the janitor");
    }
}

/// One pass over the index.
async fn sweep(
    ctx: &Ctx,
    gone_since: &mut HashMap<(String, String), Instant>,
    exported: &mut HashSet<ResourceKey>,
) {
    let now = Instant::now();
    let grace = ctx.membership.config().holder_grace;
    let mut marks = 0;
    let mut still_gone = HashSet::new();
    // Replicas whose Lease this sweep read fresh: gone, or alive after all.
    let mut confirmed: HashMap<String, bool> = HashMap::new();
    for r in ctx.index.in_namespace(None) {
        let key = (r.namespace.clone(), r.name.clone(), r.client_id.clone());
        // A session here (its claim maybe not written yet) is held here.
        let here = ctx.handle.session(&r.client_id).is_some();
        let live_holder = r
            .holder
            .as_ref()
            .filter(|h| ctx.membership.is_live(&h.replica));
        if here || live_holder.is_some() {
            // Its holder exports its series; ours (up 0) go, unless the
            // holder is this replica (then the series is the holder's).
            let elsewhere = !here && live_holder.is_some_and(|h| h.replica != ctx.membership.me());
            if exported.remove(&key) && elsewhere {
                ctx.handle.forget_client(&key.0, &key.1, &key.2);
            }
            continue;
        }
        ctx.handle.client_down(&key.0, &key.1, &key.2);
        exported.insert(key);
        if marks >= MAX_MARKS {
            continue;
        }
        let due = match &r.holder {
            Some(h) => {
                let id = (h.replica.clone(), h.session_id.clone());
                let since = *gone_since.entry(id.clone()).or_insert(now);
                still_gone.insert(id);
                now.duration_since(since) >= grace
            }
            // Never written, or the spec changed since: Pending (or
            // Disconnected) for the current generation.
            None => !r.has_status || r.observed_generation != r.generation,
        };
        if due && let Some(h) = &r.holder {
            let gone = match confirmed.get(&h.replica) {
                Some(g) => *g,
                None => {
                    let g = holder_gone(ctx, &h.replica).await;
                    confirmed.insert(h.replica.clone(), g);
                    g
                }
            };
            if !gone {
                continue;
            }
        }
        if due {
            marks += 1;
            match tokio::time::timeout(ctx.api_timeout, mark(ctx, &r)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    warn!(namespace = %r.namespace, name = %r.name, error = %e, "janitor mark failed; retrying at the next sweep");
                }
                Err(_) => {
                    warn!(namespace = %r.namespace, name = %r.name, timeout = ?ctx.api_timeout, "janitor mark timed out; retrying at the next sweep");
                }
            }
        }
    }
    gone_since.retain(|id, _| still_gone.contains(id));
}

/// Whether replica `id` is gone, judged on a fresh read of its Lease (the
/// watch of the peers' Leases can lag, e.g. backing off after an API
/// outage, and must not make a live holder look dead): gone when its Lease
/// is deleted, or when no renewal newer than the ones seen arrived within
/// its duration. An unanswered read says "not known gone".
async fn holder_gone(ctx: &Ctx, id: &str) -> bool {
    let cfg = ctx.membership.config();
    let api: Api<Lease> = Api::namespaced(ctx.client.clone(), &cfg.lease_namespace);
    match tokio::time::timeout(ctx.api_timeout, api.get_opt(&cfg.lease_name_of(id))).await {
        Ok(Ok(None)) => true,
        Ok(Ok(Some(lease))) => {
            ctx.membership.observe(&lease);
            !ctx.membership.is_live(id)
        }
        Ok(Err(e)) => {
            debug!(replica = id, error = %e, "could not read the holder's Lease");
            false
        }
        Err(_) => false,
    }
}

/// Marks `r`: Disconnected (its dead holder's claim cleared), or Pending
/// (never written).
async fn mark(ctx: &Ctx, r: &ResourceRef) -> Result<(), super::Error> {
    let api: Api<CryptoClient> = Api::namespaced(ctx.client.clone(), &r.namespace);
    let Some(obj) = api.get_opt(&r.name).await? else {
        return Ok(());
    };
    let recorded: Option<Holder> = obj.status.as_ref().and_then(|s| s.holder.clone());
    if recorded
        .as_ref()
        .is_some_and(|h| ctx.membership.is_live(&h.replica))
    {
        return Ok(());
    }
    // The fresh read may show the mark is no longer due (the index lags
    // behind the API): already marked for this generation, or claimed
    // since by a session other than the one judged gone.
    let marked = obj
        .status
        .as_ref()
        .is_some_and(|s| s.observed_generation == obj.metadata.generation);
    let same_claim = match (&recorded, &r.holder) {
        (Some(h), Some(judged)) => h.replica == judged.replica && h.session_id == judged.session_id,
        (None, _) => !marked,
        (Some(_), None) => false,
    };
    if !same_claim {
        return Ok(());
    }
    let hash = config_hash(&obj.desired_config());
    let runtime = ClientRuntime::default();
    let status = compute_status(
        &obj,
        &Observed {
            session: None,
            runtime: &runtime,
            desired_config_hash: &hash,
            holder: None,
        },
        SystemTime::now(),
    );
    let rv = obj.metadata.resource_version.clone().unwrap_or_default();
    let fence = match &recorded {
        Some(h) => Fence::Holder(h),
        None => Fence::Version(&rv),
    };
    ctx.budget.transition().await;
    match fence::write(&api, &r.name, &status, fence).await? {
        Written::Accepted => {
            ctx.metrics.janitor_mark();
            match &recorded {
                Some(h) => {
                    info!(namespace = %r.namespace, name = %r.name, holder = %h.replica, "holder gone; marked Disconnected");
                }
                None => debug!(namespace = %r.namespace, name = %r.name, "marked Pending"),
            }
        }
        Written::Fenced => ctx.metrics.fenced_write(),
    }
    Ok(())
}
