//! Generated protobuf and gRPC code for `crypto.v1` (see `proto/`), the
//! encoded file descriptor set that server reflection serves, the
//! well-known client types and (with `server`) the JSON form of the
//! messages that leave the process as JSON (`json`).

/// The code generated from `proto/crypto/v1/` (documented in the proto
/// files; re-exported here).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
mod generated {
    tonic::include_proto!("crypto.v1");
}

pub use generated::*;

pub mod codec;
pub mod hops;
#[cfg(feature = "server")]
pub mod json;
pub mod retry;

/// Encoded `FileDescriptorSet` of every `crypto.v1` file, for reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("crypto_descriptor");

/// Well-known values of `ClientRegistration.client_type` (any other value
/// of 1 to 64 characters of `[A-Za-z0-9._-]` is a valid custom type).
pub mod client_types {
    /// Keeps wallet balances in sync with a chain or exchange.
    pub const WALLET_SYNC: &str = "wallet-sync";
    /// Places orders.
    pub const TRADING_BOT: &str = "trading-bot";
    /// Publishes prices; the only type whose `price` messages are accepted.
    pub const PRICE_FEED: &str = "price-feed";
}
