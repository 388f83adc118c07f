//! The Centrifugo publisher against a recording test double of
//! Centrifugo's HTTP API (tests/support/fake_centrifugo.rs), with a real
//! server and real gRPC clients: channels, payloads and batching of a
//! scripted session; retries; the circuit breaker on 500s and on a server
//! that never answers; a hanging Centrifugo that does not slow clients;
//! a full buffer that drops the oldest and counts.

use crate::support;

use crypto_operator::centrifugo::PublishResult;
use crypto_operator::centrifugo::{BreakerState, CentrifugoConfig, Monitor};
use crypto_operator::commands;
use crypto_operator::proto::{
    ClientRunState, ClientStatus, ErrorReport, Heartbeat, LogEntry, Transaction,
    TransactionDirection, WalletUpdate, client_message::Payload, server_command::Command,
};
use crypto_operator::server::{Running, ServerConfig};
use crypto_operator::streaming::EventKind;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;
use support::fake_centrifugo::{FakeCentrifugo, Mode};
use support::process::http_get;
use support::*;

const KEY: &str = "test-api-key";

/// Publisher settings for `fake`: small linger, no retries, a quick
/// breaker.
fn config(fake: &FakeCentrifugo) -> CentrifugoConfig {
    CentrifugoConfig {
        api_key: Some(KEY.into()),
        linger: Duration::from_millis(10),
        request_timeout: Duration::from_secs(5),
        retries: 0,
        retry_backoff: Duration::from_millis(50),
        breaker_threshold: 3,
        breaker_open: Duration::from_millis(300),
        flush_timeout: Duration::from_secs(2),
        ..CentrifugoConfig::new(fake.url())
    }
}

async fn start_publishing(c: CentrifugoConfig) -> (Running, Monitor) {
    init_logs();
    let server = start_config(ServerConfig {
        centrifugo: Some(c),
        ..test_config(calm_config())
    })
    .await;
    let monitor = server.centrifugo.clone().expect("publisher runs");
    (server, monitor)
}

fn total(server: &Running, r: PublishResult) -> u64 {
    server.centrifugo_metrics.total(r)
}

fn wallet(height: u64) -> Payload {
    Payload::WalletUpdate(WalletUpdate {
        wallet_id: "main".into(),
        chain: "ethereum".into(),
        asset: "ETH".into(),
        balance: "1.5".into(),
        block_height: height,
    })
}

/// The `type`s published to `channel`, in order.
fn types(delivered: &[(String, Value)], channel: &str) -> Vec<String> {
    delivered
        .iter()
        .filter(|(c, _)| c == channel)
        .map(|(_, d)| d["type"].as_str().unwrap_or("?").to_owned())
        .collect()
}

fn heights(delivered: &[(String, Value)]) -> Vec<u64> {
    delivered
        .iter()
        .filter(|(_, d)| d["type"] == "wallet_update")
        .map(|(_, d)| d["blockHeight"].as_str().unwrap().parse().unwrap())
        .collect()
}

