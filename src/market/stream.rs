//! One `StreamPrices` subscription: the snapshot of the requested coins
//! first, then their updates, conflated. The stream holds one watch
//! receiver per coin and the last sequence it sent per (coin, quote); when
//! it is polled it sends whatever is newer than that, so a subscriber that
//! reads slowly skips to the latest price (the skipped count comes from the
//! sequence gap). Its memory is bounded by coins × quotes, never by the
//! update rate, and the price writer never waits for it.

use super::book::{CoinPrices, Quoted};
use super::metrics::MarketMetrics;
use crate::proto::PriceTick;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use tokio::sync::watch;
use tokio_stream::Stream;
use tokio_stream::wrappers::WatchStream;
use tokio_util::sync::WaitForCancellationFutureOwned;
use tonic::Status;

/// One open subscription slot; frees it and updates the gauge on drop.
pub(crate) struct SubscriberSlot {
    open: Arc<AtomicUsize>,
    metrics: Arc<MarketMetrics>,
}

impl SubscriberSlot {
    /// Takes a slot if fewer than `max` are open.
    pub(crate) fn take(
        open: &Arc<AtomicUsize>,
        max: usize,
        metrics: &Arc<MarketMetrics>,
    ) -> Option<Self> {
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .ok()?;
        metrics.subscribers.inc();
        Some(Self {
            open: open.clone(),
            metrics: metrics.clone(),
        })
    }
}

impl Drop for SubscriberSlot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        self.metrics.subscribers.dec();
    }
}

/// What a subscriber was last sent of one quote: the source series and
/// its sequence.
struct Sent {
    quote: Arc<str>,
    replica: String,
    incarnation: u64,
    sequence: u64,
}

/// One watched coin and what this subscriber has been sent of it.
struct Watched {
    changes: WatchStream<Arc<CoinPrices>>,
    /// Per quote (0: nothing yet).
    sent: Vec<Sent>,
}

impl Watched {
    /// Queues the ticks of `prices` newer than what was sent, in arrival
    /// order; returns how many updates were skipped (sequence gaps within
    /// one source's series; a price from another source than the last
    /// one sent starts that source's series afresh).
    fn collect(
        &mut self,
        prices: &CoinPrices,
        snapshot: bool,
        out: &mut VecDeque<PriceTick>,
    ) -> u64 {
        let mut fresh: Vec<&Quoted> = Vec::new();
        let mut skipped = 0;
        for q in &prices.quotes {
            let t = &q.tick;
            let slot = match self.sent.iter().position(|s| s.quote == q.quote) {
                Some(i) => i,
                None => {
                    self.sent.push(Sent {
                        quote: q.quote.clone(),
                        replica: t.source_replica.clone(),
                        incarnation: t.source_incarnation,
                        sequence: 0,
                    });
                    self.sent.len() - 1
                }
            };
            let last = &mut self.sent[slot];
            if last.replica == t.source_replica && last.incarnation == t.source_incarnation {
                if t.sequence <= last.sequence {
                    continue;
                }
                if !snapshot {
                    skipped += t.sequence - last.sequence - 1;
                }
            } else {
                last.replica.clone_from(&t.source_replica);
                last.incarnation = t.source_incarnation;
            }
            last.sequence = t.sequence;
            fresh.push(q);
        }
        fresh.sort_unstable_by_key(|q| q.arrival);
        out.extend(fresh.into_iter().map(|q| {
            let mut tick = (*q.tick).clone();
            tick.snapshot = snapshot;
            tick
        }));
        skipped
    }
}

/// The stream tonic sends to a `StreamPrices` caller.
pub struct PriceStream {
    coins: Vec<Watched>,
    /// Ticks ready to send: at most coins × quotes, refilled only when empty.
    ready: VecDeque<PriceTick>,
    /// Where the next poll of the watches starts (fairness between coins).
    start: usize,
    stop: Pin<Box<WaitForCancellationFutureOwned>>,
    ended: bool,
    metrics: Arc<MarketMetrics>,
    /// `None` for a peer's stream, which takes no subscriber slot.
    _slot: Option<SubscriberSlot>,
}

impl PriceStream {
    /// A subscription over `receivers` (fresh receivers of the requested
    /// coins): their current values become the snapshot.
    pub(crate) fn new(
        receivers: Vec<watch::Receiver<Arc<CoinPrices>>>,
        stop: WaitForCancellationFutureOwned,
        metrics: Arc<MarketMetrics>,
        slot: Option<SubscriberSlot>,
    ) -> Self {
        let mut ready = VecDeque::new();
        let coins = receivers
            .into_iter()
            .map(|rx| {
                // The receiver marked the value it had when it was made as
                // seen; any later change wakes the stream, and sequence
                // numbers drop what the snapshot already carried.
                let current = rx.borrow().clone();
                let mut w = Watched {
                    changes: WatchStream::from_changes(rx),
                    sent: Vec::new(),
                };
                w.collect(&current, true, &mut ready);
                w
            })
            .collect();
        Self {
            coins,
            ready,
            start: 0,
            stop: Box::pin(stop),
            ended: false,
            metrics,
            _slot: slot,
        }
    }
}

impl Stream for PriceStream {
    type Item = Result<PriceTick, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        if this.stop.as_mut().poll(cx).is_ready() {
            this.ended = true;
            return Poll::Ready(Some(Err(Status::unavailable("server shutting down"))));
        }
        loop {
            if let Some(tick) = this.ready.pop_front() {
                this.metrics.sent.inc();
                return Poll::Ready(Some(Ok(tick)));
            }
            let n = this.coins.len();
            let (mut woke, mut closed, mut skipped) = (false, false, 0);
            for k in 0..n {
                let w = &mut this.coins[(this.start + k) % n];
                match Pin::new(&mut w.changes).poll_next(cx) {
                    Poll::Ready(Some(prices)) => {
                        woke = true;
                        skipped += w.collect(&prices, false, &mut this.ready);
                    }
                    Poll::Ready(None) => closed = true,
                    Poll::Pending => {}
                }
            }
            this.start = (this.start + 1) % n.max(1);
            if skipped > 0 {
                this.metrics.conflated.inc_by(skipped);
            }
            if this.ready.is_empty() {
                if closed {
                    this.ended = true;
                    return Poll::Ready(None);
                }
                // A watch that yielded registered no waker: poll again
                // until every watch is pending.
                if !woke {
                    return Poll::Pending;
                }
            }
        }
    }
}
