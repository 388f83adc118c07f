//! Listing connected clients a page at a time: the query (page size, the
//! token of the previous page, state and client-type filters) as the gRPC
//! `ListClients` call and the admin API both take it, and the page.

use super::Session;
use crate::paging;
use crate::proto::{ClientSummary, SessionState};
use tonic::Status;

/// Clients per page when the request says 0.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// The largest page size accepted.
pub const MAX_PAGE_SIZE: usize = 1000;
const TOKEN_KIND: &str = "l1";

/// A validated listing request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientQuery {
    /// Clients per page.
    pub size: usize,
    /// Resume after this client id.
    pub after: Option<String>,
    /// Only stale (`Some(true)`) or only fresh (`Some(false)`) sessions.
    pub stale: Option<bool>,
    /// Only this client type (lower-case).
    pub client_type: Option<String>,
}

impl ClientQuery {
    /// Validates a request: `page_size` (0: 100, at most 1000), the token
    /// of the previous page, a `SessionState` and a client type.
    pub fn parse(
        page_size: u32,
        page_token: &str,
        state: i32,
        client_type: &str,
    ) -> Result<Self, Status> {
        let size = paging::page_size(page_size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)?;
        let stale = match SessionState::try_from(state) {
            Ok(SessionState::Unspecified) => None,
            Ok(SessionState::Connected) => Some(false),
            Ok(SessionState::Stale) => Some(true),
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "state {state} is not a SessionState"
                )));
            }
        };
        let client_type = (!client_type.is_empty()).then(|| client_type.to_ascii_lowercase());
        let mut q = Self {
            size,
            after: None,
            stale,
            client_type,
        };
        if !page_token.is_empty() {
            q.after = Some(paging::decode(TOKEN_KIND, page_token, &q.filters())?);
        }
        Ok(q)
    }

    fn filters(&self) -> String {
        let state = match self.stale {
            None => "",
            Some(false) => "connected",
            Some(true) => "stale",
        };
        format!("{state}\0{}", self.client_type.as_deref().unwrap_or(""))
    }

    /// Whether `s` passes the filters.
    pub fn matches(&self, s: &Session) -> bool {
        self.stale.is_none_or(|st| s.is_stale() == st)
            && self
                .client_type
                .as_deref()
                .is_none_or(|t| s.registration.client_type == t)
    }

    /// The token of the page after the one that ended with `last`.
    pub fn next_token(&self, last: &str) -> String {
        paging::encode(TOKEN_KIND, last, &self.filters())
    }
}

/// One page of client summaries, sorted by client id.
pub struct ClientPage {
    /// The summaries.
    pub clients: Vec<ClientSummary>,
    /// The token of the next page; `None` on the last page.
    pub next_token: Option<String>,
    /// Replicas that did not answer in time (their clients are missing).
    pub missing: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn queries_parse_and_tokens_keep_their_filters() {
        let q = ClientQuery::parse(0, "", SessionState::Stale as i32, "Wallet-Sync").unwrap();
        assert_eq!(q.size, DEFAULT_PAGE_SIZE);
        assert_eq!(q.stale, Some(true));
        assert_eq!(q.client_type.as_deref(), Some("wallet-sync"));
        let t = q.next_token("w-9");
        let next = ClientQuery::parse(0, &t, SessionState::Stale as i32, "wallet-sync").unwrap();
        assert_eq!(next.after.as_deref(), Some("w-9"));
        for (state, kind) in [(0, "wallet-sync"), (2, "price-feed")] {
            assert_eq!(
                ClientQuery::parse(0, &t, state, kind).unwrap_err().code(),
                Code::InvalidArgument
            );
        }
        assert_eq!(
            ClientQuery::parse(1001, "", 0, "").unwrap_err().code(),
            Code::InvalidArgument
        );
        assert_eq!(
            ClientQuery::parse(1, "", 7, "").unwrap_err().code(),
            Code::InvalidArgument
        );
    }
}
