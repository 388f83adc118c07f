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
    /// Most sessions at once (0: no limit); more get RESOURCE_EXHAUSTED.
    pub max_sessions: usize,
    /// Sustained messages per second a client may send (0: no limit).
    pub max_messages_per_second: u32,
    /// Messages a client may send in a burst above the sustained rate; a
    /// client that exceeds the burst is ended with RESOURCE_EXHAUSTED.
    pub message_burst: u32,
    /// Longest text kept from a `log` or `error` message; longer texts are
    /// truncated and flagged, not refused.
    pub max_text_bytes: usize,
    /// Sessions older than this (plus up to 10 % jitter) are asked to
    /// reconnect, so clients rebalance and deploys drain (zero: never).
    pub max_session_age: Duration,
    /// How long an aged-out session may finish its pending commands.
    pub session_age_grace: Duration,
    /// Registrations this replica accepts per second (0: no limit); past
    /// the burst and a short wait, RESOURCE_EXHAUSTED with a retry hint.
    pub max_registrations_per_second: u32,
    /// Registrations accepted at once above that rate.
    pub registration_burst: u32,
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
            max_sessions: 100_000,
            max_messages_per_second: 1_000,
            message_burst: 2_000,
            max_text_bytes: 4 * 1024,
            max_session_age: Duration::ZERO,
            session_age_grace: Duration::from_secs(30),
            max_registrations_per_second: 500,
            registration_burst: 1_000,
        }
    }
}
