//! The event bus: connect, disconnect, staleness, every client message and
//! every command outcome, for the other components (controller, admin API,
//! Centrifugo). Publishing never waits: a subscriber that falls behind by
//! more than its buffer loses the oldest events, and the loss is counted.

use super::{AckOutcome, EndReason};
use crate::commands::CommandKind;
use crate::proto::client_message::Payload;
use crate::proto::{ClientMessage, ClientRegistration};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;
use tokio::sync::broadcast;

/// One event about one session.
#[derive(Debug)]
pub struct Event {
    /// The client.
    pub client_id: Arc<str>,
    /// The session.
    pub session_id: Arc<str>,
    /// When it happened.
    pub at: SystemTime,
    /// What happened.
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug)]
pub enum EventKind {
    /// A session registered.
    Connected(Arc<ClientRegistration>),
    /// A session ended.
    Disconnected(EndReason),
    /// The session missed heartbeats for `stale_after`.
    Stale,
    /// A stale session heartbeats again.
    Fresh,
    /// A client message was handled (every type, heartbeats included).
    Message(Arc<ClientMessage>),
    /// A command was queued for the client.
    CommandSent {
        /// Its id.
        command_id: Arc<str>,
        /// Its kind.
        kind: CommandKind,
    },
    /// A command finished: acked, timed out, or its session ended.
    CommandCompleted {
        /// Its id.
        command_id: Arc<str>,
        /// Its kind.
        kind: CommandKind,
        /// How it ended.
        outcome: AckOutcome,
    },
}

/// What a subscriber needs; events nobody needs are never built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    /// Every event.
    All,
    /// Connected, Disconnected, Stale, Fresh.
    Lifecycle,
    /// `price` messages.
    Prices,
}

#[derive(Default)]
struct Interests {
    all: AtomicUsize,
    lifecycle: AtomicUsize,
    prices: AtomicUsize,
}

impl Interests {
    fn counter(&self, i: Interest) -> &AtomicUsize {
        match i {
            Interest::All => &self.all,
            Interest::Lifecycle => &self.lifecycle,
            Interest::Prices => &self.prices,
        }
    }

    fn any(&self, i: Interest) -> bool {
        self.counter(i).load(Ordering::Relaxed) > 0
    }
}

/// The publishing side of the bus.
#[derive(Clone)]
pub(crate) struct EventBus {
    tx: broadcast::Sender<Arc<Event>>,
    lost: prometheus::IntCounter,
    interests: Arc<Interests>,
}

impl EventBus {
    pub(crate) fn new(capacity: usize, lost: prometheus::IntCounter) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self {
            tx,
            lost,
            interests: Arc::default(),
        }
    }

    /// Whether a subscriber needs a `Message` event with this payload.
    pub(crate) fn wants_message(&self, payload: Option<&Payload>) -> bool {
        self.interests.any(Interest::All)
            || (matches!(payload, Some(Payload::Price(_))) && self.interests.any(Interest::Prices))
    }

    fn wants(&self, kind: &EventKind) -> bool {
        if self.interests.any(Interest::All) {
            return true;
        }
        match kind {
            EventKind::Connected(_)
            | EventKind::Disconnected(_)
            | EventKind::Stale
            | EventKind::Fresh => self.interests.any(Interest::Lifecycle),
            EventKind::Message(m) => self.wants_message(m.payload.as_ref()),
            _ => false,
        }
    }

    /// Whether anyone listens (lets callers skip building an event).
    pub(crate) fn active(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// Publishes without waiting; dropped when nobody listens.
    pub(crate) fn publish(&self, client_id: &Arc<str>, session_id: &Arc<str>, kind: EventKind) {
        if !self.active() || !self.wants(&kind) {
            return;
        }
        let _ = self.tx.send(Arc::new(Event {
            client_id: client_id.clone(),
            session_id: session_id.clone(),
            at: SystemTime::now(),
            kind,
        }));
    }

    pub(crate) fn subscribe(&self, interest: Interest) -> EventSubscriber {
        self.interests
            .counter(interest)
            .fetch_add(1, Ordering::Relaxed);
        EventSubscriber {
            rx: self.tx.subscribe(),
            lost: self.lost.clone(),
            interests: self.interests.clone(),
            interest,
        }
    }
}

/// A subscription to the event bus.
pub struct EventSubscriber {
    rx: broadcast::Receiver<Arc<Event>>,
    lost: prometheus::IntCounter,
    interests: Arc<Interests>,
    interest: Interest,
}

impl Drop for EventSubscriber {
    fn drop(&mut self) {
        self.interests
            .counter(self.interest)
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// What [`EventSubscriber::next`] yields.
#[derive(Debug)]
pub enum Received {
    /// The next event.
    Event(Arc<Event>),
    /// This subscriber fell behind and this many events were dropped
    /// before the next one (counted in `crypto_events_lost_total`).
    Lost(u64),
}

impl EventSubscriber {
    /// The next event, or how many were lost; `None` once the streaming
    /// core is gone. For subscribers that must act on a loss (the
    /// controller re-reconciles everything).
    pub async fn next(&mut self) -> Option<Received> {
        match self.rx.recv().await {
            Ok(ev) => Some(Received::Event(ev)),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                self.lost.inc_by(n);
                tracing::warn!(lost = n, "event subscriber fell behind; events lost");
                Some(Received::Lost(n))
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    /// The next event; `None` once the streaming core is gone. Events lost
    /// because this subscriber fell behind are counted in
    /// `crypto_events_lost_total` and skipped.
    pub async fn recv(&mut self) -> Option<Arc<Event>> {
        loop {
            match self.next().await? {
                Received::Event(ev) => return Some(ev),
                Received::Lost(_) => continue,
            }
        }
    }
}
