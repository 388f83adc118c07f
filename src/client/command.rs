//! Typed commands as the application's handler sees them. `ping`,
//! `registered` and `disconnect` are handled by the SDK itself.

use crate::proto::server_command::Command as Wire;
use std::collections::HashMap;

/// A command for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Stop work until `Resume`.
    Pause {
        /// Why.
        reason: String,
    },
    /// Resume work.
    Resume,
    /// Re-read wallet balances (empty: all).
    SyncWallets {
        /// Wallets to sync.
        wallet_ids: Vec<String>,
    },
    /// Apply this configuration.
    UpdateConfig {
        /// The complete configuration.
        config: HashMap<String, String>,
        /// Its content hash.
        config_hash: String,
    },
}

impl Command {
    /// The application-facing form of a wire command, if it is one.
    pub fn from_wire(c: Wire) -> Option<Self> {
        Some(match c {
            Wire::Pause(p) => Self::Pause { reason: p.reason },
            Wire::Resume(_) => Self::Resume,
            Wire::SyncWallets(s) => Self::SyncWallets {
                wallet_ids: s.wallet_ids,
            },
            Wire::UpdateConfig(u) => Self::UpdateConfig {
                config: u.config,
                config_hash: u.config_hash,
            },
            Wire::Registered(_) | Wire::Ping(_) | Wire::Disconnect(_) => return None,
        })
    }
}

/// What a handler answers: results for a successful ack, or the error
/// message of a failed one.
pub type CommandResult = Result<HashMap<String, String>, String>;

/// The application's command handler. The SDK acks with its answer.
pub trait CommandHandler: Send + 'static {
    /// Carries out one command.
    fn handle(&mut self, command: Command) -> impl Future<Output = CommandResult> + Send;
}
