//! `crypto-operator serve`: runs the operator until SIGTERM or SIGINT, then
//! drains sessions and exits 0.

use super::parse_duration;
use crate::controller::{ControllerConfig, ReplicaConfig};
use crate::server::{self, ClusterConfig, Http2Config, Mode, SecurityConfig, ServerConfig};
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
    /// Most sessions at once (0: no limit).
    #[arg(long, env = "CRYPTO_MAX_SESSIONS", default_value_t = 100_000)]
    pub max_sessions: usize,
    /// Sustained messages per second per client (0: no limit).
    #[arg(long, env = "CRYPTO_MAX_MESSAGES_PER_SECOND", default_value_t = 1_000)]
    pub max_messages_per_second: u32,
    /// Burst a client may send above the sustained rate before its session is ended.
    #[arg(long, env = "CRYPTO_MESSAGE_BURST", default_value_t = 2_000)]
    pub message_burst: u32,
    /// Registrations accepted per second by this replica (0: no limit);
    /// past the burst and a 250 ms wait, RESOURCE_EXHAUSTED with a retry hint.
    #[arg(
        long,
        env = "CRYPTO_MAX_REGISTRATIONS_PER_SECOND",
        default_value_t = 500
    )]
    pub max_registrations_per_second: u32,
    /// Registrations accepted at once above that rate.
    #[arg(long, env = "CRYPTO_REGISTRATION_BURST", default_value_t = 1_000)]
    pub registration_burst: u32,
    /// Longest log or error text kept; longer ones are truncated and flagged.
    #[arg(long, env = "CRYPTO_MAX_TEXT_BYTES", default_value_t = 4096)]
    pub max_text_bytes: usize,
    /// Ask sessions older than this (plus up to 10 % jitter) to reconnect (0s: never).
    #[arg(long, env = "CRYPTO_MAX_SESSION_AGE", default_value = "0s", value_parser = parse_duration)]
    pub max_session_age: Duration,
    /// Time an aged-out session gets to finish pending commands.
    #[arg(long, env = "CRYPTO_SESSION_AGE_GRACE", default_value = "30s", value_parser = parse_duration)]
    pub session_age_grace: Duration,
    /// How long sessions get to drain on shutdown.
    #[arg(long, env = "CRYPTO_DRAIN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub drain_grace: Duration,
    /// Coin catalog YAML (symbol, name, decimals, enabled); default: the
    /// built-in catalog.
    #[arg(long, env = "CRYPTO_COINS")]
    pub coins: Option<PathBuf>,
    /// HTTP/2 stream window of the gRPC port, bytes: how much a client may
    /// send on one stream before the server reads it.
    #[arg(long, env = "CRYPTO_HTTP2_STREAM_WINDOW", default_value_t = Http2Config::DEFAULT_WINDOW)]
    pub http2_stream_window: u32,
    /// HTTP/2 connection window of the gRPC port, bytes (over all of a
    /// connection's streams; at least the stream window).
    #[arg(long, env = "CRYPTO_HTTP2_CONNECTION_WINDOW", default_value_t = Http2Config::DEFAULT_WINDOW)]
    pub http2_connection_window: u32,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub security: SecurityArgs,
    #[command(flatten)]
    pub admin: AdminApiArgs,
    #[command(flatten)]
    pub centrifugo: CentrifugoArgs,
}

