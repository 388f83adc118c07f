//! The replicas scenario's parent side (a child of `orchestrate.rs`):
//! `--replicas` real `crypto-operator serve` processes in cluster mode
//! against the fake API server, behind the fake's Service (a loopback
//! proxy that picks a live backend per connection), with
//! `--replicas × --clients` SDK clients in a load process
//! (`replicas_load.rs`). Once every resource is Connected it measures the
//! spread, SIGKILLs one replica and follows its share: client reconnects,
//! desired state delivered, claims written (from the fake's request log),
//! the survivors' sessions, status writes per second against the budget,
//! and the fencing replay (double writes). The baseline in the same run is
//! one replica with the same number of clients (`--clients`), killed and
//! replaced at once by a new process: the same crowd reconnecting, when
//! one active replica holds everything.

use super::{Load, Server, server_bin, server_log, start, wait_ready};
use crate::args::Args;
use crate::load::{client_id, exec, operators, throughput};
use crate::replicas_load::ReplicasLoadConfig;
use crate::report::{ClientMove, Latency, LoadEvent, Throughput};
use fake_kube::service::Service;
use fake_kube::{CRYPTO_GROUP as G, CRYPTO_PLURAL as P, CRYPTO_VERSION as V, FakeKube, audit};
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

const NS: &str = "default";
const PEER_TOKEN: &str = "fleet-bench-peer-token-0123456789";

/// What one run measured.
#[derive(Debug, Default)]
struct Figures {
    replicas: usize,
    clients: usize,
    /// Sessions per replica before the kill (from `status.holder`).
    spread: BTreeMap<String, usize>,
    /// Largest distance from the mean, in % of the mean.
    spread_dev_pct: f64,
    /// `ListClients` of the whole fleet in pages of 1,000 through the
    /// last replica: clients listed, and how long it took.
    listed: usize,
    list_time: Duration,
    /// Clients of the killed replica.
    share: usize,
    /// Kill → each of them Connected on a new session.
    reconnect: Latency,
    /// Kill → the new session delivered the desired state.
    delivered: Latency,
    /// Kill → the claim (Connected, held by a live replica) accepted.
    claim: Latency,
    /// Kill → every resource of the share claimed (or the limit).
    converge: Duration,
    /// Resources of the share not claimed within the limit.
    unclaimed: usize,
    /// Clients of the share not connected at the end.
    not_connected: usize,
    /// The share's clients not back when the share converged.
    not_back: usize,
    /// Clients of the live replicas whose session changed.
    survivors_ended: usize,
    /// Accepted status writes from the kill to convergence, per second.
    writes_per_sec: f64,
    /// The most accepted status writes in one second.
    writes_peak_1s: usize,
    /// Fencing replay over the same span.
    accepted: usize,
    rejected: usize,
    violations: Vec<String>,
}

/// Lease, grace and flap bound for a run (the product's defaults in the
/// full run, short in the smoke run).
fn membership_flags(args: &Args) -> Vec<String> {
    let s = |d: Duration| format!("{}ms", d.as_millis());
    vec![
        "--lease-duration".into(),
        s(args.lease_duration),
        "--holder-grace".into(),
        s(args.holder_grace),
        "--min-hold".into(),
        s(args.min_hold),
        "--api-write-qps".into(),
        args.api_write_qps.to_string(),
        "--api-write-burst".into(),
        args.api_write_burst.to_string(),
    ]
}

