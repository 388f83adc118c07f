//! The admin API's errors: an HTTP status and a JSON body
//! `{"error": "<code>", "message": "<what happened>"}`.

use crate::streaming::CommandError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::Serialize;
use tonic::{Code, Status};

/// Machine-readable error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the request body or a parameter is unusable.
    BadRequest,
    /// 401: no bearer token, or the wrong one.
    Unauthorized,
    /// 403: the operator refused the command.
    Forbidden,
    /// 404: the client is not connected, or no such route.
    NotFound,
    /// 404: the admin API is disabled on this address (no token).
    ApiDisabled,
    /// 405: the route exists, the method does not.
    MethodNotAllowed,
    /// 409: the field is managed by a CryptoClient resource.
    ManagedByResource,
    /// 409: a command with this id is already pending.
    Conflict,
    /// 413: the body is larger than the limit.
    PayloadTooLarge,
    /// 429: the client's command queue or pending-ack table is full.
    QueueFull,
    /// 503: the session ended before the ack arrived.
    SessionEnded,
    /// 503: the operator cannot take the command now.
    Unavailable,
    /// 504: no ack within the timeout.
    AckTimeout,
    /// 500: a bug.
    Internal,
}

/// The JSON body of every error.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorBody {
    /// What kind of error.
    pub error: ErrorCode,
    /// What happened, for people.
    pub message: String,
}

/// An error answer of the admin API.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    www_authenticate: Option<&'static str>,
    /// `Retry-After`, in seconds.
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, error: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                error,
                message: message.into(),
            },
            www_authenticate: None,
            retry_after: None,
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, message)
    }

    /// 401 with `WWW-Authenticate: Bearer` (RFC 6750; `invalid_token`
    /// when a token was presented).
    pub fn unauthorized(message: impl Into<String>, presented: bool) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message);
        e.www_authenticate = Some(if presented {
            r#"Bearer realm="crypto-operator", error="invalid_token""#
        } else {
            r#"Bearer realm="crypto-operator""#
        });
        e
    }

    /// 404 for a client that is not connected.
    pub fn not_connected(client_id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("client {client_id} is not connected"),
        )
    }

    /// The status of a refused operator call.
    pub fn from_status(s: &Status) -> Self {
        let (status, code) = match s.code() {
            Code::NotFound => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
            Code::InvalidArgument => (StatusCode::BAD_REQUEST, ErrorCode::BadRequest),
            Code::FailedPrecondition => (StatusCode::CONFLICT, ErrorCode::ManagedByResource),
            Code::AlreadyExists => (StatusCode::CONFLICT, ErrorCode::Conflict),
            Code::ResourceExhausted => (StatusCode::TOO_MANY_REQUESTS, ErrorCode::QueueFull),
            Code::PermissionDenied => (StatusCode::FORBIDDEN, ErrorCode::Forbidden),
            Code::DeadlineExceeded => (StatusCode::GATEWAY_TIMEOUT, ErrorCode::AckTimeout),
            Code::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal),
        };
        let mut e = Self::new(status, code, s.message());
        // A retry hint (`proto::retry`) becomes Retry-After, in seconds.
        e.retry_after = crate::proto::retry::retry_hint(s).map(|d| d.as_secs().max(1));
        e
    }

    /// The error of a command whose ack did not come.
    pub fn from_command(e: CommandError) -> Self {
        match e {
            CommandError::SessionEnded(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::SessionEnded,
                e.to_string(),
            ),
            other => Self::from_status(&Status::from(other)),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The error code.
    pub fn code(&self) -> ErrorCode {
        self.body.error
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.body)).into_response();
        if let Some(v) = self.www_authenticate {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(v));
        }
        if let Some(secs) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        } else if self.status == StatusCode::TOO_MANY_REQUESTS {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_as_documented() {
        let cases = [
            (Status::not_found("x"), 404, ErrorCode::NotFound),
            (
                Status::failed_precondition("x"),
                409,
                ErrorCode::ManagedByResource,
            ),
            (Status::resource_exhausted("x"), 429, ErrorCode::QueueFull),
            (Status::deadline_exceeded("x"), 504, ErrorCode::AckTimeout),
            (Status::invalid_argument("x"), 400, ErrorCode::BadRequest),
            (Status::unavailable("x"), 503, ErrorCode::Unavailable),
        ];
        for (s, http, code) in cases {
            let e = ApiError::from_status(&s);
            assert_eq!((e.status().as_u16(), e.code()), (http, code), "{s:?}");
        }
        let ended = ApiError::from_command(CommandError::SessionEnded(
            crate::streaming::EndReason::ClientClosed,
        ));
        assert_eq!(ended.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(ended.code(), ErrorCode::SessionEnded);
    }
}
