//! Clients held by another replica: when an operator's call names a
//! client not connected here, the handle asks the [`Remote`] the server
//! wired in (in cluster mode, the peer forwarder; standalone, none). The
//! core knows nothing of where the other replicas are or how to reach
//! them.

use crate::proto::{ClientInfo, ClientSummary, CommandAck, ListClientsRequest, ServerCommand};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tonic::Status;

/// A boxed future of a remote answer.
pub type RemoteCall<T> = Pin<Box<dyn Future<Output = Result<T, Status>> + Send>>;

/// What the holder did with a forwarded command.
#[derive(Debug, Clone)]
pub struct Forwarded {
    /// The command's id.
    pub command_id: String,
    /// The client's ack, when the call waited for it.
    pub ack: Option<CommandAck>,
}

/// The other replicas' pages of one listing.
#[derive(Debug, Clone, Default)]
pub struct RemotePages {
    /// Each answering replica's page, sorted by client id, and whether it
    /// has more after it.
    pub pages: Vec<(Vec<ClientSummary>, bool)>,
    /// Replicas that did not answer in time.
    pub missing: Vec<String>,
}

/// Reaches clients held by other replicas. A client nobody holds is
/// NOT_FOUND; every call is bounded by `timeout` plus the hop.
pub trait Remote: Send + Sync + 'static {
    /// Forwards `command` to the holder of `client_id` (waiting for its
    /// ack when `wait`, up to `timeout`).
    fn command(
        self: std::sync::Arc<Self>,
        client_id: String,
        command: ServerCommand,
        wait: bool,
        timeout: Duration,
    ) -> RemoteCall<Forwarded>;

    /// The holder's snapshot of `client_id`.
    fn snapshot(self: std::sync::Arc<Self>, client_id: String) -> RemoteCall<ClientInfo>;

    /// Every other live replica's page of its own sessions for `request`,
    /// each within the listing deadline.
    fn list(self: std::sync::Arc<Self>, request: ListClientsRequest) -> RemoteCall<RemotePages>;
}
