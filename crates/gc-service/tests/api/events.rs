//! The record of every change (`domain::events`, `db::events`): each change of a meeting, made
//! over the REST API with a real meeting controller, is recorded once, as the domain's event, in
//! the order it happened; a meeting's start is recorded once whatever joins race to start it.

use common::jwt::MeetingRole;
use gc_service::domain::events::{EndReason, LeaveReason, MeetingEvent};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{HOST, recorded_events};
use crate::meetings::{call, create, join, stack_with_mc};

#[sqlx::test(migrations = "../../migrations")]
async fn every_change_of_a_meeting_is_recorded_once_in_the_order_it_happened(pool: PgPool) {
    let (stack, _prefix, people) = stack_with_mc(pool).await;
    let host = stack.user_token(HOST).await;
    let host_id = stack.user_id(HOST).await;
    let (turned_away, turned_away_token) = people.user(&stack, stack.org_id, "Turned").await;
    let (guest, guest_token) = people.user(&stack, stack.org_id, "Guest").await;
    let code = create(
        &stack,
        &host,
        &json!({"display_name": "Recorded", "max_participants": 5}),
    )
    .await;
    let meetings = format!("/api/v1/meetings/{code}");

    assert_eq!(join(&stack, &code, &host).await.0, StatusCode::OK);
    for token in [&turned_away_token, &guest_token] {
        let (status, body) = join(&stack, &code, token).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (StatusCode::OK, Some("waiting"))
        );
    }
    let reject = format!("{meetings}/reject/{turned_away}");
    assert_eq!(
        call(&stack, Method::POST, &reject, &host, None).await.0,
        StatusCode::OK
    );
    let admit = format!("{meetings}/admit/{guest}");
    assert_eq!(
        call(&stack, Method::POST, &admit, &host, None).await.0,
        StatusCode::OK
    );
    let change = json!({"enable_transcription": true});
    let config = format!("{meetings}/config");
    let patched = call(&stack, Method::PATCH, &config, &host, Some(&change)).await;
    assert_eq!(patched.0, StatusCode::OK, "{patched:?}");
    // The same change again changes nothing, and records nothing.
    let again = call(&stack, Method::PATCH, &config, &host, Some(&change)).await;
    assert_eq!(again.0, StatusCode::OK);
    let leave = format!("{meetings}/leave");
    assert_eq!(
        call(&stack, Method::POST, &leave, &guest_token, None)
            .await
            .0,
        StatusCode::OK
    );
    let end = format!("{meetings}/end");
    assert_eq!(
        call(&stack, Method::POST, &end, &host, None).await.0,
        StatusCode::OK
    );

    let events = recorded_events(&stack.pool, Some(&code)).await;
    let [
        MeetingEvent::MeetingCreated {
            meeting_code,
            max_participants: 5,
            idempotency_key: false,
        },
        MeetingEvent::MeetingStarted {},
        MeetingEvent::ParticipantAdmitted {
            user_id: admitted_host,
            role: MeetingRole::Host,
        },
        MeetingEvent::ParticipantWaiting {
            user_id: waited_first,
        },
        MeetingEvent::ParticipantWaiting {
            user_id: waited_second,
        },
        MeetingEvent::ParticipantRejected { user_id: rejected },
        MeetingEvent::ParticipantAdmitted {
            user_id: admitted_guest,
            role: MeetingRole::Guest,
        },
        MeetingEvent::SettingsChanged { before, after },
        MeetingEvent::ParticipantLeft {
            user_id: left,
            reason,
        },
        MeetingEvent::MeetingEnded {
            reason: EndReason::EndedByHost,
            participants_present: 1,
        },
    ] = events.as_slice()
    else {
        panic!("the meeting's record: {events:#?}");
    };
    assert_eq!(meeting_code, &code);
    assert_eq!((*waited_first, *waited_second), (turned_away, guest));
    assert_eq!(
        (*admitted_host, *rejected, *admitted_guest, *left),
        (host_id, turned_away, guest, guest)
    );
    assert_eq!(reason.as_str(), LeaveReason::LEFT);
    assert_eq!(
        (
            &before["enable_transcription"],
            &after["enable_transcription"]
        ),
        (&json!(false), &json!(true))
    );
}

/// Everyone joins a new meeting at once, 40 times over: each meeting is recorded as started
/// exactly once, before any of its admissions, and every seat once.
#[sqlx::test(migrations = "../../migrations")]
async fn a_meeting_starts_once_whatever_joins_race_to_start_it(pool: PgPool) {
    const MEETINGS: usize = 40;
    const PEOPLE: usize = 6;
    let (stack, _prefix, people) = stack_with_mc(pool).await;
    let host = stack.user_token(HOST).await;
    let mut tokens = vec![host.clone()];
    for i in 1..PEOPLE {
        tokens.push(
            people
                .user(&stack, stack.org_id, &format!("Racer {i}"))
                .await
                .1,
        );
    }
    let mut wrong = Vec::new();
    for trial in 0..MEETINGS {
        let code = create(
            &stack,
            &host,
            &json!({"display_name": format!("Race {trial}"),
                    "settings": {"waiting_room_enabled": false}}),
        )
        .await;
        let joins = tokens.iter().map(|token| join(&stack, &code, token));
        for (status, body) in futures::future::join_all(joins).await {
            assert_eq!(
                (status, body["status"].as_str()),
                (StatusCode::OK, Some("admitted"))
            );
        }
        let actions: Vec<&str> = recorded_events(&stack.pool, Some(&code))
            .await
            .iter()
            .map(MeetingEvent::action)
            .collect();
        let mut expected = vec!["meeting_created", "meeting_started"];
        expected.extend(["participant_admitted"; PEOPLE]);
        if actions != expected {
            wrong.push((trial, actions));
        }
        let end = format!("/api/v1/meetings/{code}/end");
        assert_eq!(
            call(&stack, Method::POST, &end, &host, None).await.0,
            StatusCode::OK
        );
    }
    assert!(wrong.is_empty(), "{} of {MEETINGS}: {wrong:?}", wrong.len());
}
