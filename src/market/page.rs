//! `ListCoins` paging: page sizes, the filter, and page tokens
//! (`crate::paging`) bound to the filter; paging is stable (the catalog is
//! sorted by symbol and fixed while serving).

use super::catalog::CoinInfo;
use crate::paging;
use tonic::Status;

/// Coins per page when the request says 0.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// The largest page size accepted.
pub const MAX_PAGE_SIZE: usize = 500;
/// The longest filter accepted.
pub const MAX_FILTER_LEN: usize = 128;
const TOKEN_KIND: &str = "c1";

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
        let size = paging::page_size(page_size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)?;
        if filter.chars().count() > MAX_FILTER_LEN {
            return Err(Status::invalid_argument(format!(
                "filter is longer than {MAX_FILTER_LEN} characters"
            )));
        }
        let filter = filter.to_lowercase();
        let after = if page_token.is_empty() {
            None
        } else {
            Some(paging::decode(
                TOKEN_KIND,
                page_token,
                &query(&filter, enabled_only),
            )?)
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
        paging::encode(TOKEN_KIND, last, &query(&self.filter, self.enabled_only))
    }
}

fn query(filter: &str, enabled_only: bool) -> String {
    format!("{}\0{filter}", u8::from(enabled_only))
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
        for bad in ["zz", "abc", "00", &paging::encode("c2", "A", "0\0"), "é"] {
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