#[tokio::test]
async fn a_scripted_session_reaches_the_fleet_and_client_channels() {
    let fake = FakeCentrifugo::start(Some(KEY)).await;
    let (server, _) = start_publishing(config(&fake)).await;
    let mut c = RawClient::connect(server.grpc_addr, "w-1").await;
    // Each step waits until its publications arrived, so the order on the
    // wire is the script's order.
    fake.wait_delivered(2).await;
    c.send(Payload::Status(ClientStatus {
        state: ClientRunState::Running as i32,
        detail: "ok".into(),
        config_hash: String::new(),
    }))
    .await;
    fake.wait_delivered(4).await;
    c.send(wallet(123)).await;
    fake.wait_delivered(5).await;
    c.send(Payload::Transaction(Transaction {
        tx_id: "0xabc".into(),
        wallet_id: "main".into(),
        chain: "ethereum".into(),
        asset: "ETH".into(),
        amount: "0.25".into(),
        direction: TransactionDirection::Inbound as i32,
        state: "confirmed".into(),
    }))
    .await;
    fake.wait_delivered(6).await;
    c.send(Payload::Error(ErrorReport {
        code: "E_RPC".into(),
        message: "rpc down".into(),
        fatal: false,
    }))
    .await;
    fake.wait_delivered(8).await;
    // Not published: heartbeats and logs (the status after them proves
    // they were handled first and left out).
    c.send(Payload::Heartbeat(Heartbeat { sequence: 1 })).await;
    c.send(Payload::Log(LogEntry {
        level: 2,
        message: "hello".into(),
        fields: HashMap::new(),
    }))
    .await;
    c.send(Payload::Status(ClientStatus {
        state: ClientRunState::Degraded as i32,
        detail: "slow rpc".into(),
        config_hash: String::new(),
    }))
    .await;
    fake.wait_delivered(10).await;

    // A command acked with success, one acked with failure.
    let pending = server
        .handle
        .send_checked("w-1", commands::new(commands::sync_wallets(vec![])), None)
        .unwrap();
    let cmd = c.command().await;
    c.send(Payload::CommandAck(crypto_operator::proto::CommandAck {
        command_id: cmd.command_id.clone(),
        success: true,
        message: String::new(),
        result: HashMap::from([("wallets_synced".into(), "2".into())]),
    }))
    .await;
    pending.ack().await.unwrap();
    fake.wait_delivered(12).await;
    let pending = server
        .handle
        .send_checked("w-1", commands::new(commands::pause("test")), None)
        .unwrap();
    let paused = c.command().await;
    assert!(matches!(paused.command, Some(Command::Pause(_))));
    c.ack(&paused.command_id, false).await;
    assert!(!pending.ack().await.unwrap().success);
    fake.wait_delivered(14).await;

    let session_id = c.session_id.clone();
    drop(c);
    let delivered = fake.wait_delivered(16).await;
    assert_eq!(delivered.len(), 16, "{delivered:#?}");
    assert_eq!(
        types(&delivered, "crypto:clients"),
        ["connected", "status", "error", "status", "disconnected"]
    );
    assert_eq!(
        types(&delivered, "crypto:client.w-1"),
        [
            "connected",
            "status",
            "wallet_update",
            "transaction",
            "error",
            "status",
            "command_sent",
            "command_acked",
            "command_sent",
            "command_failed",
            "disconnected"
        ]
    );
    // Envelope and protobuf JSON fields.
    for (_, d) in &delivered {
        assert_eq!(d["client_id"], "w-1");
        assert_eq!(d["session_id"], session_id.as_str());
        let t = d["time"].as_str().unwrap();
        assert!(
            t.len() >= 20 && t.ends_with('Z') && t.as_bytes()[10] == b'T',
            "{t}"
        );
    }
    let find = |kind: &str| {
        delivered
            .iter()
            .find(|(c, d)| c == "crypto:client.w-1" && d["type"] == kind)
            .map(|(_, d)| d.clone())
            .unwrap()
    };
    let w = find("wallet_update");
    let strip = |mut v: Value| {
        for k in ["client_id", "session_id", "time"] {
            v.as_object_mut().unwrap().remove(k);
        }
        v
    };
    assert_eq!(
        strip(w),
        json!({"type": "wallet_update", "walletId": "main", "chain": "ethereum", "asset": "ETH",
               "balance": "1.5", "blockHeight": "123"})
    );
    assert_eq!(
        strip(find("transaction")),
        json!({"type": "transaction", "txId": "0xabc", "walletId": "main", "chain": "ethereum",
               "asset": "ETH", "amount": "0.25", "direction": "TRANSACTION_DIRECTION_INBOUND",
               "state": "confirmed"})
    );
    let connected = find("connected");
    assert_eq!(connected["clientType"], "wallet-sync");
    assert_eq!(connected["capabilities"], json!(["sync_wallets"]));
    assert_eq!(find("status")["state"], "CLIENT_RUN_STATE_RUNNING");
    assert_eq!(find("error")["fatal"], false);
    let acked = find("command_acked");
    assert_eq!(acked["commandType"], "sync_wallets");
    assert_eq!(acked["result"]["wallets_synced"], "2");
    assert_eq!(find("command_sent")["commandId"], acked["commandId"]);
    let failed = find("command_failed");
    assert_eq!(
        (failed["commandType"].as_str(), failed["outcome"].as_str()),
        (Some("pause"), Some("failure"))
    );
    assert!(find("disconnected")["reason"].is_string());

    // Requests: the key on each; several ready publications go in one
    // /api/batch, a lone one through /api/publish.
    let requests = fake.requests();
    assert!(requests.iter().all(|r| r.api_key.as_deref() == Some(KEY)));
    assert_eq!(requests[0].path, "/api/batch");
    assert_eq!(requests[0].publications().len(), 2);
    let lone = requests
        .iter()
        .find(|r| r.publications()[0].1["type"] == "wallet_update")
        .unwrap();
    assert_eq!(lone.path, "/api/publish");
    assert_eq!(lone.body["channel"], "crypto:client.w-1");
    // The fake records before the publisher reads its answer.
    eventually("all counted", || {
        total(&server, PublishResult::Published) == 16
    })
    .await;
    assert_eq!(total(&server, PublishResult::Failed), 0);
    assert_eq!(total(&server, PublishResult::Dropped), 0);
    let (_, metrics) = http_get(server.http_addr, "/metrics").await;
    assert!(metrics.contains("crypto_centrifugo_publish_total{result=\"published\"} 16"));
    assert!(metrics.contains("crypto_centrifugo_breaker_state 0"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bursts_are_batched_up_to_the_batch_size_and_shutdown_flushes() {
    let fake = FakeCentrifugo::start(Some(KEY)).await;
    let (server, monitor) = start_publishing(CentrifugoConfig {
        batch_size: 10,
        // Longer than the test: a request goes out only when 10 are ready.
        linger: Duration::from_secs(60),
        channel_prefix: "fleet-a".into(),
        ..config(&fake)
    })
    .await;
    let c = RawClient::connect(server.grpc_addr, "w-2").await;
    for h in 1..=18 {
        c.send(wallet(h)).await;
    }
    // 2 (connected) + 18 = 20 publications: two full batches.
    let requests = fake.wait_requests(2).await;
    fake.wait_delivered(20).await;
    assert_eq!(requests.len(), 2);
    for r in &requests {
        assert_eq!(r.path, "/api/batch");
        assert_eq!(r.publications().len(), 10);
    }
    assert_eq!(requests[0].publications()[0].0, "fleet-a:clients");
    assert_eq!(heights(&fake.delivered()), (1..=18).collect::<Vec<_>>());
    // One more, then shutdown: the partial batch (the update and both
    // disconnected events) is flushed without waiting for the linger.
    c.send(wallet(19)).await;
    monitor.wait_accepted(21).await;
    let mut sub = server.handle.subscribe();
    drop(c);
    wait_event(&mut sub, |e| matches!(e.kind, EventKind::Disconnected(_))).await;
    server.stop().await.unwrap();
    let delivered = fake.wait_delivered(23).await;
    assert_eq!(
        types(&delivered[20..], "fleet-a:client.w-2"),
        ["wallet_update", "disconnected"]
    );
    assert_eq!(types(&delivered[20..], "fleet-a:clients"), ["disconnected"]);
}

#[tokio::test]
async fn failed_requests_are_retried_with_backoff_and_refusals_are_counted() {
    let fake = FakeCentrifugo::start(Some(KEY)).await;
    fake.set_mode(Mode::FailNext(2));
    fake.reject_channels("crypto:clients");
    let (server, _) = start_publishing(CentrifugoConfig {
        retries: 2,
        retry_backoff: Duration::from_millis(100),
        breaker_threshold: 10,
        ..config(&fake)
    })
    .await;
    let _c = RawClient::connect(server.grpc_addr, "w-3").await;
    // Two 500s, then the third attempt is answered: the fleet channel is
    // refused by Centrifugo (counted failed), the client channel delivered.
    let requests = fake.wait_requests(3).await;
    fake.wait_delivered(1).await;
    eventually("counted", || total(&server, PublishResult::Published) == 1).await;
    assert_eq!(requests.len(), 3);
    assert!(requests.iter().all(|r| r.body == requests[0].body));
    // Backoff: 100 ms then 200 ms, ±25 %.
    assert!(requests[1].at - requests[0].at >= Duration::from_millis(75));
    assert!(requests[2].at - requests[1].at >= Duration::from_millis(150));
    assert_eq!(total(&server, PublishResult::Failed), 1);
    assert_eq!(fake.delivered()[0].0, "crypto:client.w-3");

    // A wrong key (401) is not retried.
    let fake2 = FakeCentrifugo::start(Some("the-right-key")).await;
    let (server2, _) = start_publishing(CentrifugoConfig {
        retries: 2,
        breaker_threshold: 10,
        ..config(&fake2)
    })
    .await;
    let _c2 = RawClient::connect(server2.grpc_addr, "w-3").await;
    fake2.wait_requests(1).await;
    eventually("counted failed", || {
        total(&server2, PublishResult::Failed) == 2
    })
    .await;
    assert_eq!(fake2.requests().len(), 1);
    server.stop().await.unwrap();
    server2.stop().await.unwrap();
}

#[tokio::test]
async fn the_breaker_opens_on_500s_probes_once_per_period_and_closes_on_recovery() {
    let fake = FakeCentrifugo::start(Some(KEY)).await;
    fake.set_mode(Mode::Fail500);
    let open = Duration::from_millis(500);
    let (server, monitor) = start_publishing(CentrifugoConfig {
        batch_size: 1,
        linger: Duration::ZERO,
        breaker_threshold: 3,
        breaker_open: open,
        ..config(&fake)
    })
    .await;
    let c = RawClient::connect(server.grpc_addr, "w-4").await;
    c.send(wallet(1)).await;
    // Three publications, three failed requests: open.
    monitor.wait_for_breaker(BreakerState::Open).await;
    assert_eq!(fake.requests().len(), 3);
    assert_eq!(total(&server, PublishResult::Failed), 3);
    assert_eq!(server.centrifugo_metrics.breaker_state(), 1);

    // While open, events wait in the buffer.
    for h in 2..=4 {
        c.send(wallet(h)).await;
    }
    monitor.wait_accepted(6).await;
    // After the open period exactly one probe (answered 500: open again).
    let requests = fake.wait_requests(4).await;
    assert!(requests[3].at - requests[2].at >= open, "probe came early");
    assert_eq!(requests[3].publications().len(), 1);

    // Centrifugo recovers: the next probe, one open period later, succeeds;
    // the breaker closes and the rest flows.
    fake.set_mode(Mode::Ok);
    let requests = fake.wait_requests(6).await;
    assert!(
        requests[4].at - requests[3].at >= open,
        "one probe per open period"
    );
    assert_eq!(total(&server, PublishResult::Failed), 4);
    monitor.wait_for_breaker(BreakerState::Closed).await;
    assert_eq!(heights(&fake.wait_delivered(2).await), [3, 4]);
    eventually("counted", || total(&server, PublishResult::Published) == 2).await;
    assert_eq!(server.centrifugo_metrics.breaker_state(), 0);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_breaker_opens_on_a_centrifugo_that_never_answers() {
    let fake = FakeCentrifugo::start(Some(KEY)).await;
    fake.set_mode(Mode::Hang);
    let open = Duration::from_millis(300);
    let (server, monitor) = start_publishing(CentrifugoConfig {
        batch_size: 1,
        linger: Duration::ZERO,
        request_timeout: Duration::from_millis(200),
        breaker_threshold: 2,
        breaker_open: open,
        ..config(&fake)
    })
    .await;
    let c = RawClient::connect(server.grpc_addr, "w-5").await;
    // Both connected publications time out: open.
    monitor.wait_for_breaker(BreakerState::Open).await;
    assert_eq!(fake.requests().len(), 2);
    assert_eq!(total(&server, PublishResult::Failed), 2);

    fake.set_mode(Mode::Ok);
    c.send(wallet(7)).await;
    let requests = fake.wait_requests(3).await;
    assert!(requests[2].at - requests[1].at >= open);
    monitor.wait_for_breaker(BreakerState::Closed).await;
    eventually("probe published", || {
        total(&server, PublishResult::Published) == 1
    })
    .await;
    assert_eq!(fake.requests().len(), 3);
    assert!(heights(&fake.delivered()).contains(&7));
    server.stop().await.unwrap();
}

/// Sends `n` wallet updates as `client_id`, then a ping that the client
/// acks; returns how many updates the session counted and how many
/// message events a bus subscriber saw.
async fn burst(server: &Running, client_id: &str, n: u64) -> (u64, u64) {
    let mut sub = server.handle.subscribe();
    let mut c = RawClient::connect(server.grpc_addr, client_id).await;
    for h in 1..=n {
        c.send(wallet(h)).await;
    }
    let mut seen = 0;
    wait_event(&mut sub, |e| {
        if matches!(&e.kind, EventKind::Message(m) if matches!(m.payload, Some(Payload::WalletUpdate(_))))
        {
            seen += 1;
        }
        seen == n
    })
    .await;
    // The stream still answers commands at once.
    let pending = server
        .handle
        .send_checked(client_id, commands::new(commands::ping()), None)
        .unwrap();
    let ping = c.command().await;
    c.ack(&ping.command_id, true).await;
    assert!(pending.ack().await.unwrap().success);
    let counted = server
        .handle
        .session(client_id)
        .unwrap()
        .state_counters()
        .wallet_updates;
    (counted, seen)
}

#[tokio::test]
async fn a_hanging_centrifugo_does_not_slow_clients() {
    // Within the default per-client message burst.
    const N: u64 = 1000;
    let fake = FakeCentrifugo::start(Some(KEY)).await;
    fake.set_mode(Mode::Hang);
    let (with, monitor) = start_publishing(CentrifugoConfig {
        buffer: 64,
        batch_size: 16,
        linger: Duration::ZERO,
        request_timeout: Duration::from_secs(60),
        flush_timeout: Duration::from_millis(300),
        ..config(&fake)
    })
    .await;
    let without = start(calm_config()).await;
    assert!(without.centrifugo.is_none());

    // The same burst against both servers at once.
    let (a, b) = tokio::join!(burst(&with, "w-6", N), burst(&without, "w-6", N));
    assert_eq!(a, (N, N), "with a hanging Centrifugo");
    assert_eq!(b, (N, N), "without Centrifugo");
    assert_eq!(a, b);

    // The publisher took every event off the bus (none lost) and kept only
    // its buffer's worth; the rest were dropped and counted.
    monitor.wait_accepted(N + 2 + 2).await; // connected, updates, ping sent/acked
    assert_eq!(metric(&with, "crypto_events_lost_total"), 0.0);
    let requests = fake.wait_requests(1).await;
    assert_eq!(requests.len(), 1, "the first request still hangs");
    let in_flight = requests[0].publications().len() as u64;
    assert_eq!(monitor.buffered(), 64);
    assert_eq!(total(&with, PublishResult::Dropped), N + 4 - 64 - in_flight);

    // Shutdown is bounded by the flush timeout even though Centrifugo
    // never answers; whatever was not sent is counted as dropped.
    tokio::time::timeout(WAIT, with.stop())
        .await
        .expect("shutdown bounded")
        .unwrap();
    without.stop().await.unwrap();
}

#[tokio::test]
async fn a_full_buffer_drops_the_oldest_and_counts_them() {
    let fake = FakeCentrifugo::start(Some(KEY)).await;
    fake.set_mode(Mode::Hang);
    let (server, monitor) = start_publishing(CentrifugoConfig {
        buffer: 8,
        batch_size: 2,
        linger: Duration::from_secs(60),
        request_timeout: Duration::from_secs(30),
        ..config(&fake)
    })
    .await;
    let c = RawClient::connect(server.grpc_addr, "w-7").await;
    // The two connected publications fill a batch; its request hangs.
    fake.wait_requests(1).await;
    for h in 1..=20 {
        c.send(wallet(h)).await;
    }
    monitor.wait_accepted(22).await;
    assert_eq!(monitor.buffered(), 8);
    assert_eq!(total(&server, PublishResult::Dropped), 12);
    assert_eq!(server.centrifugo_metrics.buffered(), 8);

    // Centrifugo answers again: the hung batch and the 8 newest updates.
    fake.set_mode(Mode::Ok);
    let delivered = fake.wait_delivered(10).await;
    assert_eq!(heights(&delivered), (13..=20).collect::<Vec<_>>());
    eventually("published", || {
        total(&server, PublishResult::Published) == 10
    })
    .await;
    assert_eq!(total(&server, PublishResult::Dropped), 12);
    let (_, metrics) = http_get(server.http_addr, "/metrics").await;
    assert!(metrics.contains("crypto_centrifugo_publish_total{result=\"dropped\"} 12"));
    server.stop().await.unwrap();
}
