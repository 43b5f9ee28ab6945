//! The host's removal of someone (DESIGN §12), with a real AC, GC, meeting controller,
//! PostgreSQL and Redis: seated or waiting, member or guest; refused afterwards; the host
//! cannot be removed; only the host may remove.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{HOST, MEMBER, TestStack, meeting_body};
use crate::meetings::{call, create, get, join, stack_with_mc};

async fn remove(stack: &TestStack, code: &str, token: &str, user: &str) -> (StatusCode, Value) {
    call(
        stack,
        Method::POST,
        &format!("/api/v1/meetings/{code}/remove/{user}"),
        token,
        None,
    )
    .await
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_removed_member_loses_the_seat_and_every_later_join_is_refused(pool: PgPool) {
    let (stack, _prefix, _people) = stack_with_mc(pool).await;
    let host = stack.user_token(HOST).await;
    let member = stack.user_token(MEMBER).await;
    let member_id = stack.user_id(MEMBER).await;
    let mut body = meeting_body("Moderated");
    body["settings"] = json!({"waiting_room_enabled": false});
    let code = create(&stack, &host, &body).await;
    join(&stack, &code, &host).await;
    let (status, seated) = join(&stack, &code, &member).await;
    assert_eq!(
        (status, seated["status"].as_str()),
        (StatusCode::OK, Some("admitted"))
    );

    let (status, answer) = remove(&stack, &code, &host, &member_id.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, json!({"user_id": member_id, "status": "removed"}));

    let (_, seen) = get(&stack, &code, &host).await;
    assert_eq!(seen["participant_count"], 1);
    let (status, refused) = join(&stack, &code, &member).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["error"]["code"], "REMOVED_FROM_MEETING");
    let (reason,): (Option<String>,) = sqlx::query_as(
        "select leave_reason from participants where user_id = $1 and left_at is not null",
    )
    .bind(member_id)
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    assert_eq!(reason.as_deref(), Some("removed_by_host"));
    let open: i64 = sqlx::query_scalar(
        "select count(*) from participants where user_id = $1 and left_at is null",
    )
    .bind(member_id)
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    assert_eq!(open, 0);

    // Removing again answers the same and records the act again; nothing else changes.
    let (status, _) = remove(&stack, &code, &host, &member_id.to_string()).await;
    assert_eq!(status, StatusCode::OK);
    let events = crate::helpers::recorded_events(&stack.pool, Some(&code)).await;
    let actions: Vec<&str> = events.iter().map(|e| e.action()).collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "participant_removed")
            .count(),
        2,
        "{actions:?}"
    );
    assert_eq!(
        actions.iter().filter(|a| **a == "participant_left").count(),
        1,
        "one visit closed: {actions:?}"
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_waiting_guest_can_be_removed_and_may_not_wait_again(pool: PgPool) {
    let (stack, _prefix, _people) = stack_with_mc(pool).await;
    let host = stack.user_token(HOST).await;
    let mut body = meeting_body("Open");
    body["settings"] = json!({"allow_guests": true, "require_auth": false});
    let code = create(&stack, &host, &body).await;
    join(&stack, &code, &host).await;
    let response = stack
        .client
        .post(stack.gc_url(&format!("/api/v1/meetings/{code}/guest-join")))
        .json(&json!({"display_name": "Pest"}))
        .send()
        .await
        .unwrap();
    let joined: Value = response.json().await.unwrap();
    let guest_token = joined["guest_token"].as_str().unwrap().to_owned();
    let (_, seen) = get(&stack, &code, &guest_token).await;
    assert_eq!(seen["meeting_code"], code.as_str());
    let payload = guest_token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap();
    let guest_id = claims["sub"].as_str().unwrap().to_owned();

    let (status, _) = remove(&stack, &code, &host, &guest_id).await;
    assert_eq!(status, StatusCode::OK);
    let (_, seen) = get(&stack, &code, &host).await;
    assert_eq!(seen["lobby_count"], 0);
    let (status, refused) = join(&stack, &code, &guest_token).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(refused["error"]["code"], "REMOVED_FROM_MEETING");
}

#[sqlx::test(migrations = "../../migrations")]
async fn only_the_host_removes_and_never_themselves(pool: PgPool) {
    let (stack, _prefix, _people) = stack_with_mc(pool).await;
    let host = stack.user_token(HOST).await;
    let member = stack.user_token(MEMBER).await;
    let host_id = stack.user_id(HOST).await;
    let member_id = stack.user_id(MEMBER).await;
    let code = create(&stack, &host, &meeting_body("Who decides")).await;

    // Nobody has joined: there is no room, and nobody to remove.
    let (status, _) = remove(&stack, &code, &host, &member_id.to_string()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    join(&stack, &code, &host).await;
    join(&stack, &code, &member).await;

    let (status, refused) = remove(&stack, &code, &host, &host_id.to_string()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"]["code"], "CONFLICT");
    let (status, refused) = remove(&stack, &code, &member, &host_id.to_string()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["error"]["code"], "FORBIDDEN");
    for bad in ["not-a-uuid", "%00", &"9".repeat(300)] {
        let (status, _) = remove(&stack, &code, &host, bad).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{bad}");
    }
    let (status, _) = remove(&stack, &code, "not-a-token", &member_id.to_string()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The member still waits, untouched by all of it.
    let (_, seen) = get(&stack, &code, &host).await;
    assert_eq!(seen["lobby_count"], 1);
    let removed: i64 =
        sqlx::query_scalar("select count(*) from audit_logs where action = 'participant_removed'")
            .fetch_one(&stack.pool)
            .await
            .unwrap();
    assert_eq!(removed, 0);
}
