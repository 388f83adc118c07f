//! Capped exponential backoff between reconnect attempts with full jitter:
//! each delay is drawn uniformly from [0, step], the step doubling per
//! failure up to the maximum. A fleet that loses its server therefore
//! comes back spread over the whole step, never in lockstep.

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

    /// The delay before the next attempt: uniform in [0, step].
    pub fn next_delay(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(self.max);
        let micros = u64::try_from(step.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(fastrand::u64(0..=micros))
    }

    /// Jumps to the maximum step at once (for a refusal that retrying
    /// soon will not fix).
    pub fn to_max(&mut self) {
        self.step = self.max;
    }

    /// The step the next delay is drawn under.
    pub fn step(&self) -> Duration {
        self.step
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
    fn steps_double_up_to_the_cap_and_reset() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        for cap in [100u64, 200, 400, 800, 800, 800] {
            assert!(b.next_delay() <= Duration::from_millis(cap), "above {cap}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
        b.to_max();
        assert!(b.next_delay() <= Duration::from_millis(800));
    }

    /// Full jitter, the first retry included: over many draws from a
    /// fresh backoff the delays cover [0, step] uniformly (each tenth of
    /// the range gets its share, within a wide tolerance, and the mean is
    /// half the step).
    #[test]
    fn delays_are_uniform_over_zero_to_the_step() {
        const DRAWS: usize = 20_000;
        let step = Duration::from_millis(1_000);
        let mut deciles = [0usize; 10];
        let mut sum = Duration::ZERO;
        for _ in 0..DRAWS {
            let d = Backoff::new(step, step * 8).next_delay();
            assert!(d <= step);
            sum += d;
            let i = (d.as_secs_f64() / step.as_secs_f64() * 10.0) as usize;
            deciles[i.min(9)] += 1;
        }
        let share = DRAWS / 10;
        for (i, n) in deciles.iter().enumerate() {
            assert!(
                (share * 8 / 10..=share * 12 / 10).contains(n),
                "decile {i}: {n} of {DRAWS} draws (expected about {share}): {deciles:?}"
            );
        }
        let mean = sum / DRAWS as u32;
        assert!(
            (450..=550).contains(&mean.as_millis()),
            "mean {mean:?} should be about half the step"
        );
    }
}
