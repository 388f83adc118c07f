//! The task that drives one `ConnectClient` stream: waits for `register`,
//! makes the session current (superseding an older one), then handles
//! client messages, heartbeat staleness, server pings and ack deadlines
//! until the session ends, and finally fails whatever is still pending.

use super::core::Core;
use super::handlers::{self, ClientState};
use super::limits::TokenBucket;
use super::outbound::Termination;
use super::pending::AckOutcome;
use super::{Credentials, EndReason, Session, events::EventKind};
use crate::commands::{self, CommandKind};
use crate::proto::{self, ClientMessage, client_message::Payload, server_command::Command};
use futures::FutureExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::oneshot;
use tokio::time::{Instant, timeout};
use tonic::{Code, Status, Streaming};
use tracing::{Instrument, debug, info, info_span, warn};

/// Longest a credential check may take.
const AUTH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs one stream from its first message to its end.
pub(crate) async fn run(
    core: Arc<Core>,
    mut inbound: Streaming<ClientMessage>,
    outbound: super::outbound::CommandSender,
    term: oneshot::Sender<Termination>,
    peer: String,
    creds: Credentials,
) {
    let first = timeout(core.config.register_timeout, inbound.message()).await;
    // `outbound` outlives a refusal until its status is signalled.
    let session = match accept(&core, first, &outbound, &creds).await {
        Ok(s) => {
            drop(outbound);
            s
        }
        Err(Some(status)) => {
            core.metrics.rejected(status.code());
            warn!(%peer, code = ?status.code(), message = status.message(), "stream refused");
            let _ = term.send(Termination::Abort(status));
            return;
        }
        Err(None) => return,
    };
    let span =
        info_span!("session", client_id = %session.client_id, session_id = %session.session_id);
    async move {
        info!(
            %peer,
            client_name = %session.registration.client_name,
            client_type = %session.registration.client_type,
            "session registered"
        );
        let reason = drive(&core, &session, &mut inbound).await;
        finish(&core, &session, reason, term);
    }
    .instrument(span)
    .await;
}

