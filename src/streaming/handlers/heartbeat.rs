//! `heartbeat`: records liveness and clears staleness.

use crate::proto::Heartbeat;
use crate::streaming::{EventKind, Session};
use std::time::SystemTime;

/// Handles a heartbeat.
pub(crate) fn handle(session: &Session, _hb: &Heartbeat) {
    session.record_heartbeat(SystemTime::now());
    session.state().counters.heartbeats += 1;
    if session.set_stale(false) {
        tracing::info!("session fresh again");
        session.metrics.stale_changed(false);
        session
            .bus
            .publish(&session.client_id, &session.session_id, EventKind::Fresh);
    }
}
