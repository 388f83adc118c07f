//! The parent process: starts each server as its own process (the real
//! `crypto-operator serve`, then the bare tonic baseline), drives it from a
//! separate load process, runs scenario 6 against the fake API server, and
//! prints the table. The soak's parent side is in `soak.rs`.

use super::args::Args;
use super::load::{LoadConfig, client_id};
use super::report::{self, LoadEvent, LoadReport, StatusResult};
use super::sys;
use fake_kube::{CRYPTO_GROUP as G, CRYPTO_PLURAL as P, CRYPTO_VERSION as V, FakeKube};
use serde_json::json;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

#[path = "replicas.rs"]
mod replicas;
#[path = "soak.rs"]
mod soak;
#[path = "store.rs"]
mod store;

/// Which server a run is against.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Baseline,
    Ours,
    /// `--candidate`: another build of the operator.
    Candidate,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Baseline => "baseline",
            Kind::Ours => "ours",
            Kind::Candidate => "candidate",
        }
    }
}

/// A server process.
struct Server {
    child: Child,
    pid: u32,
    grpc: SocketAddr,
    http: Option<SocketAddr>,
    log: PathBuf,
    name: String,
}

/// The last lines of a log file, for error messages.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `name=ADDR` in a text log line.
fn addr_after(line: &str, name: &str) -> Option<SocketAddr> {
    let start = line.find(&format!("{name}="))? + name.len() + 1;
    line[start..].split_whitespace().next()?.parse().ok()
}

/// The `crypto-operator` binary cargo built for this bench's profile
/// (building it when it is missing).
fn server_bin(args: &Args) -> Result<PathBuf, String> {
    if let Some(p) = &args.server_bin {
        return Ok(p.clone());
    }
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_crypto-operator"));
    if !bin.exists() {
        let mut cmd = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()));
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["build", "--bin", "crypto-operator"]);
        if !cfg!(debug_assertions) {
            cmd.arg("--release");
        }
        eprintln!("[fleet] {} is missing; running {cmd:?}", bin.display());
        let ok = cmd.status().is_ok_and(|s| s.success());
        if !ok || !bin.exists() {
            return Err(format!(
                "{} is missing; build it with `cargo build{} --bin crypto-operator`",
                bin.display(),
                if cfg!(debug_assertions) {
                    ""
                } else {
                    " --release"
                }
            ));
        }
    }
    Ok(bin)
}

/// Starts a server with stderr going to `log`, and reads its addresses from
/// the "serving" line.
async fn start(mut cmd: Command, name: String, log: PathBuf) -> Result<Server, String> {
    let file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{name}: cannot start: {e}"))?;
    let pid = child.id().ok_or("no pid")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = text
            .lines()
            .find(|l| l.contains("serving") && l.contains("grpc_addr="))
        {
            let grpc =
                addr_after(line, "grpc_addr").ok_or(format!("{name}: no address in {line:?}"))?;
            return Ok(Server {
                http: addr_after(line, "http_addr"),
                child,
                pid,
                grpc,
                log,
                name,
            });
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "{name} exited ({status}) before serving:\n{}",
                tail(&log, 20)
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{name}: no serving line within 60 s:\n{}",
                tail(&log, 20)
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Server {
    /// SIGTERM, then the exit status must be 0.
    async fn stop(mut self) -> Result<(), String> {
        sys::terminate(self.pid);
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(Ok(st)) if st.success() => Ok(()),
            Ok(Ok(st)) => Err(format!(
                "{} exited with {st} after SIGTERM:\n{}",
                self.name,
                tail(&self.log, 20)
            )),
            Ok(Err(e)) => Err(format!("{}: {e}", self.name)),
            Err(_) => {
                let _ = self.child.kill().await;
                Err(format!("{} did not exit within 30 s of SIGTERM", self.name))
            }
        }
    }
}

/// A load process.
struct Load {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    stdin: Option<ChildStdin>,
}

impl Load {
    fn spawn(cfg: &LoadConfig) -> Result<Self, String> {
        Self::spawn_role(
            "load",
            serde_json::to_string(cfg).map_err(|e| e.to_string())?,
        )
    }

    /// This binary as `--role <role> --config <config>`.
    fn spawn_role(role: &str, config: String) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .args(["--role", role, "--config"])
            .arg(config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("load: cannot start: {e}"))?;
        let lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
        let stdin = child.stdin.take();
        Ok(Self {
            child,
            lines,
            stdin,
        })
    }

    async fn next(&mut self, limit: Duration) -> Result<LoadEvent, String> {
        let read = async {
            while let Some(line) = self.lines.next_line().await.map_err(|e| e.to_string())? {
                if let Ok(ev) = serde_json::from_str::<LoadEvent>(&line) {
                    return Ok(ev);
                }
                eprintln!("[fleet load stdout] {line}");
            }
            Err("the load process exited without a report".to_owned())
        };
        tokio::time::timeout(limit, read)
            .await
            .map_err(|_| format!("no word from the load process within {limit:?}"))?
    }

    async fn report(&mut self, limit: Duration) -> Result<LoadReport, String> {
        match self.next(limit).await? {
            LoadEvent::Report { report } => Ok(*report),
            other => Err(format!("expected the report, got {other:?}")),
        }
    }

    async fn finish(mut self) -> Result<(), String> {
        drop(self.stdin.take());
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(Ok(st)) if st.success() => Ok(()),
            Ok(Ok(st)) => Err(format!("the load process exited with {st}")),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("the load process did not exit".into()),
        }
    }
}