/// Checks the first message and registers the session. `Err(None)`: the
/// client went away without a word.
async fn accept(
    core: &Arc<Core>,
    first: Result<Result<Option<ClientMessage>, Status>, tokio::time::error::Elapsed>,
    outbound: &super::outbound::CommandSender,
    creds: &Credentials,
) -> Result<Arc<Session>, Option<Status>> {
    let msg = match first {
        Err(_) => {
            return Err(Some(Status::deadline_exceeded(format!(
                "no register message within {:?}",
                core.config.register_timeout
            ))));
        }
        Ok(Err(status)) => return Err(Some(inbound_error(status))),
        Ok(Ok(None)) => return Err(None),
        Ok(Ok(Some(m))) => m,
    };
    let mut reg = match msg.payload {
        Some(Payload::Register(reg)) => reg,
        other => {
            return Err(Some(Status::failed_precondition(format!(
                "the first message must be register, got {}",
                handlers::payload_name(other.as_ref())
            ))));
        }
    };
    if !commands::valid_id(&msg.client_id, 253) {
        return Err(Some(Status::invalid_argument(
            "client_id must be 1 to 253 characters of [A-Za-z0-9._:-]",
        )));
    }
    handlers::register::check(&mut reg).map_err(Some)?;
    if core.tasks.is_closed() {
        return Err(Some(Status::unavailable("server shutting down")));
    }
    let identity = core.policy.admit(&msg.client_id, &reg).map_err(Some)?;
    // Steered away while this replica holds more than its share, before
    // the rate (a steered client takes no registration token).
    if core.steer_away.load(std::sync::atomic::Ordering::Relaxed)
        && core.registry.get(&msg.client_id).is_none()
        && fastrand::f64() < STEER_CHANCE
    {
        core.metrics.registration_steered();
        debug!(client_id = %msg.client_id, "registration steered to another replica");
        return Err(Some(crate::proto::retry::with_retry_hint(
            Status::unavailable(
                "this replica holds more than its share of the fleet; retry (another replica)",
            ),
            STEER_RETRY,
        )));
    }
    // The registration rate, before the credential check (the costly part).
    match core.admission.reserve(Instant::now()) {
        Ok(wait) if wait.is_zero() => {}
        Ok(wait) => {
            core.metrics.registration_delayed();
            tokio::time::sleep(wait).await;
        }
        Err(retry) => {
            core.metrics.registration_throttled();
            debug!(client_id = %msg.client_id, retry_ms = retry.as_millis() as u64, "registration over the rate; refused with a retry hint");
            return Err(Some(crate::proto::retry::with_retry_hint(
                Status::resource_exhausted(format!(
                    "registrations are over this replica's rate of {}/s; retry in {} ms",
                    core.config.max_registrations_per_second,
                    retry.as_millis().max(1)
                )),
                retry,
            )));
        }
    }
    // A client certificate that names this client id (DNS SAN) is proof
    // enough; otherwise the authenticator decides.
    let cert_binds = creds
        .peer_cert
        .as_deref()
        .is_some_and(|der| crate::tls::cert_names(der, &msg.client_id));
    if !cert_binds {
        match timeout(AUTH_TIMEOUT, core.auth.verify(&msg.client_id, creds)).await {
            Ok(Ok(())) => {}
            Ok(Err(status)) => return Err(Some(status)),
            Err(_) => {
                return Err(Some(Status::unavailable(
                    "credential check timed out; retry",
                )));
            }
        }
    }
    if core.config.max_sessions > 0
        && core.registry.len() >= core.config.max_sessions
        && core.registry.get(&msg.client_id).is_none()
    {
        return Err(Some(Status::resource_exhausted(format!(
            "session limit of {} reached",
            core.config.max_sessions
        ))));
    }
    let session = Arc::new(Session::new(
        Arc::from(msg.client_id.as_str()),
        Arc::from(uuid::Uuid::new_v4().to_string().as_str()),
        Arc::new(reg),
        outbound.clone(),
        ClientState::new(core.config.max_wallets, core.config.max_text_bytes),
        &identity,
        core.metrics.clone(),
        core.bus.clone(),
        core.config.max_pending_acks,
    ));
    let mut registered = commands::new(Command::Registered(proto::RegistrationAccepted {
        session_id: session.session_id.to_string(),
        heartbeat_interval: Some(crate::time::duration(core.config.heartbeat_interval)),
        server_time: Some(crate::time::timestamp(SystemTime::now())),
    }));
    commands::stamp(&mut registered, SystemTime::now(), core.config.ack_timeout);
    // The queue is new and empty, so this cannot fail for lack of room.
    if session
        .enqueue(registered, CommandKind::Registered, Instant::now(), None)
        .is_err()
    {
        return Err(None);
    }
    if let Some(old) = core.registry.insert(session.clone()) {
        info!(client_id = %old.client_id, old_session = %old.session_id, new_session = %session.session_id, "session superseded");
        old.end(EndReason::Superseded);
    }
    session.record_heartbeat(SystemTime::now());
    core.metrics.session_started();
    core.bus.publish(
        &session.client_id,
        &session.session_id,
        EventKind::Connected(session.registration.clone()),
    );
    Ok(session)
}

