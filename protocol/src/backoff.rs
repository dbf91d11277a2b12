//! Retry delays in one place: exponential, capped, with jitter (the `backon` crate's
//! `ExponentialBuilder`), so that a hundred workers cut off by a dispatcher restart do not all
//! reconnect in the same millisecond, and no loop hand-rolls its own `(d * 2).min(..)`.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// Delays from `min` doubling to `max`, each stretched by a random 0–100 % (so a delay is at
/// most `2 * max`). [`Backoff::reset`] after a success starts again from `min`.
#[derive(Debug)]
pub struct Backoff {
    builder: ExponentialBuilder,
    delays: ExponentialBackoff,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        let builder = ExponentialBuilder::new()
            .with_min_delay(min)
            .with_max_delay(max)
            .with_jitter()
            .without_max_times();
        Self {
            delays: builder.build(),
            builder,
        }
    }

    /// The next delay to wait.
    pub fn next_delay(&mut self) -> Duration {
        self.delays
            .next()
            .unwrap_or_else(|| self.builder.build().next().unwrap_or_default())
    }

    /// After a success: the next failure waits `min` again.
    pub fn reset(&mut self) {
        self.delays = self.builder.build();
    }

    /// Waits at least `at_least` before the next try (e.g. a key mismatch, which does not mend
    /// itself in milliseconds); later delays keep growing from there.
    pub fn at_least(&mut self, at_least: Duration) -> Duration {
        self.next_delay().max(at_least)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_with_jitter_and_reset() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(2));
        let mut b = Backoff::new(min, max);
        let delays: Vec<Duration> = (0..12).map(|_| b.next_delay()).collect();
        assert!(delays[0] >= min && delays[0] <= min * 2, "{delays:?}");
        assert!(delays.iter().all(|d| *d <= max * 2), "{delays:?}");
        assert!(delays[11] >= max, "{delays:?}");
        let mut other = Backoff::new(min, max);
        let theirs: Vec<Duration> = (0..12).map(|_| other.next_delay()).collect();
        assert_ne!(delays, theirs, "jitter spreads the workers apart");
        b.reset();
        assert!(b.next_delay() <= min * 2);
    }
}
