//! Whether the control plane lets this replica take clients: its caches
//! are synced and it can reach the API (it renews its Lease). Every
//! replica is ready on its own; the server folds this into `/readyz`.

use super::membership::Membership;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The controller's part of readiness.
pub struct ControllerHealth {
    synced: AtomicBool,
    membership: Arc<Membership>,
}

impl ControllerHealth {
    /// Not synced yet: nothing is admitted before the controller says so.
    pub fn new(membership: Arc<Membership>) -> Self {
        Self {
            synced: AtomicBool::new(false),
            membership,
        }
    }

    pub(crate) fn set_synced(&self, synced: bool) {
        self.synced.store(synced, Ordering::SeqCst);
    }

    /// Why the replica should not take clients, or `None`.
    pub fn not_ready(&self) -> Option<&'static str> {
        if !self.synced.load(Ordering::SeqCst) {
            Some("controller caches not synced")
        } else if !self.membership.api_ok() {
            Some("cannot reach the Kubernetes API (replica Lease not renewed)")
        } else {
            None
        }
    }
}
