//! One live session as the rest of the process sees it: identity, the
//! command queue's sending side, the pending-ack table, liveness, and the
//! handlers' per-client state. The session's own task drives it
//! (`session.rs`); callers reach it through the registry.

use super::handlers::ClientState;
use super::metrics::CoreMetrics;
use super::pending::{AckOutcome, PendingAcks};
use super::series::{ClientIdentity, SessionSeries};
use super::{EndReason, events::EventBus, events::EventKind};
use crate::commands::CommandKind;
use crate::proto::{ClientRegistration, ServerCommand};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

/// Why a command could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EnqueueError {
    /// The client's command queue or pending-ack table is full.
    Full,
    /// The session has ended.
    Closed,
    /// A command with this id is already pending.
    DuplicateId,
}

/// One live session.
pub struct Session {
    /// The registered client id.
    pub client_id: Arc<str>,
    /// This session's id.
    pub session_id: Arc<str>,
    /// When it registered.
    pub connected_at: SystemTime,
    /// What the client sent in `register`.
    pub registration: Arc<ClientRegistration>,
    outbound: super::outbound::CommandSender,
    pending: Mutex<PendingAcks>,
    pub(crate) timer_wake: Notify,
    /// Told to end (`end`); the session task sees it at its next turn,
    /// woken through `timer_wake`.
    ending: AtomicBool,
    end_reason: Mutex<Option<EndReason>>,
    state: Mutex<ClientState>,
    last_heartbeat_ms: AtomicU64,
    ping_rtt_us: AtomicU64,
    stale: AtomicBool,
    /// Asked to move to another replica (rebalancing): the session task
    /// sends the `disconnect` and drains.
    moving: AtomicBool,
    pub(crate) series: SessionSeries,
    pub(crate) metrics: Arc<CoreMetrics>,
    pub(crate) bus: EventBus,
    max_pending: usize,
}

