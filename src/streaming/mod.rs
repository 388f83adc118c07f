//! The streaming core: client sessions on `ConnectClient`, the session
//! registry, commands with acks, and the event bus. It knows nothing of
//! Kubernetes; everything else reaches clients through [`StreamingHandle`].
//!
//! Session rules (docs/DESIGN.md): register first; the registered
//! `client_id` on every message; the newest session for an id supersedes
//! the old one; heartbeat staleness and a reaper; server pings; bounded
//! per-client command queues; acks matched per session with a timeout; all
//! pending acks fail at once when a session ends.

mod auth;
mod config;
mod core;
mod end;
mod events;
mod gauges;
mod handle;
mod handlers;
mod limits;
mod listing;
mod metrics;
mod outbound;
mod pending;
mod policy;
mod registry;
mod remote;
mod series;
mod service;
mod session;
mod session_task;

pub use auth::{
    BoxFuture, CertificateOnly, ClientAuthenticator, Credentials, NoAuth, constant_time_eq,
    token_digest, tokens_match,
};
pub use config::StreamingConfig;
pub use end::EndReason;
pub use events::{Event, EventKind, EventSubscriber, Interest, Received};
pub use handle::{CommandError, PendingCommand, StreamingHandle};
pub use handlers::{ClientState, PAYLOAD_NAMES, Reject};
pub use listing::{ClientPage, ClientQuery, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
pub use metrics::CoreMetrics;
pub use outbound::OutboundStream;
pub use pending::AckOutcome;
pub use policy::{AllowAll, ClientPolicy};
pub use remote::{Forwarded, Remote, RemoteCall, RemotePages};
pub use series::{ClientIdentity, ClientLabels};
pub use service::StreamingService;
pub use session::Session;
