//! Tests of the whole message path over a real session: property tests
//! (`fuzz`) and the checked-in corpus (`corpus`). Test code only.

mod corpus;
mod fuzz;

use super::ClientState;
use crate::metrics::Registry;
use crate::streaming::events::EventBus;
use crate::streaming::metrics::CoreMetrics;
use crate::streaming::{ClientIdentity, ClientLabels, Session};
use std::sync::Arc;

/// A registered session of `fuzz-1` (4 wallets, 64-byte texts, 8 pending
/// commands) and the receiving end of its command queue.
fn session() -> (
    Session,
    tokio::sync::mpsc::Receiver<Box<crate::proto::ServerCommand>>,
) {
    let metrics = Arc::new(CoreMetrics::new(&Registry::new(), ClientLabels::Standalone).unwrap());
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let bus = EventBus::new(16, metrics.events_lost.clone());
    let s = Session::new(
        Arc::from("fuzz-1"),
        Arc::from("session-1"),
        Arc::new(crate::proto::ClientRegistration::default()),
        tx,
        ClientState::new(4, 64),
        &ClientIdentity::default(),
        metrics,
        bus,
        8,
    );
    (s, rx)
}
