//! Each operation's outcomes, one at a time.

use deadpool_redis::redis::cmd;
use mc_service::room::{
    Admission, AssignOutcome, EndOutcome, FencingToken, HardwareReady, HostChange, JoinOutcome,
    LeaveOutcome, OwnedRoom, ParticipantStatus, ParticipantUpdate, Presence, Role, RoomError,
    SpeakerOutcome,
};

use crate::on_both_backends;
use crate::support::{Harness, TTL, random_code, settings, user};

/// The outcome expected, with the seat number the room gave (`seat`, 0 for none) and the users
/// waiting after the join (`lobby_count`).
fn joined(
    admission: Admission,
    participant_count: u32,
    already_present: bool,
    seat: u64,
    lobby_count: u32,
) -> JoinOutcome {
    JoinOutcome {
        admission,
        participant_count,
        already_present,
        seat,
        lobby_count,
        role: Role::Guest,
        host_change: None,
        // The harness's rooms are hosted by user 0 from the start.
        host: HostChange {
            host: Some(user(0)),
            seq: 0,
        },
    }
}

/// [`joined`] for the room's host.
fn hosted(outcome: JoinOutcome) -> JoinOutcome {
    JoinOutcome {
        role: Role::Host,
        ..outcome
    }
}

async fn assign_creates_a_room_with_its_meta(h: Harness) {
    let code = random_code();
    let meta = Harness::meta(7, settings(false));

    let outcome = h.store.assign(&code, &meta, FencingToken(3), "mc-a").await;

    assert_eq!(outcome.unwrap(), AssignOutcome::Created);
    h.assert_every_key_has_a_ttl(&code).await;
    let state = h.store.state(&code).await.unwrap();
    assert_eq!(state.meeting_id, meta.meeting_id);
    assert_eq!(state.host_id, meta.host_id);
    assert_eq!(state.owner, "mc-a");
    assert_eq!(state.fencing_token, FencingToken(3));
    assert_eq!(state.max_participants, 7);
    assert_eq!(state.settings, settings(false));
    assert!(state.participants.is_empty() && state.lobby.is_empty());
    assert_eq!(state.active_speaker, None);
}

async fn join_seats_the_host_and_queues_a_guest_when_the_waiting_room_is_on(h: Harness) {
    let room = h.room(10, true).await;

    let host = room.join_as(&user(0), Role::Host).await;
    let guest = room.join_as(&user(1), Role::Guest).await;

    assert!(host.seat > 0, "a seat has a number");
    assert_eq!(
        host,
        hosted(joined(Admission::Admitted, 1, false, host.seat, 0))
    );
    assert_eq!(guest, joined(Admission::Waiting, 1, false, 0, 1));
    let state = room.state().await;
    assert_eq!(state.participants.len(), 1);
    let seat = &state.participants[0];
    assert_eq!(seat.seat, host.seat, "the seat's record keeps its number");
    assert_eq!(seat.user_id, user(0));
    assert_eq!(seat.role, Role::Host);
    assert_eq!(seat.status, ParticipantStatus::Admitted);
    assert_eq!((seat.language.clone(), seat.hardware_ready), (None, None));
    assert_eq!(seat.display_name, "Ada Lovelace");
    assert_eq!(state.lobby.len(), 1);
    assert_eq!(state.lobby[0].user_id, user(1));
}

async fn join_again_changes_nothing(h: Harness) {
    let room = h.room(10, true).await;
    let host = room.join_as(&user(0), Role::Host).await;
    room.join_as(&user(1), Role::Guest).await;
    let before = room.state().await;

    let host_again = room
        .join(&user(0), "Other Name", Role::Guest)
        .await
        .unwrap();
    let guest_again = room.join(&user(1), "Other Name", Role::Host).await.unwrap();

    assert_eq!(
        host_again,
        hosted(joined(Admission::Admitted, 1, true, host.seat, 1))
    );
    assert_eq!(guest_again, joined(Admission::Waiting, 1, true, 0, 1));
    assert_eq!(room.state().await, before);
}

