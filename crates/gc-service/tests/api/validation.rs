//! Strict parsing and field rules of `POST /api/v1/meetings`: every bad request is a 400 (or
//! 413) envelope and creates nothing.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{HOST, StackOptions, error_code, spawn_stack};

#[sqlx::test(migrations = "../../migrations")]
async fn max_participants_outside_2_to_the_org_limit_is_a_400_not_a_cap(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let token = stack.user_token(HOST).await;
    stack.set_org_limits(10, 50).await;
    for n in [51, 1, 0, -3] {
        let body = json!({"display_name": "Too many", "max_participants": n});
        let response = stack.create(&token, &body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{n}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "BAD_REQUEST");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("max_participants")
        );
    }
    let response = stack
        .create(
            &token,
            &json!({"display_name": "Edge", "max_participants": 50}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(stack.meeting_count().await, 1);
    assert_eq!(stack.live_meeting_count().await, 1);
}

#[sqlx::test(migrations = "../../migrations")]
async fn bad_bodies_get_a_400_envelope_never_a_plain_text_rejection(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let token = stack.user_token(HOST).await;
    let cases: [(Option<&str>, &str); 10] = [
        (
            Some("application/json"),
            r#"{"display_name": "a", "extra": 1}"#,
        ),
        (Some("application/json"), r#"{"display_name": 42}"#),
        (
            Some("application/json"),
            r#"{"display_name": "a", "settings": {"x": true}}"#,
        ),
        (Some("application/json"), r#"{"display_name": "a""#),
        (Some("application/json"), r#"["a"]"#),
        (Some("application/json"), r#"{"display_name": "   "}"#),
        (Some("application/json"), r#"{}"#),
        (Some("text/plain"), r#"{"display_name": "a"}"#),
        (Some("application/x-www-form-urlencoded"), "display_name=a"),
        (None, r#"{"display_name": "a"}"#),
    ];
    for (content_type, body) in cases {
        let mut request = stack
            .client
            .post(stack.gc_url("/api/v1/meetings"))
            .bearer_auth(&token)
            .body(body.to_owned());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::BAD_REQUEST,
            "{content_type:?} {body}"
        );
        assert_eq!(
            error_code(response).await.as_str(),
            if content_type == Some("application/json") {
                "BAD_REQUEST"
            } else {
                "UNSUPPORTED_MEDIA_TYPE"
            }
        );
    }
    assert_eq!(stack.meeting_count().await, 0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn an_oversized_body_gets_a_413_envelope(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let token = stack.user_token(HOST).await;
    let big = json!({"display_name": "x".repeat(100 * 1024)});
    let response = stack.create(&token, &big).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(response).await, "PAYLOAD_TOO_LARGE");
}

#[sqlx::test(migrations = "../../migrations")]
async fn scheduled_start_times_in_the_past_or_beyond_a_year_are_refused(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let token = stack.user_token(HOST).await;
    let now = chrono::Utc::now();
    for start in [
        now - chrono::TimeDelta::hours(1),
        now + chrono::TimeDelta::days(400),
    ] {
        let body = json!({"display_name": "Later", "scheduled_start_time": start.to_rfc3339()});
        let response = stack.create(&token, &body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{start}");
        assert_eq!(error_code(response).await, "BAD_REQUEST");
    }
    let tomorrow = now + chrono::TimeDelta::days(1);
    let body = json!({"display_name": "Tomorrow", "scheduled_start_time": tomorrow.to_rfc3339()});
    let response = stack.create(&token, &body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(stack.meeting_count().await, 1);
}

#[sqlx::test(migrations = "../../migrations")]
async fn nul_bytes_odd_unicode_and_overlong_text_in_any_field_get_a_400_envelope(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let token = stack.user_token(HOST).await;
    let long = "x".repeat(60_000);
    let raw_bodies = [
        // JSON escapes a client can send but PostgreSQL or a screen cannot take.
        r#"{"display_name": "nul\u0000byte"}"#.to_owned(),
        r#"{"display_name": "lone \ud800 surrogate"}"#.to_owned(),
        r#"{"display_name": "\udc00"}"#.to_owned(),
        r#"{"display_name": "evil\u202Egpj.exe"}"#.to_owned(),
        r#"{"display_name": "line\u2028separator"}"#.to_owned(),
        r#"{"display_name": "para\u2029separator"}"#.to_owned(),
        r#"{"display_name": "\u200B\u200B"}"#.to_owned(),
        r#"{"display_name": "\u3164"}"#.to_owned(),
        r#"{"display_name": "\uFEFF"}"#.to_owned(),
        r#"{"display_name": "esc\u001b[31mred"}"#.to_owned(),
        format!(r#"{{"display_name": "{long}"}}"#),
        format!(r#"{{"display_name": "{}"}}"#, "€".repeat(256)),
        r#"{"display_name": "ok", "scheduled_start_time": "2030-01-01T00:00:00Z\u0000"}"#
            .to_owned(),
        format!(r#"{{"display_name": "ok", "scheduled_start_time": "{long}"}}"#),
        r#"{"display_name": "ok", "settings": {"allow_guests": "\u0000"}}"#.to_owned(),
        r#"{"display_name\u0000": "ok"}"#.to_owned(),
    ];
    for body in raw_bodies {
        let response = stack
            .client
            .post(stack.gc_url("/api/v1/meetings"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let shown: String = body.chars().take(80).collect();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{shown}");
        assert_eq!(error_code(response).await, "BAD_REQUEST", "{shown}");
    }
    assert_eq!(stack.meeting_count().await, 0);

    // Real names in any script, with emoji sequences, still pass.
    let fine = json!({"display_name": "Réunion 会议 👩\u{200D}💻"});
    assert_eq!(
        stack.create(&token, &fine).await.status(),
        StatusCode::CREATED
    );
}
