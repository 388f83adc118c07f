//! Shutdown, in order: readiness and health turn off, every session is told
//! to disconnect and drains (up to the grace period), price streams end,
//! the publisher flushes, the controller and the background watchers stop,
//! then the gRPC and HTTP servers close. Each wait is bounded by the grace.

use super::ServerError;
use crate::centrifugo::Publisher;
use crate::http::Readiness;
use crate::market::Market;
use crate::streaming::StreamingHandle;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic_health::server::HealthReporter;
use tracing::{info, warn};

/// Everything a running server owns.
pub(super) struct Serving {
    pub(super) shutdown: CancellationToken,
    pub(super) grace: Duration,
    pub(super) handle: StreamingHandle,
    pub(super) ready: Arc<Readiness>,
    pub(super) health: HealthReporter,
    pub(super) market: Market,
    pub(super) publisher: Option<Publisher>,
    pub(super) controller: Option<JoinHandle<()>>,
    pub(super) controller_stop: CancellationToken,
    /// Ends the tokens-file and TLS-files watchers.
    pub(super) background: CancellationToken,
    pub(super) grpc: JoinHandle<Result<(), tonic::transport::Error>>,
    pub(super) grpc_stop: CancellationToken,
    pub(super) http: JoinHandle<Result<(), ServerError>>,
}

/// Waits for the shutdown signal, then drains.
pub(super) async fn run_until_stopped(s: Serving) -> Result<(), ServerError> {
    s.shutdown.cancelled().await;
    info!("shutting down: draining sessions");
    s.ready.set_grpc_serving(false);
    super::grpc::not_serving(&s.health).await;
    s.handle.shutdown(s.grace).await;
    // Price streams end (UNAVAILABLE) before the transport stops.
    s.market.shutdown().await;
    // After the sessions ended, so their `disconnected` events go out.
    if let Some(p) = &s.publisher {
        p.shutdown().await;
    }
    s.controller_stop.cancel();
    s.background.cancel();
    if let Some(mut c) = s.controller
        && tokio::time::timeout(s.grace, &mut c).await.is_err()
    {
        warn!("controller still running after the grace period; stopping it");
        c.abort();
    }
    s.grpc_stop.cancel();
    let grpc = match finish("gRPC", s.grpc, s.grace).await {
        Ok(Some(r)) => r.map_err(ServerError::from),
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    let http = finish("HTTP", s.http, s.grace)
        .await
        .and_then(|r| r.unwrap_or(Ok(())));
    info!("stopped");
    grpc.and(http)
}

/// The result of `task`, waiting at most `grace`; `None` when it was still
/// running then (its connections were still open) and was aborted.
async fn finish<T>(
    task_name: &'static str,
    mut task: JoinHandle<T>,
    grace: Duration,
) -> Result<Option<T>, ServerError> {
    match tokio::time::timeout(grace, &mut task).await {
        Ok(Ok(r)) => Ok(Some(r)),
        Ok(Err(source)) => Err(ServerError::Task {
            task: task_name,
            source,
        }),
        Err(_) => {
            warn!(
                task = task_name,
                "connections still open after the grace period; closing"
            );
            task.abort();
            Ok(None)
        }
    }
}
