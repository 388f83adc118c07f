//! Client identity and limits: tokens (standalone tokens file, cluster
//! Secrets), the operator token, message-rate and session limits, text
//! truncation, maximum session age, and no leaks when a client dies
//! mid-command.

use crate::support;

use crypto_operator::client::ClientType;
use crypto_operator::commands;
use crypto_operator::controller::ControllerConfig;
use crypto_operator::proto::{
    ExecuteCommandRequest, Heartbeat, ListClientsRequest, LogEntry, SendCommandRequest,
    client_message::Payload, server_command::Command,
};
use crypto_operator::server::{self, ClusterConfig, Mode, Running, SecurityConfig, ServerConfig};
use crypto_operator::streaming::{EventKind, StreamingConfig};
use serde_json::json;
use std::path::Path;
use std::time::Duration;
use support::fake_kube::FakeKube;
use support::process::http_get;
use support::*;
use tonic::Code;

async fn start_with(streaming: StreamingConfig, security: SecurityConfig) -> Running {
    server::start(ServerConfig {
        streaming,
        security,
        drain_grace: Duration::from_secs(2),
        ..ServerConfig::default()
    })
    .await
    .expect("server starts")
}

async fn refused(addr: std::net::SocketAddr, id: &str, token: Option<&str>) -> tonic::Status {
    let (_tx, mut inbound) =
        open_with_token(addr, msg(id, register(ClientType::WalletSync)), token).await;
    end_status(&mut inbound).await
}

fn write_tokens(path: &Path, entries: &[(&str, &str)]) {
    let mut yaml = String::new();
    for (id, token) in entries {
        yaml.push_str(&format!(
            "{id}: '{}'\n",
            crypto_operator::auth::hash_token(token).unwrap()
        ));
    }
    // Write then rename, so the watcher never reads half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, yaml).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn rejected_unauthenticated(http: std::net::SocketAddr) -> u64 {
    let (_, m) = http_get(http, "/metrics").await;
    m.lines()
        .find_map(|l| l.strip_prefix("crypto_streams_rejected_total{code=\"Unauthenticated\"} "))
        .map_or(0, |v| v.parse().unwrap())
}

