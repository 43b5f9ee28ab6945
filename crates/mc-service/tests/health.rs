//! MC's health, readiness, metrics, listener bounds and shutdown, against a real Redis.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../common/tests/support/attack.rs"]
mod attack;
#[path = "shared/jwks.rs"]
mod jwks;

use std::net::SocketAddr;
use std::time::Duration;

use common::shell::ShellSettings;
use mc_service::config::Config;
use mc_service::room::KeyPrefix;
use mc_service::startup::Application;
use mc_service::state::AppState;
use tokio::sync::oneshot;

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

struct TestApp {
    addr: SocketAddr,
    /// The ops listener (health probes and metrics).
    ops: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
    http: reqwest::Client,
}

async fn spawn_app(redis_url: String) -> TestApp {
    spawn_app_with(
        redis_url,
        ShellSettings {
            readiness_grace_secs: 0,
            ..ShellSettings::default()
        },
        axum::Router::new(),
    )
    .await
}

async fn spawn_app_with(
    redis_url: String,
    shell: ShellSettings,
    extra: axum::Router<AppState>,
) -> TestApp {
    // No GC answers here: the registration job keeps retrying in the background, which these
    // tests of MC's own HTTP surface do not depend on.
    let config = Config {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        ops_addr: "127.0.0.1:0".parse().unwrap(),
        redis_url: Some(redis_url),
        redis_cluster_urls: Vec::new(),
        room_ttl_secs: 600,
        ac_url: jwks::jwks_endpoint().await,
        jwt_issuer: "convene-ac".into(),
        client_id: "test-mc".into(),
        client_secret: Some("unused".into()),
        client_secret_file: None,
        gc_grpc_url: "http://127.0.0.1:1".into(),
        grpc_advertise_url: None,
        public_ws_url: None,
        capacity: 10,
        shell,
        signaling: Default::default(),
    };
    let app = Application::build_with(config, extra, KeyPrefix::default())
        .await
        .unwrap();
    let addr = app.http_addr();
    let ops = app.ops_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        ops,
        stop: Some(stop),
        server,
        http: common::http_client(Duration::from_secs(5)).unwrap(),
    }
}

impl TestApp {
    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("http://{}{path}", self.addr))
            .send()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn live_and_ready_answer_200_when_redis_and_keys_are_reachable() {
    let app = spawn_app(redis_url()).await;
    assert_eq!(app.get("/health/live").await.status(), 200);
    assert_eq!(app.get("/health/ready").await.status(), 200);
}

#[tokio::test]
async fn ready_answers_503_with_the_envelope_when_redis_is_down() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let app = spawn_app(format!("redis://{closed}")).await;
    assert_eq!(app.get("/health/live").await.status(), 200);
    let response = app.get("/health/ready").await;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "SERVICE_UNAVAILABLE");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_with_the_envelope() {
    let app = spawn_app(redis_url()).await;
    let response = app.get("/nope").await;
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "NOT_FOUND");

    let response = app
        .http
        .post(format!("http://{}/health/live", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
}

#[tokio::test]
async fn metrics_are_labelled_by_route_template() {
    let app = spawn_app(redis_url()).await;
    app.get("/health/live").await;
    app.get("/does/not/exist/12345").await;
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(
        text.contains(
            r#"mc_http_requests_total{method="GET",route="/health/live",status="200"} 1"#
        )
    );
    assert!(text.contains(r#"route="unmatched""#));
    assert!(!text.contains("12345"));
}

#[tokio::test]
async fn the_server_stops_gracefully_when_asked() {
    let mut app = spawn_app(redis_url()).await;
    assert_eq!(app.get("/health/live").await.status(), 200);
    app.stop.take().unwrap().send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), &mut app.server)
        .await
        .expect("server did not stop");
    result.unwrap();
}

/// MC with small bounds (1 s timeouts, 32 connections) and the routes of `attack`.
async fn spawn_hardened() -> TestApp {
    let shell = ShellSettings {
        http_max_connections: 32,
        header_read_timeout_secs: 1,
        idle_timeout_secs: 1,
        request_timeout_secs: 1,
        readiness_grace_secs: 0,
        ..ShellSettings::default()
    };
    let extra = axum::Router::new()
        .route("/test/panic", axum::routing::get(attack::panics))
        .route("/test/slow", axum::routing::get(attack::stalls))
        .route(
            "/test/json",
            axum::routing::post(
                |common::http::StrictJson(v): common::http::StrictJson<serde_json::Value>| async {
                    axum::Json(v)
                },
            ),
        );
    spawn_app_with(redis_url(), shell, extra).await
}

#[tokio::test]
async fn the_middleware_stack_answers_panics_timeouts_big_bodies_and_doubled_headers() {
    let app = spawn_hardened().await;
    attack::assert_middleware_stack(&format!("http://{}", app.addr), "/test/json", None).await;
}

#[tokio::test]
async fn idle_and_slowloris_floods_are_cut_off_while_mc_keeps_answering() {
    let app = spawn_hardened().await;
    let (statuses, fates) =
        attack::flood_while_serving(app.addr, "/health/live", 48, 16, Duration::from_secs(4)).await;
    attack::assert_flood_survived(&statuses, &fates, Duration::from_secs(3));
}

#[path = "../../common/tests/support/healthcheck.rs"]
mod healthcheck;

/// The image's health check (`mc-service healthcheck`) against the real service.
#[tokio::test]
async fn the_healthcheck_subcommand_probes_the_running_service() {
    let app = spawn_app(redis_url()).await;
    healthcheck::assert_probes(
        env!("CARGO_BIN_EXE_mc-service"),
        "MC_OPS_ADDR",
        app.ops.port(),
    )
    .await;
}
