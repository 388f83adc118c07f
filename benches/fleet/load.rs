//! The load generator (`fleet --role load --config JSON`): N clients, each
//! one `ConnectClient` stream on its own HTTP/2 connection that acks every
//! command at once, plus a few operator connections that command them.
//! Runs the scenarios in order and writes one JSON report line on stdout.
//! The soak's load side is in `soak_load.rs`.

use super::report::{Broadcast, Ingest, Latency, LoadEvent, LoadReport, Throughput};
use super::sys;
use crypto_operator::client::ClientType;
use crypto_operator::proto::crypto_streaming_service_client::CryptoStreamingServiceClient;
use crypto_operator::proto::{
    ClientMessage, ClientRegistration, CommandAck, ExecuteCommandRequest, Heartbeat, Ping,
    SendCommandRequest, ServerCommand, WalletUpdate, client_message::Payload,
    server_command::Command,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tonic::{Status, Streaming};

#[path = "soak_load.rs"]
pub mod soak_load;

/// What the parent asks the load process to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadConfig {
    pub addr: SocketAddr,
    pub server_pid: u32,
    pub clients: usize,
    pub rtt: bool,
    pub throughput: bool,
    pub broadcast: bool,
    pub ingest: bool,
    /// Status scenario: heartbeat every `heartbeat_ms` until told to stop
    /// (a line on stdin); nothing else.
    pub status: bool,
    pub heartbeat_ms: u64,
    pub duration_ms: u64,
    pub samples: usize,
    pub in_flight: Vec<usize>,
    pub settle_ms: u64,
    pub connect_concurrency: usize,
    /// Soak scenario: heartbeats and commands until told to stop.
    #[serde(default)]
    pub soak: Option<soak_load::SoakConfig>,
}

/// The id of client `i`: also a valid Kubernetes object name.
pub fn client_id(i: usize) -> String {
    format!("c-{i:05}")
}

pub type Op = CryptoStreamingServiceClient<Channel>;
type Probe = Arc<Mutex<Option<oneshot::Sender<Instant>>>>;

/// One connected client.
struct Client {
    id: String,
    /// The request stream; dropping every strong sender closes it.
    tx: mpsc::Sender<ClientMessage>,
    /// Set to learn when the next command reaches the client.
    probe: Probe,
    /// Ends with whether the server ended the stream with OK.
    reader: JoinHandle<bool>,
}

const REQUEST_QUEUE: usize = 64;
const CALL_TIMEOUT_MS: u32 = 30_000;

fn message(id: &str, payload: Payload) -> ClientMessage {
    ClientMessage {
        client_id: id.to_owned(),
        message_id: String::new(),
        timestamp: Some(SystemTime::now().into()),
        payload: Some(payload),
    }
}

fn ping() -> ServerCommand {
    ServerCommand {
        command: Some(Command::Ping(Ping {})),
        ..Default::default()
    }
}

fn url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

async fn channel(addr: SocketAddr) -> Result<Channel, String> {
    Endpoint::from_shared(url(addr))
        .map_err(|e| e.to_string())?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(20))
        .connect()
        .await
        .map_err(|e| format!("connect {addr}: {e:?}"))
}

/// Connects, registers, and starts the task that acks every command.
async fn connect(addr: SocketAddr, id: String) -> Result<Client, String> {
    let mut svc = CryptoStreamingServiceClient::new(channel(addr).await?);
    let (tx, rx) = mpsc::channel(REQUEST_QUEUE);
    let register = message(
        &id,
        Payload::Register(ClientRegistration {
            client_name: id.clone(),
            client_type: ClientType::WalletSync.as_str().into(),
            version: "1.0.0".into(),
            capabilities: vec!["sync_wallets".into()],
        }),
    );
    tx.try_send(register).map_err(|e| e.to_string())?;
    let mut inbound = svc
        .connect_client(ReceiverStream::new(rx))
        .await
        .map_err(|s| format!("{id}: {:?} {}", s.code(), s.message()))?
        .into_inner();
    match tokio::time::timeout(Duration::from_secs(20), inbound.message()).await {
        Ok(Ok(Some(ServerCommand {
            command: Some(Command::Registered(_)),
            ..
        }))) => {}
        other => return Err(format!("{id}: no registered: {other:?}")),
    }
    let probe: Probe = Arc::default();
    let reader = tokio::spawn(read(inbound, id.clone(), tx.downgrade(), probe.clone()));
    Ok(Client {
        id,
        tx,
        probe,
        reader,
    })
}

