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
        };
        for name in list.split(',').map(str::trim) {
            match name {
                "all" => {
                    s = Self {
                        soak: s.soak,
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
                other => {
                    return Err(format!(
                        "unknown scenario {other:?} (all, connect, rtt, throughput, ingest, \
                         broadcast, status; or soak, which `all` leaves out)"
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
}

pub const USAGE: &str = "\
usage: cargo bench --bench fleet -- [--clients N[,N…]] [--scenario all|connect|rtt|throughput|ingest|broadcast|status|soak[,…]]
         [--duration 5s] [--samples 2000] [--in-flight 1,64,256] [--status-interval 5s] [--status-window 20s]
         [--settle 1s] [--connect-concurrency 128] [--repeat 1] [--server-log info] [--server-flag FLAG]… [--only-ours]
         [--server-bin PATH] [--candidate PATH] [--smoke]
         [--soak-duration 10m] [--soak-heartbeat-every 1s] [--soak-command-every 1s] [--soak-sample-every 10s]
--candidate runs a second crypto-operator build in the same rotation (before/after a change).
soak (not part of all): every client heartbeats once per --soak-heartbeat-every and gets one command per
--soak-command-every for --soak-duration, on a fresh server each (ours, then the baseline); the server's RSS,
threads, tasks and pending acks are sampled every --soak-sample-every. --repeat does not apply to it.
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
                ..Scenarios::ALL
            },
            soak_duration: Duration::from_secs(2),
            soak_heartbeat_every: Duration::from_millis(200),
            soak_command_every: Duration::from_millis(200),
            soak_sample_every: Duration::from_millis(500),
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
        Ok(a)
    }
}
