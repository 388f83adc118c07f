//! What the server keeps per client while its session lives: the latest
//! status, wallet balances (bounded), counters, and the throttle of its
//! dropped-message warnings.

use crate::proto::{ClientCounters, ClientStatus, WalletUpdate};
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// Per-client state kept on the session.
pub struct ClientState {
    /// The latest `status` message.
    pub status: Option<ClientStatus>,
    /// Latest balance per (wallet_id, asset). foldhash, not SipHash: a
    /// lookup per wallet update was ~5 % of ingest CPU (perf), and the
    /// map is bounded by `max_wallets`, so a client choosing colliding ids
    /// slows only its own session's bounded map.
    pub wallets: HashMap<(String, String), WalletUpdate, foldhash::fast::RandomState>,
    /// Most wallets kept; further new wallets are dropped and counted.
    pub max_wallets: usize,
    /// Longest log or error text kept.
    pub max_text_bytes: usize,
    /// Per-session counters.
    pub counters: ClientCounters,
    /// When a dropped message was last logged as a warning.
    pub(crate) reject_warned: Option<Instant>,
    /// Dropped messages not warned about since then.
    pub(crate) reject_quiet: u64,
}

/// At most one warning per session in this period for dropped messages;
/// the others are logged at debug and summed into the next warning.
pub(crate) const REJECT_WARN_EVERY: Duration = Duration::from_secs(10);

impl ClientState {
    /// Empty state keeping at most `max_wallets` balances and texts of at
    /// most `max_text_bytes`.
    pub fn new(max_wallets: usize, max_text_bytes: usize) -> Self {
        Self {
            status: None,
            wallets: HashMap::default(),
            max_wallets,
            max_text_bytes,
            counters: ClientCounters::default(),
            reject_warned: None,
            reject_quiet: 0,
        }
    }

    /// Counts a dropped message; `Some(quiet)` when it should be warned
    /// about now (with the number dropped quietly since the last warning).
    pub(crate) fn count_reject(&mut self, now: Instant) -> Option<u64> {
        self.counters.messages_rejected += 1;
        match self.reject_warned {
            Some(t) if now.saturating_duration_since(t) < REJECT_WARN_EVERY => {
                self.reject_quiet += 1;
                None
            }
            _ => {
                self.reject_warned = Some(now);
                Some(std::mem::take(&mut self.reject_quiet))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_per_period_and_every_drop_counted() {
        let mut st = ClientState::new(1, 1);
        let t0 = Instant::now();
        assert_eq!(st.count_reject(t0), Some(0));
        assert_eq!(st.count_reject(t0 + Duration::from_secs(1)), None);
        assert_eq!(st.count_reject(t0 + Duration::from_secs(2)), None);
        assert_eq!(st.count_reject(t0 + REJECT_WARN_EVERY), Some(2));
        assert_eq!(st.counters.messages_rejected, 4);
    }
}
