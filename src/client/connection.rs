//! The client's connection loop: connect, register, then heartbeat, forward
//! the application's messages, dispatch commands to the handler task and
//! send its acks, until the stream ends; then back off and reconnect.

use super::command::{Command, CommandHandler, CommandResult};
use super::{Backoff, ClientConfig, ClientSender};
use crate::proto::crypto_streaming_service_client::CryptoStreamingServiceClient;
use crate::proto::{
    ClientMessage, CommandAck, Heartbeat, ServerCommand, client_message::Payload,
    server_command::Command as Wire,
};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior, interval_at, timeout};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::Endpoint;
use tracing::{debug, error, info, warn};

/// Where the client's connection stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionState {
    /// Not connected (yet, or again).
    Disconnected,
    /// Registered; the server's session id.
    Connected {
        /// The session id from `registered`.
        session_id: String,
    },
    /// `run` has returned.
    Stopped,
}

/// A client; `run` drives it.
pub struct Client {
    config: ClientConfig,
    outbox: mpsc::Receiver<Payload>,
    state: watch::Sender<ConnectionState>,
}

/// An ack produced by the handler task, tagged with the connection that
/// delivered its command (an ack whose command no later connection
/// redelivered is dropped: the new session never sent that command).
struct TaggedAck {
    generation: u64,
    ack: CommandAck,
}

/// Ids of recently handled commands and their acks, for redelivery.
struct Recent {
    order: VecDeque<String>,
    done: HashMap<String, CommandAck>,
    /// Commands the handler is working on, with the connection that
    /// delivered them last: a command redelivered on a new connection
    /// (the operator restarted, or the client moved) is acked there once
    /// the handler is done, and never handled twice.
    in_flight: HashMap<String, u64>,
}

const RECENT_COMMANDS: usize = 256;

impl Recent {
    /// Records a finished command; returns the connection that should get
    /// its ack.
    fn remember(&mut self, ack: &CommandAck) -> Option<u64> {
        let delivered_on = self.in_flight.remove(&ack.command_id);
        if self.order.len() == RECENT_COMMANDS
            && let Some(old) = self.order.pop_front()
        {
            self.done.remove(&old);
        }
        self.order.push_back(ack.command_id.clone());
        self.done.insert(ack.command_id.clone(), ack.clone());
        delivered_on
    }
}

enum Ended {
    Shutdown,
    Stream(String),
    /// The server refused the client (UNAUTHENTICATED, PERMISSION_DENIED):
    /// retrying soon will not change that.
    Refused(tonic::Status),
    /// The server said when to come back (`proto::retry`): the registration
    /// rate or the flap bound.
    RetryAfter(Duration, String),
}

/// How long to wait before reconnecting after `ended` (`None`: stop). A
/// refusal jumps to the maximum backoff at once and is logged as one clear
/// error (again only when the reason changes); other ends climb the
/// backoff from its initial step.
fn retry_delay(
    client_id: &str,
    ended: Ended,
    backoff: &mut Backoff,
    refused: &mut Option<tonic::Code>,
) -> Option<Duration> {
    Some(match ended {
        Ended::Shutdown => return None,
        Ended::Stream(why) => {
            *refused = None;
            let delay = backoff.next_delay();
            warn!(%client_id, %why, delay_ms = delay.as_millis() as u64, "stream ended; reconnecting");
            delay
        }
        Ended::RetryAfter(hint, why) => {
            *refused = None;
            // The hint plus up to half again, so a crowd told the same
            // moment does not come back in step.
            let jitter = hint.mul_f64(fastrand::f64() * 0.5);
            let delay = hint + jitter;
            debug!(%client_id, %why, delay_ms = delay.as_millis() as u64, "the server asked to retry later");
            delay
        }
        Ended::Refused(status) => {
            backoff.to_max();
            let delay = backoff.next_delay();
            if *refused != Some(status.code()) {
                error!(
                    %client_id,
                    code = ?status.code(),
                    reason = status.message(),
                    retry_ms = delay.as_millis() as u64,
                    "the server refused this client; fix its token or resource (retrying at the maximum backoff)"
                );
            } else {
                debug!(code = ?status.code(), reason = status.message(), "refused again");
            }
            *refused = Some(status.code());
            delay
        }
    })
}