/// The session loop; returns why it ended.
async fn drive(
    core: &Arc<Core>,
    session: &Arc<Session>,
    inbound: &mut Streaming<ClientMessage>,
) -> EndReason {
    let cfg = &core.config;
    let mut last_heartbeat = Instant::now();
    let ping_every = (!cfg.ping_interval.is_zero()).then_some(cfg.ping_interval);
    let mut next_ping = ping_every.map(|p| Instant::now() + p);
    let mut bucket = TokenBucket::new(
        cfg.max_messages_per_second,
        cfg.message_burst,
        Instant::now(),
    );
    let mut age_deadline = (!cfg.max_session_age.is_zero()).then(|| {
        let jitter = cfg.max_session_age.mul_f64(fastrand::f64() * 0.1);
        Instant::now() + cfg.max_session_age + jitter
    });
    let mut draining_until: Option<Instant> = None;
    let mut drained = EndReason::MaxAge;
    // Made once and re-armed, not per message: a timer entry and a notify
    // waiter per loop turn cost as much as the message itself under
    // ingest (perf, docs/BENCHMARKS.md).
    let woken = session.timer_wake.notified();
    let sleep = tokio::time::sleep_until(last_heartbeat + cfg.stale_after);
    tokio::pin!(woken, sleep);
    loop {
        if let Some(until) = draining_until
            && (session.pending_count() == 0 || Instant::now() >= until)
        {
            return drained;
        }
        // Told to end (`Session::end` wakes `woken`): a flag, not a
        // waiter polled every turn.
        if session.is_ending() {
            return session.end_reason().unwrap_or(EndReason::Shutdown);
        }
        // Woken by `Session::ask_to_move` (rebalancing).
        if session.is_moving() && draining_until.is_none() {
            age_deadline = None;
            info!("moving the session to spread the fleet over the replicas");
            drained = EndReason::Moved;
            draining_until = Some(ask_to_reconnect(
                session,
                cfg,
                "this replica holds more than its share of the fleet; reconnect",
                MOVE_RECONNECT_AFTER,
            ));
        }
        let hb_deadline = if session.is_stale() {
            last_heartbeat + cfg.dead_after
        } else {
            last_heartbeat + cfg.stale_after.min(cfg.dead_after)
        };
        let ack_deadline = session.pending().next_deadline();
        let wake = [
            Some(hb_deadline),
            ack_deadline,
            next_ping,
            age_deadline,
            draining_until,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(hb_deadline);
        if sleep.deadline() != wake {
            sleep.as_mut().reset(wake);
        }
        tokio::select! {
            biased;
            msg = inbound.message() => {
                // One clock read for the messages that are already here.
                let now = Instant::now();
                let mut inbox = Inbox {
                    session,
                    cfg,
                    bucket: &mut bucket,
                    last_heartbeat: &mut last_heartbeat,
                    now,
                };
                if let Err(reason) = inbox.take(msg) {
                    return reason;
                }
                for _ in 1..BATCH {
                    if session.is_ending() {
                        break;
                    }
                    // Polled once with a no-op waker; the next select!
                    // polls the stream with the task's own before it
                    // can sleep, so no wake-up is lost.
                    let Some(msg) = inbound.message().now_or_never() else {
                        break;
                    };
                    if let Err(reason) = inbox.take(msg) {
                        return reason;
                    }
                }
            }
            _ = &mut woken => woken.set(session.timer_wake.notified()),
            _ = &mut sleep => {
                let now = Instant::now();
                for (id, p) in session.pending().expire(now) {
                    warn!(command_id = %id, kind = %p.kind, "command ack timed out");
                    session.finish(id, p.kind, p.sent, p.waiter, AckOutcome::TimedOut);
                }
                let silent = now.saturating_duration_since(last_heartbeat);
                if silent >= cfg.dead_after {
                    warn!(silent_ms = silent.as_millis() as u64, "no heartbeat; ending session");
                    return EndReason::HeartbeatTimeout;
                }
                if silent >= cfg.stale_after && session.set_stale(true) {
                    warn!(silent_ms = silent.as_millis() as u64, "session stale");
                    session.metrics.stale_changed(true);
                    core.bus.publish(&session.client_id, &session.session_id, EventKind::Stale);
                }
                if age_deadline.is_some_and(|t| now >= t) && draining_until.is_none() {
                    age_deadline = None;
                    info!("session reached its maximum age; asking the client to reconnect");
                    draining_until = Some(ask_to_reconnect(
                        session,
                        cfg,
                        "maximum session age reached; reconnect",
                        Duration::ZERO,
                    ));
                }
                if let (Some(at), Some(every)) = (next_ping, ping_every)
                    && now >= at
                {
                    next_ping = Some(now + every);
                    send_ping(core, session);
                }
            }
        }
    }
}

/// How many messages that are already here the loop handles in one turn
/// before it looks at its timers again.
const BATCH: usize = 64;

/// Handles client messages for the session loop.
struct Inbox<'a> {
    session: &'a Session,
    cfg: &'a super::StreamingConfig,
    bucket: &'a mut TokenBucket,
    last_heartbeat: &'a mut Instant,
    /// When this batch of messages was read.
    now: Instant,
}

