//! Who may call `POST /api/v1/meetings`: only user tokens AC signed, unexpired, with a role.

use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{
    GC_CLIENT, HOST, NO_ROLE, ORG_ADMIN, StackOptions, error_code, meeting_body, spawn_stack,
    tampered, user_claims,
};

#[sqlx::test(migrations = "../../migrations")]
async fn create_returns_401_with_www_authenticate_without_a_token(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let response = stack
        .client
        .post(stack.gc_url("/api/v1/meetings"))
        .json(&meeting_body("No token"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key("www-authenticate"));
    assert_eq!(error_code(response).await, "UNAUTHORIZED");
    assert_eq!(stack.meeting_count().await, 0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn create_returns_401_for_a_malformed_or_non_bearer_authorization(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    for authorization in ["Bearer not-a-jwt", "Basic dXNlcjpwYXNz", "Bearer "] {
        let response = stack
            .client
            .post(stack.gc_url("/api/v1/meetings"))
            .header("authorization", authorization)
            .json(&meeting_body("Bad header"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{authorization}"
        );
        assert_eq!(error_code(response).await, "UNAUTHORIZED");
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn create_returns_401_for_an_expired_token_signed_by_a_published_key(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let signer = stack.published_test_signer().await;
    let host = stack.user_id(HOST).await;

    // Control: the same key and claims, unexpired, are accepted, so the 401 below is the expiry.
    let valid = signer.sign(&user_claims(host, stack.org_id, &["user"]));
    let response = stack.create(&valid, &meeting_body("Valid")).await;
    assert_eq!(response.status(), StatusCode::CREATED);

    let mut claims = user_claims(host, stack.org_id, &["user"]);
    let long_ago = chrono::Utc::now().timestamp() - 7200;
    claims["iat"] = json!(long_ago);
    claims["exp"] = json!(long_ago + 3600);
    let response = stack
        .create(&signer.sign(&claims), &meeting_body("Expired"))
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(response).await, "UNAUTHORIZED");
    assert_eq!(stack.meeting_count().await, 1);
}

#[sqlx::test(migrations = "../../migrations")]
async fn create_returns_401_for_a_token_whose_signature_does_not_match(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let token = stack.user_token(NO_ROLE).await;
    // A user without a role grants themselves `admin`: the signature no longer matches.
    let forged = tampered(&token, |claims| claims["roles"] = json!(["admin"]));
    let response = stack.create(&forged, &meeting_body("Forged")).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(response).await, "UNAUTHORIZED");
    assert_eq!(stack.meeting_count().await, 0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn create_returns_401_for_a_token_signed_by_an_unpublished_key_with_acs_kid(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let real = stack.user_token(HOST).await;
    let ac_kid = jsonwebtoken::decode_header(&real).unwrap().kid.unwrap();
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(ac_kid);
    let host = stack.user_id(HOST).await;
    let forged = jsonwebtoken::encode(
        &header,
        &user_claims(host, stack.org_id, &["user"]),
        &jsonwebtoken::EncodingKey::from_ed_der(pkcs8.as_ref()),
    )
    .unwrap();
    let response = stack.create(&forged, &meeting_body("Impostor")).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrations = "../../migrations")]
async fn create_refuses_a_service_token_with_401(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let token = stack.service_token(GC_CLIENT).await;
    let response = stack.create(&token, &meeting_body("Service")).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(response).await, "UNAUTHORIZED");
    assert_eq!(stack.meeting_count().await, 0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn create_refuses_a_meeting_token_with_401(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let service = stack.service_token(GC_CLIENT).await;
    let host = stack.user_id(HOST).await;
    let response = stack
        .client
        .post(format!(
            "{}/api/v1/auth/internal/meeting-token",
            stack.ac.base
        ))
        .bearer_auth(service)
        .json(&json!({"user_id": host, "meeting_id": uuid::Uuid::new_v4(),
                      "meeting_code": "Ab3dE5fG7hJ9", "org_id": stack.org_id,
                      "role": "host", "name": "Host"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = response.json().await.unwrap();
    let meeting_token = body["token"].as_str().unwrap();

    let response = stack.create(meeting_token, &meeting_body("Meeting")).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(stack.meeting_count().await, 0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn create_returns_403_for_a_user_without_a_role(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let token = stack.user_token(NO_ROLE).await;
    let response = stack.create(&token, &meeting_body("No role")).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(response).await, "FORBIDDEN");
    assert_eq!(stack.meeting_count().await, 0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_role_check_comes_before_the_body_is_read(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let token = stack.user_token(NO_ROLE).await;
    let response = stack.create(&token, &json!({"nonsense": true})).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[sqlx::test(migrations = "../../migrations")]
async fn an_org_admin_may_create_a_meeting(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let token = stack.user_token(ORG_ADMIN).await;
    let response = stack.create(&token, &meeting_body("Admin's")).await;
    assert_eq!(response.status(), StatusCode::CREATED);
}
