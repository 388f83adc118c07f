//! Cluster-mode client authentication: a registering client must present
//! the token stored in the Secret key its CryptoClient names
//! (`spec.auth.tokenSecretRef`), read from the resource's own namespace.
//! The token binds to that resource's client id, so one client's token
//! never registers another. Secrets are read by name (RBAC: `get` on
//! secrets in the watched namespaces) and cached for a short TTL, so a
//! changed Secret revokes the old token for new connections within it.

use super::index::ResourceIndex;
use crate::streaming::{BoxFuture, ClientAuthenticator, Credentials, tokens_match};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tonic::Status;
use tracing::warn;

type SecretKey = (String, String, String);
/// When a Secret key was read, and its value (`None`: missing).
type Cached = (Instant, Option<Vec<u8>>);

/// Checks client tokens against Secrets.
pub struct SecretAuth {
    client: kube::Client,
    index: Arc<ResourceIndex>,
    require: bool,
    ttl: Duration,
    cache: Mutex<HashMap<SecretKey, Cached>>,
}

impl SecretAuth {
    /// `require`: clients without a token (or whose resource names no
    /// Secret) are refused; `ttl`: how long a read Secret is reused.
    pub fn new(
        client: kube::Client,
        index: Arc<ResourceIndex>,
        require: bool,
        ttl: Duration,
    ) -> Self {
        Self {
            client,
            index,
            require,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    async fn secret_value(
        &self,
        ns: &str,
        name: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, Status> {
        let k = (ns.to_owned(), name.to_owned(), key.to_owned());
        if let Some((at, v)) = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&k)
            && at.elapsed() < self.ttl
        {
            return Ok(v.clone());
        }
        let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        let secret = api.get_opt(name).await.map_err(|e| {
            warn!(namespace = %ns, secret = %name, error = %e, "cannot read token Secret");
            Status::unavailable("cannot read the token Secret; retry")
        })?;
        let value = secret
            .and_then(|s| s.data)
            .and_then(|mut d| d.remove(key))
            .map(|b| {
                let mut v = b.0;
                while v.last().is_some_and(u8::is_ascii_whitespace) {
                    v.pop();
                }
                v
            });
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(k, (Instant::now(), value.clone()));
        Ok(value)
    }
}

impl ClientAuthenticator for SecretAuth {
    fn verify<'a>(
        &'a self,
        client_id: &'a str,
        creds: &'a Credentials,
    ) -> BoxFuture<'a, Result<(), Status>> {
        Box::pin(async move {
            // Admission already refused clients without a resource.
            let Some(r) = self.index.lookup(client_id) else {
                return Err(Status::permission_denied(format!(
                    "no CryptoClient resource has client id {client_id:?}"
                )));
            };
            let Some((secret, key)) = r.token_secret else {
                return if self.require {
                    Err(Status::unauthenticated(format!(
                        "CryptoClient {}/{} names no spec.auth.tokenSecretRef and client authentication is required",
                        r.namespace, r.name
                    )))
                } else {
                    Ok(())
                };
            };
            let Some(token) = creds.bearer.as_deref() else {
                return Err(Status::unauthenticated(
                    "a bearer token is required (authorization: Bearer <token>)",
                ));
            };
            match self.secret_value(&r.namespace, &secret, &key).await? {
                Some(expected) if tokens_match(token.as_bytes(), &expected) => Ok(()),
                Some(_) => Err(Status::unauthenticated("invalid token")),
                None => Err(Status::unauthenticated(format!(
                    "the token Secret {}/{secret} (key {key}) does not exist",
                    r.namespace
                ))),
            }
        })
    }
}