impl Inbox<'_> {
    /// One read from the inbound stream; `Err`: the session ends.
    fn take(&mut self, msg: Result<Option<ClientMessage>, Status>) -> Result<(), EndReason> {
        let m = match msg {
            Ok(Some(m)) => m,
            Ok(None) => return Err(EndReason::ClientClosed),
            Err(status) => {
                let status = inbound_error(status);
                return Err(match status.code() {
                    Code::ResourceExhausted | Code::Internal | Code::InvalidArgument => {
                        EndReason::ProtocolViolation(status.code(), status.message().to_owned())
                    }
                    _ => {
                        debug!(code = ?status.code(), message = status.message(), "stream error");
                        EndReason::Transport
                    }
                });
            }
        };
        if !self.bucket.take(self.now) {
            self.session.metrics.rate_limited();
            return Err(EndReason::ProtocolViolation(
                Code::ResourceExhausted,
                format!(
                    "message rate above {}/s (burst {}); session ended",
                    self.cfg.max_messages_per_second, self.cfg.message_burst
                ),
            ));
        }
        let is_heartbeat = matches!(m.payload, Some(Payload::Heartbeat(_)));
        handlers::dispatch(self.session, m)?;
        if is_heartbeat {
            *self.last_heartbeat = self.now;
        }
        Ok(())
    }
}

/// The share of new registrations a replica over its share refuses. Not
/// all: a client that can only reach this replica (pointed at the pod, not
/// the Service) gets in after a few retries instead of never.
const STEER_CHANCE: f64 = 0.75;
/// The retry hint of a registration steered to another replica.
const STEER_RETRY: Duration = Duration::from_millis(250);

/// How long a client moved for rebalancing is asked to wait before it
/// reconnects (it adds its own jitter): long enough for the replicas'
/// Leases to show the move.
pub(crate) const MOVE_RECONNECT_AFTER: Duration = Duration::from_millis(500);

/// Sends `disconnect` (`why`, reconnect after `after`) and returns until
/// when the session drains: its pending acks, at most the age grace.
fn ask_to_reconnect(
    session: &Session,
    cfg: &super::StreamingConfig,
    why: &str,
    after: Duration,
) -> Instant {
    let now = Instant::now();
    let mut cmd = commands::new(commands::disconnect(why, after));
    commands::stamp(&mut cmd, SystemTime::now(), cfg.session_age_grace);
    let _ = session.enqueue(cmd, CommandKind::Disconnect, now, None);
    now + cfg.session_age_grace
}

fn send_ping(core: &Core, session: &Session) {
    let mut cmd = commands::new(commands::ping());
    let now = SystemTime::now();
    commands::stamp(&mut cmd, now, core.config.ack_timeout);
    if let Err(e) = session.enqueue(
        cmd,
        CommandKind::Ping,
        Instant::now() + core.config.ack_timeout,
        None,
    ) {
        debug!(error = ?e, "server ping not sent");
    }
}

/// Cleans up after the loop: deregisters, fails pending acks, ends the
/// stream with the reason's status.
fn finish(
    core: &Core,
    session: &Arc<Session>,
    reason: EndReason,
    term: oneshot::Sender<Termination>,
) {
    session.end(reason.clone());
    let current = core.registry.remove(session);
    let pending = session.pending().drain();
    for (id, p) in pending {
        session.finish(
            id,
            p.kind,
            p.sent,
            p.waiter,
            AckOutcome::SessionEnded(reason.clone()),
        );
    }
    if session.is_stale() {
        session.metrics.stale_changed(false);
    }
    core.metrics.session_ended(&reason);
    if current && core.registry.get(&session.client_id).is_none() {
        session.series.ended();
    }
    let t = match reason.status() {
        Some(status) => Termination::Abort(status),
        None => Termination::Drain,
    };
    let _ = term.send(t);
    info!(reason = %reason, "session ended");
    core.bus.publish(
        &session.client_id,
        &session.session_id,
        EventKind::Disconnected(reason),
    );
}

/// Maps an error from the inbound stream to the status the client gets:
/// tonic reports an oversized message as OUT_OF_RANGE; gRPC's convention is
/// RESOURCE_EXHAUSTED.
fn inbound_error(status: Status) -> Status {
    if status.code() == Code::OutOfRange && status.message().contains("too large") {
        Status::resource_exhausted(status.message().to_owned())
    } else {
        status
    }
}