/// Acks every command (except `registered` / `disconnect`) at once, as a
/// client would; returns whether the stream ended with OK.
async fn read(
    mut inbound: Streaming<ServerCommand>,
    id: String,
    tx: mpsc::WeakSender<ClientMessage>,
    probe: Probe,
) -> bool {
    loop {
        match inbound.message().await {
            Ok(Some(cmd)) => {
                if matches!(
                    cmd.command,
                    None | Some(Command::Registered(_) | Command::Disconnect(_))
                ) {
                    continue;
                }
                let waiter = probe
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .take();
                if let Some(w) = waiter {
                    let _ = w.send(Instant::now());
                }
                let Some(tx) = tx.upgrade() else { continue };
                let ack = CommandAck {
                    command_id: cmd.command_id,
                    success: true,
                    message: String::new(),
                    result: HashMap::new(),
                };
                if tx
                    .send(message(&id, Payload::CommandAck(ack)))
                    .await
                    .is_err()
                {
                    return false;
                }
            }
            Ok(None) => return true,
            Err(_) => return false,
        }
    }
}

/// Connects all clients, `concurrency` at a time.
async fn connect_all(cfg: &LoadConfig, report: &mut LoadReport) -> Vec<Client> {
    let sem = Arc::new(Semaphore::new(cfg.connect_concurrency.max(1)));
    let started = Instant::now();
    let tasks: Vec<_> = (0..cfg.clients)
        .map(|i| {
            let sem = sem.clone();
            let addr = cfg.addr;
            tokio::spawn(async move {
                let _permit = sem.acquire_owned().await;
                connect(addr, client_id(i)).await
            })
        })
        .collect();
    let mut clients = Vec::with_capacity(cfg.clients);
    for t in tasks {
        match t.await {
            Ok(Ok(c)) => clients.push(c),
            Ok(Err(e)) => {
                report.connect_failures += 1;
                report.first_error.get_or_insert(e);
            }
            Err(e) => {
                report.connect_failures += 1;
                report.first_error.get_or_insert(e.to_string());
            }
        }
    }
    report.connect_ms = started.elapsed().as_secs_f64() * 1e3;
    report.connected = clients.len();
    clients
}

pub async fn operators(addr: SocketAddr, n: usize) -> Result<Vec<Op>, String> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(CryptoStreamingServiceClient::new(channel(addr).await?));
    }
    Ok(out)
}

/// Pings `client_id` and waits for its ack.
pub async fn exec(op: &mut Op, client_id: &str) -> Result<(), Status> {
    let ack = op
        .execute_command_sync(ExecuteCommandRequest {
            client_id: client_id.to_owned(),
            command: Some(ping()),
            timeout_ms: CALL_TIMEOUT_MS,
        })
        .await?
        .into_inner();
    if ack.success {
        Ok(())
    } else {
        Err(Status::internal(ack.message))
    }
}

/// Scenario 2: one command at a time to a random client.
async fn rtt(clients: &[Client], op: &Op, samples: usize) -> (Latency, Latency) {
    let mut op = op.clone();
    // Warm-up: connections, allocator, caches.
    for _ in 0..samples.min(100) {
        let _ = exec(&mut op, &clients[fastrand::usize(..clients.len())].id).await;
    }
    let (mut sync, mut sync_err) = (Vec::with_capacity(samples), 0);
    for _ in 0..samples {
        let c = &clients[fastrand::usize(..clients.len())];
        let t0 = Instant::now();
        match exec(&mut op, &c.id).await {
            Ok(()) => sync.push(t0.elapsed()),
            Err(_) => sync_err += 1,
        }
    }
    let (mut stream, mut stream_err) = (Vec::with_capacity(samples), 0);
    for _ in 0..samples {
        let c = &clients[fastrand::usize(..clients.len())];
        let (tx, rx) = oneshot::channel();
        *c.probe
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(tx);
        let t0 = Instant::now();
        let sent = op
            .send_command_to_client(SendCommandRequest {
                client_id: c.id.clone(),
                command: Some(ping()),
            })
            .await;
        if sent.is_err() {
            stream_err += 1;
            continue;
        }
        match tokio::time::timeout(Duration::from_secs(10), rx).await {
            Ok(Ok(at)) => stream.push(at.duration_since(t0)),
            _ => stream_err += 1,
        }
    }
    (Latency::of(sync, sync_err), Latency::of(stream, stream_err))
}

