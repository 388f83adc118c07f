//! The control plane against the fake Kubernetes API server
//! (tests/fake-kube, a test double) with real gRPC clients: spec
//! changes reach clients as commands, acks come back as status, and the
//! operator survives watch restarts, API errors and malformed resources.

use crate::support;

use crypto_operator::client::ClientType;
use crypto_operator::commands;
use crypto_operator::controller::{ControllerConfig, ReplicaConfig};
use crypto_operator::proto::{
    Heartbeat, SendCommandRequest, client_message::Payload, server_command::Command,
};
use crypto_operator::server::{self, ClusterConfig, Mode, Running, ServerConfig};
use crypto_operator::streaming::StreamingConfig;
use serde_json::{Value, json};
use std::time::Duration;
use support::cluster::{self, cc, connect_converged, expect_command};
use support::fake_kube::{CRYPTO_GROUP as G, CRYPTO_PLURAL as P, CRYPTO_VERSION as V, FakeKube};
use support::process::{http_get, wait_http_ready};
use support::*;
use tonic::Code;

const NS: &str = "default";

fn controller_config(status_every: Duration) -> ControllerConfig {
    ControllerConfig {
        namespaces: Vec::new(),
        status_heartbeat_interval: status_every,
        concurrency: 16,
        api_timeout: crypto_operator::controller::DEFAULT_API_TIMEOUT,
        ..ControllerConfig::default()
    }
}

async fn start_cluster(
    fake: &FakeKube,
    streaming: StreamingConfig,
    controller: ControllerConfig,
) -> Running {
    init_logs();
    let running = server::start(ServerConfig {
        mode: Mode::Cluster(ClusterConfig {
            client: fake.client().await,
            controller,
        }),
        ..test_config(streaming)
    })
    .await
    .expect("server starts");
    wait_ready(&running).await;
    running
}

/// [`start_cluster`] with calm timings and a 30 s status heartbeat.
async fn start_calm(fake: &FakeKube) -> Running {
    start_cluster(
        fake,
        calm_config(),
        controller_config(Duration::from_secs(30)),
    )
    .await
}

fn patch_spec(fake: &FakeKube, name: &str, spec: Value) {
    fake.merge_patch(G, V, P, NS, name, json!({"spec": spec}))
        .expect("patch");
}

/// Waits until the resource matches `pred`; returns it.
async fn wait_cc(
    fake: &FakeKube,
    name: &str,
    what: &str,
    pred: impl FnMut(&Value) -> bool,
) -> Value {
    wait_cc_within(fake, name, what, WAIT, pred).await
}

/// [`wait_cc`] with its own limit (recovery waits include kube's watch
/// backoff, up to several seconds per failure).
async fn wait_cc_within(
    fake: &FakeKube,
    name: &str,
    what: &str,
    limit: Duration,
    pred: impl FnMut(&Value) -> bool,
) -> Value {
    cluster::Cluster::wait_cc(fake, name, what, limit, pred).await
}

#[tokio::test]
async fn pause_and_resume_reach_the_client_and_come_back_as_status() {
    let fake = FakeKube::start().await;
    let running = start_calm(&fake).await;
    cluster::pause_and_resume(&fake, running.grpc_addr).await;
    running.stop().await.unwrap();
}

