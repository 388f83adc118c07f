//! The narrow handle through which the rest of the process reaches
//! connected clients: send a command, await its ack, read snapshots,
//! subscribe to events, end sessions.

use super::core::Core;
use super::events::{EventBus, EventSubscriber};
use super::metrics::CoreMetrics;
use super::pending::AckOutcome;
use super::registry::Registry;
use super::series::ClientLabels;
use super::session::EnqueueError;
use super::{ClientAuthenticator, ClientPolicy, EndReason, Session, StreamingConfig};
use crate::commands::{self, CommandKind, InvalidCommand};
use crate::metrics::Registry as MetricsRegistry;
use crate::proto::{ClientInfo, CommandAck, ServerCommand, server_command::Command};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use tonic::Status;

/// Why a command was not delivered or not acked.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// No session for this client id.
    #[error("client {0} is not connected")]
    NotConnected(String),
    /// The client's command queue or pending-ack table is full.
    #[error("command queue of client {0} is full")]
    QueueFull(String),
    /// The command itself is unusable.
    #[error(transparent)]
    Invalid(#[from] InvalidCommand),
    /// A command with this id is already pending for the client.
    #[error("command_id {0} is already pending")]
    DuplicateId(String),
    /// No ack before the deadline.
    #[error("no ack for command {0} within {1:?}")]
    TimedOut(String, Duration),
    /// The session ended before the ack arrived.
    #[error("session ended before the ack arrived: {0}")]
    SessionEnded(EndReason),
}

impl From<CommandError> for Status {
    fn from(e: CommandError) -> Self {
        let msg = e.to_string();
        match e {
            CommandError::NotConnected(_) => Status::not_found(msg),
            CommandError::QueueFull(_) => Status::resource_exhausted(msg),
            CommandError::Invalid(_) => Status::invalid_argument(msg),
            CommandError::DuplicateId(_) => Status::already_exists(msg),
            CommandError::TimedOut(..) => Status::deadline_exceeded(msg),
            CommandError::SessionEnded(_) => Status::unavailable(msg),
        }
    }
}

/// The streaming core's handle. Cheap to clone.
#[derive(Clone)]
pub struct StreamingHandle {
    pub(crate) core: Arc<Core>,
}

/// A queued command whose ack can be awaited.
pub struct PendingCommand {
    /// The command's id.
    pub command_id: String,
    rx: oneshot::Receiver<AckOutcome>,
    session: Arc<Session>,
    deadline: Instant,
    timeout: Duration,
}

impl PendingCommand {
    /// Waits for the ack. A failed ack (`success: false`) is returned as
    /// the ack; a missing one as an error.
    pub async fn ack(self) -> Result<CommandAck, CommandError> {
        // The session task fails the command at its deadline; the slack
        // only guards against a task that is gone.
        let slack = Duration::from_millis(250);
        let out = tokio::time::timeout_at(self.deadline + slack, self.rx).await;
        match out {
            Ok(Ok(AckOutcome::Acked(ack))) => Ok(Arc::unwrap_or_clone(ack)),
            Ok(Ok(AckOutcome::SessionEnded(r))) => Err(CommandError::SessionEnded(r)),
            Ok(Ok(AckOutcome::TimedOut)) | Err(_) => {
                self.session.abandon(&self.command_id);
                Err(CommandError::TimedOut(self.command_id, self.timeout))
            }
            Ok(Err(_)) => Err(CommandError::SessionEnded(
                self.session.end_reason().unwrap_or(EndReason::Shutdown),
            )),
        }
    }
}

impl StreamingHandle {
    /// A new streaming core whose metrics go into `metrics` (per-client
    /// series labelled per `labels`), whose admissions `policy` decides and
    /// whose registrations `auth` verifies. Fails only when its metrics
    /// are registered twice (a programming error).
    pub fn new(
        config: StreamingConfig,
        metrics: &MetricsRegistry,
        labels: ClientLabels,
        policy: Arc<dyn ClientPolicy>,
        auth: Arc<dyn ClientAuthenticator>,
    ) -> prometheus::Result<Self> {
        let core_metrics = Arc::new(CoreMetrics::new(metrics, labels)?);
        let bus = EventBus::new(config.event_buffer, core_metrics.events_lost.clone());
        let admission = super::limits::Admission::new(
            config.max_registrations_per_second,
            config.registration_burst,
            super::limits::ADMISSION_WAIT,
            tokio::time::Instant::now(),
        );
        let core = Arc::new(Core {
            remote: std::sync::OnceLock::new(),
            steer_away: std::sync::atomic::AtomicBool::new(false),
            admission,
            config,
            registry: Registry::new(),
            bus,
            metrics: core_metrics,
            policy,
            auth,
            tasks: TaskTracker::new(),
        });
        metrics.register(super::gauges::CoreGauges::new(Arc::downgrade(&core))?)?;
        Ok(Self { core })
    }

