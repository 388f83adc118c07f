//! The real `crypto-operator` binary: `serve` on ephemeral ports, the HTTP
//! endpoints, the `clients` and `command` subcommands, and graceful exit 0
//! on SIGTERM.

use crate::support;

use crypto_operator::proto::server_command::Command;
use std::net::SocketAddr;
use std::process::Stdio;
use support::process::{BIN, http_get as get, serve};
use support::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command as Process;

async fn cli(args: &[&str]) -> std::process::Output {
    tokio::time::timeout(
        WAIT,
        Process::new(BIN)
            .args(args)
            .env("CRYPTO_LOG", "warn")
            .output(),
    )
    .await
    .expect("cli finishes")
    .unwrap()
}

#[tokio::test]
async fn serve_answers_http_and_cli_and_exits_zero_on_sigterm() {
    let server = serve(&[]).await;
    let (mut child, grpc, http) = (server.child, server.grpc, server.http);
    let (code, body) = get(http, "/healthz").await;
    assert_eq!((code, body.contains("ok")), (200, true));
    let (code, _) = get(http, "/readyz").await;
    assert_eq!(code, 200);
    let (code, metrics) = get(http, "/metrics").await;
    assert_eq!(code, 200);
    assert!(metrics.contains("crypto_clients_connected 0"), "{metrics}");

    let mut client = RawClient::connect(grpc, "cli-1").await;
    let server = url(grpc);
    let out = cli(&["clients", "--server", &server]).await;
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("cli-1") && table.contains("Connected") && table.contains("wallet-sync"),
        "{table}"
    );

    // `clients` pages through everything (three pages here), with filters
    // and as JSON.
    let _feed = RawClient::connect_as(
        grpc,
        "cli-0-feed",
        crypto_operator::client::ClientType::PriceFeed,
    )
    .await;
    let _other = RawClient::connect(grpc, "cli-2").await;
    let out = cli(&[
        "clients",
        "--server",
        &server,
        "--page-size",
        "1",
        "-o",
        "json",
    ])
    .await;
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let ids: Vec<&str> = v["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["clientId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["cli-0-feed", "cli-1", "cli-2"]);
    let out = cli(&[
        "clients",
        "--server",
        &server,
        "--type",
        "price-feed",
        "--state",
        "connected",
    ])
    .await;
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("cli-0-feed") && !table.contains("cli-1"),
        "{table}"
    );
    let out = cli(&[
        "clients", "--server", &server, "--state", "stale", "-o", "json",
    ])
    .await;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v, serde_json::json!({"clients": []}));
    let out = cli(&["clients", "--server", &server, "--state", "sleepy"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("sleepy"));

    // `command --wait` prints the ack; the raw client answers it.
    let waiting = tokio::spawn({
        let server = server.clone();
        async move {
            cli(&[
                "command",
                "cli-1",
                "update-config",
                "mode=fast",
                "--wait",
                "--timeout",
                "5s",
                "--server",
                &server,
            ])
            .await
        }
    });
    let cmd = client.command().await;
    let Some(Command::UpdateConfig(u)) = &cmd.command else {
        panic!("{cmd:?}")
    };
    assert_eq!(u.config.get("mode").map(String::as_str), Some("fast"));
    client.ack(&cmd.command_id, true).await;
    let out = waiting.await.unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("succeeded"));

    // Errors are clear messages with a non-zero exit.
    let out = cli(&["command", "nobody", "ping", "--server", &server]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NotFound"),
        "{out:?}"
    );
    let out = cli(&[
        "command",
        "cli-1",
        "update-config",
        "novalue",
        "--server",
        &server,
    ])
    .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("key=value"));

    // SIGTERM: the client is told to disconnect, its stream ends with OK,
    // and the process exits 0.
    let pid = child.id().unwrap().to_string();
    assert!(
        Process::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap()
            .success()
    );
    let cmd = client.command().await;
    assert!(
        matches!(cmd.command, Some(Command::Disconnect(_))),
        "{cmd:?}"
    );
    assert_eq!(client.end_status().await.code(), tonic::Code::Ok);
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test]
async fn bad_flags_are_refused_with_a_clear_message() {
    let out = cli(&["serve", "--heartbeat-interval", "ten"]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("expected a whole number followed by ms, s, m or h"),
        "{out:?}"
    );
    // Flags that parse but contradict each other: the message names them.
    let cases: [(&[&str], &[&str]); 4] = [
        (
            &["--stale-after", "10s", "--dead-after", "5s"],
            &["--dead-after"],
        ),
        // A connection window below the stream window (or the protocol's
        // 65,535).
        (
            &[
                "--http2-stream-window",
                "1048576",
                "--http2-connection-window",
                "524288",
            ],
            &[
                "--http2-connection-window 524288",
                "not below --http2-stream-window (1048576)",
            ],
        ),
        // A peer CA without the name to check peers' certificates against,
        // or without TLS on the port.
        (
            &[
                "--tls-cert",
                "c.pem",
                "--tls-key",
                "k.pem",
                "--peer-ca",
                "ca.pem",
            ],
            &["--peer-tls-name <PEER_TLS_NAME>"],
        ),
        (
            &["--peer-ca", "ca.pem", "--peer-tls-name", "x.svc"],
            &["--tls-cert <TLS_CERT>"],
        ),
    ];
    for (flags, expected) in cases {
        let mut args = vec![
            "serve",
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(flags);
        let out = cli(&args).await;
        assert!(!out.status.success(), "{flags:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        for e in expected {
            assert!(err.contains(e), "{flags:?}: {e:?} missing from {err}");
        }
    }
}

#[tokio::test]
async fn flags_can_be_set_from_the_environment() {
    let mut child = Process::new(BIN)
        .args(["serve", "--grpc-addr", "127.0.0.1:0"])
        .env("CRYPTO_HTTP_ADDR", "127.0.0.1:0")
        .env("CRYPTO_HEARTBEAT_INTERVAL", "2s")
        .env("CRYPTO_LOG", "info")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = tokio::time::timeout(WAIT, async {
        loop {
            let l = lines.next_line().await.unwrap().expect("serving line");
            if l.contains("serving") {
                return l;
            }
        }
    })
    .await
    .unwrap();
    let start = line.find("grpc_addr=").unwrap() + 10;
    let grpc: SocketAddr = line[start..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let (_tx, mut inbound) = open(
        grpc,
        msg(
            "env-1",
            register(crypto_operator::client::ClientType::WalletSync),
        ),
    )
    .await;
    let first = inbound.message().await.unwrap().unwrap();
    let Some(Command::Registered(r)) = first.command else {
        panic!()
    };
    assert_eq!(r.heartbeat_interval.unwrap().seconds, 2);
    child.kill().await.unwrap();
}
