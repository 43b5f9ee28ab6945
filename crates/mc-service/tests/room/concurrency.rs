//! Many callers at once, each on its own pooled connection: capacity holds, nobody is both
//! seated and waiting, and every outcome matches the final state.

use std::collections::HashSet;
use std::sync::Arc;

use futures::future::join_all;
use mc_service::room::{
    Admission, AdmitOutcome, LeaveOutcome, OwnedRoom, RejectOutcome, Role, RoomStore,
};

use crate::on_both_backends;
use crate::support::{Harness, now, user};

/// Runs `f(i)` for each `i` in `0..n` on its own task, all released at once.
async fn race<T, F, Fut>(h: &Harness, room: &OwnedRoom, n: usize, f: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(RoomStore, OwnedRoom, usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let start = Arc::new(tokio::sync::Barrier::new(n));
    let tasks = (0..n).map(|i| {
        let start = start.clone();
        let work = f(h.store.clone(), room.clone(), i);
        tokio::spawn(async move {
            start.wait().await;
            work.await
        })
    });
    join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect()
}

async fn forty_joins_into_ten_seats_admit_exactly_ten(h: Harness) {
    let room = h.room(10, false).await;

    let outcomes = race(&h, &room.owned, 40, |store, owned, i| async move {
        store
            .join(
                &owned,
                &user(i + 1),
                "Guest",
                Role::Guest,
                None,
                true,
                now(),
            )
            .await
            .unwrap()
    })
    .await;

    let admitted = outcomes
        .iter()
        .filter(|o| o.admission == Admission::Admitted)
        .count();
    let full = outcomes
        .iter()
        .filter(|o| o.admission == Admission::Full)
        .count();
    assert_eq!((admitted, full), (10, 30));
    let mut counts: Vec<u32> = outcomes
        .iter()
        .filter(|o| o.admission == Admission::Admitted)
        .map(|o| o.participant_count)
        .collect();
    counts.sort_unstable();
    assert_eq!(
        counts,
        (1..=10).collect::<Vec<_>>(),
        "each seat counted once"
    );
    room.check().await;
    assert_eq!(room.state().await.participant_count(), 10);
}

async fn twenty_admits_into_five_free_seats_admit_exactly_five(h: Harness) {
    let room = h.room(10, true).await;
    room.join_as(&user(0), Role::Host).await;
    for n in 1..=4 {
        room.join_as(&user(n), Role::Guest).await;
        room.admit(&user(n)).await.unwrap();
    }
    for n in 100..120 {
        room.join_as(&user(n), Role::Guest).await;
    }

    let outcomes = race(&h, &room.owned, 20, |store, owned, i| async move {
        let who = user(100 + i);
        let outcome = store.admit(&owned, &who, now()).await.unwrap();
        (who, outcome)
    })
    .await;

    let admitted: HashSet<_> = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, AdmitOutcome::Admitted { .. }))
        .map(|(who, _)| who.clone())
        .collect();
    let full = outcomes
        .iter()
        .filter(|(_, o)| *o == AdmitOutcome::Full)
        .count();
    assert_eq!((admitted.len(), full), (5, 15));
    room.check().await;
    let state = room.state().await;
    assert_eq!(state.participant_count(), 10);
    assert_eq!(state.lobby.len(), 15);
    let seated: HashSet<_> = state
        .participants
        .iter()
        .map(|p| p.user_id.clone())
        .collect();
    assert!(admitted.is_subset(&seated));
}

async fn two_joins_racing_for_the_last_seat_get_one_seat(h: Harness) {
    let room = h.room(2, false).await;
    room.join_as(&user(1), Role::Guest).await; // one seat left

    let outcomes = race(&h, &room.owned, 2, |store, owned, i| async move {
        store
            .join(
                &owned,
                &user(10 + i),
                "Someone",
                Role::Guest,
                None,
                true,
                now(),
            )
            .await
            .unwrap()
    })
    .await;

    let mut admissions: Vec<_> = outcomes
        .iter()
        .map(|o| format!("{:?}", o.admission))
        .collect();
    admissions.sort();
    assert_eq!(admissions, ["Admitted", "Full"]);
    room.check().await;
    assert_eq!(room.state().await.participant_count(), 2);
}

async fn three_joins_racing_into_an_empty_room_of_two_get_two_seats(h: Harness) {
    let room = h.room(2, false).await;

    let outcomes = race(&h, &room.owned, 3, |store, owned, i| async move {
        store
            .join(
                &owned,
                &user(10 + i),
                "Someone",
                Role::Guest,
                None,
                true,
                now(),
            )
            .await
            .unwrap()
    })
    .await;

    let admitted = outcomes
        .iter()
        .filter(|o| o.admission == Admission::Admitted)
        .count();
    let full = outcomes
        .iter()
        .filter(|o| o.admission == Admission::Full)
        .count();
    assert_eq!((admitted, full), (2, 1));
    room.check().await;
    assert_eq!(room.state().await.participant_count(), 2);
}

async fn one_host_joining_twice_at_once_takes_one_seat(h: Harness) {
    let room = h.room(2, true).await;

    let outcomes = race(&h, &room.owned, 8, |store, owned, _| async move {
        store
            .join(&owned, &user(0), "Host", Role::Host, None, true, now())
            .await
            .unwrap()
    })
    .await;

    assert!(outcomes.iter().all(|o| o.admission == Admission::Admitted));
    assert_eq!(outcomes.iter().filter(|o| !o.already_present).count(), 1);
    assert_eq!(room.state().await.participant_count(), 1);
}

