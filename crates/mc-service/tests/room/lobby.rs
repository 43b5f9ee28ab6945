//! Moves between the lobby and the seats: admit, reject, admit_all and settings changes.

use chrono::Duration;
use mc_service::room::{AdmitAllOutcome, AdmitOutcome, RejectOutcome, Role};

use crate::on_both_backends;
use crate::support::{Harness, now, user};

fn admitted(participant_count: u32, already_admitted: bool, seat: u64) -> AdmitOutcome {
    AdmitOutcome::Admitted {
        participant_count,
        already_admitted,
        seat,
    }
}

async fn admit_seats_a_waiting_user_as_a_guest(h: Harness) {
    let room = h.room(5, true).await;
    room.join_as(&user(0), Role::Host).await;
    room.join(&user(1), "Grace", Role::Guest).await.unwrap();

    let first = room.admit(&user(1)).await.unwrap();
    let again = room.admit(&user(1)).await.unwrap();

    let seat = room.state().await.last_seat;
    assert_eq!(first, admitted(2, false, seat));
    assert_eq!(
        again,
        admitted(2, true, seat),
        "the same seat, not a new one"
    );
    let state = room.state().await;
    assert!(state.lobby.is_empty());
    let seat = state
        .participants
        .iter()
        .find(|p| p.user_id == user(1))
        .unwrap();
    assert_eq!(seat.role, Role::Guest);
    assert_eq!(seat.display_name, "Grace");
}

async fn admit_refuses_someone_who_is_not_waiting(h: Harness) {
    let room = h.room(5, true).await;

    let outcome = room.admit(&user(7)).await.unwrap();

    assert_eq!(outcome, AdmitOutcome::NotInLobby);
    assert_eq!(room.state().await.participant_count(), 0);
}

async fn admit_into_a_full_room_leaves_the_user_waiting(h: Harness) {
    let room = h.room(1, true).await;
    room.join_as(&user(0), Role::Host).await;
    room.join_as(&user(1), Role::Guest).await;

    let outcome = room.admit(&user(1)).await.unwrap();

    assert_eq!(outcome, AdmitOutcome::Full);
    let state = room.state().await;
    assert_eq!(state.participant_count(), 1);
    assert_eq!(state.lobby.len(), 1);
    assert_eq!(state.lobby[0].user_id, user(1));
}

async fn reject_removes_a_waiting_user_once(h: Harness) {
    let room = h.room(5, true).await;
    room.join_as(&user(0), Role::Host).await;
    room.join_as(&user(1), Role::Guest).await;

    let first = room.reject(&user(1)).await.unwrap();
    let again = room.reject(&user(1)).await.unwrap();
    let seated = room.reject(&user(0)).await.unwrap();

    assert_eq!(first, RejectOutcome::Rejected);
    assert_eq!(again, RejectOutcome::NotInLobby);
    assert_eq!(seated, RejectOutcome::NotInLobby, "reject never unseats");
    let state = room.state().await;
    assert!(state.lobby.is_empty());
    assert_eq!(state.participant_count(), 1);
}

async fn leave_from_the_lobby_removes_the_details_too(h: Harness) {
    let room = h.room(5, true).await;
    room.join_as(&user(1), Role::Guest).await;

    let left = room.leave(&user(1)).await.unwrap();

    assert_eq!(
        left,
        mc_service::room::LeaveOutcome::Left {
            was: mc_service::room::Presence::Lobby,
            remaining_participants: 0,
            cleared_active_speaker: false,
            seat: None,
            last_seat: 0,
            host_change: None,
        }
    );
    assert!(room.state().await.lobby.is_empty());
}

/// Joins `users` to the lobby with waiting_since `base + offset_ms`.
async fn wait_in_lobby(room: &crate::support::Room<'_>, users: &[(usize, i64)]) {
    let base = now();
    for (n, offset_ms) in users {
        let at = base + Duration::milliseconds(*offset_ms);
        room.h
            .store
            .join(&room.owned, &user(*n), "Guest", Role::Guest, None, true, at)
            .await
            .unwrap();
        room.check().await;
    }
}

