//! Waiting for the acks of the commands a reconcile sent: one owned task
//! per command (bounded by the ack deadline), which records the outcome in
//! the resource's memory, publishes a Kubernetes Event on failure or on a
//! completed sync, and triggers a reconcile of the resource.

use super::context::Ctx;
use super::runtime::{Inflight, Key, SyncTracker};
use super::status::time;
use crate::commands::CommandKind;
use crate::crd::{CommandState, CryptoClient};
use crate::streaming::{CommandError, PendingCommand};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::time::Instant;
use tracing::{Instrument, info, info_span, warn};

/// Spawns the task that waits for `pending`'s ack.
pub(crate) fn track(
    ctx: &Arc<Ctx>,
    key: Key,
    client_id: String,
    inflight: Inflight,
    pending: PendingCommand,
) {
    let tasks = ctx.tasks.clone();
    let ctx = ctx.clone();
    let span = info_span!("ack", client_id = %client_id, command_id = %inflight.command_id, namespace = %key.0, name = %key.1);
    let task = async move {
        let outcome = tokio::select! {
            _ = ctx.stop.cancelled() => return,
            outcome = pending.ack() => outcome,
        };
        let (state, message) = match &outcome {
            Ok(ack) if ack.success => (
                CommandState::Acked,
                (!ack.message.is_empty()).then(|| ack.message.clone()),
            ),
            Ok(ack) => (
                CommandState::Failed,
                Some(if ack.message.is_empty() {
                    "client reported failure".into()
                } else {
                    ack.message.clone()
                }),
            ),
            Err(CommandError::TimedOut(..)) => (
                CommandState::TimedOut,
                Some("no ack before the deadline".into()),
            ),
            Err(e) => (CommandState::Failed, Some(e.to_string())),
        };
        let session_ended = matches!(outcome, Err(CommandError::SessionEnded(_)));
        let sync_done = record(&ctx, &key, &inflight, state, message.clone(), session_ended);
        if state != CommandState::Acked && !session_ended {
            warn!(kind = %inflight.kind, ?state, message = message.as_deref().unwrap_or(""), "command failed");
            ctx.publish(
                &client_id,
                Event {
                    type_: EventType::Warning,
                    reason: "CommandFailed".into(),
                    note: Some(format!(
                        "{} {}: {}",
                        inflight.kind,
                        inflight.command_id,
                        message.unwrap_or_default()
                    )),
                    action: "SendCommand".into(),
                    secondary: None,
                },
            )
            .await;
        } else if sync_done {
            info!("wallet sync completed");
            ctx.publish(
                &client_id,
                Event {
                    type_: EventType::Normal,
                    reason: "SyncCompleted".into(),
                    note: Some(format!("wallet sync {} acked", inflight.command_id)),
                    action: "SyncWallets".into(),
                    secondary: None,
                },
            )
            .await;
        }
        ctx.trigger(ObjectRef::<CryptoClient>::new(&key.1).within(&key.0))
            .await;
    };
    tasks.spawn(task.instrument(span));
}

/// Records a finished command; returns whether it completed a sync.
fn record(
    ctx: &Ctx,
    key: &Key,
    inflight: &Inflight,
    state: CommandState,
    message: Option<String>,
    session_ended: bool,
) -> bool {
    ctx.runtimes.with(key, |rt| {
        // Facts of an old session are worthless: the new session starts
        // from nothing and is sent the desired state again.
        let current = rt
            .inflight
            .iter()
            .any(|i| i.command_id == inflight.command_id);
        rt.inflight.retain(|i| i.command_id != inflight.command_id);
        if let Some(lc) = rt
            .last_command
            .as_mut()
            .filter(|lc| lc.id == inflight.command_id)
        {
            lc.state = state;
            lc.completed_at = Some(time(SystemTime::now()));
            lc.message = message.clone();
        }
        if !current {
            return false;
        }
        let acked = state == CommandState::Acked;
        match inflight.kind {
            CommandKind::Pause | CommandKind::Resume if acked => {
                rt.acked_paused = inflight.paused;
                rt.pause_refused = None;
            }
            CommandKind::Pause | CommandKind::Resume if !session_ended => {
                rt.pause_refused = inflight.paused;
            }
            CommandKind::UpdateConfig if acked => {
                rt.acked_config_hash = inflight.config_hash.clone();
                rt.config_error = None;
                rt.config_refused = None;
            }
            CommandKind::UpdateConfig if !session_ended => {
                rt.config_error = message;
                rt.config_refused = inflight.config_hash.clone();
            }
            CommandKind::SyncWallets => {
                if acked {
                    rt.sync = SyncTracker {
                        done_generation: inflight.sync_generation,
                        reset_pending: true,
                        completed_at: Some(time(SystemTime::now())),
                        ..SyncTracker::default()
                    };
                    return true;
                }
                // A disconnect or a timeout leaves the id in place: the
                // redelivery is the same request, which a client that
                // dedupes by id carries out once. A refusal makes the next
                // attempt a new command.
                if !session_ended {
                    rt.sync.attempts += 1;
                    rt.sync.not_before =
                        Some(Instant::now() + SyncTracker::backoff(rt.sync.attempts));
                    rt.sync.last_error = message;
                    if state == CommandState::Failed {
                        rt.sync.failures += 1;
                        rt.sync.command_id = None;
                    }
                }
            }
            _ => {}
        }
        false
    })
}
