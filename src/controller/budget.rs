//! The API write budget of the whole fleet: `--api-write-qps` and
//! `--api-write-burst` shared across the live replicas (each takes its
//! share, `qps / live`), as a token bucket per replica. Transitions (a
//! phase, a command, a claim) are delayed, never dropped: a reconcile
//! reserves its transition's place (the bucket may go into debt) and comes
//! back when that place is due, so waiting for the budget holds no
//! reconcile slot and the next client's commands go out meanwhile; the
//! janitor and the rare other writers wait in place. Heartbeat refreshes
//! take a token only while the bucket is more than half full, so under
//! pressure the refreshes are what gets shed and the transitions keep the
//! rest.

use super::membership::Membership;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// What a status write is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteKind {
    /// Anything but `lastHeartbeat` changed.
    Transition,
    /// Only `lastHeartbeat` moved.
    Refresh,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// One replica's share of the fleet's write budget.
pub(crate) struct WriteBudget {
    qps: f64,
    burst: f64,
    membership: Arc<Membership>,
    bucket: Mutex<Bucket>,
}

impl WriteBudget {
    /// The fleet's budget; this replica's share follows the live count.
    pub(crate) fn new(qps: f64, burst: u32, membership: Arc<Membership>) -> Self {
        let qps = qps.max(0.1);
        let burst = f64::from(burst.max(1));
        let share = burst / membership.live_count() as f64;
        Self {
            qps,
            burst,
            membership,
            bucket: Mutex::new(Bucket {
                tokens: share,
                at: Instant::now(),
            }),
        }
    }

    /// (rate, capacity) of this replica now.
    fn share(&self) -> (f64, f64) {
        let live = self.membership.live_count() as f64;
        (self.qps / live, (self.burst / live).max(1.0))
    }

    /// The bucket, refilled up to now at this replica's share; its rate
    /// and capacity.
    fn refilled(&self) -> (std::sync::MutexGuard<'_, Bucket>, f64, f64) {
        let (rate, cap) = self.share();
        let mut b = self
            .bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(cap);
        b.at = now;
        (b, rate, cap)
    }

    /// Takes a token if `kind` may have one now; otherwise how long until
    /// one is there.
    fn take(&self, kind: WriteKind) -> Result<(), Duration> {
        let (mut b, rate, cap) = self.refilled();
        let need = match kind {
            WriteKind::Transition => 1.0,
            // Refreshes leave half the bucket to transitions.
            WriteKind::Refresh => 1.0 + cap / 2.0,
        };
        if b.tokens >= need {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((need - b.tokens) / rate))
        }
    }

    /// A refresh: `true` when it may be written now, `false` when it is
    /// shed (it comes again at the next refresh).
    pub(crate) fn try_refresh(&self) -> bool {
        self.take(WriteKind::Refresh).is_ok()
    }

    /// A transition's place: takes a token now, into debt if there is
    /// none, and says how long until that token is earned (zero: write
    /// now). The debt is bounded by the transitions waiting, one per
    /// resource (`ClientRuntime::write_slot`).
    pub(crate) fn reserve(&self) -> Duration {
        let (mut b, rate, _) = self.refilled();
        b.tokens -= 1.0;
        if b.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-b.tokens / rate)
        }
    }

    /// A transition: waits for a token (bounded by the caller's reconcile
    /// timeout).
    pub(crate) async fn transition(&self) {
        while let Err(wait) = self.take(WriteKind::Transition) {
            tokio::time::sleep(wait.min(Duration::from_secs(1))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::membership::ReplicaConfig;

    #[tokio::test]
    async fn refreshes_are_shed_before_transitions_and_tokens_come_back_at_the_rate() {
        let m = Arc::new(Membership::new(ReplicaConfig::default()));
        let b = WriteBudget::new(10.0, 10, m);
        // A full bucket (10): refreshes while more than half is left.
        let mut refreshes = 0;
        while b.try_refresh() {
            refreshes += 1;
        }
        assert_eq!(refreshes, 5, "refreshes stop at half the bucket");
        // Transitions still have the other half, and then no more.
        for _ in 0..5 {
            assert!(b.take(WriteKind::Transition).is_ok());
        }
        assert!(
            b.take(WriteKind::Transition).is_err(),
            "the bucket is empty"
        );
        // An empty bucket: a transition waits for the next token (0.1 s at
        // 10/s) instead of failing.
        let before = Instant::now();
        b.transition().await;
        assert!(
            before.elapsed() <= Duration::from_millis(500),
            "waited for one token"
        );
        assert!(
            !b.try_refresh(),
            "no refresh while transitions drain the bucket"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn reservations_queue_transitions_at_the_rate_and_shed_refreshes_meanwhile() {
        let m = Arc::new(Membership::new(ReplicaConfig::default()));
        let b = WriteBudget::new(10.0, 2, m);
        // Two tokens: two transitions now; the next ones queue 0.1 s apart.
        assert_eq!(b.reserve(), Duration::ZERO);
        assert_eq!(b.reserve(), Duration::ZERO);
        let third = b.reserve();
        let fourth = b.reserve();
        assert!(
            third > Duration::from_millis(90) && third <= Duration::from_millis(100),
            "{third:?}"
        );
        assert!(
            fourth > Duration::from_millis(190) && fourth <= Duration::from_millis(200),
            "{fourth:?}"
        );
        assert!(!b.try_refresh(), "no refresh while transitions are owed");
        // Once the debt is paid, a transition is free again.
        tokio::time::advance(Duration::from_millis(300)).await;
        assert_eq!(b.reserve(), Duration::ZERO);
    }
}
