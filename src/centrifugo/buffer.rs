//! The publisher's bounded buffer between the event pump and the sender.
//! Pushing never waits: when the buffer is full the oldest publication is
//! dropped and counted, so the newest state always gets through.

use super::metrics::{CentrifugoMetrics, PublishResult};
use super::payload::Publication;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{Notify, watch};

pub(crate) struct Buffer {
    queue: Mutex<VecDeque<Publication>>,
    capacity: usize,
    /// Woken on every push.
    pub(crate) pushed: Notify,
    /// How many publications were ever pushed (for waiters, e.g. tests).
    pub(crate) accepted: watch::Sender<u64>,
    metrics: Arc<CentrifugoMetrics>,
}

impl Buffer {
    pub(crate) fn new(capacity: usize, metrics: Arc<CentrifugoMetrics>) -> Self {
        Self {
            queue: Mutex::new(VecDeque::with_capacity(capacity.min(4096))),
            capacity: capacity.max(1),
            pushed: Notify::new(),
            accepted: watch::Sender::new(0),
            metrics,
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Publication>> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn m(&self) -> &CentrifugoMetrics {
        &self.metrics
    }

    /// Appends `p`, dropping (and counting) the oldest when full.
    pub(crate) fn push(&self, p: Publication) {
        let (dropped, len) = {
            let mut q = self.lock();
            let dropped = if q.len() >= self.capacity {
                q.pop_front();
                true
            } else {
                false
            };
            q.push_back(p);
            (dropped, q.len())
        };
        if dropped {
            self.m().count(PublishResult::Dropped, 1);
        }
        self.m().set_buffered(len);
        self.pushed.notify_one();
        self.accepted.send_modify(|n| *n += 1);
    }

    /// Takes up to `n` of the oldest publications.
    pub(crate) fn take(&self, n: usize) -> Vec<Publication> {
        let (out, len) = {
            let mut q = self.lock();
            let k = n.min(q.len());
            (q.drain(..k).collect::<Vec<_>>(), q.len())
        };
        self.m().set_buffered(len);
        out
    }

    /// Puts a batch that could not be sent back in front; when that
    /// overflows, its oldest publications are dropped and counted.
    pub(crate) fn requeue(&self, batch: Vec<Publication>) {
        let (dropped, len) = {
            let mut q = self.lock();
            let mut dropped = 0u64;
            for p in batch.into_iter().rev() {
                if q.len() < self.capacity {
                    q.push_front(p);
                } else {
                    dropped += 1;
                }
            }
            (dropped, q.len())
        };
        self.m().count(PublishResult::Dropped, dropped);
        self.m().set_buffered(len);
    }

    /// Drops everything left, counted; returns how many.
    pub(crate) fn discard_all(&self) -> usize {
        let n = {
            let mut q = self.lock();
            let n = q.len();
            q.clear();
            n
        };
        self.m().count(PublishResult::Dropped, n as u64);
        self.m().set_buffered(0);
        n
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publ(i: usize) -> Publication {
        Publication {
            channel: Arc::from("c"),
            data: Arc::from(i.to_string()),
        }
    }

    fn data(v: &[Publication]) -> Vec<String> {
        v.iter().map(|p| p.data.to_string()).collect()
    }

    #[test]
    fn drops_the_oldest_when_full_and_counts() {
        let metrics = Arc::new(CentrifugoMetrics::new(&crate::metrics::Registry::new()).unwrap());
        let b = Buffer::new(3, metrics.clone());
        for i in 1..=5 {
            b.push(publ(i));
        }
        assert_eq!(metrics.total(PublishResult::Dropped), 2);
        assert_eq!(metrics.buffered(), 3);
        let first = b.take(2);
        assert_eq!(data(&first), ["3", "4"]);
        b.push(publ(6));
        b.push(publ(7));
        // Full again (5, 6, 7): the requeued batch is the oldest and goes.
        b.requeue(first);
        assert_eq!(metrics.total(PublishResult::Dropped), 4);
        assert_eq!(data(&b.take(10)), ["5", "6", "7"]);
        b.push(publ(8));
        b.requeue(vec![publ(1), publ(2)]);
        assert_eq!(data(&b.take(10)), ["1", "2", "8"]);
        b.push(publ(9));
        assert_eq!(b.discard_all(), 1);
        assert_eq!(metrics.total(PublishResult::Dropped), 5);
        assert_eq!(b.len(), 0);
    }
}
