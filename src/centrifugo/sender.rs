//! The sender task: takes batches from the buffer (waiting up to the
//! linger time for a batch to fill), asks the breaker, sends, retries
//! with backoff, counts. It is the only task that waits on Centrifugo.

use super::breaker::{Breaker, BreakerState, Permit};
use super::buffer::Buffer;
use super::client::{Api, ItemError};
use super::metrics::{CentrifugoMetrics, PublishResult};
use super::payload::Publication;
use crate::backoff::{Exponential, Jitter};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Longest wait between two retries.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// How often per-publication errors are logged at warn level.
const ITEM_WARN_EVERY: Duration = Duration::from_secs(10);

pub(crate) struct Sender {
    pub(crate) api: Api,
    pub(crate) buffer: Arc<Buffer>,
    pub(crate) breaker: Breaker,
    pub(crate) open_for: Duration,
    pub(crate) state: watch::Sender<BreakerState>,
    pub(crate) metrics: Arc<CentrifugoMetrics>,
    pub(crate) batch_size: usize,
    pub(crate) linger: Duration,
    pub(crate) retries: u32,
    pub(crate) backoff: Duration,
    /// Cancelled at shutdown: send what is buffered once, then end.
    pub(crate) stop: CancellationToken,
    /// Cancelled when the flush ran out of time: end at once.
    pub(crate) kill: CancellationToken,
    pub(crate) last_item_warn: Option<Instant>,
}

/// `base · 2^(attempt-1)`, at most [`MAX_BACKOFF`], ±25 % jitter.
fn backoff(base: Duration, attempt: u32) -> Duration {
    Exponential {
        initial: base,
        max: MAX_BACKOFF,
        jitter: Jitter::Spread(0.25),
    }
    .delay(attempt.saturating_sub(1))
}

impl Sender {
    /// Runs until stopped, then flushes.
    pub(crate) async fn run(mut self) {
        loop {
            if !self.wait_for_batch().await {
                break;
            }
            let permit = self.breaker.permit(Instant::now());
            self.sync_state();
            let retries = match permit {
                Permit::Send => self.retries,
                Permit::Probe => 0,
                Permit::WaitUntil(until) => {
                    // Open: publications wait in the buffer (the oldest
                    // are dropped if it fills).
                    tokio::select! {
                        () = tokio::time::sleep_until(until) => continue,
                        () = self.stop.cancelled() => break,
                    }
                }
            };
            let batch = self.buffer.take(self.batch_size);
            if !batch.is_empty() {
                self.deliver(batch, retries).await;
            }
            if self.kill.is_cancelled() {
                return;
            }
        }
        self.flush().await;
    }

    /// Waits until a batch is ready: `batch_size` publications, or at
    /// least one and the linger time passed. `false` when stopped.
    async fn wait_for_batch(&self) -> bool {
        loop {
            let n = self.buffer.len();
            if n == 0 {
                tokio::select! {
                    () = self.buffer.pushed.notified() => continue,
                    () = self.stop.cancelled() => return false,
                }
            }
            if n >= self.batch_size || self.linger.is_zero() {
                return true;
            }
            let deadline = Instant::now() + self.linger;
            loop {
                if self.buffer.len() >= self.batch_size {
                    return true;
                }
                tokio::select! {
                    () = self.buffer.pushed.notified() => {}
                    () = tokio::time::sleep_until(deadline) => return true,
                    () = self.stop.cancelled() => return false,
                }
            }
        }
    }

    /// Shutdown: whatever is buffered is sent once (no linger, no
    /// retries) unless the breaker is open; the rest is dropped.
    async fn flush(&mut self) {
        loop {
            let batch = self.buffer.take(self.batch_size);
            if batch.is_empty() {
                return;
            }
            if let Permit::WaitUntil(_) = self.breaker.permit(Instant::now()) {
                let n = batch.len() + self.buffer.len();
                self.count(PublishResult::Dropped, batch.len());
                self.buffer.discard_all();
                debug!(
                    dropped = n,
                    "Centrifugo breaker open at shutdown; buffered events dropped"
                );
                return;
            }
            self.sync_state();
            self.deliver(batch, 0).await;
            if self.kill.is_cancelled() {
                return;
            }
        }
    }

