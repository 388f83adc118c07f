//! Command-line flags of the parent process.

use std::path::PathBuf;
use std::time::Duration;

/// The scenarios to run.
#[derive(Debug, Clone, Copy)]
pub struct Scenarios {
    pub connect: bool,
    pub rtt: bool,
    pub throughput: bool,
    pub ingest: bool,
    pub broadcast: bool,
    pub status: bool,
    /// The soak (long; not part of `all`).
    pub soak: bool,
    /// Several replicas and a SIGKILL (not part of `all`).
    pub replicas: bool,
    /// One replica's store of resources held elsewhere.
    pub store: bool,
}

impl Scenarios {
    const ALL: Self = Self {
        connect: true,
        rtt: true,
        throughput: true,
        ingest: true,
        broadcast: true,
        status: true,
        soak: false,
        replicas: false,
        store: true,
    };

    /// Whether anything runs against the standalone servers.
    pub fn standalone(&self) -> bool {
        self.connect || self.rtt || self.throughput || self.ingest || self.broadcast
    }

    fn parse(list: &str) -> Result<Self, String> {
        let mut s = Self {
            connect: false,
            rtt: false,
            throughput: false,
            ingest: false,
            broadcast: false,
            status: false,
            soak: false,
            replicas: false,
            store: false,
        };
        for name in list.split(',').map(str::trim) {
            match name {
                "all" => {
                    s = Self {
                        soak: s.soak,
                        replicas: s.replicas,
                        ..Self::ALL
                    }
                }
                "connect" => s.connect = true,
                "rtt" => s.rtt = true,
                "throughput" => s.throughput = true,
                "ingest" => s.ingest = true,
                "broadcast" => s.broadcast = true,
                "status" => s.status = true,
                "soak" => s.soak = true,
                "replicas" => s.replicas = true,
                "store" => s.store = true,
                other => {
                    return Err(format!(
                        "unknown scenario {other:?} (all, connect, rtt, throughput, ingest, \
                         broadcast, status, store; or soak and replicas, which `all` leaves out)"
                    ));
                }
            }
        }
        Ok(s)
    }
}

/// Flags of `cargo bench --bench fleet -- …`.
#[derive(Debug, Clone)]
pub struct Args {
    /// Fleet sizes, one run each.
    pub clients: Vec<usize>,
    pub scenarios: Scenarios,
    /// Length of each throughput and ingest window.
    pub duration: Duration,
    /// Round-trip samples (each of the two kinds).
    pub samples: usize,
    /// Calls in flight for the throughput scenario.
    pub in_flight: Vec<usize>,
    /// Smoke mode: tiny N, short windows, checks that every scenario
    /// produced figures.
    pub smoke: bool,
    /// `--status-heartbeat-interval` of the operator in scenario 6.
    pub status_interval: Duration,
    /// Window over which scenario 6 counts status writes.
    pub status_window: Duration,
    /// Pause between connecting and reading the server's RSS.
    pub settle: Duration,
    pub connect_concurrency: usize,
    /// The operator's log filter (`--log`); the default is its own default.
    pub server_log: String,
    /// Runs of each server per N (alternating which goes first); the
    /// table shows medians.
    pub repeat: usize,
    /// Run only ours (skip the baseline), e.g. while profiling.
    pub only_ours: bool,
    /// The `crypto-operator` binary (default: the one cargo built).
    pub server_bin: Option<PathBuf>,
    /// Another `crypto-operator` build run alongside (before/after).
    pub candidate: Option<PathBuf>,
    /// Extra flags for `crypto-operator serve`.
    pub server_flags: Vec<String>,
    /// Soak: how long the load runs against each server.
    pub soak_duration: Duration,
    /// Soak: every client heartbeats once per this period.
    pub soak_heartbeat_every: Duration,
    /// Soak: every client gets one `ExecuteCommandSync` per this period.
    pub soak_command_every: Duration,
    /// Soak: how often the parent samples the server.
    pub soak_sample_every: Duration,
    /// Replicas scenario: operator processes (`--clients` is per replica).
    pub replicas: usize,
    /// Replicas scenario: `--lease-duration` of every replica.
    pub lease_duration: Duration,
    /// Replicas scenario: `--min-hold` (the flap bound).
    pub min_hold: Duration,
    /// Replicas scenario: `--holder-grace`.
    pub holder_grace: Duration,
    /// Replicas scenario: `--api-write-qps`, the fleet's status-write budget.
    pub api_write_qps: f64,
    /// Replicas scenario: `--api-write-burst`.
    pub api_write_burst: u32,
}

