//! Capped exponential backoff, the crate's one: `initial · 2^n`, at most
//! `max`, then a jitter. The SDK reconnects with [`Backoff`] (full jitter);
//! the operator spaces its retries — Centrifugo requests (±25 %), wallet
//! syncs and reconcile errors (no jitter) — with [`Exponential`].

use std::time::Duration;

/// How a step becomes a delay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Jitter {
    /// The step itself.
    None,
    /// Uniform in [0, step] ("full jitter"): a crowd that failed together
    /// spreads over the whole step.
    Full,
    /// Uniform in [step · (1 − f), step · (1 + f)].
    Spread(f64),
}

/// A backoff policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exponential {
    /// The step after no failure.
    pub initial: Duration,
    /// The largest step.
    pub max: Duration,
    /// How a step becomes a delay.
    pub jitter: Jitter,
}

impl Exponential {
    /// `initial · 2^n` (n = failures so far), at most `max`.
    pub fn step(&self, n: u32) -> Duration {
        self.initial
            .saturating_mul(1u32 << n.min(31))
            .min(self.max.max(self.initial))
    }

    /// The delay after `n` failures: [`Exponential::step`] with the jitter.
    pub fn delay(&self, n: u32) -> Duration {
        let step = self.step(n);
        match self.jitter {
            Jitter::None => step,
            Jitter::Full => {
                let micros = u64::try_from(step.as_micros()).unwrap_or(u64::MAX);
                Duration::from_micros(fastrand::u64(0..=micros))
            }
            Jitter::Spread(f) => step.mul_f64((1.0 - f) + fastrand::f64() * 2.0 * f),
        }
    }
}

/// A reconnect loop's backoff: full jitter from the first retry, the step
/// doubling per failure up to the maximum, back to the start after a
/// success.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: Exponential,
    failures: u32,
}

impl Backoff {
    /// Starts at `initial` (at least 1 ms), doubles per failure, never
    /// above `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        Self {
            policy: Exponential {
                initial,
                max: max.max(initial),
                jitter: Jitter::Full,
            },
            failures: 0,
        }
    }

    /// The delay before the next attempt: uniform in [0, step].
    pub fn next_delay(&mut self) -> Duration {
        let d = self.policy.delay(self.failures);
        self.failures = self.failures.saturating_add(1);
        d
    }

    /// Jumps to the maximum step at once (for a refusal that retrying
    /// soon will not fix).
    pub fn to_max(&mut self) {
        self.failures = 31;
    }

    /// The step the next delay is drawn under.
    pub fn step(&self) -> Duration {
        self.policy.step(self.failures)
    }

    /// Back to the initial step after a successful connection.
    pub fn reset(&mut self) {
        self.failures = 0;
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

    #[test]
    fn policies_without_and_with_a_spread() {
        let p = Exponential {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
            jitter: Jitter::None,
        };
        let secs: Vec<u64> = [0, 1, 2, 8, 9, 40]
            .iter()
            .map(|n| p.delay(*n).as_secs())
            .collect();
        assert_eq!(secs, [1, 2, 4, 256, 300, 300]);
        let s = Exponential {
            jitter: Jitter::Spread(0.25),
            ..p
        };
        for _ in 0..100 {
            let d = s.delay(2);
            assert!(
                d >= Duration::from_secs(3) && d <= Duration::from_secs(5),
                "{d:?}"
            );
        }
    }
}