/// A status the server ends a stream with; refusals are permanent-looking.
fn ended_by(status: tonic::Status) -> Ended {
    if let Some(hint) = crate::proto::retry::retry_hint(&status) {
        return Ended::RetryAfter(hint, format!("{:?}: {}", status.code(), status.message()));
    }
    match status.code() {
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => Ended::Refused(status),
        _ => Ended::Stream(format!("{:?}: {}", status.code(), status.message())),
    }
}

impl Client {
    pub(crate) fn new(config: ClientConfig) -> (Self, ClientSender) {
        let (tx, rx) = mpsc::channel(config.outbox_capacity.max(1));
        let (state, _) = watch::channel(ConnectionState::Disconnected);
        (
            Self {
                config,
                outbox: rx,
                state,
            },
            ClientSender { tx },
        )
    }

    /// Watches the connection state.
    pub fn state(&self) -> watch::Receiver<ConnectionState> {
        self.state.subscribe()
    }

    /// Runs until `shutdown` is cancelled, reconnecting whenever the stream
    /// ends.
    pub async fn run<H: CommandHandler>(mut self, handler: H, shutdown: CancellationToken) {
        let (cmd_tx, cmd_rx) = mpsc::channel(self.config.handler_queue.max(1));
        let (ack_tx, mut ack_rx) = mpsc::channel(self.config.handler_queue.max(1));
        let worker = AbortOnDrop(tokio::spawn(handler_task(handler, cmd_rx, ack_tx)));
        let mut backoff = Backoff::new(self.config.initial_backoff, self.config.max_backoff);
        let mut recent = Recent {
            order: VecDeque::new(),
            done: HashMap::new(),
            in_flight: HashMap::new(),
        };
        let mut generation = 0u64;
        let mut refused: Option<tonic::Code> = None;
        loop {
            generation += 1;
            let ended = self
                .connect_once(
                    generation,
                    &cmd_tx,
                    &mut ack_rx,
                    &mut recent,
                    &mut backoff,
                    &shutdown,
                )
                .await;
            self.state.send_replace(ConnectionState::Disconnected);
            let Some(delay) =
                retry_delay(&self.config.client_id, ended, &mut backoff, &mut refused)
            else {
                break;
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(delay) => {}
            }
        }
        drop(worker);
        self.state.send_replace(ConnectionState::Stopped);
    }

    fn message(&self, payload: Payload) -> ClientMessage {
        ClientMessage {
            client_id: self.config.client_id.clone(),
            message_id: String::new(),
            timestamp: Some(crate::time::timestamp(SystemTime::now())),
            payload: Some(payload),
        }
    }