#[tokio::test]
async fn standalone_tokens_admit_only_the_rightful_client_and_revocation_takes_effect() {
    let dir = std::env::temp_dir().join(format!("crypto-tokens-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tokens.yaml");
    write_tokens(
        &file,
        &[
            ("alice", "alice-token-0123456789"),
            ("bob", "bob-token-0123456789"),
        ],
    );
    let server = start_with(
        calm_config(),
        SecurityConfig {
            require_client_auth: true,
            tokens_file: Some(file.clone()),
            ..Default::default()
        },
    )
    .await;
    let addr = server.grpc_addr;
    let mut alice = RawClient::connect_with_token(addr, "alice", "alice-token-0123456789").await;

    assert_eq!(
        refused(addr, "bob", None).await.code(),
        Code::Unauthenticated,
        "no token"
    );
    assert_eq!(
        refused(addr, "bob", Some("wrong-token-0123456789"))
            .await
            .code(),
        Code::Unauthenticated,
        "wrong token"
    );
    let other = refused(addr, "bob", Some("alice-token-0123456789")).await;
    assert_eq!(
        other.code(),
        Code::Unauthenticated,
        "another client's token"
    );
    assert_eq!(
        refused(addr, "mallory", Some("alice-token-0123456789"))
            .await
            .code(),
        Code::Unauthenticated,
        "unknown id"
    );
    assert_eq!(
        rejected_unauthenticated(server.http_addr).await,
        4,
        "refusals are counted"
    );
    let bob = RawClient::connect_with_token(addr, "bob", "bob-token-0123456789").await;
    drop(bob);

    // Revoke bob: the watcher reloads the file; bob's token stops working.
    write_tokens(&file, &[("alice", "alice-token-0123456789")]);
    let what = "the revocation takes effect";
    poll_until(what, WAIT, Duration::from_millis(200), async || {
        let (_tx, mut inbound) = open_with_token(
            addr,
            msg("bob", register(ClientType::WalletSync)),
            Some("bob-token-0123456789"),
        )
        .await;
        let first = tokio::time::timeout(WAIT, inbound.message()).await.unwrap();
        matches!(first, Err(s) if s.code() == Code::Unauthenticated).then_some(())
    })
    .await;
    // Alice, the rightful client, was never disturbed.
    let mut op = operator(addr).await;
    let call = tokio::spawn(async move {
        op.execute_command_sync(ExecuteCommandRequest {
            client_id: "alice".into(),
            command: Some(commands::new(commands::ping())),
            timeout_ms: 5_000,
        })
        .await
    });
    let cmd = alice.command().await;
    alice.ack(&cmd.command_id, true).await;
    assert!(call.await.unwrap().unwrap().into_inner().success);
    server.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn required_auth_without_a_tokens_file_refuses_to_start_standalone() {
    let err = server::start(ServerConfig {
        security: SecurityConfig {
            require_client_auth: true,
            ..Default::default()
        },
        ..ServerConfig::default()
    })
    .await
    .err()
    .expect("refused");
    assert!(err.to_string().contains("--tokens-file"), "{err}");
}

#[tokio::test]
async fn the_operator_token_guards_the_operator_calls_and_nothing_reaches_the_client_without_it() {
    let server = start_with(
        calm_config(),
        SecurityConfig {
            operator_token: Some("op-secret-0123456789".into()),
            ..Default::default()
        },
    )
    .await;
    let mut c = RawClient::connect(server.grpc_addr, "guarded").await;
    let mut op = operator(server.grpc_addr).await;
    let send = || SendCommandRequest {
        client_id: "guarded".into(),
        command: Some(commands::new(commands::pause("x"))),
    };
    let err = op.send_command_to_client(send()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let mut wrong = tonic::Request::new(send());
    wrong
        .metadata_mut()
        .insert("authorization", "Bearer nope".parse().unwrap());
    assert_eq!(
        op.send_command_to_client(wrong).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    assert_eq!(
        op.list_clients(ListClientsRequest::default())
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    assert_eq!(
        server
            .handle
            .session("guarded")
            .unwrap()
            .state_counters()
            .commands_sent,
        1,
        "only `registered` was sent"
    );
    let mut right = tonic::Request::new(send());
    right.metadata_mut().insert(
        "authorization",
        "Bearer op-secret-0123456789".parse().unwrap(),
    );
    op.send_command_to_client(right).await.unwrap();
    let cmd = c.command().await;
    assert!(matches!(cmd.command, Some(Command::Pause(_))));
    // The CLI passes --token.
    let out = tokio::process::Command::new(support::process::BIN)
        .args([
            "clients",
            "--server",
            &url(server.grpc_addr),
            "--token",
            "op-secret-0123456789",
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("guarded"),
        "{out:?}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn cluster_tokens_come_from_the_resources_secret_and_bind_to_its_client() {
    init_logs();
    let fake = FakeKube::start().await;
    use base64_encode as b64;
    fake.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "eth-token", "namespace": "default"}, "data": {"token": b64("eth-token-0123456789\n")}})).unwrap();
    fake.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "btc-token", "namespace": "default"}, "data": {"token": b64("btc-token-0123456789")}})).unwrap();
    for (name, secret) in [("eth", "eth-token"), ("btc", "btc-token")] {
        fake.create(support::cluster::cc(
            "default",
            name,
            json!({"auth": {"tokenSecretRef": {"name": secret, "key": "token"}}}),
        ))
        .unwrap();
    }
    fake.create(support::cluster::cc("default", "open", json!({})))
        .unwrap();
    let running = server::start(ServerConfig {
        streaming: calm_config(),
        drain_grace: Duration::from_secs(2),
        mode: Mode::Cluster(ClusterConfig {
            client: fake.client().await,
            controller: ControllerConfig {
                namespaces: vec![],
                status_heartbeat_interval: Duration::from_secs(30),
                concurrency: 4,
                api_timeout: crypto_operator::controller::DEFAULT_API_TIMEOUT,
                ..ControllerConfig::default()
            },
        }),
        security: SecurityConfig {
            require_client_auth: true,
            secret_cache_ttl: Duration::ZERO,
            ..Default::default()
        },
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    wait_ready(&running).await;
    let addr = running.grpc_addr;
    assert_eq!(
        refused(addr, "eth", None).await.code(),
        Code::Unauthenticated,
        "no token"
    );
    assert_eq!(
        refused(addr, "eth", Some("guess-0123456789")).await.code(),
        Code::Unauthenticated,
        "wrong token"
    );
    assert_eq!(
        refused(addr, "eth", Some("btc-token-0123456789"))
            .await
            .code(),
        Code::Unauthenticated,
        "another client's token"
    );
    let open = refused(addr, "open", None).await;
    assert_eq!(
        open.code(),
        Code::Unauthenticated,
        "auth required but the resource names no Secret"
    );
    assert!(open.message().contains("tokenSecretRef"), "{open:?}");
    let btc = RawClient::connect_with_token(addr, "btc", "btc-token-0123456789").await;
    let _eth = RawClient::connect_with_token(addr, "eth", "eth-token-0123456789").await;
    // Rotate eth's Secret: the old token is refused, the new one works,
    // and btc is unaffected.
    fake.merge_patch(
        "",
        "v1",
        "secrets",
        "default",
        "eth-token",
        json!({"data": {"token": b64("eth-token-rotated-0123")}}),
    )
    .unwrap();
    assert_eq!(
        refused(addr, "eth", Some("eth-token-0123456789"))
            .await
            .code(),
        Code::Unauthenticated,
        "revoked"
    );
    let _eth2 = RawClient::connect_with_token(addr, "eth", "eth-token-rotated-0123").await;
    assert!(
        running
            .handle
            .session("btc")
            .is_some_and(|s| *s.session_id == *btc.session_id)
    );
    running.stop().await.unwrap();
}

fn base64_encode(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test]
async fn a_client_over_its_message_rate_is_ended_and_others_are_not() {
    let server = start_with(
        StreamingConfig {
            max_messages_per_second: 50,
            message_burst: 100,
            ..calm_config()
        },
        SecurityConfig::default(),
    )
    .await;
    let mut calm = RawClient::connect(server.grpc_addr, "calm").await;
    let mut flood = RawClient::connect(server.grpc_addr, "flood").await;
    for seq in 0..1_000u64 {
        if flood
            .tx
            .send(msg(
                "flood",
                Payload::Heartbeat(Heartbeat { sequence: seq }),
            ))
            .await
            .is_err()
        {
            break;
        }
    }
    let status = flood.end_status().await;
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("rate"));
    let (_, m) = http_get(server.http_addr, "/metrics").await;
    assert!(m.contains("crypto_sessions_rate_limited_total 1"), "{m}");
    let mut op = operator(server.grpc_addr).await;
    let call = tokio::spawn(async move {
        op.execute_command_sync(ExecuteCommandRequest {
            client_id: "calm".into(),
            command: Some(commands::new(commands::ping())),
            timeout_ms: 5_000,
        })
        .await
    });
    let cmd = calm.command().await;
    calm.ack(&cmd.command_id, true).await;
    assert!(call.await.unwrap().unwrap().into_inner().success);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_session_limit_refuses_new_clients_but_not_a_reconnecting_one() {
    let server = start_with(
        StreamingConfig {
            max_sessions: 2,
            ..calm_config()
        },
        SecurityConfig::default(),
    )
    .await;
    let _a = RawClient::connect(server.grpc_addr, "a").await;
    let _b = RawClient::connect(server.grpc_addr, "b").await;
    let status = refused(server.grpc_addr, "c", None).await;
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(status.message().contains("session limit"));
    // A new session for an existing id supersedes; it does not add one.
    let a2 = RawClient::connect(server.grpc_addr, "a").await;
    assert_eq!(server.handle.connected(), 2);
    drop(a2);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn long_log_texts_are_truncated_and_flagged_not_refused() {
    let server = start_with(
        StreamingConfig {
            max_text_bytes: 64,
            ..calm_config()
        },
        SecurityConfig::default(),
    )
    .await;
    let mut events = server.handle.subscribe();
    let c = RawClient::connect(server.grpc_addr, "chatty").await;
    c.send(Payload::Log(LogEntry {
        level: 2,
        message: "x".repeat(1_000),
        fields: Default::default(),
    }))
    .await;
    let ev = wait_event(
        &mut events,
        |e| matches!(&e.kind, EventKind::Message(m) if matches!(m.payload, Some(Payload::Log(_)))),
    )
    .await;
    let EventKind::Message(m) = &ev.kind else {
        unreachable!()
    };
    let Some(Payload::Log(l)) = &m.payload else {
        unreachable!()
    };
    assert!(
        l.message.starts_with(&"x".repeat(64)) && l.message.ends_with("[truncated 936 bytes]"),
        "{}",
        l.message
    );
    assert_eq!(l.fields.get("truncated").map(String::as_str), Some("true"));
    assert!(
        server.handle.session("chatty").is_some(),
        "the session lives on"
    );
    let (_, metrics) = http_get(server.http_addr, "/metrics").await;
    assert!(metrics.contains("crypto_texts_truncated_total 1"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn an_aged_session_is_asked_to_reconnect_after_its_pending_commands() {
    let server = start_with(
        StreamingConfig {
            max_session_age: Duration::from_millis(300),
            session_age_grace: Duration::from_secs(5),
            ..calm_config()
        },
        SecurityConfig::default(),
    )
    .await;
    let mut c = RawClient::connect(server.grpc_addr, "old").await;
    let mut op = operator(server.grpc_addr).await;
    let call = tokio::spawn(async move {
        op.execute_command_sync(ExecuteCommandRequest {
            client_id: "old".into(),
            command: Some(commands::new(commands::sync_wallets(vec![]))),
            timeout_ms: 10_000,
        })
        .await
    });
    let sync = c.command().await;
    let disconnect = c.command().await;
    assert!(
        matches!(disconnect.command, Some(Command::Disconnect(ref d)) if d.reason.contains("age")),
        "{disconnect:?}"
    );
    // The pending sync may still finish within the grace period.
    c.ack(&sync.command_id, true).await;
    assert!(call.await.unwrap().unwrap().into_inner().success);
    assert_eq!(c.end_status().await.code(), Code::Ok);
    let (_, m) = http_get(server.http_addr, "/metrics").await;
    assert!(
        m.contains("crypto_sessions_ended_total{reason=\"max_age\"} 1"),
        "{m}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_client_killed_mid_command_fails_the_ack_at_once_and_leaks_nothing() {
    let server = start_with(calm_config(), SecurityConfig::default()).await;
    let mut op = operator(server.grpc_addr).await;
    for round in 0..20 {
        let id = format!("victim-{round}");
        let mut c = RawClient::connect(server.grpc_addr, &id).await;
        let call = {
            let mut op = op.clone();
            let id = id.clone();
            tokio::spawn(async move {
                op.execute_command_sync(ExecuteCommandRequest {
                    client_id: id,
                    command: Some(commands::new(commands::ping())),
                    timeout_ms: 60_000,
                })
                .await
            })
        };
        let _ = c.command().await;
        drop(c);
        let err = tokio::time::timeout(WAIT, call)
            .await
            .expect("fails at once")
            .unwrap()
            .unwrap_err();
        assert_eq!(err.code(), Code::Unavailable);
    }
    let list = op
        .list_clients(ListClientsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(list.clients.is_empty());
    assert_eq!(server.handle.connected(), 0);
    let (_, m) = http_get(server.http_addr, "/metrics").await;
    assert!(m.contains("crypto_clients_connected 0"), "{m}");
    assert!(
        m.contains("crypto_commands_cancelled_total{type=\"ping\"} 20"),
        "{m}"
    );
    assert!(
        !m.contains("client_id=\"victim-"),
        "no per-client series left"
    );
    server.stop().await.unwrap();
}
