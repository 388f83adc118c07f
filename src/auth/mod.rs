//! Authentication helpers outside the cluster: the standalone tokens file
//! (client id -> argon2id hash of its token, reloaded when it changes) and
//! the hashing behind `crypto-operator hash-token`. Cluster mode checks
//! tokens against Secrets instead (`crate::controller`).

mod hash;
mod tokens_file;

pub use hash::{hash_token, verify_token};
pub use tokens_file::{TokensAuth, TokensFileError};