    async fn connect_once(
        &mut self,
        generation: u64,
        cmd_tx: &mpsc::Sender<(u64, ServerCommand, Command)>,
        ack_rx: &mut mpsc::Receiver<TaggedAck>,
        recent: &mut Recent,
        backoff: &mut Backoff,
        shutdown: &CancellationToken,
    ) -> Ended {
        let cfg = &self.config;
        let endpoint = match Endpoint::from_shared(cfg.endpoint.clone()) {
            Ok(e) => e.connect_timeout(cfg.connect_timeout).tcp_nodelay(true),
            Err(e) => return Ended::Stream(format!("bad endpoint {}: {e}", cfg.endpoint)),
        };
        let channel = tokio::select! {
            _ = shutdown.cancelled() => return Ended::Shutdown,
            c = endpoint.connect() => match c {
                Ok(c) => c,
                Err(e) => return Ended::Stream(format!("connect: {e}")),
            },
        };
        let mut client =
            CryptoStreamingServiceClient::new(channel).max_decoding_message_size(4 << 20);
        let (req_tx, req_rx) = mpsc::channel::<ClientMessage>(cfg.outbox_capacity.max(2));
        let register = self.message(Payload::Register(cfg.registration.clone()));
        if req_tx.try_send(register).is_err() {
            return Ended::Stream("request queue closed".into());
        }
        let mut request = tonic::Request::new(ReceiverStream::new(req_rx));
        if let Some(token) = &cfg.token {
            match format!("Bearer {token}").parse() {
                Ok(v) => {
                    request.metadata_mut().insert("authorization", v);
                }
                Err(_) => return Ended::Stream("the token is not valid ASCII".into()),
            }
        }
        let open = timeout(cfg.connect_timeout, client.connect_client(request));
        let mut inbound = match open.await {
            Ok(Ok(r)) => r.into_inner(),
            Ok(Err(status)) => return ended_by(status),
            Err(_) => return Ended::Stream("timed out opening the stream".into()),
        };
        let (session_id, hb_every) = match timeout(cfg.connect_timeout, inbound.message()).await {
            Ok(Ok(Some(ServerCommand {
                command: Some(Wire::Registered(r)),
                ..
            }))) => (
                r.session_id,
                r.heartbeat_interval
                    .as_ref()
                    .and_then(crate::time::std_duration)
                    .filter(|d| !d.is_zero())
                    .unwrap_or(Duration::from_secs(10)),
            ),
            Ok(Ok(Some(other))) => {
                return Ended::Stream(format!("expected registered, got {other:?}"));
            }
            Ok(Ok(None)) => return Ended::Stream("stream closed before registered".into()),
            Ok(Err(status)) => return ended_by(status),
            Err(_) => return Ended::Stream("timed out waiting for registered".into()),
        };
        backoff.reset();
        info!(client_id = %cfg.client_id, %session_id, "registered");
        self.state.send_replace(ConnectionState::Connected {
            session_id: session_id.clone(),
        });
        let mut heartbeat = interval_at(Instant::now() + hb_every, hb_every);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut seq = 0u64;
        // A `disconnect` that says when to come back (the server moving
        // this client to another replica): the end of the stream that
        // follows waits that long.
        let mut come_back: Option<Duration> = None;
        let ended = |come_back: Option<Duration>, ended: Ended| match (come_back, ended) {
            (Some(after), Ended::Stream(why)) => Ended::RetryAfter(after, why),
            (_, ended) => ended,
        };
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ended::Shutdown,
                msg = inbound.message() => match msg {
                    Ok(Some(cmd)) => {
                        if let Some(Wire::Disconnect(d)) = &cmd.command
                            && d.reconnect_after_ms > 0
                        {
                            come_back = Some(Duration::from_millis(u64::from(d.reconnect_after_ms)));
                        }
                        if let Some(ack) = self.on_command(generation, cmd, cmd_tx, recent)
                            && req_tx.send(self.message(Payload::CommandAck(ack))).await.is_err()
                        {
                            return Ended::Stream("request stream closed".into());
                        }
                    }
                    Ok(None) => return ended(come_back, Ended::Stream("server ended the stream".into())),
                    Err(status) => return ended(come_back, ended_by(status)),
                },
                _ = heartbeat.tick() => {
                    seq += 1;
                    if req_tx.try_send(self.message(Payload::Heartbeat(Heartbeat { sequence: seq }))).is_err() {
                        debug!("request queue full; heartbeat skipped");
                    }
                }
                Some(tagged) = ack_rx.recv() => {
                    let delivered_on = recent.remember(&tagged.ack).unwrap_or(tagged.generation);
                    if delivered_on == generation
                        && req_tx.send(self.message(Payload::CommandAck(tagged.ack))).await.is_err()
                    {
                        return Ended::Stream("request stream closed".into());
                    }
                }
                Some(payload) = self.outbox.recv() => {
                    if req_tx.send(self.message(payload)).await.is_err() {
                        return Ended::Stream("request stream closed".into());
                    }
                }
            }
        }
    }

    /// Handles one server command; returns an ack to send at once, if any.
    fn on_command(
        &self,
        generation: u64,
        cmd: ServerCommand,
        cmd_tx: &mpsc::Sender<(u64, ServerCommand, Command)>,
        recent: &mut Recent,
    ) -> Option<CommandAck> {
        let id = cmd.command_id.clone();
        let fail = |message: &str| CommandAck {
            command_id: id.clone(),
            success: false,
            message: message.into(),
            result: HashMap::new(),
        };
        if let Some(done) = recent.done.get(&id) {
            debug!(command_id = %id, "redelivered command; acking without acting");
            return Some(done.clone());
        }
        if let Some(delivered_on) = recent.in_flight.get_mut(&id) {
            debug!(command_id = %id, "redelivered command still in progress; acked when done");
            *delivered_on = generation;
            return None;
        }
        let expired = cmd
            .expires_at
            .as_ref()
            .and_then(crate::time::system_time)
            .is_some_and(|t| t < SystemTime::now());
        match cmd.command.clone() {
            None => Some(fail("empty command")),
            Some(Wire::Registered(_)) => None,
            Some(Wire::Disconnect(d)) => {
                info!(reason = %d.reason, reconnect_after_ms = d.reconnect_after_ms, "server asked to disconnect");
                None
            }
            Some(_) if expired => {
                warn!(command_id = %id, "expired command not acted on");
                Some(fail("command expired before it was received"))
            }
            Some(Wire::Ping(_)) => Some(CommandAck {
                command_id: id,
                success: true,
                message: String::new(),
                result: HashMap::new(),
            }),
            Some(wire) => {
                let typed = Command::from_wire(wire)?;
                match cmd_tx.try_send((generation, cmd, typed)) {
                    Ok(()) => {
                        recent.in_flight.insert(id, generation);
                        None
                    }
                    Err(_) => Some(fail("client busy: command queue full")),
                }
            }
        }
    }
}

