//! Replica to replica: the peer service on the gRPC port (`service.rs`,
//! authenticated with the shared peer token) and what a replica asks its
//! peers: when it cannot reach the Kubernetes API, whether they can
//! (`partition.rs`); operator calls for clients they hold (`forward.rs`);
//! and the prices their feeds publish (`prices.rs`).

mod forward;
mod partition;
mod prices;
mod service;

pub use forward::Forwarder;
pub use partition::watch_partition;
pub use prices::link_prices;
pub use service::PeerService;

/// Attaches the peer token to a request to a peer (`authorization:
/// Bearer <token>`).
fn with_peer_token<T>(req: &mut tonic::Request<T>, token: &str) -> Result<(), &'static str> {
    let bearer = format!("Bearer {token}")
        .parse()
        .map_err(|_| "the peer token is not a valid header value")?;
    req.metadata_mut().insert("authorization", bearer);
    Ok(())
}
