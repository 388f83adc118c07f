//! Client authentication hooks of the streaming core: what a connecting
//! client presented (a bearer token, and the identities of its TLS client
//! certificate) and the check that it may use the client id it registers
//! with. Cluster mode checks tokens against Secrets named by the client's
//! resource; standalone mode against a tokens file (`crate::auth`).

use std::future::Future;
use std::pin::Pin;
use tonic::Status;

/// What a connecting client presented.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// The bearer token of the `authorization` metadata, if any.
    pub bearer: Option<String>,
    /// The verified TLS client certificate (DER), with mutual TLS.
    pub peer_cert: Option<std::sync::Arc<Vec<u8>>>,
}

impl Credentials {
    /// Reads the bearer token from request metadata (`authorization:
    /// Bearer <token>`).
    pub fn from_metadata(md: &tonic::metadata::MetadataMap) -> Self {
        let bearer = md
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        Self {
            bearer,
            peer_cert: None,
        }
    }
}

/// A boxed, sendable future (the verifier may call an API).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Decides whether `creds` entitle a client to register as `client_id`.
pub trait ClientAuthenticator: Send + Sync + 'static {
    /// `Ok` to admit; UNAUTHENTICATED (or UNAVAILABLE when the check
    /// itself failed) to refuse.
    fn verify<'a>(
        &'a self,
        client_id: &'a str,
        creds: &'a Credentials,
    ) -> BoxFuture<'a, Result<(), Status>>;
}

/// No authentication (standalone default).
pub struct NoAuth;

impl ClientAuthenticator for NoAuth {
    fn verify<'a>(&'a self, _: &'a str, _: &'a Credentials) -> BoxFuture<'a, Result<(), Status>> {
        Box::pin(async { Ok(()) })
    }
}

/// Refuses every client: with mutual TLS and no tokens, only a client
/// certificate naming the client id (checked before this) admits one.
pub struct CertificateOnly;

impl ClientAuthenticator for CertificateOnly {
    fn verify<'a>(
        &'a self,
        client_id: &'a str,
        _: &'a Credentials,
    ) -> BoxFuture<'a, Result<(), Status>> {
        Box::pin(async move {
            Err(Status::unauthenticated(format!(
                "no client certificate names {client_id:?} (DNS subject alternative name)"
            )))
        })
    }
}

/// Compares two byte strings in time that depends only on their lengths
/// (callers compare fixed-length digests, so not even on that).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// SHA-256 of a token: what token comparisons compare.
pub fn token_digest(token: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(token).into()
}

/// Whether a presented token equals the expected one: their SHA-256
/// digests are compared in constant time, so neither the content nor the
/// length of either token shows in the time taken.
pub fn tokens_match(presented: &[u8], expected: &[u8]) -> bool {
    constant_time_eq(&token_digest(presented), &token_digest(expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_from_metadata() {
        let mut md = tonic::metadata::MetadataMap::new();
        assert_eq!(Credentials::from_metadata(&md).bearer, None);
        md.insert("authorization", "Bearer s3cret".parse().unwrap());
        assert_eq!(
            Credentials::from_metadata(&md).bearer.as_deref(),
            Some("s3cret")
        );
        md.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(Credentials::from_metadata(&md).bearer, None);
    }

    #[test]
    fn constant_time_eq_compares_bytes() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
        assert!(tokens_match(b"s3cret", b"s3cret"));
        assert!(!tokens_match(b"s3cret", b"s3cre"));
        assert!(!tokens_match(b"", b"x"));
    }
}
