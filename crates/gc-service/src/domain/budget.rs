//! A budget of actions per key that refills over time (a token bucket per key), bounded in the
//! keys it remembers: how often one user may join and leave one meeting.
//!
//! Joining and leaving are cheap for a client and not for Convene (a room script, a visit and
//! an audit row each): one user cycling join/leave hundreds of times a second filled the audit
//! log and slowed every other request of the meeting (issue 22). The budget is per GC replica:
//! with N replicas behind a round-robin balancer a user gets at most N times the rate, which is
//! still a bound.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The budget of one kind of action, per key.
#[derive(Debug)]
pub struct Budget<K> {
    burst: f64,
    per_second: f64,
    max_keys: usize,
    buckets: Mutex<HashMap<K, Bucket>>,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refilled(self, now: Instant, burst: f64, per_second: f64) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + elapsed * per_second).min(burst)
    }
}

impl<K: Hash + Eq + Clone> Budget<K> {
    /// `burst` actions at once, then one more every `1 / per_second` seconds; at most
    /// `max_keys` keys remembered (see [`Budget::take`]).
    pub fn new(burst: u32, per_second: f64, max_keys: usize) -> Self {
        Self {
            burst: f64::from(burst.max(1)),
            per_second: per_second.max(f64::MIN_POSITIVE),
            max_keys: max_keys.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one action of `key`'s budget at `now`, or says how long until one is back.
    ///
    /// A key whose bucket is full again needs no memory: when the map is at `max_keys`, those
    /// are dropped first. If every remembered key is still spending (more busy keys than the
    /// bound), a new key is refused for a second rather than the map growing.
    pub fn take(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !buckets.contains_key(key) && buckets.len() >= self.max_keys {
            let (burst, per_second) = (self.burst, self.per_second);
            buckets.retain(|_, bucket| bucket.refilled(now, burst, per_second) < burst);
            if buckets.len() >= self.max_keys {
                return Err(Duration::from_secs(1));
            }
        }
        let bucket = buckets.entry(key.clone()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let tokens = bucket.refilled(now, self.burst, self.per_second);
        if tokens >= 1.0 {
            *bucket = Bucket {
                tokens: tokens - 1.0,
                at: now,
            };
            Ok(())
        } else {
            *bucket = Bucket { tokens, at: now };
            Err(Duration::from_secs_f64((1.0 - tokens) / self.per_second))
        }
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_spends_its_burst_then_one_action_per_refill() {
        let budget = Budget::new(3, 0.5, 10);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(budget.take(&"ada", start), Ok(()));
        }
        let wait = budget.take(&"ada", start).unwrap_err();
        assert_eq!(wait, Duration::from_secs(2), "one action every two seconds");
        // Another key has its own budget.
        assert_eq!(budget.take(&"grace", start), Ok(()));
        // Two seconds on, one action is back, and only one.
        let later = start + Duration::from_secs(2);
        assert_eq!(budget.take(&"ada", later), Ok(()));
        assert!(budget.take(&"ada", later).is_err());
    }

    #[test]
    fn refusals_do_not_lengthen_the_wait() {
        let budget = Budget::new(1, 1.0, 10);
        let start = Instant::now();
        budget.take(&1, start).unwrap();
        for ms in [100, 200, 500, 900] {
            assert!(budget.take(&1, start + Duration::from_millis(ms)).is_err());
        }
        assert_eq!(budget.take(&1, start + Duration::from_secs(1)), Ok(()));
    }

    #[test]
    fn the_keys_remembered_stay_within_the_bound() {
        let budget = Budget::new(2, 1.0, 3);
        let start = Instant::now();
        for key in 0..3 {
            budget.take(&key, start).unwrap();
        }
        // All three still spending: a fourth key waits rather than grow the map.
        assert_eq!(budget.take(&3, start), Err(Duration::from_secs(1)));
        assert_eq!(budget.len(), 3);
        // Once their buckets are full again they are forgotten, and new keys fit.
        let later = start + Duration::from_secs(5);
        for key in 3..6 {
            assert_eq!(budget.take(&key, later), Ok(()));
        }
        assert_eq!(budget.len(), 3);
        assert_eq!(budget.take(&0, later), Err(Duration::from_secs(1)));
    }
}
