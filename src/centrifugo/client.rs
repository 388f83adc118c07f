//! Centrifugo's HTTP server API (v5/v6): `POST {url}/api/publish` with
//! `{"channel", "data"}` for one publication, `POST {url}/api/batch` with
//! `{"commands": [{"publish": {...}}, ...]}` for several, `X-API-Key`
//! header. Per-publication errors come back in the 200 body
//! (`{"error": {"code", "message"}}`, or per reply in `replies`).
//! HTTP/1.1 with keep-alive over hyper; `https://` URLs use rustls with
//! the system's root certificates.

use super::CentrifugoError;
use super::payload::Publication;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::time::Duration;

/// Largest response body read.
const MAX_REPLY_BYTES: usize = 1 << 20;

/// Why a request failed as a whole.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("transport: {0}")]
    Transport(String),
    #[error("HTTP {0}: {1}")]
    Http(StatusCode, String),
}

impl SendError {
    /// Worth retrying: timeouts, transport errors, 5xx, 408 and 429.
    pub(crate) fn retriable(&self) -> bool {
        match self {
            Self::Timeout(_) | Self::Transport(_) => true,
            Self::Http(s, _) => {
                s.is_server_error()
                    || *s == StatusCode::TOO_MANY_REQUESTS
                    || *s == StatusCode::REQUEST_TIMEOUT
            }
        }
    }
}

/// Centrifugo's error for one publication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ItemError {
    pub(crate) code: i64,
    pub(crate) message: String,
}

/// The HTTP API client.
pub(crate) struct Api {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    publish: Uri,
    batch: Uri,
    key: Option<HeaderValue>,
    timeout: Duration,
}

impl Api {
    /// A client for the Centrifugo at `url` (`http://` or `https://`, an
    /// optional base path, no query).
    pub(crate) fn new(
        url: &str,
        key: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, CentrifugoError> {
        let (publish, batch, https) = endpoints(url)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = if https {
            HttpsConnectorBuilder::new()
                .with_provider_and_native_roots(provider)
                .map_err(|source| CentrifugoError::Roots {
                    url: url.to_owned(),
                    source,
                })?
        } else {
            let tls = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            HttpsConnectorBuilder::new().with_tls_config(tls)
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeout));
        let connector = builder.https_or_http().enable_http1().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(2)
            .build(connector);
        let key = key
            .map(|k| {
                let mut v = HeaderValue::from_str(k).map_err(|_| CentrifugoError::BadKey)?;
                v.set_sensitive(true);
                Ok::<_, CentrifugoError>(v)
            })
            .transpose()?;
        Ok(Self {
            client,
            publish,
            batch,
            key,
            timeout,
        })
    }

    /// Sends `batch` (one request, bounded by the request timeout);
    /// returns each publication's error, if any, in order.
    pub(crate) async fn send(
        &self,
        batch: &[Publication],
    ) -> Result<Vec<Option<ItemError>>, SendError> {
        let single = batch.len() == 1;
        let (uri, body) = if single {
            (self.publish.clone(), publish_body(&batch[0]))
        } else {
            (self.batch.clone(), batch_body(batch))
        };
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(CONTENT_TYPE, "application/json");
        if let Some(k) = &self.key {
            req = req.header("x-api-key", k.clone());
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| SendError::Transport(e.to_string()))?;
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| SendError::Transport(error_chain(&e)))?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_REPLY_BYTES)
                .collect()
                .await
                .map_err(|e| SendError::Transport(e.to_string()))?
                .to_bytes();
            Ok::<_, SendError>((status, body))
        };
        let (status, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| SendError::Timeout(self.timeout))??;
        if status != StatusCode::OK {
            let text = String::from_utf8_lossy(&body);
            let text: String = text.chars().take(200).collect();
            return Err(SendError::Http(status, text));
        }
        Ok(item_errors(&body, batch.len(), single))
    }
}

/// `(publish URI, batch URI, https?)` of a base URL.
fn endpoints(url: &str) -> Result<(Uri, Uri, bool), CentrifugoError> {
    let bad = |why: &str| CentrifugoError::Url {
        url: url.to_owned(),
        why: why.to_owned(),
    };
    let base: Uri = url.parse().map_err(|e| bad(&format!("{e}")))?;
    let https = match base.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(bad("must start with http:// or https://")),
    };
    let authority = base.authority().ok_or_else(|| bad("has no host"))?.clone();
    if base.query().is_some() {
        return Err(bad("must not have a query"));
    }
    let path = base.path().trim_end_matches('/');
    let make = |api: &str| {
        Uri::builder()
            .scheme(if https { "https" } else { "http" })
            .authority(authority.clone())
            .path_and_query(format!("{path}/api/{api}"))
            .build()
            .map_err(|e| bad(&e.to_string()))
    };
    Ok((make("publish")?, make("batch")?, https))
}

