//! One reconcile of a `CryptoClient` this replica holds (`holder.rs`):
//! send the client the difference between spec and what it acked, reset a
//! completed sync request, and write the status when (and only when) it
//! changed, fenced (`fence.rs`) and within the write budget (`budget.rs`).
//! A session that ended here gets its last write (Disconnected, claim
//! released); resources held elsewhere, or by nobody, are not touched (the
//! janitor looks after the unheld ones).

use super::budget::{WriteBudget, WriteKind};
use super::context::Ctx;
use super::decide::{Action as Cmd, Desired, decide};
use super::fence::{self, Fence, Written};
use super::holder::{Hold, hold, holder_of};
use super::runtime::{ClientRuntime, Inflight, Key, SyncTracker};
use super::status::{Observed, SessionView, compute_status, time, write_kind};
use super::{Error, acks, slim};
use crate::commands::{self, CommandKind, config_hash};
use crate::crd::{CommandState, CryptoClient, Holder, LastCommand};
use crate::streaming::Session;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use tracing::{debug, info, warn};

fn view(s: &Session) -> SessionView {
    SessionView {
        id: s.session_id.to_string(),
        connected_at: s.connected_at,
        client_name: s.registration.client_name.clone(),
        client_type: s.registration.client_type.clone(),
        version: s.registration.version.clone(),
        last_heartbeat: s.last_heartbeat(),
        stale: s.is_stale(),
    }
}

/// One reconcile.
pub(crate) async fn reconcile(obj: Arc<CryptoClient>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = tokio::time::timeout(ctx.api_timeout, reconcile_inner(&obj, &ctx))
        .await
        .unwrap_or(Err(Error::Timeout(ctx.api_timeout)));
    let took = started.elapsed();
    ctx.pacer.observe(took);
    ctx.metrics.reconciled(result.is_ok(), took);
    if let (Ok(_), Some(ns), Some(name)) = (&result, &obj.metadata.namespace, &obj.metadata.name) {
        ctx.runtimes
            .with(&(ns.clone(), name.clone()), |rt| rt.errors = 0);
    }
    result
}

async fn reconcile_inner(obj: &CryptoClient, ctx: &Arc<Ctx>) -> Result<Action, Error> {
    let (Some(ns), Some(name)) = (obj.metadata.namespace.clone(), obj.metadata.name.clone()) else {
        return Err(Error::Unnamed);
    };
    let key: Key = (ns.clone(), name.clone());
    let client_id = obj.client_id().to_owned();
    let session = match hold(&ctx.handle, &ctx.membership, obj) {
        Hold::Session(s) => s,
        Hold::Superseded(h) => {
            info!(%client_id, by = %h.replica, "a newer session holds this client on another replica; ending ours");
            ctx.handle.supersede(&client_id, &h.replica);
            return Ok(Action::await_change());
        }
        Hold::Released(h) => {
            if let Some(full) = full_object(ctx, obj).await? {
                release(ctx, &full, &key, &h).await?;
            }
            return Ok(Action::await_change());
        }
        Hold::Elsewhere => return Ok(Action::await_change()),
    };
    // Held here: the store kept only a slim copy until now (`slim.rs`).
    let fetched;
    let obj = if slim::is_slim(obj) {
        match full_object(ctx, obj).await? {
            Some(o) => {
                fetched = o;
                &fetched
            }
            None => return Ok(Action::await_change()),
        }
    } else {
        obj
    };
    let generation = obj.metadata.generation.unwrap_or(0);
    let desired_map = obj.desired_config();
    let desired = Desired {
        paused: obj.spec.paused,
        config_hash: config_hash(&desired_map),
        config: obj.spec.config.clone(),
        sync_requested: obj.spec.sync_requested,
        generation,
    };

    // A completed sync request is reset in the spec first, so nothing
    // below can take the acked request for a new one. Requests up to the
    // generation the reset produced are done; a new one needs a later
    // spec write.
    let reset = ctx.runtimes.with(&key, |rt| rt.sync.reset_pending);
    if reset {
        let done = if obj.spec.sync_requested {
            let api: Api<CryptoClient> = Api::namespaced(ctx.client.clone(), &ns);
            ctx.budget.transition().await;
            let patched = api
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"syncRequested": false}})),
                )
                .await?;
            patched.metadata.generation.unwrap_or(generation)
        } else {
            generation
        };
        ctx.runtimes.with(&key, |rt| {
            rt.sync.reset_pending = false;
            rt.sync.done_generation = Some(done);
        });
    }

    // Commands to the client this replica holds.
    let plan = ctx.runtimes.with(&key, |rt| {
        if rt.session_id.as_deref() != Some(&*session.session_id) {
            rt.new_session(&session.session_id);
        }
        decide(&desired, rt, Instant::now())
    });
    for action in plan {
        send(ctx, &key, obj, &client_id, &desired, &desired_map, action);
    }

    // Status, claiming the resource for this session if the recorded
    // holder is another (or none).
    let ours = holder_of(&ctx.membership, &session);
    let deferred = write_held(ctx, obj, &key, &session, &ours, &desired.config_hash).await?;

    let next_sync = ctx.runtimes.with(&key, |rt| rt.sync.not_before);
    let connected = ctx.handle.connected();
    let every = ctx.pacer.interval(connected);
    ctx.metrics.heartbeat_interval(every);
    let mut requeue = ctx.pacer.next_refresh(connected);
    if let Some(t) = next_sync {
        requeue =
            requeue.min(t.saturating_duration_since(Instant::now()) + Duration::from_millis(50));
    }
    if let Some(wait) = deferred {
        requeue = requeue.min(wait);
    }
    Ok(Action::requeue(requeue))
}