/// Starts replica `id` and waits until it is ready.
async fn spawn_replica(
    id: &str,
    args: &Args,
    kubeconfig: &Path,
    dir: &Path,
) -> Result<Server, String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let grpc = format!("127.0.0.1:{port}");
    let mut cmd = Command::new(server_bin(args)?);
    cmd.args([
        "serve",
        "--grpc-addr",
        &grpc,
        "--advertise-addr",
        &grpc,
        "--http-addr",
        "127.0.0.1:0",
        "--replica-id",
        id,
        "--drain-grace",
        "5s",
    ])
    .args(membership_flags(args))
    .args(&args.server_flags)
    .env("KUBECONFIG", kubeconfig)
    .env("CRYPTO_PEER_TOKEN", PEER_TOKEN)
    .env("CRYPTO_REQUIRE_CLIENT_AUTH", "false")
    .env("CRYPTO_LOG", server_log(args))
    .env("CRYPTO_LOG_FORMAT", "text");
    let name = format!("replica {id}");
    let server = start(cmd, name, dir.join(format!("replica-{id}.log"))).await?;
    wait_ready(&server).await?;
    Ok(server)
}

/// Name -> (holder replica, session) of every Connected, held resource.
fn holders(fake: &FakeKube) -> HashMap<String, (String, String)> {
    fake.list(G, V, P, Some(NS))
        .iter()
        .filter(|o| o["status"]["phase"] == "Connected")
        .filter_map(|o| {
            let h = &o["status"]["holder"];
            Some((
                o["metadata"]["name"].as_str()?.to_owned(),
                (
                    h["replica"].as_str()?.to_owned(),
                    h["sessionId"].as_str()?.to_owned(),
                ),
            ))
        })
        .collect()
}

/// Polls until `done` holds of the holders, or `limit`.
async fn wait_holders(
    fake: &FakeKube,
    limit: Duration,
    mut done: impl FnMut(&HashMap<String, (String, String)>) -> bool,
) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done(&holders(fake)) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        // Each look lists every resource (the fake serves the replicas
        // from this process too): a few per second is enough.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// How long a share of `n` claims may take: the budget's pace, twice,
/// plus a minute.
fn converge_limit(args: &Args, n: usize) -> Duration {
    Duration::from_secs(60) + Duration::from_secs_f64(2.0 * n as f64 / args.api_write_qps)
}

/// Every client `ListClients` returns through `addr`, in pages of 1,000.
async fn list_all(addr: std::net::SocketAddr) -> Result<usize, String> {
    let mut op = operators(addr, 1).await?.remove(0);
    let (mut n, mut token) = (0, String::new());
    loop {
        let page = op
            .list_clients(crypto_operator::proto::ListClientsRequest {
                page_size: 1000,
                page_token: std::mem::take(&mut token),
                ..Default::default()
            })
            .await
            .map_err(|s| format!("ListClients: {s}"))?
            .into_inner();
        if page.partial {
            return Err(format!("a partial list: {:?}", page.missing_replicas));
        }
        n += page.clients.len();
        if page.next_page_token.is_empty() {
            return Ok(n);
        }
        token = page.next_page_token;
    }
}

/// Starts the load's SDK clients against `endpoint` and waits until every
/// one is connected and every resource Connected and held.
async fn start_fleet(
    fake: &FakeKube,
    endpoint: String,
    names: &[String],
    args: &Args,
) -> Result<Load, String> {
    let n = names.len();
    let limit = converge_limit(args, n);
    let cfg = ReplicasLoadConfig {
        endpoint,
        ids: names.to_vec(),
        connect_limit_ms: limit.as_millis() as u64,
    };
    let mut load = Load::spawn_role(
        "replicas-load",
        serde_json::to_string(&cfg).map_err(|e| e.to_string())?,
    )?;
    match load.next(limit).await? {
        LoadEvent::Connected { connected } if connected == n => {}
        other => return Err(format!("expected every client connected, got {other:?}")),
    }
    if !wait_holders(fake, limit, |h| h.len() == n).await {
        return Err(format!(
            "{} of {n} resources Connected and held within {limit:?}",
            holders(fake).len()
        ));
    }
    Ok(load)
}

/// A CryptoClient per name (with a `config` when `config`).
fn create_resources(fake: &FakeKube, names: &[String], config: bool) -> Result<(), String> {
    for n in names {
        let spec = if config {
            json!({"clientId": n, "config": {"pool": "eu"}})
        } else {
            json!({"clientId": n})
        };
        fake.create(json!({
            "apiVersion": format!("{G}/{V}"),
            "kind": "CryptoClient",
            "metadata": {"name": n, "namespace": NS},
            "spec": spec,
        }))
        .map_err(|e| format!("fake: {e:?}"))?;
    }
    Ok(())
}