/// Scenario 3: `k` callers, each sending the next command as soon as the
/// previous one is acked, for `duration`.
pub async fn throughput(
    ids: &Arc<Vec<String>>,
    ops: &[Op],
    k: usize,
    duration: Duration,
) -> Throughput {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..k)
        .map(|w| {
            let (ids, stop) = (ids.clone(), stop.clone());
            let mut op = ops[w % ops.len()].clone();
            tokio::spawn(async move {
                let (mut ok, mut err, mut j) = (0u64, 0u64, w);
                while !stop.load(Ordering::Relaxed) {
                    match exec(&mut op, &ids[j % ids.len()]).await {
                        Ok(()) => ok += 1,
                        Err(_) => err += 1,
                    }
                    j += k;
                }
                (ok, err)
            })
        })
        .collect();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let (mut acks, mut errors) = (0, 0);
    for w in workers {
        let (ok, err) = w.await.unwrap_or((0, 1));
        acks += ok;
        errors += err;
    }
    let secs = started.elapsed().as_secs_f64();
    Throughput {
        k,
        acks,
        errors,
        secs,
        per_sec: acks as f64 / secs,
    }
}

/// Pings every client at once; returns (acks, errors, total, half).
async fn ping_all(ids: &Arc<Vec<String>>, ops: &[Op]) -> (usize, usize, Duration, Duration) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..ids.len())
        .map(|i| {
            let ids = ids.clone();
            let mut op = ops[i % ops.len()].clone();
            tokio::spawn(async move { exec(&mut op, &ids[i]).await.map(|()| started.elapsed()) })
        })
        .collect();
    let mut done = Vec::with_capacity(ids.len());
    let mut errors = 0;
    for t in tasks {
        match t.await {
            Ok(Ok(at)) => done.push(at),
            _ => errors += 1,
        }
    }
    let total = started.elapsed();
    done.sort_unstable();
    let half = done.get(done.len() / 2).copied().unwrap_or_default();
    (done.len(), errors, total, half)
}

/// Operator connections for `n` concurrent calls: the server allows a
/// limited number of concurrent streams per HTTP/2 connection.
fn ops_for(n: usize) -> usize {
    n.div_ceil(100).clamp(1, 128)
}

/// Scenario 4: every client sends wallet updates and heartbeats (3:1) as
/// fast as its stream takes them, for `duration`; then a ping per client,
/// acked behind its data, marks the point where the server has handled
/// everything sent.
async fn ingest(
    clients: &[Client],
    ids: &Arc<Vec<String>>,
    ops: &[Op],
    duration: Duration,
    server_pid: u32,
) -> Ingest {
    let stop = Arc::new(AtomicBool::new(false));
    let cpu0 = sys::cpu_time(server_pid).unwrap_or_default();
    let own0 = sys::cpu_time(std::process::id()).unwrap_or_default();
    let started = Instant::now();
    let senders: Vec<_> = clients
        .iter()
        .map(|c| {
            let (tx, id, stop) = (c.tx.clone(), c.id.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let payload = if n % 4 == 3 {
                        Payload::Heartbeat(Heartbeat { sequence: n })
                    } else {
                        Payload::WalletUpdate(WalletUpdate {
                            wallet_id: format!("0x{:040x}", n % 4),
                            chain: "ethereum".into(),
                            asset: "ETH".into(),
                            balance: format!("{}.{:06}", n % 1000, n % 1_000_000),
                            block_height: 19_000_000 + n,
                        })
                    };
                    if tx.send(message(&id, payload)).await.is_err() {
                        return (n, 1);
                    }
                    n += 1;
                }
                (n, 0)
            })
        })
        .collect();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let (mut messages, mut errors) = (0, 0);
    for s in senders {
        let (n, e) = s.await.unwrap_or((0, 1));
        messages += n;
        errors += e;
    }
    let barrier = Instant::now();
    let (_, ping_errors, _, _) = ping_all(ids, ops).await;
    let secs = started.elapsed().as_secs_f64();
    let cpu = sys::cpu_time(server_pid)
        .unwrap_or_default()
        .saturating_sub(cpu0)
        .as_secs_f64();
    Ingest {
        messages,
        errors: errors + ping_errors as u64,
        secs,
        per_sec: messages as f64 / secs,
        barrier_ms: barrier.elapsed().as_secs_f64() * 1e3,
        server_cpu_secs: cpu,
        server_cpu_us_per_msg: cpu * 1e6 / messages.max(1) as f64,
        load_cpu_secs: sys::cpu_time(std::process::id())
            .unwrap_or_default()
            .saturating_sub(own0)
            .as_secs_f64(),
    }
}