impl Session {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        client_id: Arc<str>,
        session_id: Arc<str>,
        registration: Arc<ClientRegistration>,
        outbound: super::outbound::CommandSender,
        state: ClientState,
        identity: &ClientIdentity,
        metrics: Arc<CoreMetrics>,
        bus: EventBus,
        max_pending: usize,
    ) -> Self {
        let series = metrics.session_series(&client_id, identity);
        Self {
            client_id,
            session_id,
            connected_at: SystemTime::now(),
            registration,
            outbound,
            pending: Mutex::new(PendingAcks::default()),
            timer_wake: Notify::new(),
            ending: AtomicBool::new(false),
            end_reason: Mutex::new(None),
            state: Mutex::new(state),
            last_heartbeat_ms: AtomicU64::new(0),
            ping_rtt_us: AtomicU64::new(0),
            stale: AtomicBool::new(false),
            moving: AtomicBool::new(false),
            series,
            metrics,
            bus,
            max_pending,
        }
    }

    /// The handlers' per-client state.
    pub(crate) fn state(&self) -> MutexGuard<'_, ClientState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn pending(&self) -> MutexGuard<'_, PendingAcks> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many wallet balances the session keeps.
    pub fn snapshot_wallet_count(&self) -> usize {
        self.state().wallets.len()
    }

    /// A copy of the session's counters.
    pub fn state_counters(&self) -> crate::proto::ClientCounters {
        self.state().counters
    }

    /// Commands sent and not yet acked.
    pub fn pending_count(&self) -> usize {
        self.pending().len()
    }

    /// Queues `cmd` (already stamped) and, when it expects an ack, registers
    /// it as pending with `deadline`. Never waits.
    pub(crate) fn enqueue(
        &self,
        cmd: ServerCommand,
        kind: CommandKind,
        deadline: Instant,
        waiter: Option<oneshot::Sender<AckOutcome>>,
    ) -> Result<Arc<str>, EnqueueError> {
        let id: Arc<str> = Arc::from(cmd.command_id.as_str());
        if kind.expects_ack() {
            let mut pending = self.pending();
            if pending.contains(&id) {
                return Err(EnqueueError::DuplicateId);
            }
            if pending.len() >= self.max_pending {
                return Err(EnqueueError::Full);
            }
            if pending.insert(id.clone(), kind, deadline, waiter) {
                self.timer_wake.notify_one();
            }
        }
        if let Err(e) = self.outbound.try_send(Box::new(cmd)) {
            if kind.expects_ack() {
                self.pending().take(&id);
            }
            return Err(match e {
                mpsc::error::TrySendError::Full(_) => EnqueueError::Full,
                mpsc::error::TrySendError::Closed(_) => EnqueueError::Closed,
            });
        }
        self.metrics.command_sent(kind);
        self.state().counters.commands_sent += 1;
        self.bus.publish(
            &self.client_id,
            &self.session_id,
            EventKind::CommandSent {
                command_id: id.clone(),
                kind,
            },
        );
        Ok(id)
    }

    /// Finishes a pending command: metrics, waiter, event.
    pub(crate) fn finish(
        &self,
        id: Arc<str>,
        kind: CommandKind,
        sent: Instant,
        waiter: Option<oneshot::Sender<AckOutcome>>,
        outcome: AckOutcome,
    ) {
        self.metrics
            .command_finished(kind, &outcome, sent.elapsed());
        {
            let mut st = self.state();
            match &outcome {
                AckOutcome::Acked(a) if a.success => st.counters.commands_succeeded += 1,
                AckOutcome::Acked(_) => st.counters.commands_failed += 1,
                AckOutcome::TimedOut => {
                    st.counters.commands_timed_out += 1;
                    self.series.timed_out();
                }
                AckOutcome::SessionEnded(_) => {}
            }
        }
        if let Some(w) = waiter {
            let _ = w.send(outcome.clone());
        }
        self.bus.publish(
            &self.client_id,
            &self.session_id,
            EventKind::CommandCompleted {
                command_id: id,
                kind,
                outcome,
            },
        );
    }

    /// Forgets a pending command whose caller stopped waiting (its own
    /// deadline passed first); counted as timed out.
    pub(crate) fn abandon(&self, id: &str) {
        let taken = self.pending().take(id);
        if let Some((id, p)) = taken {
            self.finish(id, p.kind, p.sent, None, AckOutcome::TimedOut);
        }
    }

    /// Ends the session; the first reason given wins. Returns at once; the
    /// session's task does the rest.
    pub fn end(&self, reason: EndReason) {
        {
            let mut r = self
                .end_reason
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if r.is_none() {
                *r = Some(reason);
            }
        }
        self.ending.store(true, Ordering::Release);
        self.timer_wake.notify_one();
    }

    /// Whether the session has been told to end.
    pub fn is_ending(&self) -> bool {
        self.ending.load(Ordering::Acquire)
    }

    pub(crate) fn end_reason(&self) -> Option<EndReason> {
        self.end_reason
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn record_heartbeat(&self, at: SystemTime) {
        let ms = at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.last_heartbeat_ms.store(ms, Ordering::Relaxed);
        self.series.heartbeat(at);
    }

    /// When the last heartbeat arrived.
    pub fn last_heartbeat(&self) -> Option<SystemTime> {
        match self.last_heartbeat_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(UNIX_EPOCH + Duration::from_millis(ms)),
        }
    }

    pub(crate) fn record_ping_rtt(&self, rtt: Duration) {
        self.ping_rtt_us
            .store(rtt.as_micros().max(1) as u64, Ordering::Relaxed);
        self.metrics.ping_rtt(rtt);
    }

    /// Round-trip time of the latest acked ping.
    pub fn ping_rtt(&self) -> Option<Duration> {
        match self.ping_rtt_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    pub(crate) fn set_stale(&self, stale: bool) -> bool {
        self.stale.swap(stale, Ordering::Relaxed) != stale
    }

    /// Asks the session to move to another replica; `false` if it was
    /// asked already or is ending.
    pub(crate) fn ask_to_move(&self) -> bool {
        if self.is_ending() || self.moving.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.timer_wake.notify_one();
        true
    }

    /// Whether the session was asked to move.
    pub(crate) fn is_moving(&self) -> bool {
        self.moving.load(Ordering::Acquire)
    }

    /// Whether the session missed heartbeats for `stale_after`.
    pub fn is_stale(&self) -> bool {
        self.stale.load(Ordering::Relaxed)
    }
}