async fn admit_all_admits_the_longest_waiting_first_while_seats_remain(h: Harness) {
    let room = h.room(4, true).await;
    room.join_as(&user(0), Role::Host).await;
    // user 5 and user 3 share a timestamp: the smaller id goes first.
    wait_in_lobby(&room, &[(4, 30), (5, 10), (3, 10), (1, 20), (2, 40)]).await;

    let before = room.state().await.last_seat;
    let outcome = room.admit_all().await.unwrap();

    assert_eq!(
        outcome,
        AdmitAllOutcome {
            admitted: vec![user(3), user(5), user(1)],
            still_waiting: vec![user(4), user(2)],
            participant_count: 4,
            seats: vec![before + 1, before + 2, before + 3],
        }
    );
    let state = room.state().await;
    let lobby: Vec<_> = state.lobby.iter().map(|e| e.user_id.clone()).collect();
    assert_eq!(lobby, vec![user(4), user(2)]);
}

async fn admit_all_with_an_empty_lobby_admits_nobody(h: Harness) {
    let room = h.room(4, true).await;

    let outcome = room.admit_all().await.unwrap();

    assert_eq!(outcome, AdmitAllOutcome::default());
}

async fn turning_the_waiting_room_off_admits_the_lobby_up_to_capacity(h: Harness) {
    let room = h.room(3, true).await;
    room.join_as(&user(0), Role::Host).await;
    wait_in_lobby(&room, &[(1, 1), (2, 2), (3, 3)]).await;

    let outcome = room.update_settings(false, 3).await.unwrap();

    assert_eq!(outcome.admitted, vec![user(1), user(2)]);
    assert_eq!(outcome.still_waiting, vec![user(3)]);
    assert_eq!(outcome.participant_count, 3);
    let state = room.state().await;
    assert!(!state.settings.waiting_room_enabled);
    assert_eq!(state.max_participants, 3);
}

async fn raising_the_capacity_of_a_room_without_waiting_room_admits_leftovers(h: Harness) {
    let room = h.room(2, true).await;
    room.join_as(&user(0), Role::Host).await;
    wait_in_lobby(&room, &[(1, 1), (2, 2)]).await;
    room.update_settings(false, 2).await.unwrap(); // admits user 1; user 2 is left over

    let outcome = room.update_settings(false, 5).await.unwrap();

    assert_eq!(outcome.admitted, vec![user(2)]);
    assert!(outcome.still_waiting.is_empty());
    assert_eq!(outcome.participant_count, 3);
}

async fn settings_with_the_waiting_room_on_admit_nobody(h: Harness) {
    let room = h.room(5, true).await;
    wait_in_lobby(&room, &[(1, 1), (2, 2)]).await;

    let outcome = room.update_settings(true, 9).await.unwrap();

    assert!(outcome.admitted.is_empty());
    assert_eq!(outcome.still_waiting, vec![user(1), user(2)]);
    assert_eq!(room.state().await.max_participants, 9);
}

async fn lowering_the_capacity_unseats_nobody_and_admits_nobody_until_below(h: Harness) {
    let room = h.room(4, false).await;
    for n in 1..=4 {
        room.join_as(&user(n), Role::Guest).await;
    }

    let lowered = room.update_settings(false, 2).await.unwrap();
    let refused = room.join_as(&user(5), Role::Guest).await;
    room.leave(&user(1)).await.unwrap();
    room.leave(&user(2)).await.unwrap();
    let still_refused = room.join_as(&user(6), Role::Guest).await;
    room.leave(&user(3)).await.unwrap();
    let seated = room.join_as(&user(7), Role::Guest).await;

    assert_eq!(lowered.participant_count, 4);
    assert_eq!(refused.admission, mc_service::room::Admission::Full);
    assert_eq!(still_refused.admission, mc_service::room::Admission::Full);
    assert_eq!(seated.admission, mc_service::room::Admission::Admitted);
    assert_eq!(room.state().await.participant_count(), 2);
}

