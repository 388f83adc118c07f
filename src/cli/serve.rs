//! `crypto-operator serve`: runs the operator until SIGTERM or SIGINT, then
//! drains sessions and exits 0.

use super::parse_duration;
use crate::controller::{ControllerConfig, LeaderConfig};
use crate::server::{self, ClusterConfig, ServerConfig};
use crate::streaming::StreamingConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Flags of `serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// gRPC listen address.
    #[arg(long, env = "CRYPTO_GRPC_ADDR", default_value = "0.0.0.0:50051")]
    pub grpc_addr: SocketAddr,
    /// HTTP listen address (metrics, health, admin API).
    #[arg(long, env = "CRYPTO_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,
    /// How often clients must heartbeat.
    #[arg(long, env = "CRYPTO_HEARTBEAT_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,
    /// Silence after which a client is Stale (default: 3 heartbeat intervals).
    #[arg(long, env = "CRYPTO_STALE_AFTER", value_parser = parse_duration)]
    pub stale_after: Option<Duration>,
    /// Silence after which a session is ended (default: 6 heartbeat intervals).
    #[arg(long, env = "CRYPTO_DEAD_AFTER", value_parser = parse_duration)]
    pub dead_after: Option<Duration>,
    /// How long a command waits for its ack.
    #[arg(long, env = "CRYPTO_ACK_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub ack_timeout: Duration,
    /// How often the server pings each client (0s: never).
    #[arg(long, env = "CRYPTO_PING_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub ping_interval: Duration,
    /// How long a new stream may take to register.
    #[arg(long, env = "CRYPTO_REGISTER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub register_timeout: Duration,
    /// Commands queued per client before RESOURCE_EXHAUSTED.
    #[arg(long, env = "CRYPTO_COMMAND_QUEUE", default_value_t = 64)]
    pub command_queue: usize,
    /// Commands awaiting an ack per client before RESOURCE_EXHAUSTED.
    #[arg(long, env = "CRYPTO_MAX_PENDING_ACKS", default_value_t = 256)]
    pub max_pending_acks: usize,
    /// Wallet balances kept per client.
    #[arg(long, env = "CRYPTO_MAX_WALLETS", default_value_t = 1024)]
    pub max_wallets: usize,
    /// Largest client message accepted, in bytes.
    #[arg(long, env = "CRYPTO_MAX_MESSAGE_BYTES", default_value_t = 65536)]
    pub max_message_bytes: usize,
    /// Events buffered per event-bus subscriber.
    #[arg(long, env = "CRYPTO_EVENT_BUFFER", default_value_t = 4096)]
    pub event_buffer: usize,
    /// How long sessions get to drain on shutdown.
    #[arg(long, env = "CRYPTO_DRAIN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub drain_grace: Duration,
    /// Coin catalog YAML (symbol, name, decimals, enabled); default: the
    /// built-in catalog.
    #[arg(long, env = "CRYPTO_COINS")]
    pub coins: Option<PathBuf>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// Cluster-mode flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// Run standalone even when a Kubernetes config is found.
    #[arg(long, env = "CRYPTO_STANDALONE")]
    pub standalone: bool,
    /// Namespaces whose CryptoClients to manage (repeat, or comma-separate
    /// in the env var); default: all namespaces.
    #[arg(long = "namespace", env = "CRYPTO_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// `status.lastHeartbeat` is written at most this often per client.
    #[arg(long, env = "CRYPTO_STATUS_HEARTBEAT_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub status_heartbeat_interval: Duration,
    /// Elect a leader through a Lease (run more than one replica).
    #[arg(long, env = "CRYPTO_LEADER_ELECT")]
    pub leader_elect: bool,
    /// Name of the Lease.
    #[arg(long, env = "CRYPTO_LEASE_NAME", default_value = "crypto-operator")]
    pub lease_name: String,
    /// Namespace of the Lease (default: the kubeconfig's namespace).
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// How long the Lease lasts without renewal.
    #[arg(long, env = "CRYPTO_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// This replica's identity in the Lease (default: $HOSTNAME plus a random suffix).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Reconciles running at once.
    #[arg(long, env = "CRYPTO_RECONCILE_CONCURRENCY", default_value_t = 16)]
    pub reconcile_concurrency: u16,
}

impl ClusterArgs {
    /// The cluster configuration, or `None` for standalone mode: when
    /// `--standalone` is given, or when no Kubernetes config exists (no
    /// KUBECONFIG, no ~/.kube/config, not in a cluster). A config that
    /// exists but cannot be loaded is an error, not a silent fallback.
    pub async fn resolve(&self) -> Result<Option<ClusterConfig>, Box<dyn std::error::Error>> {
        if self.standalone {
            return Ok(None);
        }
        let explicit = std::env::var_os("KUBECONFIG").is_some()
            || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
        let home_config = std::env::var_os("HOME")
            .map(|h| std::path::Path::new(&h).join(".kube/config").exists())
            .unwrap_or(false);
        if !explicit && !home_config {
            tracing::info!("no Kubernetes config found; running standalone");
            return Ok(None);
        }
        let config = kube::Config::infer()
            .await
            .map_err(|e| format!("Kubernetes config found but unusable ({e}); pass --standalone to run without a cluster"))?;
        let default_ns = config.default_namespace.clone();
        let client = kube::Client::try_from(config)?;
        let leader = self.leader_elect.then(|| LeaderConfig {
            namespace: self
                .lease_namespace
                .clone()
                .unwrap_or_else(|| default_ns.clone()),
            name: self.lease_name.clone(),
            identity: self.identity.clone().unwrap_or_else(|| {
                let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "crypto-operator".into());
                format!("{host}-{:08x}", fastrand::u32(..))
            }),
            lease_duration: self.lease_duration,
        });
        tracing::info!(namespaces = ?self.namespaces, leader_election = leader.is_some(), "cluster mode");
        Ok(Some(ClusterConfig {
            client,
            controller: ControllerConfig {
                namespaces: self.namespaces.clone(),
                status_heartbeat_interval: self.status_heartbeat_interval,
                leader,
                concurrency: self.reconcile_concurrency.max(1),
            },
        }))
    }
}

impl ServeArgs {
    /// The server configuration these flags describe.
    pub fn config(&self) -> Result<ServerConfig, String> {
        let stale_after = self.stale_after.unwrap_or(self.heartbeat_interval * 3);
        let dead_after = self.dead_after.unwrap_or(self.heartbeat_interval * 6);
        if self.heartbeat_interval.is_zero() {
            return Err("--heartbeat-interval must be more than 0".into());
        }
        if dead_after < stale_after {
            return Err(format!(
                "--dead-after ({dead_after:?}) must not be shorter than --stale-after ({stale_after:?})"
            ));
        }
        if self.command_queue == 0 || self.max_pending_acks == 0 {
            return Err("--command-queue and --max-pending-acks must be at least 1".into());
        }
        Ok(ServerConfig {
            grpc_addr: self.grpc_addr,
            http_addr: self.http_addr,
            drain_grace: self.drain_grace,
            coins: self.coins.clone(),
            cluster: None,
            streaming: StreamingConfig {
                heartbeat_interval: self.heartbeat_interval,
                stale_after,
                dead_after,
                ack_timeout: self.ack_timeout,
                ping_interval: self.ping_interval,
                register_timeout: self.register_timeout,
                command_queue: self.command_queue,
                max_pending_acks: self.max_pending_acks,
                max_wallets: self.max_wallets,
                event_buffer: self.event_buffer,
                max_message_bytes: self.max_message_bytes,
            },
        })
    }
}

/// Runs `serve`.
pub async fn run(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let mut config = args.config()?;
    config.cluster = args.cluster.resolve().await?;
    let running = server::start(config).await?;
    let stop = running.shutdown_token();
    let on_signal = async move {
        wait_for_signal().await;
        stop.cancel();
        // The server is now draining; its own future ends the select.
        std::future::pending::<()>().await
    };
    tokio::select! {
        r = running.wait() => r?,
        () = on_signal => {}
    }
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; only SIGINT stops the server");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