/// Authentication flags.
#[derive(Debug, Clone, clap::Args)]
pub struct SecurityArgs {
    /// Refuse clients without a valid token (default: on in cluster mode,
    /// off standalone).
    #[arg(long, env = "CRYPTO_REQUIRE_CLIENT_AUTH", num_args = 0..=1, default_missing_value = "true")]
    pub require_client_auth: Option<bool>,
    /// Standalone: YAML of client id -> argon2id token hash (make hashes
    /// with `crypto-operator hash-token`); re-read when it changes.
    #[arg(long, env = "CRYPTO_TOKENS_FILE")]
    pub tokens_file: Option<PathBuf>,
    /// Token required on SendCommandToClient, ExecuteCommandSync,
    /// ListClients and GetClient (prefer --operator-token-file).
    #[arg(long, env = "CRYPTO_OPERATOR_TOKEN", hide_env_values = true)]
    pub operator_token: Option<String>,
    /// File holding the operator token.
    #[arg(
        long,
        env = "CRYPTO_OPERATOR_TOKEN_FILE",
        conflicts_with = "operator_token"
    )]
    pub operator_token_file: Option<PathBuf>,
    /// Cluster mode: how long a token Secret once read is reused.
    #[arg(long, env = "CRYPTO_SECRET_CACHE_TTL", default_value = "10s", value_parser = parse_duration)]
    pub secret_cache_ttl: Duration,
    /// PEM certificate chain for TLS on the gRPC port (re-read on change).
    #[arg(long, env = "CRYPTO_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "CRYPTO_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle: clients must present a certificate it signed (mutual
    /// TLS); a certificate whose DNS SAN is the client id authenticates it.
    #[arg(long, env = "CRYPTO_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Cluster mode with --tls-cert: PEM CA bundle that signed the
    /// replicas' certificates; replicas calling each other (forwarded
    /// calls, price links, partition checks) verify the peer against it.
    #[arg(
        long,
        env = "CRYPTO_PEER_CA",
        requires = "tls_cert",
        requires = "peer_tls_name"
    )]
    pub peer_ca: Option<PathBuf>,
    /// The DNS name every replica's certificate carries, checked on peer
    /// calls (peers are dialled by IP), e.g. crypto-operator.NS.svc.
    #[arg(long, env = "CRYPTO_PEER_TLS_NAME", requires = "peer_ca")]
    pub peer_tls_name: Option<String>,
}

impl SecurityArgs {
    /// The security configuration; `cluster` picks the default of
    /// `--require-client-auth`.
    pub fn config(&self, cluster: bool) -> Result<SecurityConfig, String> {
        let operator_token = crate::secret::resolve(
            self.operator_token.as_deref(),
            self.operator_token_file.as_deref(),
            crate::secret::SecretNames {
                what: "the operator token",
                value: "--operator-token (CRYPTO_OPERATOR_TOKEN)",
                file: "--operator-token-file (CRYPTO_OPERATOR_TOKEN_FILE)",
            },
        )
        .map_err(|e| e.to_string())?;
        Ok(SecurityConfig {
            require_client_auth: self.require_client_auth.unwrap_or(cluster),
            tokens_file: self.tokens_file.clone(),
            operator_token,
            secret_cache_ttl: self.secret_cache_ttl,
            tls: match (&self.tls_cert, &self.tls_key) {
                (Some(c), Some(k)) => Some((c.clone(), k.clone(), self.tls_client_ca.clone())),
                _ => None,
            },
            peer_trust: match (&self.peer_ca, &self.peer_tls_name) {
                (Some(ca), Some(name)) => Some(crate::server::PeerTrust {
                    ca: ca.clone(),
                    server_name: name.clone(),
                }),
                _ => None,
            },
        })
    }
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
    /// This replica's id: its Lease, `status.holder`, the User-Agent of its
    /// API requests (default: $POD_NAME, else the hostname).
    #[arg(long, env = "CRYPTO_REPLICA_ID")]
    pub replica_id: Option<String>,
    /// Where the other replicas reach this one, HOST:PORT (default:
    /// $POD_IP and the gRPC port).
    #[arg(long, env = "CRYPTO_ADVERTISE_ADDR")]
    pub advertise_addr: Option<String>,
    /// Prefix of the Leases: `<prefix>-replica-<id>` per replica and
    /// `<prefix>-janitor`.
    #[arg(long, env = "CRYPTO_LEASE_PREFIX", default_value = "crypto-operator")]
    pub lease_prefix: String,
    /// Namespace of the Leases (default: the kubeconfig's namespace).
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// How long a Lease lasts without renewal (renewed every third of it).
    #[arg(long, env = "CRYPTO_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// A client claimed by another live replica less than this ago is
    /// refused (UNAVAILABLE) rather than moved: how fast a client may flap
    /// between replicas.
    #[arg(long, env = "CRYPTO_MIN_HOLD", default_value = "5s", value_parser = parse_duration)]
    pub min_hold: Duration,
    /// How long a dead replica's resources keep their status before the
    /// janitor marks them Disconnected.
    #[arg(long, env = "CRYPTO_HOLDER_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub holder_grace: Duration,
    /// Status writes per second for the whole fleet, shared by the live
    /// replicas (heartbeat refreshes are shed first).
    #[arg(long, env = "CRYPTO_API_WRITE_QPS", default_value_t = crate::controller::DEFAULT_WRITE_QPS)]
    pub api_write_qps: f64,
    /// Burst of status writes for the whole fleet.
    #[arg(long, env = "CRYPTO_API_WRITE_BURST", default_value_t = crate::controller::DEFAULT_WRITE_BURST)]
    pub api_write_burst: u32,
    /// The token replicas present to each other (prefer
    /// --peer-token-file); without one a replica cannot ask its peers
    /// whether they reach the API.
    #[arg(long, env = "CRYPTO_PEER_TOKEN", hide_env_values = true)]
    pub peer_token: Option<String>,
    /// File holding the peer token.
    #[arg(long, env = "CRYPTO_PEER_TOKEN_FILE")]
    pub peer_token_file: Option<PathBuf>,
    /// Reconciles running at once.
    #[arg(long, env = "CRYPTO_RECONCILE_CONCURRENCY", default_value_t = 16)]
    pub reconcile_concurrency: u16,
    /// A replica holding more than 1.2 × the mean of the live replicas'
    /// sessions moves its oldest ones, down to the mean, at most this
    /// percent of its sessions per minute (0: never).
    #[arg(long, env = "CRYPTO_REBALANCE_RATE", default_value_t = crate::controller::DEFAULT_REBALANCE_RATE, value_parser = parse_rate)]
    pub rebalance_rate: f64,
}

