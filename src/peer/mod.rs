//! Replica to replica: the peer service on the gRPC port (`service.rs`,
//! authenticated with the shared peer token) and what a replica asks its
//! peers — today, when it cannot reach the Kubernetes API, whether they
//! can (`partition.rs`).

mod partition;
mod service;

pub use partition::watch_partition;
pub use service::PeerService;
