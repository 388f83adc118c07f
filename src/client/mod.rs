//! The Rust client SDK: connect, register, heartbeat on the server-chosen
//! interval, a typed handler per command with automatic acks, no action on
//! expired commands, dedupe of redelivered command ids, and reconnect with
//! capped, jittered exponential backoff.
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

mod backoff;
mod client_type;
mod command;
mod config;
mod connection;
mod sender;

pub use backoff::Backoff;
pub use client_type::ClientType;
pub use command::{Command, CommandHandler, CommandResult};
pub use config::ClientConfig;
pub use connection::{Client, ConnectionState};
pub use sender::{ClientSender, SendError};

/// A client and the sender through which the application sends data.
pub fn new(config: ClientConfig) -> (Client, ClientSender) {
    Client::new(config)
}
