//! Why a session ended, and the gRPC status its stream ends with.

use tonic::{Code, Status};

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// The client closed its side of the stream.
    ClientClosed,
    /// The connection failed or the client reset the stream.
    Transport,
    /// A newer session registered with the same client id.
    Superseded,
    /// A newer session for the same client id registered on another
    /// replica (named).
    SupersededBy(String),
    /// No heartbeat for `dead_after`.
    HeartbeatTimeout,
    /// The client broke a session rule; the stream ends with this status.
    ProtocolViolation(Code, String),
    /// An operator asked for it (for example the resource was deleted).
    Kicked(String),
    /// The server is shutting down.
    Shutdown,
    /// The session reached its maximum age and was asked to reconnect.
    MaxAge,
    /// The session was asked to reconnect elsewhere: this replica held
    /// more than its share of the fleet.
    Moved,
}

impl EndReason {
    /// The `reason` label of `crypto_sessions_ended_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::ClientClosed => "client_closed",
            Self::Transport => "transport",
            Self::Superseded | Self::SupersededBy(_) => "superseded",
            Self::HeartbeatTimeout => "heartbeat_timeout",
            Self::ProtocolViolation(..) => "protocol_violation",
            Self::Kicked(_) => "kicked",
            Self::Shutdown => "shutdown",
            Self::MaxAge => "max_age",
            Self::Moved => "moved",
        }
    }

    /// Every label, for pre-resolving metrics.
    pub const LABELS: [&'static str; 9] = [
        "client_closed",
        "transport",
        "superseded",
        "heartbeat_timeout",
        "protocol_violation",
        "kicked",
        "shutdown",
        "max_age",
        "moved",
    ];

    /// The status the client's stream ends with; `None` ends it with OK.
    pub fn status(&self) -> Option<Status> {
        match self {
            Self::ClientClosed | Self::Transport | Self::Shutdown | Self::MaxAge | Self::Moved => {
                None
            }
            Self::Superseded => Some(Status::aborted(
                "superseded: a newer session registered with this client_id",
            )),
            Self::SupersededBy(replica) => Some(Status::aborted(format!(
                "superseded by replica {replica}: a newer session registered there with this client_id"
            ))),
            Self::HeartbeatTimeout => Some(Status::deadline_exceeded(
                "no heartbeat within dead_after; session ended",
            )),
            Self::ProtocolViolation(code, msg) => Some(Status::new(*code, msg.clone())),
            Self::Kicked(why) => Some(Status::unavailable(format!("session ended: {why}"))),
        }
    }
}

impl std::fmt::Display for EndReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ProtocolViolation(code, msg) => write!(f, "protocol violation ({code:?}): {msg}"),
            Self::Kicked(why) => write!(f, "kicked: {why}"),
            Self::SupersededBy(replica) => write!(f, "superseded by replica {replica}"),
            other => f.write_str(other.label()),
        }
    }
}
