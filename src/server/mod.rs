//! Runs the process's servers: gRPC (streaming service, health, reflection)
//! and HTTP (metrics, health, readiness), with one shutdown signal and a
//! graceful drain.

use crate::api::{self, ApiConfig};
use crate::auth::{TokensAuth, TokensFileError};
use crate::centrifugo::{CentrifugoConfig, Monitor, Publisher};
use crate::controller::SecretAuth;
use crate::controller::{self, ControllerConfig, ResourceIndex};
use crate::http::{self, Readiness};
use crate::market::{Catalog, CatalogError, Market, MarketLimits, MarketService};
use crate::metrics::{ClientLabels, Metrics};
use crate::proto::FILE_DESCRIPTOR_SET;
use crate::proto::crypto_service_server::CryptoServiceServer;
use crate::proto::crypto_streaming_service_server::CryptoStreamingServiceServer;
use crate::streaming::{AllowAll, CertificateOnly, ClientAuthenticator, ClientPolicy, NoAuth};
use crate::streaming::{StreamingConfig, StreamingHandle, StreamingService};
use crate::tls::{TlsFiles, TlsIncoming};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tracing::info;

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
    /// Cluster mode (the control plane); `None`: standalone.
    pub cluster: Option<ClusterConfig>,
    /// Client and operator authentication.
    pub security: SecurityConfig,
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
            cluster: None,
            security: SecurityConfig::default(),
        }
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
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            require_client_auth: false,
            tokens_file: None,
            operator_token: None,
            secret_cache_ttl: Duration::from_secs(10),
            tls: None,
        }
    }
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
    #[error("centrifugo: {0}")]
    Centrifugo(String),
    /// A metric could not be defined.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The coin catalog could not be loaded.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// A started server: its bound addresses and handles.
pub struct Running {
    /// Where gRPC listens.
    pub grpc_addr: SocketAddr,
    /// Where HTTP listens.
    pub http_addr: SocketAddr,
    /// The streaming core.
    pub handle: StreamingHandle,
    /// Readiness as `/readyz` reports it.
    pub ready: Arc<Readiness>,
    /// The Centrifugo publisher's state, when it runs.
    pub centrifugo: Option<Monitor>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), ServerError>>,
}

impl Running {
    /// Starts the graceful shutdown and waits for it to finish.
    pub async fn stop(self) -> Result<(), ServerError> {
        self.shutdown.cancel();
        self.wait().await
    }

    /// Waits until the server has stopped (after `shutdown` fired).
    pub async fn wait(self) -> Result<(), ServerError> {
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(ServerError::Http(std::io::Error::other(e))),
        }
    }

    /// The token that stops the server when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// Binds both ports and starts serving in the background.
pub async fn start(config: ServerConfig) -> Result<Running, ServerError> {
    start_with(config, Integrations::default()).await
}

/// The admin API's settings and the Centrifugo publisher (optional parts,
/// kept out of [`ServerConfig`] so its literals stay valid).
#[derive(Debug, Clone, Default)]
pub struct Integrations {
    /// The admin REST API (`/api/v1` on the HTTP port).
    pub api: ApiConfig,
    /// Real-time publishing; `None`: off.
    pub centrifugo: Option<CentrifugoConfig>,
}

