//! Metrics, logs and alerting end to end: `/metrics` is valid exposition
//! format (checked by promtool) with every metric DESIGN.md names after a
//! scripted session; JSON logs carry session ids; and a real Prometheus
//! server scraping a real `crypto-operator serve` fires
//! `CryptoClientHeartbeatStale` for a client that stops heartbeating while
//! its stream stays open, then resolves it when heartbeats resume.

use crate::support;

use crypto_operator::commands;
use crypto_operator::proto::{ExecuteCommandRequest, Heartbeat, client_message::Payload};
use std::process::Stdio;
use std::time::Duration;
use support::process::{http_get, serve, urlencode};
use support::prometheus::{Prometheus, alerts};
use support::*;
use tokio::io::AsyncWriteExt;

const STALE: &str = "CryptoClientHeartbeatStale";

/// Every metric named in docs/DESIGN.md's contract.
const DESIGN_METRICS: &[&str] = &[
    "crypto_clients_connected",
    "crypto_client_up",
    "crypto_client_last_heartbeat_timestamp_seconds",
    "crypto_client_messages_received_total",
    "crypto_commands_sent_total",
    "crypto_command_acks_total",
    "crypto_command_ack_duration_seconds",
    "crypto_commands_timed_out_total",
    "crypto_sessions_ended_total",
    "crypto_client_ping_rtt_seconds",
    "crypto_reconcile_total",
    "crypto_reconcile_duration_seconds",
    "crypto_status_writes_total",
    "crypto_centrifugo_publish_total",
];

fn promtool() -> &'static str {
    if std::path::Path::new("/usr/bin/promtool").exists() {
        "/usr/bin/promtool"
    } else {
        "promtool"
    }
}

