//! Odd bytes and sizes through the scripts' JSON: names and ids with quotes, backslashes, NUL,
//! JSON and Lua syntax, and lengths at and past the store's limits. The store must keep them
//! exactly, never let them change another field, and refuse what is too large before sending.

use mc_service::room::{
    Admission, MAX_DISPLAY_NAME_BYTES, MAX_ID_BYTES, MAX_LANGUAGE_BYTES, ParticipantUpdate, Role,
    RoomError,
};

use crate::on_both_backends;
use crate::support::{Harness, user};

/// Names that break naive JSON or Lua string handling.
const ODD_NAMES: &[&str] = &[
    r#"Robert"); DROP TABLE"#,
    r#"back\slash \" \\ \u0000"#,
    "nul\0inside\0",
    "new\nline\ttab\r\u{7f}\u{1b}[31m",
    r#"","role":"host","status":"connected"#,
    "]] .. redis.call('FLUSHALL') .. [[",
    "%s%d%%",
    "{curly} [square] </script>",
    "emoji 👩\u{200d}💻 and \u{202e}RTL\u{2028}sep",
    "",
];

/// Ids that are not UUIDs (callers validate them; the store must still not be confused).
const ODD_IDS: &[&str] = &[
    "\"quoted\"",
    "back\\slash",
    "nul\0id",
    "{room}:participants",
    "0",
    " ",
    "🦀",
];

async fn odd_display_names_are_stored_exactly_and_change_no_other_field(h: Harness) {
    let room = h.room(50, true).await;
    room.join_as(&user(0), Role::Host).await;

    for (i, name) in ODD_NAMES.iter().enumerate() {
        let waiting = user(100 + i);
        let seated = user(200 + i);
        let joined = room.join(&waiting, name, Role::Guest).await.unwrap();
        assert_eq!(joined.admission, Admission::Waiting, "{name:?}");
        let state = room.state().await;
        let entry = state.lobby.iter().find(|e| e.user_id == waiting).unwrap();
        assert_eq!(entry.display_name, *name);

        room.admit(&waiting).await.unwrap();
        room.join(&seated, name, Role::Guest).await.unwrap();
        room.admit(&seated).await.unwrap();
        room.set_fields(&seated, &ParticipantUpdate::default())
            .await
            .unwrap();
        let state = room.state().await;
        for who in [&waiting, &seated] {
            let seat = state
                .participants
                .iter()
                .find(|p| &p.user_id == who)
                .unwrap();
            assert_eq!(seat.display_name, *name);
            assert_eq!(seat.language, None);
        }
        let admitted = state
            .participants
            .iter()
            .find(|p| p.user_id == waiting)
            .unwrap();
        assert_eq!(
            admitted.role,
            Role::Guest,
            "a name must not smuggle in a role"
        );
    }
}

async fn odd_user_ids_are_kept_apart_and_exact(h: Harness) {
    let room = h.room(50, true).await;
    room.join_as(&user(0), Role::Host).await;

    for id in ODD_IDS {
        room.join(id, "Guest", Role::Guest).await.unwrap();
    }
    let admitted = room.admit_all().await.unwrap();
    room.set_active_speaker(Some("nul\0id")).await.unwrap();

    let mut expected: Vec<String> = ODD_IDS.iter().map(|s| s.to_string()).collect();
    let mut got = admitted.admitted.clone();
    expected.sort();
    got.sort();
    assert_eq!(got, expected);
    let state = room.state().await;
    assert_eq!(state.participant_count() as usize, ODD_IDS.len() + 1);
    assert_eq!(state.active_speaker.as_deref(), Some("nul\0id"));
    assert!(state.participants.iter().any(|p| p.user_id == "nul\0id"));
    // "nul" alone (the id cut at its NUL) is somebody else.
    assert!(matches!(
        room.leave("nul").await.unwrap(),
        mc_service::room::LeaveOutcome::NotPresent { .. }
    ));
    for id in ODD_IDS {
        room.leave(id).await.unwrap();
    }
    assert_eq!(room.state().await.participant_count(), 1);
    assert_eq!(room.state().await.active_speaker, None);
}

async fn odd_languages_round_trip_through_the_lua_json_merge(h: Harness) {
    let room = h.room(5, false).await;
    room.join_as(&user(1), Role::Guest).await;
    let language = "x-\"\\\0\u{2028}é".to_string();

    let updated = room
        .set_fields(
            &user(1),
            &ParticipantUpdate {
                language: Some(Some(language.clone())),
                ..ParticipantUpdate::default()
            },
        )
        .await
        .unwrap()
        .unwrap();

    assert_eq!(updated.language.as_deref(), Some(language.as_str()));
    assert_eq!(room.state().await.participants[0].language, Some(language));
}

async fn names_and_ids_at_the_limits_are_kept_and_past_them_refused(h: Harness) {
    let room = h.room(5, false).await;
    // 255 four-byte characters: the longest name common::display_name lets through.
    let longest_name = "😀".repeat(255);
    assert_eq!(longest_name.len(), MAX_DISPLAY_NAME_BYTES);
    let longest_id = "i".repeat(MAX_ID_BYTES);

    let ok = room
        .join(&longest_id, &longest_name, Role::Guest)
        .await
        .unwrap();
    let long_name = room
        .join(
            &user(2),
            &"n".repeat(MAX_DISPLAY_NAME_BYTES + 1),
            Role::Guest,
        )
        .await;
    let huge_name = room.join(&user(3), &"n".repeat(1 << 20), Role::Guest).await;
    let long_id = room
        .join(&"i".repeat(MAX_ID_BYTES + 1), "x", Role::Guest)
        .await;
    let empty_id = room.join("", "x", Role::Guest).await;
    let long_language = room
        .set_fields(
            &longest_id,
            &ParticipantUpdate {
                language: Some(Some("l".repeat(MAX_LANGUAGE_BYTES + 1))),
                ..ParticipantUpdate::default()
            },
        )
        .await;

    assert_eq!(ok.admission, Admission::Admitted);
    for refused in [&long_name, &huge_name, &long_id, &empty_id] {
        assert!(
            matches!(refused, Err(RoomError::InvalidInput(_))),
            "{refused:?}"
        );
    }
    assert!(matches!(long_language, Err(RoomError::InvalidInput(_))));
    let state = room.state().await;
    assert_eq!(state.participant_count(), 1);
    assert_eq!(state.participants[0].display_name, longest_name);
    assert_eq!(state.participants[0].user_id, longest_id);
    assert_eq!(state.participants[0].language, None);
}

async fn a_capacity_of_zero_is_refused(h: Harness) {
    let room = h.room(5, false).await;
    let code = mc_service::room::FencingToken(1);

    let update = room.update_settings(false, 0).await;
    let assign = h
        .store
        .assign(
            room.code(),
            &Harness::meta(0, crate::support::settings(false)),
            code,
            "mc-a",
        )
        .await;

    assert!(matches!(update, Err(RoomError::InvalidInput(_))));
    assert!(matches!(assign, Err(RoomError::InvalidInput(_))));
    assert_eq!(room.state().await.max_participants, 5);
}

on_both_backends!(
    odd_display_names_are_stored_exactly_and_change_no_other_field,
    odd_user_ids_are_kept_apart_and_exact,
    odd_languages_round_trip_through_the_lua_json_merge,
    names_and_ids_at_the_limits_are_kept_and_past_them_refused,
    a_capacity_of_zero_is_refused,
);
