//! The `login_failures` table: fixed-window failure counters of sign-ins and client
//! authentications, keyed by account, client id or client address.
//!
//! An attempt is counted *before* the password or secret is checked (and taken back if it
//! succeeds). Counting first is what makes the limit exact under concurrency: a burst of
//! parallel guesses cannot all read "4 failures" and all proceed.
//!
//! Keys are lowercased by PostgreSQL's `lower()`, the function the users' e-mail index is built
//! on, so an account key matches exactly the accounts the sign-in lookup can find, however the
//! address is cased. Rust's lowercasing differs for some characters (`İ`) and is not used.

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use sqlx::PgPool;

/// The counter key of an account: the e-mail as typed (trimmed), whether or not it has an
/// account; the database lowercases it.
pub fn account_key(email: &str) -> String {
    format!("acct:{email}")
}

/// The counter key of a service client id, whether or not the client exists.
pub fn client_key(client_id: &str) -> String {
    format!("client:{client_id}")
}

/// The counter key of a client address. An IPv6 address counts by its /64 prefix: a single
/// subscriber usually holds a whole /64 and could otherwise try from 2^64 addresses. An
/// IPv4 address counts alone, also when it arrives IPv4-mapped (`::ffff:a.b.c.d`, as on a
/// dual-stack listener).
pub fn ip_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("ip:{v4}"),
            None => {
                let prefix = Ipv6Addr::from(v6.to_bits() & !((1u128 << 64) - 1));
                format!("ip:{prefix}/64")
            }
        },
    }
}

/// A key and the number of failures it may have within the window.
#[derive(Clone, Debug)]
pub struct Budget {
    pub key: String,
    pub limit: u32,
}

/// Counts one attempt against each budget, opening a new window where the old one has ended.
/// Returns `Some(seconds)` when a budget is now over its limit: the time until the later of
/// the exceeded windows ends (at least 1). One statement, so concurrent attempts serialise on
/// the rows.
pub async fn record_attempt(
    pool: &PgPool,
    budgets: &[Budget],
    window: Duration,
) -> Result<Option<u64>, sqlx::Error> {
    let keys: Vec<&str> = budgets.iter().map(|b| b.key.as_str()).collect();
    let limits: Vec<i64> = budgets.iter().map(|b| i64::from(b.limit)).collect();
    let retry_after_secs: Option<i64> = sqlx::query_scalar(
        "with budget as (
            select lower(key) as key, max(lim) as lim
              from unnest($1::text[], $2::bigint[]) as b(key, lim)
             group by lower(key)
         ),
         counted as (
            insert into login_failures as lf (key, window_start, failures)
            select key, now(), 1 from budget
            on conflict (key) do update
               set window_start = case when lf.window_start <= now() - make_interval(secs => $3)
                                       then now() else lf.window_start end,
                   failures     = case when lf.window_start <= now() - make_interval(secs => $3)
                                       then 1 else lf.failures + 1 end
            returning key, failures, window_start
         )
         select max(ceil(extract(epoch from
                    c.window_start + make_interval(secs => $3) - now())))::bigint
           from counted c join budget b using (key)
          where c.failures > b.lim",
    )
    .bind(&keys)
    .bind(&limits)
    .bind(window.as_secs_f64())
    .fetch_one(pool)
    .await?;
    Ok(retry_after_secs.map(|secs| u64::try_from(secs).unwrap_or(0).max(1)))
}

/// After a successful sign-in or client authentication: the account (or client id) starts
/// over, and the attempt counted against the client address is taken back (a success is not a
/// failure, but it does not wipe the address's earlier failures either).
pub async fn record_success(pool: &PgPool, subject: &str, ip: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "with reset as (delete from login_failures where key = lower($1))
         update login_failures set failures = greatest(failures - 1, 0) where key = lower($2)",
    )
    .bind(subject)
    .bind(ip)
    .execute(pool)
    .await?;
    Ok(())
}

/// Takes back one counted attempt from each key, for an attempt that was never checked (AC
/// was too busy to hash): it was neither a success nor a failure.
pub async fn take_back(pool: &PgPool, keys: &[String]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update login_failures set failures = greatest(failures - 1, 0)
          where key in (select lower(k) from unnest($1::text[]) as k)",
    )
    .bind(keys)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ip: &str) -> String {
        ip_key(ip.parse().unwrap())
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_bit_prefix() {
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "ip:2001:db8:1:2::/64");
        assert_eq!(
            key("2001:db8:1:2:ffff:ffff:ffff:ffff"),
            key("2001:db8:1:2::")
        );
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    }

    #[test]
    fn ipv4_addresses_count_alone_also_when_mapped_into_ipv6() {
        assert_eq!(key("203.0.113.7"), "ip:203.0.113.7");
        assert_ne!(key("203.0.113.7"), key("203.0.113.8"));
        assert_eq!(key("::ffff:203.0.113.7"), key("203.0.113.7"));
    }
}
