//! The meeting lifecycle end to end, with a real AC, GC, meeting controllers and Redis:
//! create, join, the lobby, leave, end, config and history.

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{HOST, MEMBER, TestStack, meeting_body};
use crate::meetings::{
    assert_every_key_expires, call, create, end, get, join, redis_keys, stack_with_mc,
};

/// The actions of the meeting's audit rows, in order; each row read back as the event it
/// records.
async fn audit_actions(stack: &TestStack, meeting: &str) -> Vec<String> {
    crate::helpers::recorded_events(&stack.pool, Some(meeting))
        .await
        .iter()
        .map(|event| event.action().to_owned())
        .collect()
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_meeting_goes_from_create_through_the_lobby_to_the_history(pool: PgPool) {
    let (stack, prefix, _people) = stack_with_mc(pool).await;
    let host = stack.user_token(HOST).await;
    let member = stack.user_token(MEMBER).await;
    let member_id = stack.user_id(MEMBER).await;
    let code = create(&stack, &host, &meeting_body("Lifecycle")).await;

    // The host joins: admitted, and the meeting starts.
    let (status, joined) = join(&stack, &code, &host).await;
    assert_eq!(status, StatusCode::OK, "{joined}");
    assert_eq!(joined["status"], "admitted");
    assert_eq!(joined["role"], "host");
    assert!(joined["meeting_token"].as_str().unwrap().len() > 20);
    assert!(joined["expires_in"].as_u64().unwrap() <= 900);
    let signaling = joined["signaling_url"].as_str().unwrap();
    assert!(
        signaling.starts_with("ws://127.0.0.1:")
            && signaling.ends_with(&format!("/ws/v1/meetings/{code}"))
    );
    assert_eq!(joined["meeting"]["status"], "active");
    assert!(joined["meeting"]["started_at"].is_string());
    assert_eq!(joined["meeting"]["participant_count"], 1);

    // A member waits in the lobby; only the host sees the lobby count.
    let (status, joined) = join(&stack, &code, &member).await;
    assert_eq!(status, StatusCode::OK, "{joined}");
    assert_eq!(
        (joined["status"].as_str(), joined["role"].as_str()),
        (Some("waiting"), Some("guest"))
    );
    assert!(joined["meeting"].get("lobby_count").is_none());
    let (_, seen_by_host) = call(
        &stack,
        Method::GET,
        &format!("/api/v1/meetings/{code}"),
        &host,
        None,
    )
    .await;
    assert_eq!(
        (
            seen_by_host["participant_count"].as_u64(),
            seen_by_host["lobby_count"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let (_, seen_by_member) = call(
        &stack,
        Method::GET,
        &format!("/api/v1/meetings/{code}"),
        &member,
        None,
    )
    .await;
    assert!(seen_by_member.get("lobby_count").is_none());

    // The host admits them; joining again changes nothing.
    let (status, admitted) = call(
        &stack,
        Method::POST,
        &format!("/api/v1/meetings/{code}/admit/{member_id}"),
        &host,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{admitted}");
    assert_eq!(
        admitted,
        json!({"user_id": member_id, "status": "admitted"})
    );
    let (status, again) = join(&stack, &code, &member).await;
    assert_eq!(
        (status, again["status"].as_str()),
        (StatusCode::OK, Some("admitted"))
    );
    assert_eq!(again["meeting"]["participant_count"], 2);
    let open: i64 = sqlx::query_scalar("select count(*) from participants where left_at is null")
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    assert_eq!(open, 2, "one visit each, however often they join");

    // The member leaves; their visit closes.
    let (status, _) = call(
        &stack,
        Method::POST,
        &format!("/api/v1/meetings/{code}/leave"),
        &member,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (left_at, reason): (Option<chrono::DateTime<chrono::Utc>>, Option<String>) =
        sqlx::query_as("select left_at, leave_reason from participants where user_id = $1")
            .bind(member_id)
            .fetch_one(&stack.pool)
            .await
            .unwrap();
    assert!(left_at.is_some());
    assert_eq!(reason.as_deref(), Some("left"));

    // The host ends it: ended for everyone, twice is the same, and nobody can join.
    let (status, ended) = end(&stack, &code, &host).await;
    assert_eq!(status, StatusCode::OK, "{ended}");
    assert_eq!(ended["status"], "ended");
    assert!(ended["ended_at"].is_string());
    let (status, again) = end(&stack, &code, &host).await;
    assert_eq!(
        (status, &again["ended_at"]),
        (StatusCode::OK, &ended["ended_at"])
    );
    let (status, refused) = join(&stack, &code, &member).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(refused["error"]["code"], "NOT_FOUND");
    let open: i64 = sqlx::query_scalar("select count(*) from participants where left_at is null")
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    assert_eq!(open, 0, "the end closes every visit");
    assert!(
        redis_keys(&prefix).await.is_empty(),
        "an ended meeting leaves no key"
    );

    // History: the host's by default, the member's with role=guest.
    let (_, hosted) = call(&stack, Method::GET, "/api/v1/meetings/history", &host, None).await;
    assert_eq!(hosted["total"], 1);
    assert_eq!(hosted["items"][0]["meeting_code"], code);
    let (_, attended) = call(
        &stack,
        Method::GET,
        "/api/v1/meetings/history?role=guest",
        &member,
        None,
    )
    .await;
    assert_eq!(attended["total"], 1);
    assert!(attended["items"][0].get("lobby_count").is_none());
    let (_, none) = call(
        &stack,
        Method::GET,
        "/api/v1/meetings/history",
        &member,
        None,
    )
    .await;
    assert_eq!(none["total"], 0);

    assert_eq!(
        audit_actions(&stack, &code).await,
        [
            "meeting_created",
            "meeting_started",
            "participant_admitted",
            "participant_waiting",
            "participant_admitted",
            "participant_left",
            "meeting_ended"
        ]
    );
    assert_eq!(
        stack.check_slots().await.0,
        0,
        "the end gives the org's place back"
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn only_the_host_may_admit_reject_admit_all_end_or_configure(pool: PgPool) {
    let (stack, _prefix, _people) = stack_with_mc(pool).await;
    let host = stack.user_token(HOST).await;
    let member = stack.user_token(MEMBER).await;
    let code = create(&stack, &host, &meeting_body("Guarded")).await;
    join(&stack, &code, &host).await;
    let someone = Uuid::new_v4();
    for (method, path, body) in [
        (
            Method::POST,
            format!("/api/v1/meetings/{code}/admit/{someone}"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/meetings/{code}/reject/{someone}"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/meetings/{code}/admit-all"),
            None,
        ),
        (Method::POST, format!("/api/v1/meetings/{code}/end"), None),
        (
            Method::PATCH,
            format!("/api/v1/meetings/{code}/config"),
            Some(json!({"lock_room": false})),
        ),
    ] {
        let (status, body) = call(&stack, method, &path, &member, body.as_ref()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        assert_eq!(body["error"]["code"], "FORBIDDEN");
    }
    let (_, meeting) = call(
        &stack,
        Method::GET,
        &format!("/api/v1/meetings/{code}"),
        &host,
        None,
    )
    .await;
    assert_eq!(meeting["status"], "active");
    assert_eq!(meeting["settings"]["waiting_room_enabled"], true);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_rejected_user_leaves_the_lobby_and_admitting_them_is_then_404(pool: PgPool) {
    let (stack, _prefix, _people) = stack_with_mc(pool).await;
    let host = stack.user_token(HOST).await;
    let member = stack.user_token(MEMBER).await;
    let member_id = stack.user_id(MEMBER).await;
    let code = create(&stack, &host, &meeting_body("Rejecting")).await;
    join(&stack, &code, &host).await;
    join(&stack, &code, &member).await;

    let (status, body) = call(
        &stack,
        Method::POST,
        &format!("/api/v1/meetings/{code}/reject/{member_id}"),
        &host,
        None,
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"user_id": member_id, "status": "rejected"})
        )
    );

    let (status, body) = call(
        &stack,
        Method::POST,
        &format!("/api/v1/meetings/{code}/admit/{member_id}"),
        &host,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = call(
        &stack,
        Method::POST,
        &format!("/api/v1/meetings/{code}/reject/{member_id}"),
        &host,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        &stack,
        Method::POST,
        &format!("/api/v1/meetings/{code}/admit/not-a-uuid"),
        &host,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, meeting) = call(
        &stack,
        Method::GET,
        &format!("/api/v1/meetings/{code}"),
        &host,
        None,
    )
    .await;
    assert_eq!(meeting["lobby_count"], 0);
    assert!(
        audit_actions(&stack, &code)
            .await
            .contains(&"participant_rejected".to_owned())
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn admit_all_seats_the_longest_waiting_while_seats_remain(pool: PgPool) {
    let (stack, _prefix, people) = stack_with_mc(pool).await;
    let host = stack.user_token(HOST).await;
    let code = create(
        &stack,
        &host,
        &json!({"display_name": "Small", "max_participants": 3}),
    )
    .await;
    join(&stack, &code, &host).await;
    let mut waiting = Vec::new();
    for i in 0..4 {
        let (id, token) = people
            .user(&stack, stack.org_id, &format!("Guest {i}"))
            .await;
        let (_, joined) = join(&stack, &code, &token).await;
        assert_eq!(joined["status"], "waiting");
        waiting.push(id);
    }

    let (status, body) = call(
        &stack,
        Method::POST,
        &format!("/api/v1/meetings/{code}/admit-all"),
        &host,
        None,
    )
    .await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["admitted"], json!([waiting[0], waiting[1]]));
    assert_eq!(body["still_waiting"], json!([waiting[2], waiting[3]]));
    let (status, full) = call(
        &stack,
        Method::POST,
        &format!("/api/v1/meetings/{}/admit/{}", code, waiting[2]),
        &host,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(full["error"]["code"], "MEETING_FULL");
}

#[sqlx::test(migrations = "../../migrations")]
async fn with_the_waiting_room_off_joins_are_seated_at_once_until_full(pool: PgPool) {
    let (stack, _prefix, people) = stack_with_mc(pool).await;
    let host = stack.user_token(HOST).await;
    let code = create(
        &stack,
        &host,
        &json!({"display_name": "Open", "max_participants": 2,
        "settings": {"waiting_room_enabled": false}}),
    )
    .await;
    let (_, first) = join(
        &stack,
        &code,
        &people.user(&stack, stack.org_id, "First").await.1,
    )
    .await;
    assert_eq!(first["status"], "admitted");
    assert_eq!(
        first["meeting"]["status"], "active",
        "the first admission starts the meeting"
    );
    let (_, second) = join(&stack, &code, &host).await;
    assert_eq!(second["status"], "admitted");
    let (status, third) = join(
        &stack,
        &code,
        &people.user(&stack, stack.org_id, "Third").await.1,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{third}");
    assert_eq!(third["error"]["code"], "MEETING_FULL");
}

/// Calls MC answered for GetRoomState (in-process controllers record into GC's registry).
async fn room_state_calls(stack: &TestStack) -> f64 {
    stack
        .metric(
            "mc_grpc_requests_total",
            &[(
                "method",
                "convene.internal.v1.MeetingControllerService/GetRoomState",
            )],
        )
        .await
}

/// The meeting's `started_at` as PostgreSQL holds it.
async fn stored_start(stack: &TestStack, code: &str) -> Option<DateTime<Utc>> {
    sqlx::query_scalar("select started_at from meetings where meeting_code = $1")
        .bind(code)
        .fetch_one(&stack.pool)
        .await
        .unwrap()
}

/// A meeting object's `started_at`.
fn started_at(meeting: &Value) -> Option<DateTime<Utc>> {
    meeting["started_at"]
        .as_str()
        .map(|at| DateTime::parse_from_rfc3339(at).unwrap().to_utc())
}

/// The host's join shows the lobby as the room's join script counted it, with no second call
/// to the room: it used to ask GetRoomState after every host's join.
#[sqlx::test(migrations = "../../migrations")]
async fn a_hosts_join_counts_the_lobby_without_asking_the_room_again(pool: PgPool) {
    let (stack, _prefix, people) = stack_with_mc(pool).await;
    let host = stack.user_token(HOST).await;
    let code = create(
        &stack,
        &host,
        &json!({"display_name": "Waiting", "settings": {"waiting_room_enabled": true}}),
    )
    .await;
    for name in ["Early", "Earlier"] {
        let (_, waiting) = join(
            &stack,
            &code,
            &people.user(&stack, stack.org_id, name).await.1,
        )
        .await;
        assert_eq!(waiting["status"], "waiting", "{waiting}");
    }
    let asked_before = room_state_calls(&stack).await;

    let (status, first) = join(&stack, &code, &host).await;
    let (_, again) = join(&stack, &code, &host).await;

    assert_eq!(status, StatusCode::OK, "{first}");
    for joined in [&first, &again] {
        assert_eq!(joined["status"], "admitted");
        assert_eq!(
            (
                joined["meeting"]["participant_count"].as_u64(),
                joined["meeting"]["lobby_count"].as_u64()
            ),
            (Some(1), Some(2)),
            "{joined}"
        );
    }
    assert_eq!(
        room_state_calls(&stack).await,
        asked_before,
        "no GetRoomState for a host's join"
    );
    let (_, seen) = get(&stack, &code, &host).await;
    assert_eq!(seen["lobby_count"], 2, "as GetRoomState counts it");
}

/// The join that starts a meeting answers it `active` since the time PostgreSQL stored, taken
/// from its admission (the meeting is not read again); a join left waiting in a meeting not
/// yet started shows it `scheduled`.
#[sqlx::test(migrations = "../../migrations")]
async fn the_join_that_starts_a_meeting_answers_it_active_since_the_stored_time(pool: PgPool) {
    let (stack, _prefix, people) = stack_with_mc(pool).await;
    let host = stack.user_token(HOST).await;
    let code = create(
        &stack,
        &host,
        &json!({"display_name": "Starting", "settings": {"waiting_room_enabled": true}}),
    )
    .await;
    let guest = people.user(&stack, stack.org_id, "Guest").await.1;

    let (_, waiting) = join(&stack, &code, &guest).await;
    let (status, first) = join(&stack, &code, &host).await;
    let (_, later) = join(&stack, &code, &host).await;

    assert_eq!(waiting["status"], "waiting", "{waiting}");
    assert_eq!(waiting["meeting"]["status"], "scheduled");
    assert!(waiting["meeting"]["started_at"].is_null());
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["status"], "admitted");
    assert_eq!(first["meeting"]["status"], "active");
    let stored = stored_start(&stack, &code).await;
    assert!(stored.is_some());
    assert_eq!(started_at(&first["meeting"]), stored);
    assert_eq!(
        started_at(&later["meeting"]),
        stored,
        "a later join keeps the start"
    );
    let (_, seen) = get(&stack, &code, &host).await;
    assert_eq!(started_at(&seen), stored);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_user_of_another_org_gets_404_unless_external_participants_are_allowed(pool: PgPool) {
    let (stack, _prefix, people) = stack_with_mc(pool).await;
    let host = stack.user_token(HOST).await;
    let other_org = people.org(&stack).await;
    let (_, outsider) = people.user(&stack, other_org, "Outsider").await;
    let code = create(&stack, &host, &meeting_body("Internal")).await;

    for path in [
        format!("/api/v1/meetings/{code}"),
        format!("/api/v1/meetings/{code}/join"),
    ] {
        let method = if path.ends_with("join") {
            Method::POST
        } else {
            Method::GET
        };
        let (status, body) = call(&stack, method, &path, &outsider, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["error"]["code"], "NOT_FOUND");
    }
    // Unknown and malformed codes read the same.
    let (status, unknown) = call(
        &stack,
        Method::GET,
        "/api/v1/meetings/AAAAAAAAAAAA",
        &outsider,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, hidden) = call(
        &stack,
        Method::GET,
        &format!("/api/v1/meetings/{code}"),
        &outsider,
        None,
    )
    .await;
    assert_eq!(unknown, hidden);

    let (status, _) = call(
        &stack,
        Method::PATCH,
        &format!("/api/v1/meetings/{code}/config"),
        &host,
        Some(&json!({"allow_external_participants": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, joined) = join(&stack, &code, &outsider).await;
    assert_eq!(status, StatusCode::OK, "{joined}");
    assert_eq!(joined["status"], "waiting");
}

#[sqlx::test(migrations = "../../migrations")]
async fn turning_the_waiting_room_off_with_lock_room_admits_the_lobby_up_to_capacity(pool: PgPool) {
    let (stack, _prefix, people) = stack_with_mc(pool).await;
    let host = stack.user_token(HOST).await;
    let code = create(
        &stack,
        &host,
        &json!({"display_name": "Config", "max_participants": 3}),
    )
    .await;
    join(&stack, &code, &host).await;
    for i in 0..3 {
        join(
            &stack,
            &code,
            &people.user(&stack, stack.org_id, &format!("W{i}")).await.1,
        )
        .await;
    }

    let (status, meeting) = call(
        &stack,
        Method::PATCH,
        &format!("/api/v1/meetings/{code}/config"),
        &host,
        Some(&json!({"lock_room": false, "enable_transcription": true})),
    )
    .await;

    assert_eq!(status, StatusCode::OK, "{meeting}");
    assert_eq!(meeting["settings"]["waiting_room_enabled"], false);
    assert_eq!(meeting["settings"]["enable_transcription"], true);
    assert_eq!(
        (
            meeting["participant_count"].as_u64(),
            meeting["lobby_count"].as_u64()
        ),
        (Some(3), Some(1))
    );
    let actions = audit_actions(&stack, &code).await;
    assert!(actions.contains(&"settings_changed".to_owned()));
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "participant_admitted")
            .count(),
        3
    );

    // Bad changes are refused and change nothing.
    for body in [
        json!({"max_participants": 1}),
        json!({"max_participants": 101}),
        json!({"mute_all": true}),
        json!({"lock_room": true, "waiting_room_enabled": false}),
    ] {
        let (status, _) = call(
            &stack,
            Method::PATCH,
            &format!("/api/v1/meetings/{code}/config"),
            &host,
            Some(&body),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    let (status, ended) = end(&stack, &code, &host).await;
    assert_eq!(status, StatusCode::OK, "{ended}");
    let (status, _) = call(
        &stack,
        Method::PATCH,
        &format!("/api/v1/meetings/{code}/config"),
        &host,
        Some(&json!({"lock_room": true})),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "an ended meeting cannot be configured"
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn history_pages_newest_first_with_a_total(pool: PgPool) {
    let (stack, _prefix, _people) = stack_with_mc(pool).await;
    let host = stack.user_token(HOST).await;
    stack.set_org_limits(100, 100).await;
    let mut codes = Vec::new();
    for i in 0..5 {
        let code = create(&stack, &host, &meeting_body(&format!("Past {i}"))).await;
        let (status, _) = end(&stack, &code, &host).await;
        assert_eq!(status, StatusCode::OK);
        codes.push(code);
    }
    // Ended one after another; make the order unambiguous.
    for (i, code) in codes.iter().enumerate() {
        sqlx::query("update meetings set ended_at = now() - make_interval(mins => $2) where meeting_code = $1")
            .bind(code).bind(10 - i as i32).execute(&stack.pool).await.unwrap();
    }

    let (_, page1) = call(
        &stack,
        Method::GET,
        "/api/v1/meetings/history?page=1&page_size=2",
        &host,
        None,
    )
    .await;
    let (_, page3) = call(
        &stack,
        Method::GET,
        "/api/v1/meetings/history?page=3&page_size=2",
        &host,
        None,
    )
    .await;
    let (_, beyond) = call(
        &stack,
        Method::GET,
        "/api/v1/meetings/history?page=9&page_size=2",
        &host,
        None,
    )
    .await;

    assert_eq!(
        (
            page1["total"].as_i64(),
            page1["page"].as_u64(),
            page1["page_size"].as_u64()
        ),
        (Some(5), Some(1), Some(2))
    );
    let listed: Vec<&str> = page1["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["meeting_code"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [codes[4].as_str(), codes[3].as_str()]);
    assert_eq!(page3["items"].as_array().unwrap().len(), 1);
    assert_eq!(page3["items"][0]["meeting_code"], codes[0]);
    assert_eq!(
        (
            beyond["items"].as_array().unwrap().len(),
            beyond["total"].as_i64()
        ),
        (0, Some(5))
    );
    for query in [
        "page=0",
        "page_size=0",
        "page_size=101",
        "role=owner",
        "page=-1",
        "page=x",
        "sort=asc",
    ] {
        let (status, body) = call(
            &stack,
            Method::GET,
            &format!("/api/v1/meetings/history?{query}"),
            &host,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["error"]["code"], "BAD_REQUEST");
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn every_live_key_has_a_ttl_and_join_fails_cleanly_without_a_controller(pool: PgPool) {
    let (mut stack, prefix, _people) = stack_with_mc(pool).await;
    let host = stack.user_token(HOST).await;
    let member = stack.user_token(MEMBER).await;
    let code = create(&stack, &host, &meeting_body("Keys")).await;
    join(&stack, &code, &host).await;
    join(&stack, &code, &member).await;
    assert!(!redis_keys(&prefix).await.is_empty());
    assert_every_key_expires(&prefix).await;

    // With the only controller gone for good, a new meeting cannot be placed: 503, cleanly.
    stack.mcs[0].take().unwrap().kill();
    sqlx::query("update meeting_controllers set last_heartbeat_at = now() - interval '1 hour'")
        .execute(&stack.pool)
        .await
        .unwrap();
    let other = create(&stack, &host, &meeting_body("Nowhere")).await;
    let (status, body) = join(&stack, &other, &host).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(error_code_of(&body), "SERVICE_UNAVAILABLE");
}

fn error_code_of(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

#[sqlx::test(migrations = "../../migrations")]
async fn config_answers_who_may_change_the_meeting_before_what_is_wrong_with_the_body(
    pool: PgPool,
) {
    let (stack, _prefix, _people) = stack_with_mc(pool).await;
    let host = stack.user_token(HOST).await;
    let member = stack.user_token(MEMBER).await;
    let code = create(&stack, &host, &meeting_body("Order")).await;
    let bad = json!({"no_such_setting": true});

    let (status, _) = call(
        &stack,
        Method::PATCH,
        &format!("/api/v1/meetings/{code}/config"),
        &member,
        Some(&bad),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a non-host learns nothing about the body"
    );
    let (status, _) = call(
        &stack,
        Method::PATCH,
        "/api/v1/meetings/AAAAAAAAAAAA/config",
        &host,
        Some(&bad),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        &stack,
        Method::PATCH,
        &format!("/api/v1/meetings/{code}/config"),
        &host,
        Some(&bad),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the host learns what is wrong"
    );

    // A change that changes nothing writes nothing.
    let (status, meeting) = call(
        &stack,
        Method::PATCH,
        &format!("/api/v1/meetings/{code}/config"),
        &host,
        Some(&json!({"waiting_room_enabled": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{meeting}");
    assert!(
        !audit_actions(&stack, &code)
            .await
            .contains(&"settings_changed".to_owned())
    );
}
