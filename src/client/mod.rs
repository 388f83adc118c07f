//! The Rust client SDK: connect, register, heartbeat on the server-chosen
//! interval, a typed handler per command with automatic acks, no action on
//! expired commands, dedupe of redelivered command ids (a command
//! redelivered on a new session while the handler still works on it is
//! acked there once done), and reconnect with capped exponential backoff
//! with full jitter (each delay uniform in [0, step]).
//!
//! A refusal that retrying soon will not fix — UNAUTHENTICATED (a missing
//! or wrong token) or PERMISSION_DENIED (no CryptoClient resource names
//! this client id) — is logged once as an error with the server's reason,
//! and the client waits at the maximum backoff at once instead of climbing
//! from the initial delay; it keeps retrying at that pace, so fixing the
//! token or the resource brings it back without a restart.
//!
//! ```no_run
//! # async fn demo() {
//! use crypto_operator::client::{self, ClientConfig, Command, CommandHandler, CommandResult};
//! struct Syncer;
//! impl CommandHandler for Syncer {
//!     async fn handle(&mut self, cmd: Command) -> CommandResult {
//!         Ok(Default::default())
//!     }
//! }
//! let (client, sender) = client::new(ClientConfig::new("http://127.0.0.1:50051", "wallet-1"));
//! let stop = tokio_util::sync::CancellationToken::new();
//! tokio::spawn(client.run(Syncer, stop.clone()));
//! # let _ = sender;
//! # }
//! ```

mod client_type;
mod command;
mod config;
mod connection;
mod sender;

pub use crate::backoff::Backoff;
pub use client_type::ClientType;
pub use command::{Command, CommandHandler, CommandResult};
pub use config::ClientConfig;
pub use connection::{Client, ConnectionState};
pub use sender::{ClientSender, SendError};

/// A client and the sender through which the application sends data.
pub fn new(config: ClientConfig) -> (Client, ClientSender) {
    Client::new(config)
}
