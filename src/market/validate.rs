//! Validation of incoming prices against the catalog: the symbol is known
//! and enabled, the price is a non-negative decimal string with at most the
//! coin's decimals, the quote is 1-16 ASCII letters or digits. A price that
//! fails is dropped and counted by [`Invalid::label`].

use super::catalog::{Catalog, CoinInfo};
use crate::proto::PriceUpdate;

/// The longest price string accepted.
pub const MAX_PRICE_LEN: usize = 64;
/// The longest quote accepted.
pub const MAX_QUOTE_LEN: usize = 16;

/// Why a price was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// The catalog has no such symbol.
    UnknownSymbol,
    /// The coin is disabled.
    DisabledSymbol,
    /// Not a non-negative decimal string (sign, exponent, empty, ...).
    MalformedPrice,
    /// More digits after the point than the coin's decimals.
    TooManyDecimals,
    /// Empty, too long, or not letters and digits.
    BadQuote,
    /// The coin already has prices in the maximum number of quotes.
    QuoteLimit,
    /// A peer sent a tick without a price or from another source than
    /// itself (peers relay nothing).
    WrongSource,
}

impl Invalid {
    /// Every reason, in `index` order.
    pub const ALL: [Invalid; 7] = [
        Invalid::UnknownSymbol,
        Invalid::DisabledSymbol,
        Invalid::MalformedPrice,
        Invalid::TooManyDecimals,
        Invalid::BadQuote,
        Invalid::QuoteLimit,
        Invalid::WrongSource,
    ];

    /// The `reason` label of `crypto_price_updates_invalid_total`.
    pub fn label(self) -> &'static str {
        match self {
            Invalid::UnknownSymbol => "unknown_symbol",
            Invalid::DisabledSymbol => "disabled_symbol",
            Invalid::MalformedPrice => "malformed_price",
            Invalid::TooManyDecimals => "too_many_decimals",
            Invalid::BadQuote => "bad_quote",
            Invalid::QuoteLimit => "quote_limit",
            Invalid::WrongSource => "wrong_source",
        }
    }

    /// Position in [`Invalid::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A price that passed validation: the coin's position in the catalog and
/// the upper-case quote.
#[derive(Debug, PartialEq, Eq)]
pub struct Checked<'a> {
    /// Position of the coin in the catalog.
    pub coin: usize,
    /// The coin.
    pub info: &'a CoinInfo,
    /// The quote, upper-cased.
    pub quote: String,
}

/// Checks `p` against `catalog`.
pub fn check<'a>(catalog: &'a Catalog, p: &PriceUpdate) -> Result<Checked<'a>, Invalid> {
    let (coin, info) = catalog.find(&p.symbol).ok_or(Invalid::UnknownSymbol)?;
    if !info.enabled {
        return Err(Invalid::DisabledSymbol);
    }
    check_price(&p.price, info.decimals)?;
    let quote = check_quote(&p.quote)?;
    Ok(Checked { coin, info, quote })
}

/// `digits [ "." digits ]` with at most `decimals` digits after the point.
pub fn check_price(s: &str, decimals: u32) -> Result<(), Invalid> {
    if s.is_empty() || s.len() > MAX_PRICE_LEN {
        return Err(Invalid::MalformedPrice);
    }
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) {
        return Err(Invalid::MalformedPrice);
    }
    if let Some(f) = frac {
        if !digits(f) {
            return Err(Invalid::MalformedPrice);
        }
        if f.len() > decimals as usize {
            return Err(Invalid::TooManyDecimals);
        }
    }
    Ok(())
}

/// 1-16 ASCII letters or digits; returned upper-cased.
pub fn check_quote(s: &str) -> Result<String, Invalid> {
    if s.is_empty() || s.len() > MAX_QUOTE_LEN || !s.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Invalid::BadQuote);
    }
    Ok(s.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_plain_non_negative_decimals() {
        for ok in ["0", "1", "67012.55", "0.00000001", "10.5"] {
            assert_eq!(check_price(ok, 8), Ok(()), "{ok}");
        }
        for bad in [
            "", "-1", "+1", "1e5", "1.", ".5", "1.2.3", "NaN", " 1", "1,5", "١",
        ] {
            assert_eq!(check_price(bad, 8), Err(Invalid::MalformedPrice), "{bad:?}");
        }
        assert_eq!(check_price("1.123", 2), Err(Invalid::TooManyDecimals));
        assert_eq!(check_price("1.5", 0), Err(Invalid::TooManyDecimals));
        assert_eq!(check_price("15", 0), Ok(()));
        assert_eq!(
            check_price(&"9".repeat(MAX_PRICE_LEN + 1), 2),
            Err(Invalid::MalformedPrice)
        );
    }

    #[test]
    fn quotes_are_short_alphanumerics() {
        assert_eq!(check_quote("usd").as_deref(), Ok("USD"));
        assert_eq!(check_quote(""), Err(Invalid::BadQuote));
        assert_eq!(check_quote("US D"), Err(Invalid::BadQuote));
        assert_eq!(check_quote(&"X".repeat(17)), Err(Invalid::BadQuote));
    }

    #[test]
    fn labels_follow_index_order() {
        for (i, r) in Invalid::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }
}
