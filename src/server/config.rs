//! What `serve` runs with: addresses, the streaming core's limits, the
//! mode (standalone or cluster), security, the admin API and real-time
//! publishing.

use crate::api::ApiConfig;
use crate::centrifugo::CentrifugoConfig;
use crate::controller::ControllerConfig;
use crate::streaming::StreamingConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// gRPC listen address.
    pub grpc_addr: SocketAddr,
    /// HTTP listen address.
    pub http_addr: SocketAddr,
    /// Streaming core limits and intervals.
    pub streaming: StreamingConfig,
    /// How long sessions get to drain on shutdown.
    pub drain_grace: Duration,
    /// Coin catalog file (`--coins`); `None`: the built-in catalog.
    pub coins: Option<PathBuf>,
    /// Standalone, or the control plane of a cluster.
    pub mode: Mode,
    /// Client and operator authentication.
    pub security: SecurityConfig,
    /// The admin REST API (`/api/v1` on the HTTP port).
    pub api: ApiConfig,
    /// Real-time publishing; `None`: off.
    pub centrifugo: Option<CentrifugoConfig>,
    /// HTTP/2 settings of the gRPC port.
    pub http2: Http2Config,
}

/// HTTP/2 flow control on the gRPC port. The windows bound how much a peer
/// may send that the server has not read yet: per stream, and per
/// connection over all its streams. hyper's default is 1 MiB each; 256 KiB
/// measured the same ingest and command throughput (the protocol's 64 KiB
/// cost 13 % of ingest in window updates), for a quarter of the memory a
/// connection may park in the server (docs/DESIGN.md, "Memory per
/// session").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http2Config {
    /// Initial stream window, bytes (`--http2-stream-window`).
    pub stream_window: u32,
    /// Initial connection window, bytes (`--http2-connection-window`).
    pub connection_window: u32,
}

impl Http2Config {
    /// The default of both windows.
    pub const DEFAULT_WINDOW: u32 = 256 * 1024;
    /// The protocol's initial window (RFC 9113): the smallest connection
    /// window a peer may be given.
    pub const PROTOCOL_WINDOW: u32 = 65_535;
}

impl Default for Http2Config {
    fn default() -> Self {
        Self {
            stream_window: Self::DEFAULT_WINDOW,
            connection_window: Self::DEFAULT_WINDOW,
        }
    }
}

impl Default for ServerConfig {
    /// Standalone on ephemeral loopback ports with default limits.
    fn default() -> Self {
        Self {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            streaming: StreamingConfig::default(),
            drain_grace: Duration::from_secs(10),
            coins: None,
            mode: Mode::Standalone,
            security: SecurityConfig::default(),
            api: ApiConfig::default(),
            centrifugo: None,
            http2: Http2Config::default(),
        }
    }
}

/// Where desired state comes from.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one per process, built at start-up
pub enum Mode {
    /// No cluster: every client may connect; commands come from the API.
    Standalone,
    /// CryptoClient resources are the clients' desired state.
    Cluster(ClusterConfig),
}

/// Cluster mode: the Kubernetes client and the controller's settings.
#[derive(Clone)]
pub struct ClusterConfig {
    /// Client for the API server.
    pub client: kube::Client,
    /// Controller settings.
    pub controller: ControllerConfig,
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("controller", &self.controller)
            .finish_non_exhaustive()
    }
}

/// Who may connect and who may command.
#[derive(Debug, Clone)]
pub struct SecurityConfig {
    /// Refuse clients that present no valid token.
    pub require_client_auth: bool,
    /// Standalone: client id -> argon2id token hash, reloaded on change.
    pub tokens_file: Option<PathBuf>,
    /// Token required on the operator RPCs; `None`: open.
    pub operator_token: Option<String>,
    /// Cluster: how long a token Secret once read is reused.
    pub secret_cache_ttl: Duration,
    /// TLS for the gRPC port: (certificate chain, key, client CA for
    /// mutual TLS); files are re-read when they change.
    pub tls: Option<(PathBuf, PathBuf, Option<PathBuf>)>,
    /// With `tls` in cluster mode: how replicas check each other's
    /// certificates when they call each other.
    pub peer_trust: Option<crate::peer::PeerTrust>,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            require_client_auth: false,
            tokens_file: None,
            operator_token: None,
            secret_cache_ttl: Duration::from_secs(10),
            tls: None,
            peer_trust: None,
        }
    }
}
