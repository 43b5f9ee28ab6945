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
//! - [`pool_options`] is the pool both services open: a bounded wait for a connection, no ping
//!   before each use (it doubled the round trips of short statements), except for connections
//!   that sat idle through an outage: after a statement failed for want of the database, a
//!   connection idle since before that failure is pinged before it is used, and dropped if it
//!   does not answer. A PostgreSQL restart or failover therefore costs the one request that
//!   finds it, not one request per connection that died idle in the pool.
//!
//! Dropping a statement's future at its deadline is safe with sqlx: the connection's pending
//! replies are drained (or the connection closed) before it serves anyone else, and a
//! transaction dropped unfinished is rolled back.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::FutureExt;
use sqlx::Connection;
use sqlx::pool::PoolConnectionMetadata;
use sqlx::postgres::{PgConnection, PgPoolOptions};

use crate::outage::OutageClock;

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

/// `statement`, failing with an I/O `TimedOut` after `deadline`. A failure that means the
/// database is unavailable is noted, for [`pool_options`]' check of idle connections. A
/// combinator, not an `async fn`: an `async fn` would keep its argument and the timeout holding
/// it side by side, doubling the size of every statement's future.
pub fn within<T>(
    deadline: Duration,
    statement: impl Future<Output = Result<T, sqlx::Error>>,
) -> impl Future<Output = Result<T, sqlx::Error>> {
    tokio::time::timeout(deadline, statement).map(move |answered| {
        let result = answered.unwrap_or_else(|_| Err(deadline_passed(deadline)));
        if let Err(error) = &result
            && is_unavailable(error)
        {
            OUTAGES.note();
        }
        result
    })
}

/// How long a request waits for a connection before it is answered 503.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle connections are closed after this (and the pool reopens them when needed).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// When a statement last failed for want of the database.
static OUTAGES: OutageClock = OutageClock::new();

/// Whether a connection idle for `idle_for` was already idle when the database last failed a
/// statement (it may have died meanwhile without anyone noticing).
fn idle_through_an_outage(idle_for: Duration) -> bool {
    OUTAGES.predates_the_last_failure(idle_for)
}

/// The pool options of AC and GC (see the module documentation); callers add their size and
/// session settings.
pub fn pool_options() -> PgPoolOptions {
    PgPoolOptions::new()
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .idle_timeout(IDLE_TIMEOUT)
        .before_acquire(check_after_an_outage)
}

type Check<'c> = Pin<Box<dyn Future<Output = Result<bool, sqlx::Error>> + Send + 'c>>;

/// A connection idle through an outage answers a ping within [`PING_DEADLINE`] or is closed
/// (an error closes it without the goodbye a dead peer would never read).
fn check_after_an_outage(connection: &mut PgConnection, meta: PoolConnectionMetadata) -> Check<'_> {
    Box::pin(async move {
        if idle_through_an_outage(meta.idle_for) {
            within(PING_DEADLINE, connection.ping()).await?;
        }
        Ok(true)
    })
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
/// lost, a statement past its deadline, the server saying it is shutting down, starting up,
/// or out of connections (SQLSTATE class 08, 57P01–57P03, 53300), or a stream that is not
/// PostgreSQL speaking (a protocol error: what sqlx reports when a proxy or load balancer in
/// front of a server that went away accepts the connection and then resets it, for example
/// "unexpected response from SSLRequest: 0x00"). None of these is the statement's own fault;
/// the next connection may well work.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
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

    #[tokio::test]
    async fn connections_idle_through_an_outage_are_the_ones_checked() {
        let idle_for_a_minute = Duration::from_secs(60);
        let outage = std::future::ready(Err::<(), _>(sqlx::Error::PoolTimedOut));
        assert!(within(STATEMENT_DEADLINE, outage).await.is_err());
        assert!(idle_through_an_outage(idle_for_a_minute));
        // A connection that went idle after the failure was in use, so it was fine then.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!idle_through_an_outage(Duration::from_millis(5)));
        // A statement's own error is not an outage.
        OUTAGES.reset();
        let refused = std::future::ready(Err::<(), _>(sqlx::Error::RowNotFound));
        assert!(within(STATEMENT_DEADLINE, refused).await.is_err());
        assert!(!idle_through_an_outage(idle_for_a_minute));
    }

    #[test]
    fn only_errors_of_reaching_the_database_are_unavailable() {
        assert!(is_unavailable(&sqlx::Error::PoolTimedOut));
        assert!(is_unavailable(&sqlx::Error::PoolClosed));
        assert!(is_unavailable(&sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused
        ))));
        assert!(is_unavailable(&sqlx::Error::Protocol("unexpected".into())));
        assert!(!is_unavailable(&sqlx::Error::RowNotFound));
        assert!(!is_unavailable(&sqlx::Error::ColumnNotFound("x".into())));
        assert!(!is_unavailable(&sqlx::Error::Decode("not a status".into())));
    }

    /// A proxy in front of a stopped PostgreSQL (PgBouncer, HAProxy, a Kubernetes Service, the
    /// fault suite's proxy) accepts the connection, then resets or closes it. Whichever error
    /// sqlx makes of that, with TLS offered or not, is "unavailable". The fault suite's
    /// `postgres-stopped` met it as a 500 on a leave and on an admit: a connection closed after
    /// TLS was offered is "unexpected response from SSLRequest: 0x00", a protocol error.
    #[tokio::test]
    async fn a_connection_accepted_then_cut_by_a_proxy_is_unavailable() {
        use tokio::io::AsyncReadExt as _;
        for reset in [true, false] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let server = tokio::spawn(async move {
                for _ in 0..2 {
                    let (mut stream, _) = listener.accept().await.unwrap();
                    // The client's first message (SSLRequest or StartupMessage), unanswered.
                    let mut first = [0u8; 8];
                    let _ = stream.read_exact(&mut first).await;
                    if reset {
                        let socket = socket2::SockRef::from(&stream);
                        socket.set_linger(Some(Duration::ZERO)).unwrap();
                    }
                    drop(stream);
                }
            });
            for ssl in ["prefer", "disable"] {
                let url = format!("postgres://convene@127.0.0.1:{port}/convene?sslmode={ssl}");
                let error = PgConnection::connect(&url).await.unwrap_err();
                assert!(
                    is_unavailable(&error),
                    "reset {reset}, sslmode {ssl}: {error:?}"
                );
            }
            server.await.unwrap();
        }
    }
}
