//! The request log: one record per HTTP request the fake answered.

use serde_json::Value;

/// One request and the status it got.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    /// `GET`, `POST`, `PUT`, `PATCH`, `DELETE`.
    pub method: String,
    /// The path without the query, e.g.
    /// `/apis/crypto.fleet.dev/v1alpha1/namespaces/default/cryptoclients/a/status`.
    pub path: String,
    /// The raw query string (without `?`; kube starts it with `&`).
    pub query: String,
    pub content_type: Option<String>,
    /// The `User-Agent` header (empty when absent).
    pub user_agent: String,
    /// The body, when it parsed as JSON (or YAML for apply patches).
    pub body: Option<Value>,
    /// The HTTP status answered (watches: the status of the response
    /// headers, 200 even when the stream later carries an ERROR event).
    pub status: u16,
    /// What a successful write answered (the object as stored).
    pub response: Option<Value>,
    /// Held by a fault and applied (or failed) after it healed.
    pub delayed: bool,
    /// When it was answered.
    pub at: std::time::Instant,
}

impl RequestRecord {
    /// The replica id in a User-Agent `crypto-operator/<version> (<id>)`.
    pub fn replica(&self) -> Option<&str> {
        let rest = self.user_agent.strip_prefix("crypto-operator/")?;
        let (_, id) = rest.split_once(" (")?;
        id.strip_suffix(')')
    }

    /// An accepted (2xx) write.
    pub fn accepted(&self) -> bool {
        self.is_write() && (200..300).contains(&self.status)
    }

    /// The first value of query parameter `key`, percent-decoded.
    pub fn param(&self, key: &str) -> Option<String> {
        parse_query(&self.query)
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// A watch request (`watch=true` or `watch=1`).
    pub fn is_watch(&self) -> bool {
        self.param("watch").is_some_and(|w| w == "true" || w == "1")
    }

    /// A write: POST, PUT, PATCH or DELETE.
    pub fn is_write(&self) -> bool {
        matches!(self.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE")
    }

    /// The path targets a `/status` subresource.
    pub fn is_status(&self) -> bool {
        self.path.ends_with("/status")
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `application/x-www-form-urlencoded` pairs; empty pairs are skipped.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}
