//! Waits between retries: exponential backoff with jitter, written once for every loop that
//! retries a peer (MC's registration, its reports to GC and its Redis subscription; AC's wait for
//! a free credential budget).
//!
//! Each wait is drawn uniformly between half and all of the current step, and the step doubles
//! from `first` up to `max`. The jitter spreads out the retries of many replicas that lost the
//! same peer at the same moment, so they do not all come back at once when it returns; the
//! half that is kept means a retry never comes much sooner than its step.

use std::time::Duration;

/// The waits of one retry loop.
#[derive(Clone, Debug)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    step: Duration,
}

impl Backoff {
    /// Steps from `first`, doubling, up to `max` (`max` below `first` is taken as `first`).
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max: max.max(first),
            step: first,
        }
    }

    /// The next wait (between half and all of the current step); the step doubles after it.
    pub fn next_wait(&mut self) -> Duration {
        let step = self.step;
        self.step = step.saturating_mul(2).min(self.max);
        let half = step / 2;
        let spread = u64::try_from((step - half).as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(fastrand::u64(0..=spread))
    }

    /// The step that the next [`Backoff::next_wait`] draws from, before jitter.
    pub fn step(&self) -> Duration {
        self.step
    }

    /// Back to the first step (the peer answered).
    pub fn reset(&mut self) {
        self.step = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_max_each_within_half_and_all_of_its_step() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let steps = [100, 200, 400, 800, 1000, 1000];
        for step in steps {
            let step = Duration::from_millis(step);
            assert_eq!(backoff.step(), step);
            let wait = backoff.next_wait();
            assert!(
                wait >= step / 2 && wait <= step,
                "{wait:?} for a step of {step:?}"
            );
        }
        backoff.reset();
        assert_eq!(backoff.step(), Duration::from_millis(100));
    }

    #[test]
    fn the_waits_are_spread_not_all_equal() {
        let waits: std::collections::HashSet<Duration> = (0..50)
            .map(|_| Backoff::new(Duration::from_secs(1), Duration::from_secs(1)).next_wait())
            .collect();
        assert!(waits.len() > 10, "{} distinct waits of 50", waits.len());
    }

    #[test]
    fn odd_bounds_do_not_panic() {
        let mut zero = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(zero.next_wait(), Duration::ZERO);
        let mut inverted = Backoff::new(Duration::from_secs(2), Duration::from_secs(1));
        assert!(inverted.next_wait() <= Duration::from_secs(2));
        assert_eq!(inverted.step(), Duration::from_secs(2));
        let mut huge = Backoff::new(Duration::MAX / 2, Duration::MAX);
        huge.next_wait();
        huge.next_wait();
        assert_eq!(huge.step(), Duration::MAX);
    }
}
