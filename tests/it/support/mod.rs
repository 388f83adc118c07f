//! Shared helpers for the integration tests: an in-process server on
//! 127.0.0.1:0, a raw protocol client that lets a test break the session
//! rules on purpose, and event waits with timeouts (no fixed sleeps).

#![allow(dead_code)]

pub use ::fake_kube;

pub mod certs;
pub mod cluster;
pub mod process;
pub mod prometheus;
pub mod readme;
pub mod replicas;

pub mod fake_centrifugo;
pub mod http;

use crypto_operator::client::ClientType;
use crypto_operator::proto::crypto_streaming_service_client::CryptoStreamingServiceClient;
use crypto_operator::proto::{
    ClientMessage, ClientRegistration, CommandAck, ServerCommand, client_message::Payload,
    server_command::Command,
};
use crypto_operator::server::{self, Running, ServerConfig};
use crypto_operator::streaming::{Event, EventSubscriber, StreamingConfig};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Status, Streaming};

/// Logs to the test output when `CRYPTO_TEST_LOG` holds a filter (for
/// debugging a failing test; silent otherwise).
pub fn init_logs() {
    if let Ok(filter) = std::env::var("CRYPTO_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
}

/// Tests that run a fleet of hundreds or thousands of clients take turns:
/// on two cores, two of them at once (each with several debug-build server
/// processes) measure the machine, not the operator, and their bounds are
/// about the operator. Hold the guard for the whole test.
pub async fn fleet_scale_turn() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}

/// Upper bound for any single wait in a test.
pub const WAIT: Duration = Duration::from_secs(10);

/// Streaming limits with short intervals, pings off (tests send their own).
pub fn fast_config() -> StreamingConfig {
    StreamingConfig {
        heartbeat_interval: Duration::from_millis(200),
        stale_after: Duration::from_millis(600),
        dead_after: Duration::from_millis(1200),
        ack_timeout: Duration::from_secs(5),
        ping_interval: Duration::ZERO,
        register_timeout: Duration::from_secs(2),
        ..StreamingConfig::default()
    }
}

/// Long heartbeat limits, for tests that must not see staleness.
pub fn calm_config() -> StreamingConfig {
    StreamingConfig {
        heartbeat_interval: Duration::from_secs(10),
        stale_after: Duration::from_secs(60),
        dead_after: Duration::from_secs(120),
        ..fast_config()
    }
}

/// Starts a server on ephemeral loopback ports.
pub async fn start(streaming: StreamingConfig) -> Running {
    start_on("127.0.0.1:0".parse().unwrap(), streaming).await
}

/// Starts a server with its gRPC port at `grpc_addr`.
pub async fn start_on(grpc_addr: std::net::SocketAddr, streaming: StreamingConfig) -> Running {
    server::start(ServerConfig {
        grpc_addr,
        streaming,
        drain_grace: Duration::from_secs(2),
        ..ServerConfig::default()
    })
    .await
    .expect("server starts")
}

/// The tests' base configuration: ephemeral loopback ports, `streaming`,
/// a 2 s drain (for `..test_config(..)` in a `ServerConfig` literal).
pub fn test_config(streaming: StreamingConfig) -> ServerConfig {
    ServerConfig {
        streaming,
        drain_grace: Duration::from_secs(2),
        ..ServerConfig::default()
    }
}

/// Starts a server with `config`.
pub async fn start_config(config: ServerConfig) -> Running {
    server::start(config).await.expect("server starts")
}

/// Waits until `cond` holds, checking every few milliseconds (for state
/// that has no event to wait on, such as a metric); fails after [`WAIT`].
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    poll_until(what, WAIT, Duration::from_millis(5), async || {
        cond().then_some(())
    })
    .await;
}

/// Waits until the async `probe` gives `Some` (its value is returned),
/// trying every `every`: for state another process or a file watcher owns,
/// with no event this process can await (an HTTP endpoint, Prometheus, a
/// reloaded file). Fails after `limit`, naming `what`.
pub async fn poll_until<T>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?}: {what}"
        );
        tokio::time::sleep(every).await;
    }
}