/// Spreads `n` events per `every` evenly over 10 ms ticks.
struct Spread {
    per_tick: f64,
    owed: f64,
    tick: tokio::time::Interval,
}

impl Spread {
    fn new(n: usize, every: Duration) -> Self {
        let slice = Duration::from_millis(10);
        Self {
            per_tick: n as f64 * slice.as_secs_f64() / every.as_secs_f64(),
            owed: 0.0,
            tick: tokio::time::interval(slice),
        }
    }

    /// Waits for the next tick; how many events are due at it.
    async fn next(&mut self) -> usize {
        self.tick.tick().await;
        self.owed += self.per_tick;
        let due = self.owed.floor();
        self.owed -= due;
        due as usize
    }
}

/// Heartbeats sent, and dropped because the client's request queue was
/// full.
#[derive(Default)]
struct Beats {
    sent: AtomicU64,
    dropped: AtomicU64,
}

/// Starts the task that sends each client a heartbeat every `every`,
/// spread evenly over the period; runs until aborted.
fn spawn_heartbeats(clients: &[Client], every: Duration, beats: Arc<Beats>) -> JoinHandle<()> {
    let txs: Vec<(String, mpsc::Sender<ClientMessage>)> = clients
        .iter()
        .map(|c| (c.id.clone(), c.tx.clone()))
        .collect();
    tokio::spawn(async move {
        let mut spread = Spread::new(txs.len(), every);
        let (mut next, mut seq) = (0usize, 0u64);
        loop {
            for _ in 0..spread.next().await {
                let (id, tx) = &txs[next];
                let beat = message(id, Payload::Heartbeat(Heartbeat { sequence: seq }));
                let counter = match tx.try_send(beat) {
                    Ok(()) => &beats.sent,
                    Err(_) => &beats.dropped,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                next += 1;
                if next == txs.len() {
                    next = 0;
                    seq += 1;
                }
            }
        }
    })
}

/// Waits for a line (or EOF) on stdin: the parent's stop.
async fn stdin_line() {
    let _ = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)
    })
    .await;
}

/// Scenario 6's clients: heartbeats every `every`, spread evenly, until a
/// line (or EOF) arrives on stdin.
async fn heartbeat_until_stdin(clients: &[Client], every: Duration) -> u64 {
    let beats = Arc::new(Beats::default());
    let beat = spawn_heartbeats(clients, every, beats.clone());
    stdin_line().await;
    beat.abort();
    let _ = beat.await;
    beats.sent.load(Ordering::Relaxed)
}

fn emit(ev: &LoadEvent) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", serde_json::to_string(ev).expect("json"));
    let _ = out.flush();
}

