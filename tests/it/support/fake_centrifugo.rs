//! A TEST DOUBLE of Centrifugo's HTTP server API — not Centrifugo. It
//! speaks the shape the publisher uses (v5/v6): `POST /api/publish` with
//! `{"channel", "data"}` answered `{"result": {}}`, `POST /api/batch` with
//! `{"commands": [{"publish": {...}}]}` answered `{"replies": [...]}`,
//! `X-API-Key` checked when the fake has a key (401 otherwise), and
//! per-publication errors (`{"error": {"code": 102, ...}}`) for channels
//! it is told to refuse. HTTP/1.1 with keep-alive, one task per
//! connection.
//!
//! It records every request when it arrives (path, key, body, time) and,
//! separately, every publication it answered 200 for ("delivered", in
//! order). Modes: `Ok`; `Fail500` (every request answered 500);
//! `FailNext(n)` (the next n requests 500, then Ok); `Hang` (requests are
//! read and never answered until the mode changes — then answered as the
//! new mode says; switching to `Ok` is "recover"). Tests wait on its
//! counters through `watch` channels, never on sleeps.

use super::WAIT;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How the fake answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Ok,
    Fail500,
    FailNext(u32),
    Hang,
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub api_key: Option<String>,
    pub body: Value,
    pub at: Instant,
}

impl Recorded {
    /// The (channel, data) pairs of the request, in order.
    pub fn publications(&self) -> Vec<(String, Value)> {
        if self.path == "/api/batch" {
            self.body["commands"]
                .as_array()
                .map(|cs| {
                    cs.iter()
                        .map(|c| {
                            (
                                c["publish"]["channel"].as_str().unwrap_or("").to_owned(),
                                c["publish"]["data"].clone(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default()
        } else {
            vec![(
                self.body["channel"].as_str().unwrap_or("").to_owned(),
                self.body["data"].clone(),
            )]
        }
    }
}

struct State {
    key: Option<String>,
    mode: watch::Sender<Mode>,
    reject_prefix: Mutex<Option<String>>,
    requests: Mutex<Vec<Recorded>>,
    request_count: watch::Sender<usize>,
    delivered: Mutex<Vec<(String, Value)>>,
    delivered_count: watch::Sender<usize>,
}

/// The running fake.
pub struct FakeCentrifugo {
    pub addr: SocketAddr,
    state: Arc<State>,
    _tasks: Arc<Mutex<JoinSet<()>>>,
}

impl FakeCentrifugo {
    /// Starts on 127.0.0.1:0; with `key`, requests need `X-API-Key: key`.
    pub async fn start(key: Option<&str>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            key: key.map(str::to_owned),
            mode: watch::Sender::new(Mode::Ok),
            reject_prefix: Mutex::new(None),
            requests: Mutex::new(Vec::new()),
            request_count: watch::Sender::new(0),
            delivered: Mutex::new(Vec::new()),
            delivered_count: watch::Sender::new(0),
        });
        let tasks = Arc::new(Mutex::new(JoinSet::new()));
        // Weak: dropping the fake aborts every task, the accept loop too.
        let accept_tasks = Arc::downgrade(&tasks);
        let accept_state = state.clone();
        tasks.lock().unwrap().spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let Some(tasks) = accept_tasks.upgrade() else {
                    return;
                };
                let st = accept_state.clone();
                tasks.lock().unwrap().spawn(connection(stream, st));
            }
        });
        Self {
            addr,
            state,
            _tasks: tasks,
        }
    }

    /// The base URL to give the publisher.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.mode.send_replace(mode);
    }

