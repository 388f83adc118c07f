//! What the operator remembers per resource between reconciles: the facts
//! the client acked in its current session, commands in flight, the last
//! command, wallet-sync progress and error backoff. In memory only: after a
//! restart every client reconnects (new session) and is sent the desired
//! state again.

use crate::backoff::{Exponential, Jitter};
use crate::commands::CommandKind;
use crate::crd::LastCommand;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// A command sent and not yet finished.
#[derive(Debug, Clone, PartialEq)]
pub struct Inflight {
    /// Its id.
    pub command_id: String,
    /// Its kind.
    pub kind: CommandKind,
    /// For pause/resume: the pause state it asks for.
    pub paused: Option<bool>,
    /// For update_config: the hash it carries.
    pub config_hash: Option<String>,
    /// For sync_wallets: the generation whose request it answers.
    pub sync_generation: Option<i64>,
}

/// Wallet-sync progress of one resource.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncTracker {
    /// Failed or timed-out attempts for the current request.
    pub attempts: u32,
    /// Attempts the client answered with `success: false`: each makes the
    /// next attempt a new command (`…-<n>`), since a client that dedupes by
    /// id would otherwise answer the retry with its remembered failure.
    pub failures: u32,
    /// No new attempt before this.
    pub not_before: Option<Instant>,
    /// Requests of this generation and older are done: the generation the
    /// spec reset produced (or the acked one until the reset is written).
    pub done_generation: Option<i64>,
    /// A sync was acked and `spec.syncRequested` must be set back to false.
    pub reset_pending: bool,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When the last sync was acked.
    pub completed_at: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// The command id of the current request, reused for every redelivery
    /// (after a disconnect or an ack timeout) so a client that dedupes by
    /// id syncs once; also recorded in `status.pendingSync`.
    pub command_id: Option<String>,
}
/// Retry spacing of the control plane (syncs, reconcile errors): 1 s
/// doubling, at most 5 min, no jitter.
pub(crate) const RETRY: Exponential = Exponential {
    initial: Duration::from_secs(1),
    max: Duration::from_secs(300),
    jitter: Jitter::None,
};

/// Most sync attempts for one request before giving up (a spec change or
/// toggling `syncRequested` starts a new request).
pub const MAX_SYNC_ATTEMPTS: u32 = 5;

impl SyncTracker {
    /// Whether the request of a resource at `generation` is already done.
    pub fn is_done(&self, generation: Option<i64>) -> bool {
        self.reset_pending
            || match (self.done_generation, generation) {
                (Some(done), Some(g)) => done >= g,
                (Some(_), None) => true,
                (None, _) => false,
            }
    }

    /// The command id of a resource-driven `sync_wallets`: derived from
    /// the request itself (`sync-<uid>-<generation>`, and `-<n>` after `n`
    /// refusals), so any operator process that sends it sends the same id.
    pub fn derive_id(uid: &str, generation: i64, failures: u32) -> String {
        match failures {
            0 => format!("sync-{uid}-{generation}"),
            n => format!("sync-{uid}-{generation}-{n}"),
        }
    }

    /// Backoff after `attempts` failures: 2 s, 4 s, 8 s, … capped at 5 min.
    pub fn backoff(attempts: u32) -> Duration {
        RETRY.step(attempts)
    }
}

/// Per-resource memory.
#[derive(Debug, Clone, Default)]
pub struct ClientRuntime {
    /// The session the acked facts belong to.
    pub session_id: Option<String>,
    /// Pause state acked in that session.
    pub acked_paused: Option<bool>,
    /// Config hash acked in that session.
    pub acked_config_hash: Option<String>,
    /// Commands in flight.
    pub inflight: Vec<Inflight>,
    /// The last command sent.
    pub last_command: Option<LastCommand>,
    /// The last config command failed with this message.
    pub config_error: Option<String>,
    /// Config hash the client refused (or did not ack in time) in this
    /// session: not re-sent until the spec or the session changes.
    pub config_refused: Option<String>,
    /// Pause state the client refused in this session: likewise.
    pub pause_refused: Option<bool>,
    /// Wallet sync.
    pub sync: SyncTracker,
    /// Consecutive reconcile errors (for backoff).
    pub errors: u32,
    /// A status transition's place in the write budget: reserved, not yet
    /// written (`budget.rs`).
    pub write_slot: Option<tokio::time::Instant>,
}

impl ClientRuntime {
    /// Starts a new session: nothing is known to be acked in it.
    pub fn new_session(&mut self, session_id: &str) {
        self.session_id = Some(session_id.to_owned());
        self.acked_paused = None;
        self.acked_config_hash = None;
        self.config_refused = None;
        self.pause_refused = None;
        self.inflight.clear();
    }

    /// The in-flight command of `kind`, if any.
    pub fn inflight_of(&self, kind: CommandKind) -> Option<&Inflight> {
        self.inflight.iter().find(|i| i.kind == kind)
    }
}

/// Key of a resource: (namespace, name).
pub type Key = (String, String);

/// Every resource's memory.
#[derive(Default)]
pub struct Runtimes {
    map: Mutex<HashMap<Key, ClientRuntime>>,
}

impl Runtimes {
    /// Runs `f` on the memory of `key` (created empty if missing).
    pub fn with<R>(&self, key: &Key, f: impl FnOnce(&mut ClientRuntime) -> R) -> R {
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(map.entry(key.clone()).or_default())
    }

    /// Forgets a deleted resource.
    pub fn remove(&self, key: &Key) {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }
}
