//! The streaming core's metrics: sessions, messages, commands and acks,
//! per-client series. Every label set used on the message path is resolved
//! once (at start-up, or per session at registration), so updating a metric
//! costs an atomic add: no lock shared between sessions and no allocation
//! per message.

use super::handlers::PAYLOAD_NAMES;
use super::series::{self, ClientIdentity, ClientLabels, SessionSeries};
use super::{AckOutcome, EndReason};
use crate::commands::CommandKind;
use crate::metrics::Registry;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
};
use std::time::Duration;
use tonic::Code;

/// The core's metrics.
pub struct CoreMetrics {
    clients_connected: IntGauge,
    clients_stale: IntGauge,
    messages_received: Vec<IntCounter>,
    commands_sent: Vec<IntCounter>,
    acks_success: Vec<IntCounter>,
    acks_failure: Vec<IntCounter>,
    ack_duration: Vec<Histogram>,
    timed_out: Vec<IntCounter>,
    cancelled: Vec<IntCounter>,
    sessions_ended: Vec<IntCounter>,
    streams_rejected: IntCounterVec,
    messages_rejected: IntCounterVec,
    rate_limited: IntCounter,
    registrations_throttled: IntCounter,
    registrations_delayed: IntCounter,
    registrations_steered: IntCounter,
    texts_truncated: IntCounter,
    ping_rtt: Histogram,
    /// Events lost by slow event-bus subscribers.
    pub events_lost: IntCounter,
    series: series::ClientSeriesFamily,
}

fn counter_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    r.register(IntCounterVec::new(Opts::new(name, help), labels)?)
}

/// RTT and ack latency buckets, 100 µs to 30 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