/// The operator's log filter: the user's, plus what the harness needs (the
/// "serving" line with the bound addresses).
fn server_log(args: &Args) -> String {
    format!("{},crypto_operator::server=info", args.server_log)
}

fn load_config(args: &Args, server: &Server, n: usize) -> LoadConfig {
    let s = args.scenarios;
    LoadConfig {
        addr: server.grpc,
        server_pid: server.pid,
        clients: n,
        rtt: s.rtt,
        throughput: s.throughput,
        broadcast: s.broadcast,
        ingest: s.ingest,
        status: false,
        heartbeat_ms: 1000,
        duration_ms: args.duration.as_millis() as u64,
        samples: args.samples,
        in_flight: args.in_flight.clone(),
        settle_ms: args.settle.as_millis() as u64,
        connect_concurrency: args.connect_concurrency,
        soak: None,
    }
}

/// Generous bound on one load run.
fn run_limit(args: &Args, n: usize) -> Duration {
    let windows = args.duration * (args.in_flight.len() as u32 + 1);
    Duration::from_secs(120) + windows * 3 + Duration::from_millis(n as u64 * 20)
}

/// The command that starts a standalone server of `kind`; `liveness`:
/// the operator's heartbeat flags.
fn server_command(kind: Kind, args: &Args, liveness: &[&str]) -> Result<Command, String> {
    Ok(match kind {
        Kind::Baseline => {
            let mut c = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
            c.args(["--role", "baseline-server"]);
            c
        }
        Kind::Ours | Kind::Candidate => {
            let bin = match (kind, &args.candidate) {
                (Kind::Candidate, Some(c)) => c.clone(),
                _ => server_bin(args)?,
            };
            let mut c = Command::new(bin);
            c.args([
                "serve",
                "--standalone",
                "--grpc-addr",
                "127.0.0.1:0",
                "--http-addr",
                "127.0.0.1:0",
                "--ping-interval",
                "0s",
                "--drain-grace",
                "5s",
            ])
            .args(liveness)
            .args(&args.server_flags)
            .env("CRYPTO_LOG", server_log(args))
            .env("CRYPTO_LOG_FORMAT", "text")
            // Ingest sends as fast as the server takes it: the per-client
            // rate limit (1,000/s by default) is raised, not removed, so its
            // check is still measured. Env, not flags: builds without them
            // still run.
            .env("CRYPTO_MAX_MESSAGES_PER_SECOND", "100000000")
            .env("CRYPTO_MESSAGE_BURST", "100000000")
            // The connect scenario measures connecting, and its load
            // does not retry: no registration rate (issue 15's admission
            // limit is measured in the replicas scenario).
            .env("CRYPTO_MAX_REGISTRATIONS_PER_SECOND", "0")
            .env_remove("KUBECONFIG");
            c
        }
    })
}