#[tokio::test]
async fn config_changes_are_pushed_with_their_hash_and_applied_on_ack() {
    let fake = FakeKube::start().await;
    let running = start_calm(&fake).await;
    cluster::config_change(&fake, running.grpc_addr).await;
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_refused_config_is_recorded_with_a_warning_event_and_not_resent() {
    let fake = FakeKube::start().await;
    fake.create(cc(NS, "cfg-2", json!({"config": {"mode": "slow"}})))
        .unwrap();
    let running = start_calm(&fake).await;
    let mut c = connect_converged(&fake, running.grpc_addr, "cfg-2", "cfg-2").await;
    patch_spec(&fake, "cfg-2", json!({"config": {"mode": "broken"}}));
    let cmd = expect_command(&mut c, "update_config").await;
    c.ack(&cmd.command_id, false).await;
    let o = wait_cc(&fake, "cfg-2", "config failed", |o| {
        o["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "ConfigApplied" && c["reason"] == "ConfigFailed")
        })
    })
    .await;
    assert_eq!(o["status"]["lastCommand"]["state"], "Failed");
    assert_eq!(o["status"]["lastCommand"]["message"], "refused");
    fake.wait_for(
        |st| st.events().iter().any(|e| e["reason"] == "CommandFailed"),
        WAIT,
    )
    .await
    .then_some(())
    .expect("CommandFailed event");
    // Not re-sent in a loop: the next command is the next spec change.
    patch_spec(&fake, "cfg-2", json!({"paused": true}));
    let next = c.command().await;
    assert!(matches!(next.command, Some(Command::Pause(_))), "{next:?}");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn sync_requested_sends_exactly_one_sync_and_resets_the_spec() {
    let fake = FakeKube::start().await;
    let running = start_calm(&fake).await;
    cluster::sync_once(&fake, running.grpc_addr).await;
    fake.wait_for(
        |st| st.events().iter().any(|e| e["reason"] == "SyncCompleted"),
        WAIT,
    )
    .await
    .then_some(())
    .expect("SyncCompleted event");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn an_offline_client_receives_the_desired_state_when_it_connects() {
    let fake = FakeKube::start().await;
    let running = start_calm(&fake).await;
    cluster::offline_then_connect(&fake, running.grpc_addr).await;
    fake.wait_for(
        |st| {
            let reasons: Vec<_> = st
                .events()
                .iter()
                .map(|e| e["reason"].as_str().unwrap_or("").to_string())
                .collect();
            reasons.contains(&"ClientConnected".to_string())
                && reasons.contains(&"ClientDisconnected".to_string())
        },
        WAIT,
    )
    .await
    .then_some(())
    .expect("connect and disconnect events");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn unknown_clients_are_refused_and_deleting_a_resource_ends_its_session() {
    let fake = FakeKube::start().await;
    let running = start_calm(&fake).await;
    cluster::unknown_refused_and_delete_ends_session(&fake, running.grpc_addr).await;
    running.stop().await.unwrap();
}

/// Polls `/metrics` until `pred` holds (each poll is one scrape).
async fn until_metrics(http: std::net::SocketAddr, what: &str, mut pred: impl FnMut(&str) -> bool) {
    poll_until(what, WAIT, Duration::from_millis(20), async || {
        pred(&http_get(http, "/metrics").await.1).then_some(())
    })
    .await;
}

#[tokio::test]
async fn per_resource_series_carry_resource_labels_and_go_with_the_resource() {
    let fake = FakeKube::start().await;
    fake.create(cc(NS, "known", json!({"clientId": "known-1"})))
        .unwrap();
    fake.create(cc(NS, "absent", json!({}))).unwrap();
    let running = start_calm(&fake).await;
    let http = running.http_addr;
    until_metrics(http, "a resource without a client is down", |m| {
        m.contains("crypto_client_up{client_id=\"absent\",name=\"absent\",namespace=\"default\"} 0")
    })
    .await;
    let c = connect_converged(&fake, running.grpc_addr, "known", "known-1").await;
    until_metrics(http, "a connected client is up with its heartbeat", |m| {
        m.contains("crypto_client_up{client_id=\"known-1\",name=\"known\",namespace=\"default\"} 1")
            && m.contains("crypto_client_last_heartbeat_timestamp_seconds{client_id=\"known-1\",name=\"known\",namespace=\"default\"}")
    })
    .await;
    drop(c);
    until_metrics(
        http,
        "a disconnected client is down, its heartbeat series gone",
        |m| {
            m.contains(
                "crypto_client_up{client_id=\"known-1\",name=\"known\",namespace=\"default\"} 0",
            ) && !m.contains("crypto_client_last_heartbeat_timestamp_seconds{client_id=\"known-1\"")
        },
    )
    .await;
    fake.delete(G, V, P, NS, "known").unwrap();
    until_metrics(http, "a deleted resource leaves no series", |m| {
        !m.contains("client_id=\"known-1\"")
    })
    .await;
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_failed_sync_is_recorded_and_retried_with_backoff() {
    let fake = FakeKube::start().await;
    fake.create(cc(NS, "sync-2", json!({}))).unwrap();
    let running = start_calm(&fake).await;
    let mut c = connect_converged(&fake, running.grpc_addr, "sync-2", "sync-2").await;
    patch_spec(&fake, "sync-2", json!({"syncRequested": true}));
    let first = c.command().await;
    assert!(matches!(first.command, Some(Command::SyncWallets(_))));
    let t0 = std::time::Instant::now();
    c.ack(&first.command_id, false).await;
    wait_cc(&fake, "sync-2", "SyncRetrying", |o| {
        o["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Synced" && c["reason"] == "SyncRetrying")
        })
    })
    .await;
    let retry = c.command().await;
    assert!(
        matches!(retry.command, Some(Command::SyncWallets(_))),
        "{retry:?}"
    );
    assert_ne!(
        retry.command_id, first.command_id,
        "a retry is a new command"
    );
    assert!(
        t0.elapsed() >= Duration::from_secs(2),
        "retried after the 2 s backoff, not at once"
    );
    assert_eq!(
        fake.get(G, V, P, NS, "sync-2").unwrap()["spec"]["syncRequested"],
        true,
        "still requested"
    );
    c.ack(&retry.command_id, true).await;
    wait_cc(&fake, "sync-2", "reset", |o| {
        o["spec"]["syncRequested"] == false
    })
    .await;
    running.stop().await.unwrap();
}

#[tokio::test]
async fn operators_cannot_pause_or_configure_a_managed_client_but_can_ping_and_sync() {
    let fake = FakeKube::start().await;
    fake.create(cc(NS, "managed", json!({}))).unwrap();
    let running = start_calm(&fake).await;
    let mut c = connect_converged(&fake, running.grpc_addr, "managed", "managed").await;
    let mut op = operator(running.grpc_addr).await;
    for body in [
        commands::pause("x"),
        commands::resume(),
        commands::update_config(Default::default()),
    ] {
        let err = op
            .send_command_to_client(SendCommandRequest {
                client_id: "managed".into(),
                command: Some(commands::new(body)),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert!(
            err.message().contains("CryptoClient default/managed"),
            "{}",
            err.message()
        );
    }
    for body in [commands::ping(), commands::sync_wallets(vec![])] {
        assert!(execute_acked(running.grpc_addr, &mut c, body).await.success);
    }
    running.stop().await.unwrap();
}

#[tokio::test]
async fn stale_heartbeats_show_as_phase_stale_at_once() {
    let fake = FakeKube::start().await;
    fake.create(cc(NS, "quiet", json!({}))).unwrap();
    let streaming = StreamingConfig {
        stale_after: Duration::from_millis(1500),
        dead_after: Duration::from_secs(60),
        ..fast_config()
    };
    let running = start_cluster(&fake, streaming, controller_config(Duration::from_secs(30))).await;
    let c = connect_converged(&fake, running.grpc_addr, "quiet", "quiet").await;
    let o = wait_cc(&fake, "quiet", "Stale", |o| o["status"]["phase"] == "Stale").await;
    let healthy = o["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Healthy")
        .unwrap();
    assert_eq!(healthy["status"], "False");
    c.send(Payload::Heartbeat(Heartbeat { sequence: 1 })).await;
    wait_cc(&fake, "quiet", "fresh again", |o| {
        o["status"]["phase"] == "Connected"
    })
    .await;
    running.stop().await.unwrap();
}

#[tokio::test]
async fn the_controller_survives_410_gone_api_errors_and_malformed_resources() {
    let fake = FakeKube::start().await;
    fake.create(cc(NS, "bad", json!({"paused": "definitely"})))
        .unwrap();
    fake.create(cc(NS, "good-1", json!({}))).unwrap();
    let running = start_calm(&fake).await;
    wait_cc(
        &fake,
        "good-1",
        "reconciled despite a malformed neighbour",
        |o| o["status"]["phase"] == "Pending",
    )
    .await;
    let (_, metrics) = http_get(running.http_addr, "/metrics").await;
    assert!(
        metrics.contains("crypto_resources_invalid_total 1"),
        "{metrics}"
    );

    fake.force_gone();
    fake.create(cc(NS, "good-2", json!({}))).unwrap();
    wait_cc_within(
        &fake,
        "good-2",
        "seen after 410",
        Duration::from_secs(60),
        |o| o["status"]["phase"] == "Pending",
    )
    .await;

    fake.drop_watches();
    fake.fail_next(3, 500);
    fake.create(cc(NS, "good-3", json!({}))).unwrap();
    wait_cc_within(
        &fake,
        "good-3",
        "seen after errors and dropped watches",
        Duration::from_secs(60),
        |o| o["status"]["phase"] == "Pending",
    )
    .await;
    // A sync request made while the API was failing is not lost.
    fake.fail_next(2, 500);
    patch_spec(&fake, "good-3", json!({"syncRequested": true}));
    let mut c = RawClient::connect(running.grpc_addr, "good-3").await;
    let cmd = expect_command(&mut c, "sync_wallets").await;
    c.ack(&cmd.command_id, true).await;
    wait_cc_within(&fake, "good-3", "sync done", Duration::from_secs(60), |o| {
        o["spec"]["syncRequested"] == false
    })
    .await;
    running.stop().await.unwrap();
}

#[tokio::test]
async fn status_writes_stay_within_the_heartbeat_throttle() {
    const CLIENTS: usize = 100;
    let fake = FakeKube::start().await;
    for i in 0..CLIENTS {
        fake.create(cc(NS, &format!("hb-{i}"), json!({}))).unwrap();
    }
    let streaming = StreamingConfig {
        heartbeat_interval: Duration::from_secs(1),
        ..calm_config()
    };
    let every = Duration::from_secs(3);
    let running = start_cluster(&fake, streaming, controller_config(every)).await;
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        clients.push(
            connect_converged(
                &fake,
                running.grpc_addr,
                &format!("hb-{i}"),
                &format!("hb-{i}"),
            )
            .await,
        );
    }
    fake.clear_log();
    let started = std::time::Instant::now();
    // Every client heartbeats once a second for 12 s (four intervals).
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    for seq in 0..12u64 {
        tick.tick().await;
        for c in &clients {
            c.send(Payload::Heartbeat(Heartbeat { sequence: seq }))
                .await;
        }
    }
    let elapsed = started.elapsed();
    let writes = fake.count(|r| r.method == "PATCH" && r.is_status());
    // At most one heartbeat write per client per interval (+1 for the
    // window edges); 1,200 heartbeats arrived.
    let allowed = CLIENTS * (elapsed.as_secs() as usize / every.as_secs() as usize + 2);
    assert!(
        writes <= allowed,
        "{writes} status writes > {allowed} allowed"
    );
    assert!(writes >= CLIENTS, "heartbeats are written at all: {writes}");
    let (_, metrics) = http_get(running.http_addr, "/metrics").await;
    assert!(metrics.contains("crypto_status_writes_total"));
    running.stop().await.unwrap();
}

#[tokio::test]
async fn every_replica_is_ready_and_a_newer_session_on_another_replica_wins() {
    let fake = FakeKube::start().await;
    fake.create(cc(NS, "ha-1", json!({}))).unwrap();
    let replica = |id: &str| ControllerConfig {
        replica: ReplicaConfig {
            id: id.into(),
            lease_namespace: NS.into(),
            lease_duration: Duration::from_secs(3),
            min_hold: Duration::from_secs(1),
            ..ReplicaConfig::default()
        },
        ..controller_config(Duration::from_secs(30))
    };
    let a = start_cluster(&fake, calm_config(), replica("replica-a")).await;
    let b = start_cluster(&fake, calm_config(), replica("replica-b")).await;
    for r in [&a, &b] {
        assert_eq!(
            http_get(r.http_addr, "/readyz").await.0,
            200,
            "every replica is ready"
        );
    }
    let leases = fake.list("coordination.k8s.io", "v1", "leases", Some(NS));
    let names: std::collections::BTreeSet<&str> = leases
        .iter()
        .filter_map(|l| l["metadata"]["name"].as_str())
        .collect();
    for want in [
        "crypto-operator-replica-replica-a",
        "crypto-operator-replica-replica-b",
        "crypto-operator-janitor",
    ] {
        assert!(names.contains(want), "{want} in {names:?}");
    }
    let mut c = connect_converged(&fake, a.grpc_addr, "ha-1", "ha-1").await;
    let o = wait_cc(&fake, "ha-1", "held by replica-a", |o| {
        o["status"]["holder"]["replica"] == "replica-a"
    })
    .await;
    assert_eq!(o["status"]["holder"]["sessionId"], c.session_id.as_str());

    // The same client at B: admitted (once --min-hold has passed since the
    // claim, if B already saw it; unit-tested in the index), the newer
    // session claims the resource and A's session ends ABORTED, naming B.
    let mut moved = poll_until(
        "B admits the client",
        WAIT,
        Duration::from_millis(200),
        async || {
            let (tx, mut inbound) =
                open(b.grpc_addr, msg("ha-1", register(ClientType::WalletSync))).await;
            match tokio::time::timeout(WAIT, inbound.message()).await.ok()? {
                Ok(Some(first)) => Some((tx, inbound, first)),
                _ => None,
            }
        },
    )
    .await;
    assert!(matches!(moved.2.command, Some(Command::Registered(_))));
    let status = c.end_status().await;
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    assert!(status.message().contains("replica-b"), "{status:?}");
    wait_cc(&fake, "ha-1", "held by replica-b", |o| {
        o["status"]["holder"]["replica"] == "replica-b" && o["status"]["phase"] == "Connected"
    })
    .await;
    drop(moved.0);
    let _ = moved.1.message().await;
    b.stop().await.unwrap();
    a.stop().await.unwrap();
}

#[tokio::test]
async fn serve_finds_the_cluster_through_kubeconfig() {
    let fake = FakeKube::start().await;
    // Cluster mode requires client tokens by default: the resource names a
    // Secret holding this client's token.
    fake.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bin-1-token", "namespace": NS}, "data": {"token": "YmluLTEtdG9rZW4tMDEyMzQ1"}})).unwrap();
    fake.create(cc(NS, "bin-1", json!({"paused": true, "auth": {"tokenSecretRef": {"name": "bin-1-token", "key": "token"}}}))).unwrap();
    let dir = std::env::temp_dir().join(format!("crypto-kube-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = fake.write_kubeconfig(&dir);
    let server = support::process::serve_with_env(
        &["--log-format", "json"],
        &[("KUBECONFIG", kubeconfig.as_os_str())],
    )
    .await;
    let (grpc, http) = (server.grpc, server.http);
    // Like a Service, send the client only once the pod is ready.
    wait_http_ready(http).await;
    let (_tx, mut inbound) = open(grpc, msg("bin-1", register(ClientType::WalletSync))).await;
    assert_eq!(
        end_status(&mut inbound).await.code(),
        Code::Unauthenticated,
        "no token in cluster mode"
    );
    let mut c = RawClient::connect_with_token(grpc, "bin-1", "bin-1-token-012345").await;
    assert_eq!(
        cluster::ack_kinds(&mut c, 2).await,
        ["pause", "update_config"]
    );
    wait_cc(&fake, "bin-1", "Paused via the binary", |o| {
        o["status"]["phase"] == "Paused"
    })
    .await;
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `serve` in cluster mode against `fake`, ready (its `/readyz` answers 200).
async fn serve_cluster(fake: &FakeKube, dir: &std::path::Path) -> support::process::ServeProcess {
    let kubeconfig = fake.write_kubeconfig(dir);
    let server = support::process::serve_with_env(
        &["--require-client-auth=false"],
        &[("KUBECONFIG", kubeconfig.as_os_str())],
    )
    .await;
    wait_http_ready(server.http).await;
    server
}

/// Acks every command of `c` until a `sync_wallets` arrives; returns it
/// unacked.
async fn until_sync(c: &mut RawClient) -> crypto_operator::proto::ServerCommand {
    loop {
        let cmd = c.command().await;
        if matches!(cmd.command, Some(Command::SyncWallets(_))) {
            return cmd;
        }
        c.ack(&cmd.command_id, true).await;
    }
}

#[tokio::test]
async fn a_sync_interrupted_by_an_operator_crash_is_redelivered_with_the_same_id() {
    let fake = FakeKube::start().await;
    let created = fake.create(cc(NS, "crash-1", json!({}))).unwrap();
    let uid = created["metadata"]["uid"].as_str().unwrap().to_owned();
    let dir = std::env::temp_dir().join(format!("crypto-crash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let mut first = serve_cluster(&fake, &dir).await;
    let mut c = RawClient::connect(first.grpc, "crash-1").await;
    assert_eq!(
        cluster::ack_kinds(&mut c, 2).await,
        ["resume", "update_config"]
    );
    patch_spec(&fake, "crash-1", json!({"syncRequested": true}));
    let delivered = until_sync(&mut c).await;
    // The operator dies after delivering the sync and before its ack.
    first.child.start_kill().unwrap();
    first.child.wait().await.unwrap();
    drop(c);

    let second = serve_cluster(&fake, &dir).await;
    let mut c = RawClient::connect(second.grpc, "crash-1").await;
    let redelivered = until_sync(&mut c).await;
    assert_eq!(
        redelivered.command_id, delivered.command_id,
        "one sync request, one command id, whichever process sends it"
    );
    let o = fake.get(G, V, P, NS, "crash-1").unwrap();
    let generation = o["metadata"]["generation"].as_i64().unwrap();
    assert_eq!(delivered.command_id, format!("sync-{uid}-{generation}"));
    c.ack(&redelivered.command_id, true).await;
    let o = wait_cc(&fake, "crash-1", "spec reset and lastSync", |o| {
        o["spec"]["syncRequested"] == false
            && o["status"]["lastSync"].is_string()
            && o["status"].get("pendingSync").is_none()
    })
    .await;
    assert_eq!(
        o["status"]["lastCommand"]["id"],
        delivered.command_id.as_str()
    );
    drop(second);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The example client binary (`cargo build --examples`; tests/run.sh does).
fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: build it first with `cargo build --examples` (tests/run.sh does)",
        path.display()
    );
    path
}

/// README's "Run it on Kubernetes" walkthrough, run command by command as
/// written against the fake API server (as tests/helm/test_readme.py does
/// for the Helm section): `kubectl apply/get/patch` go to the fake,
/// `cargo run` runs the binaries already built (on free ports instead of
/// 50051/8080, the client given the server's address), and each step is
/// checked for what the README says it does. A command this test does not
/// know fails it, so the section cannot drift from what works.
#[tokio::test]
async fn the_readme_cluster_walkthrough_works_as_written() {
    use support::readme;
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let commands = readme::commands(readme::section(&text, "## Run it on Kubernetes"));
    assert!(commands.len() >= 8, "{commands:?}");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let fake = FakeKube::start().await;
    let dir = std::env::temp_dir().join(format!("crypto-readme-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = fake.write_kubeconfig(&dir);
    let mut env: Vec<(String, String)> = Vec::new();
    let mut server: Option<support::process::ServeProcess> = None;
    let mut client: Option<tokio::process::Child> = None;
    let mut patched = 0;
    for argv in &commands {
        let words: Vec<&str> = argv.iter().map(String::as_str).collect();
        match words.as_slice() {
            ["kubectl", "apply", "-f", file] => {
                let yaml = std::fs::read_to_string(root.join(file)).unwrap();
                for doc in serde_yaml::Deserializer::from_str(&yaml) {
                    let obj: Value = serde::Deserialize::deserialize(doc).unwrap();
                    if !obj.is_null() {
                        fake.create(obj)
                            .unwrap_or_else(|e| panic!("apply {file}: {e:?}"));
                    }
                }
            }
            ["cargo", "run", "--release", "--", "serve", rest @ ..] => {
                let s = support::process::serve_with_env(
                    rest,
                    &[("KUBECONFIG", kubeconfig.as_os_str())],
                )
                .await;
                wait_http_ready(s.http).await;
                server = Some(s);
            }
            ["export", assignment] => {
                let (name, value) = assignment.split_once('=').unwrap();
                let inner = value
                    .strip_prefix("$(")
                    .and_then(|v| v.strip_suffix(')'))
                    .unwrap_or_else(|| panic!("export of {value:?}"));
                let w = readme::words(inner);
                let w: Vec<&str> = w.iter().map(String::as_str).collect();
                let [
                    "kubectl",
                    "get",
                    "secret",
                    secret,
                    "-o",
                    path,
                    "|",
                    "base64",
                    "-d",
                ] = w.as_slice()
                else {
                    panic!("unknown command substitution {inner:?}");
                };
                let key = path
                    .strip_prefix("jsonpath={.data.")
                    .and_then(|k| k.strip_suffix('}'))
                    .unwrap_or_else(|| panic!("jsonpath {path:?}"));
                let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
                    kube::Api::namespaced(fake.client().await, NS);
                let secret = api.get(secret).await.unwrap();
                let bytes = secret.data.unwrap().remove(key).unwrap().0;
                env.push((name.to_owned(), String::from_utf8(bytes).unwrap()));
            }
            [
                "cargo",
                "run",
                "--release",
                "--example",
                name,
                "--",
                args @ ..,
            ] => {
                let grpc = server.as_ref().expect("serve runs before the client").grpc;
                let mut args: Vec<String> =
                    args.iter().map(std::string::ToString::to_string).collect();
                // The README's client uses the default 127.0.0.1:50051.
                args.insert(1.min(args.len()), url(grpc));
                client = Some(
                    tokio::process::Command::new(example(name))
                        .args(&args)
                        .envs(env.iter().map(|(k, v)| (k, v)))
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null())
                        .kill_on_drop(true)
                        .spawn()
                        .unwrap(),
                );
            }
            ["kubectl", "get", "cryptoclient", name] => {
                wait_cc(&fake, name, "Connected, as the README says", |o| {
                    o["status"]["phase"] == "Connected"
                })
                .await;
            }
            ["kubectl", "get", "cryptoclients" | "cc"] => {
                assert!(!fake.list(G, V, P, Some(NS)).is_empty());
            }
            [
                "kubectl",
                "patch",
                "cryptoclient",
                name,
                "--type",
                "merge",
                "-p",
                patch,
            ] => {
                let patch: Value = serde_json::from_str(patch).unwrap();
                fake.merge_patch(G, V, P, NS, name, patch.clone()).unwrap();
                patched += 1;
                let spec = &patch["spec"];
                wait_cc(&fake, name, &format!("{patch} carried out"), |o| {
                    let applied = |want: &Value| {
                        let config: std::collections::HashMap<String, String> =
                            serde_json::from_value(want.clone()).unwrap_or_default();
                        o["status"]["appliedConfigHash"] == commands::config_hash(&config).as_str()
                    };
                    spec.as_object()
                        .unwrap()
                        .iter()
                        .all(|(k, v)| match k.as_str() {
                            "paused" => o["status"]["paused"] == *v,
                            "config" => applied(&o["spec"]["config"]),
                            "syncRequested" => {
                                o["spec"]["syncRequested"] == false
                                    && o["status"]["lastSync"].is_string()
                            }
                            other => panic!("the test does not know spec.{other}"),
                        })
                })
                .await;
            }
            other => panic!("README command this test does not know: {other:?}"),
        }
    }
    assert!(
        client.is_some() && server.is_some() && patched >= 3,
        "{commands:?}"
    );
    drop(client);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// An SDK client that remembers the pause state it was told.
#[derive(Clone, Default)]
struct PauseState(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl crypto_operator::client::CommandHandler for PauseState {
    async fn handle(
        &mut self,
        command: crypto_operator::client::Command,
    ) -> crypto_operator::client::CommandResult {
        use crypto_operator::client::Command as C;
        match command {
            C::Pause { .. } => self.0.store(true, std::sync::atomic::Ordering::SeqCst),
            C::Resume => self.0.store(false, std::sync::atomic::Ordering::SeqCst),
            _ => {}
        }
        Ok(Default::default())
    }
}

#[tokio::test]
async fn after_a_server_restart_with_spec_changes_every_client_reconnects_and_converges() {
    const N: usize = 10;
    let fake = FakeKube::start().await;
    for i in 0..N {
        fake.create(cc(NS, &format!("r-{i}"), json!({}))).unwrap();
    }
    let running = start_calm(&fake).await;
    let grpc = running.grpc_addr;
    let stop = tokio_util::sync::CancellationToken::new();
    let mut states = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..N {
        let cfg = crypto_operator::client::ClientConfig::new(url(grpc), format!("r-{i}"))
            .backoff(Duration::from_millis(50), Duration::from_millis(300));
        let (client, _sender) = crypto_operator::client::new(cfg);
        let state = PauseState::default();
        states.push(state.clone());
        tasks.spawn(client.run(state, stop.clone()));
    }
    for i in 0..N {
        wait_cc(&fake, &format!("r-{i}"), "connected", |o| {
            o["status"]["phase"] == "Connected" && o["status"]["paused"] == false
        })
        .await;
    }
    // The server goes away; meanwhile every spec changes.
    running.stop().await.unwrap();
    for i in 0..N {
        patch_spec(&fake, &format!("r-{i}"), json!({"paused": true}));
    }
    let again = server::start(ServerConfig {
        grpc_addr: grpc,
        streaming: calm_config(),
        drain_grace: Duration::from_secs(2),
        mode: Mode::Cluster(ClusterConfig {
            client: fake.client().await,
            controller: controller_config(Duration::from_secs(30)),
        }),
        ..ServerConfig::default()
    })
    .await
    .expect("restarts on the same port");
    for i in 0..N {
        wait_cc_within(
            &fake,
            &format!("r-{i}"),
            "reconnected and paused",
            Duration::from_secs(30),
            |o| o["status"]["phase"] == "Paused",
        )
        .await;
    }
    assert!(
        states
            .iter()
            .all(|s| s.0.load(std::sync::atomic::Ordering::SeqCst)),
        "every client paused"
    );
    stop.cancel();
    while tasks.join_next().await.is_some() {}
    again.stop().await.unwrap();
}

/// An API request that is accepted and never answered cannot hold a
/// resource hostage: the reconcile gives up after `api_timeout` (counted as
/// an error) and the client's connect, queued behind it, still converges.
#[tokio::test]
async fn an_api_call_that_never_answers_does_not_hold_a_resource() {
    let fake = FakeKube::start().await;
    fake.create(cc(NS, "hang-1", json!({}))).unwrap();
    let running = start_cluster(
        &fake,
        calm_config(),
        ControllerConfig {
            api_timeout: Duration::from_secs(1),
            ..controller_config(Duration::from_secs(30))
        },
    )
    .await;
    wait_cc(&fake, "hang-1", "Pending", |o| {
        o["status"]["phase"] == "Pending"
    })
    .await;
    // The status write of the client's connect hangs; it still converges.
    fake.clear_log();
    fake.stall_status_writes(1);
    let connect = connect_converged(&fake, running.grpc_addr, "hang-1", "hang-1");
    let (_c, first) = tokio::join!(
        connect,
        fake.wait_for_request(|r| r.method == "PATCH" && r.is_status(), WAIT)
    );
    first.expect("the hung status write");
    let errors = metric(&running, "crypto_reconcile_total{result=\"error\"}");
    assert!(errors >= 1.0, "the hung reconcile failed: {errors}");
    running.stop().await.unwrap();
}

/// A connect burst that overruns the event bus (one slot here) loses
/// Connected events before the controller sees them; the controller is
/// told how many and reconciles every resource, so every client is still
/// sent its desired state at once rather than at the 5-minute requeue.
#[tokio::test]
async fn a_connect_burst_that_overruns_the_event_bus_still_reaches_every_client() {
    let fake = FakeKube::start().await;
    let n = 40;
    let name = |i: usize| format!("burst-{i:02}");
    for i in 0..n {
        fake.create(cc(NS, &name(i), json!({}))).unwrap();
    }
    let running = start_cluster(
        &fake,
        StreamingConfig {
            event_buffer: 1,
            ..calm_config()
        },
        controller_config(Duration::from_secs(30)),
    )
    .await;
    // Only the bridge may wake the resources: wait until each has had its
    // initial reconcile, which writes the first status (status-only watch
    // events do not wake the controller).
    for i in 0..n {
        wait_cc(&fake, &name(i), "first status", |o| {
            o["status"]["phase"] == "Pending"
        })
        .await;
    }
    eventually("every resource reconciled", || {
        metric(&running, "crypto_reconcile_total{result=\"success\"}") >= n as f64
    })
    .await;
    let addr = running.grpc_addr;
    let mut clients = futures::future::join_all((0..n).map(|i| {
        let id = name(i);
        async move { RawClient::connect(addr, &id).await }
    }))
    .await;
    let kinds = futures::future::join_all(
        clients
            .iter_mut()
            .map(|c| support::cluster::ack_kinds(c, 2)),
    )
    .await;
    for (i, k) in kinds.iter().enumerate() {
        assert!(*k == ["resume", "update_config"], "{}: {k:?}", name(i));
    }
    let lost = metric(&running, "crypto_events_lost_total");
    assert!(
        lost > 0.0,
        "the burst did not overrun the bus, so this run proves nothing"
    );
    running.stop().await.unwrap();
}
