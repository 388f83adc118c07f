//! Real-time publishing of client events to Centrifugo through its HTTP
//! server API, for dashboards that watch clients over WebSocket channels.
//!
//! Off the stream's path: a pump task reads the streaming core's event bus
//! (which never waits for its subscribers) and moves each event's
//! publications into a bounded buffer (drop-oldest, counted); a sender task
//! owns every wait on Centrifugo — batching with a linger time, retries
//! with backoff, a circuit breaker and a per-request timeout. A slow or
//! dead Centrifugo therefore never delays a client message: the session
//! task only ever does a non-blocking broadcast send.
//!
//! Both tasks belong to the [`Publisher`]; [`Publisher::shutdown`] stops
//! the pump (after it took what is already on the bus), sends what is
//! buffered once within `flush_timeout`, and drops the rest (counted).

mod breaker;
mod buffer;
mod client;
mod metrics;
mod payload;
mod sender;

pub use breaker::BreakerState;
pub use metrics::{CentrifugoMetrics, PublishResult};
pub use payload::Publication;

use crate::streaming::EventSubscriber;
use breaker::Breaker;
use buffer::Buffer;
use futures::FutureExt;
use payload::Channels;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// The publisher's settings (flags `--centrifugo-*`).
#[derive(Clone)]
pub struct CentrifugoConfig {
    /// Base URL of Centrifugo's HTTP API, e.g. `http://centrifugo:8000`;
    /// requests go to `{url}/api/publish` and `{url}/api/batch`.
    pub url: String,
    /// The `X-API-Key` (Centrifugo's `http_api.key`); `None` for a
    /// Centrifugo with `http_api.insecure`.
    pub api_key: Option<String>,
    /// Channel prefix (a Centrifugo namespace): `<prefix>:clients`,
    /// `<prefix>:client.<client_id>`.
    pub channel_prefix: String,
    /// Publications buffered before the oldest are dropped.
    pub buffer: usize,
    /// Most publications per request.
    pub batch_size: usize,
    /// How long a partly filled batch waits for more.
    pub linger: Duration,
    /// Bound of one request (connect, send, answer).
    pub request_timeout: Duration,
    /// Retries of a failed request (timeouts, transport errors, 5xx, 429).
    pub retries: u32,
    /// First retry delay; doubles per retry, at most 10 s, ±25 % jitter.
    pub retry_backoff: Duration,
    /// Consecutive failed requests that open the breaker.
    pub breaker_threshold: u32,
    /// How long the breaker stays open before one probe.
    pub breaker_open: Duration,
    /// How long shutdown may spend sending what is buffered.
    pub flush_timeout: Duration,
}

impl std::fmt::Debug for CentrifugoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CentrifugoConfig")
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("channel_prefix", &self.channel_prefix)
            .field("buffer", &self.buffer)
            .field("batch_size", &self.batch_size)
            .field("linger", &self.linger)
            .field("request_timeout", &self.request_timeout)
            .field("retries", &self.retries)
            .field("retry_backoff", &self.retry_backoff)
            .field("breaker_threshold", &self.breaker_threshold)
            .field("breaker_open", &self.breaker_open)
            .field("flush_timeout", &self.flush_timeout)
            .finish()
    }
}

/// Most publications per request.
pub const MAX_BATCH: usize = 1000;

impl CentrifugoConfig {
    /// The defaults for Centrifugo at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            api_key: None,
            channel_prefix: "crypto".into(),
            buffer: 10_000,
            batch_size: 100,
            linger: Duration::from_millis(20),
            request_timeout: Duration::from_secs(5),
            retries: 2,
            retry_backoff: Duration::from_millis(200),
            breaker_threshold: 5,
            breaker_open: Duration::from_secs(10),
            flush_timeout: Duration::from_secs(2),
        }
    }

    /// Checks the settings (the URL is checked when the publisher starts).
    pub fn validate(&self) -> Result<(), CentrifugoError> {
        let p = &self.channel_prefix;
        if p.is_empty()
            || p.len() > 64
            || !p
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        {
            return Err(CentrifugoError::ChannelPrefix(p.clone()));
        }
        if !(1..=MAX_BATCH).contains(&self.batch_size) {
            return Err(CentrifugoError::BatchSize);
        }
        if self.buffer < self.batch_size {
            return Err(CentrifugoError::BufferBelowBatch);
        }
        if self.request_timeout.is_zero() || self.breaker_open.is_zero() {
            return Err(CentrifugoError::ZeroDuration);
        }
        if self.breaker_threshold == 0 {
            return Err(CentrifugoError::ZeroThreshold);
        }
        Ok(())
    }
}

/// Why the publisher cannot start.
#[derive(Debug, thiserror::Error)]
pub enum CentrifugoError {
    /// The channel prefix is unusable.
    #[error("--centrifugo-channel-prefix {0:?}: 1-64 characters of [A-Za-z0-9._:-]")]
    ChannelPrefix(String),
    /// The batch size is out of range.
    #[error("--centrifugo-batch-size must be between 1 and {MAX_BATCH}")]
    BatchSize,
    /// The buffer cannot hold one batch.
    #[error("--centrifugo-buffer must be at least --centrifugo-batch-size")]
    BufferBelowBatch,
    /// A timeout is zero.
    #[error("--centrifugo-timeout and --centrifugo-breaker-open must be more than 0")]
    ZeroDuration,
    /// The breaker would never close.
    #[error("--centrifugo-breaker-threshold must be at least 1")]
    ZeroThreshold,
    /// The URL is unusable.
    #[error("--centrifugo-url {url:?}: {why}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// No root certificates for `https://`.
    #[error("--centrifugo-url {url}: no usable root certificates: {source}")]
    Roots {
        /// The URL given.
        url: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS client could not be built.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// The API key cannot be sent as a header.
    #[error("the Centrifugo API key is not a valid header value")]
    BadKey,
}

/// A read-only view of a running publisher (tests, diagnostics).
#[derive(Clone)]
pub struct Monitor {
    state: watch::Receiver<BreakerState>,
    accepted: watch::Receiver<u64>,
    buffer: Arc<Buffer>,
}

impl Monitor {
    /// The breaker's state now.
    pub fn breaker(&self) -> BreakerState {
        *self.state.borrow()
    }

