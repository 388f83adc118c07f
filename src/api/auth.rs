//! Bearer-token authentication of the admin API: the token comes from a
//! flag, an environment variable or a file; only its SHA-256 digest is
//! kept, and a presented token is compared digest to digest in constant
//! time, so neither its content nor its length shows in the timing.

use super::error::ApiError;
use crate::streaming::{constant_time_eq, token_digest};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::path::Path;
use std::sync::Arc;

/// Longest token accepted.
pub const MAX_TOKEN_LEN: usize = 4096;

/// Tokens shorter than this are accepted with a warning.
pub const SHORT_TOKEN_LEN: usize = 16;

/// Why an admin token is unusable.
#[derive(Debug, thiserror::Error)]
pub enum AdminTokenError {
    /// Empty.
    #[error("the admin token is empty")]
    Empty,
    /// Longer than an HTTP header should carry.
    #[error("the admin token is longer than {MAX_TOKEN_LEN} characters")]
    TooLong,
    /// Spaces or non-ASCII characters.
    #[error("the admin token must be visible ASCII characters without spaces")]
    NotVisibleAscii,
    /// The flag or file could not be read.
    #[error(transparent)]
    Secret(#[from] crate::secret::SecretError),
}

/// The admin API's bearer token (only its digest is kept).
#[derive(Clone)]
pub struct AdminToken {
    digest: Arc<[u8; 32]>,
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

impl AdminToken {
    /// A token: 1 to 4096 visible ASCII characters (what an HTTP header
    /// can carry), no spaces.
    pub fn new(token: &str) -> Result<Self, AdminTokenError> {
        if token.is_empty() {
            return Err(AdminTokenError::Empty);
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(AdminTokenError::TooLong);
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AdminTokenError::NotVisibleAscii);
        }
        Ok(Self {
            digest: Arc::new(token_digest(token.as_bytes())),
        })
    }

    /// The token from `--admin-token` or `--admin-token-file` (at most
    /// one), or `None` when neither is given.
    pub fn resolve(
        token: Option<&str>,
        file: Option<&Path>,
    ) -> Result<Option<Self>, AdminTokenError> {
        let names = crate::secret::SecretNames {
            what: "the admin token",
            value: "--admin-token (CRYPTO_ADMIN_TOKEN)",
            file: "--admin-token-file (CRYPTO_ADMIN_TOKEN_FILE)",
        };
        let Some(text) = crate::secret::resolve(token, file, names)? else {
            return Ok(None);
        };
        let t = Self::new(&text)?;
        if text.len() < SHORT_TOKEN_LEN {
            tracing::warn!(
                "the admin token is shorter than {SHORT_TOKEN_LEN} characters; use a long random one (e.g. `openssl rand -hex 32`)"
            );
        }
        Ok(Some(t))
    }

    /// Whether `presented` is the token (constant time).
    pub fn matches(&self, presented: &[u8]) -> bool {
        constant_time_eq(&token_digest(presented), &self.digest[..])
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme
/// case-insensitive); `None` when there is no such header.
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let v = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = v.split_at(v.iter().position(|&b| b == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let start = rest.iter().position(|&b| b != b' ')?;
    Some(&rest[start..])
}

/// Middleware: lets a request through only with the right bearer token;
/// anything else is answered 401 before any handler (or body parsing)
/// runs.
pub(crate) async fn require_token(
    State(token): State<AdminToken>,
    req: Request,
    next: Next,
) -> Response {
    match bearer(req.headers()) {
        Some(t) if token.matches(t) => next.run(req).await,
        Some(_) => ApiError::unauthorized("wrong bearer token", true).into_response(),
        None => ApiError::unauthorized(
            "missing bearer token: send `Authorization: Bearer <admin token>`",
            false,
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn compares_tokens_and_parses_bearer_headers() {
        let t = AdminToken::new("s3cret-token-0123456789").unwrap();
        assert!(t.matches(b"s3cret-token-0123456789"));
        assert!(!t.matches(b"s3cret-token-012345678"));
        assert!(!t.matches(b""));

        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(bearer(&h), Some(&b"abc"[..]));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer   abc"),
        );
        assert_eq!(bearer(&h), Some(&b"abc"[..]));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer"));
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn tokens_come_from_a_flag_or_a_file_not_both() {
        assert!(AdminToken::new("").is_err());
        assert!(AdminToken::new("has space").is_err());
        assert!(AdminToken::new(&"x".repeat(MAX_TOKEN_LEN + 1)).is_err());
        let dir = std::env::temp_dir().join(format!("crypto-admin-token-{}", std::process::id()));
        std::fs::write(&dir, "from-a-file-0123456789\n").unwrap();
        let t = AdminToken::resolve(None, Some(&dir)).unwrap().unwrap();
        assert!(t.matches(b"from-a-file-0123456789"));
        assert!(AdminToken::resolve(Some("x"), Some(&dir)).is_err());
        assert!(AdminToken::resolve(None, None).unwrap().is_none());
        std::fs::write(&dir, "\n").unwrap();
        assert!(AdminToken::resolve(None, Some(&dir)).is_err());
        std::fs::remove_file(&dir).unwrap();
        let missing = AdminToken::resolve(None, Some(Path::new("/nonexistent/token")));
        assert!(
            missing
                .unwrap_err()
                .to_string()
                .contains("/nonexistent/token")
        );
    }
}
