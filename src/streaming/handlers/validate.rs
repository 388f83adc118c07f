//! One rule for every data payload (`wallet_update`, `transaction`,
//! `status`, `error`, `log`, `price`): required ids are present, decimals
//! are plain decimal strings, lengths are bounded. A payload that fails is
//! dropped by `dispatch` (counted and logged) and the session goes on; only
//! the session rules in `mod.rs` end a stream. Long free texts (a log line,
//! an error message, a status detail) are cut and flagged instead
//! (`records::truncate_text`).

use crate::proto::{
    ClientStatus, CommandAck, ErrorReport, LogEntry, PriceUpdate, Transaction, WalletUpdate,
};

/// Longest id accepted (`wallet_id`, `tx_id`, an ack's `command_id`).
pub const MAX_ID: usize = 256;
/// Longest short name accepted (chain, asset, state, code, source, a log
/// field's key, a config hash).
pub const MAX_NAME: usize = 128;
/// Longest decimal string accepted.
pub const MAX_DECIMAL: usize = 64;
/// Longest price symbol or quote accepted.
pub const MAX_SYMBOL: usize = 16;
/// Most structured fields on a log entry, or results on an ack.
pub const MAX_ENTRIES: usize = 64;

/// Why a message was dropped: the `reason` label of
/// `crypto_client_messages_rejected_total`, with the field it concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// The message carries no payload.
    NoPayload,
    /// A required field is empty.
    MissingField(&'static str),
    /// A field that must be a plain decimal string is not one.
    BadDecimal(&'static str),
    /// A field (or a map) is longer than its bound.
    TooLong(&'static str),
    /// A `price` from a client not registered as `price-feed`.
    NotPriceFeed,
    /// An ack for a command this session has no pending entry for.
    UnknownCommand,
    /// An ack for a command of this session that already timed out.
    LateAck,
}

impl Reject {
    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Reject::NoPayload => "no_payload",
            Reject::MissingField(_) => "missing_field",
            Reject::BadDecimal(_) => "bad_decimal",
            Reject::TooLong(_) => "too_long",
            Reject::NotPriceFeed => "not_price_feed",
            Reject::UnknownCommand => "unknown_command",
            Reject::LateAck => "late_ack",
        }
    }
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reject::NoPayload => f.write_str("the message has no payload"),
            Reject::MissingField(n) => write!(f, "{n} is required"),
            Reject::BadDecimal(n) => write!(
                f,
                "{n} must be a plain decimal string (digits, an optional point and digits, at most {MAX_DECIMAL} characters)"
            ),
            Reject::TooLong(n) => write!(f, "{n} is longer than allowed"),
            Reject::NotPriceFeed => {
                f.write_str("only clients registered as price-feed may send prices")
            }
            Reject::UnknownCommand => f.write_str(
                "command_ack for a command this session has not sent or has already finished",
            ),
            Reject::LateAck => f.write_str("command_ack after the command timed out"),
        }
    }
}

fn required(field: &'static str, v: &str, max: usize) -> Result<(), Reject> {
    if v.is_empty() {
        return Err(Reject::MissingField(field));
    }
    bounded(field, v, max)
}

fn bounded(field: &'static str, v: &str, max: usize) -> Result<(), Reject> {
    if v.len() > max {
        return Err(Reject::TooLong(field));
    }
    Ok(())
}