/// One run: `ids` replicas (the first is killed), `per` clients each;
/// `replace` starts a new replica right after the kill.
#[allow(clippy::too_many_lines)]
async fn run_one(
    ids: &[&str],
    per: usize,
    replace: Option<&str>,
    args: &Args,
    dir: &Path,
) -> Result<Figures, String> {
    let total = ids.len() * per;
    let fake = FakeKube::start().await;
    let names: Vec<String> = (0..total).map(client_id).collect();
    create_resources(&fake, &names, true)?;
    let kubeconfig = fake.write_kubeconfig(dir);
    let mut live: Vec<(String, Server)> = Vec::new();
    for id in ids {
        eprintln!("[fleet] replicas: starting {id}");
        live.push((
            (*id).to_owned(),
            spawn_replica(id, args, &kubeconfig, dir).await?,
        ));
    }
    let service = Service::start(live.iter().map(|(_, s)| s.grpc).collect()).await;
    let mut load = start_fleet(&fake, service.url(), &names, args)
        .await
        .map_err(|e| format!("replicas: {e}"))?;
    let mut f = Figures {
        replicas: ids.len(),
        clients: total,
        ..Figures::default()
    };
    let before = holders(&fake);
    for (replica, _) in before.values() {
        *f.spread.entry(replica.clone()).or_default() += 1;
    }
    let mean = total as f64 / ids.len() as f64;
    f.spread_dev_pct = ids
        .iter()
        .map(|id| (f.spread.get(*id).copied().unwrap_or(0) as f64 - mean).abs() / mean * 100.0)
        .fold(0.0, f64::max);

    // The whole fleet through one replica (it merges every replica's
    // pages).
    let lister = live.last().map(|(_, s)| s.grpc).ok_or("no replica")?;
    let t0 = Instant::now();
    f.listed = list_all(lister).await?;
    f.list_time = t0.elapsed();

    // Mark, then SIGKILL the first replica; the Service stops sending it
    // connections (as kube-proxy drops an endpoint that is gone).
    let stdin = load.stdin.as_mut().ok_or("no stdin")?;
    stdin
        .write_all(b"mark\n")
        .await
        .map_err(|e| e.to_string())?;
    match load.next(Duration::from_secs(30)).await? {
        LoadEvent::Marked { .. } => {}
        other => return Err(format!("replicas: expected Marked, got {other:?}")),
    }
    let from = fake.requests().len();
    let dead = ids[0].to_owned();
    let (_, mut victim) = live.remove(0);
    service.set_backends(live.iter().map(|(_, s)| s.grpc).collect());
    let killed_at = Instant::now();
    victim.child.start_kill().map_err(|e| e.to_string())?;
    let _ = victim.child.wait().await;
    eprintln!("[fleet] replicas: killed {dead}");
    if let Some(id) = replace {
        live.push((
            id.to_owned(),
            spawn_replica(id, args, &kubeconfig, dir).await?,
        ));
        service.set_backends(live.iter().map(|(_, s)| s.grpc).collect());
    }
    let share: HashSet<&String> = before
        .iter()
        .filter(|(_, (r, _))| *r == dead)
        .map(|(n, _)| n)
        .collect();
    f.share = share.len();
    let limit = converge_limit(args, share.len());
    let converged = wait_holders(&fake, limit, |h| {
        share
            .iter()
            .all(|n| h.get(*n).is_some_and(|(r, _)| *r != dead))
    })
    .await;
    f.converge = killed_at.elapsed();
    if !converged {
        let now = holders(&fake);
        f.unclaimed = share
            .iter()
            .filter(|n| now.get(**n).is_none_or(|(r, _)| *r == dead))
            .count();
        eprintln!(
            "[fleet] replicas: {} of the killed replica's {} resources not claimed within {limit:?}",
            f.unclaimed,
            share.len()
        );
    }
    let log = fake.requests();
    let stdin = load.stdin.as_mut().ok_or("no stdin")?;
    stdin
        .write_all(b"report\n")
        .await
        .map_err(|e| e.to_string())?;
    let moves: Vec<ClientMove> = match load.next(Duration::from_secs(60)).await? {
        LoadEvent::Moved { clients } => clients,
        other => return Err(format!("replicas: expected Moved, got {other:?}")),
    };

    let ms = |v: f64| Duration::from_secs_f64(v / 1e3);
    let (mut reconnect, mut delivered) = (Vec::new(), Vec::new());
    for m in &moves {
        let on_dead = before.get(&m.id).is_some_and(|(r, _)| *r == dead);
        if on_dead {
            if m.now.is_none() {
                f.not_connected += 1;
            }
            match m.reconnect_ms {
                Some(v) => reconnect.push(ms(v)),
                None => f.not_back += 1,
            }
            if let Some(v) = m.config_ms {
                delivered.push(ms(v));
            }
        } else if m.now != m.before {
            f.survivors_ended += 1;
        }
    }
    let share_len = share.len();
    f.reconnect = Latency::of(reconnect, f.not_back);
    f.delivered = Latency::of(delivered.clone(), share_len - delivered.len());
    // Claims: the first accepted status write after the kill that left a
    // live holder on each resource of the share.
    let mut claimed: HashMap<String, Duration> = HashMap::new();
    let mut per_second: BTreeMap<u64, usize> = BTreeMap::new();
    let mut writes = 0usize;
    for rec in &log[from..] {
        if rec.method != "PATCH" || !rec.is_status() || !rec.accepted() {
            continue;
        }
        let at = rec.at.saturating_duration_since(killed_at);
        writes += 1;
        *per_second.entry(at.as_secs()).or_default() += 1;
        let Some(name) = rec
            .path
            .strip_suffix("/status")
            .and_then(|p| p.rsplit('/').next())
        else {
            continue;
        };
        let holder = rec
            .response
            .as_ref()
            .and_then(|r| r["status"]["holder"]["replica"].as_str());
        if share.contains(&name.to_owned()) && holder.is_some_and(|h| h != dead) {
            claimed.entry(name.to_owned()).or_insert(at);
        }
    }
    f.claim = Latency::of(claimed.into_values().collect(), 0);
    f.writes_per_sec = writes as f64 / f.converge.as_secs_f64();
    f.writes_peak_1s = per_second.values().copied().max().unwrap_or(0);
    let report = audit::replay(&log, from);
    f.accepted = report.accepted;
    f.rejected = report.rejected.len();
    f.violations = report.violations;

    load.finish().await?;
    for (_, s) in live {
        s.stop().await?;
    }
    drop(service);
    fake.shutdown().await;
    Ok(f)
}

