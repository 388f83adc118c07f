//! The client SDK against a real server: typed commands with automatic
//! acks, redelivery dedupe, reconnect after a server restart, the example
//! client obeying pause/resume, and 1,000 concurrent clients.

use crate::support;

use crypto_operator::client::{
    self, ClientConfig, Command, CommandHandler, CommandResult, ConnectionState,
};
use crypto_operator::commands;
use crypto_operator::proto::{ExecuteCommandRequest, SendCommandRequest, client_message::Payload};
use crypto_operator::streaming::EventKind;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Command>>>);

impl CommandHandler for Recorder {
    async fn handle(&mut self, command: Command) -> CommandResult {
        let fail =
            matches!(&command, Command::UpdateConfig { config, .. } if config.contains_key("bad"));
        self.0.lock().unwrap().push(command);
        if fail {
            Err("bad config".into())
        } else {
            Ok(HashMap::from([("handled".to_string(), "yes".to_string())]))
        }
    }
}

async fn connected(state: &mut watch::Receiver<ConnectionState>) -> String {
    let s = tokio::time::timeout(
        WAIT,
        state.wait_for(|s| matches!(s, ConnectionState::Connected { .. })),
    )
    .await
    .expect("connects in time")
    .expect("client running")
    .clone();
    match s {
        ConnectionState::Connected { session_id } => session_id,
        _ => unreachable!(),
    }
}

fn sdk_config(addr: std::net::SocketAddr, id: &str) -> ClientConfig {
    ClientConfig::new(url(addr), id).backoff(Duration::from_millis(20), Duration::from_millis(200))
}

