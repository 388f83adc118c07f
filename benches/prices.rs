//! Price fan-out: one price feed publishes over gRPC, N subscribers receive
//! over `StreamPrices`. Measures, for the real server (session core, event
//! bus, market ingest, conflating streams) and for a bare tonic baseline
//! (the same two RPCs: a ConnectClient reader that forwards every price to a
//! `tokio::sync::broadcast`, and StreamPrices streams reading it), in the
//! same process and run:
//! - updates delivered per second (ticks received by all subscribers /
//!   time from the first publish to the last subscriber's final tick);
//! - delivery delay from publish (the feed stamps `exchange_time`) to
//!   receipt, p50 / p99 / max;
//! - how many of the N × M possible deliveries happened (the rest were
//!   conflated by ours, or lost to broadcast lag by the baseline).
//!
//!
//! Across replicas (issue 15), at 100 and 1,000 updates/s in the same run:
//! two servers in cluster mode (against the in-process fake API server,
//! a test double) — the feed on replica-a, every subscriber on replica-b,
//! so each price crosses replica-a's price link to replica-b — next to
//! "ours" above (feed and subscribers on one server).
//!
//! Run: `cargo bench --bench prices` (1,000 subscribers) or a smoke run
//! `cargo bench --bench prices -- --subscribers 20 --updates 100`.
//! Flags: `--subscribers N` (1000), `--updates M` per run (1000, rounded
//! up to a multiple of the symbols), `--symbols K` (4), `--rate R[,R...]`
//! the feed's updates/s, one run each (100,250,500,1000,0; 0: as fast as the feed's
//! stream allows), `--per-connection S` (100 subscribers per HTTP/2
//! connection). Every subscriber subscribes to all K symbols.

use crypto_operator::client::ClientType;
use crypto_operator::market::Catalog;
use crypto_operator::proto::crypto_service_client::CryptoServiceClient;
use crypto_operator::proto::crypto_service_server::{CryptoService, CryptoServiceServer};
use crypto_operator::proto::crypto_streaming_service_client::CryptoStreamingServiceClient;
use crypto_operator::proto::crypto_streaming_service_server::{
    CryptoStreamingService, CryptoStreamingServiceServer,
};
use crypto_operator::proto::{
    ClientInfo, ClientMessage, ClientRegistration, Coin, CommandAck, ExecuteCommandRequest,
    GetClientRequest, GetCoinRequest, ListClientsRequest, ListClientsResponse, ListCoinsRequest,
    ListCoinsResponse, PriceTick, PriceUpdate, SendCommandRequest, SendCommandResponse,
    ServerCommand, StreamPricesRequest, client_message::Payload,
};
use crypto_operator::server::{self, ServerConfig};
use crypto_operator::streaming::StreamingConfig;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::{BroadcastStream, ReceiverStream};
use tokio_stream::{Stream, StreamExt};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status, Streaming};

const RUN_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
struct Args {
    subscribers: usize,
    updates: usize,
    symbols: usize,
    rates: Vec<u64>,
    per_connection: usize,
}

