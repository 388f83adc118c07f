//! Why the server could not start, or failed while running.

use crate::auth::TokensFileError;
use crate::centrifugo::CentrifugoError;
use crate::market::CatalogError;
use std::net::SocketAddr;

/// Why the server could not start or failed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The gRPC transport failed.
    #[error("gRPC server: {0}")]
    Grpc(#[from] tonic::transport::Error),
    /// The HTTP server failed.
    #[error("HTTP server: {0}")]
    Http(std::io::Error),
    /// One of the server's tasks panicked or was cancelled.
    #[error("{task} task failed: {source}")]
    Task {
        /// Which task.
        task: &'static str,
        /// How.
        source: tokio::task::JoinError,
    },
    /// Reflection could not load the descriptors.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The tokens file is unusable.
    #[error(transparent)]
    Tokens(#[from] TokensFileError),
    /// TLS files are unusable.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The configuration is inconsistent.
    #[error("configuration: {0}")]
    Config(String),
    /// The Centrifugo publisher could not start.
    #[error(transparent)]
    Centrifugo(#[from] CentrifugoError),
    /// A metric could not be defined.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The coin catalog could not be loaded.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}