#[tokio::test]
async fn typed_commands_are_handled_and_acked_automatically() {
    let server = start(calm_config()).await;
    let (client, _sender) = client::new(sdk_config(server.grpc_addr, "sdk-1"));
    let mut state = client.state();
    let rec = Recorder::default();
    let stop = CancellationToken::new();
    let task = tokio::spawn(client.run(rec.clone(), stop.clone()));
    connected(&mut state).await;
    let mut op = operator(server.grpc_addr).await;
    let run = |command| ExecuteCommandRequest {
        client_id: "sdk-1".into(),
        command: Some(commands::new(command)),
        timeout_ms: 5_000,
    };
    let ack = op
        .execute_command_sync(run(commands::ping()))
        .await
        .unwrap()
        .into_inner();
    assert!(ack.success, "the SDK answers pings itself");
    for body in [
        commands::pause("p"),
        commands::resume(),
        commands::sync_wallets(vec![]),
        commands::update_config([("a".to_string(), "1".to_string())].into()),
    ] {
        let ack = op
            .execute_command_sync(run(body))
            .await
            .unwrap()
            .into_inner();
        assert!(ack.success);
        assert_eq!(ack.result.get("handled").map(String::as_str), Some("yes"));
    }
    let ack = op
        .execute_command_sync(run(commands::update_config(
            [("bad".to_string(), "1".to_string())].into(),
        )))
        .await
        .unwrap()
        .into_inner();
    assert!(!ack.success);
    assert_eq!(ack.message, "bad config");
    let seen = rec.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 5, "ping is not passed to the handler: {seen:?}");
    assert_eq!(seen[0], Command::Pause { reason: "p".into() });
    assert_eq!(seen[1], Command::Resume);
    assert!(
        matches!(&seen[3], Command::UpdateConfig { config_hash, config } if *config_hash == commands::config_hash(config))
    );
    stop.cancel();
    task.await.unwrap();
    assert_eq!(*state.borrow(), ConnectionState::Stopped);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_redelivered_command_is_acked_without_acting_twice() {
    let server = start(calm_config()).await;
    let (client, _sender) = client::new(sdk_config(server.grpc_addr, "sdk-dedupe"));
    let mut state = client.state();
    let rec = Recorder::default();
    let stop = CancellationToken::new();
    let task = tokio::spawn(client.run(rec.clone(), stop.clone()));
    connected(&mut state).await;
    let mut op = operator(server.grpc_addr).await;
    let mut cmd = commands::new(commands::sync_wallets(vec![]));
    cmd.command_id = "sync-once".into();
    for _ in 0..2 {
        let ack = op
            .execute_command_sync(ExecuteCommandRequest {
                client_id: "sdk-dedupe".into(),
                command: Some(cmd.clone()),
                timeout_ms: 5_000,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(ack.success);
        assert_eq!(ack.command_id, "sync-once");
    }
    assert_eq!(rec.0.lock().unwrap().len(), 1, "the handler ran once");
    stop.cancel();
    task.await.unwrap();
    server.stop().await.unwrap();
}

/// Blocks on `SyncWallets` until released; counts the syncs it ran.
#[derive(Clone)]
struct SlowSync {
    started: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Semaphore>,
    runs: Arc<std::sync::atomic::AtomicUsize>,
}

impl CommandHandler for SlowSync {
    async fn handle(&mut self, command: Command) -> CommandResult {
        if let Command::SyncWallets { .. } = command {
            self.runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.started.notify_one();
            let _ = self.release.acquire().await;
        }
        Ok(HashMap::from([(
            "wallets_synced".to_string(),
            "2".to_string(),
        )]))
    }
}

#[tokio::test]
async fn a_command_redelivered_while_in_progress_is_acked_on_the_new_session_once() {
    let server = start(calm_config()).await;
    let (client, _sender) = client::new(sdk_config(server.grpc_addr, "sdk-slow"));
    let mut state = client.state();
    let h = SlowSync {
        started: Arc::new(tokio::sync::Notify::new()),
        release: Arc::new(tokio::sync::Semaphore::new(0)),
        runs: Arc::default(),
    };
    let stop = CancellationToken::new();
    let task = tokio::spawn(client.run(h.clone(), stop.clone()));
    let first = connected(&mut state).await;
    let mut cmd = commands::new(commands::sync_wallets(vec![]));
    cmd.command_id = "sync-slow".into();
    let pending = server.handle.send("sdk-slow", cmd.clone(), None).unwrap();
    tokio::time::timeout(WAIT, h.started.notified())
        .await
        .unwrap();
    // The session ends mid-sync (as when the operator restarts); the
    // client reconnects and the operator redelivers the same command.
    server.handle.kick("sdk-slow", "test");
    assert!(
        pending.ack().await.is_err(),
        "the first session never got the ack"
    );
    tokio::time::timeout(
        WAIT,
        state.wait_for(
            |s| matches!(s, ConnectionState::Connected { session_id } if *session_id != first),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    let pending = server.handle.send("sdk-slow", cmd, None).unwrap();
    // The SDK reads commands in order: once the ping after it is acked,
    // the redelivery has reached the client (still syncing).
    assert!(
        server
            .handle
            .execute("sdk-slow", commands::new(commands::ping()), None)
            .await
            .unwrap()
            .success
    );
    h.release.add_permits(1);
    let ack = pending.ack().await.expect("acked on the new session");
    assert!(ack.success);
    assert_eq!(ack.command_id, "sync-slow");
    assert_eq!(
        h.runs.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "synced once"
    );
    stop.cancel();
    task.await.unwrap();
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_sdk_reconnects_after_the_server_restarts() {
    let server = start(calm_config()).await;
    let addr = server.grpc_addr;
    let (client, sender) = client::new(sdk_config(addr, "sdk-restart"));
    let mut state = client.state();
    let stop = CancellationToken::new();
    let task = tokio::spawn(client.run(Recorder::default(), stop.clone()));
    let first = connected(&mut state).await;
    server.stop().await.unwrap();
    tokio::time::timeout(
        WAIT,
        state.wait_for(|s| *s == ConnectionState::Disconnected),
    )
    .await
    .unwrap()
    .unwrap();
    // Data queued while disconnected is delivered after the reconnect.
    sender
        .try_send(Payload::Log(crypto_operator::proto::LogEntry {
            level: 2,
            message: "queued".into(),
            fields: Default::default(),
        }))
        .unwrap();
    let server = start_on(addr, calm_config()).await;
    let mut events = server.handle.subscribe();
    let second = connected(&mut state).await;
    assert_ne!(first, second, "a new session");
    wait_event(&mut events, |e| matches!(&e.kind, EventKind::Message(m) if matches!(&m.payload, Some(Payload::Log(l)) if l.message == "queued"))).await;
    stop.cancel();
    task.await.unwrap();
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_thousand_concurrent_clients_each_answer_a_ping() {
    const N: usize = 1000;
    let _turn = crate::support::fleet_scale_turn().await;
    let server = start(calm_config()).await;
    let stop = CancellationToken::new();
    let mut states = Vec::with_capacity(N);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..N {
        let (client, _sender) = client::new(sdk_config(server.grpc_addr, &format!("fleet-{i}")));
        states.push(client.state());
        tasks.spawn(client.run(Recorder::default(), stop.clone()));
    }
    for s in &mut states {
        connected(s).await;
    }
    assert_eq!(server.handle.connected(), N);
    let op = operator(server.grpc_addr).await;
    let mut pings = tokio::task::JoinSet::new();
    for i in 0..N {
        let mut op = op.clone();
        pings.spawn(async move {
            op.execute_command_sync(ExecuteCommandRequest {
                client_id: format!("fleet-{i}"),
                command: Some(commands::new(commands::ping())),
                timeout_ms: 30_000,
            })
            .await
        });
    }
    let mut ok = 0;
    while let Some(r) = pings.join_next().await {
        let ack = r.unwrap().expect("every ping is acked").into_inner();
        assert!(ack.success);
        ok += 1;
    }
    assert_eq!(ok, N);
    stop.cancel();
    while tasks.join_next().await.is_some() {}
    server.stop().await.unwrap();
}

/// The example client obeys pause: no wallet updates while paused (checked
/// over several heartbeats, which the client sends on the server's clock),
/// updates again after resume.
#[tokio::test]
async fn the_example_client_stops_updates_while_paused() {
    let server = start(crypto_operator::streaming::StreamingConfig {
        heartbeat_interval: Duration::from_millis(700),
        ..calm_config()
    })
    .await;
    let mut events = server.handle.subscribe();
    let exe = std::env::current_exe().unwrap();
    let example = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join("simple_client");
    let mut child = tokio::process::Command::new(&example)
        .args(["example-1", &url(server.grpc_addr)])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "run {}: {e} (build it first: `cargo build --examples`; tests/run.sh does)",
                example.display()
            )
        });
    let is_update = |e: &crypto_operator::streaming::Event| matches!(&e.kind, EventKind::Message(m) if matches!(m.payload, Some(Payload::WalletUpdate(_))));
    let is_heartbeat = |e: &crypto_operator::streaming::Event| matches!(&e.kind, EventKind::Message(m) if matches!(m.payload, Some(Payload::Heartbeat(_))));
    wait_event(&mut events, is_update).await;
    let mut op = operator(server.grpc_addr).await;
    let ack = op
        .execute_command_sync(ExecuteCommandRequest {
            client_id: "example-1".into(),
            command: Some(commands::new(commands::pause("test"))),
            timeout_ms: 5_000,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(ack.success);
    // An update already in flight may still arrive before the first
    // heartbeat; after it, none for three more heartbeats (~2 s, two
    // update periods).
    wait_event(&mut events, is_heartbeat).await;
    let mut beats = 0;
    while beats < 3 {
        let ev = wait_event(&mut events, |e| is_update(e) || is_heartbeat(e)).await;
        assert!(!is_update(&ev), "a wallet update arrived while paused");
        beats += 1;
    }
    op.send_command_to_client(SendCommandRequest {
        client_id: "example-1".into(),
        command: Some(commands::new(commands::resume())),
    })
    .await
    .unwrap();
    wait_event(&mut events, is_update).await;
    child.kill().await.unwrap();
    server.stop().await.unwrap();
}