    /// Publications to channels starting with `prefix` get error 102.
    pub fn reject_channels(&self, prefix: &str) {
        *self.state.reject_prefix.lock().unwrap() = Some(prefix.to_owned());
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Every publication answered 200 so far, in order.
    pub fn delivered(&self) -> Vec<(String, Value)> {
        self.state.delivered.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived; returns them all.
    pub async fn wait_requests(&self, n: usize) -> Vec<Recorded> {
        let mut rx = self.state.request_count.subscribe();
        tokio::time::timeout(WAIT, rx.wait_for(|c| *c >= n))
            .await
            .unwrap_or_else(|_| panic!("{n} requests in time; got {:#?}", self.requests()))
            .unwrap();
        self.requests()
    }

    /// Waits until at least `n` publications were delivered; returns them.
    pub async fn wait_delivered(&self, n: usize) -> Vec<(String, Value)> {
        let mut rx = self.state.delivered_count.subscribe();
        tokio::time::timeout(WAIT, rx.wait_for(|c| *c >= n))
            .await
            .unwrap_or_else(|_| panic!("{n} publications in time; got {:#?}", self.delivered()))
            .unwrap();
        self.delivered()
    }
}

/// Serves one keep-alive connection.
async fn connection(stream: TcpStream, st: Arc<State>) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    loop {
        let Some((path, headers, body)) = read_request(&mut read).await else {
            return;
        };
        let api_key = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-api-key"))
            .map(|(_, v)| v.clone());
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let rec = Recorded {
            path: path.clone(),
            api_key: api_key.clone(),
            body,
            at: Instant::now(),
        };
        // The answer is decided before the request is announced, so a test
        // that changes the mode after `wait_requests` affects only later
        // requests (a hanging one is decided when it is released).
        let mut fail = decide(&st);
        let hang = *st.mode.borrow() == Mode::Hang;
        st.requests.lock().unwrap().push(rec.clone());
        st.request_count.send_modify(|c| *c += 1);
        if hang {
            let mut rx = st.mode.subscribe();
            if rx.wait_for(|m| *m != Mode::Hang).await.is_err() {
                return;
            }
            fail = decide(&st);
        }
        let (status, reply, delivered) = if fail {
            (500, "Internal Server Error".to_owned(), Vec::new())
        } else if st.key.is_some() && st.key != api_key {
            (401, String::new(), Vec::new())
        } else if path != "/api/publish" && path != "/api/batch" {
            (404, String::new(), Vec::new())
        } else {
            let reject = st.reject_prefix.lock().unwrap().clone();
            let mut delivered = Vec::new();
            let mut replies = Vec::new();
            for (channel, data) in rec.publications() {
                if reject.as_deref().is_some_and(|p| channel.starts_with(p)) {
                    replies.push(json!({"error": {"code": 102, "message": "unknown channel"}}));
                } else {
                    replies.push(json!({"publish": {}}));
                    delivered.push((channel, data));
                }
            }
            let reply = if path == "/api/publish" {
                match replies.pop() {
                    Some(r) if r.get("error").is_some() => r,
                    _ => json!({"result": {}}),
                }
            } else {
                json!({"replies": replies})
            };
            (200, reply.to_string(), delivered)
        };
        let reason = match status {
            200 => "OK",
            401 => "Unauthorized",
            404 => "Not Found",
            _ => "Internal Server Error",
        };
        let resp = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}",
            reply.len()
        );
        if write.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
        if !delivered.is_empty() {
            let n = delivered.len();
            st.delivered.lock().unwrap().extend(delivered);
            st.delivered_count.send_modify(|c| *c += n);
        }
    }
}

/// Whether the next answer is a 500 (counting down `FailNext`).
fn decide(st: &State) -> bool {
    let mode = *st.mode.borrow();
    match mode {
        Mode::Fail500 => true,
        Mode::FailNext(n) if n > 0 => {
            st.mode.send_replace(if n == 1 {
                Mode::Ok
            } else {
                Mode::FailNext(n - 1)
            });
            true
        }
        _ => false,
    }
}

/// Reads one request: (path, headers, body); `None` at EOF.
async fn read_request(
    r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> Option<(String, Vec<(String, String)>, Vec<u8>)> {
    let mut line = String::new();
    if r.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let path = line.split(' ').nth(1)?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).await.ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).await.ok()?;
    Some((path, headers, body))
}
