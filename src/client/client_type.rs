//! The kind of client, as the SDK's typed helper: the three well-known
//! `client_type` values, or any custom one.

use crate::proto::client_types;
use std::fmt;

/// What a client declares in `register` (`ClientRegistration.client_type`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientType {
    /// `wallet-sync`: keeps wallet balances in sync.
    WalletSync,
    /// `trading-bot`: places orders.
    TradingBot,
    /// `price-feed`: publishes prices.
    PriceFeed,
    /// Any other type: 1 to 64 characters of `[A-Za-z0-9._-]` (the server
    /// stores it lower-case and refuses anything else).
    Other(String),
}

impl ClientType {
    /// The wire value.
    pub fn as_str(&self) -> &str {
        match self {
            Self::WalletSync => client_types::WALLET_SYNC,
            Self::TradingBot => client_types::TRADING_BOT,
            Self::PriceFeed => client_types::PRICE_FEED,
            Self::Other(s) => s,
        }
    }
}

impl From<&str> for ClientType {
    /// The well-known variant for a well-known value (any case), else
    /// `Other`.
    fn from(s: &str) -> Self {
        match s.to_ascii_lowercase().as_str() {
            client_types::WALLET_SYNC => Self::WalletSync,
            client_types::TRADING_BOT => Self::TradingBot,
            client_types::PRICE_FEED => Self::PriceFeed,
            _ => Self::Other(s.to_owned()),
        }
    }
}

impl fmt::Display for ClientType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_values_round_trip_and_others_are_kept() {
        for t in [
            ClientType::WalletSync,
            ClientType::TradingBot,
            ClientType::PriceFeed,
        ] {
            assert_eq!(ClientType::from(t.as_str()), t);
        }
        assert_eq!(ClientType::from("Price-Feed"), ClientType::PriceFeed);
        assert_eq!(
            ClientType::from("arbitrage"),
            ClientType::Other("arbitrage".into())
        );
        assert_eq!(ClientType::Other("x".into()).to_string(), "x");
    }
}
