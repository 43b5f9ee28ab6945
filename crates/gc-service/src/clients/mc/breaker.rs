//! A circuit breaker per meeting controller: after [`FAILURES_TO_OPEN`] calls in a row that
//! found it unreachable (no connection, the deadline passed), calls to it fail at once with a
//! 503 and `Retry-After` for [`OPEN_FOR`], instead of each waiting the call deadline until its
//! heartbeat times out and the meeting moves to another controller. Then one call goes through
//! as a probe: an answer (any answer, a refusal included) closes the breaker, another failure
//! opens it again. Refusals (a full room, an unknown user) say the controller is alive and
//! never count.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use common::error::{ApiError, ErrorCode};

/// Unreachable calls in a row that open the breaker.
pub const FAILURES_TO_OPEN: u32 = 3;
/// How long an open breaker refuses calls before it lets a probe through.
pub const OPEN_FOR: Duration = Duration::from_secs(5);

/// One controller's breaker; shared by every call to it (the channel cache holds it).
#[derive(Debug, Default)]
pub struct Breaker {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Unreachable calls since the last answer.
    failures: u32,
    /// Until when calls are refused; `None` while closed.
    open_until: Option<Instant>,
    /// A probe is on its way (after `open_until`): the others are still refused.
    probing: bool,
}

impl Breaker {
    /// Whether a call may go now; when not, the time until one may.
    pub fn admit(&self, now: Instant) -> Result<(), Duration> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match state.open_until {
            None => Ok(()),
            Some(until) if now < until => Err(until - now),
            Some(_) if state.probing => Err(OPEN_FOR),
            Some(_) => {
                state.probing = true;
                Ok(())
            }
        }
    }

    /// Records how a call that went ended: `reachable` when the controller answered anything.
    /// Returns true when this opened the breaker.
    pub fn record(&self, reachable: bool, now: Instant) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if reachable {
            *state = State::default();
            return false;
        }
        state.failures = state.failures.saturating_add(1);
        let reopen = state.probing;
        state.probing = false;
        if state.failures >= FAILURES_TO_OPEN || reopen {
            let was_closed = state.open_until.is_none();
            state.open_until = Some(now + OPEN_FOR);
            return was_closed || reopen;
        }
        false
    }
}

/// Whether a call's status says the controller was not reached (rather than that it answered).
pub fn unreachable(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
    )
}

/// The refusal of a call an open breaker stopped.
pub fn refusal(wait: Duration) -> ApiError {
    let mut error = ApiError::new(
        ErrorCode::ServiceUnavailable,
        "the meeting's controller is not answering, retry later",
    );
    error.retry_after_secs = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_opens_after_failures_in_a_row_and_closes_on_an_answer() {
        let breaker = Breaker::default();
        let t0 = Instant::now();
        for _ in 0..FAILURES_TO_OPEN - 1 {
            assert!(breaker.admit(t0).is_ok());
            assert!(!breaker.record(false, t0));
        }
        // An answer in between starts the count again.
        assert!(!breaker.record(true, t0));
        for _ in 0..FAILURES_TO_OPEN - 1 {
            assert!(!breaker.record(false, t0));
        }
        assert!(breaker.admit(t0).is_ok(), "still closed");
        assert!(breaker.record(false, t0), "the third in a row opens it");
        assert_eq!(breaker.admit(t0), Err(OPEN_FOR));
        let later = t0 + Duration::from_secs(2);
        assert_eq!(breaker.admit(later), Err(OPEN_FOR - Duration::from_secs(2)));

        // Past the time: one probe goes, the others wait for it.
        let after = t0 + OPEN_FOR;
        assert!(breaker.admit(after).is_ok(), "the probe");
        assert!(
            breaker.admit(after).is_err(),
            "a second call while the probe is out"
        );
        // The probe fails: open again, at once.
        assert!(breaker.record(false, after));
        assert!(breaker.admit(after).is_err());
        // The next probe is answered: closed.
        let again = after + OPEN_FOR;
        assert!(breaker.admit(again).is_ok());
        assert!(!breaker.record(true, again));
        assert!(breaker.admit(again).is_ok());
        assert!(breaker.admit(again).is_ok());
    }

    #[test]
    fn refusals_say_the_controller_is_alive() {
        for code in [
            tonic::Code::FailedPrecondition,
            tonic::Code::NotFound,
            tonic::Code::ResourceExhausted,
            tonic::Code::Internal,
            tonic::Code::Unauthenticated,
        ] {
            assert!(!unreachable(&tonic::Status::new(code, "")), "{code:?}");
        }
        for code in [tonic::Code::Unavailable, tonic::Code::DeadlineExceeded] {
            assert!(unreachable(&tonic::Status::new(code, "")), "{code:?}");
        }
    }

    #[test]
    fn the_refusal_says_when_to_retry() {
        let error = refusal(Duration::from_millis(4200));
        assert_eq!(error.code, ErrorCode::ServiceUnavailable);
        assert_eq!(error.retry_after_secs, Some(5));
        assert_eq!(refusal(Duration::ZERO).retry_after_secs, Some(1));
    }
}