/// Like [`start`], with the admin API's token and the Centrifugo publisher.
pub async fn start_with(
    config: ServerConfig,
    integrations: Integrations,
) -> Result<Running, ServerError> {
    let catalog = match &config.coins {
        Some(path) => Catalog::load(path)?,
        None => Catalog::builtin()?,
    };
    // Ends the tokens-file watcher with the server.
    let auth_stop = CancellationToken::new();
    let (labels, policy, index): (_, Arc<dyn ClientPolicy>, _) = match &config.cluster {
        Some(_) => {
            // Nobody is admitted before this replica leads and has synced.
            let index = Arc::new(ResourceIndex::new(false));
            (ClientLabels::Cluster, index.clone(), Some(index))
        }
        None => (ClientLabels::Standalone, Arc::new(AllowAll), None),
    };
    let metrics = Arc::new(Metrics::new(labels)?);
    let sec = &config.security;
    let tls_files = match &sec.tls {
        Some((cert, key, ca)) => Some(Arc::new(TlsFiles::load(
            cert.clone(),
            key.clone(),
            ca.clone(),
        )?)),
        None => None,
    };
    // Owns the TLS accept loop and handshakes.
    let tls_tasks = tokio_util::task::TaskTracker::new();
    let auth: Arc<dyn ClientAuthenticator> = match (&config.cluster, &index) {
        (Some(cluster), Some(index)) => Arc::new(SecretAuth::new(
            cluster.client.clone(),
            index.clone(),
            sec.require_client_auth,
            sec.secret_cache_ttl,
        )),
        _ => match &sec.tokens_file {
            Some(path) => {
                let tokens = Arc::new(TokensAuth::load(path, sec.require_client_auth)?);
                tokio::spawn(tokens.clone().watch(auth_stop.clone()));
                tokens
            }
            None if sec.require_client_auth && tls_files.as_ref().is_some_and(|t| t.mutual()) => {
                Arc::new(CertificateOnly)
            }
            None if sec.require_client_auth => {
                return Err(ServerError::Config(
                    "client authentication is required but there is no --tokens-file and no --tls-client-ca (standalone mode)".into(),
                ));
            }
            None => Arc::new(NoAuth),
        },
    };
    let handle =
        StreamingHandle::with_auth(config.streaming.clone(), metrics.clone(), policy, auth);
    let market = Market::new(catalog, MarketLimits::default(), metrics.registry())?;
    // Subscribed before the gRPC port serves, like the market.
    let publisher = match &integrations.centrifugo {
        Some(c) => Some(
            Publisher::start(c, handle.subscribe(), metrics.clone())
                .map_err(ServerError::Centrifugo)?,
        ),
        None => None,
    };
    let centrifugo = publisher.as_ref().map(Publisher::monitor);
    let grpc = TcpListener::bind(config.grpc_addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.grpc_addr,
            source,
        })?;
    let http = TcpListener::bind(config.http_addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.http_addr,
            source,
        })?;
    let grpc_addr = grpc.local_addr().map_err(ServerError::Http)?;
    let http_addr = http.local_addr().map_err(ServerError::Http)?;

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<CryptoStreamingServiceServer<StreamingService>>()
        .await;
    health
        .set_serving::<CryptoServiceServer<MarketService>>()
        .await;
    // Both reflection versions: grpcurl <= 1.8, grpcui and many GUI
    // clients only speak v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;
    let max = config.streaming.max_message_bytes;
    let service = CryptoStreamingServiceServer::new(
        StreamingService::new(handle.clone()).with_operator_token(sec.operator_token.clone()),
    )
    .max_decoding_message_size(max)
    .max_encoding_message_size(max.max(1 << 20));

    let ready = Arc::new(Readiness::default());
    ready.set_grpc_serving(true);
    let controller_stop = CancellationToken::new();
    let controller = match (&config.cluster, index) {
        (Some(cluster), Some(index)) => {
            ready.set_leader(false);
            ready.set_synced(false);
            Some(tokio::spawn(controller::run(
                cluster.client.clone(),
                handle.clone(),
                index,
                cluster.controller.clone(),
                ready.clone(),
                controller_stop.clone(),
            )))
        }
        _ => None,
    };
    let shutdown = CancellationToken::new();
    let grpc_stop = CancellationToken::new();
    let http_router = http::router(metrics.clone(), ready.clone()).merge(api::router(
        handle.clone(),
        &integrations.api,
        http_addr,
    ));

    let router = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(service)
        .add_service(market.service());
    type GrpcFuture = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), tonic::transport::Error>> + Send>,
    >;
    let grpc_server: GrpcFuture = match tls_files {
        Some(files) => {
            tokio::spawn(
                files
                    .clone()
                    .watch(Duration::from_secs(2), auth_stop.clone()),
            );
            let incoming = TlsIncoming::new(grpc, files, tls_tasks.clone(), grpc_stop.clone());
            Box::pin(
                router.serve_with_incoming_shutdown(incoming, grpc_stop.clone().cancelled_owned()),
            )
        }
        // tonic applies `tcp_nodelay` only to addresses it binds itself;
        // set it on the accepted sockets here, or small writes wait for
        // delayed ACKs (~40 ms).
        None => Box::pin(router.serve_with_incoming_shutdown(
            TcpIncoming::from(grpc).with_nodelay(Some(true)),
            grpc_stop.clone().cancelled_owned(),
        )),
    };
    let http_stop = shutdown.clone();
    let http_server = async move {
        axum::serve(http, http_router)
            .with_graceful_shutdown(http_stop.cancelled_owned())
            .await
            .map_err(ServerError::Http)
    };

    market.start(handle.subscribe_to(crate::streaming::Interest::Prices));
    info!(%grpc_addr, %http_addr, "serving");
    let task = {
        let handle = handle.clone();
        let shutdown = shutdown.clone();
        let ready = ready.clone();
        let grace = config.drain_grace;
        tokio::spawn(async move {
            let mut grpc_task = tokio::spawn(grpc_server);
            let mut http_task = tokio::spawn(http_server);
            shutdown.cancelled().await;
            info!("shutting down: draining sessions");
            ready.set_grpc_serving(false);
            health
                .set_not_serving::<CryptoStreamingServiceServer<StreamingService>>()
                .await;
            health
                .set_not_serving::<CryptoServiceServer<MarketService>>()
                .await;
            handle.shutdown(grace).await;
            // Price streams end (UNAVAILABLE) before the transport stops.
            market.shutdown().await;
            // After the sessions ended, so their `disconnected` events go out.
            if let Some(p) = &publisher {
                p.shutdown().await;
            }
            controller_stop.cancel();
            auth_stop.cancel();
            if let Some(mut c) = controller
                && tokio::time::timeout(grace, &mut c).await.is_err()
            {
                tracing::warn!("controller still running after the grace period; stopping it");
                c.abort();
            }
            grpc_stop.cancel();
            let grpc_res = match tokio::time::timeout(grace, &mut grpc_task).await {
                Ok(Ok(r)) => r.map_err(ServerError::from),
                Ok(Err(e)) => Err(ServerError::Http(std::io::Error::other(e))),
                Err(_) => {
                    tracing::warn!("gRPC connections still open after the grace period; closing");
                    grpc_task.abort();
                    Ok(())
                }
            };
            let http_res = match tokio::time::timeout(grace, &mut http_task).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => Err(ServerError::Http(std::io::Error::other(e))),
                Err(_) => {
                    http_task.abort();
                    Ok(())
                }
            };
            info!("stopped");
            grpc_res.and(http_res)
        })
    };
    Ok(Running {
        grpc_addr,
        http_addr,
        handle,
        ready,
        centrifugo,
        shutdown,
        task,
    })
}
