//! The state every part of the core shares: the service, the session tasks
//! and every handle hold one `Arc<Core>`.

use super::events::EventBus;
use super::metrics::CoreMetrics;
use super::registry::Registry;
use super::{ClientAuthenticator, ClientPolicy, StreamingConfig};
use std::sync::Arc;
use tokio_util::task::TaskTracker;

/// State shared by the service, the session tasks and every handle.
pub(crate) struct Core {
    pub(crate) config: StreamingConfig,
    pub(crate) registry: Registry,
    pub(crate) bus: EventBus,
    pub(crate) metrics: Arc<CoreMetrics>,
    pub(crate) policy: Arc<dyn ClientPolicy>,
    pub(crate) auth: Arc<dyn ClientAuthenticator>,
    pub(crate) tasks: TaskTracker,
    /// The registration rate (`limits::Admission`).
    pub(crate) admission: super::limits::Admission,
    /// Refuse new clients with a retry hint: this replica holds more than
    /// its share of the fleet (set by the control plane's rebalancer).
    pub(crate) steer_away: std::sync::atomic::AtomicBool,
    /// Clients held elsewhere (`remote.rs`): set once by the server.
    pub(crate) remote: std::sync::OnceLock<Arc<dyn super::Remote>>,
}