/// A plain decimal: `digits[.digits]`, with a leading `-` when `signed`;
/// no exponent, no `+`, no spaces, at most [`MAX_DECIMAL`] characters.
pub fn plain_decimal(s: &str, signed: bool) -> bool {
    let digits = if signed {
        s.strip_prefix('-').unwrap_or(s)
    } else {
        s
    };
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    s.len() <= MAX_DECIMAL
        && !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

fn decimal(field: &'static str, v: &str, signed: bool) -> Result<(), Reject> {
    if v.is_empty() {
        return Err(Reject::MissingField(field));
    }
    if !plain_decimal(v, signed) {
        return Err(Reject::BadDecimal(field));
    }
    Ok(())
}

/// `wallet_update`: `wallet_id` and a (signed) decimal `balance`.
pub fn wallet_update(w: &WalletUpdate) -> Result<(), Reject> {
    required("wallet_update.wallet_id", &w.wallet_id, MAX_ID)?;
    bounded("wallet_update.chain", &w.chain, MAX_NAME)?;
    bounded("wallet_update.asset", &w.asset, MAX_NAME)?;
    decimal("wallet_update.balance", &w.balance, true)
}

/// `transaction`: `tx_id`, `wallet_id` and a (signed) decimal `amount`.
pub fn transaction(t: &Transaction) -> Result<(), Reject> {
    required("transaction.tx_id", &t.tx_id, MAX_ID)?;
    required("transaction.wallet_id", &t.wallet_id, MAX_ID)?;
    bounded("transaction.chain", &t.chain, MAX_NAME)?;
    bounded("transaction.asset", &t.asset, MAX_NAME)?;
    bounded("transaction.state", &t.state, MAX_NAME)?;
    decimal("transaction.amount", &t.amount, true)
}

/// `status`: a bounded `config_hash` (the detail is cut, not refused).
pub fn status(s: &ClientStatus) -> Result<(), Reject> {
    bounded("status.config_hash", &s.config_hash, MAX_NAME)
}

/// `error`: a bounded `code` (the message is cut, not refused).
pub fn error(e: &ErrorReport) -> Result<(), Reject> {
    bounded("error.code", &e.code, MAX_NAME)
}

/// `log`: at most [`MAX_ENTRIES`] fields with bounded keys and values (the
/// message is cut, not refused).
pub fn log(l: &LogEntry, max_text: usize) -> Result<(), Reject> {
    if l.fields.len() > MAX_ENTRIES {
        return Err(Reject::TooLong("log.fields"));
    }
    for (k, v) in &l.fields {
        bounded("log.fields", k, MAX_NAME)?;
        bounded("log.fields", v, max_text)?;
    }
    Ok(())
}

/// `price`: a symbol, an unsigned decimal price, bounded quote and source.
/// The catalog checks (known, enabled, the coin's decimals) are the
/// market's, after the core accepted the message.
pub fn price(p: &PriceUpdate) -> Result<(), Reject> {
    required("price.symbol", &p.symbol, MAX_SYMBOL)?;
    decimal("price.price", &p.price, false)?;
    bounded("price.quote", &p.quote, MAX_SYMBOL)?;
    bounded("price.source", &p.source, MAX_NAME)
}

/// `command_ack`: a `command_id` and at most [`MAX_ENTRIES`] results.
pub fn ack(a: &CommandAck) -> Result<(), Reject> {
    required("command_ack.command_id", &a.command_id, MAX_ID)?;
    if a.result.len() > MAX_ENTRIES {
        return Err(Reject::TooLong("command_ack.result"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_decimals_only() {
        for ok in ["0", "1.5", "00.10", "123456789.000000001"] {
            assert!(plain_decimal(ok, false), "{ok}");
        }
        assert!(plain_decimal("-2.5", true));
        for bad in [
            "", "-", ".", "1.", ".5", "1e3", "+1", " 1", "1,5", "1.2.3", "NaN", "-1", "١",
        ] {
            assert!(!plain_decimal(bad, false), "{bad:?}");
        }
        assert!(!plain_decimal("--1", true));
        assert!(!plain_decimal(&"9".repeat(MAX_DECIMAL + 1), false));
    }

    #[test]
    fn each_payload_names_what_is_wrong() {
        assert_eq!(
            wallet_update(&WalletUpdate::default()),
            Err(Reject::MissingField("wallet_update.wallet_id"))
        );
        let w = WalletUpdate {
            wallet_id: "w".into(),
            balance: "1.5e3".into(),
            ..Default::default()
        };
        assert_eq!(
            wallet_update(&w),
            Err(Reject::BadDecimal("wallet_update.balance"))
        );
        assert_eq!(
            wallet_update(&WalletUpdate {
                balance: "-0.25".into(),
                ..w
            }),
            Ok(())
        );
        assert_eq!(
            transaction(&Transaction::default()),
            Err(Reject::MissingField("transaction.tx_id"))
        );
        let t = Transaction {
            tx_id: "t".into(),
            wallet_id: "w".into(),
            amount: "1".into(),
            state: "x".repeat(MAX_NAME + 1),
            ..Default::default()
        };
        assert_eq!(transaction(&t), Err(Reject::TooLong("transaction.state")));
        assert_eq!(
            price(&PriceUpdate {
                symbol: "BTC".into(),
                price: "-1".into(),
                ..Default::default()
            }),
            Err(Reject::BadDecimal("price.price"))
        );
        assert_eq!(
            ack(&CommandAck::default()),
            Err(Reject::MissingField("command_ack.command_id"))
        );
        assert_eq!(status(&ClientStatus::default()), Ok(()));
        assert_eq!(error(&ErrorReport::default()), Ok(()));
        assert_eq!(log(&LogEntry::default(), 10), Ok(()));
    }
}