fn print(multi: &Figures, single: &Figures, args: &Args) {
    let ms = |l: &Latency| format!("{:.0} / {:.0}", l.p50_us / 1e3, l.p99_us / 1e3);
    let spread = |f: &Figures| {
        f.spread
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "### replicas: {} × {} clients, one replica SIGKILLed",
        multi.replicas,
        multi.clients / multi.replicas.max(1)
    );
    println!();
    println!(
        "budget `--api-write-qps {}` `--api-write-burst {}`; `--lease-duration {:?}` \
         `--holder-grace {:?}` `--min-hold {:?}`",
        args.api_write_qps,
        args.api_write_burst,
        args.lease_duration,
        args.holder_grace,
        args.min_hold
    );
    println!();
    println!(
        "| | {} replicas × {}, one killed | baseline: 1 replica × {}, killed and replaced at once |",
        multi.replicas,
        multi.clients / multi.replicas.max(1),
        single.clients
    );
    println!("|---|---|---|");
    let row = |what: &str, cell: &dyn Fn(&Figures) -> String| {
        println!("| {what} | {} | {} |", cell(multi), cell(single));
    };
    let lat = |l: fn(&Figures) -> &Latency| move |f: &Figures| ms(l(f));
    row("sessions per replica before", &spread);
    row("spread: largest distance from the mean", &|f| {
        if f.replicas > 1 {
            format!("{:.1} %", f.spread_dev_pct)
        } else {
            "—".into()
        }
    });
    row(
        "ListClients, all in pages of 1,000 (through one replica)",
        &|f| format!("{} in {:.0} ms", f.listed, f.list_time.as_secs_f64() * 1e3),
    );
    row("clients whose session ended", &|f| {
        format!("{} of {}", f.share, f.clients)
    });
    row(
        "reconnected on a new session, p50 / p99 ms",
        &lat(|f| &f.reconnect),
    );
    row(
        "desired state delivered, p50 / p99 ms",
        &lat(|f| &f.delivered),
    );
    row("claim written, p50 / p99 ms", &lat(|f| &f.claim));
    row("every claim written", &|f| {
        format!("{:.1} s", f.converge.as_secs_f64())
    });
    row("not claimed within the limit", &|f| f.unclaimed.to_string());
    row("not back at the end / not connected then", &|f| {
        format!("{} / {}", f.not_back, f.not_connected)
    });
    row("survivors' sessions ended", &|f| {
        if f.replicas > 1 {
            f.survivors_ended.to_string()
        } else {
            "—".into()
        }
    });
    row("status writes/s (peak in 1 s)", &|f| {
        format!("{:.0} ({})", f.writes_per_sec, f.writes_peak_1s)
    });
    row("fenced writes: accepted / rejected / double writes", &|f| {
        format!("{} / {} / {}", f.accepted, f.rejected, f.violations.len())
    });
    println!();
}

