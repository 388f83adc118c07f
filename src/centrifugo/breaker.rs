//! The circuit breaker in front of Centrifugo: closed → open after
//! `threshold` consecutive failed requests → half-open when the open
//! period is over, letting exactly one probe request through → closed when
//! it succeeds, open again when it fails.

use tokio::time::{Duration, Instant};

/// The breaker's state (the `crypto_centrifugo_breaker_state` gauge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests flow (gauge 0).
    Closed,
    /// No requests until the open period ends (gauge 1).
    Open,
    /// One probe request is in flight (gauge 2).
    HalfOpen,
}

impl BreakerState {
    /// The gauge value.
    pub fn gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
        }
    }
}

/// What the sender may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Permit {
    /// Send (breaker closed), with retries.
    Send,
    /// Send one probe (breaker half-open), without retries.
    Probe,
    /// Wait: the breaker is open until then.
    WaitUntil(Instant),
}

#[derive(Debug)]
pub(crate) struct Breaker {
    threshold: u32,
    open_for: Duration,
    failures: u32,
    state: BreakerState,
    open_until: Instant,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, open_for: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            open_for,
            failures: 0,
            state: BreakerState::Closed,
            open_until: Instant::now(),
        }
    }

    pub(crate) fn state(&self) -> BreakerState {
        self.state
    }

    /// Asks to send a request at `now`. After the open period the first
    /// caller gets the probe and the breaker turns half-open; until that
    /// probe reports, nobody else may send.
    pub(crate) fn permit(&mut self, now: Instant) -> Permit {
        match self.state {
            BreakerState::Closed => Permit::Send,
            BreakerState::Open if now >= self.open_until => {
                self.state = BreakerState::HalfOpen;
                Permit::Probe
            }
            BreakerState::Open => Permit::WaitUntil(self.open_until),
            // A probe is in flight (the sender is sequential, so this is
            // only reached by a caller that did not report it).
            BreakerState::HalfOpen => Permit::WaitUntil(now + self.open_for),
        }
    }

    /// A request succeeded: closed.
    pub(crate) fn success(&mut self) {
        self.failures = 0;
        self.state = BreakerState::Closed;
    }

    /// A request failed at `now`: the threshold-th consecutive failure, or
    /// a failed probe, opens the breaker for the open period.
    pub(crate) fn failure(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        if self.state != BreakerState::Closed || self.failures >= self.threshold {
            self.state = BreakerState::Open;
            self.open_until = now + self.open_for;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_n_failures_probes_once_and_closes_on_success() {
        let open_for = Duration::from_secs(10);
        let mut b = Breaker::new(3, open_for);
        let t0 = Instant::now();
        assert_eq!(b.permit(t0), Permit::Send);
        b.failure(t0);
        b.failure(t0);
        b.success(); // not consecutive
        b.failure(t0);
        b.failure(t0);
        assert_eq!(b.state(), BreakerState::Closed);
        b.failure(t0);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.permit(t0), Permit::WaitUntil(t0 + open_for));
        // After the open period: exactly one probe.
        let t1 = t0 + open_for;
        assert_eq!(b.permit(t1), Permit::Probe);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(matches!(b.permit(t1), Permit::WaitUntil(_)));
        // A failed probe opens it again for a full period.
        b.failure(t1);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.permit(t1), Permit::WaitUntil(t1 + open_for));
        let t2 = t1 + open_for;
        assert_eq!(b.permit(t2), Permit::Probe);
        b.success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.permit(t2), Permit::Send);
        // Closed again: it takes `threshold` failures to open.
        b.failure(t2);
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(BreakerState::HalfOpen.gauge(), 2);
    }
}