pub const USAGE: &str = "\
usage: cargo bench --bench fleet -- [--clients N[,N…]] [--scenario all|connect|rtt|throughput|ingest|broadcast|status|store|soak|replicas[,…]]
         [--duration 5s] [--samples 2000] [--in-flight 1,64,256] [--status-interval 5s] [--status-window 20s]
         [--settle 1s] [--connect-concurrency 128] [--repeat 1] [--server-log info] [--server-flag FLAG]… [--only-ours]
         [--server-bin PATH] [--candidate PATH] [--smoke]
         [--soak-duration 10m] [--soak-heartbeat-every 1s] [--soak-command-every 1s] [--soak-sample-every 10s]
         [--replicas 3] [--lease-duration 15s] [--min-hold 5s] [--holder-grace 10s] [--api-write-qps 100]
         [--api-write-burst 500]
--candidate runs a second crypto-operator build in the same rotation (before/after a change).
soak (not part of all): every client heartbeats once per --soak-heartbeat-every and gets one command per
--soak-command-every for --soak-duration, on a fresh server each (ours, then the baseline); the server's RSS,
threads, tasks and pending acks are sampled every --soak-sample-every. --repeat does not apply to it.
replicas (not part of all): --replicas operator processes in cluster mode behind a loopback proxy, --clients
per replica (SDK clients); one replica is SIGKILLed: reconnect and claim times, survivors' sessions, writes
against --api-write-qps, double writes; then the baseline: one replica with --clients, killed and replaced.
store: one replica in cluster mode, no client connected, against --clients resources held by another
replica: its RSS per resource over the same replica against an empty API server.
Without --bench on the command line (cargo test runs benches that way) it runs the smoke mode.";

fn duration(s: &str) -> Result<Duration, String> {
    crypto_operator::cli::parse_duration(s).map_err(|e| format!("{s:?}: {e}"))
}

fn list(s: &str) -> Result<Vec<usize>, String> {
    s.split(',')
        .map(|v| {
            v.trim()
                .replace('_', "")
                .parse()
                .map_err(|e| format!("{v:?}: {e}"))
        })
        .collect()
}

impl Args {
    fn full() -> Self {
        Self {
            clients: vec![1000],
            scenarios: Scenarios::ALL,
            duration: Duration::from_secs(5),
            samples: 2000,
            in_flight: vec![1, 64, 256],
            smoke: false,
            status_interval: Duration::from_secs(5),
            status_window: Duration::from_secs(20),
            settle: Duration::from_secs(1),
            connect_concurrency: 128,
            server_log: "info".into(),
            repeat: 1,
            only_ours: false,
            server_bin: None,
            candidate: None,
            server_flags: Vec::new(),
            soak_duration: Duration::from_secs(600),
            soak_heartbeat_every: Duration::from_secs(1),
            soak_command_every: Duration::from_secs(1),
            soak_sample_every: Duration::from_secs(10),
            replicas: 3,
            lease_duration: Duration::from_secs(15),
            min_hold: Duration::from_secs(5),
            holder_grace: Duration::from_secs(10),
            api_write_qps: crypto_operator::controller::DEFAULT_WRITE_QPS,
            api_write_burst: crypto_operator::controller::DEFAULT_WRITE_BURST,
        }
    }

    fn smoke() -> Self {
        Self {
            clients: vec![20],
            duration: Duration::from_millis(200),
            samples: 30,
            smoke: true,
            status_interval: Duration::from_secs(1),
            status_window: Duration::from_secs(2),
            settle: Duration::from_millis(50),
            connect_concurrency: 20,
            scenarios: Scenarios {
                soak: true,
                replicas: true,
                ..Scenarios::ALL
            },
            soak_duration: Duration::from_secs(2),
            soak_heartbeat_every: Duration::from_millis(200),
            soak_command_every: Duration::from_millis(200),
            soak_sample_every: Duration::from_millis(500),
            // Short Leases and flap bound, as the replica tests use.
            lease_duration: Duration::from_secs(3),
            min_hold: Duration::from_secs(1),
            holder_grace: Duration::from_secs(2),
            ..Self::full()
        }
    }