/// Scenarios 1–5 against one server.
async fn standalone(kind: Kind, n: usize, args: &Args, dir: &Path) -> Result<LoadReport, String> {
    let name = format!("{} ({n} clients)", kind.name());
    let log = dir.join(format!("{}-{n}.log", kind.name()));
    // No staleness during the run: clients are idle.
    let cmd = server_command(kind, args, &["--heartbeat-interval", "300s"])?;
    eprintln!("[fleet] {name}: starting");
    let server = start(cmd, name.clone(), log).await?;
    let mut load = Load::spawn(&load_config(args, &server, n))?;
    let report = match load.report(run_limit(args, n)).await {
        Ok(r) => r,
        Err(e) => {
            return Err(format!(
                "{name}: {e}\nserver log:\n{}",
                tail(&server.log, 20)
            ));
        }
    };
    load.finish().await.map_err(|e| format!("{name}: {e}"))?;
    server.stop().await?;
    Ok(report)
}

/// A CryptoClient for client `name`.
fn crypto_client(name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "crypto.fleet.dev/v1alpha1",
        "kind": "CryptoClient",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {}
    })
}

/// A plain HTTP/1.0 GET within `limit`; the whole response.
async fn http_get(addr: SocketAddr, path: &str, limit: Duration) -> Option<String> {
    let fetch = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await
            .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        Some(String::from_utf8_lossy(&buf).into_owned())
    };
    tokio::time::timeout(limit, fetch).await.ok()?
}

/// A plain HTTP/1.0 GET; the status code.
async fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let response = http_get(addr, path, Duration::from_secs(5)).await?;
    response.get(9..12)?.parse().ok()
}

/// A plain HTTP/1.0 GET; the body of a 200 response.
async fn http_body(addr: SocketAddr, path: &str, limit: Duration) -> Option<String> {
    let response = http_get(addr, path, limit).await?;
    if response.get(9..12)? != "200" {
        return None;
    }
    let (_, body) = response.split_once("\r\n\r\n")?;
    Some(body.to_owned())
}

