//! The peer component's metrics: operator calls this replica forwarded to
//! the replica holding the client, and the pages it asked its peers for.

use crate::metrics::Registry;
use prometheus::{IntCounterVec, Opts};

/// Forwarding counters (registered in every mode, so dashboards find them
/// at zero on a standalone server).
#[derive(Clone)]
pub struct PeerMetrics {
    forwarded: IntCounterVec,
}

impl PeerMetrics {
    /// Registers the counters in `r`.
    pub fn new(r: &Registry) -> prometheus::Result<Self> {
        Ok(Self {
            forwarded: r.register(IntCounterVec::new(
                Opts::new(
                    "crypto_forwarded_calls_total",
                    "Operator calls forwarded to the replica holding the client (call: command, get_client, list), by result: the gRPC code (Ok, Unavailable, ...; a list counts each peer's page, Missing when it did not come in time).",
                ),
                &["call", "result"],
            )?)?,
        })
    }

    /// Counts one forwarded `call` that ended with `result`.
    pub(super) fn forwarded<T>(&self, call: &str, result: &Result<T, tonic::Status>) {
        let code = match result {
            Ok(_) => tonic::Code::Ok,
            Err(s) => s.code(),
        };
        self.forwarded
            .with_label_values(&[call, &format!("{code:?}")])
            .inc();
    }

    /// Counts one peer's page of a fleet-wide list: answered or missing.
    pub(super) fn listed(&self, answered: bool) {
        let result = if answered { "Ok" } else { "Missing" };
        self.forwarded.with_label_values(&["list", result]).inc();
    }
}
