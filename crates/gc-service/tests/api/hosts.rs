//! Who hosts a meeting (DESIGN §12), with a real AC, GC, meeting controller, PostgreSQL and
//! Redis: the hand-over, the succession when the host leaves, nobody hosting, the creator
//! taking the role back, the history of everyone who hosted, and races that must never leave
//! two hosts, comparing the API, PostgreSQL and the room after each trial.

use std::time::Duration;

use common::meeting_code::MeetingCode;
use gc_service::domain::events::{HostChangeReason, MeetingEvent};
use mc_service::room::{Role, RoomStore};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{HOST, MEMBER, TestStack, recorded_events};
use crate::meetings::{call, create, end, get, join, stack_with_mc};

async fn hand_over(stack: &TestStack, code: &str, token: &str, to: Uuid) -> (StatusCode, Value) {
    call(
        stack,
        Method::POST,
        &format!("/api/v1/meetings/{code}/host/{to}"),
        token,
        None,
    )
    .await
}

async fn leave(stack: &TestStack, code: &str, token: &str) -> StatusCode {
    call(
        stack,
        Method::POST,
        &format!("/api/v1/meetings/{code}/leave"),
        token,
        None,
    )
    .await
    .0
}

/// Who hosts, as each store says: PostgreSQL's `host_id`, the room's host, and the seats whose
/// role is `host`.
struct Hosts {
    db: Option<Uuid>,
    room: String,
    seated: Vec<String>,
}

async fn hosts(stack: &TestStack, store: &RoomStore, code: &str) -> Hosts {
    let db: Option<Uuid> =
        sqlx::query_scalar("select host_id from meetings where meeting_code = $1")
            .bind(code)
            .fetch_one(&stack.pool)
            .await
            .unwrap();
    let state = store
        .state(&MeetingCode::parse(code).unwrap())
        .await
        .unwrap();
    let seated = state
        .participants
        .iter()
        .filter(|p| p.role == Role::Host)
        .map(|p| p.user_id.clone())
        .collect();
    Hosts {
        db,
        room: state.host_id,
        seated,
    }
}

