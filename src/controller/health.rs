//! Whether the control plane lets this replica take clients: it leads (or
//! needs no leader) and its caches are synced. The server folds this into
//! `/readyz`.

use std::sync::atomic::{AtomicBool, Ordering};

/// The controller's part of readiness.
#[derive(Debug)]
pub struct ControllerHealth {
    leader: AtomicBool,
    synced: AtomicBool,
}

impl Default for ControllerHealth {
    /// Not leading, not synced: nothing is admitted before the controller
    /// says so.
    fn default() -> Self {
        Self {
            leader: AtomicBool::new(false),
            synced: AtomicBool::new(false),
        }
    }
}

impl ControllerHealth {
    pub(crate) fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::SeqCst);
    }

    pub(crate) fn set_synced(&self, synced: bool) {
        self.synced.store(synced, Ordering::SeqCst);
    }

    /// Why the replica should not take clients, or `None`.
    pub fn not_ready(&self) -> Option<&'static str> {
        if !self.leader.load(Ordering::SeqCst) {
            Some("not the leader")
        } else if !self.synced.load(Ordering::SeqCst) {
            Some("controller caches not synced")
        } else {
            None
        }
    }
}
