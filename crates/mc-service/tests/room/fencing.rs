//! Ownership: assign's takeover rules, and every write of a fenced-out owner refused.

use mc_service::room::{
    Admission, AssignOutcome, EndOutcome, FencingToken, OwnedRoom, ParticipantUpdate, Role,
    RoomError,
};

use crate::on_both_backends;
use crate::support::{Harness, random_code, settings, user};

fn is_fenced_by(result: &Result<impl std::fmt::Debug, RoomError>, token: u64) -> bool {
    matches!(result, Err(RoomError::Fenced { current }) if *current == FencingToken(token))
}

async fn a_higher_token_takes_over_and_keeps_seats_and_lobby(h: Harness) {
    let old = h.room(5, true).await;
    old.join_as(&user(0), Role::Host).await;
    old.join_as(&user(1), Role::Guest).await;
    old.set_active_speaker(Some(&user(0))).await.unwrap();
    let before = old.state().await;

    let takeover = h
        .store
        .assign(
            old.code(),
            &Harness::meta(5, settings(true)),
            FencingToken(2),
            "mc-b",
        )
        .await
        .unwrap();

    assert_eq!(
        takeover,
        AssignOutcome::TookOver {
            previous_owner: "mc-a".into(),
            previous_token: FencingToken(1)
        }
    );
    let after = old.state().await;
    assert_eq!(after.participants, before.participants);
    assert_eq!(after.lobby, before.lobby);
    assert_eq!(after.active_speaker, before.active_speaker);
    assert_eq!(
        (after.owner.as_str(), after.fencing_token),
        ("mc-b", FencingToken(2))
    );
    old.check().await;
}

async fn the_old_owner_is_refused_every_write_after_a_takeover(h: Harness) {
    let old = h.room(5, true).await;
    old.join_as(&user(0), Role::Host).await;
    old.join_as(&user(1), Role::Guest).await;
    old.join_as(&user(2), Role::Guest).await;
    h.store
        .assign(
            old.code(),
            &Harness::meta(5, settings(true)),
            FencingToken(2),
            "mc-b",
        )
        .await
        .unwrap();
    let before = old.state().await;

    assert!(is_fenced_by(&old.join(&user(3), "x", Role::Host).await, 2));
    assert!(is_fenced_by(&old.admit(&user(1)).await, 2));
    assert!(is_fenced_by(&old.reject(&user(2)).await, 2));
    assert!(is_fenced_by(&old.admit_all().await, 2));
    assert!(is_fenced_by(&old.leave(&user(0)).await, 2));
    assert!(is_fenced_by(&old.update_settings(false, 9).await, 2));
    assert!(is_fenced_by(
        &old.set_active_speaker(Some(&user(0))).await,
        2
    ));
    assert!(is_fenced_by(
        &old.set_fields(&user(0), &ParticipantUpdate::default())
            .await,
        2
    ));
    assert!(is_fenced_by(&old.touch().await, 2));
    assert!(is_fenced_by(&old.end().await, 2));

    assert_eq!(old.state().await, before, "a fenced write changed the room");
}

async fn the_new_owner_carries_on_with_the_loaded_state(h: Harness) {
    let old = h.room(5, true).await;
    old.join_as(&user(0), Role::Host).await;
    old.join_as(&user(1), Role::Guest).await;
    h.store
        .assign(
            old.code(),
            &Harness::meta(5, settings(true)),
            FencingToken(2),
            "mc-b",
        )
        .await
        .unwrap();
    let new = h.room_handle(OwnedRoom::new(old.code().clone(), FencingToken(2)));

    let admitted = new.admit(&user(1)).await.unwrap();
    let rejoined = new.join_as(&user(0), Role::Host).await;
    let ended = new.end().await.unwrap();
    let old_end = old.end().await.unwrap();

    assert!(matches!(
        admitted,
        mc_service::room::AdmitOutcome::Admitted { .. }
    ));
    assert_eq!(rejoined.admission, Admission::Admitted);
    assert!(rejoined.already_present);
    assert_eq!(ended, EndOutcome::Ended);
    assert_eq!(
        old_end,
        EndOutcome::AlreadyGone,
        "the room is gone for everyone"
    );
    h.assert_no_key_left(old.code()).await;
}