    /// The core's configuration.
    pub fn config(&self) -> &StreamingConfig {
        &self.core.config
    }

    /// The current session of `client_id`.
    pub fn session(&self, client_id: &str) -> Option<Arc<Session>> {
        self.core.registry.get(client_id)
    }

    /// One page of the sessions `query` selects, sorted by client id.
    pub fn list(&self, query: &super::ClientQuery) -> super::ClientPage {
        let (sessions, more) = self
            .core
            .registry
            .page(query.after.as_deref(), query.size, |s| query.matches(s));
        let next_token = more
            .then(|| sessions.last().map(|s| query.next_token(&s.client_id)))
            .flatten();
        super::ClientPage {
            clients: sessions
                .iter()
                .map(|s| super::handlers::summary(s))
                .collect(),
            next_token,
            missing: Vec::new(),
        }
    }

    /// [`StreamingHandle::list`] over the whole fleet, for `request` (its
    /// page size, token and filters are checked here): this replica's
    /// page merged with every other live replica's for the same request,
    /// sorted by client id, one entry per client.
    /// Every replica pages strictly after the same client id, so the first
    /// `size` of the merge are the fleet's first `size`. `forwarded`: a
    /// peer asked; this replica's own page only.
    pub async fn list_anywhere(
        &self,
        request: crate::proto::ListClientsRequest,
        forwarded: bool,
    ) -> Result<super::ClientPage, Status> {
        let query = super::ClientQuery::parse(
            request.page_size,
            &request.page_token,
            request.state,
            &request.client_type,
        )?;
        let local = self.list(&query);
        let remote = match (forwarded, self.core.remote.get()) {
            (false, Some(r)) => r.clone().list(request).await,
            _ => return Ok(local),
        };
        let remote = match remote {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e.message(), "could not ask the other replicas; listing this one only");
                return Ok(local);
            }
        };
        let mut more = local.next_token.is_some();
        let mut all = local.clients;
        for (page, has_more) in remote.pages {
            more |= has_more;
            all.extend(page);
        }
        all.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        all.dedup_by(|a, b| a.client_id == b.client_id);
        more |= all.len() > query.size;
        all.truncate(query.size);
        let next_token = if more {
            all.last().map(|c| query.next_token(&c.client_id))
        } else {
            None
        };
        Ok(super::ClientPage {
            clients: all,
            next_token,
            missing: remote.missing,
        })
    }

    /// How many sessions are connected.
    pub fn connected(&self) -> usize {
        self.core.registry.len()
    }

    /// Asks the `n` longest-connected sessions (not already moving) to
    /// reconnect elsewhere: each gets a `disconnect` with a reconnect hint
    /// and drains its pending acks, then ends (`reason="moved"`). Returns
    /// how many were asked.
    pub fn move_oldest(&self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        let mut sessions: Vec<Arc<Session>> = self
            .core
            .registry
            .all()
            .into_iter()
            .filter(|s| !s.is_moving() && !s.is_ending())
            .collect();
        if sessions.len() > n {
            sessions.select_nth_unstable_by_key(n - 1, |s| s.connected_at);
            sessions.truncate(n);
        }
        sessions.iter().filter(|s| s.ask_to_move()).count()
    }

    /// While `on`, a client without a session here is refused at
    /// registration with UNAVAILABLE and a retry hint, so it lands on
    /// another replica (`crypto_registrations_steered_total`).
    pub fn steer_away(&self, on: bool) {
        self.core
            .steer_away
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Subscribes to the event bus.
    pub fn subscribe(&self) -> EventSubscriber {
        self.core.bus.subscribe(super::Interest::All)
    }

    /// Subscribes to the events of one interest only (others may still
    /// arrive when another subscriber wants everything).
    pub fn subscribe_to(&self, interest: super::Interest) -> EventSubscriber {
        self.core.bus.subscribe(interest)
    }

    /// Queues `command` for `client_id` and returns at once. `timeout`
    /// (default: the ack timeout) bounds the wait for its ack.
    pub fn send(
        &self,
        client_id: &str,
        mut command: ServerCommand,
        timeout: Option<Duration>,
    ) -> Result<PendingCommand, CommandError> {
        // The command expires when its ack deadline passes.
        let timeout = timeout.unwrap_or(self.core.config.ack_timeout);
        let kind = commands::prepare(&mut command, SystemTime::now(), timeout)?;
        let session = self
            .session(client_id)
            .ok_or_else(|| CommandError::NotConnected(client_id.to_owned()))?;
        let deadline = Instant::now() + timeout;
        let (tx, rx) = oneshot::channel();
        let command_id = command.command_id.clone();
        let waiter = kind.expects_ack().then_some(tx);
        match session.enqueue(command, kind, deadline, waiter) {
            Ok(_) => Ok(PendingCommand {
                command_id,
                rx,
                session,
                deadline,
                timeout,
            }),
            Err(EnqueueError::Full) => Err(CommandError::QueueFull(client_id.to_owned())),
            Err(EnqueueError::Closed) => Err(CommandError::NotConnected(client_id.to_owned())),
            Err(EnqueueError::DuplicateId) => Err(CommandError::DuplicateId(command_id)),
        }
    }

    /// Like [`StreamingHandle::send`], for operator calls: the policy may
    /// refuse the command first.
    pub fn send_checked(
        &self,
        client_id: &str,
        command: ServerCommand,
        timeout: Option<Duration>,
    ) -> Result<PendingCommand, Status> {
        if let Some(c) = &command.command {
            self.core
                .policy
                .allow_command(client_id, CommandKind::of(c))?;
        }
        self.send(client_id, command, timeout).map_err(Status::from)
    }

    /// Wires in how to reach clients held by other replicas (once; later
    /// calls are ignored).
    pub fn set_remote(&self, remote: Arc<dyn super::Remote>) {
        let _ = self.core.remote.set(remote);
    }

    /// Whether a [`super::Remote`] is wired in (cluster mode).
    pub fn has_remote(&self) -> bool {
        self.core.remote.get().is_some()
    }

    /// Where an operator's call for `client_id` goes: `None` here (the
    /// client is connected here, or the call was forwarded to us and must
    /// not go further, or there is no other replica), else the remote.
    fn remote_for(&self, client_id: &str, forwarded: bool) -> Option<Arc<dyn super::Remote>> {
        if forwarded || self.session(client_id).is_some() {
            return None;
        }
        self.core.remote.get().cloned()
    }

    /// An operator's command for `client_id`, wherever it is held:
    /// checked and sent here, or forwarded exactly one hop to its holder.
    /// `wait`: until its ack, up to `timeout` (default: the ack timeout).
    /// `forwarded`: the call came from another replica; a client not held
    /// here is then [`crate::proto::hops::not_holder`], never forwarded.
    pub async fn command_anywhere(
        &self,
        client_id: &str,
        command: ServerCommand,
        wait: bool,
        timeout: Option<Duration>,
        forwarded: bool,
    ) -> Result<super::Forwarded, Status> {
        if let Some(remote) = self.remote_for(client_id, forwarded) {
            if let Some(c) = &command.command {
                self.core
                    .policy
                    .allow_command(client_id, CommandKind::of(c))?;
            }
            let timeout = timeout.unwrap_or(self.core.config.ack_timeout);
            return remote
                .command(client_id.to_owned(), command, wait, timeout)
                .await;
        }
        if forwarded && self.session(client_id).is_none() {
            return Err(crate::proto::hops::not_holder(client_id, "this replica"));
        }
        let pending = self.send_checked(client_id, command, timeout)?;
        let command_id = pending.command_id.clone();
        if !wait {
            // The session task tracks the ack and its timeout.
            return Ok(super::Forwarded {
                command_id,
                ack: None,
            });
        }
        let ack = pending.ack().await?;
        Ok(super::Forwarded {
            command_id,
            ack: Some(ack),
        })
    }

    /// The snapshot of `client_id`, wherever it is held (`forwarded` as
    /// for [`StreamingHandle::command_anywhere`]).
    pub async fn snapshot_anywhere(
        &self,
        client_id: &str,
        forwarded: bool,
    ) -> Result<ClientInfo, Status> {
        if let Some(remote) = self.remote_for(client_id, forwarded) {
            return remote.snapshot(client_id.to_owned()).await;
        }
        match self.snapshot(client_id) {
            Some(info) => Ok(info),
            None if forwarded => Err(crate::proto::hops::not_holder(client_id, "this replica")),
            None => Err(Status::not_found(format!(
                "client {client_id} is not connected"
            ))),
        }
    }

    /// Sends `command` and waits for its ack up to `timeout`.
    pub async fn execute(
        &self,
        client_id: &str,
        command: ServerCommand,
        timeout: Option<Duration>,
    ) -> Result<CommandAck, CommandError> {
        self.send(client_id, command, timeout)?.ack().await
    }

    /// Sends a fresh command of the given body.
    pub fn send_new(
        &self,
        client_id: &str,
        command: Command,
    ) -> Result<PendingCommand, CommandError> {
        self.send(client_id, commands::new(command), None)
    }

    /// Ends the session of `client_id` because a newer one registered on
    /// replica `by` (ABORTED, "superseded by replica …"); `false` when there
    /// was none.
    pub fn supersede(&self, client_id: &str, by: &str) -> bool {
        match self.session(client_id) {
            Some(s) => {
                s.end(EndReason::SupersededBy(by.to_owned()));
                true
            }
            None => false,
        }
    }

    /// Ends the session of `client_id`, if any.
    pub fn kick(&self, client_id: &str, why: &str) -> bool {
        match self.session(client_id) {
            Some(s) => {
                s.end(EndReason::Kicked(why.to_owned()));
                true
            }
            None => false,
        }
    }

    /// Graceful stop: no new session is admitted; every session is sent
    /// `disconnect` and its stream drained and closed, at a random moment
    /// within the first half of `grace` (at most 1 ms per session, so a
    /// few sessions go at once and 10,000 over ten seconds: their clients
    /// do not reconnect in one wave); waits up to `grace` for the session
    /// tasks.
    pub async fn shutdown(&self, grace: Duration) {
        self.core.tasks.close();
        let deadline = Instant::now() + grace;
        for (at, s) in spread(self.core.registry.all(), grace / 2) {
            tokio::time::sleep_until(at).await;
            let mut cmd =
                commands::new(commands::disconnect("server shutting down", Duration::ZERO));
            commands::stamp(&mut cmd, SystemTime::now(), grace);
            let _ = s.enqueue(cmd, CommandKind::Disconnect, Instant::now(), None);
            s.end(EndReason::Shutdown);
        }
        if tokio::time::timeout_at(deadline, self.core.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                left = self.core.tasks.len(),
                "sessions still open after the grace period"
            );
        }
    }

    /// Ends every session (UNAVAILABLE, `why`), spread over at most `over`
    /// (1 ms per session), in a task of the core: their clients reconnect
    /// elsewhere without arriving in one wave.
    pub fn shed_all(&self, why: &str, over: Duration) {
        let sessions = spread(self.core.registry.all(), over);
        let why = why.to_owned();
        self.core.tasks.spawn(async move {
            for (at, s) in sessions {
                tokio::time::sleep_until(at).await;
                s.end(EndReason::Kicked(why.clone()));
            }
        });
    }

    /// Cluster mode: marks a resource's client as not connected (its
    /// `crypto_client_up` series at 0, created if needed).
    pub fn client_down(&self, namespace: &str, name: &str, client_id: &str) {
        self.core.metrics.client_down(namespace, name, client_id);
    }

    /// Cluster mode: removes every per-client series of a resource that
    /// is gone.
    pub fn forget_client(&self, namespace: &str, name: &str, client_id: &str) {
        self.core.metrics.forget_client(namespace, name, client_id);
    }

    /// The full snapshot of `client_id`'s session (`GetClient`).
    pub fn snapshot(&self, client_id: &str) -> Option<ClientInfo> {
        self.session(client_id)
            .map(|s| super::handlers::snapshot(&s))
    }
}

/// `sessions` with a moment each, uniform over `min(over, 1 ms × count)`
/// from now, in time order.
fn spread(sessions: Vec<Arc<Session>>, over: Duration) -> Vec<(Instant, Arc<Session>)> {
    let per = Duration::from_millis(1);
    let span = over.min(per.saturating_mul(u32::try_from(sessions.len()).unwrap_or(u32::MAX)));
    let now = Instant::now();
    let mut out: Vec<(Instant, Arc<Session>)> = sessions
        .into_iter()
        .map(|s| (now + span.mul_f64(fastrand::f64()), s))
        .collect();
    out.sort_by_key(|(at, _)| *at);
    out
}
