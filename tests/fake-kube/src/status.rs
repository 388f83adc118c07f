//! API errors and their `Status` bodies (`kind: Status`, `apiVersion: v1`).

use super::resources::ResourceType;
use serde_json::{Value, json};
use std::fmt;

/// A failed API call, as the fake answers it.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: String,
    pub message: String,
    pub details: Option<Value>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

/// The `reason` an API server gives with `code`.
pub fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}

impl ApiError {
    pub fn new(code: u16, message: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason_for(code).into(),
            message: message.into(),
            details: None,
        }
    }

    fn about(mut self, rt: &ResourceType, name: &str) -> Self {
        self.details = Some(json!({
            "name": name,
            "group": rt.gvr.group,
            "kind": rt.gvr.plural,
        }));
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }

    pub fn not_found(rt: &ResourceType, name: &str) -> Self {
        Self::new(404, format!("{} \"{name}\" not found", rt.qualified_name())).about(rt, name)
    }

    /// No such path (unknown group, version, resource or subresource).
    pub fn no_route() -> Self {
        Self::new(404, "the server could not find the requested resource")
    }

    pub fn already_exists(rt: &ResourceType, name: &str) -> Self {
        let mut e = Self::new(
            409,
            format!("{} \"{name}\" already exists", rt.qualified_name()),
        )
        .about(rt, name);
        e.reason = "AlreadyExists".into();
        e
    }

    /// Optimistic-concurrency failure (stale `resourceVersion` / uid).
    pub fn conflict(rt: &ResourceType, name: &str) -> Self {
        Self::new(
            409,
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                rt.qualified_name()
            ),
        )
        .about(rt, name)
    }

    pub fn invalid(rt: &ResourceType, name: &str, message: impl Into<String>) -> Self {
        Self::new(
            422,
            format!(
                "{} \"{name}\" is invalid: {}",
                rt.qualified_name(),
                message.into()
            ),
        )
        .about(rt, name)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "the server does not allow this method on the requested resource",
        )
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {content_type:?})"
            ),
        )
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

/// The `410 Expired` status a watch ends with.
pub fn expired(message: &str) -> Value {
    ApiError::new(410, message).to_status()
}
