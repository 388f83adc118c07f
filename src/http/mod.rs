//! The HTTP port: `/metrics` (Prometheus text), `/healthz` (process alive)
//! and `/readyz` (ready to take clients), always open. The server merges
//! the admin API (`crate::api`, under `/api/v1`, bearer-token protected)
//! into this router.

use crate::metrics::Metrics;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether the process should receive traffic: gRPC serving and, in
/// cluster mode, the controller's caches synced and the lease held.
pub struct Readiness {
    grpc_serving: AtomicBool,
    synced: AtomicBool,
    leader: AtomicBool,
}

impl Default for Readiness {
    fn default() -> Self {
        Self {
            grpc_serving: AtomicBool::new(false),
            synced: AtomicBool::new(true),
            leader: AtomicBool::new(true),
        }
    }
}

impl Readiness {
    /// Marks the gRPC server as serving (or not).
    pub fn set_grpc_serving(&self, serving: bool) {
        self.grpc_serving.store(serving, Ordering::SeqCst);
    }

    /// Marks the controller's caches as synced (or not).
    pub fn set_synced(&self, synced: bool) {
        self.synced.store(synced, Ordering::SeqCst);
    }

    /// Marks this replica as the leader (or not).
    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::SeqCst);
    }

    /// Why the process is not ready, or `None` when it is.
    pub fn not_ready(&self) -> Option<&'static str> {
        if !self.grpc_serving.load(Ordering::SeqCst) {
            Some("gRPC server not serving")
        } else if !self.leader.load(Ordering::SeqCst) {
            Some("not the leader")
        } else if !self.synced.load(Ordering::SeqCst) {
            Some("controller caches not synced")
        } else {
            None
        }
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    ready: Arc<Readiness>,
}

/// The router of the HTTP port.
pub fn router(metrics: Arc<Metrics>, ready: Arc<Readiness>) -> Router {
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
