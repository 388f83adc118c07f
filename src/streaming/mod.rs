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
mod end;
mod events;
mod gauges;
pub(crate) mod handle;
mod limits;
mod listing;
mod outbound;
mod pending;
mod registry;
mod service;
mod session;
mod shared;

pub use auth::{
    BoxFuture, CertificateOnly, ClientAuthenticator, Credentials, NoAuth, constant_time_eq,
    token_digest, tokens_match,
};
pub use config::StreamingConfig;
pub use end::EndReason;
#[cfg(test)]
pub(crate) use events::for_tests as events_for_tests;
pub use events::{Event, EventKind, EventSubscriber, Interest, Received};
pub use handle::{AllowAll, ClientPolicy, PendingCommand};
pub use handle::{CommandError, StreamingHandle};
pub use listing::{ClientPage, ClientQuery, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
pub use outbound::OutboundStream;
pub use pending::AckOutcome;
pub use service::StreamingService;
pub use shared::Session;
