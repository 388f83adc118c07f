//! Metrics of the control plane (reconciles, status writes) and of the
//! Centrifugo publisher. They are registered in every mode, so dashboards
//! and alerts find them (at zero) even where the component is off.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use std::time::Duration;

/// Reconcile and status-write metrics.
pub struct ControlMetrics {
    reconcile_ok: IntCounter,
    reconcile_err: IntCounter,
    reconcile_duration: Histogram,
    status_writes: IntCounter,
    invalid_resources: IntCounter,
    heartbeat_interval: prometheus::Gauge,
}

impl ControlMetrics {
    pub(crate) fn new(r: &Registry) -> prometheus::Result<Self> {
        let reconciles = IntCounterVec::new(
            Opts::new(
                "crypto_reconcile_total",
                "Reconciles of CryptoClient resources, by result (success, error).",
            ),
            &["result"],
        )?;
        r.register(Box::new(reconciles.clone()))?;
        let reconcile_duration = Histogram::with_opts(
            HistogramOpts::new(
                "crypto_reconcile_duration_seconds",
                "Time spent in one reconcile.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
        )?;
        r.register(Box::new(reconcile_duration.clone()))?;
        let status_writes = IntCounter::new(
            "crypto_status_writes_total",
            "Status writes (server-side apply on /status) sent to the Kubernetes API.",
        )?;
        r.register(Box::new(status_writes.clone()))?;
        let invalid_resources = IntCounter::new(
            "crypto_resources_invalid_total",
            "CryptoClient objects skipped because they could not be read.",
        )?;
        r.register(Box::new(invalid_resources.clone()))?;
        let heartbeat_interval = prometheus::Gauge::new(
            "crypto_status_heartbeat_interval_seconds",
            "How often connected resources' status.lastHeartbeat is refreshed: \
             --status-heartbeat-interval, stretched while the refresh would use more than \
             half of the reconcile capacity.",
        )?;
        r.register(Box::new(heartbeat_interval.clone()))?;
        Ok(Self {
            heartbeat_interval,
            invalid_resources,
            reconcile_ok: reconciles.with_label_values(&["success"]),
            reconcile_err: reconciles.with_label_values(&["error"]),
            reconcile_duration,
            status_writes,
        })
    }

    /// The current heartbeat refresh interval.
    pub fn heartbeat_interval(&self, every: Duration) {
        self.heartbeat_interval.set(every.as_secs_f64());
    }

    /// Records one reconcile.
    pub fn reconciled(&self, ok: bool, took: Duration) {
        if ok {
            self.reconcile_ok.inc();
        } else {
            self.reconcile_err.inc();
        }
        self.reconcile_duration.observe(took.as_secs_f64());
    }

    /// Counts a malformed resource that was skipped.
    pub fn invalid_resource(&self) {
        self.invalid_resources.inc();
    }

    /// Records one status write.
    pub fn status_written(&self) {
        self.status_writes.inc();
    }
}

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
    pub(crate) fn new(r: &Registry) -> prometheus::Result<Self> {
        let v = IntCounterVec::new(
            Opts::new(
                "crypto_centrifugo_publish_total",
                "Events for Centrifugo, by result (published, failed, dropped).",
            ),
            &["result"],
        )?;
        r.register(Box::new(v.clone()))?;
        let breaker_state = IntGauge::new(
            "crypto_centrifugo_breaker_state",
            "Circuit breaker in front of Centrifugo: 0 closed, 1 open, 2 half-open.",
        )?;
        r.register(Box::new(breaker_state.clone()))?;
        let buffered = IntGauge::new(
            "crypto_centrifugo_buffered",
            "Publications waiting in the Centrifugo publisher's buffer.",
        )?;
        r.register(Box::new(buffered.clone()))?;
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
