//! Streaming core over real tonic clients and servers on 127.0.0.1: the
//! session rules, commands with acks, ExecuteCommandSync, bad input, the
//! event bus, health, reflection and snapshots.

use crate::support;

use crypto_operator::client::ClientType;
use crypto_operator::commands;
use crypto_operator::proto::{
    ClientRunState, ClientStatus, ExecuteCommandRequest, GetClientRequest, Heartbeat,
    ListClientsRequest, LogEntry, PriceUpdate, SendCommandRequest, ServerCommand, SessionState,
    WalletUpdate, client_message::Payload, server_command::Command,
};
use crypto_operator::streaming::{AckOutcome, EndReason, EventKind};
use std::time::{Duration, Instant};
use support::*;
use tonic::Code;

fn exec(client_id: &str, command: Command, timeout_ms: u32) -> ExecuteCommandRequest {
    ExecuteCommandRequest {
        client_id: client_id.into(),
        command: Some(commands::new(command)),
        timeout_ms,
    }
}

#[tokio::test]
async fn register_is_answered_with_registered_first() {
    let server = start(fast_config()).await;
    let (_tx, mut inbound) = open(
        server.grpc_addr,
        msg("w-1", register(ClientType::WalletSync)),
    )
    .await;
    let first = inbound.message().await.unwrap().unwrap();
    let Some(Command::Registered(r)) = first.command else {
        panic!("expected registered, got {first:?}");
    };
    assert!(!r.session_id.is_empty());
    assert_eq!(
        r.heartbeat_interval,
        Some(crypto_operator::time::duration(Duration::from_millis(200)))
    );
    assert!(r.server_time.is_some());
    let session = server.handle.session("w-1").expect("session registered");
    assert_eq!(&*session.session_id, r.session_id);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn heartbeats_keep_a_session_fresh_and_silence_makes_it_stale_then_ends_it() {
    let server = start(fast_config()).await;
    let mut events = server.handle.subscribe();
    let mut c = RawClient::connect(server.grpc_addr, "hb-1").await;
    // Heartbeat every 100 ms for well past dead_after (1.2 s): each
    // heartbeat is acknowledged by the server's counter before the next.
    let session = server.handle.session("hb-1").unwrap();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    for seq in 1..=20u64 {
        tick.tick().await;
        c.send(Payload::Heartbeat(Heartbeat { sequence: seq }))
            .await;
    }
    eventually("heartbeats counted", || {
        session.state_counters().heartbeats >= 20
    })
    .await;
    assert!(!session.is_stale(), "a heartbeating session is not stale");
    assert!(
        server.handle.session("hb-1").is_some(),
        "a heartbeating session lives"
    );

    // Go silent: Stale first, then the session is ended.
    wait_event(&mut events, |e| {
        &*e.client_id == "hb-1" && matches!(e.kind, EventKind::Stale)
    })
    .await;
    let ended = wait_event(&mut events, |e| {
        &*e.client_id == "hb-1" && matches!(e.kind, EventKind::Disconnected(_))
    })
    .await;
    assert!(matches!(
        ended.kind,
        EventKind::Disconnected(EndReason::HeartbeatTimeout)
    ));
    assert_eq!(c.end_status().await.code(), Code::DeadlineExceeded);
    assert!(server.handle.session("hb-1").is_none());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_stale_session_becomes_fresh_on_its_next_heartbeat() {
    let server = start(StreamingConfig {
        dead_after: Duration::from_secs(30),
        ..fast_config()
    })
    .await;
    let mut events = server.handle.subscribe();
    let c = RawClient::connect(server.grpc_addr, "hb-2").await;
    wait_event(&mut events, |e| matches!(e.kind, EventKind::Stale)).await;
    let mut op = operator(server.grpc_addr).await;
    let info = op
        .get_client(GetClientRequest {
            client_id: "hb-2".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.state, SessionState::Stale as i32);
    c.send(Payload::Heartbeat(Heartbeat { sequence: 1 })).await;
    wait_event(&mut events, |e| matches!(e.kind, EventKind::Fresh)).await;
    let info = op
        .get_client(GetClientRequest {
            client_id: "hb-2".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.state, SessionState::Connected as i32);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn every_command_type_round_trips_with_its_ack() {
    let server = start(calm_config()).await;
    let mut c = RawClient::connect(server.grpc_addr, "cmd-1").await;
    let mut op = operator(server.grpc_addr).await;
    let bodies = [
        commands::ping(),
        commands::pause("maintenance"),
        commands::resume(),
        commands::sync_wallets(vec!["0xabc".into()]),
        commands::update_config([("k".to_string(), "v".to_string())].into()),
    ];
    for body in bodies {
        let expected = std::mem::discriminant(&body);
        let call = {
            let mut op = op.clone();
            let req = exec("cmd-1", body, 5_000);
            tokio::spawn(async move { op.execute_command_sync(req).await })
        };
        let cmd = c.command().await;
        assert_eq!(
            std::mem::discriminant(cmd.command.as_ref().unwrap()),
            expected
        );
        assert!(cmd.issued_at.is_some() && cmd.expires_at.is_some());
        if let Some(Command::UpdateConfig(u)) = &cmd.command {
            assert_eq!(u.config_hash, commands::config_hash(&u.config));
        }
        c.send(Payload::CommandAck(crypto_operator::proto::CommandAck {
            command_id: cmd.command_id.clone(),
            success: true,
            message: "done".into(),
            result: [("n".to_string(), "1".to_string())].into(),
        }))
        .await;
        let ack = call.await.unwrap().unwrap().into_inner();
        assert_eq!(ack.command_id, cmd.command_id);
        assert!(ack.success);
        assert_eq!(ack.result.get("n").map(String::as_str), Some("1"));
    }
    // A failed ack is returned as the ack, not as an error.
    let call = {
        let mut op = op.clone();
        tokio::spawn(async move {
            op.execute_command_sync(exec("cmd-1", commands::resume(), 5_000))
                .await
        })
    };
    let cmd = c.command().await;
    c.ack(&cmd.command_id, false).await;
    let ack = call.await.unwrap().unwrap().into_inner();
    assert!(!ack.success);
    assert_eq!(ack.message, "refused");

    // SendCommandToClient returns the id at once; the ack arrives later.
    let sent = op
        .send_command_to_client(SendCommandRequest {
            client_id: "cmd-1".into(),
            command: Some(ServerCommand {
                command: Some(commands::ping()),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let cmd = c.command().await;
    assert_eq!(cmd.command_id, sent.command_id);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn execute_times_out_with_deadline_exceeded() {
    let server = start(calm_config()).await;
    let mut c = RawClient::connect(server.grpc_addr, "slow-1").await;
    let mut events = server.handle.subscribe();
    let mut op = operator(server.grpc_addr).await;
    let started = Instant::now();
    let err = op
        .execute_command_sync(exec("slow-1", commands::ping(), 300))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    let cmd = c.command().await;
    wait_event(&mut events, |e| {
        matches!(
            &e.kind,
            EventKind::CommandCompleted {
                outcome: AckOutcome::TimedOut,
                ..
            }
        )
    })
    .await;
    // The late ack is recognised and ignored: the session lives on.
    c.ack(&cmd.command_id, true).await;
    let call = {
        let mut op = op.clone();
        tokio::spawn(async move {
            op.execute_command_sync(exec("slow-1", commands::ping(), 5_000))
                .await
        })
    };
    let next = c.command().await;
    c.ack(&next.command_id, true).await;
    assert!(call.await.unwrap().unwrap().into_inner().success);
    // The call's own deadline wins when it is shorter than timeout_ms.
    let mut req = tonic::Request::new(exec("slow-1", commands::ping(), 60_000));
    req.set_timeout(Duration::from_millis(300));
    let err = op.execute_command_sync(req).await.unwrap_err();
    assert!(
        matches!(err.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{err:?}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn execute_fails_at_once_when_the_client_goes_or_is_not_there() {
    let server = start(calm_config()).await;
    let mut op = operator(server.grpc_addr).await;
    let err = op
        .execute_command_sync(exec("nobody", commands::ping(), 5_000))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let mut c = RawClient::connect(server.grpc_addr, "gone-1").await;
    let call = {
        let mut op = op.clone();
        tokio::spawn(async move {
            op.execute_command_sync(exec("gone-1", commands::ping(), 60_000))
                .await
        })
    };
    let _cmd = c.command().await;
    let started = Instant::now();
    drop(c); // the client vanishes without acking
    let err = tokio::time::timeout(WAIT, call)
        .await
        .expect("fails long before 60 s")
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(started.elapsed() < WAIT);
    assert_eq!(server.handle.connected(), 0);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_second_session_supersedes_the_first_and_fails_its_pending_acks() {
    let server = start(calm_config()).await;
    let mut first = RawClient::connect(server.grpc_addr, "dup-1").await;
    let mut op = operator(server.grpc_addr).await;
    let pending = {
        let mut op = op.clone();
        tokio::spawn(async move {
            op.execute_command_sync(exec("dup-1", commands::ping(), 60_000))
                .await
        })
    };
    let _ = first.command().await;
    let mut second = RawClient::connect(server.grpc_addr, "dup-1").await;
    assert_ne!(first.session_id, second.session_id);
    let status = first.end_status().await;
    assert_eq!(status.code(), Code::Aborted);
    assert!(status.message().contains("superseded"));
    let err = tokio::time::timeout(WAIT, pending)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    // The new session is the one commands reach.
    let call = {
        let mut op = op.clone();
        tokio::spawn(async move {
            op.execute_command_sync(exec("dup-1", commands::ping(), 5_000))
                .await
        })
    };
    let cmd = second.command().await;
    second.ack(&cmd.command_id, true).await;
    assert!(call.await.unwrap().unwrap().into_inner().success);
    let info = op
        .get_client(GetClientRequest {
            client_id: "dup-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.session_id, second.session_id);
    server.stop().await.unwrap();
}

/// A bystander session that must stay untouched by another client's bad
/// input: it still answers a command afterwards.
async fn assert_bystander_fine(server: &crypto_operator::server::Running, c: &mut RawClient) {
    assert!(
        execute_acked(server.grpc_addr, c, commands::ping())
            .await
            .success
    );
}

#[tokio::test]
async fn a_message_before_register_is_failed_precondition() {
    let server = start(calm_config()).await;
    let mut bystander = RawClient::connect(server.grpc_addr, "ok-1").await;
    let (_tx, mut inbound) = open(
        server.grpc_addr,
        msg("bad-1", Payload::Heartbeat(Heartbeat { sequence: 1 })),
    )
    .await;
    let status = end_status(&mut inbound).await;
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("register"), "{status:?}");
    // An unusable client id at registration is refused too.
    let (_tx, mut inbound) = open(
        server.grpc_addr,
        msg("has space", register(ClientType::WalletSync)),
    )
    .await;
    assert_eq!(end_status(&mut inbound).await.code(), Code::InvalidArgument);
    assert!(server.handle.session("bad-1").is_none());
    assert_bystander_fine(&server, &mut bystander).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_wrong_client_id_mid_stream_is_permission_denied() {
    let server = start(calm_config()).await;
    let mut bystander = RawClient::connect(server.grpc_addr, "victim").await;
    let mut c = RawClient::connect(server.grpc_addr, "liar").await;
    c.tx.send(msg("victim", Payload::Heartbeat(Heartbeat { sequence: 1 })))
        .await
        .unwrap();
    let status = c.end_status().await;
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("victim"));
    assert_eq!(
        server
            .handle
            .session("victim")
            .unwrap()
            .state_counters()
            .heartbeats,
        0
    );
    assert_bystander_fine(&server, &mut bystander).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn an_ack_for_an_unknown_or_foreign_command_is_dropped_and_changes_nothing() {
    let server = start(calm_config()).await;
    let mut owner = RawClient::connect(server.grpc_addr, "owner").await;
    let mut thief = RawClient::connect(server.grpc_addr, "thief").await;
    let mut op = operator(server.grpc_addr).await;
    let call = {
        let mut op = op.clone();
        tokio::spawn(async move {
            op.execute_command_sync(exec("owner", commands::pause("x"), 10_000))
                .await
        })
    };
    let cmd = owner.command().await;
    // The thief acks the owner's command: dropped and counted on the
    // thief's session, which goes on; the owner's command stays pending.
    thief.ack(&cmd.command_id, false).await;
    assert!(
        execute_acked(server.grpc_addr, &mut thief, commands::ping())
            .await
            .success,
        "the thief's session goes on"
    );
    assert_eq!(
        server
            .handle
            .session("thief")
            .unwrap()
            .state_counters()
            .messages_rejected,
        1
    );
    assert_eq!(server.handle.session("owner").unwrap().pending_count(), 1);
    owner.ack(&cmd.command_id, true).await;
    assert!(
        call.await.unwrap().unwrap().into_inner().success,
        "the owner's ack wins"
    );

    // A made-up id, and the same ack twice: both dropped.
    let mut c = RawClient::connect(server.grpc_addr, "inventor").await;
    c.ack("no-such-command", true).await;
    let ack = execute_acked(server.grpc_addr, &mut c, commands::ping()).await;
    c.ack(&ack.command_id, true).await;
    assert!(
        execute_acked(server.grpc_addr, &mut c, commands::ping())
            .await
            .success
    );
    assert_eq!(
        server
            .handle
            .session("inventor")
            .unwrap()
            .state_counters()
            .messages_rejected,
        2
    );
    assert_eq!(
        metric(
            &server,
            "crypto_client_messages_rejected_total{reason=\"unknown_command\",type=\"command_ack\"}"
        ),
        3.0
    );
    let _ = op
        .list_clients(ListClientsRequest::default())
        .await
        .unwrap();
    assert_bystander_fine(&server, &mut owner).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn every_malformed_data_message_is_dropped_and_the_session_goes_on() {
    let server = start(calm_config()).await;
    let mut c = RawClient::connect(server.grpc_addr, "sloppy").await;
    let long = "x".repeat(300);
    let bad = [
        (
            Payload::WalletUpdate(WalletUpdate::default()),
            "wallet_update",
            "missing_field",
        ),
        (
            Payload::WalletUpdate(WalletUpdate {
                wallet_id: "w".into(),
                balance: "1,5".into(),
                ..Default::default()
            }),
            "wallet_update",
            "bad_decimal",
        ),
        (
            Payload::Transaction(crypto_operator::proto::Transaction {
                wallet_id: "w".into(),
                amount: "1".into(),
                ..Default::default()
            }),
            "transaction",
            "missing_field",
        ),
        (
            Payload::Status(ClientStatus {
                config_hash: long.clone(),
                ..Default::default()
            }),
            "status",
            "too_long",
        ),
        (
            Payload::Error(crypto_operator::proto::ErrorReport {
                code: long.clone(),
                ..Default::default()
            }),
            "error",
            "too_long",
        ),
        (
            Payload::Log(LogEntry {
                fields: (0..100).map(|i| (i.to_string(), String::new())).collect(),
                ..Default::default()
            }),
            "log",
            "too_long",
        ),
        (
            Payload::Price(PriceUpdate {
                symbol: "BTC".into(),
                price: "1".into(),
                ..Default::default()
            }),
            "price",
            "not_price_feed",
        ),
    ];
    for (p, _, _) in &bad {
        c.send(p.clone()).await;
    }
    // A message with no payload at all.
    c.tx.send(crypto_operator::proto::ClientMessage {
        client_id: "sloppy".into(),
        message_id: "m-empty".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    // The session still works, and a good wallet update is still kept.
    c.send(Payload::WalletUpdate(WalletUpdate {
        wallet_id: "w".into(),
        asset: "ETH".into(),
        balance: "-1.25".into(),
        ..Default::default()
    }))
    .await;
    assert!(
        execute_acked(server.grpc_addr, &mut c, commands::ping())
            .await
            .success
    );
    let session = server.handle.session("sloppy").expect("still connected");
    let counters = session.state_counters();
    assert_eq!(counters.messages_rejected, bad.len() as u64 + 1);
    assert_eq!(counters.wallet_updates, 1);
    assert_eq!(counters.transactions, 0);
    assert_eq!(session.snapshot_wallet_count(), 1);
    for (_, kind, reason) in &bad {
        let want = bad
            .iter()
            .filter(|(_, k, r)| k == kind && r == reason)
            .count() as f64;
        let series =
            format!("crypto_client_messages_rejected_total{{reason=\"{reason}\",type=\"{kind}\"}}");
        assert_eq!(metric(&server, &series), want, "{series}");
    }
    assert_eq!(
        metric(
            &server,
            "crypto_client_messages_rejected_total{reason=\"no_payload\",type=\"empty\"}"
        ),
        1.0
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn an_oversized_message_is_resource_exhausted() {
    let server = start(StreamingConfig {
        max_message_bytes: 4096,
        ..calm_config()
    })
    .await;
    let mut bystander = RawClient::connect(server.grpc_addr, "small").await;
    let mut c = RawClient::connect(server.grpc_addr, "big").await;
    c.send(Payload::Log(LogEntry {
        level: 2,
        message: "x".repeat(10_000),
        fields: Default::default(),
    }))
    .await;
    let status = c.end_status().await;
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_bystander_fine(&server, &mut bystander).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_full_command_queue_is_resource_exhausted() {
    let server = start(StreamingConfig {
        max_pending_acks: 4,
        ..calm_config()
    })
    .await;
    let mut bystander = RawClient::connect(server.grpc_addr, "calm").await;
    let _busy = RawClient::connect(server.grpc_addr, "busy").await;
    let mut op = operator(server.grpc_addr).await;
    let send = |op: &mut crypto_operator::proto::crypto_streaming_service_client::CryptoStreamingServiceClient<_>| {
        let mut op = op.clone();
        async move {
            op.send_command_to_client(SendCommandRequest {
                client_id: "busy".into(),
                command: Some(commands::new(commands::ping())),
            })
            .await
        }
    };
    for _ in 0..4 {
        send(&mut op).await.expect("room for four");
    }
    let err = send(&mut op).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_bystander_fine(&server, &mut bystander).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bad_operator_requests_get_precise_statuses() {
    let server = start(calm_config()).await;
    let _c = RawClient::connect(server.grpc_addr, "target").await;
    let mut op = operator(server.grpc_addr).await;
    let err = op
        .send_command_to_client(SendCommandRequest {
            client_id: "target".into(),
            command: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = op
        .send_command_to_client(SendCommandRequest {
            client_id: "target".into(),
            command: Some(commands::new(Command::Registered(Default::default()))),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let mut dup = commands::new(commands::ping());
    dup.command_id = "fixed-id".into();
    op.send_command_to_client(SendCommandRequest {
        client_id: "target".into(),
        command: Some(dup.clone()),
    })
    .await
    .unwrap();
    let err = op
        .send_command_to_client(SendCommandRequest {
            client_id: "target".into(),
            command: Some(dup),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    let err = op
        .get_client(GetClientRequest {
            client_id: "nobody".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn snapshots_show_registration_status_wallets_and_counters() {
    let server = start(StreamingConfig {
        max_wallets: 2,
        ..calm_config()
    })
    .await;
    let mut events = server.handle.subscribe();
    let c = RawClient::connect(server.grpc_addr, "snap-1").await;
    for (wallet, balance) in [("w1", "1.5"), ("w2", "2"), ("w1", "1.75"), ("w3", "9")] {
        c.send(Payload::WalletUpdate(WalletUpdate {
            wallet_id: wallet.into(),
            chain: "ethereum".into(),
            asset: "ETH".into(),
            balance: balance.into(),
            block_height: 1,
        }))
        .await;
    }
    c.send(Payload::Status(ClientStatus {
        state: ClientRunState::Syncing as i32,
        detail: "busy".into(),
        config_hash: "h".into(),
    }))
    .await;
    c.send(Payload::Heartbeat(Heartbeat { sequence: 1 })).await;
    wait_event(&mut events, |e| matches!(&e.kind, EventKind::Message(m) if matches!(m.payload, Some(Payload::Heartbeat(_))))).await;
    let mut op = operator(server.grpc_addr).await;
    let info = op
        .get_client(GetClientRequest {
            client_id: "snap-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.registration.unwrap().client_type, "wallet-sync");
    assert_eq!(info.status.unwrap().state, ClientRunState::Syncing as i32);
    let wallets: Vec<_> = info
        .wallets
        .iter()
        .map(|w| (w.wallet_id.as_str(), w.balance.as_str()))
        .collect();
    assert_eq!(
        wallets,
        [("w1", "1.75"), ("w2", "2")],
        "latest balance per wallet, at most two kept"
    );
    let counters = info.counters.unwrap();
    assert_eq!(counters.wallet_updates, 4);
    assert_eq!(counters.wallets_dropped, 1);
    assert_eq!(counters.heartbeats, 1);
    assert_eq!(counters.messages_received, 6);
    assert!(info.last_heartbeat.is_some());
    let list = op
        .list_clients(ListClientsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.clients.len(), 1);
    assert_eq!(list.clients[0].client_id, "snap-1");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn server_pings_record_round_trip_time() {
    let server = start(StreamingConfig {
        ping_interval: Duration::from_millis(100),
        ..calm_config()
    })
    .await;
    let mut c = RawClient::connect(server.grpc_addr, "pinged").await;
    let cmd = c.command().await;
    assert!(matches!(cmd.command, Some(Command::Ping(_))));
    let mut events = server.handle.subscribe();
    c.ack(&cmd.command_id, true).await;
    wait_event(&mut events, |e| {
        matches!(e.kind, EventKind::CommandCompleted { .. })
    })
    .await;
    let session = server.handle.session("pinged").unwrap();
    assert!(session.ping_rtt().is_some());
    let mut op = operator(server.grpc_addr).await;
    let info = op
        .get_client(GetClientRequest {
            client_id: "pinged".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(info.ping_rtt.is_some());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_slow_event_subscriber_loses_events_without_slowing_clients() {
    let server = start(StreamingConfig {
        event_buffer: 8,
        ..calm_config()
    })
    .await;
    let mut slow = server.handle.subscribe();
    let mut fast = server.handle.subscribe();
    let c = RawClient::connect(server.grpc_addr, "chatty").await;
    for seq in 0..200u64 {
        c.send(Payload::Heartbeat(Heartbeat { sequence: seq }))
            .await;
    }
    // The fast subscriber keeps up and sees the last heartbeat.
    wait_event(&mut fast, |e| matches!(&e.kind, EventKind::Message(m) if matches!(&m.payload, Some(Payload::Heartbeat(h)) if h.sequence == 199))).await;
    assert_eq!(
        server
            .handle
            .session("chatty")
            .unwrap()
            .state_counters()
            .heartbeats,
        200
    );
    // The slow one finds its oldest events gone, counted.
    let first = slow.recv().await.unwrap();
    assert!(
        !matches!(first.kind, EventKind::Connected(_)),
        "the oldest events were dropped"
    );
    let lost = metric(&server, "crypto_events_lost_total");
    assert!(lost > 0.0, "the loss is counted: {lost}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn health_reports_serving_and_reflection_lists_the_services() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let server = start(calm_config()).await;
    let channel = tonic::transport::Channel::from_shared(url(server.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel.clone());
    for service in ["", "crypto.v1.CryptoStreamingService"] {
        let resp = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resp.status, ServingStatus::Serving as i32, "{service:?}");
    }
    let mut refl = ServerReflectionClient::new(channel);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = refl
        .server_reflection_info(tokio_stream::iter([req]))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("unexpected reflection response");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(
        names.contains(&"crypto.v1.CryptoStreamingService"),
        "{names:?}"
    );
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn shutdown_sends_disconnect_and_ends_streams_cleanly() {
    let server = start(calm_config()).await;
    let mut c = RawClient::connect(server.grpc_addr, "leaving").await;
    let stopping = tokio::spawn(server.stop());
    let cmd = c.command().await;
    assert!(
        matches!(cmd.command, Some(Command::Disconnect(_))),
        "{cmd:?}"
    );
    assert_eq!(c.end_status().await.code(), Code::Ok);
    tokio::time::timeout(WAIT, stopping)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

use crypto_operator::streaming::StreamingConfig;

#[tokio::test]
async fn a_command_expires_with_its_own_ack_deadline() {
    let server = start(calm_config()).await;
    let mut c = RawClient::connect(server.grpc_addr, "expiry").await;
    let mut op = operator(server.grpc_addr).await;
    let call = tokio::spawn(async move {
        op.execute_command_sync(exec("expiry", commands::ping(), 45_000))
            .await
    });
    let cmd = c.command().await;
    let issued = crypto_operator::time::system_time(cmd.issued_at.as_ref().unwrap()).unwrap();
    let expires = crypto_operator::time::system_time(cmd.expires_at.as_ref().unwrap()).unwrap();
    assert_eq!(
        expires.duration_since(issued).unwrap(),
        Duration::from_secs(45)
    );
    c.ack(&cmd.command_id, true).await;
    assert!(call.await.unwrap().unwrap().into_inner().success);
    server.stop().await.unwrap();
}

/// `crypto_commands_pending` counts commands awaiting their ack over every
/// session and returns to zero on the ack and when a session ends with a
/// command unacked; `crypto_runtime_tasks_alive` reads the runtime.
#[tokio::test]
async fn pending_acks_and_live_tasks_are_exported() {
    let server = start(calm_config()).await;
    let mut a = RawClient::connect(server.grpc_addr, "gauge-a").await;
    let mut b = RawClient::connect(server.grpc_addr, "gauge-b").await;
    assert_eq!(metric(&server, "crypto_commands_pending"), 0.0);
    assert!(metric(&server, "crypto_runtime_tasks_alive") > 0.0);
    let first = server
        .handle
        .send("gauge-a", commands::new(commands::ping()), None)
        .unwrap();
    let _second = server
        .handle
        .send("gauge-b", commands::new(commands::ping()), None)
        .unwrap();
    assert_eq!(metric(&server, "crypto_commands_pending"), 2.0);
    let cmd = a.command().await;
    assert_eq!(cmd.command_id, first.command_id);
    a.ack(&cmd.command_id, true).await;
    assert!(first.ack().await.unwrap().success);
    assert_eq!(metric(&server, "crypto_commands_pending"), 1.0);
    // b goes away without acking: its pending command fails with the session.
    let _ = b.command().await;
    drop(b);
    eventually("b's session ended", || {
        server.handle.session("gauge-b").is_none()
    })
    .await;
    assert_eq!(metric(&server, "crypto_commands_pending"), 0.0);
    server.stop().await.unwrap();
}

/// A refused stream always ends with its status, never with a clean OK:
/// the refusal is signalled before the stream's command queue closes. (The
/// queue's sender used to be dropped first, so tonic could poll the
/// response stream in between and end it with OK; the binary's
/// multi-threaded runtime showed it as an UNAUTHENTICATED client seeing
/// OK.) Many refusals at once on a multi-threaded runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_stream_always_ends_with_its_status() {
    let server = start(calm_config()).await;
    let addr = server.grpc_addr;
    let codes = futures::future::join_all((0..300).map(|i| async move {
        let first = msg(
            &format!("early-{i}"),
            Payload::Heartbeat(Heartbeat { sequence: 1 }),
        );
        let (_tx, mut inbound) = open(addr, first).await;
        end_status(&mut inbound).await.code()
    }))
    .await;
    let wrong: Vec<_> = codes
        .iter()
        .filter(|c| **c != Code::FailedPrecondition)
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of 300 ended otherwise: {wrong:?}",
        wrong.len()
    );
    server.stop().await.unwrap();
}

/// Every client id of a full listing, page by page, running `between`
/// after each page (clients connecting and leaving mid-listing).
async fn list_all(
    addr: std::net::SocketAddr,
    request: ListClientsRequest,
    mut between: impl AsyncFnMut(usize),
) -> Vec<String> {
    let mut op = operator(addr).await;
    let mut ids = Vec::new();
    let mut req = request;
    for page in 0.. {
        let resp = op.list_clients(req.clone()).await.unwrap().into_inner();
        assert!(resp.clients.len() <= req.page_size as usize);
        ids.extend(resp.clients.into_iter().map(|c| c.client_id));
        if resp.next_page_token.is_empty() {
            break;
        }
        between(page).await;
        req.page_token = resp.next_page_token;
    }
    ids
}

#[tokio::test]
async fn listing_pages_through_a_changing_fleet_without_duplicates_or_misses() {
    let server = start(calm_config()).await;
    let addr = server.grpc_addr;
    let mut stay = Vec::new();
    for i in 0..150 {
        stay.push(RawClient::connect(addr, &format!("c-{i:03}-stay")).await);
    }
    let mut leaving = Vec::new();
    for i in 0..60 {
        leaving.push(RawClient::connect(addr, &format!("c-{i:03}-leave")).await);
    }
    let mut joined = Vec::new();
    let ids = list_all(
        addr,
        ListClientsRequest {
            page_size: 25,
            ..Default::default()
        },
        async |page| {
            // Between pages: ten clients leave, ten connect (ids spread
            // over the whole range, before and after the cursor).
            for _ in 0..10 {
                if let Some(c) = leaving.pop() {
                    drop(c);
                }
            }
            for j in 0..10 {
                let id = format!("c-{:03}-join-{page}", (page * 37 + j * 13) % 150);
                joined.push(RawClient::connect(addr, &id).await);
            }
        },
    )
    .await;
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, ids, "sorted by client id, no duplicates");
    for c in &stay {
        assert!(ids.contains(&c.client_id), "{} missed", c.client_id);
    }
    assert!(ids.len() > 150, "more than one page: {}", ids.len());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn listing_filters_by_state_and_client_type_and_keeps_wallets_out() {
    let server = start(StreamingConfig {
        stale_after: Duration::from_secs(2),
        dead_after: Duration::from_secs(3600),
        ..calm_config()
    })
    .await;
    let addr = server.grpc_addr;
    let mut events = server.handle.subscribe();
    let fresh = RawClient::connect(addr, "wallet-fresh").await;
    let _stale = RawClient::connect(addr, "wallet-stale").await;
    let _feed = RawClient::connect_as(addr, "feed-1", ClientType::PriceFeed).await;
    fresh
        .send(Payload::WalletUpdate(WalletUpdate {
            wallet_id: "w".into(),
            balance: "1".into(),
            ..Default::default()
        }))
        .await;
    // All three go stale; then one heartbeats and is fresh again.
    let mut stale = std::collections::HashSet::new();
    while stale.len() < 3 {
        let ev = wait_event(&mut events, |e| matches!(e.kind, EventKind::Stale)).await;
        stale.insert(ev.client_id.to_string());
    }
    fresh
        .send(Payload::Heartbeat(Heartbeat { sequence: 1 }))
        .await;
    wait_event(&mut events, |e| {
        matches!(e.kind, EventKind::Fresh) && &*e.client_id == "wallet-fresh"
    })
    .await;
    let list = |state: SessionState, client_type: &str| ListClientsRequest {
        page_size: 10,
        state: state as i32,
        client_type: client_type.into(),
        ..Default::default()
    };
    let none = async |_| {};
    assert_eq!(
        list_all(addr, list(SessionState::Stale, ""), none).await,
        ["feed-1", "wallet-stale"]
    );
    assert_eq!(
        list_all(addr, list(SessionState::Connected, ""), none).await,
        ["wallet-fresh"]
    );
    assert_eq!(
        list_all(addr, list(SessionState::Unspecified, "PRICE-FEED"), none).await,
        ["feed-1"]
    );
    assert_eq!(
        list_all(addr, list(SessionState::Stale, "wallet-sync"), none).await,
        ["wallet-stale"]
    );
    let mut op = operator(addr).await;
    let page = op
        .list_clients(list(SessionState::Connected, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.clients[0].wallet_count, 1, "a count, not the wallets");
    // A token is only good with the filters it was issued for.
    let first = op
        .list_clients(ListClientsRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let status = op
        .list_clients(ListClientsRequest {
            page_size: 1,
            page_token: first.next_page_token,
            client_type: "price-feed".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = op
        .list_clients(ListClientsRequest {
            page_size: 1001,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    server.stop().await.unwrap();
}
