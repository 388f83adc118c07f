//! Limits: a token bucket for each client's message rate, and the
//! replica's registration rate (admission during reconnect storms).

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// How long a registration may wait for its token before it is refused.
pub(crate) const ADMISSION_WAIT: Duration = Duration::from_millis(250);

/// How many registrations a replica accepts per second: a token bucket
/// shared by every new stream. A registration that finds no token waits
/// for one if it comes within `max_wait`; otherwise it is refused, with
/// the time until the bucket has room again as the hint, so a crowd
/// spreads over the replicas and over time instead of piling onto one.
#[derive(Debug)]
pub(crate) struct Admission {
    rate: f64,
    burst: f64,
    max_wait: Duration,
    state: Mutex<(f64, Instant)>,
}

impl Admission {
    /// `rate == 0` means no limit.
    pub(crate) fn new(rate: u32, burst: u32, max_wait: Duration, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate: f64::from(rate),
            burst,
            max_wait,
            state: Mutex::new((burst, now)),
        }
    }

    /// `Ok(wait)`: admitted once `wait` has passed (its token is taken);
    /// `Err(retry_after)`: refused.
    pub(crate) fn reserve(&self, now: Instant) -> Result<Duration, Duration> {
        if self.rate == 0.0 {
            return Ok(Duration::ZERO);
        }
        let mut st = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (tokens, last) = &mut *st;
        *tokens = (*tokens + now.saturating_duration_since(*last).as_secs_f64() * self.rate)
            .min(self.burst);
        *last = now;
        let wait = Duration::from_secs_f64(((1.0 - *tokens) / self.rate).max(0.0));
        if wait <= self.max_wait {
            *tokens -= 1.0;
            Ok(wait)
        } else {
            // Past the waiting room: come back when this one's token
            // (and the ones already promised) are earned.
            Err(wait)
        }
    }
}

/// Allows `rate` messages per second on average and bursts of `burst`.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket; `rate == 0` means no limit.
    pub(crate) fn new(rate: u32, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(rate).max(1));
        Self {
            rate: f64::from(rate),
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token; `false` when the client is over its limit.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_take_the_burst_then_wait_briefly_then_are_refused_with_a_hint() {
        let t0 = Instant::now();
        let a = Admission::new(10, 5, Duration::from_millis(250), t0);
        for _ in 0..5 {
            assert_eq!(a.reserve(t0), Ok(Duration::ZERO), "the burst");
        }
        // At 10/s the next tokens come 100 ms apart: two fit in the wait.
        assert_eq!(a.reserve(t0), Ok(Duration::from_millis(100)));
        assert_eq!(a.reserve(t0), Ok(Duration::from_millis(200)));
        let refused = a.reserve(t0).unwrap_err();
        assert_eq!(
            refused,
            Duration::from_millis(300),
            "the hint: when room comes"
        );
        // A refusal takes nothing: the same answer again.
        assert_eq!(a.reserve(t0), Err(Duration::from_millis(300)));
        // A second later the promised tokens are paid and more earned.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(a.reserve(t1), Ok(Duration::ZERO));
        // No limit.
        let free = Admission::new(0, 0, Duration::ZERO, t0);
        assert!((0..10_000).all(|_| free.reserve(t0) == Ok(Duration::ZERO)));
    }

    #[test]
    fn allows_the_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 20, t0);
        assert!((0..20).all(|_| b.take(t0)), "the burst");
        assert!(!b.take(t0), "over the burst");
        // 100 ms later: one more token at 10/s.
        let t1 = t0 + Duration::from_millis(100);
        assert!(b.take(t1));
        assert!(!b.take(t1));
        // A long pause refills to the burst, not beyond.
        let t2 = t1 + Duration::from_secs(60);
        assert!((0..20).all(|_| b.take(t2)));
        assert!(!b.take(t2));
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(0, 0, t0);
        assert!((0..10_000).all(|_| b.take(t0)));
    }
}
