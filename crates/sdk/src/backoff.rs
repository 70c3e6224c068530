//! Reconnect backoff: exponential with jitter, capped. Pure: [`Backoff::delay`] maps an attempt
//! number to a delay; the session sleeps it.
//!
//! Jitter matters for fleets: when an edge restarts, thousands of agents lose their connection
//! at the same instant, and without jitter they would all come back in the same instant too.

use std::time::Duration;

/// Reconnect timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the second retry (the first retry after a lost connection waits a random
    /// part of this, so a fleet spreads out).
    pub initial: Duration,
    /// Largest delay between attempts.
    pub max: Duration,
}

/// Default first delay.
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(500);

/// Default cap: an agent is back at most this long after its edge is.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: DEFAULT_INITIAL_BACKOFF,
            max: DEFAULT_MAX_BACKOFF,
        }
    }
}

impl Backoff {
    /// The delay after `failures` consecutive failures, with jitter from `rand`.
    pub fn delay(&self, failures: u32) -> Duration {
        self.delay_with(failures, rand::random::<f64>())
    }

    /// The delay after `failures` consecutive failures for a jitter sample `unit` in `[0, 1)`:
    /// attempt 0 waits `unit × initial`; attempt n waits between half and all of
    /// `min(max, initial × 2^(n-1))`.
    pub fn delay_with(&self, failures: u32, unit: f64) -> Duration {
        let unit = unit.clamp(0.0, 1.0);
        if failures == 0 {
            return self.initial.min(self.max).mul_f64(unit);
        }
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(30));
        let ceiling = self.initial.saturating_mul(factor).min(self.max);
        ceiling / 2 + (ceiling / 2).mul_f64(unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_doubles_and_caps() {
        let b = Backoff::default();
        assert_eq!(b.delay_with(0, 0.0), Duration::ZERO);
        assert!(b.delay_with(0, 0.999) < Duration::from_millis(500));
        assert_eq!(b.delay_with(1, 1.0), Duration::from_millis(500));
        assert_eq!(b.delay_with(1, 0.0), Duration::from_millis(250));
        assert_eq!(b.delay_with(2, 1.0), Duration::from_secs(1));
        assert_eq!(b.delay_with(7, 1.0), Duration::from_secs(30));
        for n in [8, 20, 31, 1000, u32::MAX] {
            let d = b.delay_with(n, 1.0);
            assert_eq!(d, Duration::from_secs(30), "attempt {n}");
            assert!(b.delay_with(n, 0.0) >= Duration::from_secs(15));
        }
    }

    #[test]
    fn random_delays_stay_within_the_cap() {
        let b = Backoff::default();
        for n in 0..100 {
            assert!(b.delay(n) <= b.max);
        }
    }
}