impl ClusterArgs {
    /// The cluster configuration, or `None` for standalone mode: when
    /// `--standalone` is given, or when no Kubernetes config exists (no
    /// KUBECONFIG, no ~/.kube/config, not in a cluster). A config that
    /// exists but cannot be loaded is an error, not a silent fallback.
    pub async fn resolve(&self) -> Result<Mode, Box<dyn std::error::Error>> {
        if self.standalone {
            return Ok(Mode::Standalone);
        }
        let explicit = std::env::var_os("KUBECONFIG").is_some()
            || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
        let home_config = std::env::var_os("HOME")
            .is_some_and(|h| std::path::Path::new(&h).join(".kube/config").exists());
        if !explicit && !home_config {
            tracing::info!("no Kubernetes config found; running standalone");
            return Ok(Mode::Standalone);
        }
        let mut config = kube::Config::infer()
            .await
            .map_err(|e| format!("Kubernetes config found but unusable ({e}); pass --standalone to run without a cluster"))?;
        let id = replica_id(self.replica_id.as_deref())?;
        // The API server's audit log shows which replica wrote what.
        let agent = format!("crypto-operator/{} ({id})", env!("CARGO_PKG_VERSION"));
        config.headers.push((
            axum::http::header::USER_AGENT,
            axum::http::HeaderValue::from_str(&agent)
                .map_err(|_| format!("--replica-id {id:?} cannot go in a User-Agent"))?,
        ));
        let default_ns = config.default_namespace.clone();
        let client = kube::Client::try_from(config)?;
        let peer_token = crate::secret::resolve(
            self.peer_token.as_deref(),
            self.peer_token_file.as_deref(),
            crate::secret::SecretNames {
                what: "the peer token",
                value: "--peer-token (CRYPTO_PEER_TOKEN)",
                file: "--peer-token-file (CRYPTO_PEER_TOKEN_FILE)",
            },
        )?;
        tracing::info!(namespaces = ?self.namespaces, replica = %id, "cluster mode");
        Ok(Mode::Cluster(ClusterConfig {
            client,
            controller: ControllerConfig {
                namespaces: self.namespaces.clone(),
                status_heartbeat_interval: self.status_heartbeat_interval,
                concurrency: self.reconcile_concurrency.max(1),
                api_timeout: crate::controller::DEFAULT_API_TIMEOUT,
                replica: ReplicaConfig {
                    id,
                    advertise: self.advertise_addr.clone(),
                    lease_namespace: self.lease_namespace.clone().unwrap_or(default_ns),
                    lease_prefix: self.lease_prefix.clone(),
                    lease_duration: self.lease_duration,
                    min_hold: self.min_hold,
                    holder_grace: self.holder_grace,
                    peer_token,
                },
                write_qps: self.api_write_qps,
                write_burst: self.api_write_burst,
                rebalance_rate: self.rebalance_rate,
            },
        }))
    }
}

