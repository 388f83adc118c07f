//! What the server keeps per client while its session lives: the latest
//! status, wallet balances (bounded) and counters.

use crate::proto::{ClientCounters, ClientStatus, WalletUpdate};
use std::collections::HashMap;

/// Per-client state kept on the session.
pub struct ClientState {
    /// The latest `status` message.
    pub status: Option<ClientStatus>,
    /// Latest balance per (wallet_id, asset).
    pub wallets: HashMap<(String, String), WalletUpdate>,
    /// Most wallets kept; further new wallets are dropped and counted.
    pub max_wallets: usize,
    /// Per-session counters.
    pub counters: ClientCounters,
}

impl ClientState {
    /// Empty state keeping at most `max_wallets` balances.
    pub fn new(max_wallets: usize) -> Self {
        Self {
            status: None,
            wallets: HashMap::new(),
            max_wallets,
            counters: ClientCounters::default(),
        }
    }
}