/// `obj` in full: itself, or read from the API when the store kept only
/// its slim copy (`None`: deleted meanwhile).
async fn full_object(ctx: &Ctx, obj: &CryptoClient) -> Result<Option<CryptoClient>, Error> {
    if !slim::is_slim(obj) {
        return Ok(Some(obj.clone()));
    }
    let (Some(ns), Some(name)) = (&obj.metadata.namespace, &obj.metadata.name) else {
        return Err(Error::Unnamed);
    };
    let api: Api<CryptoClient> = Api::namespaced(ctx.client.clone(), ns);
    Ok(api.get_opt(name).await?)
}

/// Whether `recorded` is `ours` (the same replica and session).
fn same_holder(recorded: Option<&Holder>, ours: &Holder) -> bool {
    recorded.is_some_and(|h| h.replica == ours.replica && h.session_id == ours.session_id)
}

/// Writes the status of a resource this replica holds, if it changed.
/// Fenced on the recorded holder (ours), or — a claim — on the
/// resourceVersion it was read at. When the fence fails the resource is
/// read again once: still claimable, the write is retried; claimed by a
/// newer session elsewhere, the local session ends. `Some(wait)`: a
/// transition waits for its place in the write budget; reconcile again
/// then (the status is computed afresh, so what changed meanwhile goes in
/// the same write).
async fn write_held(
    ctx: &Arc<Ctx>,
    obj: &CryptoClient,
    key: &Key,
    session: &Arc<Session>,
    ours: &Holder,
    desired_hash: &str,
) -> Result<Option<Duration>, Error> {
    let api: Api<CryptoClient> = Api::namespaced(ctx.client.clone(), &key.0);
    let mut current = obj.clone();
    for attempt in 0..2 {
        let new_status = ctx.runtimes.with(key, |rt| {
            let seen = Observed {
                session: Some(view(session)),
                runtime: rt,
                desired_config_hash: desired_hash,
                holder: Some(ours.clone()),
            };
            compute_status(&current, &seen, SystemTime::now())
        });
        let Some(kind) = write_kind(current.status.as_ref(), &new_status, ctx.status_every) else {
            return Ok(None);
        };
        let recorded = current.status.as_ref().and_then(|s| s.holder.as_ref());
        let rv = current
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default();
        let fence = if same_holder(recorded, ours) {
            Fence::Holder(ours)
        } else {
            Fence::Version(&rv)
        };
        match kind {
            WriteKind::Transition => {
                let wait = ctx
                    .runtimes
                    .with(key, |rt| slot(rt, &ctx.budget, Instant::now()));
                if let Some(wait) = wait {
                    debug!(namespace = %key.0, name = %key.1, ?wait, "status transition waits for the write budget");
                    return Ok(Some(wait));
                }
            }
            WriteKind::Refresh if !ctx.budget.try_refresh() => {
                debug!(namespace = %key.0, name = %key.1, "heartbeat refresh shed (write budget)");
                return Ok(None);
            }
            WriteKind::Refresh => {}
        }
        match fence::write(&api, &key.1, &new_status, fence).await? {
            Written::Accepted => {
                ctx.metrics.status_written();
                debug!(namespace = %key.0, name = %key.1, phase = ?new_status.phase, "status written");
                return Ok(None);
            }
            Written::Fenced => {
                ctx.metrics.fenced_write();
                debug!(namespace = %key.0, name = %key.1, attempt, "status write fenced; reading the resource again");
                let Some(fresh) = api.get_opt(&key.1).await? else {
                    return Ok(None);
                };
                match hold(&ctx.handle, &ctx.membership, &fresh) {
                    Hold::Session(s) if Arc::ptr_eq(&s, session) => current = fresh,
                    Hold::Superseded(h) => {
                        info!(client_id = %fresh.client_id(), by = %h.replica, "claimed by a newer session on another replica; ending ours");
                        ctx.handle.supersede(fresh.client_id(), &h.replica);
                        return Ok(None);
                    }
                    _ => return Ok(None),
                }
            }
        }
    }
    Err(Error::Fenced)
}

/// Whether a transition may be written now (its reserved place came, or
/// a token was there); otherwise how long until its place.
fn slot(rt: &mut ClientRuntime, budget: &WriteBudget, now: Instant) -> Option<Duration> {
    match rt.write_slot {
        Some(at) if at > now => Some(at - now),
        Some(_) => {
            rt.write_slot = None;
            None
        }
        None => {
            let wait = budget.reserve();
            if wait.is_zero() {
                None
            } else {
                rt.write_slot = Some(now + wait);
                Some(wait)
            }
        }
    }
}

