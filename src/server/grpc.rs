//! The gRPC port: the streaming service, the market service, health and
//! server reflection (v1 and v1alpha), served over plain TCP or TLS until
//! told to stop.

use super::ServerError;
use crate::market::{Market, MarketService};
use crate::proto::FILE_DESCRIPTOR_SET;
use crate::proto::crypto_service_server::CryptoServiceServer;
use crate::proto::crypto_streaming_service_server::CryptoStreamingServiceServer;
use crate::streaming::{StreamingHandle, StreamingService};
use crate::tls::{TlsFiles, TlsIncoming};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::server::TcpIncoming;
use tonic_health::server::HealthReporter;

/// The gRPC server, running until its stop token fires.
pub(super) type GrpcServer =
    Pin<Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>>;

/// Marks both services not serving (shutdown has begun).
pub(super) async fn not_serving(health: &HealthReporter) {
    health
        .set_not_serving::<CryptoStreamingServiceServer<StreamingService>>()
        .await;
    health
        .set_not_serving::<CryptoServiceServer<MarketService>>()
        .await;
}

/// What the gRPC server is built from.
pub(super) struct GrpcParts<'a> {
    pub(super) listener: TcpListener,
    pub(super) handle: &'a StreamingHandle,
    pub(super) market: &'a Market,
    pub(super) operator_token: Option<String>,
    /// Cluster mode: the peer service.
    pub(super) peer: Option<crate::peer::PeerService>,
    pub(super) tls: Option<Arc<TlsFiles>>,
    /// Owns the TLS accept loop and handshakes.
    pub(super) tls_tasks: TaskTracker,
    /// Ends the TLS files' watcher.
    pub(super) background: CancellationToken,
    pub(super) stop: CancellationToken,
    pub(super) http2: super::Http2Config,
}

/// Every service on one tonic router, served on `parts.listener`.
pub(super) async fn server(
    parts: GrpcParts<'_>,
) -> Result<(HealthReporter, GrpcServer), ServerError> {
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
    let max = parts.handle.config().max_message_bytes;
    let streaming = CryptoStreamingServiceServer::new(
        StreamingService::new(parts.handle.clone()).with_operator_token(parts.operator_token),
    )
    .max_decoding_message_size(max)
    .max_encoding_message_size(max.max(1 << 20));
    let router = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .initial_stream_window_size(parts.http2.stream_window)
        .initial_connection_window_size(parts.http2.connection_window)
        .add_service(health_service)
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?)
        .add_service(streaming)
        .add_service(parts.market.service())
        .add_optional_service(parts.peer.map(crate::peer::PeerService::server));
    let stop = parts.stop.clone().cancelled_owned();
    let server: GrpcServer = match parts.tls {
        Some(files) => {
            tokio::spawn(
                files
                    .clone()
                    .watch(Duration::from_secs(2), parts.background),
            );
            let incoming =
                TlsIncoming::new(parts.listener, files, parts.tls_tasks, parts.stop.clone());
            Box::pin(router.serve_with_incoming_shutdown(incoming, stop))
        }
        // tonic applies `tcp_nodelay` only to addresses it binds itself;
        // set it on the accepted sockets here, or small writes wait for
        // delayed ACKs (~40 ms).
        None => Box::pin(router.serve_with_incoming_shutdown(
            TcpIncoming::from(parts.listener).with_nodelay(Some(true)),
            stop,
        )),
    };
    Ok((health, server))
}
