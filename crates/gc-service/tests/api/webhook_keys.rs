//! Webhooks when what signing needs is missing or wrong, and when a retry window ends
//! (DESIGN §13): GC without `GC_WEBHOOK_KEY`, a secret sealed under another key, a rotated-out
//! secret that no longer opens, and a delivery that fails for longer than its window.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{
    HOST, ORG_ADMIN, StackOptions, TestStack, meeting_body, spawn_stack, test_webhooks,
};
use crate::meetings::{call, create};
use crate::webhooks::{Answer, Receiver, signed_by, subscribe, webhooks_call};

/// The webhook's deliveries as the API lists them.
async fn deliveries(stack: &TestStack, token: &str, webhook: &str) -> Vec<Value> {
    let (status, listed) = webhooks_call(
        stack,
        Method::GET,
        &format!("/{webhook}/deliveries"),
        token,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    listed["deliveries"].as_array().unwrap().clone()
}

/// A sealed secret no key of this GC opens.
fn sealed_elsewhere(webhook: &str) -> common::envelope::Sealed {
    let other_key = [7u8; 32];
    common::envelope::seal(&other_key, webhook, &[1u8; 32]).unwrap()
}

#[sqlx::test(migrations = "../../migrations")]
async fn without_a_webhook_key_what_signs_answers_503_and_nothing_is_sent(pool: PgPool) {
    let settings = gc_service::config::WebhookSettings {
        key: None,
        ..test_webhooks()
    };
    let stack = spawn_stack(pool, StackOptions::default().with_webhooks(settings)).await;
    let admin = stack.user_token(ORG_ADMIN).await;
    let receiver = Receiver::start(Answer::Status(200)).await;
    let (status, body) = call(
        &stack,
        Method::POST,
        "/api/v1/webhooks",
        &admin,
        Some(&json!({"url": receiver.url, "events": ["meeting.created"]})),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body["error"]["code"].is_string(), "{body}");
    // What needs no key still answers: the list (empty), and an unknown webhook is a 404.
    let (status, listed) = webhooks_call(&stack, Method::GET, "", &admin, None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let (status, _) = webhooks_call(
        &stack,
        Method::GET,
        &format!("/{}", Uuid::now_v7()),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A webhook stored by a GC that had a key: changes still go to the outbox, and wait there.
    let webhook = Uuid::now_v7();
    let sealed = sealed_elsewhere(&webhook.to_string());
    sqlx::query(
        "insert into webhooks (id, org_id, url, events, secret_sealed, secret_nonce)
         values ($1, $2, $3, array['meeting.created'], $4, $5)",
    )
    .bind(webhook)
    .bind(stack.org_id)
    .bind(&receiver.url)
    .bind(&sealed.ciphertext)
    .bind(&sealed.nonce)
    .execute(&stack.pool)
    .await
    .unwrap();
    // What would sign something is refused.
    for action in ["test", "rotate-secret"] {
        let (status, body) = webhooks_call(
            &stack,
            Method::POST,
            &format!("/{webhook}/{action}"),
            &admin,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{action}: {body}");
    }
    let host = stack.user_token(HOST).await;
    create(&stack, &host, &meeting_body("Keyless")).await;
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert!(receiver.received().is_empty());
    let waiting: (String, i32) =
        sqlx::query_as("select status, attempts from webhook_deliveries where webhook_id = $1")
            .bind(webhook)
            .fetch_one(&stack.pool)
            .await
            .unwrap();
    assert_eq!(waiting, ("pending".to_owned(), 0));
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_secret_sealed_under_another_key_is_never_sent_unsigned(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let admin = stack.user_token(ORG_ADMIN).await;
    let receiver = Receiver::start(Answer::Status(200)).await;
    let created = subscribe(&stack, &admin, &receiver.url, &["webhook.test"]).await;
    let id = created["webhook_id"].as_str().unwrap().to_owned();
    // As if GC_WEBHOOK_KEY had been changed since the secret was sealed.
    let sealed = sealed_elsewhere(&id);
    sqlx::query("update webhooks set secret_sealed = $2, secret_nonce = $3 where id = $1::uuid")
        .bind(&id)
        .bind(&sealed.ciphertext)
        .bind(&sealed.nonce)
        .execute(&stack.pool)
        .await
        .unwrap();
    let (status, _) =
        webhooks_call(&stack, Method::POST, &format!("/{id}/test"), &admin, None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let mut listed = Vec::new();
    for _ in 0..100 {
        listed = deliveries(&stack, &admin, &id).await;
        if listed[0]["attempts"].as_i64().unwrap() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Tried, failed without a request, and due again (the key may be put back).
    assert_eq!(listed[0]["status"], "pending", "{listed:?}");
    assert!(listed[0]["attempts"].as_i64().unwrap() >= 2, "{listed:?}");
    assert_eq!(listed[0]["last_status"], Value::Null);
    assert!(
        listed[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("could not be opened"),
        "{listed:?}"
    );
    assert!(receiver.received().is_empty());
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_rotated_out_secret_that_no_longer_opens_leaves_the_new_one_signing_alone(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let admin = stack.user_token(ORG_ADMIN).await;
    let receiver = Receiver::start(Answer::Status(200)).await;
    let created = subscribe(&stack, &admin, &receiver.url, &["webhook.test"]).await;
    let id = created["webhook_id"].as_str().unwrap().to_owned();
    let old = created["secret"].as_str().unwrap().to_owned();
    let (_, rotated) = webhooks_call(
        &stack,
        Method::POST,
        &format!("/{id}/rotate-secret"),
        &admin,
        None,
    )
    .await;
    let new = rotated["secret"].as_str().unwrap().to_owned();
    let sealed = sealed_elsewhere(&id);
    sqlx::query(
        "update webhooks set previous_secret_sealed = $2, previous_secret_nonce = $3
         where id = $1::uuid",
    )
    .bind(&id)
    .bind(&sealed.ciphertext)
    .bind(&sealed.nonce)
    .execute(&stack.pool)
    .await
    .unwrap();
    webhooks_call(&stack, Method::POST, &format!("/{id}/test"), &admin, None).await;
    let received = receiver.until("the test event", |r| !r.is_empty()).await;
    assert_eq!(
        received[0].signature.split(' ').count(),
        1,
        "{:?}",
        received[0]
    );
    assert!(signed_by(&received[0], &new));
    assert!(!signed_by(&received[0], &old));
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_delivery_failing_for_longer_than_its_window_fails_for_good(pool: PgPool) {
    let settings = gc_service::config::WebhookSettings {
        retry_window_secs: 1,
        ..test_webhooks()
    };
    let stack = spawn_stack(pool, StackOptions::default().with_webhooks(settings)).await;
    let admin = stack.user_token(ORG_ADMIN).await;
    let receiver = Receiver::start(Answer::Status(503)).await;
    let created = subscribe(&stack, &admin, &receiver.url, &["webhook.test"]).await;
    let id = created["webhook_id"].as_str().unwrap().to_owned();
    webhooks_call(&stack, Method::POST, &format!("/{id}/test"), &admin, None).await;
    let mut listed = Vec::new();
    for _ in 0..100 {
        listed = deliveries(&stack, &admin, &id).await;
        if listed[0]["status"] == "failed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(listed[0]["status"], "failed", "{listed:?}");
    assert_eq!(listed[0]["last_status"], 503);
    let attempts = listed[0]["attempts"].as_i64().unwrap();
    assert!(attempts >= 2, "retried within the window: {listed:?}");
    // Failed for good: nothing more is sent, and the webhook stays enabled.
    let sent = receiver.received().len();
    assert_eq!(sent as i64, attempts);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), sent);
    let (_, webhook) = webhooks_call(&stack, Method::GET, &format!("/{id}"), &admin, None).await;
    assert_eq!(webhook["enabled"], true);
}
