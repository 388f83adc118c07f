//! The admin REST API on the HTTP port, under `/api/v1`: list and read
//! client sessions, send commands (optionally waiting for the ack), and
//! the OpenAPI document of it all. It reaches clients only through the
//! streaming core's handle; commands go through
//! [`StreamingHandle::send_checked`], so cluster mode's policy applies.
//!
//! Access: with a bearer token configured, every `/api/v1` request must
//! carry it (else 401, and nothing is sent). Without one, the API is only
//! mounted on a loopback address; on any other address it is disabled
//! (answering 404 `api_disabled` with how to enable it) while `/metrics`,
//! `/healthz` and `/readyz` keep working.

mod auth;
mod endpoint;
mod error;
mod handlers;
mod openapi;

mod types;

pub use auth::{AdminToken, AdminTokenError};
pub use error::{ApiError, ErrorBody, ErrorCode};
pub use types::{
    CommandAccepted, CommandDone, CommandReply, CommandRequest, CommandType, MAX_TIMEOUT_MS,
};

use crate::streaming::StreamingHandle;
use axum::Router;
use axum::http::StatusCode;
use std::net::SocketAddr;
use std::sync::Arc;

/// Where the API is mounted.
pub const PREFIX: &str = "/api/v1";

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The admin API's settings.
#[derive(Debug, Clone, Default)]
pub struct ApiConfig {
    /// The bearer token; `None`: only served on a loopback address.
    pub token: Option<AdminToken>,
}

/// How the API is served on an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiMode {
    /// Every request needs the bearer token.
    Protected,
    /// No token configured and a loopback address: open (local
    /// development).
    OpenOnLoopback,
    /// No token configured and a reachable address: not mounted.
    Disabled,
}

impl ApiConfig {
    /// How the API is served on `http_addr`.
    pub fn mode(&self, http_addr: SocketAddr) -> ApiMode {
        match (&self.token, http_addr.ip().is_loopback()) {
            (Some(_), _) => ApiMode::Protected,
            (None, true) => ApiMode::OpenOnLoopback,
            (None, false) => ApiMode::Disabled,
        }
    }
}

/// State of every handler.
#[derive(Clone)]
pub(crate) struct ApiState {
    handle: StreamingHandle,
    document: Arc<serde_json::Value>,
}

/// The OpenAPI document of the admin API.
pub fn openapi_document() -> serde_json::Value {
    openapi::document(&handlers::routes())
}

/// The router for the HTTP port: the API under [`PREFIX`], served as
/// [`ApiConfig::mode`] decides for `http_addr` (logged).
pub fn router(handle: StreamingHandle, config: &ApiConfig, http_addr: SocketAddr) -> Router {
    let mode = config.mode(http_addr);
    let api = match (mode, &config.token) {
        (ApiMode::Disabled, _) => {
            tracing::warn!(
                %http_addr,
                "admin API disabled: no admin token and the HTTP address is not loopback; set --admin-token, --admin-token-file or CRYPTO_ADMIN_TOKEN(_FILE) to enable it"
            );
            return Router::new().nest(PREFIX, Router::new().fallback(disabled));
        }
        (ApiMode::OpenOnLoopback, _) => {
            tracing::warn!(%http_addr, "admin API open without a token (loopback address only)");
            api_router(handle)
        }
        (ApiMode::Protected, Some(token)) => {
            tracing::info!(%http_addr, "admin API on {PREFIX} (bearer token)");
            api_router(handle).layer(axum::middleware::from_fn_with_state(
                token.clone(),
                auth::require_token,
            ))
        }
        (ApiMode::Protected, None) => unreachable!("protected without a token"),
    };
    Router::new().nest(PREFIX, api)
}

/// The routes, fallbacks included (the auth layer goes on top).
fn api_router(handle: StreamingHandle) -> Router {
    let routes = handlers::routes();
    let document = Arc::new(openapi::document(&routes));
    let router = routes
        .into_iter()
        .fold(Router::new(), |r, route| {
            r.route(route.meta.path, route.service)
        })
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    router.with_state(ApiState { handle, document })
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        format!("no route {uri}; see {PREFIX}/openapi.json"),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        format!("{method} is not allowed on {uri}; see {PREFIX}/openapi.json"),
    )
}

async fn disabled() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::ApiDisabled,
        "the admin API is disabled: no admin token is configured and the HTTP address is not \
         loopback; start serve with --admin-token-file (CRYPTO_ADMIN_TOKEN_FILE) or \
         --admin-token (CRYPTO_ADMIN_TOKEN)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_is_open_only_on_loopback_without_a_token() {
        let none = ApiConfig::default();
        let some = ApiConfig {
            token: Some(AdminToken::new("t0ken-t0ken-t0ken").unwrap()),
        };
        let lo: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let lo6: SocketAddr = "[::1]:8080".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(none.mode(lo), ApiMode::OpenOnLoopback);
        assert_eq!(none.mode(lo6), ApiMode::OpenOnLoopback);
        assert_eq!(none.mode(any), ApiMode::Disabled);
        assert_eq!(some.mode(any), ApiMode::Protected);
        assert_eq!(some.mode(lo), ApiMode::Protected);
    }
}
