//! The replicas scenario's load process (`fleet --role replicas-load
//! --config JSON`): real SDK clients (the crate's `client` module, its
//! default backoff) connected through the parent's Service stand-in. It
//! talks to the parent in lines: it says `Connected` once every client is;
//! on `mark` it notes each client's session and the time and says
//! `Marked`; on `report` it says `Moved` (per client: the session at the
//! mark, the session now, when it was Connected again on another session
//! and when that session delivered its desired state); when stdin closes,
//! it stops its clients and exits.

use super::report::{ClientMove, LoadEvent};
use super::sys;
use crypto_operator::client::{
    self, ClientConfig, Command, CommandHandler, CommandResult, ConnectionState,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What the parent asks for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplicasLoadConfig {
    /// The Service's URL.
    pub endpoint: String,
    /// The client ids.
    pub ids: Vec<String>,
    /// How long every client may take to connect at the start.
    pub connect_limit_ms: u64,
}

/// When each client last received `update_config` (its desired state).
type Delivered = Arc<Mutex<Option<Instant>>>;

/// Acks every command; notes when the desired state arrived.
struct Acking {
    delivered: Delivered,
}

impl CommandHandler for Acking {
    async fn handle(&mut self, command: Command) -> CommandResult {
        if matches!(command, Command::UpdateConfig { .. }) {
            let now = Instant::now();
            *self
                .delivered
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(now);
        }
        Ok(HashMap::new())
    }
}

struct Tracked {
    id: String,
    state: watch::Receiver<ConnectionState>,
    delivered: Delivered,
}

fn session(state: &watch::Receiver<ConnectionState>) -> Option<String> {
    match &*state.borrow() {
        ConnectionState::Connected { session_id } => Some(session_id.clone()),
        _ => None,
    }
}

fn emit(ev: &LoadEvent) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{}",
        serde_json::to_string(ev).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    );
    let _ = out.flush();
}

/// Waits (bounded) until `state` is Connected on a session other than
/// `before`; when that happened.
async fn reconnected(
    mut state: watch::Receiver<ConnectionState>,
    before: Option<String>,
    limit: Duration,
) -> Option<Instant> {
    let wait = state.wait_for(|s| match s {
        ConnectionState::Connected { session_id } => Some(session_id) != before.as_ref(),
        _ => false,
    });
    match tokio::time::timeout(limit, wait).await {
        Ok(Ok(_)) => Some(Instant::now()),
        _ => None,
    }
}

/// The parent's next line; None at EOF.
async fn stdin_line() -> Option<String> {
    let read = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        match std::io::stdin().read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line),
        }
    });
    read.await.ok().flatten()
}

async fn run(cfg: ReplicasLoadConfig) -> Result<(), String> {
    let stop = CancellationToken::new();
    let mut clients = Vec::with_capacity(cfg.ids.len());
    let mut tasks = tokio::task::JoinSet::new();
    for id in &cfg.ids {
        let (client, _sender) = client::new(ClientConfig::new(&cfg.endpoint, id));
        let delivered: Delivered = Arc::default();
        clients.push(Tracked {
            id: id.clone(),
            state: client.state(),
            delivered: delivered.clone(),
        });
        tasks.spawn(client.run(Acking { delivered }, stop.clone()));
    }
    let deadline = Instant::now() + Duration::from_millis(cfg.connect_limit_ms);
    loop {
        let connected = clients
            .iter()
            .filter(|c| session(&c.state).is_some())
            .count();
        if connected == clients.len() {
            emit(&LoadEvent::Connected { connected });
            break;
        }
        if Instant::now() > deadline {
            stop.cancel();
            return Err(format!(
                "{connected} of {} clients connected within {} ms",
                clients.len(),
                cfg.connect_limit_ms
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // After `mark`: when, and a watcher per client.
    let mut marked: Option<(Instant, Vec<Option<String>>)> = None;
    let mut watchers = tokio::task::JoinSet::new();
    let watch_limit = Duration::from_secs(600);
    while let Some(line) = stdin_line().await {
        match line.trim() {
            "mark" => {
                let at = Instant::now();
                let before: Vec<Option<String>> =
                    clients.iter().map(|c| session(&c.state)).collect();
                for (i, c) in clients.iter().enumerate() {
                    let (state, b) = (c.state.clone(), before[i].clone());
                    watchers.spawn(async move { (i, reconnected(state, b, watch_limit).await) });
                }
                let connected = before.iter().filter(|s| s.is_some()).count();
                marked = Some((at, before));
                emit(&LoadEvent::Marked { connected });
            }
            "report" => {
                let Some((at, before)) = &marked else {
                    return Err("`report` before `mark`".into());
                };
                // Watchers that finished: their client reconnected.
                let mut again: HashMap<usize, Instant> = HashMap::new();
                while let Some(Ok((i, t))) = watchers.try_join_next() {
                    if let Some(t) = t {
                        again.insert(i, t);
                    }
                }
                let ms = |t: Instant| t.saturating_duration_since(*at).as_secs_f64() * 1e3;
                let moves = clients
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let delivered = *c
                            .delivered
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        ClientMove {
                            id: c.id.clone(),
                            before: before[i].clone(),
                            now: session(&c.state),
                            reconnect_ms: again.get(&i).map(|t| ms(*t)),
                            config_ms: delivered.filter(|d| d > at).map(ms),
                        }
                    })
                    .collect();
                emit(&LoadEvent::Moved { clients: moves });
            }
            other => return Err(format!("unknown instruction {other:?}")),
        }
    }
    watchers.shutdown().await;
    stop.cancel();
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    ended.map_err(|_| "the clients did not stop within 30 s".to_owned())
}

/// `--role replicas-load --config JSON`.
pub fn main(argv: &[String]) -> ! {
    let cfg: ReplicasLoadConfig = argv
        .iter()
        .position(|a| a == "--config")
        .and_then(|i| argv.get(i + 1))
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_else(|| {
            eprintln!("fleet replicas-load: --config JSON is required");
            std::process::exit(2)
        });
    if let Err(e) = sys::raise_nofile(cfg.ids.len() as u64 + 256) {
        eprintln!("fleet replicas-load: {e}");
        std::process::exit(2);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fleet replicas-load: {e}");
            std::process::exit(1)
        }
    };
    let code = match rt.block_on(run(cfg)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("fleet replicas-load: {e}");
            1
        }
    };
    rt.shutdown_timeout(Duration::from_secs(2));
    std::process::exit(code);
}
