//! Pacing of the heartbeat refresh: how often a connected resource is
//! requeued so its `status.lastHeartbeat` advances. The configured
//! `--status-heartbeat-interval` is the floor; when N connected clients
//! over that interval would need more than half of what the reconcile
//! slots can do (slots / average reconcile time), the interval is
//! stretched to fit in that half. Phase changes, spec changes and acks
//! then always find a free slot instead of queueing behind thousands of
//! refreshes (kube-runtime keeps the requests it holds for a full slot
//! set in a hash set, so under sustained overload some resources would
//! wait indefinitely). The stretched interval is exported as
//! `crypto_status_heartbeat_interval_seconds`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Share of the reconcile capacity the heartbeat refresh may use.
const REFRESH_SHARE: f64 = 0.5;
/// Weight of the newest reconcile in the running average.
const EWMA_WEIGHT: f64 = 0.05;

/// The interval for `connected` clients: `base`, or longer when the
/// refresh would use more than [`REFRESH_SHARE`] of `slots` reconciles
/// each taking `avg`.
pub fn paced_interval(base: Duration, connected: usize, slots: u16, avg: Duration) -> Duration {
    let capacity = f64::from(slots.max(1)) / avg.as_secs_f64().max(1e-6);
    let fits = connected as f64 / (capacity * REFRESH_SHARE);
    base.max(Duration::from_secs_f64(fits.min(3600.0)))
}

/// Running average of reconcile durations and the resulting interval.
pub(crate) struct Pacer {
    base: Duration,
    slots: u16,
    avg_ns: AtomicU64,
}

impl Pacer {
    pub(crate) fn new(base: Duration, slots: u16) -> Self {
        Self {
            base,
            slots,
            avg_ns: AtomicU64::new(0),
        }
    }

    /// Adds one reconcile's duration to the average.
    pub(crate) fn observe(&self, took: Duration) {
        let took = took.as_nanos().min(u128::from(u64::MAX)) as f64;
        // Lost updates between racing reconciles only blur the average.
        let old = self.avg_ns.load(Ordering::Relaxed) as f64;
        let new = if old == 0.0 {
            took
        } else {
            old + EWMA_WEIGHT * (took - old)
        };
        self.avg_ns.store(new as u64, Ordering::Relaxed);
    }

    /// The refresh interval for `connected` clients, with up to 10 %
    /// jitter so refreshes do not come in waves.
    pub(crate) fn interval(&self, connected: usize) -> Duration {
        let avg = Duration::from_nanos(self.avg_ns.load(Ordering::Relaxed));
        paced_interval(self.base, connected, self.slots, avg)
    }

    /// [`Self::interval`] plus jitter (0–10 %).
    pub(crate) fn next_refresh(&self, connected: usize) -> Duration {
        self.interval(connected)
            .mul_f64(1.0 + fastrand::f64() * 0.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configured_interval_holds_while_the_refresh_fits() {
        // 1,000 clients / 5 s = 200/s; 16 slots at 5 ms = 3,200/s, half 1,600/s.
        let i = paced_interval(Duration::from_secs(5), 1_000, 16, Duration::from_millis(5));
        assert_eq!(i, Duration::from_secs(5));
    }

    #[test]
    fn an_overloaded_refresh_is_stretched_to_half_the_capacity() {
        // 10,000 clients / 5 s = 2,000/s; 16 slots at 14 ms = 1,143/s,
        // half 571/s: 10,000 / 571 = 17.5 s.
        let i = paced_interval(
            Duration::from_secs(5),
            10_000,
            16,
            Duration::from_millis(14),
        );
        assert!((17.4..17.6).contains(&i.as_secs_f64()), "{i:?}");
    }

    #[test]
    fn the_average_follows_the_reconciles_and_drives_the_interval() {
        let p = Pacer::new(Duration::from_secs(30), 16);
        assert_eq!(p.interval(10_000), Duration::from_secs(30), "no data yet");
        p.observe(Duration::from_millis(100));
        // 16 / 0.1 s = 160/s, half 80/s: 10,000 clients need 125 s.
        assert_eq!(p.interval(10_000), Duration::from_secs(125));
        for _ in 0..500 {
            p.observe(Duration::from_millis(1));
        }
        assert_eq!(p.interval(10_000), Duration::from_secs(30));
        let j = p.next_refresh(10_000);
        assert!(
            j >= Duration::from_secs(30) && j <= Duration::from_secs(33),
            "{j:?}"
        );
    }
}