async fn handler_task<H: CommandHandler>(
    mut handler: H,
    mut rx: mpsc::Receiver<(u64, ServerCommand, Command)>,
    acks: mpsc::Sender<TaggedAck>,
) {
    while let Some((generation, wire, cmd)) = rx.recv().await {
        let result: CommandResult = handler.handle(cmd).await;
        let ack = match result {
            Ok(result) => CommandAck {
                command_id: wire.command_id,
                success: true,
                message: String::new(),
                result,
            },
            Err(message) => CommandAck {
                command_id: wire.command_id,
                success: false,
                message,
                result: HashMap::new(),
            },
        };
        if acks.send(TaggedAck { generation, ack }).await.is_err() {
            return;
        }
    }
}

/// Ends the handler task when `run` returns or is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_jumps_to_the_maximum_backoff_and_other_ends_climb() {
        let (initial, max) = (Duration::from_millis(100), Duration::from_secs(30));
        let mut b = Backoff::new(initial, max);
        let mut refused = None;
        let d = retry_delay("c", Ended::Stream("reset".into()), &mut b, &mut refused).unwrap();
        assert!(d <= initial);
        assert_eq!(b.step(), initial * 2, "a transport error climbs one step");
        for status in [
            tonic::Status::unauthenticated("invalid token"),
            tonic::Status::permission_denied("no CryptoClient resource"),
        ] {
            let mut b = Backoff::new(initial, max);
            retry_delay("c", ended_by(status), &mut b, &mut refused).unwrap();
            assert_eq!(b.step(), max, "a refusal waits at the maximum step at once");
        }
        assert!(matches!(
            ended_by(tonic::Status::unavailable("shutting down")),
            Ended::Stream(_)
        ));
        assert!(retry_delay("c", Ended::Shutdown, &mut b, &mut refused).is_none());
    }

    #[test]
    fn a_retry_hint_is_honoured_with_up_to_half_again_of_jitter() {
        let hint = Duration::from_millis(800);
        let status = crate::proto::retry::with_retry_hint(
            tonic::Status::resource_exhausted("registrations are over this replica's rate"),
            hint,
        );
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        let mut refused = None;
        let mut delays = Vec::new();
        for _ in 0..200 {
            delays.push(retry_delay("c", ended_by(status.clone()), &mut b, &mut refused).unwrap());
        }
        assert!(
            delays.iter().all(|d| *d >= hint && *d <= hint * 3 / 2),
            "{delays:?}"
        );
        assert!(
            delays
                .iter()
                .any(|d| *d > hint + Duration::from_millis(200)),
            "spread, not all at the hint"
        );
        assert_eq!(
            b.step(),
            Duration::from_millis(100),
            "a hint does not climb the backoff"
        );
    }
}