/// Waits until the in-process server reports ready.
pub async fn wait_ready(running: &Running) {
    let what = "the server reports ready";
    poll_until(what, WAIT, Duration::from_millis(20), async || {
        running.ready.not_ready().is_none().then_some(())
    })
    .await;
}

/// The value of one series (`name{labels}` as printed) in the server's
/// metrics text; fails the test when it is missing.
#[allow(dead_code)]
pub fn metric(running: &Running, series: &str) -> f64 {
    let text = running.metrics.render();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{series} missing from:\n{text}"))
        .parse()
        .unwrap_or_else(|e| panic!("{series}: {e}"))
}

/// Like [`metric`], but 0 for a series not exported yet (a labelled
/// counter before its first increment).
#[allow(dead_code)]
pub fn metric_or_zero(running: &Running, series: &str) -> f64 {
    running
        .metrics
        .render()
        .lines()
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
        .unwrap_or(0.0)
}

/// `http://addr`.
pub fn url(addr: std::net::SocketAddr) -> String {
    format!("http://{addr}")
}

/// An operator-side gRPC client.
pub async fn operator(addr: std::net::SocketAddr) -> CryptoStreamingServiceClient<Channel> {
    CryptoStreamingServiceClient::connect(url(addr))
        .await
        .expect("operator connects")
}

/// A message from `client_id`.
pub fn msg(client_id: &str, payload: Payload) -> ClientMessage {
    ClientMessage {
        client_id: client_id.into(),
        message_id: String::new(),
        timestamp: None,
        payload: Some(payload),
    }
}

/// A registration payload.
pub fn register(kind: ClientType) -> Payload {
    Payload::Register(ClientRegistration {
        client_name: "test".into(),
        client_type: kind.as_str().into(),
        version: "1.0.0".into(),
        capabilities: vec!["sync_wallets".into()],
    })
}

/// A client speaking the wire protocol directly.
pub struct RawClient {
    pub client_id: String,
    pub tx: mpsc::Sender<ClientMessage>,
    pub inbound: Streaming<ServerCommand>,
    pub session_id: String,
}

/// Opens a stream whose first message is `first`; returns the sender and
/// the response stream.
pub async fn open(
    addr: std::net::SocketAddr,
    first: ClientMessage,
) -> (mpsc::Sender<ClientMessage>, Streaming<ServerCommand>) {
    open_with_token(addr, first, None).await
}

/// Like [`open`], presenting `token` as `authorization: Bearer <token>`.
pub async fn open_with_token(
    addr: std::net::SocketAddr,
    first: ClientMessage,
    token: Option<&str>,
) -> (mpsc::Sender<ClientMessage>, Streaming<ServerCommand>) {
    open_on(operator(addr).await, first, token).await
}

/// Like [`open_with_token`], on a client the caller connected (over TLS,
/// say).
pub async fn open_on(
    client: CryptoStreamingServiceClient<Channel>,
    first: ClientMessage,
    token: Option<&str>,
) -> (mpsc::Sender<ClientMessage>, Streaming<ServerCommand>) {
    let mut client = client.max_decoding_message_size(4 << 20);
    let (tx, rx) = mpsc::channel(64);
    tx.send(first).await.unwrap();
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    if let Some(t) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let inbound = client
        .connect_client(request)
        .await
        .expect("stream opens")
        .into_inner();
    (tx, inbound)
}

impl RawClient {
    /// Connects and registers as `client_id`.
    pub async fn connect(addr: std::net::SocketAddr, client_id: &str) -> Self {
        Self::connect_as(addr, client_id, ClientType::WalletSync).await
    }

    /// Connects and registers as `client_id` of type `kind`.
    pub async fn connect_as(addr: std::net::SocketAddr, client_id: &str, kind: ClientType) -> Self {
        Self::connect_with(addr, client_id, kind, None).await
    }

    /// Connects with a bearer token.
    pub async fn connect_with_token(
        addr: std::net::SocketAddr,
        client_id: &str,
        token: &str,
    ) -> Self {
        Self::connect_with(addr, client_id, ClientType::WalletSync, Some(token)).await
    }