/// Admit, reject and leave of the same waiting users, all at once: each user ends either
/// seated or gone, and the outcomes tell which.
async fn admit_reject_and_leave_racing_on_the_same_users_stay_consistent(h: Harness) {
    let room = h.room(6, true).await;
    room.join_as(&user(0), Role::Host).await;
    let waiting: Vec<String> = (1..=15).map(user).collect();
    for who in &waiting {
        room.join_as(who, Role::Guest).await;
    }

    let outcomes = race(&h, &room.owned, 45, |store, owned, i| async move {
        let who = user(1 + i / 3);
        match i % 3 {
            0 => format!(
                "admit {:?}",
                store.admit(&owned, &who, now()).await.unwrap()
            ),
            1 => format!(
                "reject {:?}",
                store.reject(&owned, &who, "rejected").await.unwrap()
            ),
            _ => format!(
                "leave {:?}",
                store.leave(&owned, &who, "left").await.unwrap()
            ),
        }
    })
    .await;

    room.check().await;
    room.assert_at_most(6).await;
    let state = room.state().await;
    let seated: HashSet<_> = state
        .participants
        .iter()
        .map(|p| p.user_id.clone())
        .collect();
    let lobby: HashSet<_> = state.lobby.iter().map(|e| e.user_id.clone()).collect();
    for (n, who) in waiting.iter().enumerate() {
        let mine = &outcomes[3 * n..3 * n + 3];
        let admit_won = mine[0].starts_with("admit Admitted");
        let left_seat = mine[2].contains("Participant");
        let rejected = mine[1] == format!("reject {:?}", RejectOutcome::Rejected);
        let left_lobby = mine[2].contains("Lobby");
        // Exactly one of: still seated, admitted then left, rejected, left the lobby, or
        // still waiting (the seats were full and nobody removed them).
        let seated_now = seated.contains(who);
        let waiting_now = lobby.contains(who);
        assert_eq!(seated_now, admit_won && !left_seat, "{who}: {mine:?}");
        assert_eq!(
            waiting_now,
            !admit_won && !rejected && !left_lobby,
            "{who}: {mine:?}"
        );
        assert!(!(rejected && left_lobby), "{who} removed twice: {mine:?}");
        if left_seat {
            assert!(admit_won, "{who} left a seat never given: {mine:?}");
        }
    }
}

/// Guests join, the host admits everyone, and seated people leave, all at once.
async fn admit_all_racing_joins_and_leaves_never_overfills(h: Harness) {
    let room = h.room(8, true).await;
    room.join_as(&user(0), Role::Host).await;
    for n in 1..=5 {
        room.join_as(&user(n), Role::Host).await;
    }

    let outcomes = race(&h, &room.owned, 40, |store, owned, i| async move {
        match i % 4 {
            0 => {
                let out = store.admit_all(&owned, now()).await.unwrap();
                out.participant_count
            }
            1 if i < 20 => {
                let out = store.leave(&owned, &user(1 + i / 4), "left").await.unwrap();
                match out {
                    LeaveOutcome::Left {
                        remaining_participants,
                        ..
                    } => remaining_participants,
                    LeaveOutcome::NotPresent { .. } => 0,
                }
            }
            _ => {
                let out = store
                    .join(
                        &owned,
                        &user(100 + i),
                        "Guest",
                        Role::Guest,
                        None,
                        true,
                        now(),
                    )
                    .await
                    .unwrap();
                out.participant_count
            }
        }
    })
    .await;

    assert!(outcomes.iter().all(|count| *count <= 8), "{outcomes:?}");
    room.check().await;
    room.assert_at_most(8).await;
    let final_round = room.admit_all().await.unwrap();
    assert_eq!(
        final_round.participant_count, 8,
        "seats remain free while people wait"
    );
}

/// Turning the waiting room off while guests keep joining: nobody waits while a seat is free
/// after the change, and the room never overfills.
async fn turning_the_waiting_room_off_during_joins_never_overfills(h: Harness) {
    let room = h.room(12, true).await;
    room.join_as(&user(0), Role::Host).await;

    let outcomes = race(&h, &room.owned, 31, |store, owned, i| async move {
        if i == 15 {
            let settings = crate::support::settings(false);
            let out = store
                .update_settings(&owned, &settings, 12, 0, now())
                .await
                .unwrap();
            format!("settings {}", out.moves.participant_count)
        } else {
            let out = store
                .join(
                    &owned,
                    &user(100 + i),
                    "Guest",
                    Role::Guest,
                    None,
                    true,
                    now(),
                )
                .await
                .unwrap();
            format!("{:?}", out.admission)
        }
    })
    .await;

    room.check().await;
    room.assert_at_most(12).await;
    let state = room.state().await;
    assert!(!state.settings.waiting_room_enabled);
    assert!(
        state.participant_count() == 12 || state.lobby.is_empty(),
        "people wait beside free seats: {outcomes:?}"
    );
}

on_both_backends!(
    forty_joins_into_ten_seats_admit_exactly_ten,
    twenty_admits_into_five_free_seats_admit_exactly_five,
    two_joins_racing_for_the_last_seat_get_one_seat,
    three_joins_racing_into_an_empty_room_of_two_get_two_seats,
    one_host_joining_twice_at_once_takes_one_seat,
    admit_reject_and_leave_racing_on_the_same_users_stay_consistent,
    admit_all_racing_joins_and_leaves_never_overfills,
    turning_the_waiting_room_off_during_joins_never_overfills,
);
