//! The HTTP port: `/metrics` (Prometheus text), `/healthz` (process alive)
//! and `/readyz` (ready to take clients), always open. The server merges
//! the admin API (under `/api/v1`, bearer-token protected) into this
//! router.

use crate::metrics::Registry;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A component's say in readiness: why the process should not take
/// traffic now, or `None` (the controller's leadership and cache sync).
pub type ReadinessGate = Arc<dyn Fn() -> Option<&'static str> + Send + Sync>;

/// Whether the process should receive traffic: gRPC serving, and every
/// gate (in cluster mode, the controller's) open.
pub struct Readiness {
    grpc_serving: AtomicBool,
    gates: Vec<ReadinessGate>,
}

impl Readiness {
    /// Not serving yet; ready once gRPC serves and every gate is open.
    pub fn new(gates: Vec<ReadinessGate>) -> Self {
        Self {
            grpc_serving: AtomicBool::new(false),
            gates,
        }
    }

    /// Marks the gRPC server as serving (or not).
    pub fn set_grpc_serving(&self, serving: bool) {
        self.grpc_serving.store(serving, Ordering::SeqCst);
    }

    /// Why the process is not ready, or `None` when it is.
    pub fn not_ready(&self) -> Option<&'static str> {
        if !self.grpc_serving.load(Ordering::SeqCst) {
            return Some("gRPC server not serving");
        }
        self.gates.iter().find_map(|g| g())
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Registry,
    ready: Arc<Readiness>,
}

/// The router of the HTTP port.
pub fn router(metrics: Registry, ready: Arc<Readiness>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AppState { metrics, ready })
}

async fn metrics_text(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok"}))
}

async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    match s.ready.not_ready() {
        None => (
            StatusCode::OK,
            axum::Json(serde_json::json!({"status": "ready"})),
        ),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "not_ready", "reason": why})),
        ),
    }
}
