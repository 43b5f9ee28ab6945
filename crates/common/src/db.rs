//! What AC and GC do when PostgreSQL is down, hung or refusing (feature `db`).
//!
//! - Every statement has a deadline ([`Bounded::bounded`], [`STATEMENT_DEADLINE`]) that covers
//!   waiting for a connection too: a PostgreSQL that stopped answering (a stalled host, a
//!   SIGSTOP, a partition that drops packets, which TCP notices only after minutes) fails the
//!   statement after 5 s rather than holding its request to the request timeout. The deadline
//!   error is an I/O `TimedOut`, so it reads as "unreachable" below.
//! - [`is_unavailable`] tells the errors that mean "the database cannot serve now, retry"
//!   (no connection, a connection lost, a server shutting down or starting up, too many
//!   connections) from those of the statement itself; the services answer the first with 503
//!   and `Retry-After`, the second with 500.
//!
//! Dropping a statement's future at its deadline is safe with sqlx: the connection's pending
//! replies are drained (or the connection closed) before it serves anyone else, and a
//! transaction dropped unfinished is rolled back.

use std::future::Future;
use std::time::Duration;

/// The longest a statement (with the wait for its connection) may take before its caller is
/// told the database is unavailable. A statement of ours takes milliseconds; five seconds is a
/// database that is not answering.
pub const STATEMENT_DEADLINE: Duration = Duration::from_secs(5);

/// The deadline of a readiness probe's round trip: under the kubelet's probe timeout (2 s in
/// `infra/k8s`), so that a hung database makes the probe answer 503 rather than time out.
pub const PING_DEADLINE: Duration = Duration::from_secs(1);

/// A statement with [`STATEMENT_DEADLINE`]: `query.fetch_one(pool).bounded().await`.
pub trait Bounded<T>: Future<Output = Result<T, sqlx::Error>> + Sized {
    /// This statement, failing with an I/O `TimedOut` after [`STATEMENT_DEADLINE`].
    fn bounded(self) -> impl Future<Output = Result<T, sqlx::Error>> {
        within(STATEMENT_DEADLINE, self)
    }
}

impl<T, F: Future<Output = Result<T, sqlx::Error>>> Bounded<T> for F {}

/// `statement`, failing with an I/O `TimedOut` after `deadline`.
pub async fn within<T>(
    deadline: Duration,
    statement: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, sqlx::Error> {
    match tokio::time::timeout(deadline, statement).await {
        Ok(result) => result,
        Err(_) => Err(deadline_passed(deadline)),
    }
}

fn deadline_passed(deadline: Duration) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!(
            "PostgreSQL did not answer within {} ms",
            deadline.as_millis()
        ),
    ))
}

/// Whether `error` means the database cannot serve now and the same request may succeed
/// later: no connection within the pool's wait, a connection that could not be made or was
/// lost, a statement past its deadline, or the server saying it is shutting down, starting up,
/// or out of connections (SQLSTATE class 08, 57P01–57P03, 53300).
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_statement_that_never_answers_fails_at_its_deadline_as_unavailable() {
        let hung = std::future::pending::<Result<(), sqlx::Error>>();
        let started = tokio::time::Instant::now();
        let error = hung.bounded().await.unwrap_err();
        assert_eq!(started.elapsed(), STATEMENT_DEADLINE);
        assert!(is_unavailable(&error), "{error}");
        assert!(
            error.to_string().contains("did not answer within 5000 ms"),
            "{error}"
        );

        let answered = async { Ok::<_, sqlx::Error>(7) }.bounded().await.unwrap();
        assert_eq!(answered, 7);
    }

    #[test]
    fn only_errors_of_reaching_the_database_are_unavailable() {
        assert!(is_unavailable(&sqlx::Error::PoolTimedOut));
        assert!(is_unavailable(&sqlx::Error::PoolClosed));
        assert!(is_unavailable(&sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused
        ))));
        assert!(!is_unavailable(&sqlx::Error::RowNotFound));
        assert!(!is_unavailable(&sqlx::Error::Protocol("unexpected".into())));
        assert!(!is_unavailable(&sqlx::Error::ColumnNotFound("x".into())));
    }
}
