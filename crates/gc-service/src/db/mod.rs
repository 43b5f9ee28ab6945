//! GC's SQL: plain async functions over a [`PgPool`], one file per table family.
//!
//! Queries use sqlx's runtime API (`query_as` with [`sqlx::FromRow`] rows), so building needs no
//! database; sqlx prepares each statement once per connection and reuses it.

use common::shell::Background;

use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;

pub mod admissions;
pub mod controllers;
pub mod creates;
pub mod events;
pub mod guests;
pub mod hosts;
pub mod housekeeping;
pub mod idempotency;
pub mod lookups;
pub mod meetings;
pub mod participants;
pub mod web;
pub mod webhook_outcomes;
pub mod webhooks;

/// Statements of a change run without a transaction of their own before one that takes the
/// meeting's lock first ([`participants::record_leave`], [`meetings::end_and_record`]).
pub const FRESH_ATTEMPTS: usize = 3;

/// What a statement that locks a meeting's row found ([`participants::LEAVE_SQL`], [`meetings::END_SQL`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded<T> {
    Done(T),
    /// The row changed between the statement's snapshot and its lock: nothing was written.
    Stale,
}

/// The migrations of the whole platform (AC's and GC's share one database), embedded at compile
/// time; `build.rs` makes a new file trigger a rebuild.
pub fn migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate!("../../migrations")
}

/// Opens the pool (`common::db::pool_options`): waiting for a connection is bounded so an
/// exhausted pool answers 503 quickly instead of piling requests up, and connections that sat
/// idle through an outage are checked before use.
pub async fn connect(url: &SecretString, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    common::db::pool_options()
        .max_connections(max_connections)
        .connect(url.expose_secret())
        .await
}

/// Connections of the batching tasks' own pool ([`batch_pool`]): one each for [`lookups`],
/// [`admissions`] and [`guests`], which run one statement at a time. (The third was a spare
/// before guests were recorded in batches; a connection being replaced now makes its queue wait
/// for another, at most the pool's 5 s.)
pub const BATCH_CONNECTIONS: u32 = 3;

/// The pool the join's batching tasks ([`lookups`], [`admissions`], [`guests`]) run their statements on: `pool`'s database and settings, at most [`BATCH_CONNECTIONS`] connections, each with
/// `plan_cache_mode = force_generic_plan` and the planner held to index nested loops (below),
/// and closed when `pool` is closed.
///
/// Their statements take arrays (`= any($1)`, `unnest($3)`). With PostgreSQL's default plan
/// cache mode such a statement is planned again on every execution: the generic plan's estimate
/// for an array of unknown length (ten elements) never beats the custom plans', made for the
/// actual few, so the cache keeps choosing custom plans, each costing more than the index
/// lookups it runs (a join's meeting read: 0.3 ms a statement with a custom plan, 0.13 ms with
/// the generic one, docs/benchmarks.md). Their generic plans are the custom plans' shape. The
/// setting is kept to these connections because other statements of GC do rely on custom
/// plans: the history's and the housekeeping's fold a `$n is null or …` or `$2 and …` away
/// once they know the value.
///
/// A plan made once must stay right as the tables grow. Made while `participants` held a few
/// dozen rows (a database just created, or analyzed when it was small), the admission's
/// generic plan hashed the whole table, read from end to end, against the batch's few seats,
/// and went on doing so every time as the table grew to tens of thousands of rows (808 µs of
/// PostgreSQL CPU per join against 262 on a larger database, docs/benchmarks.md; seen with
/// `auto_explain` on GC's sessions). These statements only ever touch the rows their arrays
/// name, a few hundred at most, which nested loops over the indexes find in a few steps each,
/// whatever the tables hold; so their sessions turn off sequential scans, hash joins and merge
/// joins, and the planner takes that shape whatever it estimates. (Sequential scans off alone
/// made it read a whole index instead.)
///
/// Own connections also keep the batching tasks out of the request handlers' queue for a
/// connection: an exhausted main pool no longer stalls every join's meeting read.
pub fn batch_pool(pool: &PgPool, background: &Background) -> PgPool {
    side_pool(pool, background, BATCH_CONNECTIONS, index_plans(pool))
}

/// `pool`'s connect options with each statement planned once (`force_generic_plan`) and the
/// planner held to index nested loops: for statements that only ever touch the rows their
/// arguments name ([`batch_pool`] says why). A statement on these sessions should name those
/// rows in an index condition (`id = any (…)`, as the webhook workers' do), so that its plan,
/// made once, perhaps while the table was empty, looks them up whichever way round it joins
/// (held to nested loops, such a plan can read a whole index instead of a table). JIT
/// compilation is off: a sequential scan that is the only way (a small table read whole)
/// carries the planner's penalty for disabled nodes, whose cost would otherwise have every
/// execution compiled, 100-400 ms each.
fn index_plans(pool: &PgPool) -> sqlx::postgres::PgConnectOptions {
    pool.connect_options().as_ref().clone().options([
        ("plan_cache_mode", "force_generic_plan"),
        ("enable_seqscan", "off"),
        ("enable_hashjoin", "off"),
        ("enable_mergejoin", "off"),
        ("jit", "off"),
    ])
}

