//! `POST /api/v1/meetings`: what a create stores and answers, and every way it can fail.

use chrono::Timelike;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{HOST, PUBLIC_BASE_URL, StackOptions, error_code, meeting_body, spawn_stack};

#[derive(sqlx::FromRow)]
struct AuditRow {
    org_id: Uuid,
    actor_id: Option<String>,
    actor_type: String,
    action: String,
    resource_type: String,
    resource_id: String,
    details: Value,
    ip: Option<String>,
    user_agent: Option<String>,
}

fn is_code(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[sqlx::test(migrations = "../../migrations")]
async fn create_returns_201_with_the_meeting_and_stores_it(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let token = stack.user_token(HOST).await;
    let host = stack.user_id(HOST).await;

    let response = stack.create(&token, &meeting_body("  Weekly sync  ")).await;

    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    let code = body["meeting_code"].as_str().unwrap();
    assert!(is_code(code), "{code}");
    assert_eq!(body["display_name"], "Weekly sync");
    assert_eq!(body["status"], "scheduled");
    assert_eq!(body["host_id"], host.to_string());
    assert_eq!(body["max_participants"], 100);
    assert_eq!(body["join_url"], format!("{PUBLIC_BASE_URL}/m/{code}"));
    assert_eq!(body["participant_count"], 0);
    assert_eq!(body["lobby_count"], 0);
    assert!(body["scheduled_start_time"].is_null());
    assert!(body["started_at"].is_null() && body["ended_at"].is_null());
    assert!(chrono::DateTime::parse_from_rfc3339(body["created_at"].as_str().unwrap()).is_ok());
    assert_eq!(
        body["settings"],
        json!({"waiting_room_enabled": true, "enable_transcription": false,
               "enable_e2e_encryption": true, "require_auth": true, "recording_enabled": false,
               "allow_guests": false, "allow_external_participants": false})
    );

    let id: Uuid = body["meeting_id"].as_str().unwrap().parse().unwrap();
    let row: (Uuid, Uuid, String, String, String, Vec<u8>) = sqlx::query_as(
        "select org_id, host_id, meeting_code, display_name, status, join_token_secret
         from meetings where id = $1",
    )
    .bind(id)
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    assert_eq!((row.0, row.1), (stack.org_id, host));
    assert_eq!(
        (row.2.as_str(), row.3.as_str(), row.4.as_str()),
        (code, "Weekly sync", "scheduled")
    );
    assert_eq!(row.5.len(), 32);
    assert_eq!(stack.live_meeting_count().await, 1);
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_response_never_contains_the_join_token_secret(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let token = stack.user_token(HOST).await;
    let text = stack
        .create(&token, &meeting_body("Secret"))
        .await
        .text()
        .await
        .unwrap();
    let secret: Vec<u8> = sqlx::query_scalar("select join_token_secret from meetings")
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    use base64::Engine;
    let encodings = [
        hex_of(&secret),
        base64::engine::general_purpose::STANDARD.encode(&secret),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&secret),
    ];
    for encoded in encodings {
        assert!(!text.contains(&encoded));
    }
    assert!(!text.contains("secret"));
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_path_with_a_trailing_slash_creates_too_without_a_redirect(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let token = stack.user_token(HOST).await;
    let response = stack
        .client
        .post(stack.gc_url("/api/v1/meetings/"))
        .bearer_auth(&token)
        .json(&meeting_body("Slash"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
}

#[sqlx::test(migrations = "../../migrations")]
async fn create_applies_requested_settings_limit_start_time_and_the_lock_room_alias(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let token = stack.user_token(HOST).await;
    let start = (chrono::Utc::now() + chrono::TimeDelta::days(30))
        .with_nanosecond(0)
        .unwrap();
    let body = json!({
        "display_name": "Board", "max_participants": 12,
        "scheduled_start_time": start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "settings": {"lock_room": false, "recording_enabled": true, "allow_guests": true,
                     "require_auth": false}
    });
    let response = stack.create(&token, &body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["max_participants"], 12);
    assert_eq!(
        body["scheduled_start_time"],
        start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    assert_eq!(body["settings"]["waiting_room_enabled"], false);
    assert_eq!(body["settings"]["recording_enabled"], true);
    assert_eq!(body["settings"]["allow_guests"], true);
    assert_eq!(body["settings"]["require_auth"], false);
    assert_eq!(body["settings"]["enable_e2e_encryption"], true, "a default");
    let stored: (bool, bool, i32) = sqlx::query_as(
        "select waiting_room_enabled, recording_enabled, max_participants from meetings",
    )
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    assert_eq!(stored, (false, true, 12));
}

#[sqlx::test(migrations = "../../migrations")]
async fn max_participants_defaults_to_the_smaller_of_100_and_the_org_limit(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let token = stack.user_token(HOST).await;
    stack.set_org_limits(10, 40).await;
    let body: Value = stack
        .create(&token, &meeting_body("Small org"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["max_participants"], 40);
    stack.set_org_limits(10, 500).await;
    let body: Value = stack
        .create(&token, &meeting_body("Big org"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["max_participants"], 100);
    let body = json!({"display_name": "Huge", "max_participants": 500});
    let body: Value = stack.create(&token, &body).await.json().await.unwrap();
    assert_eq!(body["max_participants"], 500);
}

#[sqlx::test(migrations = "../../migrations")]
async fn create_writes_the_meeting_created_audit_row_with_client_ip_and_user_agent(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let token = stack.user_token(HOST).await;
    let host = stack.user_id(HOST).await;
    let response = stack
        .client
        .post(stack.gc_url("/api/v1/meetings"))
        .bearer_auth(&token)
        .header("user-agent", "convene-test/1.0")
        .header("x-forwarded-for", "203.0.113.50")
        .json(&meeting_body("Audited"))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();

    let row: AuditRow = sqlx::query_as(
        "select org_id, actor_id, actor_type, action, resource_type, resource_id, details,
                host(ip) as ip, user_agent
         from audit_logs",
    )
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    assert_eq!(row.org_id, stack.org_id);
    assert_eq!(row.actor_id, Some(host.to_string()));
    assert_eq!(
        (
            row.actor_type.as_str(),
            row.action.as_str(),
            row.resource_type.as_str()
        ),
        ("user", "meeting_created", "meeting")
    );
    assert_eq!(row.resource_id, body["meeting_id"].as_str().unwrap());
    assert_eq!(row.details["meeting_code"], body["meeting_code"]);
    // GC does not trust X-Forwarded-For unless configured to: the socket peer is recorded.
    assert_eq!(row.ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(row.user_agent.as_deref(), Some("convene-test/1.0"));
    assert!(
        !row.details.to_string().contains("Audited"),
        "no display name in the audit details"
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn create_returns_403_org_meeting_limit_reached_and_a_slot_frees_when_a_meeting_ends(
    pool: PgPool,
) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let token = stack.user_token(HOST).await;
    stack.set_org_limits(2, 100).await;
    for name in ["One", "Two"] {
        assert_eq!(
            stack.create(&token, &meeting_body(name)).await.status(),
            StatusCode::CREATED
        );
    }
    let response = stack.create(&token, &meeting_body("Three")).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(response).await, "ORG_MEETING_LIMIT_REACHED");
    assert_eq!(stack.meeting_count().await, 2);
    let audits: i64 = sqlx::query_scalar("select count(*) from audit_logs")
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    assert_eq!(audits, 2, "a refused create leaves no audit row");

    sqlx::query(
        "update meetings set status = 'ended', ended_at = now() where display_name = 'One'",
    )
    .execute(&stack.pool)
    .await
    .unwrap();
    let response = stack.create(&token, &meeting_body("Three again")).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(stack.live_meeting_count().await, 2);
}

#[sqlx::test(migrations = "../../migrations")]
async fn create_returns_403_forbidden_when_the_org_is_not_active(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let token = stack.user_token(HOST).await;
    sqlx::query("update organizations set is_active = false")
        .execute(&stack.pool)
        .await
        .unwrap();
    let response = stack.create(&token, &meeting_body("Dormant")).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "FORBIDDEN");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("organization")
    );
    // Also when the request would otherwise be refused for its max_participants.
    let response = stack
        .create(
            &token,
            &json!({"display_name": "x", "max_participants": 5000}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(stack.meeting_count().await, 0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_deactivated_user_with_a_still_valid_token_cannot_create(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let token = stack.user_token(HOST).await;
    sqlx::query("update users set is_active = false where email = $1")
        .bind(HOST)
        .execute(&stack.pool)
        .await
        .unwrap();
    let response = stack.create(&token, &meeting_body("Gone")).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(response).await, "FORBIDDEN");
    assert_eq!(stack.meeting_count().await, 0);
}
