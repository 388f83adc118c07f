//! Limits and intervals of the streaming core, with their defaults.

use std::time::Duration;

/// Limits and intervals of the streaming core.
#[derive(Debug, Clone)]
pub struct StreamingConfig {
    /// How often clients must heartbeat (sent to them in `registered`).
    pub heartbeat_interval: Duration,
    /// No heartbeat for this long marks a session Stale.
    pub stale_after: Duration,
    /// No heartbeat for this long ends the session.
    pub dead_after: Duration,
    /// How long a command waits for its ack.
    pub ack_timeout: Duration,
    /// How often the server pings each client (zero: never).
    pub ping_interval: Duration,
    /// How long a new stream may take to send `register`.
    pub register_timeout: Duration,
    /// Commands queued per client before RESOURCE_EXHAUSTED.
    pub command_queue: usize,
    /// Commands awaiting an ack per client before RESOURCE_EXHAUSTED.
    pub max_pending_acks: usize,
    /// Wallet balances kept per client.
    pub max_wallets: usize,
    /// Events buffered per event-bus subscriber before it loses events.
    pub event_buffer: usize,
    /// Largest client message accepted, in bytes.
    pub max_message_bytes: usize,
}

impl Default for StreamingConfig {
    fn default() -> Self {
        let hb = Duration::from_secs(10);
        Self {
            heartbeat_interval: hb,
            stale_after: hb * 3,
            dead_after: hb * 6,
            ack_timeout: Duration::from_secs(30),
            ping_interval: Duration::from_secs(30),
            register_timeout: Duration::from_secs(10),
            command_queue: 64,
            max_pending_acks: 256,
            max_wallets: 1024,
            event_buffer: 4096,
            max_message_bytes: 64 * 1024,
        }
    }
}
