//! What ends and deletes meetings by itself: the empty-meeting timeout, the expiry of
//! scheduled meetings nobody joined, and retention. Time is PostgreSQL's `now()`, so the tests
//! move the stored timestamps instead of waiting.

use std::sync::Arc;
use std::time::Duration;

use common::service_token::ServiceTokenClient;
use common::shell::Background;
use gc_service::clients::mc::{MeetingControllers, Placement};
use gc_service::db::admissions::Admissions;
use gc_service::db::lookups::Lookups;
use gc_service::use_cases::housekeeping::{Pass, run_once};
use gc_service::use_cases::room::Rooms;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{GC_CLIENT, HOST, TestStack, meeting_body, test_lifecycle};
use crate::meetings::{call, create, end, join, redis_keys, stack_with_mc};

fn rooms(stack: &TestStack) -> Rooms {
    let tokens = Arc::new(
        ServiceTokenClient::new(&stack.ac.base, GC_CLIENT.0, GC_CLIENT.1.into(), None).unwrap(),
    );
    Rooms {
        pool: stack.pool.clone(),
        placement: Placement::new(
            stack.pool.clone(),
            MeetingControllers::new(tokens, Duration::from_secs(3), &Background::default()),
            test_lifecycle().heartbeat_timeout_secs,
        ),
        settings: test_lifecycle(),
        admissions: Admissions::new(stack.pool.clone(), &Background::default()),
        lookups: Lookups::new(
            stack.pool.clone(),
            test_lifecycle().heartbeat_timeout_secs,
            &Background::default(),
        ),
        guests: gc_service::db::guests::GuestRecords::new(
            stack.pool.clone(),
            &Background::default(),
        ),
        detached: Default::default(),
        comings_and_goings: gc_service::use_cases::room::join_leave_budget(&test_lifecycle()),
        guest_joins: gc_service::use_cases::room::guest_join_budget(&test_lifecycle()),
    }
}

async fn status_of(
    stack: &TestStack,
    code: &str,
) -> (String, Option<chrono::DateTime<chrono::Utc>>) {
    sqlx::query_as("select status, ended_at from meetings where meeting_code = $1")
        .bind(code)
        .fetch_one(&stack.pool)
        .await
        .unwrap()
}

async fn shift(stack: &TestStack, sql: &'static str, code: &str) {
    sqlx::query(sql)
        .bind(code)
        .execute(&stack.pool)
        .await
        .unwrap();
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_meeting_left_empty_past_the_timeout_ends_by_itself(pool: PgPool) {
    let (stack, prefix, _people) = stack_with_mc(pool).await;
    let host = stack.user_token(HOST).await;
    let code = create(&stack, &host, &meeting_body("Emptying")).await;
    join(&stack, &code, &host).await;
    let (status, _) = call(
        &stack,
        Method::POST,
        &format!("/api/v1/meetings/{code}/leave"),
        &host,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let empty_since: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("select empty_since from meetings where meeting_code = $1")
            .bind(&code)
            .fetch_one(&stack.pool)
            .await
            .unwrap();
    assert!(empty_since.is_some(), "the last one out starts the clock");

    // Not yet due: nothing happens.
    assert_eq!(run_once(&rooms(&stack)).await.unwrap(), Pass::default());
    assert_eq!(status_of(&stack, &code).await.0, "active");

    shift(
        &stack,
        "update meetings set empty_since = now() - interval '11 minutes' where meeting_code = $1",
        &code,
    )
    .await;
    let pass = run_once(&rooms(&stack)).await.unwrap();

    assert_eq!(pass.ended_empty, 1);
    assert_eq!(status_of(&stack, &code).await.0, "ended");
    assert!(redis_keys(&prefix).await.is_empty(), "the room is gone too");
    let (actor_type, details): (String, serde_json::Value) =
        sqlx::query_as("select actor_type, details from audit_logs where action = 'meeting_ended'")
            .fetch_one(&stack.pool)
            .await
            .unwrap();
    assert_eq!(
        (actor_type.as_str(), &details["reason"]),
        ("system", &json!("empty_timeout"))
    );
    assert_eq!(
        stack.live_meeting_count().await,
        0,
        "the org's place is given back"
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn someone_joining_stops_the_empty_clock(pool: PgPool) {
    let (stack, _prefix, _people) = stack_with_mc(pool).await;
    let host = stack.user_token(HOST).await;
    let code = create(&stack, &host, &meeting_body("Back again")).await;
    join(&stack, &code, &host).await;
    call(
        &stack,
        Method::POST,
        &format!("/api/v1/meetings/{code}/leave"),
        &host,
        None,
    )
    .await;
    shift(
        &stack,
        "update meetings set empty_since = now() - interval '11 minutes' where meeting_code = $1",
        &code,
    )
    .await;

    join(&stack, &code, &host).await;
    run_once(&rooms(&stack)).await.unwrap();

    assert_eq!(status_of(&stack, &code).await.0, "active");
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_scheduled_meeting_nobody_joined_expires_after_its_ttl(pool: PgPool) {
    let (stack, _prefix, _people) = stack_with_mc(pool).await;
    let host = stack.user_token(HOST).await;
    stack.set_org_limits(2, 100).await;
    let stale = create(&stack, &host, &meeting_body("Forgotten")).await;
    let fresh = create(&stack, &host, &meeting_body("Tomorrow")).await;
    shift(
        &stack,
        "update meetings set created_at = now() - interval '25 hours' where meeting_code = $1",
        &stale,
    )
    .await;

    let pass = run_once(&rooms(&stack)).await.unwrap();

    assert_eq!(pass.expired, 1);
    let (status, ended_at) = status_of(&stack, &stale).await;
    assert_eq!(status, "ended");
    assert!(ended_at.is_some());
    assert_eq!(status_of(&stack, &fresh).await.0, "scheduled");
    // Its place is free again: the org, at its limit of 2, can create one more.
    assert_eq!(
        stack.create(&host, &meeting_body("Third")).await.status(),
        StatusCode::CREATED
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn meetings_ended_beyond_the_retention_are_deleted_but_their_audit_stays(pool: PgPool) {
    let (stack, _prefix, _people) = stack_with_mc(pool).await;
    let host = stack.user_token(HOST).await;
    let old = create(&stack, &host, &meeting_body("Long ago")).await;
    let recent = create(&stack, &host, &meeting_body("Last week")).await;
    join(&stack, &old, &host).await;
    for code in [&old, &recent] {
        let (status, _) = end(&stack, code, &host).await;
        assert_eq!(status, StatusCode::OK);
    }
    shift(
        &stack,
        "update meetings set ended_at = now() - interval '91 days' where meeting_code = $1",
        &old,
    )
    .await;
    let audits_before: i64 = sqlx::query_scalar("select count(*) from audit_logs")
        .fetch_one(&stack.pool)
        .await
        .unwrap();

    let pass = run_once(&rooms(&stack)).await.unwrap();

    assert_eq!(pass.deleted, 1);
    let left: Vec<String> = sqlx::query_scalar("select meeting_code from meetings")
        .fetch_all(&stack.pool)
        .await
        .unwrap();
    assert_eq!(left, std::slice::from_ref(&recent));
    let visits: i64 = sqlx::query_scalar("select count(*) from participants")
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    assert_eq!(visits, 0, "the old meeting's visits went with it");
    let audits_after: i64 = sqlx::query_scalar("select count(*) from audit_logs")
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    assert_eq!(audits_after, audits_before, "the audit log keeps its rows");
}
