//! What the use cases work with: [`Rooms`], the plain context of GC's meeting operations
//! (the database, the rooms' [`Placement`], the queues that share statements, the budget of
//! joins and leaves). Rooms themselves are reached only through the placement
//! (`clients::mc::placement`), which owns the wire format.

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::error::ApiError;
use sqlx::PgPool;
use uuid::Uuid;

use crate::clients::mc::Placement;
use crate::config::LifecycleSettings;
use crate::db::admissions::Admissions;
use crate::db::lookups::Lookups;
use crate::domain::budget::Budget;
use crate::error::Error;
use crate::use_cases::detached::Detached;

/// What the use cases need to reach rooms and record what they decide.
#[derive(Clone)]
pub struct Rooms {
    pub pool: PgPool,
    /// Which controller holds which meeting, and the calls to it.
    pub placement: Placement,
    pub settings: LifecycleSettings,
    /// Where admissions are recorded, many to a transaction ([`crate::db::admissions`]).
    pub admissions: Admissions,
    /// Where joins read their meeting, many to a statement ([`crate::db::lookups`]).
    pub lookups: Lookups,
    /// Where guest-joins record their guests, many to a statement ([`crate::db::guests`]).
    pub guests: crate::db::guests::GuestRecords,
    /// The limit on the tasks that run on after their request ([`super::detached`]).
    pub detached: Detached,
    /// How often one user may join or leave one meeting (per replica).
    pub comings_and_goings: Arc<Budget<(Uuid, Uuid)>>,
    /// How often one client address may ask to join as a guest (per replica).
    pub guest_joins: Arc<Budget<AddressKey>>,
}

/// Client addresses whose guest joins one replica remembers at most.
pub const GUEST_JOIN_KEYS: usize = 100_000;

/// The key of a client address in the guest-join budget: an IPv4 address, or the /64 prefix
/// of an IPv6 address (one host holds a whole /64, and could otherwise rotate through it). An
/// IPv4-mapped IPv6 address is its IPv4 address. Unknown (no peer address): one shared key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddressKey {
    V4(std::net::Ipv4Addr),
    V6Prefix(u64),
    Unknown,
}

impl AddressKey {
    pub fn of(ip: Option<std::net::IpAddr>) -> Self {
        match ip.map(|ip| ip.to_canonical()) {
            Some(std::net::IpAddr::V4(v4)) => AddressKey::V4(v4),
            Some(std::net::IpAddr::V6(v6)) => AddressKey::V6Prefix((u128::from(v6) >> 64) as u64),
            None => AddressKey::Unknown,
        }
    }
}

/// The guest-join budget of `settings` (by default 10 at once, then one every six seconds per
/// address).
pub fn guest_join_budget(settings: &LifecycleSettings) -> Arc<Budget<AddressKey>> {
    let interval = Duration::from_millis(settings.guest_join_interval_ms.max(1));
    Arc::new(Budget::new(
        settings.guest_join_burst,
        1.0 / interval.as_secs_f64(),
        GUEST_JOIN_KEYS,
    ))
}

/// (user, meeting) pairs whose joins and leaves one replica remembers at most (a few MiB).
pub const JOIN_LEAVE_KEYS: usize = 100_000;

/// The budget of joins and leaves of `settings` (by default 20 at once, then one every three
/// seconds: a page that reloads or a client that reconnects never meets it; a script cycling
/// join and leave does at once).
pub fn join_leave_budget(settings: &LifecycleSettings) -> Arc<Budget<(Uuid, Uuid)>> {
    let interval = Duration::from_millis(settings.join_leave_interval_ms.max(1));
    Arc::new(Budget::new(
        settings.join_leave_burst,
        1.0 / interval.as_secs_f64(),
        JOIN_LEAVE_KEYS,
    ))
}

impl Rooms {
    /// Spends one of the address's guest joins, or refuses with 429 `RATE_LIMITED` and the
    /// seconds until the next (`Retry-After`).
    pub fn guest_join_from(&self, ip: Option<std::net::IpAddr>) -> Result<(), Error> {
        self.guest_joins
            .take(&AddressKey::of(ip), Instant::now())
            .map_err(|wait| Error::Api(ApiError::rate_limited(wait.as_secs_f64().ceil() as u64)))
    }

    /// Spends one of the caller's joins and leaves of the meeting, or refuses with 429
    /// `RATE_LIMITED` and the seconds until the next (`Retry-After`).
    pub fn come_or_go(&self, user_id: Uuid, meeting_id: Uuid) -> Result<(), Error> {
        self.comings_and_goings
            .take(&(user_id, meeting_id), Instant::now())
            .map_err(|wait| {
                crate::metrics::join_leave_limited();
                Error::Api(ApiError::rate_limited(wait.as_secs_f64().ceil() as u64))
            })
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::*;

    fn key(ip: &str) -> AddressKey {
        AddressKey::of(Some(ip.parse::<IpAddr>().unwrap()))
    }

    #[test]
    fn an_ipv6_host_cannot_rotate_through_its_64_to_get_more_guest_joins() {
        assert_eq!(
            key("2001:db8:1:2::1"),
            key("2001:db8:1:2:ffff:ffff:ffff:ffff")
        );
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    }

    #[test]
    fn an_ipv4_mapped_address_is_its_ipv4_address() {
        assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
        assert_eq!(
            key("192.0.2.7"),
            AddressKey::V4(Ipv4Addr::new(192, 0, 2, 7))
        );
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
        assert_eq!(AddressKey::of(None), AddressKey::Unknown);
        assert_ne!(
            AddressKey::of(Some(IpAddr::V6(Ipv6Addr::LOCALHOST))),
            key("127.0.0.1")
        );
    }

    #[test]
    fn the_guest_join_budget_refuses_an_address_beyond_its_burst_and_not_another() {
        let settings = LifecycleSettings {
            guest_join_burst: 2,
            guest_join_interval_ms: 60_000,
            ..LifecycleSettings::default()
        };
        let budget = guest_join_budget(&settings);
        let now = Instant::now();
        let flooder = key("203.0.113.9");
        assert!(budget.take(&flooder, now).is_ok());
        assert!(budget.take(&flooder, now).is_ok());
        let wait = budget.take(&flooder, now).unwrap_err();
        assert!(
            wait > Duration::from_secs(50) && wait <= Duration::from_secs(60),
            "{wait:?}"
        );
        assert!(budget.take(&key("203.0.113.10"), now).is_ok());
        assert!(budget.take(&flooder, now + Duration::from_secs(60)).is_ok());
    }
}