/// Waits (60 s at most) until the operator's `/readyz` answers 200.
async fn wait_ready(server: &Server) -> Result<(), String> {
    let http = server.http.ok_or("no http_addr in the serving line")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while http_status(http, "/readyz").await != Some(200) {
        if Instant::now() > deadline {
            return Err(format!(
                "{}: not ready in 60 s:\n{}",
                server.name,
                tail(&server.log, 20)
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// `crypto-operator serve` in cluster mode against `kubeconfig` on
/// loopback ports, `extra` flags, then `--server-flag`s. Client tokens
/// (Secrets named by each resource) are not what the cluster scenarios
/// measure: off, by env rather than a flag so builds without it still run.
fn cluster_serve(args: &Args, kubeconfig: &Path, extra: &[&str]) -> Result<Command, String> {
    let mut cmd = Command::new(server_bin(args)?);
    cmd.args([
        "serve",
        "--grpc-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
    ])
    .args(extra)
    .args(&args.server_flags)
    .env("KUBECONFIG", kubeconfig)
    .env("CRYPTO_REQUIRE_CLIENT_AUTH", "false")
    .env("CRYPTO_LOG", server_log(args))
    .env("CRYPTO_LOG_FORMAT", "text");
    Ok(cmd)
}

/// Scenario 6: the operator in cluster mode against the fake API server;
/// every client heartbeats once a second; status writes are counted in the
/// fake's request log.
async fn status(n: usize, args: &Args, dir: &Path) -> Result<StatusResult, String> {
    let name = format!("ours, cluster mode ({n} clients)");
    let fake = FakeKube::start().await;
    for i in 0..n {
        fake.create(crypto_client(&client_id(i)))
            .map_err(|e| format!("fake: {e:?}"))?;
    }
    let kubeconfig = fake.write_kubeconfig(dir);
    let status_every = format!("{}ms", args.status_interval.as_millis());
    let cmd = cluster_serve(
        args,
        &kubeconfig,
        &[
            "--ping-interval",
            "0s",
            "--heartbeat-interval",
            "1s",
            // A late heartbeat under load must not flip phases (extra writes).
            "--stale-after",
            "30s",
            "--dead-after",
            "60s",
            "--drain-grace",
            "5s",
            "--status-heartbeat-interval",
            &status_every,
        ],
    )?;
    eprintln!("[fleet] {name}: starting");
    let server = start(cmd, name.clone(), dir.join(format!("cluster-{n}.log"))).await?;
    wait_ready(&server).await?;
    let cfg = LoadConfig {
        status: true,
        rtt: false,
        throughput: false,
        broadcast: false,
        ingest: false,
        ..load_config(args, &server, n)
    };
    let mut load = Load::spawn(&cfg)?;
    let limit = run_limit(args, n);
    match load.next(limit).await? {
        LoadEvent::Connected { connected } if connected == n => {}
        other => {
            return Err(format!(
                "{name}: expected every client connected, got {other:?}"
            ));
        }
    }
    // Wait until the operator has written every client's Connected phase,
    // then count writes over the window.
    let t0 = Instant::now();
    let converge_limit = Duration::from_secs(60) + Duration::from_millis(n as u64 * 10);
    loop {
        let all = fake
            .wait_for(
                |st| {
                    st.list(G, V, P, Some("default"))
                        .iter()
                        .filter(|o| o["status"]["phase"] == "Connected")
                        .count()
                        == n
                },
                Duration::ZERO,
            )
            .await;
        if all {
            break;
        }
        if t0.elapsed() > converge_limit {
            return Err(format!(
                "{name}: not every resource Connected in {converge_limit:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let converge = t0.elapsed();
    fake.clear_log();
    let started = Instant::now();
    tokio::time::sleep(args.status_window).await;
    let writes = fake.count(|r| r.method == "PATCH" && r.is_status());
    let window = started.elapsed();
    if let Some(stdin) = load.stdin.as_mut() {
        let _ = stdin.write_all(b"stop\n").await;
    }
    let report = load.report(limit).await?;
    load.finish().await.map_err(|e| format!("{name}: {e}"))?;
    server.stop().await?;
    fake.shutdown().await;
    let interval = args.status_interval;
    let windows = window.as_secs_f64() / interval.as_secs_f64();
    Ok(StatusResult {
        clients: n,
        interval,
        window,
        converge,
        writes,
        per_sec: writes as f64 / window.as_secs_f64(),
        bound_per_sec: n as f64 / interval.as_secs_f64(),
        allowed_writes: (n as f64 * (windows + 1.0)).floor() as usize,
        heartbeats: report.heartbeats,
    })
}

/// What must hold for a run to count (smoke: the harness is not broken).
fn problems(who: &str, n: usize, args: &Args, r: &LoadReport) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |ok: bool, what: &str| {
        if !ok {
            out.push(format!("{who}, {n} clients: {what}"));
        }
    };
    let s = args.scenarios;
    check(
        r.connected == n && r.connect_failures == 0,
        &format!("{} of {n} connected ({:?})", r.connected, r.first_error),
    );
    check(r.connect_ms > 0.0, "no connect time");
    check(
        r.rss_empty_kib > 0 && r.rss_connected_kib > 0,
        "no RSS reading",
    );
    if s.rtt {
        for (name, l) in [
            ("ExecuteCommandSync", &r.rtt_sync),
            ("stream", &r.rtt_stream),
        ] {
            check(
                l.as_ref()
                    .is_some_and(|l| l.samples == args.samples && l.errors == 0 && l.p50_us > 0.0),
                &format!("{name} round trips: {l:?}"),
            );
        }
    }
    if s.throughput {
        check(
            r.throughput.len() == args.in_flight.len()
                && r.throughput.iter().all(|t| t.acks > 0 && t.errors == 0),
            &format!("throughput: {:?}", r.throughput),
        );
    }
    if s.broadcast {
        check(
            r.broadcast
                .as_ref()
                .is_some_and(|b| b.acks == n && b.errors == 0),
            &format!("broadcast: {:?}", r.broadcast),
        );
    }
    if s.ingest {
        check(
            r.ingest
                .as_ref()
                .is_some_and(|i| i.messages > 0 && i.errors == 0),
            &format!("ingest: {:?}", r.ingest),
        );
    }
    check(
        r.closed_clean == r.connected && r.closed_other == 0,
        &format!(
            "{} streams ended cleanly, {} not",
            r.closed_clean, r.closed_other
        ),
    );
    out
}

/// One line of key figures of one run (for repeated runs).
fn summary(who: &str, r: &LoadReport) {
    let mut parts = vec![
        format!("connect {:.0} ms", r.connect_ms),
        format!("RSS/client {:.1} KiB", r.rss_per_client_kib),
    ];
    if let Some(l) = &r.rtt_sync {
        parts.push(format!(
            "rtt p50 {:.3} ms p99 {:.3} ms",
            l.p50_us / 1e3,
            l.p99_us / 1e3
        ));
    }
    for t in &r.throughput {
        parts.push(format!("K{} {:.0}/s", t.k, t.per_sec));
    }
    if let Some(i) = &r.ingest {
        parts.push(format!(
            "ingest {:.0}/s ({:.2} µs CPU/msg)",
            i.per_sec, i.server_cpu_us_per_msg
        ));
    }
    if let Some(b) = &r.broadcast {
        parts.push(format!("broadcast {:.0} ms", b.total_ms));
    }
    println!("- {who}: {}", parts.join(", "));
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn details(who: &str, r: &LoadReport) {
    let mut parts = vec![format!(
        "{who}: connected {}/{} (failures {})",
        r.connected, r.clients, r.connect_failures
    )];
    if let Some(i) = &r.ingest {
        parts.push(format!(
            "ingest {} msgs in {:.2} s (barrier {:.0} ms), server CPU {:.2} s = {:.0} % of one \
             core, load process CPU {:.0} % of one core",
            i.messages,
            i.secs,
            i.barrier_ms,
            i.server_cpu_secs,
            100.0 * i.server_cpu_secs / i.secs,
            100.0 * i.load_cpu_secs / i.secs
        ));
    }
    let errors: u64 = r.throughput.iter().map(|t| t.errors).sum();
    parts.push(format!("throughput errors {errors}"));
    parts.push(format!(
        "streams closed cleanly {}/{}",
        r.closed_clean, r.connected
    ));
    println!("- {}", parts.join("; "));
}

async fn run(args: Args) -> Result<Vec<String>, String> {
    let now = k8s_openapi::jiff::Timestamp::now();
    println!("## fleet benchmark, {}", now.strftime("%Y-%m-%d %H:%M UTC"));
    println!();
    println!("- machine: {}", sys::machine());
    println!("- load average at start: {}", loadavg());
    println!(
        "- command: `{}`",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    println!(
        "- mode: {}; server: {}; server log filter `{}`",
        if args.smoke { "smoke" } else { "full" },
        server_bin(&args)?.display(),
        args.server_log
    );
    if let Some(c) = &args.candidate {
        println!("- candidate: {}", c.display());
    }
    println!();
    let dir = std::env::temp_dir().join(format!("crypto-fleet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut issues = Vec::new();
    let outcome: Result<(), String> = async {
        for &n in &args.clients {
            if args.scenarios.standalone() {
                let (mut all_ours, mut all_base, mut all_cand) =
                    (Vec::new(), Vec::new(), Vec::new());
                for rep in 0..args.repeat {
                    // Alternate which server goes first, against drift.
                    let mut order = vec![Kind::Baseline, Kind::Ours, Kind::Candidate];
                    if rep % 2 == 1 {
                        order.reverse();
                    }
                    for kind in order {
                        if (kind == Kind::Baseline && args.only_ours)
                            || (kind == Kind::Candidate && args.candidate.is_none())
                        {
                            continue;
                        }
                        let r = standalone(kind, n, &args, &dir).await?;
                        issues.extend(problems(kind.name(), n, &args, &r));
                        if args.repeat > 1 {
                            summary(&format!("run {} {}", rep + 1, kind.name()), &r);
                        }
                        match kind {
                            Kind::Ours => all_ours.push(r),
                            Kind::Baseline => all_base.push(r),
                            Kind::Candidate => all_cand.push(r),
                        }
                    }
                }
                let ours = report::median(&all_ours);
                let base = if args.only_ours {
                    LoadReport::default()
                } else {
                    report::median(&all_base)
                };
                println!(
                    "### {n} clients{}",
                    if args.repeat > 1 {
                        format!(" (medians of {} runs each)", args.repeat)
                    } else {
                        String::new()
                    }
                );
                println!();
                let cand = (!all_cand.is_empty())
                    .then(|| report::rows(n, &report::median(&all_cand), &base));
                report::print_with(&report::rows(n, &ours, &base), cand.as_deref());
                println!();
                details("ours", &ours);
                if !all_cand.is_empty() {
                    details("candidate", &report::median(&all_cand));
                }
                if !args.only_ours {
                    details("baseline", &base);
                }
            }
            if args.scenarios.status {
                let s = status(n, &args, &dir).await?;
                if s.writes == 0 || s.heartbeats == 0 {
                    issues.push(format!("status, {n} clients: no figures ({s:?})"));
                }
                println!();
                report::print(&[report::status_row(&s)]);
                println!(
                    "- {} status writes in {:.1} s; allowed with one edge write per client: {}; \
                 {} heartbeats sent; every resource Connected {:.1} s after the clients were",
                    s.writes,
                    s.window.as_secs_f64(),
                    s.allowed_writes,
                    s.heartbeats,
                    s.converge.as_secs_f64()
                );
            }
            if args.scenarios.store {
                let s = store::run(n, &args, &dir).await?;
                if s.synced_kib == 0 || s.empty_kib == 0 {
                    issues.push(format!("store, {n} resources: no RSS"));
                }
                println!();
                println!(
                    "| 7. fleet-wide store | resources held elsewhere | replica RSS, empty API server | \
                     replica RSS, caches synced | per resource |"
                );
                println!("|---|---:|---:|---:|---:|");
                println!(
                    "| one replica, no client connected | {} | {:.1} MiB | {:.1} MiB | {:.2} KiB |",
                    s.resources,
                    s.empty_kib as f64 / 1024.0,
                    s.synced_kib as f64 / 1024.0,
                    s.per_resource_kib()
                );
            }
            if args.scenarios.soak {
                issues.extend(soak::run(n, &args, &dir).await?);
            }
            if args.scenarios.replicas {
                issues.extend(replicas::run(n, &args, &dir).await?);
            }
            println!();
        }
        Ok(())
    }
    .await;
    if let Err(e) = outcome {
        return Err(format!("{e}\n(server logs kept in {})", dir.display()));
    }
    println!("- load average at the end: {}", loadavg());
    if issues.is_empty() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("[fleet] server logs kept in {}", dir.display());
    }
    Ok(issues)
}

/// The parent process.
pub fn main(argv: &[String]) {
    let args = match Args::parse(argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fleet bench: {e}");
            std::process::exit(2);
        }
    };
    let most = args.clients.iter().max().copied().unwrap_or(0) as u64;
    // The replicas scenario's Service (here) holds two sockets per client.
    // The store scenario connects no client.
    let sc = args.scenarios;
    let need = if sc.replicas {
        2 * most * args.replicas as u64
    } else if sc.standalone() || sc.status || sc.soak {
        most
    } else {
        0
    } + 512;
    if let Err(e) = sys::raise_nofile(need) {
        eprintln!("fleet bench: {e}");
        std::process::exit(2);
    }
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let smoke = args.smoke;
    let result = rt.block_on(run(args));
    rt.shutdown_timeout(Duration::from_secs(2));
    let issues = match result {
        Ok(issues) => issues,
        Err(e) => {
            eprintln!("fleet bench failed: {e}");
            if smoke {
                panic!("fleet smoke run failed: {e}");
            }
            std::process::exit(1);
        }
    };
    for i in &issues {
        eprintln!("fleet bench: {i}");
    }
    eprintln!("[fleet] done in {:.1} s", started.elapsed().as_secs_f64());
    if !issues.is_empty() {
        if smoke {
            panic!(
                "fleet smoke run: {} scenario(s) produced no figures",
                issues.len()
            );
        }
        std::process::exit(1);
    }
}
