//! The rooms this MC holds: the code and fencing token of every room GC assigned it and has
//! not ended. Two things use it: the heartbeat's load figure, and [`keep_alive`], which renews
//! the safety TTL of every held room so a quiet room (nobody joining or leaving for a day)
//! does not expire while its meeting runs. A room that turns out to be held by another MC now
//! (fenced) or gone (expired, ended) is forgotten, so the set never outgrows what this MC
//! really holds; it is bounded by [`MAX_HELD_ROOMS`] all the same.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use common::meeting_code::MeetingCode;
use tokio_util::sync::CancellationToken;

use crate::room::{FencingToken, OwnedRoom, RoomError, RoomStore};

/// The most rooms one MC holds; assignments beyond it are refused (GC never sends that many:
/// it respects the registered capacity).
pub const MAX_HELD_ROOMS: usize = 1_000_000;

#[derive(Clone, Default)]
pub struct HeldRooms(Arc<Mutex<HashMap<MeetingCode, FencingToken>>>);

impl HeldRooms {
    pub fn count(&self) -> u32 {
        let rooms = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        u32::try_from(rooms.len()).unwrap_or(u32::MAX)
    }

    /// Whether holding `code` would pass [`MAX_HELD_ROOMS`].
    pub fn is_full(&self, code: &MeetingCode) -> bool {
        let rooms = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        rooms.len() >= MAX_HELD_ROOMS && !rooms.contains_key(code)
    }

    /// Records that this MC holds `code` under `token` (a newer token replaces an older one).
    pub fn hold(&self, code: &MeetingCode, token: FencingToken) {
        let mut rooms = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if rooms.len() < MAX_HELD_ROOMS || rooms.contains_key(code) {
            let held = rooms.entry(code.clone()).or_insert(token);
            *held = (*held).max(token);
        }
    }

    /// The token this MC holds `code` under, if it holds it.
    pub fn token(&self, code: &MeetingCode) -> Option<FencingToken> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(code)
            .copied()
    }

    pub fn forget(&self, code: &MeetingCode) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(code);
    }

    fn snapshot(&self) -> Vec<OwnedRoom> {
        let rooms = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        rooms
            .iter()
            .map(|(code, token)| OwnedRoom::new(code.clone(), *token))
            .collect()
    }
}

/// How often held rooms are renewed: a third of their TTL, so two renewals can fail before a
/// room expires (at least every second, at most every hour).
pub fn keep_alive_interval(ttl: Duration) -> Duration {
    (ttl / 3).clamp(Duration::from_secs(1), Duration::from_secs(3600))
}

/// Renews every held room's TTL each `every`, until `stop`; forgets rooms that are fenced or
/// gone.
pub async fn keep_alive(
    store: RoomStore,
    held: HeldRooms,
    every: Duration,
    stop: CancellationToken,
) {
    let pass_stop = stop.clone();
    common::shell::every(every, stop, || async {
        renew_held(&store, &held, &pass_stop).await;
    })
    .await;
}

/// One pass of [`keep_alive`]: renews every held room, forgets those fenced or gone, and
/// returns how many it renewed.
pub async fn renew_held(store: &RoomStore, held: &HeldRooms, stop: &CancellationToken) -> usize {
    let mut renewed = 0;
    for room in held.snapshot() {
        if stop.is_cancelled() {
            break;
        }
        match store.touch(&room).await {
            Ok(()) => renewed += 1,
            Err(RoomError::Fenced { .. } | RoomError::NotFound) => {
                tracing::info!(meeting_code = %room.code, "room no longer held here; forgotten");
                held.forget(&room.code);
            }
            Err(error) => {
                tracing::warn!(meeting_code = %room.code, %error, "cannot renew a room's TTL");
            }
        }
    }
    renewed
}