/// Connections of the webhook delivery workers' own pool ([`webhook_pool`]).
pub const WEBHOOK_CONNECTIONS: u32 = 2;

/// The pool the webhook delivery workers claim and finish deliveries on: `pool`'s database and
/// settings, at most [`WEBHOOK_CONNECTIONS`] connections, closed with `pool`. A storm of
/// deliveries (or of their outcomes) then never takes a connection a request is waiting for,
/// and a flood of requests never stops deliveries.
///
/// Its sessions plan like [`batch_pool`]'s: once, and held to index nested loops. The claim
/// (`webhooks::CLAIM_SQL`) and the outcomes touch only the rows they claim or name, but under
/// the default plan cache the claim went to a generic plan after five runs, and that plan,
/// not knowing how many rows the claim picks, updated them by hashing the whole
/// `webhook_deliveries` table, read from end to end, delivered rows and all (kept for
/// `WEBHOOK_RETENTION_DAYS`): 17 ms a claim of four rows in the webhook benchmark, and a backlog
/// of 7,000 deliveries that took 22-82 s to drain (docs/benchmarks.md, "Webhooks").
pub fn webhook_pool(pool: &PgPool, background: &Background) -> PgPool {
    side_pool(pool, background, WEBHOOK_CONNECTIONS, index_plans(pool))
}

/// A pool of at most `connections` to `pool`'s database with `options`, closed when `pool` is
/// closed or at the last step of a stop.
fn side_pool(
    pool: &PgPool,
    background: &Background,
    connections: u32,
    options: sqlx::postgres::PgConnectOptions,
) -> PgPool {
    let batch = common::db::pool_options()
        .max_connections(connections)
        .connect_lazy_with(options);
    // Closed with the main pool (when a test's database is about to be dropped, which waits
    // for these sessions to end), or at the last step of a stop, once the queues that use it
    // have nothing left to do.
    let closed = pool.close_event();
    let finishing = background.finishing().clone();
    let closing = batch.clone();
    background.spawn("batch pool closer", async move {
        tokio::select! {
            () = closed => {}
            () = finishing.cancelled() => {}
        }
        closing.close().await;
    });
    batch
}

/// Readiness: the database answers a trivial query.
pub async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("select 1").execute(pool).await.map(|_| ())
}

/// The error of a statement shared by several callers, for each of them (sqlx errors cannot be
/// cloned): the pool's own errors keep their kind (a timeout is still a 503), a database that
/// is away (`common::db::is_unavailable`: a reset connection, a terminated session, …) stays
/// a 503 as an I/O error with the message, others become a driver error with the message (a
/// 500).
fn copy_error(error: &sqlx::Error) -> sqlx::Error {
    match error {
        sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut,
        sqlx::Error::PoolClosed => sqlx::Error::PoolClosed,
        away if common::db::is_unavailable(away) => sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            format!("a shared statement failed: {away}"),
        )),
        other => sqlx::Error::AnyDriverError(format!("a shared statement failed: {other}").into()),
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Connection as _;

    use super::*;

    /// A session PostgreSQL terminates (a restart, a failover: SQLSTATE 57P01) under a shared
    /// statement is a 503 for every caller of it, as it is for a statement of one's own. The
    /// fault suite's `postgres-stopped` scenario met it as a 500 on a join.
    #[tokio::test]
    async fn a_shared_statement_whose_database_went_away_is_unavailable_for_every_caller() {
        let url = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let mut connection = sqlx::PgConnection::connect(&url).await.unwrap();
        let terminated = sqlx::query("select pg_terminate_backend(pg_backend_pid())")
            .execute(&mut connection)
            .await
            .unwrap_err();
        assert!(common::db::is_unavailable(&terminated), "{terminated}");
        assert!(common::db::is_unavailable(&copy_error(&terminated)));

        let reset = sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into());
        assert!(common::db::is_unavailable(&copy_error(&reset)));
        assert!(common::db::is_unavailable(&copy_error(
            &sqlx::Error::PoolTimedOut
        )));
        // A refusal is not an outage: still a 500 for every caller.
        let refused = sqlx::Error::Decode("a row failed a check".into());
        assert!(!common::db::is_unavailable(&copy_error(&refused)));
    }
}
