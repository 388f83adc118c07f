//! The control plane's metrics (reconciles, status writes, invalid
//! resources, the heartbeat refresh interval). Registered in every mode, so
//! dashboards and alerts find them (at zero) even in standalone mode.

use crate::metrics::Registry;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts};
use std::time::Duration;

/// Reconcile and status-write metrics.
pub struct ControlMetrics {
    reconcile_ok: IntCounter,
    reconcile_err: IntCounter,
    reconcile_duration: Histogram,
    status_writes: IntCounter,
    fenced_writes: IntCounter,
    janitor_marks: IntCounter,
    janitor: prometheus::IntGauge,
    invalid_resources: IntCounter,
    heartbeat_interval: prometheus::Gauge,
}

impl ControlMetrics {
    /// Registers the control plane's metrics in `r`.
    pub fn new(r: &Registry) -> prometheus::Result<Self> {
        let reconciles = r.register(IntCounterVec::new(
            Opts::new(
                "crypto_reconcile_total",
                "Reconciles of CryptoClient resources, by result (success, error).",
            ),
            &["result"],
        )?)?;
        let reconcile_duration = r.register(Histogram::with_opts(
            HistogramOpts::new(
                "crypto_reconcile_duration_seconds",
                "Time spent in one reconcile.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
        )?)?;
        let status_writes = r.register(IntCounter::new(
            "crypto_status_writes_total",
            "Status writes (server-side apply on /status) sent to the Kubernetes API.",
        )?)?;
        let fenced_writes = r.register(IntCounter::new(
            "crypto_status_writes_fenced_total",
            "Status writes refused because the resource changed hands (or changed) since this replica read it; nothing was written.",
        )?)?;
        let janitor_marks = r.register(IntCounter::new(
            "crypto_janitor_marks_total",
            "Resources the janitor marked: Disconnected (holder gone) or Pending (never connected).",
        )?)?;
        let janitor = r.register(prometheus::IntGauge::new(
            "crypto_janitor",
            "1 on the replica that holds the janitor Lease.",
        )?)?;
        let invalid_resources = r.register(IntCounter::new(
            "crypto_resources_invalid_total",
            "CryptoClient objects skipped because they could not be read.",
        )?)?;
        let heartbeat_interval = r.register(prometheus::Gauge::new(
            "crypto_status_heartbeat_interval_seconds",
            "How often connected resources' status.lastHeartbeat is refreshed: \
             --status-heartbeat-interval, stretched while the refresh would use more than \
             half of the reconcile capacity.",
        )?)?;
        Ok(Self {
            fenced_writes,
            janitor_marks,
            janitor,
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

    /// Records a status write its fence refused.
    pub fn fenced_write(&self) {
        self.fenced_writes.inc();
    }

    /// Records a janitor mark (which is also a status write).
    pub fn janitor_mark(&self) {
        self.janitor_marks.inc();
        self.status_writes.inc();
    }

    /// Whether this replica is the janitor.
    pub fn set_janitor(&self, janitor: bool) {
        self.janitor.set(i64::from(janitor));
    }
}
