//! The standalone tokens file: YAML mapping client id -> argon2id hash of
//! its token. Checked at every registration; re-read when its modification
//! time changes (polled every 2 s by an owned task), so tokens can be added
//! and revoked without a restart. Verified tokens are remembered by SHA-256
//! until the next reload, so reconnect storms do not pay argon2 each time.

use super::verify_token;
use crate::streaming::{BoxFuture, ClientAuthenticator, Credentials};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tracing::{info, warn};

/// Why the tokens file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TokensFileError {
    /// Unreadable.
    #[error("tokens file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not a mapping of client id to argon2id hash.
    #[error("tokens file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong (with the line where known).
        message: String,
    },
}

#[derive(Default)]
struct Table {
    hashes: HashMap<String, String>,
    verified: HashMap<String, [u8; 32]>,
    mtime: Option<SystemTime>,
}

/// Client authentication against a tokens file.
pub struct TokensAuth {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    require: bool,
    table: RwLock<Table>,
}

fn load(path: &Path) -> Result<(HashMap<String, String>, Option<SystemTime>), TokensFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| TokensFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let hashes: HashMap<String, String> =
        serde_yaml::from_str::<Option<HashMap<String, String>>>(&text)
            .map_err(|e| TokensFileError::Parse {
                path: path.to_owned(),
                message: e.to_string(),
            })?
            .unwrap_or_default();
    for (id, hash) in &hashes {
        if !hash.starts_with("$argon2") {
            return Err(TokensFileError::Parse {
                path: path.to_owned(),
                message: format!(
                    "entry {id:?} is not an argon2 hash; create one with `crypto-operator hash-token`"
                ),
            });
        }
    }
    Ok((hashes, mtime))
}

impl TokensAuth {
    /// Loads `path`; `require` refuses clients that present no token.
    pub fn load(path: &Path, require: bool) -> Result<Self, TokensFileError> {
        let (hashes, mtime) = load(path)?;
        info!(path = %path.display(), clients = hashes.len(), "tokens file loaded");
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                require,
                table: RwLock::new(Table {
                    hashes,
                    verified: HashMap::new(),
                    mtime,
                }),
            }),
        })
    }

    /// Re-reads the file if it changed; a broken file keeps the old table.
    pub fn reload_if_changed(&self) {
        self.inner.reload_if_changed();
    }
}

impl Inner {
    fn reload_if_changed(&self) {
        let mtime = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        if mtime
            == self
                .table
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .mtime
        {
            return;
        }
        match load(&self.path) {
            Ok((hashes, mtime)) => {
                info!(path = %self.path.display(), clients = hashes.len(), "tokens file reloaded");
                *self
                    .table
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Table {
                    hashes,
                    verified: HashMap::new(),
                    mtime,
                };
            }
            Err(e) => {
                warn!(error = %e, "tokens file changed but cannot be used; keeping the previous one");
            }
        }
    }
}

impl TokensAuth {
    /// Polls the file every 2 s until `stop`.
    pub async fn watch(self: Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => self.reload_if_changed(),
            }
        }
    }
}

impl Inner {
    fn check(&self, client_id: &str, token: Option<&str>) -> Result<(), Status> {
        let Some(token) = token else {
            return if self.require {
                Err(Status::unauthenticated(
                    "a bearer token is required (authorization: Bearer <token>)",
                ))
            } else {
                Ok(())
            };
        };
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let hash = {
            let t = self
                .table
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if t.verified.get(client_id) == Some(&digest) {
                return Ok(());
            }
            t.hashes.get(client_id).cloned()
        };
        let Some(hash) = hash else {
            return Err(Status::unauthenticated(format!(
                "no token is registered for client {client_id:?}"
            )));
        };
        if verify_token(token, &hash) {
            self.table
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .verified
                .insert(client_id.to_owned(), digest);
            Ok(())
        } else {
            Err(Status::unauthenticated("invalid token"))
        }
    }
}

impl ClientAuthenticator for TokensAuth {
    fn verify<'a>(
        &'a self,
        client_id: &'a str,
        creds: &'a Credentials,
    ) -> BoxFuture<'a, Result<(), Status>> {
        // argon2 takes tens of milliseconds: keep it off the async workers.
        Box::pin(async move {
            let Some(token) = creds.bearer.clone() else {
                return self.inner.check(client_id, None);
            };
            let inner = self.inner.clone();
            let id = client_id.to_owned();
            tokio::task::spawn_blocking(move || inner.check(&id, Some(&token)))
                .await
                .unwrap_or_else(|e| Err(Status::internal(format!("token check failed: {e}"))))
        })
    }
}
