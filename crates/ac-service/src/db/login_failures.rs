//! The `login_failures` table: fixed-window counters of sign-ins and client authentications,
//! keyed by account, client id or client address. Each row holds two counts: `failures`, the
//! verified failures (a password or secret that was checked and was wrong), and `in_flight`, the
//! attempts that hold a reservation while their check runs.
//!
//! An attempt first [`reserve`]s a place in every one of its budgets, all or none, and is then
//! [`settle`]d exactly once: as a failure, as a success (the subject starts over), or withdrawn
//! (it was never checked). A budget has room while `failures + in_flight` is below its limit,
//! which is what keeps the limit exact under concurrency: a burst of parallel guesses cannot all
//! read "4 failures" and all be checked. A budget whose `failures` alone reach the limit is
//! locked; an attempt refused because of it reserves nothing and changes nothing.
//!
//! Keys are lowercased by PostgreSQL's `lower()`, the function the users' e-mail index is built
//! on, so an account key matches exactly the accounts the sign-in lookup can find, however the
//! address is cased. Rust's lowercasing differs for some characters (`İ`) and is not used.

use common::db::Bounded;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use chrono::{DateTime, Utc};
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

/// What [`reserve`] found.
#[derive(Debug)]
pub enum Reserved {
    /// Every budget had room; each now holds one more attempt in flight.
    Yes(Reservation),
    /// A budget's verified failures reached its limit: the attempt is refused until that window
    /// ends, in this many seconds (the later window if several are locked, at least 1).
    Locked { retry_after_secs: u64 },
    /// No budget is locked, but one is full of attempts still being checked; trying again once
    /// they settle may succeed.
    Full,
}

/// Attempts in flight, one per budget, each tied to the window it was reserved in. Settle it
/// with [`settle`].
#[derive(Debug)]
pub struct Reservation {
    /// Lowercased keys, in the order of the budgets given to [`reserve`].
    keys: Vec<String>,
    windows: Vec<DateTime<Utc>>,
}

/// How an attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settlement {
    /// Checked and wrong: a failure in every budget.
    Failed,
    /// Checked and right: the first budget (the subject) starts over; the others keep their
    /// failures.
    Succeeded,
    /// Never checked (no hashing capacity, a database error): as if it had not been attempted.
    Withdrawn,
}

/// Reserves one attempt in each budget (their keys must differ), all or none. Two statements,
/// neither holding a lock past its own end: the first makes sure every counter exists and opens
/// a new window where the old one has ended; the second locks the counters in key order,
/// decides, and takes a place in each only if every budget has room.
pub async fn reserve(
    pool: &PgPool,
    budgets: &[Budget],
    window: Duration,
) -> Result<Reserved, sqlx::Error> {
    let keys: Vec<&str> = budgets.iter().map(|b| b.key.as_str()).collect();
    let limits: Vec<i64> = budgets.iter().map(|b| i64::from(b.limit)).collect();
    let window_secs = window.as_secs_f64();
    // A counter whose window is still open is left as it is (no write, no new row version).
    sqlx::query(
        "insert into login_failures as lf (key, window_start, failures, in_flight)
         select lower(key), now(), 0, 0 from unnest($1::text[]) as k(key) order by 1
         on conflict (key) do update
            set window_start = now(), failures = 0, in_flight = 0
          where lf.window_start <= now() - make_interval(secs => $2)",
    )
    .bind(&keys)
    .bind(window_secs)
    .execute(pool)
    .bounded()
    .await?;

    // `for update` in key order: concurrent reservations and settlements of the same counters
    // queue up behind each other, always in the same order, so they never deadlock, and each
    // reads the counts the one before it left.
    let decided: (bool, bool, Option<i64>, Vec<String>, Vec<DateTime<Utc>>) = sqlx::query_as(
        "with budget as (
            select lower(key) as key, lim, ord
              from unnest($1::text[], $2::bigint[]) with ordinality as b(key, lim, ord)
         ),
         locked as (
            select lf.key, lf.window_start, lf.failures, lf.in_flight, b.lim, b.ord
              from login_failures lf join budget b using (key)
             order by lf.key
               for update of lf
         ),
         verdict as (
            select count(*) = cardinality($1::text[]) as complete,
                   coalesce(bool_or(failures >= lim), false) as locked,
                   coalesce(bool_and(failures + in_flight < lim), false) as room,
                   max(ceil(extract(epoch from
                           window_start + make_interval(secs => $3) - now())))
                       filter (where failures >= lim) as retry_after
              from locked
         ),
         reserved as (
            update login_failures lf
               set in_flight = lf.in_flight + 1
              from locked l, verdict v
             where lf.key = l.key and v.complete and not v.locked and v.room
            returning l.ord, lf.key, lf.window_start
         )
         select v.locked, v.complete and v.room, v.retry_after::bigint,
                coalesce((select array_agg(key order by ord) from reserved), '{}'),
                coalesce((select array_agg(window_start order by ord) from reserved), '{}')
           from verdict v",
    )
    .bind(&keys)
    .bind(&limits)
    .bind(window_secs)
    .fetch_one(pool)
    .bounded()
    .await?;

    Ok(match decided {
        (true, _, retry_after, _, _) => Reserved::Locked {
            retry_after_secs: retry_after
                .and_then(|secs| u64::try_from(secs).ok())
                .unwrap_or(0)
                .max(1),
        },
        (false, true, _, keys, windows) if keys.len() == budgets.len() => {
            Reserved::Yes(Reservation { keys, windows })
        }
        // Full of attempts in flight, or a counter vanished in between (deleted by hand to
        // lift a lock): trying again sorts it out.
        _ => Reserved::Full,
    })
}

/// Ends the attempts of `reservation`. A budget whose window has restarted since the
/// reservation is left alone: the attempt belonged to the old window, which no longer counts.
pub async fn settle(
    pool: &PgPool,
    reservation: Reservation,
    settlement: Settlement,
) -> Result<(), sqlx::Error> {
    let actions: Vec<&str> = (0..reservation.keys.len())
        .map(|i| match settlement {
            Settlement::Failed => "fail",
            Settlement::Succeeded if i == 0 => "reset",
            Settlement::Succeeded | Settlement::Withdrawn => "release",
        })
        .collect();
    // Locked in key order first, like `reserve` does, so the two never deadlock.
    sqlx::query(
        "with locked as (
            select key from login_failures where key = any($1) order by key for update
         )
         update login_failures as lf
            set in_flight = greatest(lf.in_flight - 1, 0),
                failures  = case s.action when 'fail'  then lf.failures + 1
                                          when 'reset' then 0
                                          else lf.failures end
           from unnest($1::text[], $2::timestamptz[], $3::text[]) as s(key, window_start, action),
                locked l
          where lf.key = s.key and l.key = lf.key and lf.window_start = s.window_start",
    )
    .bind(&reservation.keys)
    .bind(&reservation.windows)
    .bind(&actions)
    .execute(pool)
    .bounded()
    .await?;
    Ok(())
}

/// Deletes counters whose window ended long ago; they would restart at 0 anyway.
pub async fn purge_expired(pool: &PgPool, window: Duration) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(
        "delete from login_failures where window_start < now() - make_interval(secs => $1)",
    )
    .bind(window.as_secs_f64() * 2.0)
    .execute(pool)
    .bounded()
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
