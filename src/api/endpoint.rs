//! One table describes every admin-API route: its method, path, docs, the
//! request body type and the reply type. The router and the OpenAPI
//! document are both built from it, and the schemas come from the very
//! types the handlers take and return, so the document cannot drift.

use super::error::{ApiError, ErrorCode};
use super::{ApiState, MAX_BODY_BYTES};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{RawPathParams, RawQuery};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Builds a schema (usually a `$ref`) in a generator.
pub(crate) type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// The schema of `T`.
pub(crate) fn schema_of<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

/// One documented success response.
pub(crate) struct ResponseDoc {
    pub(crate) status: StatusCode,
    pub(crate) description: &'static str,
    pub(crate) schema: SchemaFn,
}

impl ResponseDoc {
    /// `status` with a body of type `T`.
    pub(crate) fn of<T: JsonSchema>(status: StatusCode, description: &'static str) -> Self {
        Self {
            status,
            description,
            schema: schema_of::<T>,
        }
    }
}

/// What a handler returns on success.
pub(crate) trait Reply: Serialize + Send + 'static {
    /// The status to answer with.
    fn status(&self) -> StatusCode {
        StatusCode::OK
    }
    /// Every success response this type can be, for the document.
    fn responses() -> Vec<ResponseDoc>;
}

/// What a handler takes as its body.
pub(crate) trait RequestBody: Sized + Send + 'static {
    /// The body's schema; `None`: the route takes no body.
    fn schema(g: &mut SchemaGenerator) -> Option<Schema>;
    /// Parses the body.
    fn parse(bytes: &[u8]) -> Result<Self, ApiError>;
}

/// No body (whatever is sent is ignored).
pub(crate) struct NoBody;

impl RequestBody for NoBody {
    fn schema(_: &mut SchemaGenerator) -> Option<Schema> {
        None
    }
    fn parse(_: &[u8]) -> Result<Self, ApiError> {
        Ok(Self)
    }
}

/// A JSON body of type `T`. The content type is not checked, so
/// `curl -d '{...}'` works as is.
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<T: DeserializeOwned + JsonSchema + Send + 'static> RequestBody for JsonBody<T> {
    fn schema(g: &mut SchemaGenerator) -> Option<Schema> {
        Some(g.subschema_for::<T>())
    }
    fn parse(bytes: &[u8]) -> Result<Self, ApiError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request("a JSON body is required"));
        }
        serde_json::from_slice(bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    }
}

/// The parameters of a request: its path's (`{id}`) and its query's
/// (only those the route documents; any other is refused with 400).
pub(crate) struct Params {
    path: Vec<(String, String)>,
    query: Vec<(String, String)>,
}

impl Params {
    /// The value of `{name}` (empty when the route has none).
    pub(crate) fn get(&self, name: &str) -> &str {
        self.path
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// The value of the query parameter `name`, if given (the last one
    /// when repeated).
    pub(crate) fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The query pairs of `raw`, refusing names `allowed` does not list.
fn query_pairs(
    raw: Option<&str>,
    allowed: &[(&str, &str)],
) -> Result<Vec<(String, String)>, ApiError> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    if let Some((k, _)) = pairs
        .iter()
        .find(|(k, _)| !allowed.iter().any(|(a, _)| a == k))
    {
        let names: Vec<&str> = allowed.iter().map(|(a, _)| *a).collect();
        return Err(ApiError::bad_request(if names.is_empty() {
            format!("unknown query parameter {k:?}: this route takes none")
        } else {
            format!(
                "unknown query parameter {k:?} (this route takes {})",
                names.join(", ")
            )
        }));
    }
    Ok(pairs)
}

/// A route's documentation.
pub(crate) struct Meta {
    pub(crate) method: Method,
    /// Below `/api/v1`, in axum's and OpenAPI's shared `{param}` syntax.
    pub(crate) path: &'static str,
    pub(crate) operation_id: &'static str,
    pub(crate) summary: &'static str,
    pub(crate) description: &'static str,
    /// Error statuses besides 401, with when they happen.
    pub(crate) errors: &'static [(u16, &'static str)],
    /// Query parameters the route takes, with their descriptions.
    pub(crate) query: &'static [(&'static str, &'static str)],
}

/// A route: its documentation, its body and reply schemas, its service.
pub(crate) struct Route {
    pub(crate) meta: Meta,
    pub(crate) request: fn(&mut SchemaGenerator) -> Option<Schema>,
    pub(crate) responses: fn() -> Vec<ResponseDoc>,
    pub(crate) service: MethodRouter<ApiState>,
}

/// A route served by `handler(state, path params, body)`.
pub(crate) fn route<B, R, F, Fut>(meta: Meta, handler: F) -> Route
where
    B: RequestBody,
    R: Reply,
    F: Fn(ApiState, Params, B) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<R, ApiError>> + Send + 'static,
{
    let filter = MethodFilter::try_from(meta.method.clone()).expect("a routable method");
    let allowed = meta.query;
    let service = on(
        filter,
        move |State(state): State<ApiState>,
              params: Result<RawPathParams, RawPathParamsRejection>,
              RawQuery(query): RawQuery,
              body: Body| {
            let handler = handler.clone();
            async move {
                let params = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
                let params = Params {
                    path: params
                        .iter()
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect(),
                    query: query_pairs(query.as_deref(), allowed)?,
                };
                let bytes = read_body(body).await?;
                let body = B::parse(&bytes)?;
                let reply = handler(state, params, body).await?;
                Ok::<Response, ApiError>((reply.status(), Json(reply)).into_response())
            }
        },
    );
    Route {
        meta,
        request: B::schema,
        responses: R::responses,
        service,
    }
}

/// The body, at most [`MAX_BODY_BYTES`].
async fn read_body(body: Body) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|e| {
            let too_large =
                std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |e| {
                    e.source()
                })
                .any(<dyn std::error::Error + 'static>::is::<http_body_util::LengthLimitError>);
            if too_large {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorCode::PayloadTooLarge,
                    format!("the body is larger than {MAX_BODY_BYTES} bytes"),
                )
            } else {
                ApiError::bad_request(format!("cannot read the body: {e}"))
            }
        })
}
