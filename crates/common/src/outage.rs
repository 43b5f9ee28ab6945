//! When a data store last failed a command, for pools that check their connections only then.
//!
//! A pool that checks every connection it hands out (a `PING`, a `SELECT 1`) pays a round trip
//! before every command. The pools of AC and GC (PostgreSQL, `db::pool_options`) and of MC
//! (Redis, `room::connection::Checked`) check a connection only if it has been out of use since
//! before the last failure: it may have been the failing one, or died idle meanwhile. One
//! [`OutageClock`] per kind of store notes the failures.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// When a command last failed for want of its store (0: never), in milliseconds of the
/// process's own clock.
#[derive(Debug, Default)]
pub struct OutageClock {
    last_ms: AtomicU64,
}

impl OutageClock {
    pub const fn new() -> Self {
        Self {
            last_ms: AtomicU64::new(0),
        }
    }

    /// A command failed now.
    pub fn note(&self) {
        self.last_ms.store(clock_ms(), Ordering::Relaxed);
    }

    /// Whether a connection out of use for `unused_for` was already so when a command last
    /// failed (it is to be checked before it is used again). Within the clock's millisecond it
    /// counts as before: a connection handed out just before a failure may be the failing one.
    pub fn predates_the_last_failure(&self, unused_for: Duration) -> bool {
        let last = self.last_ms.load(Ordering::Relaxed);
        let unused_ms = u64::try_from(unused_for.as_millis()).unwrap_or(u64::MAX);
        last != 0 && clock_ms().saturating_sub(last) <= unused_ms
    }

    /// Forgets every failure (tests).
    pub fn reset(&self) {
        self.last_ms.store(0, Ordering::Relaxed);
    }
}

/// Milliseconds since the process first asked, from 1.
fn clock_ms() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let elapsed = ORIGIN.get_or_init(Instant::now).elapsed().as_millis();
    u64::try_from(elapsed).unwrap_or(u64::MAX).saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_was_unused_since_before_the_last_failure_is_checked() {
        let clock = OutageClock::new();
        // Nothing failed yet: nothing is checked, however long it sat unused.
        assert!(!clock.predates_the_last_failure(Duration::from_secs(3600)));
        clock.note();
        // Unused for a minute: it was unused (or the failing one) at the failure.
        assert!(clock.predates_the_last_failure(Duration::from_secs(60)));
        // Used since (unused for less than the time since the failure): fine then.
        std::thread::sleep(Duration::from_millis(20));
        assert!(!clock.predates_the_last_failure(Duration::from_millis(5)));
        clock.reset();
        assert!(!clock.predates_the_last_failure(Duration::from_secs(60)));
    }
}