async fn join_counts_the_lobby_as_the_join_leaves_it(h: Harness) {
    let room = h.room(2, true).await;
    room.join_as(&user(1), Role::Guest).await;
    room.join_as(&user(2), Role::Guest).await;

    let host = room.join_as(&user(0), Role::Host).await;
    let third = room.join_as(&user(3), Role::Guest).await;
    let first_again = room.join_as(&user(1), Role::Guest).await;
    room.admit(&user(1)).await.unwrap();
    let second_host = room.join_as(&user(4), Role::Host).await;
    let host_again = room.join_as(&user(0), Role::Host).await;

    assert_eq!(
        host,
        hosted(joined(Admission::Admitted, 1, false, host.seat, 2))
    );
    assert_eq!(third, joined(Admission::Waiting, 1, false, 0, 3));
    assert_eq!(first_again, joined(Admission::Waiting, 1, true, 0, 3));
    assert_eq!(
        second_host,
        joined(Admission::Waiting, 2, false, 0, 3),
        "the room decides who hosts: anyone but its host waits as a guest"
    );
    assert_eq!(
        host_again,
        hosted(joined(Admission::Admitted, 2, true, host.seat, 3))
    );
    assert_eq!(
        room.state().await.lobby.len(),
        3,
        "as the room's state counts it"
    );
}

async fn join_seats_everyone_until_full_when_the_waiting_room_is_off(h: Harness) {
    let room = h.room(2, false).await;

    let first = room.join_as(&user(1), Role::Guest).await;
    let second = room.join_as(&user(2), Role::Guest).await;
    let third = room.join_as(&user(3), Role::Guest).await;
    let host = room.join_as(&user(0), Role::Host).await;

    assert_eq!(first, joined(Admission::Admitted, 1, false, first.seat, 0));
    assert_eq!(
        second,
        joined(Admission::Admitted, 2, false, first.seat + 1, 0),
        "seats are numbered one after the other"
    );
    assert_eq!(third, joined(Admission::Full, 2, false, 0, 0));
    assert_eq!(host, hosted(joined(Admission::Full, 2, false, 0, 0)));
    let state = room.state().await;
    assert_eq!(state.participant_count(), 2);
    assert!(
        state.lobby.is_empty(),
        "a full room puts nobody in the lobby"
    );
}

async fn leave_frees_a_seat_and_clears_the_active_speaker(h: Harness) {
    let room = h.room(2, false).await;
    room.join_as(&user(1), Role::Guest).await;
    room.join_as(&user(2), Role::Guest).await;
    room.set_active_speaker(Some(&user(1))).await.unwrap();

    let seat = room
        .state()
        .await
        .participants
        .into_iter()
        .find(|p| p.user_id == user(1))
        .unwrap();
    let last = room.state().await.last_seat;

    let left = room.leave(&user(1)).await.unwrap();
    let again = room.leave(&user(1)).await.unwrap();
    let newcomer = room.join_as(&user(3), Role::Guest).await;

    assert_eq!(
        left,
        LeaveOutcome::Left {
            was: Presence::Participant,
            remaining_participants: 1,
            cleared_active_speaker: true,
            seat: Some(Box::new(seat)),
            last_seat: last,
            host_change: None,
        }
    );
    assert_eq!(
        again,
        LeaveOutcome::NotPresent {
            participant_count: 1,
            last_seat: last
        }
    );
    assert!(newcomer.seat > last, "a later seat has a higher number");
    assert_eq!(newcomer.admission, Admission::Admitted);
    assert_eq!(room.state().await.active_speaker, None);
}

async fn leave_keeps_the_active_speaker_when_someone_else_leaves(h: Harness) {
    let room = h.room(5, false).await;
    room.join_as(&user(1), Role::Guest).await;
    room.join_as(&user(2), Role::Guest).await;
    room.set_active_speaker(Some(&user(1))).await.unwrap();

    let left = room.leave(&user(2)).await.unwrap();

    assert!(matches!(
        left,
        LeaveOutcome::Left {
            cleared_active_speaker: false,
            ..
        }
    ));
    assert_eq!(room.state().await.active_speaker, Some(user(1)));
}