impl CoreMetrics {
    /// The core's metrics, registered in `r`. `labels` chooses the
    /// per-client series' labels (standalone: `client_id`; cluster mode:
    /// `namespace`, `name`, `client_id`). Fails only on a programming
    /// error in the metric definitions (start-up, never on input).
    pub fn new(r: &Registry, labels: ClientLabels) -> prometheus::Result<Self> {
        let kinds: Vec<&str> = CommandKind::ALL.iter().map(|k| k.as_str()).collect();
        let received = counter_vec(
            r,
            "crypto_client_messages_received_total",
            "Client messages received, by payload type.",
            &["type"],
        )?;
        let sent = counter_vec(
            r,
            "crypto_commands_sent_total",
            "Commands queued for clients, by command type.",
            &["type"],
        )?;
        let acks = counter_vec(
            r,
            "crypto_command_acks_total",
            "Command acks received, by command type and result (success, failure).",
            &["type", "result"],
        )?;
        let timed_out = counter_vec(
            r,
            "crypto_commands_timed_out_total",
            "Commands whose ack did not arrive before the deadline.",
            &["type"],
        )?;
        let cancelled = counter_vec(
            r,
            "crypto_commands_cancelled_total",
            "Commands failed because their session ended before the ack.",
            &["type"],
        )?;
        let ended = counter_vec(
            r,
            "crypto_sessions_ended_total",
            "Sessions ended, by reason.",
            &["reason"],
        )?;
        let ack_duration = r.register(HistogramVec::new(
            HistogramOpts::new(
                "crypto_command_ack_duration_seconds",
                "Time from queueing a command to its ack.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["type"],
        )?)?;
        Ok(Self {
            clients_connected: r.register(IntGauge::new(
                "crypto_clients_connected",
                "Clients with a live session.",
            )?)?,
            clients_stale: r.register(IntGauge::new(
                "crypto_clients_stale",
                "Connected clients that missed heartbeats for stale_after.",
            )?)?,
            messages_received: PAYLOAD_NAMES
                .iter()
                .map(|n| received.with_label_values(&[*n]))
                .collect(),
            commands_sent: kinds
                .iter()
                .map(|k| sent.with_label_values(&[*k]))
                .collect(),
            acks_success: kinds
                .iter()
                .map(|k| acks.with_label_values(&[*k, "success"]))
                .collect(),
            acks_failure: kinds
                .iter()
                .map(|k| acks.with_label_values(&[*k, "failure"]))
                .collect(),
            ack_duration: kinds
                .iter()
                .map(|k| ack_duration.with_label_values(&[*k]))
                .collect(),
            timed_out: kinds
                .iter()
                .map(|k| timed_out.with_label_values(&[*k]))
                .collect(),
            cancelled: kinds
                .iter()
                .map(|k| cancelled.with_label_values(&[*k]))
                .collect(),
            sessions_ended: EndReason::LABELS
                .iter()
                .map(|l| ended.with_label_values(&[*l]))
                .collect(),
            streams_rejected: counter_vec(
                r,
                "crypto_streams_rejected_total",
                "Streams refused before registration, by gRPC status code.",
                &["code"],
            )?,
            messages_rejected: counter_vec(
                r,
                "crypto_client_messages_rejected_total",
                "Client messages dropped (the session goes on), by payload type and reason.",
                &["type", "reason"],
            )?,
            rate_limited: r.register(IntCounter::new(
                "crypto_sessions_rate_limited_total",
                "Sessions ended for sending faster than the message rate limit.",
            )?)?,
            registrations_throttled: r.register(IntCounter::new(
                "crypto_registrations_throttled_total",
                "Registrations refused with RESOURCE_EXHAUSTED and a retry hint: over the registration rate.",
            )?)?,
            registrations_delayed: r.register(IntCounter::new(
                "crypto_registrations_delayed_total",
                "Registrations admitted after a short wait for the registration rate.",
            )?)?,
            registrations_steered: r.register(IntCounter::new(
                "crypto_registrations_steered_total",
                "Registrations refused with UNAVAILABLE and a retry hint because this replica holds more than its share of the fleet.",
            )?)?,
            texts_truncated: r.register(IntCounter::new(
                "crypto_texts_truncated_total",
                "Log and error texts truncated to the maximum text size.",
            )?)?,
            ping_rtt: r.register(Histogram::with_opts(
                HistogramOpts::new(
                    "crypto_client_ping_rtt_seconds",
                    "Round-trip time of server pings.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
            )?)?,
            events_lost: r.register(IntCounter::new(
                "crypto_events_lost_total",
                "Events lost by event-bus subscribers that fell behind.",
            )?)?,
            series: series::ClientSeriesFamily::new(r, labels)?,
        })
    }

    pub(crate) fn session_series(
        &self,
        client_id: &str,
        identity: &ClientIdentity,
    ) -> SessionSeries {
        self.series
            .for_client(self.series.label_values(client_id, identity))
    }

    /// Cluster mode: marks a resource's client as not connected (creating
    /// its `crypto_client_up` series at 0 if needed).
    pub fn client_down(&self, namespace: &str, name: &str, client_id: &str) {
        self.series.set_down(&[namespace, name, client_id]);
    }

    /// Cluster mode: removes every series of a deleted resource's client.
    pub fn forget_client(&self, namespace: &str, name: &str, client_id: &str) {
        self.series.forget(&[namespace, name, client_id]);
    }

    pub(crate) fn message_received(&self, payload_index: usize) {
        if let Some(c) = self.messages_received.get(payload_index) {
            c.inc();
        }
    }

    pub(crate) fn command_sent(&self, kind: CommandKind) {
        self.commands_sent[kind.index()].inc();
    }

    pub(crate) fn command_finished(
        &self,
        kind: CommandKind,
        outcome: &AckOutcome,
        elapsed: Duration,
    ) {
        let i = kind.index();
        match outcome {
            AckOutcome::Acked(a) => {
                if a.success {
                    self.acks_success[i].inc();
                } else {
                    self.acks_failure[i].inc();
                }
                self.ack_duration[i].observe(elapsed.as_secs_f64());
            }
            AckOutcome::TimedOut => self.timed_out[i].inc(),
            AckOutcome::SessionEnded(_) => self.cancelled[i].inc(),
        }
    }

    pub(crate) fn ping_rtt(&self, rtt: Duration) {
        self.ping_rtt.observe(rtt.as_secs_f64());
    }

    pub(crate) fn session_started(&self) {
        self.clients_connected.inc();
    }

    pub(crate) fn session_ended(&self, reason: &EndReason) {
        self.clients_connected.dec();
        if let Some(i) = EndReason::LABELS.iter().position(|l| *l == reason.label()) {
            self.sessions_ended[i].inc();
        }
    }

    pub(crate) fn stale_changed(&self, stale: bool) {
        if stale {
            self.clients_stale.inc();
        } else {
            self.clients_stale.dec();
        }
    }

    pub(crate) fn rejected(&self, code: Code) {
        self.streams_rejected
            .with_label_values(&[&format!("{code:?}")])
            .inc();
    }

    pub(crate) fn rate_limited(&self) {
        self.rate_limited.inc();
    }

    pub(crate) fn registration_throttled(&self) {
        self.registrations_throttled.inc();
    }

    pub(crate) fn registration_delayed(&self) {
        self.registrations_delayed.inc();
    }

    pub(crate) fn registration_steered(&self) {
        self.registrations_steered.inc();
    }

    pub(crate) fn text_truncated(&self) {
        self.texts_truncated.inc();
    }

    /// A dropped message; rare, so its series are made on first use.
    pub(crate) fn message_rejected(&self, payload_index: usize, reason: &str) {
        let kind = PAYLOAD_NAMES.get(payload_index).copied().unwrap_or("empty");
        self.messages_rejected
            .with_label_values(&[kind, reason])
            .inc();
    }
}
