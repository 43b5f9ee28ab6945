//! `Idempotency-Key`: a retried create returns the first meeting and creates nothing.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{HOST, MEMBER, StackOptions, error_code, meeting_body, spawn_stack};

const CREATED: &str = "gc_meetings_created_total";
const SUCCESS: &[(&str, &str)] = &[("status", "success"), ("error_type", "none")];

async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("select count(*) from {table}")))
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_same_key_and_body_return_the_first_meeting_and_create_nothing(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let token = stack.user_token(HOST).await;
    let body = json!({"display_name": "Retry me", "settings": {"recording_enabled": true}});
    let successes_before = stack.metric(CREATED, SUCCESS).await;

    let first = stack.create_with_key(&token, &body, Some("key-1")).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();

    // The same meaning written differently (key order, whitespace, untrimmed name) is the same
    // request.
    let same = json!({"settings": {"recording_enabled": true}, "display_name": " Retry me "});
    let second = stack.create_with_key(&token, &same, Some("key-1")).await;
    assert_eq!(second.status(), StatusCode::CREATED);
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    let second: Value = second.json().await.unwrap();

    assert_eq!(second["meeting_id"], first["meeting_id"]);
    assert_eq!(second["meeting_code"], first["meeting_code"]);
    assert_eq!(count(&stack.pool, "meetings").await, 1);
    assert_eq!(count(&stack.pool, "audit_logs").await, 1);
    assert_eq!(stack.live_meeting_count().await, 1);
    let successes = stack.metric(CREATED, SUCCESS).await;
    assert_eq!(
        successes - successes_before,
        2.0,
        "a replay counts as a successful create"
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_same_key_with_another_body_is_a_409_conflict(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let token = stack.user_token(HOST).await;
    let first = stack
        .create_with_key(&token, &meeting_body("One"), Some("key-1"))
        .await;
    assert_eq!(first.status(), StatusCode::CREATED);

    let other = stack
        .create_with_key(&token, &meeting_body("Two"), Some("key-1"))
        .await;
    assert_eq!(other.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(other).await, "CONFLICT");
    assert_eq!(count(&stack.pool, "meetings").await, 1);
}

#[sqlx::test(migrations = "../../migrations")]
async fn keys_are_scoped_to_the_user_who_sent_them(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let host = stack.user_token(HOST).await;
    let member = stack.user_token(MEMBER).await;
    let a: Value = stack
        .create_with_key(&host, &meeting_body("A"), Some("shared"))
        .await
        .json()
        .await
        .unwrap();
    let b: Value = stack
        .create_with_key(&member, &meeting_body("A"), Some("shared"))
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(a["meeting_id"], b["meeting_id"]);
    assert_eq!(count(&stack.pool, "meetings").await, 2);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_malformed_key_is_a_400(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let token = stack.user_token(HOST).await;
    let long = "k".repeat(256);
    for key in ["", "has space", long.as_str()] {
        let response = stack
            .create_with_key(&token, &meeting_body("x"), Some(key))
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{key:?}");
        assert_eq!(error_code(response).await, "BAD_REQUEST");
    }
    assert_eq!(count(&stack.pool, "meetings").await, 0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_replay_succeeds_even_when_the_org_has_reached_its_limit_since(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let token = stack.user_token(HOST).await;
    stack.set_org_limits(1, 100).await;
    let first: Value = stack
        .create_with_key(&token, &meeting_body("Only"), Some("k"))
        .await
        .json()
        .await
        .unwrap();
    let replay = stack
        .create_with_key(&token, &meeting_body("Only"), Some("k"))
        .await;
    assert_eq!(replay.status(), StatusCode::CREATED);
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay["meeting_id"], first["meeting_id"]);
    let fresh = stack
        .create_with_key(&token, &meeting_body("Only"), Some("k2"))
        .await;
    assert_eq!(error_code(fresh).await, "ORG_MEETING_LIMIT_REACHED");
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_failed_create_stores_no_key_so_its_retry_runs_again(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let token = stack.user_token(HOST).await;
    stack.set_org_limits(10, 50).await;
    let too_big = json!({"display_name": "Big", "max_participants": 80});
    let failed = stack.create_with_key(&token, &too_big, Some("k")).await;
    assert_eq!(failed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(count(&stack.pool, "idempotency_keys").await, 0);

    let fixed = json!({"display_name": "Big", "max_participants": 50});
    let retried = stack.create_with_key(&token, &fixed, Some("k")).await;
    assert_eq!(retried.status(), StatusCode::CREATED);
    assert_eq!(count(&stack.pool, "idempotency_keys").await, 1);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_key_older_than_24_hours_creates_a_new_meeting(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let token = stack.user_token(HOST).await;
    let first: Value = stack
        .create_with_key(&token, &meeting_body("Day 1"), Some("daily"))
        .await
        .json()
        .await
        .unwrap();
    sqlx::query("update idempotency_keys set created_at = now() - interval '25 hours'")
        .execute(&stack.pool)
        .await
        .unwrap();

    let second = stack
        .create_with_key(&token, &meeting_body("Day 2"), Some("daily"))
        .await;
    assert_eq!(second.status(), StatusCode::CREATED);
    let second: Value = second.json().await.unwrap();
    assert_ne!(second["meeting_id"], first["meeting_id"]);
    let stored: String = sqlx::query_scalar("select meeting_id::text from idempotency_keys")
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    assert_eq!(stored, second["meeting_id"].as_str().unwrap());
}

#[sqlx::test(migrations = "../../migrations")]
async fn concurrent_retries_with_one_key_create_exactly_one_meeting(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let token = stack.user_token(HOST).await;
    let body = meeting_body("Racing retries");
    let responses = futures::future::join_all(
        (0..8).map(|_| stack.create_with_key(&token, &body, Some("race"))),
    )
    .await;
    let mut ids = Vec::new();
    for response in responses {
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        ids.push(body["meeting_id"].as_str().unwrap().to_owned());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(count(&stack.pool, "meetings").await, 1);
    assert_eq!(stack.live_meeting_count().await, 1);
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_janitor_deletes_only_expired_keys(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let token = stack.user_token(HOST).await;
    for key in ["old-1", "old-2", "fresh"] {
        stack
            .create_with_key(&token, &meeting_body(key), Some(key))
            .await;
    }
    sqlx::query(
        "update idempotency_keys set created_at = now() - interval '2 days' where key like 'old-%'",
    )
    .execute(&stack.pool)
    .await
    .unwrap();
    let deleted = gc_service::db::idempotency::purge_expired(&stack.pool, 1)
        .await
        .unwrap();
    assert_eq!(deleted, 1, "batches are bounded");
    let deleted = gc_service::db::idempotency::purge_expired(&stack.pool, 100)
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    let left: Vec<String> = sqlx::query_scalar("select key from idempotency_keys")
        .fetch_all(&stack.pool)
        .await
        .unwrap();
    assert_eq!(left, ["fresh"]);
}
