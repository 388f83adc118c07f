//! Per-client series (`crypto_client_up`,
//! `crypto_client_last_heartbeat_timestamp_seconds`): their label handles
//! are resolved once per session and removed when the client goes, so no
//! stale series is left behind.

use prometheus::{Gauge, GaugeVec, Opts, Registry};
use std::time::SystemTime;

/// Which labels per-client series carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientLabels {
    /// `client_id` only.
    Standalone,
    /// `namespace`, `name`, `client_id` (the resource's).
    Cluster,
}

pub(crate) struct ClientSeriesFamily {
    up: GaugeVec,
    last_heartbeat: GaugeVec,
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
        r.register(Box::new(up.clone()))?;
        r.register(Box::new(last_heartbeat.clone()))?;
        Ok(Self {
            up,
            last_heartbeat,
            labels,
        })
    }

    /// The series of a newly registered client (standalone: marks it up).
    pub(crate) fn for_client(&self, client_id: &str) -> SessionSeries {
        match self.labels {
            ClientLabels::Standalone => {
                let up = self.up.with_label_values(&[client_id]);
                up.set(1.0);
                SessionSeries {
                    up: Some(up),
                    last_heartbeat: Some(self.last_heartbeat.with_label_values(&[client_id])),
                    family: Some((self.up.clone(), self.last_heartbeat.clone())),
                    client_id: client_id.to_owned(),
                }
            }
            // In cluster mode the controller owns these series (one per
            // resource, connected or not).
            ClientLabels::Cluster => SessionSeries {
                up: None,
                last_heartbeat: None,
                family: None,
                client_id: client_id.to_owned(),
            },
        }
    }
}

/// A session's resolved per-client series.
pub struct SessionSeries {
    up: Option<Gauge>,
    last_heartbeat: Option<Gauge>,
    family: Option<(GaugeVec, GaugeVec)>,
    client_id: String,
}

impl SessionSeries {
    pub(crate) fn heartbeat(&self, at: SystemTime) {
        if let Some(g) = &self.last_heartbeat {
            g.set(crate::time::unix_seconds(at));
        }
    }

    /// Removes the client's series (its session ended and no newer one
    /// exists).
    pub(crate) fn remove(&self) {
        if let (Some(_), Some((up, hb))) = (&self.up, &self.family) {
            let _ = up.remove_label_values(&[&self.client_id]);
            let _ = hb.remove_label_values(&[&self.client_id]);
        }
    }
}