/// The replica id: the flag, else $POD_NAME, else the hostname; a DNS
/// label (it names a Lease).
fn replica_id(flag: Option<&str>) -> Result<String, String> {
    let id = flag
        .map(str::to_owned)
        .or_else(|| std::env::var("POD_NAME").ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .ok_or("no replica id: pass --replica-id (or set POD_NAME)")?;
    let ok = id.len() <= 63
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !id.starts_with('-')
        && !id.ends_with('-');
    if !ok {
        return Err(format!(
            "--replica-id {id:?}: 1-63 characters of [a-z0-9.-], not starting or ending with '-'"
        ));
    }
    Ok(id)
}

impl ServeArgs {
    /// The HTTP/2 windows, checked against the protocol's limits.
    fn http2(&self) -> Result<Http2Config, String> {
        const MAX: u32 = (1 << 31) - 1;
        let (stream, conn) = (self.http2_stream_window, self.http2_connection_window);
        if !(1024..=MAX).contains(&stream) {
            return Err(format!(
                "--http2-stream-window {stream}: between 1024 and {MAX} bytes"
            ));
        }
        if !(Http2Config::PROTOCOL_WINDOW..=MAX).contains(&conn) || conn < stream {
            return Err(format!(
                "--http2-connection-window {conn}: between {} and {MAX} bytes, and not below --http2-stream-window ({stream})",
                Http2Config::PROTOCOL_WINDOW
            ));
        }
        Ok(Http2Config {
            stream_window: stream,
            connection_window: conn,
        })
    }

    /// The server configuration these flags describe, in `mode`.
    pub fn config(&self, mode: Mode) -> Result<ServerConfig, String> {
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
            http2: self.http2()?,
            grpc_addr: self.grpc_addr,
            http_addr: self.http_addr,
            drain_grace: self.drain_grace,
            coins: self.coins.clone(),
            security: self.security.config(matches!(mode, Mode::Cluster(_)))?,
            api: self.admin.config()?,
            centrifugo: self.centrifugo.config()?,
            mode,
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
                max_sessions: self.max_sessions,
                max_messages_per_second: self.max_messages_per_second,
                message_burst: self.message_burst,
                max_text_bytes: self.max_text_bytes,
                max_session_age: self.max_session_age,
                session_age_grace: self.session_age_grace,
                max_registrations_per_second: self.max_registrations_per_second,
                registration_burst: self.registration_burst,
            },
        })
    }
}

