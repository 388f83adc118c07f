//! `ListCoins` paging: page sizes, the filter, and opaque page tokens. A
//! token is the hex of the last symbol returned together with the filter it
//! was issued for, so a token is refused with another filter and paging is
//! stable (the catalog is sorted by symbol and fixed while serving).

use super::catalog::CoinInfo;
use tonic::Status;

/// Coins per page when the request says 0.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// The largest page size accepted.
pub const MAX_PAGE_SIZE: usize = 500;
/// The longest filter accepted.
pub const MAX_FILTER_LEN: usize = 128;
const MAX_TOKEN_LEN: usize = 1024;
const TOKEN_VERSION: &str = "c1";

/// A validated `ListCoins` request.
#[derive(Debug, PartialEq, Eq)]
pub struct Page {
    /// Coins per page.
    pub size: usize,
    /// Return coins whose symbol sorts after this one.
    pub after: Option<String>,
    /// Lower-cased filter text.
    pub filter: String,
    /// Only enabled coins.
    pub enabled_only: bool,
}

impl Page {
    /// Validates the request's paging fields.
    pub fn parse(
        page_size: u32,
        page_token: &str,
        filter: &str,
        enabled_only: bool,
    ) -> Result<Self, Status> {
        let size = match page_size as usize {
            0 => DEFAULT_PAGE_SIZE,
            n if n > MAX_PAGE_SIZE => {
                return Err(Status::invalid_argument(format!(
                    "page_size {n} is more than {MAX_PAGE_SIZE}"
                )));
            }
            n => n,
        };
        if filter.chars().count() > MAX_FILTER_LEN {
            return Err(Status::invalid_argument(format!(
                "filter is longer than {MAX_FILTER_LEN} characters"
            )));
        }
        let filter = filter.to_lowercase();
        let after = if page_token.is_empty() {
            None
        } else {
            Some(decode(page_token, &filter, enabled_only)?)
        };
        Ok(Self {
            size,
            after,
            filter,
            enabled_only,
        })
    }

    /// Whether `coin` passes the filter.
    pub fn matches(&self, coin: &CoinInfo) -> bool {
        (!self.enabled_only || coin.enabled)
            && (self.filter.is_empty()
                || coin.symbol.to_lowercase().contains(&self.filter)
                || coin.name.to_lowercase().contains(&self.filter))
    }

    /// The token of the page after the one that ended with `last`.
    pub fn next_token(&self, last: &str) -> String {
        let enabled = if self.enabled_only { "1" } else { "0" };
        hex(&format!(
            "{TOKEN_VERSION}\0{last}\0{enabled}\0{}",
            self.filter
        ))
    }
}

fn bad_token() -> Status {
    Status::invalid_argument("page_token is not a token this server issued")
}

fn decode(token: &str, filter: &str, enabled_only: bool) -> Result<String, Status> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(bad_token());
    }
    let raw = unhex(token).ok_or_else(bad_token)?;
    let text = String::from_utf8(raw).map_err(|_| bad_token())?;
    let mut parts = text.splitn(4, '\0');
    let (Some(TOKEN_VERSION), Some(last), Some(enabled), Some(f)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad_token());
    };
    if last.is_empty() || !matches!(enabled, "0" | "1") {
        return Err(bad_token());
    }
    if f != filter || (enabled == "1") != enabled_only {
        return Err(Status::invalid_argument(
            "page_token was issued for a different filter or enabled_only",
        ));
    }
    Ok(last.to_owned())
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn tokens_round_trip_and_are_bound_to_the_filter() {
        let p = Page::parse(2, "", "Coin", false).unwrap();
        assert_eq!(p.filter, "coin");
        let t = p.next_token("DOGE");
        let q = Page::parse(2, &t, "COIN", false).unwrap();
        assert_eq!(q.after.as_deref(), Some("DOGE"));
        assert_eq!(
            Page::parse(2, &t, "other", false).unwrap_err().code(),
            Code::InvalidArgument
        );
        assert_eq!(
            Page::parse(2, &t, "coin", true).unwrap_err().code(),
            Code::InvalidArgument
        );
        for bad in ["zz", "abc", "00", &hex("c2\0A\x000\0"), "é"] {
            assert_eq!(
                Page::parse(2, bad, "", false).unwrap_err().code(),
                Code::InvalidArgument,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn page_sizes() {
        assert_eq!(
            Page::parse(0, "", "", false).unwrap().size,
            DEFAULT_PAGE_SIZE
        );
        assert_eq!(Page::parse(500, "", "", false).unwrap().size, 500);
        assert_eq!(
            Page::parse(501, "", "", false).unwrap_err().code(),
            Code::InvalidArgument
        );
    }
}
