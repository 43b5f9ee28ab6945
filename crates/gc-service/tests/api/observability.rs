//! What operators see: the create metrics, the HTTP envelope on unknown routes, the probes.

use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{HOST, StackOptions, error_code, meeting_body, spawn_stack};

#[sqlx::test(migrations = "../../migrations")]
async fn create_metrics_count_every_outcome_with_its_labels(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let token = stack.user_token(HOST).await;
    let created = [("status", "success"), ("error_type", "none")];
    let unauthorized = [("status", "error"), ("error_type", "unauthorized")];
    let bad_request = [("status", "error"), ("error_type", "bad_request")];
    let forbidden = [("status", "error"), ("error_type", "forbidden")];
    let name = "gc_meetings_created_total";
    let before = [
        stack.metric(name, &created).await,
        stack.metric(name, &unauthorized).await,
        stack.metric(name, &bad_request).await,
        stack.metric(name, &forbidden).await,
    ];
    stack.set_org_limits(1, 100).await;

    assert_eq!(
        stack.create(&token, &meeting_body("Ok")).await.status(),
        201
    );
    assert_eq!(
        stack.create("garbage", &meeting_body("No")).await.status(),
        401
    );
    assert_eq!(stack.create(&token, &json!({"bad": 1})).await.status(), 400);
    assert_eq!(
        stack.create(&token, &meeting_body("Over")).await.status(),
        403
    );

    let after = [
        stack.metric(name, &created).await,
        stack.metric(name, &unauthorized).await,
        stack.metric(name, &bad_request).await,
        stack.metric(name, &forbidden).await,
    ];
    for (i, (b, a)) in before.iter().zip(after).enumerate() {
        assert_eq!(a - b, 1.0, "series {i}");
    }
    let histogram = "gc_meeting_creation_duration_seconds_count";
    assert!(stack.metric(histogram, &[("status", "success")]).await >= 1.0);
    assert!(stack.metric(histogram, &[("status", "error")]).await >= 3.0);
    let bucket = stack
        .metric(
            "gc_meeting_creation_duration_seconds_bucket",
            &[("status", "success"), ("le", "0.15")],
        )
        .await;
    assert!(bucket >= 0.0);
    let http = [
        ("method", "POST"),
        ("route", "/api/v1/meetings"),
        ("status", "201"),
    ];
    assert!(stack.metric("gc_http_requests_total", &http).await >= 1.0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn unknown_routes_and_wrong_methods_answer_with_the_envelope(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let response = stack
        .client
        .get(stack.gc_url("/api/v1/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(response).await, "NOT_FOUND");
    let response = stack
        .client
        .delete(stack.gc_url("/api/v1/meetings"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_code(response).await, "METHOD_NOT_ALLOWED");
}

#[sqlx::test(migrations = "../../migrations")]
async fn health_probes_report_live_and_ready_with_database_and_keys(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let live = stack
        .client
        .get(stack.gc_url("/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), StatusCode::OK);
    let ready = stack
        .client
        .get(stack.gc_url("/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
}

/// Polls GC's `gc_meeting_controllers` until it reads (healthy, unhealthy), for at most 20 s.
async fn wait_for_controllers(stack: &crate::helpers::TestStack, expected: (f64, f64)) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let seen = (
            stack
                .metric("gc_meeting_controllers", &[("state", "healthy")])
                .await,
            stack
                .metric("gc_meeting_controllers", &[("state", "unhealthy")])
                .await,
        );
        if seen == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gc_meeting_controllers stayed at {seen:?}, expected {expected:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_controller_gauge_follows_the_registry(pool: PgPool) {
    let mut stack = spawn_stack(pool, StackOptions::default()).await;
    wait_for_controllers(&stack, (0.0, 0.0)).await;
    let prefix = format!("t{}:", uuid::Uuid::new_v4().simple());
    stack
        .start_mc(0, &prefix, crate::helpers::McRedis::Single)
        .await;
    wait_for_controllers(&stack, (1.0, 0.0)).await;
    // A controller that stops heartbeating turns unhealthy after the timeout (3 s here).
    stack.mcs[0].take().unwrap().kill();
    wait_for_controllers(&stack, (0.0, 1.0)).await;
}

/// Every statement of the queues that share statements is measured: the creates, the meeting
/// reads and the admissions of a join each count once, whatever statement they shared.
#[sqlx::test(migrations = "../../migrations")]
async fn shared_statements_report_how_many_items_they_held(pool: PgPool) {
    use crate::meetings::{create, join, stack_with_mc};

    let (stack, _prefix, _people) = stack_with_mc(pool).await;
    let token = stack.user_token(HOST).await;
    stack.set_org_limits(100, 100).await;
    let items = |queue: &'static str| {
        let stack = &stack;
        async move {
            (
                stack
                    .metric("gc_db_batch_items_sum", &[("queue", queue)])
                    .await,
                stack
                    .metric("gc_db_batch_items_count", &[("queue", queue)])
                    .await,
            )
        }
    };
    let creating = (0..12).map(|i| {
        let body = meeting_body(&format!("Counted {i}"));
        let (stack, token) = (&stack, &token);
        async move { create(stack, token, &body).await }
    });
    let codes = futures::future::join_all(creating).await;
    let (sum, statements) = items("creates").await;
    assert_eq!(sum, 12.0, "every create counted once");
    assert!((1.0..=12.0).contains(&statements), "{statements}");
    let one_item = stack
        .metric(
            "gc_db_batch_items_bucket",
            &[("queue", "creates"), ("le", "256")],
        )
        .await;
    assert_eq!(
        one_item, statements,
        "every statement within the largest bucket"
    );

    let (status, body) = join(&stack, &codes[0], &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(items("lookups").await, (1.0, 1.0));
    assert_eq!(items("admissions").await, (1.0, 1.0));
}
