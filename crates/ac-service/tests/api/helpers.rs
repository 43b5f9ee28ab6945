//! Spawning AC for a test, and the requests most tests need.

use std::time::Duration;

use ac_service::config::{Config, MasterKey, Safeguards};
use ac_service::domain::password::Hasher;
use ac_service::seed::{self, SeedFile};
use ac_service::startup::Application;
use common::jwks::{JwksVerifier, VerifierConfig};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ADMIN: (&str, &str) = ("test-admin", "test-admin-secret-0001");
pub const GC: (&str, &str) = ("test-gc", "test-gc-secret-000001");
pub const MC: (&str, &str) = ("test-mc", "test-mc-secret-000001");
pub const HOST_EMAIL: &str = "host@acme.test";
pub const GUEST_EMAIL: &str = "guest@acme.test";
pub const PASSWORD: &str = "correct-horse-battery";

/// Configuration for a test: port 0, no JWKS cache (so database changes show at once), and
/// a fresh master key.
pub fn test_config() -> Config {
    let mut config = Config::new("postgres://unused".into(), MasterKey::generate().unwrap());
    config.http_addr = "127.0.0.1:0".parse().unwrap();
    config.ops_addr = "127.0.0.1:0".parse().unwrap();
    config.db_max_connections = 5;
    config.jwks_cache_ttl_ms = 0;
    config
}

/// The safeguards of a test: keys activate at once (as before pre-publication), so a rotation's
/// effect is visible without waiting. Tests of the activation delay set their own.
pub fn test_safeguards() -> Safeguards {
    Safeguards {
        // The per-client-id limit is opt-in; the tests exercise it.
        client_max_failures_per_client: Some(5),
        key_activation_delay_secs: 0,
        ..Safeguards::default()
    }
}

pub struct TestApp {
    pub base: String,
    /// The ops listener (health probes and metrics).
    pub ops: std::net::SocketAddr,
    pub client: Client,
    /// The app's hashing capacity, for tests that exhaust it.
    pub hasher: Hasher,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub async fn spawn_app(pool: PgPool) -> TestApp {
    spawn_app_with(pool, test_config()).await
}

pub async fn spawn_app_with(pool: PgPool, config: Config) -> TestApp {
    spawn_app_with_safeguards(pool, config, test_safeguards()).await
}

pub async fn spawn_app_with_safeguards(
    pool: PgPool,
    config: Config,
    safeguards: Safeguards,
) -> TestApp {
    let app = Application::build_with(config, safeguards, pool)
        .await
        .unwrap();
    let addr = app.http_addr();
    let ops = app.ops_addr();
    let hasher = app.hasher();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    TestApp {
        base: format!("http://{addr}"),
        ops,
        client: common::http_client(Duration::from_secs(30)).unwrap(),
        hasher,
        stop: Some(stop),
        server: Some(server),
    }
}

/// Creates the clients and users most tests use.
pub async fn seed_basics(pool: &PgPool) {
    let file: SeedFile = serde_json::from_value(json!({
        "service_clients": [
            {"client_id": ADMIN.0, "client_secret": ADMIN.1, "service_type": "admin", "scopes": ["admin"]},
            {"client_id": GC.0, "client_secret": GC.1, "service_type": "global-controller",
             "scopes": ["internal:meeting-token"]},
            {"client_id": MC.0, "client_secret": MC.1, "service_type": "meeting-controller", "scopes": []}
        ],
        "orgs": [{"slug": "acme", "name": "Acme", "users": [
            {"email": HOST_EMAIL, "password": PASSWORD, "display_name": "Acme Host", "roles": ["user"]},
            {"email": GUEST_EMAIL, "password": PASSWORD, "display_name": "Acme Guest", "roles": ["user"]}
        ]}]
    }))
    .unwrap();
    seed::apply(pool, &file).await.unwrap();
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        let mut request = self.client.post(self.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    pub async fn patch_json(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        let mut request = self.client.patch(self.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post_json(
            "/api/v1/auth/user/token",
            None,
            &json!({"email": email, "password": password}),
        )
        .await
    }

    pub async fn user_token(&self, email: &str, password: &str) -> String {
        let response = self.login(email, password).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// A client-credentials request through HTTP Basic with a form body.
    pub async fn request_service_token(&self, client: (&str, &str)) -> Response {
        self.client
            .post(self.url("/api/v1/auth/service/token"))
            .basic_auth(client.0, Some(client.1))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
    }

    /// A service token through HTTP Basic.
    pub async fn service_token(&self, client: (&str, &str)) -> String {
        let response = self.request_service_token(client).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn jwks(&self) -> Value {
        let response = self
            .client
            .get(self.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// The verifier GC and MC use, pointed at this AC.
    pub fn verifier(&self) -> JwksVerifier {
        JwksVerifier::new(VerifierConfig::new(&self.base, "convene-ac")).unwrap()
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
    }
}

/// The `kid` header of a token.
pub fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

/// The value of one series of AC's `/metrics` (0 when it does not exist yet). `labels` must be
/// given in the order the exporter prints them (alphabetical).
pub async fn metric(app: &TestApp, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = if labels.is_empty() {
        name.to_owned()
    } else {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        format!("{name}{{{}}}", labels.join(","))
    };
    text.lines()
        .find_map(|line| line.strip_prefix(&series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

/// The error code of an envelope body.
pub async fn error_code(response: Response) -> String {
    let body: Value = response.json().await.unwrap();
    body["error"]["code"].as_str().unwrap().to_owned()
}

/// The `error` of an RFC 6749 error body (the service-token endpoint's), after checking that
/// the body has that shape: a string `error` and a string `error_description`.
pub async fn oauth_error(response: Response) -> String {
    let body: Value = response.json().await.unwrap();
    assert!(body["error_description"].is_string(), "{body}");
    body["error"].as_str().unwrap().to_owned()
}