    /// Parses the flags. Without `--bench` (that is, under `cargo test`)
    /// the defaults are the smoke mode's and unknown flags (the test
    /// harness's) are ignored.
    pub fn parse(argv: &[String]) -> Result<Self, String> {
        let bench = argv.iter().any(|a| a == "--bench");
        let mut a = if bench && !argv.iter().any(|a| a == "--smoke") {
            Self::full()
        } else {
            Self::smoke()
        };
        let mut it = argv.iter();
        while let Some(flag) = it.next() {
            let mut value = || it.next().ok_or(format!("{flag} needs a value"));
            match flag.as_str() {
                "--clients" => a.clients = list(value()?)?,
                "--scenario" | "--scenarios" => a.scenarios = Scenarios::parse(value()?)?,
                "--duration" => a.duration = duration(value()?)?,
                "--samples" => a.samples = list(value()?)?[0],
                "--in-flight" => a.in_flight = list(value()?)?,
                "--status-interval" => a.status_interval = duration(value()?)?,
                "--status-window" => a.status_window = duration(value()?)?,
                "--settle" => a.settle = duration(value()?)?,
                "--connect-concurrency" => a.connect_concurrency = list(value()?)?[0],
                "--server-log" => a.server_log = value()?.clone(),
                "--server-flag" => a.server_flags.push(value()?.clone()),
                "--server-bin" => a.server_bin = Some(PathBuf::from(value()?)),
                "--candidate" => a.candidate = Some(PathBuf::from(value()?)),
                "--repeat" => a.repeat = list(value()?)?[0].max(1),
                "--only-ours" => a.only_ours = true,
                "--soak-duration" => a.soak_duration = duration(value()?)?,
                "--soak-heartbeat-every" => a.soak_heartbeat_every = duration(value()?)?,
                "--soak-command-every" => a.soak_command_every = duration(value()?)?,
                "--soak-sample-every" => a.soak_sample_every = duration(value()?)?,
                "--replicas" => a.replicas = list(value()?)?[0],
                "--lease-duration" => a.lease_duration = duration(value()?)?,
                "--min-hold" => a.min_hold = duration(value()?)?,
                "--holder-grace" => a.holder_grace = duration(value()?)?,
                "--api-write-qps" => {
                    let v = value()?;
                    a.api_write_qps = v.parse().map_err(|e| format!("{v:?}: {e}"))?;
                }
                "--api-write-burst" => {
                    a.api_write_burst =
                        u32::try_from(list(value()?)?[0]).map_err(|e| e.to_string())?;
                }
                "--smoke" | "--bench" => {}
                "-h" | "--help" => return Err(USAGE.into()),
                other if bench => return Err(format!("unknown flag {other}\n{USAGE}")),
                other => eprintln!("[fleet] ignoring {other} (smoke mode)"),
            }
        }
        if a.clients.is_empty() || a.clients.contains(&0) {
            return Err("--clients must be at least 1".into());
        }
        if a.samples == 0 || a.in_flight.contains(&0) || a.status_interval.is_zero() {
            return Err("--samples, --in-flight and --status-interval must be positive".into());
        }
        let soak = [
            a.soak_duration,
            a.soak_heartbeat_every,
            a.soak_command_every,
            a.soak_sample_every,
        ];
        if soak.iter().any(Duration::is_zero) {
            return Err("the --soak-… durations must be positive".into());
        }
        if a.replicas < 2
            || a.api_write_qps.is_nan()
            || a.api_write_qps <= 0.0
            || a.lease_duration.is_zero()
        {
            return Err(
                "--replicas must be at least 2 (one is killed); --api-write-qps and \
                 --lease-duration must be positive"
                    .into(),
            );
        }
        Ok(a)
    }
}