/// Settings pushes that arrive out of order: the room keeps the newest version, an older one
/// changes nothing (and says so), the same one again stores nothing new but still admits the
/// lobby with the waiting room off, and an assignment carrying an older version keeps the
/// room's newer settings.
async fn the_room_keeps_the_newest_settings_version_whatever_order_they_arrive_in(h: Harness) {
    use mc_service::room::{FencingToken, OwnedRoom};
    let room = h.room(5, true).await;
    room.join_as(&user(0), Role::Host).await;
    let owned = OwnedRoom::new(room.code().clone(), FencingToken(1));
    let open = crate::support::settings(false);
    let locked = crate::support::settings(true);

    let newer = h
        .store
        .update_settings(&owned, &locked, 9, 3, now())
        .await
        .unwrap();
    let older = h
        .store
        .update_settings(&owned, &open, 4, 2, now())
        .await
        .unwrap();

    assert!(!newer.stale);
    assert!(older.stale, "version 2 after 3 is stale");
    assert_eq!(older.settings_version, 3);
    let state = room.state().await;
    assert_eq!(
        (
            state.settings,
            state.max_participants,
            state.settings_version
        ),
        (locked, 9, 3)
    );

    // The waiting room off with one seat free: one of the two waiting is admitted, the other
    // is left over. Once a seat is free, the same version again admits them.
    wait_in_lobby(&room, &[(1, 1), (2, 2)]).await;
    let turned_off = h
        .store
        .update_settings(&owned, &open, 2, 4, now())
        .await
        .unwrap();
    assert_eq!(turned_off.moves.admitted, vec![user(1)]);
    assert_eq!(turned_off.moves.still_waiting, vec![user(2)]);
    room.leave(&user(0)).await.unwrap();
    let again = h
        .store
        .update_settings(&owned, &open, 2, 4, now())
        .await
        .unwrap();
    assert!(!again.stale);
    assert_eq!(
        again.moves.admitted,
        vec![user(2)],
        "the repeat completes it"
    );

    // An assignment of the meeting with older settings keeps the room's.
    let mut meta = Harness::meta(2, locked);
    meta.settings_version = 1;
    h.store
        .assign(room.code(), &meta, FencingToken(2), "mc-b")
        .await
        .unwrap();
    let state = room.state().await;
    assert_eq!(
        (
            state.settings,
            state.max_participants,
            state.settings_version
        ),
        (open, 2, 4)
    );
    // A newer one replaces them.
    meta.settings_version = 5;
    h.store
        .assign(room.code(), &meta, FencingToken(3), "mc-b")
        .await
        .unwrap();
    let state = room.state().await;
    assert_eq!(
        (
            state.settings,
            state.max_participants,
            state.settings_version
        ),
        (locked, 2, 5)
    );
}

on_both_backends!(
    the_room_keeps_the_newest_settings_version_whatever_order_they_arrive_in,
    admit_seats_a_waiting_user_as_a_guest,
    admit_refuses_someone_who_is_not_waiting,
    admit_into_a_full_room_leaves_the_user_waiting,
    reject_removes_a_waiting_user_once,
    leave_from_the_lobby_removes_the_details_too,
    admit_all_admits_the_longest_waiting_first_while_seats_remain,
    admit_all_with_an_empty_lobby_admits_nobody,
    turning_the_waiting_room_off_admits_the_lobby_up_to_capacity,
    raising_the_capacity_of_a_room_without_waiting_room_admits_leftovers,
    settings_with_the_waiting_room_on_admit_nobody,
    lowering_the_capacity_unseats_nobody_and_admits_nobody_until_below,
);