    async fn connect_with(
        addr: std::net::SocketAddr,
        client_id: &str,
        kind: ClientType,
        token: Option<&str>,
    ) -> Self {
        Self::connect_on(operator(addr).await, client_id, kind, token).await
    }

    /// Registers as `client_id` of type `kind` over `client`'s channel.
    pub async fn connect_on(
        client: CryptoStreamingServiceClient<Channel>,
        client_id: &str,
        kind: ClientType,
        token: Option<&str>,
    ) -> Self {
        let (tx, mut inbound) = open_on(client, msg(client_id, register(kind)), token).await;
        let first = tokio::time::timeout(WAIT, inbound.message())
            .await
            .expect("registered in time")
            .expect("stream ok")
            .expect("a first command");
        let Some(Command::Registered(r)) = first.command else {
            panic!("first command is not registered: {first:?}");
        };
        Self {
            client_id: client_id.into(),
            tx,
            inbound,
            session_id: r.session_id,
        }
    }

    /// Sends a payload as this client.
    pub async fn send(&self, payload: Payload) {
        self.tx
            .send(msg(&self.client_id, payload))
            .await
            .expect("request stream open");
    }

    /// The next command, failing the test after [`WAIT`].
    pub async fn next(&mut self) -> Result<Option<ServerCommand>, Status> {
        tokio::time::timeout(WAIT, self.inbound.message())
            .await
            .expect("a command in time")
    }

    /// The next command, which must exist.
    pub async fn command(&mut self) -> ServerCommand {
        self.next().await.expect("stream ok").expect("stream open")
    }

    /// Acks `command_id`.
    pub async fn ack(&self, command_id: &str, success: bool) {
        self.send(Payload::CommandAck(CommandAck {
            command_id: command_id.into(),
            success,
            message: if success {
                String::new()
            } else {
                "refused".into()
            },
            result: HashMap::new(),
        }))
        .await;
    }

    /// Reads until the stream ends; returns its final status (OK as
    /// `Code::Ok`).
    pub async fn end_status(&mut self) -> Status {
        loop {
            match self.next().await {
                Ok(Some(_)) => continue,
                Ok(None) => return Status::ok(""),
                Err(s) => return s,
            }
        }
    }
}

/// Runs `ExecuteCommandSync` for `body` against the client `c` while `c`
/// acks the command with success; returns the ack the operator got.
pub async fn execute_acked(
    addr: std::net::SocketAddr,
    c: &mut RawClient,
    body: crypto_operator::proto::server_command::Command,
) -> CommandAck {
    let mut op = operator(addr).await;
    let request = crypto_operator::proto::ExecuteCommandRequest {
        client_id: c.client_id.clone(),
        command: Some(crypto_operator::commands::new(body)),
        timeout_ms: 5_000,
    };
    let call = tokio::spawn(async move { op.execute_command_sync(request).await });
    let cmd = c.command().await;
    c.ack(&cmd.command_id, true).await;
    call.await
        .expect("call task")
        .expect("command acked")
        .into_inner()
}

/// Reads `inbound` until it ends; returns the final status.
pub async fn end_status(inbound: &mut Streaming<ServerCommand>) -> Status {
    loop {
        match tokio::time::timeout(WAIT, inbound.message())
            .await
            .expect("stream ends in time")
        {
            Ok(Some(_)) => continue,
            Ok(None) => return Status::ok(""),
            Err(s) => return s,
        }
    }
}

/// Waits for the first event matching `pred`.
pub async fn wait_event(
    sub: &mut EventSubscriber,
    mut pred: impl FnMut(&Event) -> bool,
) -> Arc<Event> {
    tokio::time::timeout(WAIT, async {
        loop {
            let ev = sub.recv().await.expect("event bus open");
            if pred(&ev) {
                return ev;
            }
        }
    })
    .await
    .expect("event in time")
}

/// The next tick of a `StreamPrices` stream, failing the test after
/// [`WAIT`].
pub async fn next_tick(
    s: &mut tonic::Streaming<crypto_operator::proto::PriceTick>,
) -> crypto_operator::proto::PriceTick {
    tokio::time::timeout(WAIT, s.message())
        .await
        .expect("a tick in time")
        .expect("stream ok")
        .expect("stream open")
}