/// What must hold for the run to count.
fn problems(f: &Figures, who: &str) -> Vec<String> {
    let mut out = Vec::new();
    if f.share == 0 || f.reconnect.samples == 0 || f.claim.samples == 0 {
        out.push(format!("replicas ({who}): no figures ({f:?})"));
    }
    if f.unclaimed > 0 {
        out.push(format!(
            "replicas ({who}): {} of {} resources of the killed replica not claimed",
            f.unclaimed, f.share
        ));
    }
    for v in f.violations.iter().take(5) {
        out.push(format!("replicas ({who}): double write: {v}"));
    }
    out
}

/// Forwarded calls next to local ones.
#[derive(Debug, Default)]
struct ForwardFigures {
    clients: usize,
    local: Latency,
    forwarded: Latency,
    local_k: Throughput,
    forwarded_k: Throughput,
}

/// In flight for the throughput comparison (issue 15's figure).
const FORWARD_IN_FLIGHT: usize = 64;

/// The cost of a hop: two replicas, `n` SDK clients connected straight to
/// the first; `ExecuteCommandSync` pings through the first (local) and
/// the second (forwarded one hop), alternating, one at a time; then
/// `FORWARD_IN_FLIGHT` in flight through each for `--duration`.
async fn forwarding(n: usize, args: &Args, dir: &Path) -> Result<ForwardFigures, String> {
    let fake = FakeKube::start().await;
    let names: Vec<String> = (0..n).map(client_id).collect();
    create_resources(&fake, &names, false)?;
    let kubeconfig = fake.write_kubeconfig(dir);
    // Every client on the first on purpose: no rebalancing.
    let mut args = args.clone();
    args.server_flags
        .extend(["--rebalance-rate".to_owned(), "0".to_owned()]);
    let args = &args;
    let a = spawn_replica("fwd-a", args, &kubeconfig, dir).await?;
    let b = spawn_replica("fwd-b", args, &kubeconfig, dir).await?;
    // Replica-b must know the holder: every claim written and watched.
    let load = start_fleet(&fake, format!("http://{}", a.grpc), &names, args)
        .await
        .map_err(|e| format!("forwarding: {e}"))?;
    let ops_a = operators(a.grpc, 4).await?;
    let ops_b = operators(b.grpc, 4).await?;
    let (mut op_a, mut op_b) = (ops_a[0].clone(), ops_b[0].clone());
    let pick = || names[fastrand::usize(..names.len())].clone();
    for _ in 0..args.samples.min(100) {
        let _ = exec(&mut op_a, &pick()).await;
        let _ = exec(&mut op_b, &pick()).await;
    }
    let (mut local, mut forwarded) = (Vec::new(), Vec::new());
    let (mut local_err, mut forwarded_err) = (0, 0);
    for _ in 0..args.samples {
        let t0 = Instant::now();
        match exec(&mut op_a, &pick()).await {
            Ok(()) => local.push(t0.elapsed()),
            Err(_) => local_err += 1,
        }
        let t0 = Instant::now();
        match exec(&mut op_b, &pick()).await {
            Ok(()) => forwarded.push(t0.elapsed()),
            Err(_) => forwarded_err += 1,
        }
    }
    let ids = std::sync::Arc::new(names);
    let local_k = throughput(&ids, &ops_a, FORWARD_IN_FLIGHT, args.duration).await;
    let forwarded_k = throughput(&ids, &ops_b, FORWARD_IN_FLIGHT, args.duration).await;
    load.finish().await?;
    a.stop().await?;
    b.stop().await?;
    fake.shutdown().await;
    Ok(ForwardFigures {
        clients: n,
        local: Latency::of(local, local_err),
        forwarded: Latency::of(forwarded, forwarded_err),
        local_k,
        forwarded_k,
    })
}

