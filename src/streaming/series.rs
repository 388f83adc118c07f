//! Per-client series (`crypto_client_up`,
//! `crypto_client_last_heartbeat_timestamp_seconds`,
//! `crypto_client_commands_timed_out_total`). A session resolves its label
//! handles once, at registration. Standalone: the series carry `client_id`.
//! Cluster mode: they carry `namespace`, `name`, `client_id`. Only the
//! replica holding a session exports its series, and removes them when the
//! session ends; in cluster mode the janitor then exports `up 0` (so a gone
//! client alerts as Down, not also as Stale, and no two replicas export the
//! same client).

use crate::metrics::Registry;
use prometheus::{Gauge, GaugeVec, IntCounter, IntCounterVec, Opts};
use std::time::SystemTime;

/// Which labels per-client series carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientLabels {
    /// `client_id` only.
    Standalone,
    /// `namespace`, `name`, `client_id` (the resource's).
    Cluster,
}

/// Who a client is, as far as metrics labels go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The resource (`namespace`, `name`) that manages the client, if any.
    pub resource: Option<(String, String)>,
}

#[derive(Clone)]
pub(crate) struct ClientSeriesFamily {
    up: GaugeVec,
    last_heartbeat: GaugeVec,
    timed_out: IntCounterVec,
    labels: ClientLabels,
}

impl ClientSeriesFamily {
    pub(crate) fn new(r: &Registry, labels: ClientLabels) -> prometheus::Result<Self> {
        let names: &[&str] = match labels {
            ClientLabels::Standalone => &["client_id"],
            ClientLabels::Cluster => &["namespace", "name", "client_id"],
        };
        let up = GaugeVec::new(
            Opts::new(
                "crypto_client_up",
                "1 when the client has a live session, 0 when not.",
            ),
            names,
        )?;
        let last_heartbeat = GaugeVec::new(
            Opts::new(
                "crypto_client_last_heartbeat_timestamp_seconds",
                "Unix time of the client's last heartbeat.",
            ),
            names,
        )?;
        let timed_out = IntCounterVec::new(
            Opts::new(
                "crypto_client_commands_timed_out_total",
                "Commands to this client whose ack did not arrive before the deadline.",
            ),
            names,
        )?;
        Ok(Self {
            up: r.register(up)?,
            last_heartbeat: r.register(last_heartbeat)?,
            timed_out: r.register(timed_out)?,
            labels,
        })
    }

    /// The label values of a client in this mode.
    pub(crate) fn label_values(&self, client_id: &str, identity: &ClientIdentity) -> Vec<String> {
        match (self.labels, &identity.resource) {
            (ClientLabels::Standalone, _) => vec![client_id.to_owned()],
            (ClientLabels::Cluster, Some((ns, name))) => {
                vec![ns.clone(), name.clone(), client_id.to_owned()]
            }
            (ClientLabels::Cluster, None) => {
                vec![String::new(), String::new(), client_id.to_owned()]
            }
        }
    }

    /// The series of a newly registered client, marked up.
    pub(crate) fn for_client(&self, values: Vec<String>) -> SessionSeries {
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        self.up.with_label_values(&refs).set(1.0);
        SessionSeries {
            last_heartbeat: self.last_heartbeat.with_label_values(&refs),
            timed_out: self.timed_out.with_label_values(&refs),
            family: self.clone(),
            values,
        }
    }

    /// Sets `up` for a client that has no session (cluster mode: one
    /// series per resource, connected or not).
    pub(crate) fn set_down(&self, values: &[&str]) {
        self.up.with_label_values(values).set(0.0);
    }

    /// Removes every series of a client.
    pub(crate) fn forget(&self, values: &[&str]) {
        let _ = self.up.remove_label_values(values);
        let _ = self.last_heartbeat.remove_label_values(values);
        let _ = self.timed_out.remove_label_values(values);
    }
}

/// A session's resolved per-client series.
pub struct SessionSeries {
    last_heartbeat: Gauge,
    timed_out: IntCounter,
    family: ClientSeriesFamily,
    values: Vec<String>,
}

impl SessionSeries {
    pub(crate) fn heartbeat(&self, at: SystemTime) {
        self.last_heartbeat.set(crate::time::unix_seconds(at));
    }

    pub(crate) fn timed_out(&self) {
        self.timed_out.inc();
    }

    /// The session ended and no newer one exists for the client: its
    /// series go (only the replica holding a client exports them; in
    /// cluster mode the janitor exports `up 0` for clients nobody holds).
    pub(crate) fn ended(&self) {
        let refs: Vec<&str> = self.values.iter().map(String::as_str).collect();
        self.family.forget(&refs);
    }
}
