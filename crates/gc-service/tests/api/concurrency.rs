//! The org limit under concurrency, and codes at volume.

use std::collections::HashSet;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{HOST, MEMBER, StackOptions, meeting_body, spawn_stack};

/// Twenty connections, so that many creates really are inside PostgreSQL at the same time
/// (`#[sqlx::test]`'s default pool has five).
async fn wide_pool(options: PgPoolOptions, connect: PgConnectOptions) -> PgPool {
    options
        .max_connections(20)
        .connect_with(connect)
        .await
        .unwrap()
}

/// Fires `n` creates at once against a limit of `limit` and returns (created, refused).
async fn rush(stack: &crate::helpers::TestStack, n: usize, limit: i32) -> (usize, usize) {
    stack.set_org_limits(limit, 100).await;
    let tokens = [stack.user_token(HOST).await, stack.user_token(MEMBER).await];
    let body = meeting_body("Rush hour");
    let responses =
        futures::future::join_all((0..n).map(|i| stack.create(&tokens[i % 2], &body))).await;
    let mut created = 0;
    let mut limited = 0;
    for response in responses {
        match response.status() {
            StatusCode::CREATED => created += 1,
            StatusCode::FORBIDDEN => {
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["error"]["code"], "ORG_MEETING_LIMIT_REACHED");
                limited += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    (created, limited)
}

#[sqlx::test(migrations = "../../migrations")]
async fn fifty_simultaneous_creates_against_a_limit_of_5_let_exactly_5_through(
    options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let stack = spawn_stack(wide_pool(options, connect).await, StackOptions::default()).await;

    assert_eq!(rush(&stack, 50, 5).await, (5, 45));

    assert_eq!(stack.check_slots().await, (5, 5));
    let audits: i64 = sqlx::query_scalar("select count(*) from audit_logs")
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    assert_eq!(audits, 5);
}

#[sqlx::test(migrations = "../../migrations")]
async fn limits_of_1_and_2_stay_exact_under_simultaneous_creates(
    options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let stack = spawn_stack(wide_pool(options, connect).await, StackOptions::default()).await;

    assert_eq!(rush(&stack, 30, 1).await, (1, 29));
    assert_eq!(stack.check_slots().await, (1, 1));
    // Raising the limit to 2 leaves room for exactly one more.
    assert_eq!(rush(&stack, 30, 2).await, (1, 29));
    assert_eq!(stack.check_slots().await, (2, 2));
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_limit_changed_during_a_rush_is_never_exceeded(
    options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let stack = spawn_stack(wide_pool(options, connect).await, StackOptions::default()).await;
    stack.set_org_limits(40, 100).await;
    let token = stack.user_token(HOST).await;
    let body = meeting_body("Moving target");

    // Creates race with the limit dropping to 7: whatever wins, at most 40 exist before the
    // change, no create fits after it until the org is back under 7.
    let creates = futures::future::join_all((0..60).map(|_| stack.create(&token, &body)));
    let lower = async {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        stack.set_org_limits(7, 100).await;
    };
    let (responses, ()) = tokio::join!(creates, lower);
    assert!(
        responses
            .iter()
            .all(|r| matches!(r.status().as_u16(), 201 | 403))
    );

    let (live, limit) = stack.check_slots().await;
    assert_eq!(limit, 7);
    assert!(live <= 40, "{live}");
    // Whatever the live count, one more create only fits below the new limit.
    let next = stack.create(&token, &body).await.status();
    assert_eq!(
        next == StatusCode::CREATED,
        live < 7,
        "{live} live, answered {next}"
    );
    stack.check_slots().await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn ten_thousand_created_meetings_have_distinct_well_formed_codes(
    options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let stack = spawn_stack(wide_pool(options, connect).await, StackOptions::default()).await;
    stack.set_org_limits(20_000, 100).await;
    let token = stack.user_token(HOST).await;
    let body = meeting_body("Volume");

    let codes: Vec<String> = futures::stream::iter(0..10_000)
        .map(|_| async {
            let response = stack.create(&token, &body).await;
            assert_eq!(response.status(), StatusCode::CREATED);
            let body: Value = response.json().await.unwrap();
            body["meeting_code"].as_str().unwrap().to_owned()
        })
        .buffer_unordered(16)
        .collect()
        .await;

    assert_eq!(codes.len(), 10_000);
    assert!(
        codes
            .iter()
            .all(|c| c.len() == 12 && c.bytes().all(|b| b.is_ascii_alphanumeric()))
    );
    let distinct: HashSet<&String> = codes.iter().collect();
    assert_eq!(distinct.len(), 10_000);
    let stored: i64 = sqlx::query_scalar(
        "select count(distinct meeting_code) from meetings where meeting_code ~ '^[0-9A-Za-z]{12}$'",
    )
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    assert_eq!(stored, 10_000);
}
