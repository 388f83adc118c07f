//! Runs the process: the streaming core, the market, the control plane (in
//! cluster mode), the admin API and the Centrifugo publisher, behind two
//! ports — gRPC (`grpc.rs`) and HTTP (metrics, health, readiness, API) —
//! with one shutdown signal and a graceful drain (`drain.rs`).

mod config;
mod drain;
mod error;
mod grpc;

pub use crate::peer::PeerTrust;
pub use config::{ClusterConfig, Http2Config, Mode, SecurityConfig, ServerConfig};
pub use error::ServerError;

use crate::api;
use crate::auth::TokensAuth;
use crate::centrifugo::{CentrifugoMetrics, Monitor, Publisher};
use crate::controller::{
    self, ControlMetrics, ControllerConfig, ControllerHealth, Membership, ResourceIndex, SecretAuth,
};
use crate::http::{self, Readiness, ReadinessGate};
use crate::market::{Catalog, Market, MarketLimits};
use crate::metrics::Registry;
use crate::streaming::{
    AllowAll, CertificateOnly, ClientAuthenticator, ClientLabels, ClientPolicy, Interest, NoAuth,
    StreamingHandle,
};
use crate::tls::TlsFiles;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

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
    /// Every metric, as `/metrics` serves it.
    pub metrics: Registry,
    /// The Centrifugo publisher's metrics (zero when it is off).
    pub centrifugo_metrics: Arc<CentrifugoMetrics>,
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
        self.task.await.map_err(|source| ServerError::Task {
            task: "server",
            source,
        })?
    }

    /// The token that stops the server when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// Standalone, or a cluster's control plane with its resource index.
#[allow(clippy::large_enum_variant)] // one per process, built at start-up
enum Plane {
    Standalone,
    Cluster {
        client: kube::Client,
        /// Client id -> resource: the core's admission policy.
        index: Arc<ResourceIndex>,
        /// This replica and its peers.
        membership: Arc<Membership>,
        controller: ControllerConfig,
    },
}

impl Plane {
    fn new(mode: &Mode) -> Self {
        match mode {
            Mode::Standalone => Self::Standalone,
            Mode::Cluster(c) => {
                let membership = Arc::new(Membership::new(c.controller.replica.clone()));
                Self::Cluster {
                    client: c.client.clone(),
                    // Nobody is admitted before this replica has synced.
                    index: Arc::new(ResourceIndex::with_membership(false, membership.clone())),
                    membership,
                    controller: c.controller.clone(),
                }
            }
        }
    }

    /// The per-client series' labels.
    fn labels(&self) -> ClientLabels {
        match self {
            Self::Standalone => ClientLabels::Standalone,
            Self::Cluster { .. } => ClientLabels::Cluster,
        }
    }

    /// Who may connect.
    fn policy(&self) -> Arc<dyn ClientPolicy> {
        match self {
            Self::Standalone => Arc::new(AllowAll),
            Self::Cluster { index, .. } => index.clone(),
        }
    }
}