#[tokio::test]
async fn metrics_are_valid_exposition_with_every_design_metric_after_a_scripted_session() {
    let server = serve(&["--ack-timeout", "300ms", "--ping-interval", "0s"]).await;
    let mut c = RawClient::connect(server.grpc, "scripted").await;
    c.send(Payload::Heartbeat(Heartbeat { sequence: 1 })).await;
    let mut op = operator(server.grpc).await;
    for body in [
        commands::ping(),
        commands::pause("p"),
        commands::resume(),
        commands::sync_wallets(vec![]),
        commands::update_config([("a".to_string(), "b".to_string())].into()),
    ] {
        assert!(execute_acked(server.grpc, &mut c, body).await.success);
    }
    // One ack timeout (the server's --ack-timeout is 300 ms).
    let err = op
        .execute_command_sync(ExecuteCommandRequest {
            client_id: "scripted".into(),
            command: Some(commands::new(commands::ping())),
            timeout_ms: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::DeadlineExceeded);
    let _ = c.command().await;
    // A server ping records a round trip (the core pings with the same command).
    let (status, text) = http_get(server.http, "/metrics").await;
    assert_eq!(status, 200);
    for name in DESIGN_METRICS {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("# TYPE {name} "))),
            "{name} missing:\n{text}"
        );
    }
    assert!(
        text.contains("crypto_client_up{client_id=\"scripted\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("crypto_commands_timed_out_total{type=\"ping\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("crypto_client_commands_timed_out_total{client_id=\"scripted\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("crypto_command_acks_total{result=\"success\",type=\"update_config\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("crypto_client_messages_received_total{type=\"heartbeat\"} 1"),
        "{text}"
    );

    // promtool parses and lints the exposition (exit 0 = valid).
    let mut check = tokio::process::Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (tests/run.sh installs it)");
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .await
        .unwrap();
    let out = check.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The client's series disappear with its session (standalone mode).
    drop(c);
    let what = "per-client series removed with the session";
    poll_until(what, WAIT, Duration::from_millis(50), async || {
        let (_, text) = http_get(server.http, "/metrics").await;
        (!text.contains("client_id=\"scripted\"")).then_some(())
    })
    .await;
}

#[tokio::test]
async fn json_logs_carry_client_and_session_ids() {
    let mut server = serve(&["--log-format", "json"]).await;
    let c = RawClient::connect(server.grpc, "json-1").await;
    let line = tokio::time::timeout(WAIT, async {
        loop {
            let l = server.log.recv().await.expect("log line");
            if l.contains("session registered") {
                return l;
            }
        }
    })
    .await
    .unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    assert_eq!(v["span"]["client_id"], "json-1", "{v}");
    assert_eq!(v["span"]["session_id"], c.session_id.as_str(), "{v}");
}

#[tokio::test]
async fn prometheus_fires_and_resolves_the_stale_heartbeat_alert() {
    let server = serve(&[
        "--heartbeat-interval",
        "1s",
        "--dead-after",
        "10m",
        "--stale-after",
        "5m",
    ])
    .await;
    let prom = Prometheus::start(&[server.http]);

    // The client heartbeats every 500 ms from a task the test owns.
    let client = RawClient::connect(server.grpc, "quiet-1").await;
    let beating = tokio_util::sync::CancellationToken::new();
    let beat = |tx: tokio::sync::mpsc::Sender<crypto_operator::proto::ClientMessage>,
                stop: tokio_util::sync::CancellationToken| async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let mut seq = 0;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            seq += 1;
            if tx
                .send(msg(
                    "quiet-1",
                    Payload::Heartbeat(Heartbeat { sequence: seq }),
                ))
                .await
                .is_err()
            {
                return;
            }
        }
    };
    let beats = tokio::spawn(beat(client.tx.clone(), beating.clone()));

    // Prometheus is up, scraping, and has the client's heartbeat series.
    let q = format!(
        "/api/v1/query?query={}",
        urlencode("crypto_client_last_heartbeat_timestamp_seconds{client_id=\"quiet-1\"}")
    );
    prom.until(&q, Duration::from_secs(60), |v| {
        v["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    })
    .await;
    // While it heartbeats: at least 8 scrapes (8 s at 1 s intervals, past
    // the test threshold of 3 s plus `for: 2s`) and nothing pending or
    // firing.
    let q = format!(
        "/api/v1/query?query={}",
        urlencode(
            "count_over_time(crypto_client_last_heartbeat_timestamp_seconds{client_id=\"quiet-1\"}[1m]) >= 8"
        )
    );
    prom.until(&q, Duration::from_secs(60), |v| {
        v["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    })
    .await;
    let rules = prom
        .until("/api/v1/rules", Duration::from_secs(30), |v| {
            v["data"]["groups"]
                .as_array()
                .is_some_and(|g| !g.is_empty())
        })
        .await;
    assert!(
        rules["data"]["groups"][0]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "CryptoClientHeartbeatStale" && r["health"] == "ok"),
        "{rules}"
    );
    let v = prom
        .get("/api/v1/alerts")
        .await
        .expect("Prometheus answers");
    assert_eq!(
        alerts(&v, STALE, "quiet-1", "firing") + alerts(&v, STALE, "quiet-1", "pending"),
        0,
        "no alert while heartbeating: {v}"
    );

    // Stop heartbeating but keep the stream open: the alert fires with the
    // client's labels.
    beating.cancel();
    beats.await.unwrap();
    let fired = prom
        .until("/api/v1/alerts", Duration::from_secs(60), |v| {
            alerts(v, STALE, "quiet-1", "firing") == 1
        })
        .await;
    let alert = fired["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == "CryptoClientHeartbeatStale")
        .unwrap()
        .clone();
    assert_eq!(alert["labels"]["severity"], "warning");
    assert!(
        alert["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("quiet-1")
    );
    let (_, metrics) = http_get(server.http, "/metrics").await;
    assert!(
        metrics.contains("crypto_client_up{client_id=\"quiet-1\"} 1"),
        "the stream stayed open: {metrics}"
    );

    // Heartbeats again: the alert resolves.
    let beating = tokio_util::sync::CancellationToken::new();
    let beats = tokio::spawn(beat(client.tx.clone(), beating.clone()));
    prom.until("/api/v1/alerts", Duration::from_secs(60), |v| {
        alerts(v, STALE, "quiet-1", "firing") + alerts(v, STALE, "quiet-1", "pending") == 0
    })
    .await;
    beating.cancel();
    beats.await.unwrap();

    prom.stop().await;
}