fn print_forwarding(f: &ForwardFigures) {
    println!(
        "### forwarded calls: 2 replicas, {} clients on the first, ExecuteCommandSync ping",
        f.clients
    );
    println!();
    println!("| | local (through the holder) | forwarded (through the other replica) | added |");
    println!("|---|---|---|---|");
    let ms = |us: f64| format!("{:.3} ms", us / 1e3);
    for (what, l, r) in [
        ("p50", f.local.p50_us, f.forwarded.p50_us),
        ("p90", f.local.p90_us, f.forwarded.p90_us),
        ("p99", f.local.p99_us, f.forwarded.p99_us),
    ] {
        println!("| {what} | {} | {} | {} |", ms(l), ms(r), ms(r - l));
    }
    println!(
        "| errors | {} of {} | {} of {} | |",
        f.local.errors,
        f.local.samples + f.local.errors,
        f.forwarded.errors,
        f.forwarded.samples + f.forwarded.errors
    );
    println!(
        "| {} in flight | {:.0} acks/s | {:.0} acks/s | {:.2}× |",
        f.local_k.k,
        f.local_k.per_sec,
        f.forwarded_k.per_sec,
        f.forwarded_k.per_sec / f.local_k.per_sec.max(1.0)
    );
    println!();
}

/// The scenario: `per` clients per replica.
pub async fn run(per: usize, args: &Args, dir: &Path) -> Result<Vec<String>, String> {
    let ids: Vec<String> = (0..args.replicas).map(|i| format!("replica-{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let multi = run_one(&ids, per, None, args, dir).await?;
    eprintln!("[fleet] replicas: {multi:?}");
    // The baseline: one active replica with the same share, all of which
    // its death ends.
    let single = run_one(&["single-0"], per, Some("single-1"), args, dir).await?;
    print(&multi, &single, args);
    let mut out = problems(&multi, "several");
    out.extend(problems(&single, "baseline"));
    let fwd = forwarding(per.min(1000), args, dir).await?;
    print_forwarding(&fwd);
    if fwd.forwarded.samples == 0 || fwd.forwarded_k.acks == 0 {
        out.push(format!("forwarding: no figures ({fwd:?})"));
    }
    Ok(out)
}
