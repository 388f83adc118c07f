//! The soak's parent side (a child of `orchestrate.rs`): for each server
//! (ours, the candidate if any, then the baseline; each a fresh process),
//! one sample of the empty server, then a load process whose clients
//! heartbeat and take commands for `--soak-duration`, sampled every
//! `--soak-sample-every` (RSS, threads, CPU, and for the operator a scrape
//! of its /metrics), then one sample after every client has left. The
//! question is whether RSS, pending acks and the task count stay flat.

use super::{Kind, Load, Server, http_body, load_config, server_command, start, tail};
use crate::args::Args;
use crate::load::LoadConfig;
use crate::load::soak_load::SoakConfig;
use crate::report::{LoadEvent, LoadReport};
use crate::sys;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

#[path = "soak_report.rs"]
mod table;

/// Most `ExecuteCommandSync` calls the load keeps in flight.
const IN_FLIGHT: usize = 4096;
/// How long a /metrics scrape may take (10,000 clients: a few MB of text).
const SCRAPE_LIMIT: Duration = Duration::from_secs(20);
/// How long the clients' sessions may take to end after the load exits.
const GONE_LIMIT: Duration = Duration::from_secs(30);
/// Tasks alive after the clients left, over the empty server's, that
/// still count as "back to empty".
const TASK_SLACK: f64 = 16.0;

/// Where in the run a sample was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The server before any client.
    Empty,
    Load,
    /// After the load process closed every client and exited.
    After,
    /// [`SETTLE`] later: what an allocator that returns memory on a timer
    /// (jemalloc's decay) has given back by then.
    Settled,
}

/// How long after the clients left the last sample is taken (full run).
pub const SETTLE: Duration = Duration::from_secs(30);

/// Figures from the operator's /metrics (None: not in this build).
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    pub connected: Option<f64>,
    pub pending: Option<f64>,
    pub tasks: Option<f64>,
    pub timed_out: Option<f64>,
    pub ended: Option<f64>,
    pub events_lost: Option<f64>,
    pub acks: Option<f64>,
}

/// The sum over every series of metric `name` in Prometheus text.
fn metric(text: &str, name: &str) -> Option<f64> {
    let mut sum = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let value = match rest.strip_prefix('{') {
            Some(labels) => labels.rsplit_once('}').map(|(_, v)| v),
            None if rest.starts_with(' ') => Some(rest),
            None => None,
        };
        if let Some(v) = value.and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok()) {
            *sum.get_or_insert(0.0) += v;
        }
    }
    sum
}

impl Scrape {
    fn parse(text: &str) -> Self {
        Self {
            connected: metric(text, "crypto_clients_connected"),
            pending: metric(text, "crypto_commands_pending"),
            tasks: metric(text, "crypto_runtime_tasks_alive"),
            timed_out: metric(text, "crypto_commands_timed_out_total"),
            ended: metric(text, "crypto_sessions_ended_total"),
            events_lost: metric(text, "crypto_events_lost_total"),
            acks: metric(text, "crypto_command_acks_total"),
        }
    }

    async fn of(http: SocketAddr) -> Option<Self> {
        let text = http_body(http, "/metrics", SCRAPE_LIMIT).await?;
        Some(Self::parse(&text))
    }
}

/// One reading of the server.
#[derive(Debug, Clone)]
pub struct Sample {
    pub phase: Phase,
    /// Since the load was connected (zero for `Empty`).
    pub at: Duration,
    pub taken: Instant,
    pub rss_kib: Option<u64>,
    pub threads: Option<u64>,
    pub cpu: Option<Duration>,
    /// The operator's /metrics; None for the baseline (or a failed scrape).
    pub scrape: Option<Scrape>,
}

async fn sample(server: &Server, phase: Phase, t0: Option<Instant>) -> Sample {
    let taken = Instant::now();
    let (rss_kib, threads, cpu) = (
        sys::rss_kib(server.pid),
        sys::threads(server.pid),
        sys::cpu_time(server.pid),
    );
    let scrape = match server.http {
        Some(http) => Scrape::of(http).await,
        None => None,
    };
    Sample {
        phase,
        at: t0.map_or(Duration::ZERO, |t| taken.duration_since(t)),
        taken,
        rss_kib,
        threads,
        cpu,
        scrape,
    }
}

/// One server's soak.
pub struct Run {
    pub who: &'static str,
    pub samples: Vec<Sample>,
    pub load: LoadReport,
}

fn log_sample(who: &str, s: &Sample) {
    let f = |v: Option<f64>| v.map_or("—".to_owned(), |v| format!("{v:.0}"));
    let sc = s.scrape.clone().unwrap_or_default();
    eprintln!(
        "[fleet] soak {who} {:?} t={:.1}s: RSS {:.1} MiB, threads {}, tasks {}, pending {}, \
         connected {}",
        s.phase,
        s.at.as_secs_f64(),
        s.rss_kib.unwrap_or(0) as f64 / 1024.0,
        s.threads.unwrap_or(0),
        f(sc.tasks),
        f(sc.pending),
        f(sc.connected)
    );
}

