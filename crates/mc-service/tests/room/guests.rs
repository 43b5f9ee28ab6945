//! People without an account (DESIGN §12): they always wait in the lobby, only the host lets
//! them in, and a lobby holds at most so many of them.

use mc_service::room::{Admission, Role};

use crate::on_both_backends;
use crate::support::{Harness, user};

async fn a_guest_waits_even_when_the_waiting_room_is_off(h: Harness) {
    let room = h.room(5, false).await;
    room.join_as(&user(0), Role::Host).await;
    let member = room.join_as(&user(1), Role::Guest).await;
    let guest = room.join_guest(&user(2), "Gus", 10).await.unwrap();

    assert_eq!(member.admission, Admission::Admitted);
    assert_eq!(guest.admission, Admission::Waiting);
    assert_eq!((guest.participant_count, guest.lobby_count), (2, 1));
    let state = room.state().await;
    assert_eq!(state.lobby.len(), 1);
    assert!(state.lobby[0].guest, "the lobby marks the guest");
    assert!(state.participants.iter().all(|p| !p.guest));
}

async fn the_lobby_refuses_a_guest_beyond_its_cap_but_never_a_member(h: Harness) {
    let room = h.room(5, true).await;
    room.join_as(&user(0), Role::Host).await;
    for n in 1..=3 {
        let joined = room.join_guest(&user(n), "Guest", 3).await.unwrap();
        assert_eq!(joined.admission, Admission::Waiting);
    }

    let refused = room.join_guest(&user(4), "Guest", 3).await.unwrap();
    assert_eq!(refused.admission, Admission::LobbyFull);
    assert_eq!(
        refused.lobby_count, 3,
        "the refused guest is not in the lobby"
    );
    // A guest already waiting asks again (a reload): the same place, not a refusal.
    let again = room.join_guest(&user(2), "Guest", 3).await.unwrap();
    assert_eq!(
        (again.admission, again.already_present),
        (Admission::Waiting, true)
    );
    // Members are not counted against the guests' cap, nor refused by it.
    let member = room.join_as(&user(5), Role::Guest).await;
    assert_eq!(member.admission, Admission::Waiting);

    // A guest who leaves the lobby frees a place for another.
    room.leave(&user(1)).await.unwrap();
    let next = room.join_guest(&user(4), "Guest", 3).await.unwrap();
    assert_eq!(next.admission, Admission::Waiting);
    let state = room.state().await;
    assert_eq!(state.lobby.len(), 4);
    assert_eq!(state.lobby.iter().filter(|entry| entry.guest).count(), 3);
}

async fn a_cap_of_zero_refuses_every_guest(h: Harness) {
    let room = h.room(5, true).await;
    let refused = room.join_guest(&user(1), "Guest", 0).await.unwrap();
    assert_eq!(refused.admission, Admission::LobbyFull);
    assert!(room.state().await.lobby.is_empty());
}

async fn only_the_host_lets_a_guest_in(h: Harness) {
    let room = h.room(5, true).await;
    room.join_as(&user(0), Role::Host).await;
    room.join_as(&user(1), Role::Guest).await;
    room.join_guest(&user(2), "Gus", 10).await.unwrap();

    // Turning the waiting room off seats the waiting members, not the guests.
    let moved = room.update_settings(false, 5).await.unwrap();
    assert_eq!(moved.admitted, vec![user(1)]);
    assert_eq!(moved.still_waiting, vec![user(2)]);

    // The host's admit seats the guest, marked as a guest.
    room.admit(&user(2)).await.unwrap();
    let state = room.state().await;
    assert!(state.lobby.is_empty());
    let gus = state
        .participants
        .iter()
        .find(|p| p.user_id == user(2))
        .unwrap();
    assert!(gus.guest);
    assert_eq!(gus.role, Role::Guest);
    assert_eq!(gus.display_name, "Gus");
}

async fn admit_all_lets_guests_in_too(h: Harness) {
    let room = h.room(5, true).await;
    room.join_as(&user(0), Role::Host).await;
    room.join_guest(&user(1), "Gus", 10).await.unwrap();
    room.join_as(&user(2), Role::Guest).await;

    let all = room.admit_all().await.unwrap();

    assert_eq!(all.admitted.len(), 2);
    assert!(all.still_waiting.is_empty());
    let state = room.state().await;
    assert_eq!(state.participants.iter().filter(|p| p.guest).count(), 1);
}

async fn a_seated_guest_joining_again_keeps_the_seat(h: Harness) {
    let room = h.room(5, true).await;
    room.join_as(&user(0), Role::Host).await;
    room.join_guest(&user(1), "Gus", 10).await.unwrap();
    let seat = match room.admit(&user(1)).await.unwrap() {
        mc_service::room::AdmitOutcome::Admitted { seat, .. } => seat,
        other => panic!("{other:?}"),
    };

    let again = room.join_guest(&user(1), "Gus", 0).await.unwrap();

    assert_eq!(again.admission, Admission::Admitted);
    assert!(again.already_present);
    assert_eq!(again.seat, seat, "the same seat, not a new one");
}

/// The scripts keep a count of the guests waiting; a room made before they did counts its
/// lobby once, and every way out of the lobby (admitted, rejected, removed, left) lowers it.
/// The harness's check compares the count with the lobby after every step.
async fn the_count_of_guests_waiting_follows_every_way_in_and_out(h: Harness) {
    let room = h.room(5, true).await;
    room.join_as(&user(0), Role::Host).await;
    for n in 1..=4 {
        room.join_guest(&user(n), "Guest", 4).await.unwrap();
    }
    room.join_as(&user(9), Role::Guest).await; // a member waits too, not counted
    // As if the room were older than the count: it counts its lobby again, once.
    let _: i64 = room
        .h
        .store
        .redis()
        .query(
            deadpool_redis::redis::cmd("HDEL")
                .arg(&room.keys().meta)
                .arg("guests_waiting"),
        )
        .await
        .unwrap();
    assert_eq!(
        room.join_guest(&user(5), "Guest", 4)
            .await
            .unwrap()
            .admission,
        Admission::LobbyFull
    );

    room.admit(&user(1)).await.unwrap();
    room.reject(&user(2)).await.unwrap();
    room.remove(&user(3)).await.unwrap();
    room.leave(&user(4)).await.unwrap();
    room.leave(&user(9)).await.unwrap();

    let kept: i64 = room
        .h
        .store
        .redis()
        .query(
            deadpool_redis::redis::cmd("HGET")
                .arg(&room.keys().meta)
                .arg("guests_waiting"),
        )
        .await
        .unwrap();
    assert_eq!(kept, 0);
    for n in 5..=8 {
        assert_eq!(
            room.join_guest(&user(n), "Guest", 4)
                .await
                .unwrap()
                .admission,
            Admission::Waiting
        );
    }
    assert_eq!(
        room.join_guest(&user(10), "Guest", 4)
            .await
            .unwrap()
            .admission,
        Admission::LobbyFull
    );
}

on_both_backends!(
    the_count_of_guests_waiting_follows_every_way_in_and_out,
    a_guest_waits_even_when_the_waiting_room_is_off,
    the_lobby_refuses_a_guest_beyond_its_cap_but_never_a_member,
    a_cap_of_zero_refuses_every_guest,
    only_the_host_lets_a_guest_in,
    admit_all_lets_guests_in_too,
    a_seated_guest_joining_again_keeps_the_seat,
);
