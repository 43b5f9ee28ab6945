//! The `login_failures` table: fixed-window failure counters keyed by account or client address.
//!
//! A sign-in attempt is counted *before* the password is checked (and taken back if it
//! succeeds). Counting first is what makes the limit exact under concurrency: a burst of
//! parallel guesses cannot all read "4 failures" and all proceed.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// The counter key of an account (the lowercased e-mail, whether or not the account exists).
pub fn account_key(normalized_email: &str) -> String {
    format!("acct:{normalized_email}")
}

/// The counter key of a client address.
pub fn ip_key(ip: std::net::IpAddr) -> String {
    format!("ip:{ip}")
}

/// A counter after an attempt was recorded.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Counter {
    pub key: String,
    pub failures: i32,
    pub window_start: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

impl Counter {
    /// Seconds until this counter's window ends (at least 1).
    pub fn retry_after_secs(&self, window: Duration) -> u64 {
        let window = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
        let ends = self
            .window_start
            .checked_add_signed(window)
            .unwrap_or(self.now);
        let remaining = (ends - self.now).num_milliseconds().max(0);
        u64::try_from((remaining + 999) / 1000).unwrap_or(0).max(1)
    }
}

/// Counts one attempt against each key, opening a new window where the old one has ended, and
/// returns the counters. One statement, so concurrent attempts serialise on the rows.
pub async fn record_attempt(
    pool: &PgPool,
    keys: &[String],
    window: Duration,
) -> Result<Vec<Counter>, sqlx::Error> {
    sqlx::query_as(
        "insert into login_failures as lf (key, window_start, failures)
         select key, now(), 1 from unnest($1::text[]) as key
         on conflict (key) do update
            set window_start = case when lf.window_start <= now() - make_interval(secs => $2)
                                    then now() else lf.window_start end,
                failures     = case when lf.window_start <= now() - make_interval(secs => $2)
                                    then 1 else lf.failures + 1 end
         returning key, failures, window_start, now() as now",
    )
    .bind(keys)
    .bind(window.as_secs_f64())
    .fetch_all(pool)
    .await
}

/// After a successful sign-in: the account starts over, and the attempt counted against the
/// client address is taken back (a success is not a failure, but it does not wipe the
/// address's earlier failures either).
pub async fn record_success(pool: &PgPool, account: &str, ip: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "with reset as (delete from login_failures where key = $1)
         update login_failures set failures = greatest(failures - 1, 0) where key = $2",
    )
    .bind(account)
    .bind(ip)
    .execute(pool)
    .await?;
    Ok(())
}

/// Deletes counters whose window ended long ago; they would restart at 1 anyway.
pub async fn purge_expired(pool: &PgPool, window: Duration) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(
        "delete from login_failures where window_start < now() - make_interval(secs => $1)",
    )
    .bind(window.as_secs_f64() * 2.0)
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}