/// Runs `serve`.
pub async fn run(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let mode = args.cluster.resolve().await?;
    let running = server::start(args.config(mode)?).await?;
    let stop = running.shutdown_token();
    let on_signal = async move {
        wait_for_signal().await;
        stop.cancel();
        // The server is now draining; its own future ends the select.
        std::future::pending::<()>().await;
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

/// Admin API flags.
#[derive(Debug, Clone, clap::Args)]
pub struct AdminApiArgs {
    /// Bearer token of the admin API (`/api/v1` on the HTTP port; prefer
    /// --admin-token-file). Without a token the API is served only on a
    /// loopback --http-addr.
    #[arg(long, env = "CRYPTO_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// File holding the admin API's bearer token (surrounding whitespace
    /// ignored).
    #[arg(long, env = "CRYPTO_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
}

impl AdminApiArgs {
    /// The admin API's settings.
    pub fn config(&self) -> Result<crate::api::ApiConfig, String> {
        Ok(crate::api::ApiConfig {
            token: crate::api::AdminToken::resolve(
                self.admin_token.as_deref(),
                self.admin_token_file.as_deref(),
            )
            .map_err(|e| e.to_string())?,
        })
    }
}

/// Centrifugo publisher flags.
#[derive(Debug, Clone, clap::Args)]
pub struct CentrifugoArgs {
    /// Publish client events to the Centrifugo whose HTTP API is at this
    /// URL, e.g. http://centrifugo:8000 (default: off).
    #[arg(long, env = "CRYPTO_CENTRIFUGO_URL")]
    pub centrifugo_url: Option<String>,
    /// Centrifugo's HTTP API key, sent as X-API-Key (prefer
    /// --centrifugo-api-key-file).
    #[arg(long, env = "CRYPTO_CENTRIFUGO_API_KEY", hide_env_values = true)]
    pub centrifugo_api_key: Option<String>,
    /// File holding Centrifugo's HTTP API key.
    #[arg(long, env = "CRYPTO_CENTRIFUGO_API_KEY_FILE")]
    pub centrifugo_api_key_file: Option<PathBuf>,
    /// Channel prefix (a Centrifugo namespace): `<prefix>:clients` and
    /// `<prefix>:client.<client_id>`.
    #[arg(
        long,
        env = "CRYPTO_CENTRIFUGO_CHANNEL_PREFIX",
        default_value = "crypto"
    )]
    pub centrifugo_channel_prefix: String,
    /// Publications buffered while Centrifugo is slow or down; beyond
    /// that the oldest are dropped (and counted).
    #[arg(long, env = "CRYPTO_CENTRIFUGO_BUFFER", default_value_t = 10_000)]
    pub centrifugo_buffer: usize,
    /// Most publications per request (more than one: /api/batch).
    #[arg(long, env = "CRYPTO_CENTRIFUGO_BATCH_SIZE", default_value_t = 100)]
    pub centrifugo_batch_size: usize,
    /// How long a partly filled batch waits for more publications.
    #[arg(long, env = "CRYPTO_CENTRIFUGO_LINGER", default_value = "20ms", value_parser = parse_duration)]
    pub centrifugo_linger: Duration,
    /// Timeout of one request to Centrifugo.
    #[arg(long, env = "CRYPTO_CENTRIFUGO_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub centrifugo_timeout: Duration,
    /// Retries of a failed request (timeouts, transport errors, 5xx, 429).
    #[arg(long, env = "CRYPTO_CENTRIFUGO_RETRIES", default_value_t = 2)]
    pub centrifugo_retries: u32,
    /// First retry delay; doubles per retry (at most 10s, ±25 % jitter).
    #[arg(long, env = "CRYPTO_CENTRIFUGO_RETRY_BACKOFF", default_value = "200ms", value_parser = parse_duration)]
    pub centrifugo_retry_backoff: Duration,
    /// Consecutive failed requests that open the circuit breaker.
    #[arg(long, env = "CRYPTO_CENTRIFUGO_BREAKER_THRESHOLD", default_value_t = 5)]
    pub centrifugo_breaker_threshold: u32,
    /// How long the open breaker waits before letting one probe through.
    #[arg(long, env = "CRYPTO_CENTRIFUGO_BREAKER_OPEN", default_value = "10s", value_parser = parse_duration)]
    pub centrifugo_breaker_open: Duration,
    /// How long shutdown may spend sending what is buffered.
    #[arg(long, env = "CRYPTO_CENTRIFUGO_FLUSH_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub centrifugo_flush_timeout: Duration,
}

impl CentrifugoArgs {
    /// The publisher's settings, or `None` without --centrifugo-url.
    pub fn config(&self) -> Result<Option<crate::centrifugo::CentrifugoConfig>, String> {
        let Some(url) = &self.centrifugo_url else {
            return Ok(None);
        };
        let api_key = crate::secret::resolve(
            self.centrifugo_api_key.as_deref(),
            self.centrifugo_api_key_file.as_deref(),
            crate::secret::SecretNames {
                what: "the Centrifugo API key",
                value: "--centrifugo-api-key (CRYPTO_CENTRIFUGO_API_KEY)",
                file: "--centrifugo-api-key-file (CRYPTO_CENTRIFUGO_API_KEY_FILE)",
            },
        )
        .map_err(|e| e.to_string())?;
        let config = crate::centrifugo::CentrifugoConfig {
            url: url.clone(),
            api_key,
            channel_prefix: self.centrifugo_channel_prefix.clone(),
            buffer: self.centrifugo_buffer,
            batch_size: self.centrifugo_batch_size,
            linger: self.centrifugo_linger,
            request_timeout: self.centrifugo_timeout,
            retries: self.centrifugo_retries,
            retry_backoff: self.centrifugo_retry_backoff,
            breaker_threshold: self.centrifugo_breaker_threshold,
            breaker_open: self.centrifugo_breaker_open,
            flush_timeout: self.centrifugo_flush_timeout,
        };
        config.validate().map_err(|e| e.to_string())?;
        Ok(Some(config))
    }
}

/// A percentage per minute: a finite number from 0 to 100.
fn parse_rate(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{s:?} is not a number (percent per minute, for example 1)"))?;
    if !(0.0..=100.0).contains(&v) {
        return Err(format!("{s}: must be from 0 to 100 (percent per minute)"));
    }
    Ok(v)
}
