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
    /// Longest log or error text kept.
    pub max_text_bytes: usize,
    /// Per-session counters.
    pub counters: ClientCounters,
}

impl ClientState {
    /// Empty state keeping at most `max_wallets` balances and texts of at
    /// most `max_text_bytes`.
    pub fn new(max_wallets: usize, max_text_bytes: usize) -> Self {
        Self {
            status: None,
            wallets: HashMap::new(),
            max_wallets,
            max_text_bytes,
            counters: ClientCounters::default(),
        }
    }
}
