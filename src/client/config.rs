//! Client configuration.

use super::ClientType;
use crate::proto::ClientRegistration;
use std::time::Duration;

/// How a client connects and who it says it is.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Server URL, for example `http://127.0.0.1:50051`.
    pub endpoint: String,
    /// The id to register with.
    pub client_id: String,
    /// What to send in `register`.
    pub registration: ClientRegistration,
    /// First reconnect delay.
    pub initial_backoff: Duration,
    /// Longest reconnect delay.
    pub max_backoff: Duration,
    /// Limit on connecting and on waiting for `registered`.
    pub connect_timeout: Duration,
    /// Messages the application may queue while the stream is busy or down.
    pub outbox_capacity: usize,
    /// Commands queued for the handler before new ones are refused.
    pub handler_queue: usize,
    /// Bearer token sent with the stream (`authorization` metadata).
    pub token: Option<String>,
}

impl ClientConfig {
    /// Defaults for a client of the custom type `generic`.
    pub fn new(endpoint: impl Into<String>, client_id: impl Into<String>) -> Self {
        let client_id = client_id.into();
        Self {
            endpoint: endpoint.into(),
            registration: ClientRegistration {
                client_name: client_id.clone(),
                client_type: "generic".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                capabilities: Vec::new(),
            },
            client_id,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            outbox_capacity: 256,
            handler_queue: 64,
            token: None,
        }
    }

    /// Sets the client type (`ClientType::WalletSync`, or
    /// `ClientType::from("my-type")` for a custom one).
    pub fn client_type(mut self, t: impl Into<ClientType>) -> Self {
        self.registration.client_type = t.into().as_str().to_owned();
        self
    }

    /// Sets the capabilities.
    pub fn capabilities<I: IntoIterator<Item = S>, S: Into<String>>(mut self, caps: I) -> Self {
        self.registration.capabilities = caps.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the bearer token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Sets the backoff bounds.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max;
        self
    }
}
