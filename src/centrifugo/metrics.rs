//! The Centrifugo publisher's metrics. Registered in every mode, so
//! dashboards find them (at zero) when publishing is off.

use crate::metrics::Registry;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts};

/// Result of one Centrifugo publish attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishResult {
    /// Centrifugo accepted the publication.
    Published,
    /// The request failed (after its retries), or Centrifugo refused the
    /// publication.
    Failed,
    /// The publication was dropped unsent: the buffer was full (the oldest
    /// go first, e.g. while the breaker is open), or shutdown.
    Dropped,
}

/// Centrifugo publisher metrics.
pub struct CentrifugoMetrics {
    published: IntCounter,
    failed: IntCounter,
    dropped: IntCounter,
    breaker_state: IntGauge,
    buffered: IntGauge,
}

impl CentrifugoMetrics {
    /// Registers the publisher's metrics in `r`.
    pub fn new(r: &Registry) -> prometheus::Result<Self> {
        let v = r.register(IntCounterVec::new(
            Opts::new(
                "crypto_centrifugo_publish_total",
                "Events for Centrifugo, by result (published, failed, dropped).",
            ),
            &["result"],
        )?)?;
        let breaker_state = r.register(IntGauge::new(
            "crypto_centrifugo_breaker_state",
            "Circuit breaker in front of Centrifugo: 0 closed, 1 open, 2 half-open.",
        )?)?;
        let buffered = r.register(IntGauge::new(
            "crypto_centrifugo_buffered",
            "Publications waiting in the Centrifugo publisher's buffer.",
        )?)?;
        Ok(Self {
            published: v.with_label_values(&["published"]),
            failed: v.with_label_values(&["failed"]),
            dropped: v.with_label_values(&["dropped"]),
            breaker_state,
            buffered,
        })
    }

    /// Sets the breaker-state gauge (0 closed, 1 open, 2 half-open).
    pub fn set_breaker_state(&self, state: i64) {
        self.breaker_state.set(state);
    }

    /// Sets the buffered-publications gauge.
    pub fn set_buffered(&self, n: usize) {
        self.buffered.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The total counted with `result`.
    pub fn total(&self, result: PublishResult) -> u64 {
        match result {
            PublishResult::Published => self.published.get(),
            PublishResult::Failed => self.failed.get(),
            PublishResult::Dropped => self.dropped.get(),
        }
    }

    /// The breaker-state gauge.
    pub fn breaker_state(&self) -> i64 {
        self.breaker_state.get()
    }

    /// The buffered-publications gauge.
    pub fn buffered(&self) -> i64 {
        self.buffered.get()
    }

    /// Counts `n` events with `result`.
    pub fn count(&self, result: PublishResult, n: u64) {
        match result {
            PublishResult::Published => self.published.inc_by(n),
            PublishResult::Failed => self.failed.inc_by(n),
            PublishResult::Dropped => self.dropped.inc_by(n),
        }
    }
}
