//! GC's listener and middleware stack under a hostile client: the same stack and bounds as
//! every service (`common::shell`, `common::http::layers`), checked through GC itself.

#[path = "../../../common/tests/support/attack.rs"]
mod attack;

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use common::shell::ShellSettings;
use reqwest::StatusCode;
use sqlx::PgPool;

use crate::helpers::{HOST, StackOptions, TestStack, error_code, spawn_stack};

/// GC with small bounds (1 s timeouts, 32 connections) and the routes of `attack`.
async fn spawn(pool: PgPool) -> TestStack {
    let shell = ShellSettings {
        http_max_connections: 32,
        header_read_timeout_secs: 1,
        idle_timeout_secs: 1,
        request_timeout_secs: 1,
        readiness_grace_secs: 0,
        ..ShellSettings::default()
    };
    let extra = Router::new()
        .route("/test/panic", get(attack::panics))
        .route("/test/slow", get(attack::stalls));
    spawn_stack(
        pool,
        StackOptions::default().with_shell(shell).with_routes(extra),
    )
    .await
}

fn addr(stack: &TestStack) -> std::net::SocketAddr {
    stack.gc.base.trim_start_matches("http://").parse().unwrap()
}

#[sqlx::test(migrations = "../../migrations")]
async fn gc_answers_panics_timeouts_big_bodies_and_doubled_headers_with_envelopes(pool: PgPool) {
    let stack = spawn(pool).await;
    let token = stack.user_token(HOST).await;
    attack::assert_middleware_stack(&stack.gc.base, "/api/v1/meetings", Some(&token)).await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn gc_cuts_off_idle_and_slowloris_floods_and_keeps_answering(pool: PgPool) {
    let stack = spawn(pool).await;
    let (statuses, fates) =
        attack::flood_while_serving(addr(&stack), "/health/live", 48, 16, Duration::from_secs(4))
            .await;
    attack::assert_flood_survived(&statuses, &fates, Duration::from_secs(3));
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_second_content_type_is_refused_before_the_body_is_read(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let token = stack.user_token(HOST).await;
    let response = stack
        .client
        .post(stack.gc_url("/api/v1/meetings"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .header("content-type", "text/plain")
        .body(r#"{"display_name":"Doubled"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(response).await, "BAD_REQUEST");
    assert_eq!(stack.meeting_count().await, 0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn oversized_request_heads_get_envelopes_up_to_the_listeners_buffer(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let addr = addr(&stack);
    let request = |target: &str, header: &str| {
        format!("GET {target} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n{header}\r\n\r\n")
    };

    let long_target = format!("/health/live?q={}", "a".repeat(10 * 1024));
    let (status, body) = attack::raw_exchange(addr, request(&long_target, "x-a: b").as_bytes())
        .await
        .unwrap();
    assert_eq!(status, 414);
    assert!(body.contains(r#""code":"URI_TOO_LONG""#), "{body}");

    let big_header = format!("x-big: {}", "b".repeat(40 * 1024));
    let (status, body) =
        attack::raw_exchange(addr, request("/health/live", &big_header).as_bytes())
            .await
            .unwrap();
    assert_eq!(status, 431);
    assert!(
        body.contains(r#""code":"REQUEST_HEADERS_TOO_LARGE""#),
        "{body}"
    );

    let many: String = (0..110).map(|i| format!("x-h{i}: v\r\n")).collect();
    let (status, body) =
        attack::raw_exchange(addr, request("/health/live", many.trim_end()).as_bytes())
            .await
            .unwrap();
    assert_eq!(status, 431);
    assert!(
        body.contains(r#""code":"REQUEST_HEADERS_TOO_LARGE""#),
        "{body}"
    );

    // Beyond the listener's buffer hyper answers by itself, without a body, and GC lives on.
    let huge_header = format!("x-huge: {}", "c".repeat(100 * 1024));
    let answer = attack::raw_exchange(addr, request("/health/live", &huge_header).as_bytes()).await;
    assert_eq!(answer.map(|(status, _)| status), Some(431));
    assert_eq!(
        attack::get_status(addr, "/health/live", Duration::from_secs(2)).await,
        Some(200)
    );
}

/// The ops listener serves the probes and `/metrics` (and nothing else) while a flood of
/// silent connections holds every place of the public HTTP listener.
#[sqlx::test(migrations = "../../migrations")]
async fn the_ops_port_answers_probes_and_metrics_while_the_http_listener_is_full(pool: PgPool) {
    let shell = ShellSettings {
        http_max_connections: 8,
        // Long enough that nothing of this test is cut off by time.
        header_read_timeout_secs: 30,
        idle_timeout_secs: 30,
        readiness_grace_secs: 0,
        ..ShellSettings::default()
    };
    let stack = spawn_stack(pool, StackOptions::default().with_shell(shell)).await;
    let _flood = attack::idle_sockets(addr(&stack), 8, Duration::from_secs(20)).await;
    // Behind the eight in the accept queue: it meets a full listener.
    assert_eq!(
        attack::get_status(addr(&stack), "/health/live", Duration::from_secs(2)).await,
        Some(503)
    );

    let ops = format!("http://{}", stack.gc_ops);
    let get = |path: &str| stack.client.get(format!("{ops}{path}")).send();
    assert_eq!(get("/health/live").await.unwrap().status(), StatusCode::OK);
    assert_eq!(get("/health/ready").await.unwrap().status(), StatusCode::OK);
    let metrics = get("/metrics").await.unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    let text = metrics.text().await.unwrap();
    assert!(
        text.lines()
            .any(|line| line.starts_with("gc_connections_refused_total{")
                && line.contains(r#"listener="http""#)
                && line.contains(r#"reason="listener_full""#)
                && !line.ends_with(" 0")),
        "{text}"
    );
    let api = get("/api/v1/meetings/abcdefghijkl").await.unwrap();
    assert_eq!(
        api.status(),
        StatusCode::NOT_FOUND,
        "only the probes and metrics"
    );
    assert_eq!(error_code(api).await, "NOT_FOUND");
}

#[path = "../../../common/tests/support/healthcheck.rs"]
mod healthcheck;

/// The image's health check (`gc-service healthcheck`) against the real service.
#[sqlx::test(migrations = "../../migrations")]
async fn the_healthcheck_subcommand_probes_the_running_service(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    healthcheck::assert_probes(
        env!("CARGO_BIN_EXE_gc-service"),
        "GC_OPS_ADDR",
        stack.gc_ops.port(),
    )
    .await;
}

/// `gc-service` started with MIGRATE_ON_START=false on an empty database (no migration job has
/// run) waits its bound, then stops with a message that says what to do, instead of serving
/// against a schema it does not know.
#[sqlx::test(migrations = false)]
async fn without_the_migration_job_serve_gives_up_with_a_clear_message(pool: PgPool) {
    let database = pool.connect_options().get_database().unwrap().to_owned();
    let base = std::env::var("DATABASE_URL").unwrap();
    let url = format!("{}/{database}", base.rsplit_once('/').unwrap().0);
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_gc-service"))
        .env("DATABASE_URL", url)
        .env("MIGRATE_ON_START", "false")
        .env("MIGRATION_WAIT_SECS", "1")
        .env("GC_HTTP_ADDR", "127.0.0.1:0")
        .env("GC_GRPC_ADDR", "127.0.0.1:0")
        .env("GC_OPS_ADDR", "127.0.0.1:0")
        .env("GC_CLIENT_ID", "convene-gc")
        .env("GC_CLIENT_SECRET", "unused")
        .env("AC_URL", "http://127.0.0.1:9")
        .env("GC_PUBLIC_BASE_URL", "http://localhost")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("still not applied"), "{stderr}");
    // Nothing was migrated behind the job's back.
    let table: Option<String> = sqlx::query_scalar("select to_regclass('_sqlx_migrations')::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(table, None);
}