fn open_meeting() -> Value {
    json!({"display_name": "Handed over", "max_participants": 10,
           "settings": {"waiting_room_enabled": false}})
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_hand_over_makes_the_member_the_host_everywhere(pool: PgPool) {
    let (stack, prefix, _people) = stack_with_mc(pool).await;
    let store = crate::races::room_store(&prefix);
    let host = stack.user_token(HOST).await;
    let member = stack.user_token(MEMBER).await;
    let (host_id, member_id) = (stack.user_id(HOST).await, stack.user_id(MEMBER).await);
    let code = create(&stack, &host, &open_meeting()).await;
    join(&stack, &code, &host).await;
    join(&stack, &code, &member).await;

    let (status, meeting) = hand_over(&stack, &code, &host, member_id).await;

    assert_eq!(status, StatusCode::OK, "{meeting}");
    assert_eq!(meeting["host_id"], json!(member_id));
    assert!(meeting.get("lobby_count").is_none(), "{meeting}");
    let now = hosts(&stack, &store, &code).await;
    assert_eq!(now.db, Some(member_id));
    assert_eq!(now.room, member_id.to_string());
    assert_eq!(now.seated, vec![member_id.to_string()]);
    // The rights moved with the role.
    let (_, seen) = get(&stack, &code, &member).await;
    assert_eq!(seen["lobby_count"], 0, "{seen}");
    let (status, _) = call(
        &stack,
        Method::PATCH,
        &format!("/api/v1/meetings/{code}/config"),
        &host,
        Some(&json!({"lock_room": true})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, again) = hand_over(&stack, &code, &host, host_id).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{again}");
    // Recorded once, with who handed to whom.
    let events = recorded_events(&stack.pool, Some(&code)).await;
    let transfers: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, MeetingEvent::HostTransferred { .. }))
        .collect();
    assert_eq!(
        transfers,
        vec![&MeetingEvent::HostTransferred {
            from: Some(host_id),
            to: Some(member_id),
            reason: HostChangeReason::HandedOver,
        }]
    );
    // The new host hands it back, and ends it: both see it in their history.
    let (status, _) = hand_over(&stack, &code, &member, host_id).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = end(&stack, &code, &host).await;
    assert_eq!(status, StatusCode::OK);
    for token in [&host, &member] {
        let (status, history) =
            call(&stack, Method::GET, "/api/v1/meetings/history", token, None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            history["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["meeting_code"] == code.as_str()),
            "{history}"
        );
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn only_a_seated_member_of_the_org_can_be_made_the_host(pool: PgPool) {
    let (stack, _prefix, people) = stack_with_mc(pool).await;
    let host = stack.user_token(HOST).await;
    let member_id = stack.user_id(MEMBER).await;
    let mut body = open_meeting();
    body["settings"]["allow_external_participants"] = json!(true);
    let code = create(&stack, &host, &body).await;
    join(&stack, &code, &host).await;
    let other_org = people.org(&stack).await;
    let (outsider, outsider_token) = people.user(&stack, other_org, "Outsider").await;
    assert_eq!(join(&stack, &code, &outsider_token).await.0, StatusCode::OK);

    for (to, why) in [
        (outsider, "a user of another org"),
        (member_id, "a member who is not seated"),
        (Uuid::new_v4(), "nobody"),
    ] {
        let (status, refused) = hand_over(&stack, &code, &host, to).await;
        assert_eq!(status, StatusCode::CONFLICT, "{why}: {refused}");
        assert_eq!(refused["error"]["code"], "CONFLICT");
    }
    let (status, _) = call(
        &stack,
        Method::POST,
        &format!("/api/v1/meetings/{code}/host/not-a-uuid"),
        &host,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Odd ids in the path name nobody.
    for odd in [
        "%00",
        "..%2F..%2Fend",
        "' or 1=1 --",
        &"a".repeat(300),
        "%F0%9F%A6%80",
    ] {
        let (status, _) = call(
            &stack,
            Method::POST,
            &format!("/api/v1/meetings/{code}/host/{odd}"),
            &host,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{odd}");
    }
    // Only the host may hand over; someone who may not see the meeting learns nothing of it,
    // and no token is no caller.
    let (status, _) = hand_over(&stack, &code, &outsider_token, outsider).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let private = create(&stack, &host, &open_meeting()).await;
    join(&stack, &private, &host).await;
    let (status, _) = hand_over(&stack, &private, &outsider_token, outsider).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let anonymous = stack
        .client
        .post(stack.gc_url(&format!("/api/v1/meetings/{code}/host/{outsider}")))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let (_, seen) = get(&stack, &code, &host).await;
    assert_eq!(seen["host_id"], json!(stack.user_id(HOST).await));
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_hosts_leave_passes_the_role_on_or_to_nobody_until_the_creator_returns(pool: PgPool) {
    let (stack, prefix, people) = stack_with_mc(pool).await;
    let store = crate::races::room_store(&prefix);
    let host = stack.user_token(HOST).await;
    let member = stack.user_token(MEMBER).await;
    let (host_id, member_id) = (stack.user_id(HOST).await, stack.user_id(MEMBER).await);
    let mut body = open_meeting();
    body["settings"]["allow_external_participants"] = json!(true);
    let code = create(&stack, &host, &body).await;
    let other_org = people.org(&stack).await;
    let (_, outsider) = people.user(&stack, other_org, "Outsider").await;
    join(&stack, &code, &host).await;
    join(&stack, &code, &outsider).await;
    join(&stack, &code, &member).await;

    // The host leaves: the member (the only one of the org) hosts.
    assert_eq!(leave(&stack, &code, &host).await, StatusCode::OK);
    let now = hosts(&stack, &store, &code).await;
    assert_eq!(
        (now.db, now.room.as_str(), now.seated),
        (
            Some(member_id),
            member_id.to_string().as_str(),
            vec![member_id.to_string()]
        )
    );
    // The member leaves too: only the outsider is left, and nobody hosts.
    assert_eq!(leave(&stack, &code, &member).await, StatusCode::OK);
    let now = hosts(&stack, &store, &code).await;
    assert_eq!((now.db, now.room.as_str()), (None, ""));
    assert!(now.seated.is_empty());
    let (_, seen) = get(&stack, &code, &outsider).await;
    assert_eq!(seen["host_id"], Value::Null, "{seen}");
    // The member who hosted last has no rights any more; the creator takes the role back by
    // joining.
    let (status, _) = call(
        &stack,
        Method::PATCH,
        &format!("/api/v1/meetings/{code}/config"),
        &member,
        Some(&json!({"lock_room": true})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, joined) = join(&stack, &code, &host).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(joined["role"], "host", "{joined}");
    let now = hosts(&stack, &store, &code).await;
    assert_eq!(now.db, Some(host_id));
    assert_eq!(now.seated, vec![host_id.to_string()]);

    let reasons: Vec<(Option<Uuid>, HostChangeReason)> = recorded_events(&stack.pool, Some(&code))
        .await
        .into_iter()
        .filter_map(|e| match e {
            MeetingEvent::HostTransferred { to, reason, .. } => Some((to, reason)),
            _ => None,
        })
        .collect();
    assert_eq!(
        reasons,
        vec![
            (Some(member_id), HostChangeReason::Succession),
            (None, HostChangeReason::Succession),
            (Some(host_id), HostChangeReason::Reclaimed),
        ]
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_controllers_report_of_the_hosts_lost_seat_records_the_succession(pool: PgPool) {
    use common::proto::internal::v1::{HostChange, ParticipantLeftRequest, ParticipantRole};

    let (stack, prefix, _people) = stack_with_mc(pool).await;
    let host = stack.user_token(HOST).await;
    let member = stack.user_token(MEMBER).await;
    let (host_id, member_id) = (stack.user_id(HOST).await, stack.user_id(MEMBER).await);
    let code = create(&stack, &host, &open_meeting()).await;
    join(&stack, &code, &host).await;
    join(&stack, &code, &member).await;
    // What the controller does when the host's reconnect grace runs out.
    let store = crate::races::room_store(&prefix);
    let parsed = MeetingCode::parse(&code).unwrap();
    let owned = mc_service::room::OwnedRoom::new(
        parsed.clone(),
        store.state(&parsed).await.unwrap().fencing_token,
    );
    let left = store
        .leave_if_connection(&owned, &host_id.to_string(), "connection_lost", "")
        .await
        .unwrap();
    let mc_service::room::LeaveOutcome::Left {
        host_change: Some(change),
        seat: Some(seat),
        last_seat,
        ..
    } = left
    else {
        panic!("{left:?}");
    };
    let mut gc = crate::controllers::client(&stack, crate::helpers::MC_CLIENTS[0]);
    let report = ParticipantLeftRequest {
        controller_id: crate::helpers::MC_CLIENTS[0].0.into(),
        meeting_code: code.clone(),
        user_id: host_id.to_string(),
        reason: "connection_lost".into(),
        left_at: None,
        joined_at: None,
        role: ParticipantRole::Host as i32,
        seat: seat.seat,
        last_seat,
        host_change: Some(HostChange {
            host_id: change.host.clone().unwrap(),
            host_seq: change.seq,
        }),
    };
    gc.participant_left(report.clone()).await.unwrap();
    // A repeated report records nothing twice.
    gc.participant_left(report).await.unwrap();

    let now = hosts(&stack, &store, &code).await;
    assert_eq!(now.db, Some(member_id));
    let transfers = recorded_events(&stack.pool, Some(&code))
        .await
        .into_iter()
        .filter(|e| matches!(e, MeetingEvent::HostTransferred { .. }))
        .count();
    assert_eq!(transfers, 1);
}

/// The races' meeting: the host seated, then members A and B (A seated longest after the
/// host).
struct Race {
    stack: TestStack,
    store: RoomStore,
    code: String,
    host: String,
    host_id: Uuid,
    a: (Uuid, String),
    b: (Uuid, String),
}

async fn race(pool: PgPool) -> Race {
    let (stack, prefix, people) = stack_with_mc(pool).await;
    let store = crate::races::room_store(&prefix);
    let host = stack.user_token(HOST).await;
    let host_id = stack.user_id(HOST).await;
    let code = create(&stack, &host, &open_meeting()).await;
    join(&stack, &code, &host).await;
    let a = people.user(&stack, stack.org_id, "A").await;
    let b = people.user(&stack, stack.org_id, "B").await;
    join(&stack, &code, &a.1).await;
    join(&stack, &code, &b.1).await;
    Race {
        stack,
        store,
        code,
        host,
        host_id,
        a,
        b,
    }
}

/// Two hand-overs by the host at once, to two members, 100 times: one answers 200, the other
/// 403, and afterwards the API, PostgreSQL, the room and the seats name the same one host.
#[sqlx::test(migrations = "../../migrations")]
async fn two_hand_overs_at_once_leave_one_host_everywhere(pool: PgPool) {
    const TRIALS: usize = 100;
    let Race {
        stack,
        store,
        code,
        host,
        host_id,
        a: (a, a_token),
        b: (b, b_token),
    } = race(pool).await;
    let mut wrong = Vec::new();

    for trial in 0..TRIALS {
        let delay = Duration::from_millis((trial % 5) as u64);
        let (first, second) = if trial % 2 == 0 { (a, b) } else { (b, a) };
        let one = hand_over(&stack, &code, &host, first);
        let other = async {
            tokio::time::sleep(delay).await;
            hand_over(&stack, &code, &host, second).await
        };
        let ((s1, _), (s2, _)) = tokio::join!(one, other);
        let mut statuses = [s1, s2];
        statuses.sort();
        let now = hosts(&stack, &store, &code).await;
        let (_, seen) = get(&stack, &code, &host).await;
        let winner = now.db;
        let agree = winner.is_some_and(|w| {
            (w == a || w == b)
                && now.room == w.to_string()
                && now.seated == vec![w.to_string()]
                && seen["host_id"] == json!(w)
        });
        if statuses != [StatusCode::OK, StatusCode::FORBIDDEN] || !agree {
            wrong.push((trial, statuses, winner, now.room, now.seated));
        }
        // The winner hands it back for the next trial.
        let winner_token = if winner == Some(a) {
            &a_token
        } else {
            &b_token
        };
        let (status, _) = hand_over(&stack, &code, winner_token, host_id).await;
        assert_eq!(status, StatusCode::OK, "trial {trial}");
    }
    assert!(
        wrong.is_empty(),
        "{} of {TRIALS} trials went wrong (trial, statuses, PostgreSQL's host, the room's, the \
         seated hosts): {wrong:?}",
        wrong.len()
    );
}

/// A hand-over to B racing the host's leave, 100 times, either one first by 0-4 ms: afterwards
/// one member hosts, B (the hand-over won) or A (the member seated longest, after the leave),
/// and the API, PostgreSQL, the room and the seats agree.
#[sqlx::test(migrations = "../../migrations")]
async fn a_hand_over_racing_the_hosts_leave_leaves_one_host_everywhere(pool: PgPool) {
    const TRIALS: usize = 100;
    let Race {
        stack,
        store,
        code,
        host,
        host_id,
        a: (a, a_token),
        b: (b, b_token),
    } = race(pool).await;
    let mut wrong = Vec::new();
    let mut orders = [0usize; 2];

    for trial in 0..TRIALS {
        let delay = Duration::from_millis((trial % 5) as u64);
        let (hand_delay, leave_delay) = if trial % 2 == 0 {
            (Duration::ZERO, delay)
        } else {
            (delay, Duration::ZERO)
        };
        let handing = async {
            tokio::time::sleep(hand_delay).await;
            hand_over(&stack, &code, &host, b).await
        };
        let leaving = async {
            tokio::time::sleep(leave_delay).await;
            leave(&stack, &code, &host).await
        };
        let ((handed, _), left) = tokio::join!(handing, leaving);
        assert_eq!(left, StatusCode::OK, "trial {trial}");
        let expected = match handed {
            StatusCode::OK => {
                orders[0] += 1;
                b
            }
            StatusCode::FORBIDDEN => {
                orders[1] += 1;
                a
            }
            other => panic!("trial {trial}: the hand-over answered {other}"),
        };
        let now = hosts(&stack, &store, &code).await;
        let (_, seen) = get(&stack, &code, &a_token).await;
        if now.db != Some(expected)
            || now.room != expected.to_string()
            || now.seated != vec![expected.to_string()]
            || seen["host_id"] != json!(expected)
        {
            wrong.push((trial, handed, now.db, now.room, now.seated));
        }
        // The creator comes back and is handed the meeting again.
        join(&stack, &code, &host).await;
        let token = if now.db == Some(a) {
            &a_token
        } else {
            &b_token
        };
        let (status, _) = hand_over(&stack, &code, token, host_id).await;
        assert_eq!(status, StatusCode::OK, "trial {trial}");
        // A, the member seated longest, must stay so: B leaves and comes back.
        leave(&stack, &code, &b_token).await;
        join(&stack, &code, &b_token).await;
    }
    assert!(
        wrong.is_empty(),
        "{} of {TRIALS} trials went wrong (trial, hand-over status, PostgreSQL's host, the \
         room's, the seated hosts): {wrong:?}",
        wrong.len()
    );
    // Both orders happened.
    assert!(orders[0] > 0 && orders[1] > 0, "{orders:?}");
}

/// A change the room made that PostgreSQL never recorded (GC's write failed after the room's
/// change): the next hand-over the room refuses, or the next join, records it.
#[sqlx::test(migrations = "../../migrations")]
async fn a_change_postgres_missed_is_recorded_by_the_next_hand_over_or_join(pool: PgPool) {
    let (stack, prefix, people) = stack_with_mc(pool).await;
    let store = crate::races::room_store(&prefix);
    let host = stack.user_token(HOST).await;
    let member = stack.user_token(MEMBER).await;
    let (host_id, member_id) = (stack.user_id(HOST).await, stack.user_id(MEMBER).await);
    let code = create(&stack, &host, &open_meeting()).await;
    join(&stack, &code, &host).await;
    join(&stack, &code, &member).await;
    let parsed = MeetingCode::parse(&code).unwrap();
    let owned = mc_service::room::OwnedRoom::new(
        parsed.clone(),
        store.state(&parsed).await.unwrap().fencing_token,
    );
    // The room hands over, GC never hears of it.
    store
        .transfer_host(&owned, &host_id.to_string(), &member_id.to_string())
        .await
        .unwrap();
    assert_eq!(hosts(&stack, &store, &code).await.db, Some(host_id));

    // PostgreSQL still says the host hosts; the room refuses their hand-over and names the
    // member, which is recorded.
    let (status, _) = hand_over(&stack, &code, &host, member_id).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(hosts(&stack, &store, &code).await.db, Some(member_id));

    // Again, found by the next join.
    store
        .transfer_host(&owned, &member_id.to_string(), &host_id.to_string())
        .await
        .unwrap();
    let (_, late) = people.user(&stack, stack.org_id, "Late").await;
    assert_eq!(join(&stack, &code, &late).await.0, StatusCode::OK);
    assert_eq!(hosts(&stack, &store, &code).await.db, Some(host_id));

    let recovered = recorded_events(&stack.pool, Some(&code))
        .await
        .into_iter()
        .filter(|e| {
            matches!(
                e,
                MeetingEvent::HostTransferred {
                    reason: HostChangeReason::Recovered,
                    ..
                }
            )
        })
        .count();
    assert_eq!(recovered, 2);
}
