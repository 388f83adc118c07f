//! The soak's load side (a child of `load.rs`): with every client
//! connected, each one heartbeats once per heartbeat period and gets one
//! `ExecuteCommandSync(ping)` per command period, both spread evenly over
//! their period in 10 ms ticks, until a line arrives on stdin.
//!
//! Commands are issued from spawned tasks over a few operator connections
//! with a hard bound on calls in flight: when every slot is taken the
//! command is counted as skipped instead of queued, so a load that cannot
//! keep up shows it in the figures rather than building a backlog.

use super::{Beats, Client, Op, Spread, emit, exec, operators, ops_for, spawn_heartbeats};
use crate::report::{Latency, LoadEvent, Soak};
use crate::sys;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// What the parent asks for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SoakConfig {
    pub heartbeat_ms: u64,
    pub command_ms: u64,
    /// Most `ExecuteCommandSync` calls in flight.
    pub in_flight: usize,
}

/// Latency samples kept for the percentiles.
const RESERVOIR: usize = 100_000;
/// How long the stop waits for calls in flight.
const DRAIN: Duration = Duration::from_secs(30);

/// A uniform sample of every round trip (Algorithm R), and the exact max.
#[derive(Default)]
struct Reservoir {
    seen: u64,
    max: Duration,
    kept: Vec<Duration>,
}

impl Reservoir {
    fn add(&mut self, d: Duration) {
        self.seen += 1;
        self.max = self.max.max(d);
        if self.kept.len() < RESERVOIR {
            self.kept.push(d);
        } else {
            let j = fastrand::u64(..self.seen);
            if let Some(slot) = usize::try_from(j).ok().and_then(|j| self.kept.get_mut(j)) {
                *slot = d;
            }
        }
    }
}

/// Command outcomes, shared by the call tasks.
#[derive(Default)]
struct Outcomes {
    ok: AtomicU64,
    skipped: AtomicU64,
    failed: Mutex<BTreeMap<String, u64>>,
    latency: Mutex<Reservoir>,
}

/// Issues one command per client per `every`, spread evenly, each in its
/// own task holding a slot of `slots`; runs until aborted.
async fn issue(
    ids: Arc<Vec<String>>,
    ops: Vec<Op>,
    every: Duration,
    slots: Arc<Semaphore>,
    out: Arc<Outcomes>,
) {
    let mut spread = Spread::new(ids.len(), every);
    let mut next = 0usize;
    loop {
        for _ in 0..spread.next().await {
            let i = next;
            next = (next + 1) % ids.len();
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                out.skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let (ids, out) = (ids.clone(), out.clone());
            let mut op = ops[i % ops.len()].clone();
            tokio::spawn(async move {
                let t0 = Instant::now();
                match exec(&mut op, &ids[i]).await {
                    Ok(()) => {
                        let took = t0.elapsed();
                        out.ok.fetch_add(1, Ordering::Relaxed);
                        out.latency
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .add(took);
                    }
                    Err(status) => {
                        *out.failed
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .entry(format!("{:?}", status.code()))
                            .or_default() += 1;
                    }
                }
                drop(slot);
            });
        }
    }
}

/// Runs the soak over `clients`: emits `Connected` once the operator
/// connections are up, then heartbeats and commands until stdin says stop.
pub(super) async fn run(
    clients: &[Client],
    addr: SocketAddr,
    cfg: &SoakConfig,
) -> Result<Soak, String> {
    let bound = cfg.in_flight.max(1);
    let ops = operators(addr, ops_for(bound)).await?;
    let ids: Arc<Vec<String>> = Arc::new(clients.iter().map(|c| c.id.clone()).collect());
    let beats = Arc::new(Beats::default());
    let out = Arc::new(Outcomes::default());
    let slots = Arc::new(Semaphore::new(bound));
    emit(&LoadEvent::Connected {
        connected: clients.len(),
    });
    let own = std::process::id();
    let cpu0 = sys::cpu_time(own).unwrap_or_default();
    let started = Instant::now();
    let beat = spawn_heartbeats(
        clients,
        Duration::from_millis(cfg.heartbeat_ms),
        beats.clone(),
    );
    let commands = tokio::spawn(issue(
        ids,
        ops,
        Duration::from_millis(cfg.command_ms),
        slots.clone(),
        out.clone(),
    ));
    super::stdin_line().await;
    let secs = started.elapsed().as_secs_f64();
    beat.abort();
    commands.abort();
    let _ = beat.await;
    let _ = commands.await;
    // Every slot back means every call has finished.
    let permits = u32::try_from(bound).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(DRAIN, slots.acquire_many(permits)).await;
    let abandoned = bound - slots.available_permits();
    let load_cpu_secs = sys::cpu_time(own)
        .unwrap_or_default()
        .saturating_sub(cpu0)
        .as_secs_f64();
    let failed = out
        .failed
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let reservoir = std::mem::take(
        &mut *out
            .latency
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    let errors = usize::try_from(failed.values().sum::<u64>()).unwrap_or(usize::MAX);
    let mut latency = Latency::of(reservoir.kept, errors);
    latency.samples = usize::try_from(reservoir.seen).unwrap_or(usize::MAX);
    latency.max_us = reservoir.max.as_secs_f64() * 1e6;
    let soak = Soak {
        secs,
        heartbeats_sent: beats.sent.load(Ordering::Relaxed),
        heartbeats_dropped: beats.dropped.load(Ordering::Relaxed),
        commands_ok: out.ok.load(Ordering::Relaxed),
        commands_failed: failed,
        commands_skipped: out.skipped.load(Ordering::Relaxed),
        in_flight_bound: bound,
        in_flight_abandoned: abandoned,
        latency,
        load_cpu_secs,
    };
    eprintln!(
        "[fleet load] soak: {} heartbeats ({} dropped), {} commands ok, {} failed, {} skipped \
         in {secs:.1} s",
        soak.heartbeats_sent,
        soak.heartbeats_dropped,
        soak.commands_ok,
        soak.failed(),
        soak.commands_skipped
    );
    Ok(soak)
}
