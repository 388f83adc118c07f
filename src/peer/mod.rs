//! Replica to replica: the peer service on the gRPC port (`service.rs`,
//! authenticated with the shared peer token) and what a replica asks its
//! peers: when it cannot reach the Kubernetes API, whether they can
//! (`partition.rs`); operator calls for clients they hold (`forward.rs`);
//! and the prices their feeds publish (`prices.rs`). All three dial peers
//! the same way (`dial.rs`).

mod dial;
mod forward;
mod metrics;
mod partition;
mod prices;
mod service;

pub use dial::{PeerDial, PeerTls, PeerTrust};
pub use forward::Forwarder;
pub use metrics::PeerMetrics;
pub use partition::watch_partition;
pub use prices::link_prices;
pub use service::PeerService;