    /// Sends one batch with up to `retries` retries.
    async fn deliver(&mut self, batch: Vec<Publication>, retries: u32) {
        let mut attempt = 0u32;
        loop {
            let sent = tokio::select! {
                r = self.api.send(&batch) => r,
                () = self.kill.cancelled() => {
                    self.count(PublishResult::Dropped, batch.len());
                    return;
                }
            };
            match sent {
                // Counted before the breaker's state is published, so a
                // watcher of the state sees the counts that led to it.
                Ok(items) => {
                    let failed = items.iter().filter(|e| e.is_some()).count();
                    if failed > 0 {
                        self.count(PublishResult::Failed, failed);
                        self.item_errors(&batch, &items);
                    }
                    self.count(PublishResult::Published, batch.len() - failed);
                    self.breaker.success();
                    self.sync_state();
                    return;
                }
                Err(e) => {
                    self.breaker.failure(Instant::now());
                    let state = self.breaker.state();
                    if state != BreakerState::Closed
                        || attempt >= retries
                        || !e.retriable()
                        || self.stop.is_cancelled()
                    {
                        warn!(
                            error = %e,
                            publications = batch.len(),
                            attempts = attempt + 1,
                            breaker = ?state,
                            "Centrifugo publish failed; events dropped"
                        );
                        self.count(PublishResult::Failed, batch.len());
                        self.sync_state();
                        return;
                    }
                    self.sync_state();
                    attempt += 1;
                    let delay = backoff(self.backoff, attempt);
                    debug!(error = %e, attempt, ?delay, "Centrifugo publish failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = self.stop.cancelled() => {
                            // Shutting down: the flush sends it once more.
                            self.buffer.requeue(batch);
                            return;
                        }
                    }
                }
            }
        }
    }

    fn count(&self, result: PublishResult, n: usize) {
        self.metrics.count(result, n as u64);
    }

    /// Logs publications Centrifugo refused (e.g. a channel namespace it
    /// does not know), at most once per [`ITEM_WARN_EVERY`] at warn.
    fn item_errors(&mut self, batch: &[Publication], items: &[Option<ItemError>]) {
        let Some((p, e)) = batch
            .iter()
            .zip(items)
            .find_map(|(p, e)| e.as_ref().map(|e| (p, e)))
        else {
            return;
        };
        let failed = items.iter().filter(|e| e.is_some()).count();
        let now = Instant::now();
        if self
            .last_item_warn
            .is_none_or(|t| now.duration_since(t) >= ITEM_WARN_EVERY)
        {
            self.last_item_warn = Some(now);
            warn!(
                failed,
                channel = %p.channel,
                code = e.code,
                message = %e.message,
                "Centrifugo refused publications"
            );
        } else {
            debug!(failed, channel = %p.channel, code = e.code, message = %e.message, "Centrifugo refused publications");
        }
    }

    /// Publishes the breaker's state (gauge, watch, log) when it changed.
    fn sync_state(&self) {
        let new = self.breaker.state();
        let old = *self.state.borrow();
        if old == new {
            return;
        }
        self.metrics.set_breaker_state(new.gauge());
        self.state.send_replace(new);
        match new {
            BreakerState::Open if old == BreakerState::Closed => warn!(
                open_for = ?self.open_for,
                "Centrifugo circuit breaker open: too many failed requests; pausing publishing"
            ),
            BreakerState::Open => debug!("Centrifugo probe failed; breaker open again"),
            BreakerState::HalfOpen => debug!("Centrifugo breaker half-open; sending one probe"),
            BreakerState::Closed => info!("Centrifugo reachable again; circuit breaker closed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_millis(100);
        for _ in 0..100 {
            let d1 = backoff(base, 1);
            assert!(d1 >= Duration::from_millis(75) && d1 <= Duration::from_millis(125));
            let d3 = backoff(base, 3);
            assert!(d3 >= Duration::from_millis(300) && d3 <= Duration::from_millis(500));
            assert!(backoff(base, 40) <= MAX_BACKOFF.mul_f64(1.25));
        }
    }
}