async fn assign_with_a_lower_token_is_refused(h: Harness) {
    let code = random_code();
    let meta = Harness::meta(5, settings(true));
    h.store
        .assign(&code, &meta, FencingToken(5), "mc-a")
        .await
        .unwrap();

    let lower = h.store.assign(&code, &meta, FencingToken(4), "mc-b").await;
    let lower_same_owner = h.store.assign(&code, &meta, FencingToken(4), "mc-a").await;

    assert!(is_fenced_by(&lower, 5));
    assert!(is_fenced_by(&lower_same_owner, 5));
    let state = h.store.state(&code).await.unwrap();
    assert_eq!(
        (state.owner.as_str(), state.fencing_token),
        ("mc-a", FencingToken(5))
    );
}

async fn assign_with_the_same_token_refreshes_settings_and_capacity(h: Harness) {
    let code = random_code();
    h.store
        .assign(
            &code,
            &Harness::meta(5, settings(true)),
            FencingToken(5),
            "mc-a",
        )
        .await
        .unwrap();

    let again = h
        .store
        .assign(
            &code,
            &Harness::meta(8, settings(false)),
            FencingToken(5),
            "mc-a",
        )
        .await
        .unwrap();

    assert_eq!(again, AssignOutcome::Refreshed);
    let state = h.store.state(&code).await.unwrap();
    assert_eq!(state.max_participants, 8);
    assert!(!state.settings.waiting_room_enabled);
    h.assert_every_key_has_a_ttl(&code).await;
}

async fn assign_with_the_same_token_from_another_owner_is_refused(h: Harness) {
    let code = random_code();
    let meta = Harness::meta(5, settings(true));
    h.store
        .assign(&code, &meta, FencingToken(5), "mc-a")
        .await
        .unwrap();

    let other = h.store.assign(&code, &meta, FencingToken(5), "mc-b").await;

    assert!(is_fenced_by(&other, 5));
    assert_eq!(h.store.state(&code).await.unwrap().owner, "mc-a");
}

/// Lua numbers are doubles: 2^53 and 2^53 + 1 are the same number there. The tokens are
/// compared as decimal text, so they stay apart.
async fn tokens_beyond_two_to_the_53_stay_distinct(h: Harness) {
    let code = random_code();
    let meta = Harness::meta(5, settings(false));
    let low = 1u64 << 53;
    h.store
        .assign(&code, &meta, FencingToken(low), "mc-a")
        .await
        .unwrap();

    let takeover = h
        .store
        .assign(&code, &meta, FencingToken(low + 1), "mc-b")
        .await
        .unwrap();
    let old = OwnedRoom::new(code.clone(), FencingToken(low));
    let old_join = h
        .store
        .join(
            &old,
            &user(1),
            "x",
            Role::Guest,
            None,
            true,
            crate::support::now(),
        )
        .await;
    let back = h
        .store
        .assign(&code, &meta, FencingToken(low), "mc-a")
        .await;
    let max = h
        .store
        .assign(&code, &meta, FencingToken(u64::MAX), "mc-c")
        .await
        .unwrap();

    assert!(matches!(takeover, AssignOutcome::TookOver { .. }));
    assert!(is_fenced_by(&old_join, low + 1));
    assert!(is_fenced_by(&back, low + 1));
    assert_eq!(
        max,
        AssignOutcome::TookOver {
            previous_owner: "mc-b".into(),
            previous_token: FencingToken(low + 1)
        }
    );
}

async fn a_room_assigned_after_its_keys_expired_starts_empty(h: Harness) {
    // The meta key expired first (or was lost); stale seats must not come back.
    let room = h.room(5, false).await;
    room.join_as(&user(1), Role::Guest).await;
    let _: i64 = h
        .store
        .redis()
        .query(deadpool_redis::redis::cmd("DEL").arg(&room.keys().meta))
        .await
        .unwrap();

    let outcome = h
        .store
        .assign(
            room.code(),
            &Harness::meta(5, settings(false)),
            FencingToken(2),
            "mc-b",
        )
        .await
        .unwrap();

    assert_eq!(outcome, AssignOutcome::Created);
    assert!(room.state().await.participants.is_empty());
}

on_both_backends!(
    a_higher_token_takes_over_and_keeps_seats_and_lobby,
    the_old_owner_is_refused_every_write_after_a_takeover,
    the_new_owner_carries_on_with_the_loaded_state,
    assign_with_a_lower_token_is_refused,
    assign_with_the_same_token_refreshes_settings_and_capacity,
    assign_with_the_same_token_from_another_owner_is_refused,
    tokens_beyond_two_to_the_53_stay_distinct,
    a_room_assigned_after_its_keys_expired_starts_empty,
);
