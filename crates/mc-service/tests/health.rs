//! MC's health, readiness, metrics and shutdown, against a real Redis.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Duration;

use common::shell::ShellSettings;
use mc_service::config::Config;
use mc_service::startup::Application;
use tokio::sync::oneshot;

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Serves a JWKS with one Ed25519 key, standing in for AC's key endpoint.
async fn jwks_endpoint() -> String {
    let app = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(|| async {
            axum::Json(serde_json::json!({"keys": [{
                "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": "k1",
                "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
            }]}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

struct TestApp {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    http: reqwest::Client,
}

async fn spawn_app(redis_url: String) -> TestApp {
    let config = Config {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        redis_url,
        ac_url: jwks_endpoint().await,
        jwt_issuer: "convene-ac".into(),
        shell: ShellSettings {
            readiness_grace_secs: 0,
            ..ShellSettings::default()
        },
    };
    let app = Application::build(config).await.unwrap();
    let addr = app.http_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
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
    assert!(result.unwrap().is_ok());
}
