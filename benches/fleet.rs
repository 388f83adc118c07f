//! Fleet benchmark: the real `crypto-operator serve` (its own process)
//! against a bare tonic baseline (the same service with no logic, its own
//! process), both driven over loopback by a separate load process, in the
//! same run. Scenarios:
//!
//! 1. connect and register N clients (one HTTP/2 connection and one
//!    `ConnectClient` stream each): total time, server RSS per idle client
//!    (/proc VmRSS after connecting minus the empty server's);
//! 2. command round trip, one at a time, N connected: `ExecuteCommandSync`
//!    send → ack, and `SendCommandToClient` → the command on the client's
//!    stream; p50 / p90 / p99 / max;
//! 3. sustained `ExecuteCommandSync` throughput with K in flight;
//! 4. ingest: every client sends wallet updates and heartbeats as fast as
//!    the server takes them; messages/s and server CPU per message;
//! 5. broadcast: a ping to every client at once, until every ack is in;
//! 6. cluster mode against the fake API server (tests/fake-kube):
//!    status writes per second while every client heartbeats each second,
//!    next to the throttle's bound N / `--status-heartbeat-interval`;
//! 7. soak (long, so not part of `all`: `--scenario soak`): every client
//!    heartbeats once per `--soak-heartbeat-every` and gets one
//!    `ExecuteCommandSync` per `--soak-command-every` for `--soak-duration`
//!    (default 10 minutes), on a fresh server each; the server's RSS,
//!    threads, CPU and (ours) /metrics — clients connected, pending acks,
//!    tasks alive — are sampled every `--soak-sample-every`, before the
//!    load and after the clients left, to show whether they stay flat;
//! 8. replicas (not part of `all` either: `--scenario replicas`):
//!    `--replicas` (3) operator processes in cluster mode against the fake
//!    API server, behind the fake's Service (a loopback proxy), with
//!    `--clients` SDK clients per replica; one replica is SIGKILLed: spread
//!    before, its share's reconnect / desired-state / claim times, the
//!    survivors' sessions, status writes per second against the budget and
//!    the fencing replay; next to one replica holding the whole fleet,
//!    killed and replaced at once.
//!
//! Run: `cargo bench --bench fleet -- --clients 1000,10000 --repeat 3`, and
//! the soak: `cargo bench --bench fleet -- --clients 10000 --scenario soak`
//! (flags: `--help`; `--candidate PATH` adds a second operator build to the
//! rotation for before/after comparisons; results in docs/BENCHMARKS.md).
//! `cargo test` runs this target without `--bench`: that is the smoke mode
//! (20 clients, every scenario including a 2-second soak, a few seconds
//! each), which fails when a scenario produces no figures or a process
//! does not exit cleanly.
//!
//! Processes: this binary re-executes itself as `--role baseline-server`
//! and `--role load`; the real server is the `crypto-operator` binary cargo
//! built alongside. Results go to stdout as Markdown tables.
//!
//! Modules: `args` (flags), `orchestrate` (the parent; its children `soak`
//! and `replicas` run scenarios 7 and 8, with `soak_report` for the soak's
//! tables), `load` (the load process; its child `soak_load` is scenario
//! 7's load), `replicas_load` (scenario 8's SDK clients), `baseline`,
//! `report` (figures and the main table), `sys` (/proc, limits, signals).

#[path = "fleet/args.rs"]
mod args;
#[path = "fleet/baseline.rs"]
mod baseline;
#[path = "fleet/load.rs"]
mod load;
#[path = "fleet/orchestrate.rs"]
mod orchestrate;
#[path = "fleet/replicas_load.rs"]
mod replicas_load;
#[path = "fleet/report.rs"]
mod report;
#[path = "fleet/sys.rs"]
mod sys;

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let role = argv
        .iter()
        .position(|a| a == "--role")
        .and_then(|i| argv.get(i + 1))
        .map(String::as_str);
    match role {
        Some("baseline-server") => baseline::main(),
        Some("load") => load::main(&argv),
        Some("replicas-load") => replicas_load::main(&argv),
        Some(other) => {
            eprintln!("fleet: unknown role {other}");
            std::process::exit(2);
        }
        None => orchestrate::main(&argv),
    }
}
