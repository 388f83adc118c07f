//! The Kubernetes control plane: a kube-runtime Controller over
//! `CryptoClient` resources that turns each resource's spec into commands
//! for its connected client (through the streaming core's handle only),
//! tracks the acks, and writes what it observed back to the status.
//!
//! - `index`: client id -> resource; the cluster-mode [`ClientPolicy`]
//!   (admission and resource-managed commands).
//! - `decide` / `status`: pure decisions (spec + acked state -> commands;
//!   session + previous status -> new status).
//! - `runtime`: what the operator remembers per resource between reconciles.
//! - `context`: what every reconcile shares; `reconcile`: one reconcile;
//!   `acks`: waiting for command acks.
//! - `health`: the controller's part of readiness; `metrics`: its metrics.
//! - `pacing`: how often connected resources are refreshed (heartbeat).
//! - `bridge`: streaming-core events -> reconcile triggers and Kubernetes
//!   Events; `watch`: the lenient watch stream; `leader`: the Lease.
//! - `membership`: this replica's Lease and its peers'; `rebalance`:
//!   moving sessions off a replica that holds more than its share.
//!
//! [`ClientPolicy`]: crate::streaming::ClientPolicy

mod acks;
mod auth;
mod bridge;
mod budget;
mod context;
mod decide;
mod fence;
mod health;
mod holder;
mod index;
mod janitor;
mod leader;
mod membership;
mod metrics;
mod pacing;
mod rebalance;
mod reconcile;
mod run;
mod runtime;
mod slim;
mod status;
mod watch;

pub use auth::SecretAuth;
pub use decide::{Action as CommandAction, Desired, decide};
pub use health::ControllerHealth;
pub use index::ResourceIndex;
pub use leader::{LeaderConfig, LeaderState};
pub use membership::{Membership, Peer, ReplicaConfig};
pub use metrics::ControlMetrics;
pub use pacing::paced_interval;
pub use run::{
    ControllerConfig, DEFAULT_API_TIMEOUT, DEFAULT_REBALANCE_RATE, DEFAULT_WRITE_BURST,
    DEFAULT_WRITE_QPS, Wiring, run,
};
pub use runtime::{ClientRuntime, SyncTracker};
pub use status::{Observed, SessionView, compute_status, needs_write};

/// The field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "crypto-operator";

/// Errors of one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API refused or failed a request.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The resource has no namespace or name.
    #[error("resource without namespace or name")]
    Unnamed,
    /// Status could not be serialised.
    #[error("status: {0}")]
    Serialize(#[from] serde_json::Error),
    /// The reconcile's API calls did not finish in time.
    #[error("reconcile did not finish within {0:?} (API server slow or unreachable)")]
    Timeout(std::time::Duration),
    /// A fenced status write kept failing although this replica still
    /// holds the resource (it changed under every retry).
    #[error("status write fenced twice; retrying later")]
    Fenced,
}