fn parse_args() -> Result<Args, String> {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` (the test
    // suite) runs this binary without it: then a small smoke run, so the
    // harness cannot rot and the suite stays fast.
    let smoke = !std::env::args().any(|x| x == "--bench");
    let mut a = Args {
        subscribers: if smoke { 20 } else { 1000 },
        updates: if smoke { 100 } else { 1000 },
        symbols: 4,
        rates: if smoke {
            vec![100, 0]
        } else {
            vec![100, 250, 500, 1000, 0]
        },
        per_connection: if smoke { 10 } else { 100 },
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || -> Result<u64, String> {
            it.next()
                .ok_or(format!("{flag} needs a value"))?
                .parse()
                .map_err(|e| format!("{flag}: {e}"))
        };
        match flag.as_str() {
            "--subscribers" => a.subscribers = value()? as usize,
            "--updates" => a.updates = value()? as usize,
            "--symbols" => a.symbols = value()? as usize,
            "--rate" => {
                let list = it.next().ok_or("--rate needs a value")?;
                a.rates = list
                    .split(',')
                    .map(|r| r.trim().parse().map_err(|e| format!("--rate {r}: {e}")))
                    .collect::<Result<_, _>>()?;
            }
            "--per-connection" => a.per_connection = value()? as usize,
            // What cargo passes to every bench target.
            "--bench" => {}
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if a.subscribers == 0 || a.symbols == 0 || a.per_connection == 0 {
        return Err("--subscribers, --symbols and --per-connection must be at least 1".into());
    }
    a.updates = a.updates.max(a.symbols).div_ceil(a.symbols) * a.symbols;
    Ok(a)
}

/// What one system achieved.
struct Outcome {
    delivered: u64,
    elapsed: Duration,
    delays_us: Vec<u32>,
    /// The part of each delay before the server accepted the price.
    ingest_us: Vec<u32>,
    incomplete: usize,
    note: String,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.delivered as f64 / self.elapsed.as_secs_f64()
    }

    fn pct(&self, p: f64) -> f64 {
        pct(&self.delays_us, p)
    }

    fn print(&self, name: &str, a: &Args, rate: u64) {
        let possible = (a.subscribers * a.updates) as f64;
        println!(
            "{name:<9} rate {:<9} {:>9.0} updates/s delivered  delay p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  (p99 of it before the server: {:.2} ms)  delivered {:>5.1}% of {} in {:.2} s{}  {}",
            rate_text(rate),
            self.rate(),
            self.pct(0.50),
            self.pct(0.99),
            self.pct(1.0),
            pct(&self.ingest_us, 0.99),
            100.0 * self.delivered as f64 / possible,
            possible,
            self.elapsed.as_secs_f64(),
            if self.incomplete > 0 {
                format!("  INCOMPLETE: {} subscribers timed out", self.incomplete)
            } else {
                String::new()
            },
            self.note,
        );
    }
}

/// Percentile `p` of sorted µs values, in ms.
fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

/// The symbols the feed publishes, from the built-in catalog.
fn symbols(k: usize) -> Vec<String> {
    let catalog = Catalog::builtin().expect("built-in catalog");
    let mut all: Vec<String> = catalog
        .coins()
        .iter()
        .filter(|c| c.enabled && c.decimals >= 2)
        .map(|c| c.symbol.clone())
        .collect();
    all.truncate(k);
    assert_eq!(all.len(), k, "the built-in catalog has fewer symbols");
    all
}

/// Opens the subscribers on `addr` (spread over connections of
/// `per_connection` streams), runs the feed on `feed_addr`, and collects
/// every subscriber's receipts.
async fn fan_out(
    addr: SocketAddr,
    feed_addr: SocketAddr,
    a: &Args,
    rate: u64,
    register_reply: bool,
) -> Outcome {
    let symbols = symbols(a.symbols);
    let final_seq = (a.updates / a.symbols) as u64;
    let mut channels = Vec::new();
    for _ in 0..a.subscribers.div_ceil(a.per_connection) {
        let ch = Endpoint::from_shared(format!("http://{addr}"))
            .expect("url")
            .tcp_nodelay(true)
            .connect()
            .await
            .expect("subscriber connection");
        channels.push(ch);
    }
    let (ready_tx, mut ready_rx) = mpsc::channel::<()>(a.subscribers);
    let mut subs = Vec::with_capacity(a.subscribers);
    for i in 0..a.subscribers {
        let ch = channels[i / a.per_connection].clone();
        let symbols = symbols.clone();
        let ready = ready_tx.clone();
        subs.push(tokio::spawn(subscriber(ch, symbols, final_seq, ready)));
    }
    drop(ready_tx);
    for _ in 0..a.subscribers {
        ready_rx.recv().await.expect("subscriber ready");
    }

    // The feed's stream stays open until every subscriber is done.
    let (feed, started) = publish(feed_addr, &symbols, a.updates, rate, register_reply).await;
    let mut out = Outcome {
        delivered: 0,
        elapsed: Duration::ZERO,
        delays_us: Vec::with_capacity(a.subscribers * a.updates),
        ingest_us: Vec::with_capacity(a.subscribers * a.updates),
        incomplete: 0,
        note: String::new(),
    };
    let mut last = started;
    for s in subs {
        match s.await.expect("subscriber task") {
            Some(r) => {
                out.delivered += r.n;
                out.delays_us.extend(r.delays);
                out.ingest_us.extend(r.ingest);
                last = last.max(r.done);
            }
            None => out.incomplete += 1,
        }
    }
    drop(feed);
    out.elapsed = last.duration_since(started);
    out.delays_us.sort_unstable();
    out.ingest_us.sort_unstable();
    out
}

/// What one subscriber received.
struct Receipts {
    n: u64,
    /// Publish to receipt, µs.
    delays: Vec<u32>,
    /// Publish to the server accepting it (`received_at`), µs.
    ingest: Vec<u32>,
    done: Instant,
}

/// Receives until the final sequence of every symbol arrived; returns the
/// ticks received, their delays, and when it finished.
async fn subscriber(
    ch: Channel,
    symbols: Vec<String>,
    final_seq: u64,
    ready: mpsc::Sender<()>,
) -> Option<Receipts> {
    let mut client = CryptoServiceClient::new(ch);
    let mut stream = client
        .stream_prices(StreamPricesRequest {
            symbols: symbols.clone(),
        })
        .await
        .expect("subscribed")
        .into_inner();
    ready.send(()).await.ok()?;
    drop(ready);
    let deadline = tokio::time::Instant::now() + RUN_TIMEOUT;
    let mut done: HashMap<String, bool> = symbols.iter().map(|s| (s.clone(), false)).collect();
    let mut left = symbols.len();
    let (mut n, mut delays, mut ingest) = (0u64, Vec::new(), Vec::new());
    while left > 0 {
        let Ok(Ok(Some(tick))) = tokio::time::timeout_at(deadline, stream.message()).await else {
            return None;
        };
        let now = SystemTime::now();
        if tick.snapshot {
            continue;
        }
        let Some(u) = tick.update else { continue };
        n += 1;
        let time = |t: Option<prost_types::Timestamp>| t.and_then(|t| SystemTime::try_from(t).ok());
        if let Some(sent) = time(u.exchange_time) {
            let accepted = time(tick.received_at).unwrap_or(sent);
            let micros = |d: Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
            delays.push(micros(now.duration_since(sent).unwrap_or_default()));
            ingest.push(micros(accepted.duration_since(sent).unwrap_or_default()));
        }
        if tick.sequence >= final_seq
            && let Some(flag) = done.get_mut(&u.symbol)
            && !*flag
        {
            *flag = true;
            left -= 1;
        }
    }
    Some(Receipts {
        n,
        delays,
        ingest,
        done: Instant::now(),
    })
}

/// The open stream of a feed.
type Feed = (mpsc::Sender<ClientMessage>, Streaming<ServerCommand>);

/// One price feed: connects and registers, then sends `updates` prices
/// round-robin over `symbols`, each stamped with the time it is handed to
/// the stream. Returns the open stream and when the first price was sent.
async fn publish(
    addr: SocketAddr,
    symbols: &[String],
    updates: usize,
    rate: u64,
    wait_registered: bool,
) -> (Feed, Instant) {
    let ch = Endpoint::from_shared(format!("http://{addr}"))
        .expect("url")
        .tcp_nodelay(true)
        .connect()
        .await
        .expect("feed connection");
    let mut client = CryptoStreamingServiceClient::new(ch);
    let (tx, rx) = mpsc::channel(1024);
    let msg = |payload| ClientMessage {
        client_id: "bench-feed".into(),
        message_id: String::new(),
        timestamp: None,
        payload: Some(payload),
    };
    tx.send(msg(Payload::Register(ClientRegistration {
        client_name: "bench".into(),
        client_type: ClientType::PriceFeed.as_str().into(),
        version: "1".into(),
        capabilities: vec!["price".into()],
    })))
    .await
    .expect("feed stream");
    let mut inbound = client
        .connect_client(ReceiverStream::new(rx))
        .await
        .expect("feed stream opens")
        .into_inner();
    if wait_registered {
        inbound
            .message()
            .await
            .expect("registered")
            .expect("registered");
    }
    let mut pace = (rate > 0).then(|| {
        let mut i = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        i
    });
    let started = Instant::now();
    for i in 0..updates {
        if let Some(p) = &mut pace {
            p.tick().await;
        }
        let symbol = &symbols[i % symbols.len()];
        let update = PriceUpdate {
            symbol: symbol.clone(),
            price: format!("{}.{:02}", 60_000 + i % 1000, i % 100),
            quote: "USD".into(),
            source: "bench".into(),
            exchange_time: Some(SystemTime::now().into()),
        };
        tx.send(msg(Payload::Price(update)))
            .await
            .expect("feed stream");
    }
    ((tx, inbound), started)
}

/// Sessions that neither time out nor ping during a run.
fn quiet_sessions() -> StreamingConfig {
    StreamingConfig {
        heartbeat_interval: Duration::from_secs(60),
        stale_after: Duration::from_secs(600),
        dead_after: Duration::from_secs(1200),
        ping_interval: Duration::ZERO,
        ..StreamingConfig::default()
    }
}

async fn ours(a: &Args, rate: u64) -> Outcome {
    let running = server::start(ServerConfig {
        grpc_addr: "127.0.0.1:0".parse().expect("addr"),
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        streaming: quiet_sessions(),
        drain_grace: Duration::from_secs(2),
        ..ServerConfig::default()
    })
    .await
    .expect("server starts");
    let mut out = fan_out(running.grpc_addr, running.grpc_addr, a, rate, true).await;
    out.note = format!(
        "(ingested {}, conflated {}, events lost {})",
        metric(&running, "crypto_price_updates_total "),
        metric(&running, "crypto_price_updates_conflated_total "),
        metric(&running, "crypto_events_lost_total "),
    );
    let _ = running.stop().await;
    out
}

/// The value of the sample `name` (with its trailing space) in `running`'s
/// metrics.
fn metric(running: &server::Running, name: &str) -> f64 {
    running
        .metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// Two replicas in cluster mode; the feed on replica-a, the subscribers on
/// replica-b.
async fn across_replicas(a: &Args, rate: u64) -> Outcome {
    use crypto_operator::controller::{ControllerConfig, ReplicaConfig};
    use crypto_operator::server::{ClusterConfig, Mode};
    let fake = fake_kube::FakeKube::start().await;
    fake.create(serde_json::json!({
        "apiVersion": format!("{}/{}", fake_kube::CRYPTO_GROUP, fake_kube::CRYPTO_VERSION),
        "kind": "CryptoClient",
        "metadata": {"name": "bench-feed", "namespace": "default"},
        "spec": {"clientId": "bench-feed"},
    }))
    .expect("feed resource");
    let mut replicas = Vec::new();
    for id in ["replica-a", "replica-b"] {
        let running = server::start(ServerConfig {
            grpc_addr: "127.0.0.1:0".parse().expect("addr"),
            http_addr: "127.0.0.1:0".parse().expect("addr"),
            streaming: quiet_sessions(),
            drain_grace: Duration::from_secs(2),
            mode: Mode::Cluster(ClusterConfig {
                client: fake.client().await,
                controller: ControllerConfig {
                    namespaces: vec!["default".into()],
                    replica: ReplicaConfig {
                        id: id.into(),
                        lease_namespace: "default".into(),
                        lease_duration: Duration::from_secs(3),
                        peer_token: Some("bench-peer-token-0123456789".into()),
                        ..ReplicaConfig::default()
                    },
                    ..ControllerConfig::default()
                },
            }),
            ..ServerConfig::default()
        })
        .await
        .expect("replica starts");
        replicas.push(running);
    }
    // replica-b follows replica-a's prices before the feed starts.
    let deadline = Instant::now() + RUN_TIMEOUT;
    while metric(&replicas[1], "crypto_price_peer_links ") < 1.0 {
        assert!(
            Instant::now() < deadline,
            "replica-b never linked to replica-a"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut out = fan_out(replicas[1].grpc_addr, replicas[0].grpc_addr, a, rate, true).await;
    out.note = format!(
        "(ingested on a {}, applied on b {}, conflated on a {} and b {})",
        metric(&replicas[0], "crypto_price_updates_total "),
        metric(&replicas[1], "crypto_price_peer_updates_total "),
        metric(&replicas[0], "crypto_price_updates_conflated_total "),
        metric(&replicas[1], "crypto_price_updates_conflated_total "),
    );
    for r in replicas {
        let _ = r.stop().await;
    }
    out
}

/// The baseline: a bare tonic server with the same two RPCs.
#[derive(Clone)]
struct Baseline {
    tx: broadcast::Sender<PriceTick>,
    lagged: Arc<AtomicU64>,
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl CryptoService for Baseline {
    type StreamPricesStream = BoxStream<PriceTick>;

    async fn get_coin(&self, _: Request<GetCoinRequest>) -> Result<Response<Coin>, Status> {
        Err(Status::unimplemented("baseline"))
    }

    async fn list_coins(
        &self,
        _: Request<ListCoinsRequest>,
    ) -> Result<Response<ListCoinsResponse>, Status> {
        Err(Status::unimplemented("baseline"))
    }

    async fn stream_prices(
        &self,
        request: Request<StreamPricesRequest>,
    ) -> Result<Response<Self::StreamPricesStream>, Status> {
        let symbols = request.into_inner().symbols;
        let lagged = self.lagged.clone();
        let stream = BroadcastStream::new(self.tx.subscribe()).filter_map(move |r| match r {
            Ok(t)
                if symbols.is_empty()
                    || t.update
                        .as_ref()
                        .is_some_and(|u| symbols.contains(&u.symbol)) =>
            {
                Some(Ok(t))
            }
            Ok(_) => None,
            Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(n)) => {
                lagged.fetch_add(n, Ordering::Relaxed);
                None
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

#[tonic::async_trait]
impl CryptoStreamingService for Baseline {
    type ConnectClientStream = BoxStream<ServerCommand>;

    async fn connect_client(
        &self,
        request: Request<Streaming<ClientMessage>>,
    ) -> Result<Response<Self::ConnectClientStream>, Status> {
        let mut inbound = request.into_inner();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let mut seq: HashMap<String, u64> = HashMap::new();
            while let Ok(Some(m)) = inbound.message().await {
                if let Some(Payload::Price(u)) = m.payload {
                    let s = seq.entry(u.symbol.clone()).or_default();
                    *s += 1;
                    let _ = tx.send(PriceTick {
                        update: Some(u),
                        sequence: *s,
                        feed_client_id: m.client_id,
                        received_at: Some(SystemTime::now().into()),
                        snapshot: false,
                        ..Default::default()
                    });
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::pending())))
    }

    async fn send_command_to_client(
        &self,
        _: Request<SendCommandRequest>,
    ) -> Result<Response<SendCommandResponse>, Status> {
        Err(Status::unimplemented("baseline"))
    }

    async fn execute_command_sync(
        &self,
        _: Request<ExecuteCommandRequest>,
    ) -> Result<Response<CommandAck>, Status> {
        Err(Status::unimplemented("baseline"))
    }

    async fn list_clients(
        &self,
        _: Request<ListClientsRequest>,
    ) -> Result<Response<ListClientsResponse>, Status> {
        Err(Status::unimplemented("baseline"))
    }

    async fn get_client(
        &self,
        _: Request<GetClientRequest>,
    ) -> Result<Response<ClientInfo>, Status> {
        Err(Status::unimplemented("baseline"))
    }
}

async fn baseline(a: &Args, rate: u64) -> Outcome {
    // The same per-subscriber buffer as the streaming core's event bus.
    let (tx, _) = broadcast::channel(4096);
    let svc = Baseline {
        tx,
        lagged: Arc::new(AtomicU64::new(0)),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = tokio_util::sync::CancellationToken::new();
    let serve = tokio::spawn(
        tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .add_service(CryptoStreamingServiceServer::new(svc.clone()))
            .add_service(CryptoServiceServer::new(svc.clone()))
            .serve_with_incoming_shutdown(
                // What `Server::serve(addr)` does by default: TCP_NODELAY on.
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                stop.clone().cancelled_owned(),
            ),
    );
    let mut out = fan_out(addr, addr, a, rate, false).await;
    out.note = format!("(lost to lag {})", svc.lagged.load(Ordering::Relaxed));
    stop.cancel();
    serve.abort();
    out
}

fn rate_text(rate: u64) -> String {
    if rate == 0 {
        "unlimited".to_string()
    } else {
        format!("{rate}/s")
    }
}

fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("prices bench: {e}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "price fan-out: {} subscribers, {} updates over {} symbols per run, {} subscribers per connection, {} worker threads",
        a.subscribers,
        a.updates,
        a.symbols,
        a.per_connection,
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
    );
    for &rate in &a.rates {
        let (ours, base) = rt.block_on(async {
            let base = baseline(&a, rate).await;
            let ours = ours(&a, rate).await;
            (ours, base)
        });
        ours.print("ours", &a, rate);
        base.print("baseline", &a, rate);
        println!(
            "ratio ours/baseline at rate {}: updates delivered/s {:.2}x, p99 delay {:.2}x",
            rate_text(rate),
            ours.rate() / base.rate(),
            ours.pct(0.99) / base.pct(0.99)
        );
        if [100, 1000].contains(&rate) {
            let across = rt.block_on(across_replicas(&a, rate));
            across.print("2 pods", &a, rate);
            println!(
                "ratio across replicas/one replica at rate {}: updates delivered/s {:.2}x, p50 delay +{:.2} ms, p99 delay +{:.2} ms",
                rate_text(rate),
                across.rate() / ours.rate(),
                across.pct(0.50) - ours.pct(0.50),
                across.pct(0.99) - ours.pct(0.99)
            );
        }
    }
}