/// Until the operator's /metrics shows no client and nothing pending (or
/// `GONE_LIMIT` passes, or there is no /metrics).
async fn wait_gone(server: &Server) {
    let Some(http) = server.http else { return };
    let deadline = Instant::now() + GONE_LIMIT;
    while Instant::now() < deadline {
        match Scrape::of(http).await {
            Some(s) if s.connected.unwrap_or(0.0) == 0.0 && s.pending.unwrap_or(0.0) == 0.0 => {
                return;
            }
            None => return,
            Some(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn run_one(kind: Kind, n: usize, args: &Args, dir: &Path) -> Result<Run, String> {
    let who = kind.name();
    let name = format!("soak, {who} ({n} clients)");
    let heartbeat = format!("{}ms", args.soak_heartbeat_every.as_millis());
    // Late heartbeats under load must not end sessions.
    let liveness = [
        "--heartbeat-interval",
        heartbeat.as_str(),
        "--stale-after",
        "30s",
        "--dead-after",
        "60s",
    ];
    let cmd = server_command(kind, args, &liveness)?;
    eprintln!("[fleet] {name}: starting");
    let log = dir.join(format!("soak-{who}-{n}.log"));
    let server = start(cmd, name.clone(), log).await?;
    tokio::time::sleep(args.settle).await;
    let mut samples = vec![sample(&server, Phase::Empty, None).await];
    let cfg = LoadConfig {
        rtt: false,
        throughput: false,
        broadcast: false,
        ingest: false,
        status: false,
        soak: Some(SoakConfig {
            heartbeat_ms: args.soak_heartbeat_every.as_millis() as u64,
            command_ms: args.soak_command_every.as_millis() as u64,
            in_flight: IN_FLIGHT,
        }),
        ..load_config(args, &server, n)
    };
    let fail = |e: String| format!("{name}: {e}\nserver log:\n{}", tail(&server.log, 20));
    let mut load = Load::spawn(&cfg)?;
    let limit = Duration::from_secs(120) + Duration::from_millis(n as u64 * 20);
    match load.next(limit).await.map_err(fail)? {
        LoadEvent::Connected { connected } => {
            eprintln!("[fleet] {name}: {connected} clients connected; soaking");
        }
        other => return Err(fail(format!("expected Connected, got {other:?}"))),
    }
    let t0 = Instant::now();
    for k in 0u32.. {
        let at = (args.soak_sample_every * k).min(args.soak_duration);
        tokio::time::sleep_until((t0 + at).into()).await;
        let s = sample(&server, Phase::Load, Some(t0)).await;
        log_sample(who, &s);
        samples.push(s);
        if let Ok(Some(status)) = load.child.try_wait() {
            return Err(fail(format!("the load process exited early ({status})")));
        }
        if at >= args.soak_duration {
            break;
        }
    }
    if let Some(stdin) = load.stdin.as_mut() {
        let _ = stdin.write_all(b"stop\n").await;
    }
    let report = load
        .report(limit + Duration::from_secs(60))
        .await
        .map_err(fail)?;
    load.finish().await.map_err(fail)?;
    wait_gone(&server).await;
    tokio::time::sleep(args.soak_sample_every.min(Duration::from_secs(2))).await;
    let s = sample(&server, Phase::After, Some(t0)).await;
    log_sample(who, &s);
    samples.push(s);
    tokio::time::sleep(if args.smoke {
        Duration::from_secs(1)
    } else {
        SETTLE
    })
    .await;
    let s = sample(&server, Phase::Settled, Some(t0)).await;
    log_sample(who, &s);
    samples.push(s);
    server.stop().await?;
    Ok(Run {
        who,
        samples,
        load: report,
    })
}

/// What must hold for a soak to count (smoke: the harness is not broken).
fn problems(n: usize, run: &Run) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            out.push(format!("soak, {}, {n} clients: {what}", run.who));
        }
    };
    let r = &run.load;
    check(
        r.connected == n && r.connect_failures == 0,
        format!("{} of {n} connected ({:?})", r.connected, r.first_error),
    );
    check(
        r.closed_clean == r.connected && r.closed_other == 0,
        format!(
            "{} streams ended cleanly, {} not",
            r.closed_clean, r.closed_other
        ),
    );
    let Some(soak) = &r.soak else {
        check(false, "no soak figures from the load".into());
        return out;
    };
    check(
        soak.heartbeats_sent > 0,
        format!("no heartbeat sent: {soak:?}"),
    );
    if run.who == "baseline" {
        return out;
    }
    check(soak.commands_ok > 0, format!("no command acked: {soak:?}"));
    check(
        soak.failed() == 0,
        format!("commands failed: {:?}", soak.commands_failed),
    );
    let scrape = |s: &Sample| s.scrape.clone().unwrap_or_default();
    for s in run.samples.iter().filter(|s| s.phase == Phase::Load) {
        let connected = scrape(s).connected;
        check(
            connected == Some(n as f64),
            format!("{connected:?} connected at {:.1} s", s.at.as_secs_f64()),
        );
    }
    match run.samples.iter().find(|s| s.phase == Phase::After) {
        Some(last) => {
            let sc = scrape(last);
            check(
                sc.connected == Some(0.0) && sc.pending == Some(0.0),
                format!(
                    "after the clients left: connected {:?}, pending {:?}",
                    sc.connected, sc.pending
                ),
            );
            let empty = run.samples.first().and_then(|s| scrape(s).tasks);
            check(
                matches!((empty, sc.tasks), (Some(e), Some(a)) if a <= e + TASK_SLACK),
                format!(
                    "tasks alive after the clients left: {:?}, empty server: {empty:?}",
                    sc.tasks
                ),
            );
        }
        None => check(false, "no sample after the clients left".into()),
    }
    out
}

/// The soak against every server for `n` clients; prints the tables and
/// returns what did not hold.
pub async fn run(n: usize, args: &Args, dir: &Path) -> Result<Vec<String>, String> {
    let mut runs = Vec::new();
    for kind in [Kind::Ours, Kind::Candidate, Kind::Baseline] {
        if (kind == Kind::Baseline && args.only_ours)
            || (kind == Kind::Candidate && args.candidate.is_none())
        {
            continue;
        }
        runs.push(run_one(kind, n, args, dir).await?);
    }
    table::print(n, args, &runs);
    Ok(runs.iter().flat_map(|r| problems(n, r)).collect())
}
