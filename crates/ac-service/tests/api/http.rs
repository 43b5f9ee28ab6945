use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{HOST_EMAIL, PASSWORD, error_code, seed_basics, spawn_app};

#[sqlx::test(migrations = "../../migrations")]
async fn unknown_routes_and_wrong_methods_answer_with_the_envelope(pool: PgPool) {
    let app = spawn_app(pool).await;

    let unknown = app
        .client
        .get(app.url("/api/v1/nothing"))
        .send()
        .await
        .unwrap();
    let wrong_method = app
        .client
        .get(app.url("/api/v1/auth/user/token"))
        .send()
        .await
        .unwrap();

    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(unknown).await, "NOT_FOUND");
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_code(wrong_method).await, "METHOD_NOT_ALLOWED");
}

#[sqlx::test(migrations = "../../migrations")]
async fn malformed_json_and_a_wrong_content_type_answer_with_the_envelope(pool: PgPool) {
    let app = spawn_app(pool).await;
    let path = app.url("/api/v1/auth/user/token");

    let malformed = app
        .client
        .post(&path)
        .header("content-type", "application/json")
        .body("{\"email\":")
        .send()
        .await
        .unwrap();
    let plain = app
        .client
        .post(&path)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    let huge = app
        .client
        .post(&path)
        .header("content-type", "application/json")
        .body(format!("{{\"email\":\"{}\"}}", "a".repeat(100_000)))
        .send()
        .await
        .unwrap();

    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(malformed).await, "BAD_REQUEST");
    assert_eq!(plain.status(), StatusCode::BAD_REQUEST);
    assert!(error_code(plain).await.len() > 3);
    assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(huge).await, "PAYLOAD_TOO_LARGE");
}

#[sqlx::test(migrations = "../../migrations")]
async fn health_endpoints_report_live_and_ready(pool: PgPool) {
    let app = spawn_app(pool).await;

    let live = app
        .client
        .get(app.url("/health/live"))
        .send()
        .await
        .unwrap();
    let ready = app
        .client
        .get(app.url("/health/ready"))
        .send()
        .await
        .unwrap();

    assert_eq!(live.status(), StatusCode::OK);
    assert_eq!(ready.status(), StatusCode::OK);
}

#[sqlx::test(migrations = "../../migrations")]
async fn readiness_fails_with_503_when_the_database_is_gone(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;

    pool.close().await;
    let ready = app
        .client
        .get(app.url("/health/ready"))
        .send()
        .await
        .unwrap();

    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(ready).await, "SERVICE_UNAVAILABLE");
}

#[sqlx::test(migrations = "../../migrations")]
async fn metrics_count_tokens_and_requests_by_route_template(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;
    app.user_token(HOST_EMAIL, PASSWORD).await;
    app.login(HOST_EMAIL, "wrong-password").await;
    app.patch_json(
        &format!("/api/v1/admin/orgs/{}", uuid::Uuid::new_v4()),
        None,
        &json!({}),
    )
    .await;

    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    assert!(
        text.contains("ac_tokens_issued_total{token_type=\"user\"}"),
        "{text}"
    );
    assert!(text.contains("ac_login_failures_total{reason=\"invalid_credentials\"}"));
    assert!(text.contains("ac_http_requests_total"));
    assert!(text.contains("route=\"/api/v1/admin/orgs/{org_id}\""));
    assert!(!text.contains("/api/v1/admin/orgs/0") && !text.contains("@acme.test"));
}