async fn run(cfg: LoadConfig) -> Result<LoadReport, String> {
    let mut report = LoadReport {
        clients: cfg.clients,
        rss_empty_kib: sys::rss_kib(cfg.server_pid).unwrap_or(0),
        ..Default::default()
    };
    let clients = connect_all(&cfg, &mut report).await;
    if clients.is_empty() {
        return Err(format!(
            "no client connected: {}",
            report.first_error.unwrap_or_default()
        ));
    }
    eprintln!(
        "[fleet load] {} of {} clients connected in {:.0} ms",
        clients.len(),
        cfg.clients,
        report.connect_ms
    );
    tokio::time::sleep(Duration::from_millis(cfg.settle_ms)).await;
    report.rss_connected_kib = sys::rss_kib(cfg.server_pid).unwrap_or(0);
    report.rss_per_client_kib = report
        .rss_connected_kib
        .saturating_sub(report.rss_empty_kib) as f64
        / clients.len() as f64;
    let ids: Arc<Vec<String>> = Arc::new(clients.iter().map(|c| c.id.clone()).collect());
    let duration = Duration::from_millis(cfg.duration_ms);

    if cfg.status {
        emit(&LoadEvent::Connected {
            connected: clients.len(),
        });
        report.heartbeats =
            heartbeat_until_stdin(&clients, Duration::from_millis(cfg.heartbeat_ms)).await;
    } else if let Some(soak) = &cfg.soak {
        report.soak = Some(soak_load::run(&clients, cfg.addr, soak).await?);
    } else {
        let ops = operators(cfg.addr, 4).await?;
        if cfg.rtt {
            let (sync, stream) = rtt(&clients, &ops[0], cfg.samples).await;
            eprintln!(
                "[fleet load] round trip p50 {:.3} ms, p99 {:.3} ms",
                sync.p50_us / 1e3,
                sync.p99_us / 1e3
            );
            report.rtt_sync = Some(sync);
            report.rtt_stream = Some(stream);
        }
        if cfg.throughput {
            for &k in &cfg.in_flight {
                let ops = if k > 4 * 100 {
                    operators(cfg.addr, ops_for(k)).await?
                } else {
                    ops.clone()
                };
                let t = throughput(&ids, &ops, k, duration).await;
                eprintln!("[fleet load] K={k}: {:.0} acks/s", t.per_sec);
                report.throughput.push(t);
            }
        }
        let wide = operators(cfg.addr, ops_for(ids.len())).await?;
        if cfg.broadcast {
            let (acks, errors, total, half) = ping_all(&ids, &wide).await;
            eprintln!(
                "[fleet load] broadcast: {acks} acks in {:.0} ms",
                total.as_secs_f64() * 1e3
            );
            report.broadcast = Some(Broadcast {
                acks,
                errors,
                total_ms: total.as_secs_f64() * 1e3,
                half_ms: half.as_secs_f64() * 1e3,
            });
        }
        if cfg.ingest {
            let i = ingest(&clients, &ids, &wide, duration, cfg.server_pid).await;
            eprintln!("[fleet load] ingest: {:.0} msgs/s", i.per_sec);
            report.ingest = Some(i);
        }
    }

    // Close every client's side; the server ends each stream.
    let mut readers = Vec::with_capacity(clients.len());
    for c in clients {
        drop(c.tx);
        readers.push(c.reader);
    }
    for r in readers {
        match tokio::time::timeout(Duration::from_secs(30), r).await {
            Ok(Ok(true)) => report.closed_clean += 1,
            _ => report.closed_other += 1,
        }
    }
    Ok(report)
}

/// `--role load --config JSON`.
pub fn main(argv: &[String]) -> ! {
    let cfg: LoadConfig = argv
        .iter()
        .position(|a| a == "--config")
        .and_then(|i| argv.get(i + 1))
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_else(|| {
            eprintln!("fleet load: --config JSON is required");
            std::process::exit(2)
        });
    if let Err(e) = sys::raise_nofile(cfg.clients as u64 + 256) {
        eprintln!("fleet load: {e}");
        std::process::exit(2);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let code = match rt.block_on(run(cfg)) {
        Ok(report) => {
            emit(&LoadEvent::Report {
                report: Box::new(report),
            });
            0
        }
        Err(e) => {
            eprintln!("fleet load: {e}");
            1
        }
    };
    rt.shutdown_timeout(Duration::from_secs(2));
    std::process::exit(code);
}
