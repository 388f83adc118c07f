//! Runs the real `crypto-operator` binary and real external programs
//! (Prometheus) for tests, and speaks plain HTTP/1.0 to them.

use super::WAIT;
use std::net::SocketAddr;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_crypto-operator");

/// A running `crypto-operator serve`.
pub struct ServeProcess {
    pub child: Child,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    /// Every stderr line after the "serving" line.
    pub log: mpsc::Receiver<String>,
}

/// Starts `serve` on ephemeral loopback ports; the addresses come from its
/// "serving" log line (text or JSON format).
pub async fn serve(extra: &[&str]) -> ServeProcess {
    serve_with_env(extra, &[]).await
}

/// [`serve`] with extra environment variables.
pub async fn serve_with_env(extra: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> ServeProcess {
    let mut args = vec![
        "--grpc-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
        "--drain-grace",
        "3s",
    ];
    args.extend_from_slice(extra);
    serve_args(&args, env).await
}

/// `serve` with exactly `args` (addresses included).
pub async fn serve_args(args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> ServeProcess {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(args)
        .env("CRYPTO_LOG", "info")
        .envs(env.iter().copied())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("serving") {
                return line;
            }
        }
        panic!("server exited before serving");
    })
    .await
    .expect("serving line in time");
    let grpc = log_addr(&line, "grpc_addr");
    let http = log_addr(&line, "http_addr");
    // Keep draining stderr (so the child never blocks on a full pipe) into
    // a bounded channel; lines beyond its room are dropped.
    let (tx, log) = mpsc::channel(1024);
    tokio::spawn(async move {
        while let Ok(Some(l)) = lines.next_line().await {
            let _ = tx.try_send(l);
        }
    });
    ServeProcess {
        child,
        grpc,
        http,
        log,
    }
}

/// The address logged as `name=ADDR` (text) or `"name":"ADDR"` (JSON).
pub fn log_addr(line: &str, name: &str) -> SocketAddr {
    let text = format!("{name}=");
    let json = format!("\"{name}\":\"");
    let start = if let Some(i) = line.find(&text) {
        i + text.len()
    } else {
        line.find(&json).expect("address in line") + json.len()
    };
    line[start..]
        .split(|c: char| c.is_whitespace() || c == '"')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Waits until the process at `http` answers `/readyz` with 200 (as a
/// Service sends traffic only to a ready pod).
pub async fn wait_http_ready(http: SocketAddr) {
    let every = std::time::Duration::from_millis(20);
    super::poll_until("/readyz answers 200", WAIT, every, async || {
        (http_get(http, "/readyz").await.0 == 200).then_some(())
    })
    .await;
}

/// A plain HTTP/1.0 GET (no chunked encoding to decode); returns (status,
/// body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    try_http_get(addr, path)
        .await
        .unwrap_or_else(|e| panic!("GET http://{addr}{path}: {e}"))
}

/// Like [`http_get`], but a refused connection is an error, not a panic.
pub async fn try_http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .map_err(|_| std::io::Error::other("no HTTP answer in time"))??;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not HTTP: {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Percent-encodes a query parameter value.
pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A free loopback port (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