/// Binds both ports and starts serving in the background.
pub async fn start(config: ServerConfig) -> Result<Running, ServerError> {
    let catalog = match &config.coins {
        Some(path) => Catalog::load(path)?,
        None => Catalog::builtin()?,
    };
    let metrics = Registry::new();
    let plane = Plane::new(&config.mode);
    let tls = match &config.security.tls {
        Some((cert, key, ca)) => Some(Arc::new(TlsFiles::load(
            cert.clone(),
            key.clone(),
            ca.clone(),
        )?)),
        None => None,
    };
    // Ends the watchers of the tokens file and the TLS files.
    let background = CancellationToken::new();
    let auth = authenticator(&plane, &config.security, tls.as_deref(), &background)?;
    let handle = StreamingHandle::new(
        config.streaming.clone(),
        &metrics,
        plane.labels(),
        plane.policy(),
        auth,
    )?;
    // Ticks name the replica whose feed published them.
    let source = match &plane {
        Plane::Cluster { membership, .. } => membership.me().to_owned(),
        Plane::Standalone => String::new(),
    };
    let market = Market::new(catalog, MarketLimits::default(), &metrics, &source)?;
    // Registered in every mode, so dashboards find them (at zero).
    let control_metrics = Arc::new(ControlMetrics::new(&metrics)?);
    let centrifugo_metrics = Arc::new(CentrifugoMetrics::new(&metrics)?);
    let peer_metrics = crate::peer::PeerMetrics::new(&metrics)?;
    // Subscribed before the gRPC port serves, like the market.
    let publisher = match &config.centrifugo {
        Some(c) => Some(Publisher::start(
            c,
            handle.subscribe(),
            centrifugo_metrics.clone(),
        )?),
        None => None,
    };
    let grpc_listener = bind(config.grpc_addr).await?;
    let http_listener = bind(config.http_addr).await?;
    let grpc_addr = grpc_listener.local_addr().map_err(ServerError::Http)?;
    let http_addr = http_listener.local_addr().map_err(ServerError::Http)?;

    let (gates, controller_health): (Vec<ReadinessGate>, _) = match &plane {
        Plane::Standalone => (Vec::new(), None),
        Plane::Cluster { membership, .. } => {
            // Where the other replicas reach this one: the flag, else
            // $POD_IP, else the bound address, on the bound gRPC port.
            if membership.advertise().is_empty() {
                membership.set_advertise(advertise_addr(grpc_addr));
            }
            let h = Arc::new(ControllerHealth::new(membership.clone()));
            let gate = h.clone();
            (
                vec![Arc::new(move || gate.not_ready()) as ReadinessGate],
                Some(h),
            )
        }
    };
    let ready = Arc::new(Readiness::new(gates));
    let peer = match &plane {
        Plane::Cluster {
            membership,
            controller,
            ..
        } => Some(crate::peer::PeerService::new(
            membership.clone(),
            handle.clone(),
            market.fleet(),
            controller.replica.peer_token.as_deref(),
        )),
        Plane::Standalone => None,
    };
    let grpc_stop = CancellationToken::new();
    let tls_tasks = TaskTracker::new();
    let (health, grpc_server) = grpc::server(grpc::GrpcParts {
        listener: grpc_listener,
        handle: &handle,
        market: &market,
        operator_token: config.security.operator_token.clone(),
        peer,
        tls,
        tls_tasks,
        background: background.clone(),
        stop: grpc_stop.clone(),
        http2: config.http2,
    })
    .await?;
    ready.set_grpc_serving(true);

    let controller_stop = CancellationToken::new();
    let controller = match (plane, controller_health) {
        (
            Plane::Cluster {
                client,
                index,
                membership,
                controller,
            },
            Some(health),
        ) => {
            // Operator calls for clients other replicas hold go one hop
            // to them over the peer service, and prices stream from each
            // peer; both need the peer token (and, with TLS on the gRPC
            // port, the peer CA).
            let dial = peer_dial(controller.replica.peer_token.as_deref(), &config.security)?;
            if let Some(dial) = &dial {
                handle.set_remote(crate::peer::Forwarder::new(
                    index.clone(),
                    membership.clone(),
                    client.clone(),
                    dial.clone(),
                    peer_metrics,
                ));
                // Prices published on the other replicas, streamed here.
                tokio::spawn(crate::peer::link_prices(
                    membership.clone(),
                    market.fleet(),
                    dial.clone(),
                    controller_stop.clone(),
                ));
            }
            tokio::spawn(crate::peer::watch_partition(
                membership.clone(),
                handle.clone(),
                dial,
                controller_stop.clone(),
            ));
            Some(tokio::spawn(controller::run(
                controller::Wiring {
                    client,
                    handle: handle.clone(),
                    index,
                    metrics: control_metrics,
                    health,
                    membership,
                },
                controller,
                controller_stop.clone(),
            )))
        }
        _ => None,
    };
    let shutdown = CancellationToken::new();
    let http_router = http::router(metrics.clone(), ready.clone()).merge(api::router(
        handle.clone(),
        &config.api,
        http_addr,
    ));
    let http_stop = shutdown.clone();
    let http_server = async move {
        axum::serve(http_listener, http_router)
            .with_graceful_shutdown(http_stop.cancelled_owned())
            .await
            .map_err(ServerError::Http)
    };
    market.start(handle.subscribe_to(Interest::Prices));
    info!(%grpc_addr, %http_addr, "serving");
    let centrifugo = publisher.as_ref().map(Publisher::monitor);
    let task = tokio::spawn(drain::run_until_stopped(drain::Serving {
        shutdown: shutdown.clone(),
        grace: config.drain_grace,
        handle: handle.clone(),
        ready: ready.clone(),
        health,
        market,
        publisher,
        controller,
        controller_stop,
        background,
        grpc: tokio::spawn(grpc_server),
        grpc_stop,
        http: tokio::spawn(http_server),
    }));
    Ok(Running {
        grpc_addr,
        http_addr,
        handle,
        ready,
        metrics,
        centrifugo_metrics,
        centrifugo,
        shutdown,
        task,
    })
}