/// `e` and its sources, joined.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// Appends `{"channel":...,"data":...}` (data is already JSON).
fn push_publish(out: &mut String, p: &Publication) {
    out.push_str("{\"channel\":");
    out.push_str(&serde_json::Value::from(&*p.channel).to_string());
    out.push_str(",\"data\":");
    out.push_str(&p.data);
    out.push('}');
}

fn publish_body(p: &Publication) -> String {
    let mut out = String::with_capacity(p.data.len() + p.channel.len() + 32);
    push_publish(&mut out, p);
    out
}

fn batch_body(batch: &[Publication]) -> String {
    let size: usize = batch
        .iter()
        .map(|p| p.data.len() + p.channel.len() + 48)
        .sum();
    let mut out = String::with_capacity(size + 16);
    out.push_str("{\"commands\":[");
    for (i, p) in batch.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"publish\":");
        push_publish(&mut out, p);
        out.push('}');
    }
    out.push_str("]}");
    out
}

fn error_of(v: &serde_json::Value) -> Option<ItemError> {
    let e = v.get("error")?;
    Some(ItemError {
        code: e
            .get("code")
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(0),
        message: e
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or("")
            .to_owned(),
    })
}

/// Per-publication errors of a 200 answer. A body that cannot be read as
/// Centrifugo's shape is taken as success (the server said 200).
fn item_errors(body: &[u8], n: usize, single: bool) -> Vec<Option<ItemError>> {
    let mut out = vec![None; n];
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return out;
    };
    if let Some(e) = error_of(&v) {
        // The request as a whole was refused.
        return vec![Some(e); n];
    }
    if !single && let Some(replies) = v.get("replies").and_then(|r| r.as_array()) {
        for (slot, reply) in out.iter_mut().zip(replies) {
            *slot = error_of(reply);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(channel: &str, data: &str) -> Publication {
        Publication {
            channel: Arc::from(channel),
            data: Arc::from(data),
        }
    }

    #[test]
    fn builds_publish_and_batch_bodies() {
        let one = publish_body(&p("crypto:client.a\"b", r#"{"type":"x"}"#));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&one).unwrap(),
            serde_json::json!({"channel": "crypto:client.a\"b", "data": {"type": "x"}})
        );
        let many = batch_body(&[p("a", "{}"), p("b", "[1]")]);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&many).unwrap(),
            serde_json::json!({"commands": [
                {"publish": {"channel": "a", "data": {}}},
                {"publish": {"channel": "b", "data": [1]}}
            ]})
        );
    }

    #[test]
    fn reads_per_item_errors() {
        let body =
            br#"{"replies":[{"publish":{}},{"error":{"code":102,"message":"unknown channel"}}]}"#;
        let errs = item_errors(body, 2, false);
        assert_eq!(errs[0], None);
        assert_eq!(errs[1].as_ref().map(|e| e.code), Some(102));
        let whole = item_errors(
            br#"{"error":{"code":107,"message":"bad request"}}"#,
            3,
            false,
        );
        assert!(
            whole
                .iter()
                .all(|e| e.as_ref().is_some_and(|e| e.code == 107))
        );
        assert_eq!(item_errors(br#"{"result":{}}"#, 1, true), vec![None]);
        assert_eq!(item_errors(b"not json", 2, false), vec![None, None]);
    }

    #[test]
    fn derives_endpoints_from_the_base_url() {
        let (p, b, https) = endpoints("http://centrifugo:8000").unwrap();
        assert_eq!(p.to_string(), "http://centrifugo:8000/api/publish");
        assert_eq!(b.to_string(), "http://centrifugo:8000/api/batch");
        assert!(!https);
        let (p, _, https) = endpoints("https://rt.example.com/centrifugo/").unwrap();
        assert_eq!(
            p.to_string(),
            "https://rt.example.com/centrifugo/api/publish"
        );
        assert!(https);
        assert!(endpoints("centrifugo:8000").is_err());
        assert!(endpoints("ftp://x").is_err());
        assert!(endpoints("http://x/?a=b").is_err());
        assert!(SendError::Http(StatusCode::BAD_GATEWAY, String::new()).retriable());
        assert!(!SendError::Http(StatusCode::UNAUTHORIZED, String::new()).retriable());
    }
}