    /// Waits until the breaker is in `want` (returns at once if it is).
    pub async fn wait_for_breaker(&self, want: BreakerState) {
        let mut rx = self.state.clone();
        let _ = rx.wait_for(|s| *s == want).await;
    }

    /// Publications taken from the event bus so far.
    pub fn accepted(&self) -> u64 {
        *self.accepted.borrow()
    }

    /// Waits until at least `n` publications were taken from the bus.
    pub async fn wait_accepted(&self, n: u64) {
        let mut rx = self.accepted.clone();
        let _ = rx.wait_for(|a| *a >= n).await;
    }

    /// Publications waiting in the buffer.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }
}

/// The running publisher: a pump task and a sender task.
pub struct Publisher {
    buffer: Arc<Buffer>,
    stop_pump: CancellationToken,
    stop_send: CancellationToken,
    kill: CancellationToken,
    tasks: Mutex<Option<(JoinHandle<()>, JoinHandle<()>)>>,
    flush_timeout: Duration,
    monitor: Monitor,
}

impl Publisher {
    /// Starts publishing the events of `events` (a subscription taken
    /// before clients connect). Fails on an unusable configuration.
    pub fn start(
        config: &CentrifugoConfig,
        events: EventSubscriber,
        metrics: Arc<CentrifugoMetrics>,
    ) -> Result<Self, CentrifugoError> {
        config.validate()?;
        let api = client::Api::new(
            &config.url,
            config.api_key.as_deref(),
            config.request_timeout,
        )?;
        let channels = Channels::new(&config.channel_prefix);
        let buffer = Arc::new(Buffer::new(config.buffer, metrics.clone()));
        let (state_tx, state_rx) = watch::channel(BreakerState::Closed);
        metrics.set_breaker_state(BreakerState::Closed.gauge());
        let stop_pump = CancellationToken::new();
        let stop_send = CancellationToken::new();
        let kill = CancellationToken::new();
        let sender = sender::Sender {
            api,
            buffer: buffer.clone(),
            breaker: Breaker::new(config.breaker_threshold, config.breaker_open),
            open_for: config.breaker_open,
            state: state_tx,
            metrics: metrics.clone(),
            batch_size: config.batch_size,
            linger: config.linger,
            retries: config.retries,
            backoff: config.retry_backoff,
            stop: stop_send.clone(),
            kill: kill.clone(),
            last_item_warn: None,
        };
        let pump = tokio::spawn(pump(events, buffer.clone(), channels, stop_pump.clone()));
        let send = tokio::spawn(sender.run());
        if config.api_key.is_none() {
            warn!("no Centrifugo API key configured; requests carry no X-API-Key");
        }
        info!(
            url = %config.url,
            fleet_channel = %format!("{}:clients", config.channel_prefix),
            client_channels = %format!("{}:client.<client_id>", config.channel_prefix),
            "publishing client events to Centrifugo"
        );
        let monitor = Monitor {
            state: state_rx,
            accepted: buffer.accepted.subscribe(),
            buffer: buffer.clone(),
        };
        Ok(Self {
            buffer,
            stop_pump,
            stop_send,
            kill,
            tasks: Mutex::new(Some((pump, send))),
            flush_timeout: config.flush_timeout,
            monitor,
        })
    }

    /// A view of the publisher's state.
    pub fn monitor(&self) -> Monitor {
        self.monitor.clone()
    }

    /// Stops the pump (after it took the events already on the bus),
    /// sends what is buffered within the flush timeout, and drops (and
    /// counts) whatever is left. Call after the sessions ended so their
    /// `disconnected` events go out.
    pub async fn shutdown(&self) {
        let tasks = self
            .tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let Some((pump, mut send)) = tasks else {
            return;
        };
        self.stop_pump.cancel();
        let _ = pump.await;
        self.stop_send.cancel();
        if tokio::time::timeout(self.flush_timeout, &mut send)
            .await
            .is_err()
        {
            self.kill.cancel();
            let _ = send.await;
        }
        let left = self.buffer.discard_all();
        if left > 0 {
            warn!(
                dropped = left,
                "Centrifugo events still buffered at shutdown dropped"
            );
        }
        debug!("Centrifugo publisher stopped");
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        // Never outlive the owner, even without `shutdown`.
        self.stop_pump.cancel();
        self.stop_send.cancel();
        self.kill.cancel();
    }
}

/// Moves events from the bus into the buffer until stopped, then takes
/// what is already on the bus.
async fn pump(
    mut events: EventSubscriber,
    buffer: Arc<Buffer>,
    channels: Channels,
    stop: CancellationToken,
) {
    let take = |ev: &crate::streaming::Event| {
        for p in payload::publications(ev, &channels) {
            buffer.push(p);
        }
    };
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            ev = events.recv() => match ev {
                Some(ev) => take(&ev),
                None => return,
            },
        }
    }
    while let Some(Some(ev)) = events.recv().now_or_never() {
        take(&ev);
    }
}
