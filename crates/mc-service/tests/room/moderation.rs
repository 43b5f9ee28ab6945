//! The host's removal of someone (DESIGN §12): seated or waiting, told, and refused until the
//! meeting ends.

use mc_service::room::{Admission, LeaveOutcome, Presence, Role};

use crate::on_both_backends;
use crate::support::{Harness, user};

async fn a_removed_participant_loses_the_seat_and_may_not_join_again(h: Harness) {
    let room = h.room(5, false).await;
    room.join_as(&user(0), Role::Host).await;
    room.join_as(&user(1), Role::Guest).await;
    room.set_active_speaker(Some(&user(1))).await.unwrap();

    let removed = room.remove(&user(1)).await.unwrap();

    let LeaveOutcome::Left {
        was,
        remaining_participants,
        cleared_active_speaker,
        seat,
        ..
    } = removed
    else {
        panic!("{removed:?}");
    };
    assert_eq!(was, Presence::Participant);
    assert_eq!(remaining_participants, 1);
    assert!(cleared_active_speaker);
    assert!(
        seat.is_some(),
        "the seat that ended, for GC to close its visit"
    );
    let state = room.state().await;
    assert_eq!(state.participant_count(), 1);
    assert_eq!(
        state.removed.get(&user(1)).map(String::as_str),
        Some("removed_by_host")
    );
    assert_eq!(state.active_speaker, None);

    // Refused from now on, with the waiting room off as on, and not by the lobby either.
    let again = room.join_as(&user(1), Role::Guest).await;
    assert_eq!(again.admission, Admission::Removed);
    assert_eq!(room.state().await.participant_count(), 1);
    room.update_settings(true, 5).await.unwrap();
    assert_eq!(
        room.join_as(&user(1), Role::Guest).await.admission,
        Admission::Removed
    );
    assert!(room.state().await.lobby.is_empty());
}

async fn a_removed_waiting_user_leaves_the_lobby_and_may_not_wait_again(h: Harness) {
    let room = h.room(5, true).await;
    room.join_as(&user(0), Role::Host).await;
    room.join_guest(&user(1), "Gus", 10).await.unwrap();

    let removed = room.remove(&user(1)).await.unwrap();

    assert!(matches!(
        removed,
        LeaveOutcome::Left {
            was: Presence::Lobby,
            ..
        }
    ));
    assert!(room.state().await.lobby.is_empty());
    let again = room.join_guest(&user(1), "Gus", 10).await.unwrap();
    assert_eq!(again.admission, Admission::Removed);
    assert!(
        room.admit(&user(1))
            .await
            .is_ok_and(|out| out == mc_service::room::AdmitOutcome::NotInLobby)
    );
}

async fn removing_someone_absent_remembers_them_and_ending_forgets_everything(h: Harness) {
    let room = h.room(5, true).await;
    room.join_as(&user(0), Role::Host).await;

    let removed = room.remove(&user(7)).await.unwrap();
    assert!(matches!(removed, LeaveOutcome::NotPresent { .. }));
    let again = room.remove(&user(7)).await.unwrap();
    assert!(matches!(again, LeaveOutcome::NotPresent { .. }));
    assert_eq!(
        room.join_as(&user(7), Role::Guest).await.admission,
        Admission::Removed
    );
    h.assert_every_key_has_a_ttl(room.code()).await;

    room.end().await.unwrap();
    h.assert_no_key_left(room.code()).await;
}

on_both_backends!(
    a_removed_participant_loses_the_seat_and_may_not_join_again,
    a_removed_waiting_user_leaves_the_lobby_and_may_not_wait_again,
    removing_someone_absent_remembers_them_and_ending_forgets_everything,
);
