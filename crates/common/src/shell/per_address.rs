//! How many connections each client address holds on one listener, so that one address cannot
//! take every connection the listener allows (`ListenerLimits::max_connections_per_address`).
//!
//! The count is kept in a map with an entry only for addresses that hold at least one open
//! connection: an entry is removed when its last connection closes. The map is therefore never
//! larger than the listener's own connection bound, however many addresses come and go.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The address a connection from `ip` counts against. An IPv4 address counts as itself, and so
/// does an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack socket reports for an
/// IPv4 client), so that one client is one key whichever socket accepted it. Any other IPv6
/// address counts by its /64 prefix: a host is usually given a whole /64, and could otherwise
/// take a fresh address from it for every connection.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !(u128::from(u64::MAX));
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

/// The open connections of each address on one listener, each at most `max`.
#[derive(Debug)]
pub(super) struct ConnectionsPerAddress {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl ConnectionsPerAddress {
    pub(super) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Counts one more connection from `ip`, or `None` when its address already holds `max`.
    /// The count goes down when the returned permit is dropped.
    pub(super) fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<AddressPermit> {
        let key = address_key(ip);
        let mut open = self.lock();
        let count = open.get(&key).copied().unwrap_or(0);
        if count >= self.max {
            return None;
        }
        open.insert(key, count + 1);
        Some(AddressPermit {
            counts: Arc::clone(self),
            key,
        })
    }

    /// Addresses with at least one connection open.
    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.lock().len()
    }

    /// The map stays consistent whatever panicked while holding it (every change is one
    /// statement), so a poisoned lock is used as it is.
    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One open connection of an address; dropping it gives the place back.
#[derive(Debug)]
pub(super) struct AddressPermit {
    counts: Arc<ConnectionsPerAddress>,
    key: IpAddr,
}

impl Drop for AddressPermit {
    fn drop(&mut self) {
        let mut open = self.counts.lock();
        if let Entry::Occupied(mut entry) = open.entry(self.key) {
            *entry.get_mut() = entry.get().saturating_sub(1);
            if *entry.get() == 0 {
                entry.remove();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_ipv4_address_counts_as_itself() {
        assert_eq!(address_key(ip("203.0.113.7")), ip("203.0.113.7"));
        assert_ne!(
            address_key(ip("203.0.113.7")),
            address_key(ip("203.0.113.8"))
        );
    }

    #[test]
    fn an_ipv4_mapped_ipv6_address_counts_as_its_ipv4_address() {
        assert_eq!(address_key(ip("::ffff:203.0.113.7")), ip("203.0.113.7"));
        assert_eq!(
            address_key(ip("::ffff:203.0.113.7")),
            address_key(ip("203.0.113.7"))
        );
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_prefix() {
        let key = address_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd"));
        assert_eq!(key, ip("2001:db8:1:2::"));
        assert_eq!(address_key(ip("2001:db8:1:2::1")), key);
        assert_eq!(address_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")), key);
        assert_ne!(address_key(ip("2001:db8:1:3::1")), key);
        // Loopback is an ordinary IPv6 address here: its /64 is `::`.
        assert_eq!(address_key(ip("::1")), ip("::"));
    }

    #[test]
    fn an_address_holds_at_most_max_and_its_entry_goes_with_its_last_connection() {
        let counts = ConnectionsPerAddress::new(2);
        let first = counts.try_acquire(ip("2001:db8::1")).unwrap();
        let second = counts.try_acquire(ip("2001:db8::2")).unwrap();
        assert!(
            counts.try_acquire(ip("2001:db8::3")).is_none(),
            "the same /64 is full"
        );
        let other = counts.try_acquire(ip("192.0.2.1")).unwrap();
        assert_eq!(counts.addresses(), 2);

        drop(first);
        let again = counts.try_acquire(ip("2001:db8::4")).unwrap();
        drop((second, again, other));
        assert_eq!(counts.addresses(), 0, "no entry outlives its connections");
    }
}