/// The last write of a session that ended on this replica: Disconnected,
/// and the claim released — fenced on the claim being still ours (a client
/// that already moved keeps its new holder's status).
async fn release(
    ctx: &Arc<Ctx>,
    obj: &CryptoClient,
    key: &Key,
    recorded: &Holder,
) -> Result<(), Error> {
    let hash = config_hash(&obj.desired_config());
    let new_status = ctx.runtimes.with(key, |rt| {
        let seen = Observed {
            session: None,
            runtime: rt,
            desired_config_hash: &hash,
            holder: None,
        };
        compute_status(obj, &seen, SystemTime::now())
    });
    ctx.budget.transition().await;
    let api: Api<CryptoClient> = Api::namespaced(ctx.client.clone(), &key.0);
    match fence::write(&api, &key.1, &new_status, Fence::Holder(recorded)).await? {
        Written::Accepted => {
            ctx.metrics.status_written();
            debug!(namespace = %key.0, name = %key.1, "session ended; claim released");
        }
        Written::Fenced => ctx.metrics.fenced_write(),
    }
    ctx.runtimes.remove(key);
    Ok(())
}

fn send(
    ctx: &Arc<Ctx>,
    key: &Key,
    obj: &CryptoClient,
    client_id: &str,
    desired: &Desired,
    desired_map: &HashMap<String, String>,
    action: Cmd,
) {
    let (body, kind) = match &action {
        Cmd::Pause => (commands::pause("spec.paused is true"), CommandKind::Pause),
        Cmd::Resume => (commands::resume(), CommandKind::Resume),
        Cmd::UpdateConfig => (
            commands::update_config(desired_map.clone()),
            CommandKind::UpdateConfig,
        ),
        Cmd::SyncWallets(_) => (commands::sync_wallets(Vec::new()), CommandKind::SyncWallets),
    };
    let mut cmd = commands::new(body);
    if let Cmd::SyncWallets(generation) = action {
        cmd.command_id = ctx.runtimes.with(key, |rt| sync_id(obj, generation, rt));
    }
    let inflight = Inflight {
        command_id: cmd.command_id.clone(),
        kind,
        paused: match action {
            Cmd::Pause => Some(true),
            Cmd::Resume => Some(false),
            _ => None,
        },
        config_hash: matches!(action, Cmd::UpdateConfig).then(|| desired.config_hash.clone()),
        sync_generation: match action {
            Cmd::SyncWallets(g) => Some(g),
            _ => None,
        },
    };
    let last = LastCommand {
        id: cmd.command_id.clone(),
        type_: kind.as_str().into(),
        state: CommandState::Sent,
        sent_at: time(SystemTime::now()),
        completed_at: None,
        message: None,
    };
    match ctx.handle.send(client_id, cmd, None) {
        Ok(pending) => {
            ctx.runtimes.with(key, |rt| {
                rt.inflight.push(inflight.clone());
                rt.last_command = Some(last);
            });
            acks::track(ctx, key.clone(), client_id.to_owned(), inflight, pending);
        }
        Err(e) => {
            warn!(%client_id, kind = %kind, error = %e, "command not sent");
            ctx.runtimes.with(key, |rt| {
                rt.last_command = Some(LastCommand {
                    state: CommandState::Failed,
                    completed_at: Some(time(SystemTime::now())),
                    message: Some(e.to_string()),
                    ..last
                });
            });
        }
    }
}

/// The command id of this request's `sync_wallets`: the one already in use
/// (this process's memory, else `status.pendingSync` written by whichever
/// process sent it first), else derived from the request.
fn sync_id(obj: &CryptoClient, generation: i64, rt: &mut ClientRuntime) -> String {
    let recorded = (rt.sync.failures == 0)
        .then(|| obj.status.as_ref()?.pending_sync.as_ref())
        .flatten()
        .map(|p| p.command_id.clone());
    let id = rt.sync.command_id.clone().or(recorded).unwrap_or_else(|| {
        let uid = obj.metadata.uid.as_deref().unwrap_or_default();
        SyncTracker::derive_id(uid, generation, rt.sync.failures)
    });
    rt.sync.command_id = Some(id.clone());
    id
}

/// Per-object exponential backoff on errors: 1 s, 2 s, 4 s … capped at 5 min.
pub(crate) fn error_policy(obj: Arc<CryptoClient>, err: &Error, ctx: Arc<Ctx>) -> Action {
    let key = (
        obj.metadata.namespace.clone().unwrap_or_default(),
        obj.metadata.name.clone().unwrap_or_default(),
    );
    let errors = ctx.runtimes.with(&key, |rt| {
        rt.errors = rt.errors.saturating_add(1);
        rt.errors
    });
    let delay = super::runtime::RETRY.step(errors.saturating_sub(1));
    warn!(namespace = %key.0, name = %key.1, error = %err, retry_in_s = delay.as_secs(), "reconcile failed");
    Action::requeue(delay)
}
