//! Capped, jittered exponential backoff between reconnect attempts ("full
//! jitter": a random delay between half the current step and the step).

use std::time::Duration;

/// Reconnect backoff.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    step: Duration,
}

impl Backoff {
    /// Starts at `initial`, doubles per failure, never above `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        Self {
            initial,
            max: max.max(initial),
            step: initial,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(self.max);
        let half = step / 2;
        let jitter = fastrand::u64(0..=u64::try_from(half.as_millis()).unwrap_or(u64::MAX));
        half + Duration::from_millis(jitter)
    }

    /// Back to `initial` after a successful connection.
    pub fn reset(&mut self) {
        self.step = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let mut steps = Vec::new();
        for _ in 0..6 {
            steps.push(b.next_delay());
        }
        for (d, cap) in steps.iter().zip([100u64, 200, 400, 800, 800, 800]) {
            assert!(
                *d >= Duration::from_millis(cap / 2),
                "{d:?} below half of {cap}"
            );
            assert!(*d <= Duration::from_millis(cap), "{d:?} above {cap}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