/// `$POD_IP` (or the bound IP, or loopback when bound to all addresses)
/// and the bound gRPC port.
fn advertise_addr(grpc: SocketAddr) -> String {
    let ip = std::env::var("POD_IP")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| {
            if grpc.ip().is_unspecified() {
                "127.0.0.1".to_owned()
            } else {
                grpc.ip().to_string()
            }
        });
    if ip.contains(':') {
        format!("[{ip}]:{}", grpc.port())
    } else {
        format!("{ip}:{}", grpc.port())
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

/// How this replica calls its peers: `None` without a peer token, or
/// with TLS on the gRPC port but no peer CA (said once, at start).
fn peer_dial(
    token: Option<&str>,
    security: &SecurityConfig,
) -> Result<Option<Arc<crate::peer::PeerDial>>, ServerError> {
    let Some(token) = token else {
        return Ok(None);
    };
    let tls = match (&security.tls, &security.peer_trust) {
        (None, _) => None,
        (Some((cert, key, _)), Some(trust)) => Some(crate::peer::PeerTls {
            trust: trust.clone(),
            cert: cert.clone(),
            key: key.clone(),
        }),
        (Some(_), None) => {
            warn!(
                "TLS is on the gRPC port but there is no --peer-ca / --peer-tls-name: \
                 replicas will not forward calls, share prices or check partitions with each other"
            );
            return Ok(None);
        }
    };
    crate::peer::PeerDial::new(token.to_owned(), tls)
        .map(|d| Some(Arc::new(d)))
        .map_err(|e| ServerError::Config(format!("peer calls: {e}")))
}

/// Who checks a registering client's credentials: the token Secrets of
/// cluster mode, the tokens file of standalone mode, client certificates
/// only, or nobody.
fn authenticator(
    plane: &Plane,
    sec: &SecurityConfig,
    tls: Option<&TlsFiles>,
    background: &CancellationToken,
) -> Result<Arc<dyn ClientAuthenticator>, ServerError> {
    if let Plane::Cluster { client, index, .. } = plane {
        return Ok(Arc::new(SecretAuth::new(
            client.clone(),
            index.clone(),
            sec.require_client_auth,
            sec.secret_cache_ttl,
        )));
    }
    Ok(match &sec.tokens_file {
        Some(path) => {
            let tokens = Arc::new(TokensAuth::load(path, sec.require_client_auth)?);
            tokio::spawn(tokens.clone().watch(background.clone()));
            tokens
        }
        None if sec.require_client_auth && tls.is_some_and(TlsFiles::mutual) => {
            Arc::new(CertificateOnly)
        }
        None if sec.require_client_auth => {
            return Err(ServerError::Config(
                "client authentication is required but there is no --tokens-file and no --tls-client-ca (standalone mode)".into(),
            ));
        }
        None => Arc::new(NoAuth),
    })
}