async fn set_active_speaker_accepts_only_seated_participants(h: Harness) {
    let room = h.room(5, true).await;
    room.join_as(&user(0), Role::Host).await;
    room.join_as(&user(1), Role::Guest).await; // waiting

    let waiting = room.set_active_speaker(Some(&user(1))).await.unwrap();
    let stranger = room.set_active_speaker(Some(&user(9))).await.unwrap();
    let host = room.set_active_speaker(Some(&user(0))).await.unwrap();
    let same = room.set_active_speaker(Some(&user(0))).await.unwrap();
    let cleared = room.set_active_speaker(None).await.unwrap();
    let cleared_again = room.set_active_speaker(None).await.unwrap();

    assert_eq!(waiting, SpeakerOutcome::NotAParticipant);
    assert_eq!(stranger, SpeakerOutcome::NotAParticipant);
    assert_eq!(host, SpeakerOutcome::Changed { previous: None });
    assert_eq!(same, SpeakerOutcome::Unchanged);
    assert_eq!(
        cleared,
        SpeakerOutcome::Changed {
            previous: Some(user(0))
        }
    );
    assert_eq!(cleared_again, SpeakerOutcome::Unchanged);
}

async fn set_participant_fields_changes_only_the_given_fields(h: Harness) {
    let room = h.room(5, false).await;
    room.join_as(&user(1), Role::Guest).await;
    let hardware = HardwareReady {
        audio_ready: true,
        video_ready: false,
    };

    let first = room
        .set_fields(
            &user(1),
            &ParticipantUpdate {
                status: Some(ParticipantStatus::Connected),
                language: Some(Some("pt-BR".into())),
                hardware_ready: Some(Some(hardware)),
                connection: None,
            },
        )
        .await
        .unwrap()
        .unwrap();
    let second = room
        .set_fields(
            &user(1),
            &ParticipantUpdate {
                language: Some(None),
                ..ParticipantUpdate::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    let stranger = room
        .set_fields(&user(2), &ParticipantUpdate::default())
        .await
        .unwrap();

    assert_eq!(first.status, ParticipantStatus::Connected);
    assert_eq!(first.language.as_deref(), Some("pt-BR"));
    assert_eq!(first.hardware_ready, Some(hardware));
    assert_eq!(second.status, ParticipantStatus::Connected);
    assert_eq!(second.language, None);
    assert_eq!(second.hardware_ready, Some(hardware));
    assert_eq!(second.display_name, "Ada Lovelace");
    assert_eq!(second.joined_at, first.joined_at);
    assert_eq!(stranger, None);
    assert_eq!(room.state().await.participants, vec![second]);
}

async fn end_room_deletes_every_key_and_is_idempotent(h: Harness) {
    let room = h.room(5, true).await;
    room.join_as(&user(0), Role::Host).await;
    room.join_as(&user(1), Role::Guest).await;
    room.set_active_speaker(Some(&user(0))).await.unwrap();

    let first = room.end().await.unwrap();
    let second = room.end().await.unwrap();

    assert_eq!(first, EndOutcome::Ended);
    assert_eq!(second, EndOutcome::AlreadyGone);
    h.assert_no_key_left(room.code()).await;
    assert!(matches!(
        h.store.state(room.code()).await,
        Err(RoomError::NotFound)
    ));
}

async fn every_operation_on_an_ended_room_finds_nothing_and_writes_nothing(h: Harness) {
    let room = h.room(5, true).await;
    room.join_as(&user(0), Role::Host).await;
    room.end().await.unwrap();

    let results = [
        room.join(&user(1), "x", Role::Guest).await.err(),
        room.admit(&user(1)).await.err(),
        room.reject(&user(1)).await.err(),
        room.admit_all().await.err(),
        room.leave(&user(0)).await.err(),
        room.update_settings(false, 9).await.err(),
        room.touch().await.err(),
        room.set_active_speaker(None).await.err(),
        room.set_fields(&user(0), &ParticipantUpdate::default())
            .await
            .err(),
    ];

    for (i, result) in results.into_iter().enumerate() {
        assert!(
            matches!(result, Some(RoomError::NotFound)),
            "operation {i}: {result:?}"
        );
    }
    h.assert_no_key_left(room.code()).await;
}

async fn every_operation_on_an_unknown_code_finds_nothing_and_writes_nothing(h: Harness) {
    let room = h.room_handle(OwnedRoom::new(random_code(), FencingToken(1)));

    let join = room.join(&user(1), "x", Role::Host).await;
    let admit = room.admit(&user(1)).await;
    let leave = room.leave(&user(1)).await;
    let touch = room.touch().await;
    let end = room.end().await;
    let state = h.store.state(room.code()).await;

    assert!(matches!(join, Err(RoomError::NotFound)));
    assert!(matches!(admit, Err(RoomError::NotFound)));
    assert!(matches!(leave, Err(RoomError::NotFound)));
    assert!(matches!(touch, Err(RoomError::NotFound)));
    assert_eq!(end.unwrap(), EndOutcome::AlreadyGone);
    assert!(matches!(state, Err(RoomError::NotFound)));
    h.assert_no_key_left(room.code()).await;
}

async fn touch_gives_every_key_the_full_ttl_again(h: Harness) {
    let room = h.room(5, true).await;
    room.join_as(&user(0), Role::Host).await;
    room.join_as(&user(1), Role::Guest).await;
    room.join_as(&user(2), Role::Guest).await;
    room.reject(&user(2)).await.unwrap();
    room.remove(&user(3)).await.unwrap();
    room.set_active_speaker(Some(&user(0))).await.unwrap();
    for key in room.keys().all() {
        let _: i64 = h
            .store
            .redis()
            .query(cmd("PEXPIRE").arg(key).arg(5_000))
            .await
            .unwrap();
    }

    room.touch().await.unwrap();

    let floor = i64::try_from(TTL.as_millis()).unwrap() - 60_000;
    for (key, pttl) in h.pttls(&room.keys()).await {
        assert!(pttl > floor, "{key} has PTTL {pttl} after touch");
    }
}

on_both_backends!(
    assign_creates_a_room_with_its_meta,
    join_seats_the_host_and_queues_a_guest_when_the_waiting_room_is_on,
    join_again_changes_nothing,
    join_counts_the_lobby_as_the_join_leaves_it,
    join_seats_everyone_until_full_when_the_waiting_room_is_off,
    leave_frees_a_seat_and_clears_the_active_speaker,
    leave_keeps_the_active_speaker_when_someone_else_leaves,
    set_active_speaker_accepts_only_seated_participants,
    set_participant_fields_changes_only_the_given_fields,
    end_room_deletes_every_key_and_is_idempotent,
    every_operation_on_an_ended_room_finds_nothing_and_writes_nothing,
    every_operation_on_an_unknown_code_finds_nothing_and_writes_nothing,
    touch_gives_every_key_the_full_ttl_again,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_keys_of_a_room_hash_to_one_cluster_slot() {
    let h = Harness::cluster().await;
    let keys = h.store.keys(&random_code());
    let mut slots = Vec::new();
    for key in keys.all() {
        let slot: i64 = h
            .store
            .redis()
            .query(cmd("CLUSTER").arg("KEYSLOT").arg(key))
            .await
            .unwrap();
        slots.push(slot);
    }
    slots.dedup();
    assert_eq!(slots.len(), 1, "keys {:?} span slots {slots:?}", keys.all());
}

#[tokio::test]
async fn a_store_refuses_a_ttl_under_one_second_or_over_the_maximum() {
    use mc_service::room::{MAX_TTL, RedisPool, RoomStore, RoomStoreConfig};
    use std::time::Duration;
    let pool = RedisPool::single("redis://127.0.0.1:1", None).unwrap();
    let store_with = |ttl| {
        let config = RoomStoreConfig {
            ttl,
            ..RoomStoreConfig::default()
        };
        RoomStore::new(pool.clone(), config)
    };

    for refused in [
        Duration::from_millis(999),
        MAX_TTL + Duration::from_secs(1),
        Duration::MAX,
    ] {
        assert!(
            matches!(store_with(refused), Err(RoomError::InvalidInput(_))),
            "{refused:?}"
        );
    }
    assert!(store_with(Duration::from_secs(1)).is_ok());
    assert!(store_with(MAX_TTL).is_ok());
}

/// One process per test (nextest), so this test's recorder sees only its own operations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_operation_records_its_latency_under_its_own_name() {
    let metrics = common::metrics::install_recorder(&[]).unwrap();
    let h = Harness::single().await;
    let room = h.room(5, true).await;
    room.join_as(&user(1), Role::Guest).await;
    room.admit(&user(1)).await.unwrap();
    room.state().await;

    let text = metrics.render();

    for command in ["assign", "join", "admit"] {
        let series = format!("mc_redis_command_duration_seconds_count{{command=\"{command}\"}} 1");
        assert!(text.contains(&series), "no {series} in:\n{text}");
    }
    // The harness reads the room after every operation to check its invariants.
    assert!(
        text.contains("mc_redis_command_duration_seconds_count{command=\"state\"}"),
        "{text}"
    );
    assert!(!text.contains("mc_redis_command_errors_total"), "{text}");
}
