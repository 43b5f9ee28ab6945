//! The controller choices compared, each a function over what a settle statement would see.

use std::collections::BTreeSet;

use crate::dist::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Policy {
    /// `SETTLE_SQL` before the room counters: fewest rooms by exact count, ties to the smallest
    /// id.
    Least,
    /// Fewest rooms by the heartbeat's `current_load` (stale by up to an interval).
    LeastHeartbeat,
    /// Two random healthy controllers, the one with fewer rooms by the heartbeat.
    TwoRoomsHeartbeat,
    /// Two random healthy controllers, the one with fewer people by the heartbeat.
    TwoPeopleHeartbeat,
    /// Two random healthy controllers, the one with fewer rooms by an exact counter kept in
    /// the same statement (a `rooms` column instead of `count(*)`).
    TwoRoomsCounter,
}

impl Policy {
    pub const ALL: [Policy; 5] = [
        Policy::Least,
        Policy::LeastHeartbeat,
        Policy::TwoRoomsHeartbeat,
        Policy::TwoPeopleHeartbeat,
        Policy::TwoRoomsCounter,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Policy::Least => "a. least rooms, exact count (former SETTLE_SQL)",
            Policy::LeastHeartbeat => "b. least rooms, heartbeat view",
            Policy::TwoRoomsHeartbeat => "c1. two choices, rooms, heartbeat view",
            Policy::TwoPeopleHeartbeat => "c2. two choices, people, heartbeat view",
            Policy::TwoRoomsCounter => "d. two choices, rooms, exact counter (SETTLE_SQL)",
        }
    }
}

/// The controllers GC considers healthy (heartbeat younger than the timeout), as a list that
/// can be sampled uniformly and changed in O(1).
#[derive(Default)]
pub struct Healthy {
    members: Vec<u32>,
    /// Index in `members` by controller, `usize::MAX` when absent.
    position: Vec<usize>,
}

impl Healthy {
    pub fn insert(&mut self, controller: u32) {
        let at = controller as usize;
        if self.position.len() <= at {
            self.position.resize(at + 1, usize::MAX);
        }
        if self.position[at] == usize::MAX {
            self.position[at] = self.members.len();
            self.members.push(controller);
        }
    }

    pub fn remove(&mut self, controller: u32) {
        let Some(&index) = self.position.get(controller as usize) else {
            return;
        };
        if index == usize::MAX {
            return;
        }
        self.members.swap_remove(index);
        if let Some(&moved) = self.members.get(index) {
            self.position[moved as usize] = index;
        }
        self.position[controller as usize] = usize::MAX;
    }

    pub fn contains(&self, controller: u32) -> bool {
        self.position
            .get(controller as usize)
            .is_some_and(|&index| index != usize::MAX)
    }

    pub fn members(&self) -> &[u32] {
        &self.members
    }
}

/// What a statement sees when it starts: counts committed before it (the exact view) and the
/// heartbeats' figures (the stale view), for the controllers GC considers healthy.
pub struct View<'a> {
    pub healthy: &'a Healthy,
    pub capacity: u32,
    /// Rooms by exact count, as `meeting_assignments` holds them.
    pub rooms: &'a [u32],
    /// Rooms and people as each controller last reported them.
    pub reported_rooms: &'a [u32],
    pub reported_people: &'a [u32],
    /// (rooms, id) of the healthy controllers, exact and reported: the `order by` of a least
    /// loaded pick.
    pub by_rooms: &'a BTreeSet<(u32, u32)>,
    pub by_reported_rooms: &'a BTreeSet<(u32, u32)>,
}

/// Tries of two random controllers before a two-choices pick falls back to the least loaded
/// (only when nearly every controller is full).
const TWO_CHOICE_ROUNDS: usize = 8;

/// The controller `policy` gives a room to, or `None` when no healthy controller has room (by
/// the policy's view).
pub fn pick(policy: Policy, view: &View<'_>, rng: &mut Rng) -> Option<u32> {
    match policy {
        Policy::Least => least(view.by_rooms, view.capacity),
        Policy::LeastHeartbeat => least(view.by_reported_rooms, view.capacity),
        Policy::TwoRoomsHeartbeat => two_choices(view, rng, view.reported_rooms, |c| {
            view.reported_rooms[c as usize]
        })
        .or_else(|| least(view.by_reported_rooms, view.capacity)),
        Policy::TwoPeopleHeartbeat => two_choices(view, rng, view.reported_rooms, |c| {
            view.reported_people[c as usize]
        })
        .or_else(|| least(view.by_reported_rooms, view.capacity)),
        Policy::TwoRoomsCounter => two_choices(view, rng, view.rooms, |c| view.rooms[c as usize])
            .or_else(|| least(view.by_rooms, view.capacity)),
    }
}

/// `order by rooms, id limit 1` among those with `rooms < capacity`: the first in the order,
/// since a full first means all are full.
fn least(ordered: &BTreeSet<(u32, u32)>, capacity: u32) -> Option<u32> {
    ordered
        .first()
        .filter(|(rooms, _)| *rooms < capacity)
        .map(|(_, id)| *id)
}

/// Two distinct random healthy controllers with room (by `rooms`), the one with the smaller
/// `load` (ties to the first drawn); one if only one of them has room.
fn two_choices(
    view: &View<'_>,
    rng: &mut Rng,
    rooms: &[u32],
    load: impl Fn(u32) -> u32,
) -> Option<u32> {
    let members = view.healthy.members();
    if members.is_empty() {
        return None;
    }
    let has_room = |c: u32| rooms[c as usize] < view.capacity;
    for _ in 0..TWO_CHOICE_ROUNDS {
        let first = members[rng.below(members.len())];
        let second = if members.len() > 1 {
            let mut other = members[rng.below(members.len() - 1)];
            if other == first {
                other = members[members.len() - 1];
            }
            other
        } else {
            first
        };
        match (has_room(first), has_room(second)) {
            (true, true) => {
                return Some(if load(second) < load(first) {
                    second
                } else {
                    first
                });
            }
            (true, false) => return Some(first),
            (false, true) => return Some(second),
            (false, false) => {}
        }
    }
    None
}
