//! A real AC and a real GC on one test database, the tokens tests need, and readers for the
//! database and `/metrics`.

use std::time::Duration;

use ac_service::config::MasterKey;
use ac_service::seed::{self, SeedFile};
use axum::Router;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::shell::ShellSettings;
use gc_service::config::WebSettings;
use gc_service::config::{Config, LifecycleSettings};
use gc_service::domain::events::MeetingEvent;
use gc_service::startup::Application;
use gc_service::state::AppState;
use reqwest::{Client, Response, StatusCode};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::oneshot;
use uuid::Uuid;

pub const PASSWORD: &str = "correct-horse-battery";
/// Role `user`.
pub const HOST: &str = "host@acme.test";
/// Role `user`, another member of the same org.
pub const MEMBER: &str = "member@acme.test";
/// No role at all: may sign in, may not create meetings.
pub const NO_ROLE: &str = "norole@acme.test";
/// Role `org_admin` only.
pub const ORG_ADMIN: &str = "orgadmin@acme.test";
pub const GC_CLIENT: (&str, &str) = ("test-gc", "test-gc-secret-000001");
/// An `admin` service credential with the `admin` scope (AC's administration, GC's webhooks).
pub const ADMIN_CLIENT: (&str, &str) = ("test-admin", "test-admin-secret-000001");
/// Meeting controllers' credentials; a controller's id is its client id.
pub const MC_CLIENTS: [(&str, &str); 2] = [
    ("test-mc-1", "test-mc-1-secret-00001"),
    ("test-mc-2", "test-mc-2-secret-00001"),
];
pub const PUBLIC_BASE_URL: &str = "https://meet.example.test";
pub const ISSUER: &str = "convene-ac";

/// A server task that stops when this is dropped.
pub struct Server {
    pub base: String,
    _stop: oneshot::Sender<()>,
}

async fn serve<F>(run: impl FnOnce(oneshot::Receiver<()>) -> F) -> oneshot::Sender<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(run(stopped));
    stop
}

pub struct TestStack {
    pub ac: Server,
    /// AC's configuration (its master key opens the test database's signing keys).
    pub ac_config: ac_service::config::Config,
    pub gc: Server,
    /// GC's gRPC API, `http://127.0.0.1:<port>`.
    pub gc_grpc: String,
    /// GC's ops listener (health probes and metrics).
    pub gc_ops: std::net::SocketAddr,
    /// Meeting controllers started with [`TestStack::start_mc`], by index.
    pub mcs: Vec<Option<McServer>>,
    pub client: Client,
    pub pool: PgPool,
    pub org_id: Uuid,
    /// Between GC and AC, with [`StackOptions::with_ac_proxy`]: the test breaks GC's calls to
    /// AC through it (meeting tokens, service tokens, the keys). Tests and controllers reach
    /// AC directly.
    pub ac_proxy: Option<fault_proxy::FaultProxy>,
}

/// How [`spawn_stack`] sets GC up: the test defaults ([`test_shell_settings`],
/// [`test_lifecycle`], no web client, GC's routes alone) with what a test changes, e.g.
/// `StackOptions::default().with_lifecycle(..)`.
pub struct StackOptions {
    shell: ShellSettings,
    lifecycle: LifecycleSettings,
    web: WebSettings,
    extra_routes: Router<AppState>,
    gc_pool: Option<PgPool>,
    ac_proxy: bool,
    webhooks: gc_service::config::WebhookSettings,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            shell: test_shell_settings(),
            lifecycle: test_lifecycle(),
            web: WebSettings::default(),
            extra_routes: Router::new(),
            gc_pool: None,
            ac_proxy: false,
            webhooks: test_webhooks(),
        }
    }
}

impl StackOptions {
    /// GC's shell settings (listener bounds, timeouts, the stop's grace).
    pub fn with_shell(mut self, shell: ShellSettings) -> Self {
        self.shell = shell;
        self
    }

    /// GC's lifecycle settings (heartbeats, timeouts, budgets).
    pub fn with_lifecycle(mut self, lifecycle: LifecycleSettings) -> Self {
        self.lifecycle = lifecycle;
        self
    }

    /// The web client GC serves (`GC_WEB_DIR` and the rest).
    pub fn with_webhooks(mut self, webhooks: gc_service::config::WebhookSettings) -> Self {
        self.webhooks = webhooks;
        self
    }

    pub fn with_web(mut self, web: WebSettings) -> Self {
        self.web = web;
        self
    }

    /// The pool GC runs on, instead of the test's (one through a fault proxy); AC and the
    /// test's own reads keep the test's pool.
    pub fn with_gc_pool(mut self, pool: PgPool) -> Self {
        self.gc_pool = Some(pool);
        self
    }

    /// GC reaches AC through a fault proxy ([`TestStack::ac_proxy`]).
    pub fn with_ac_proxy(mut self) -> Self {
        self.ac_proxy = true;
        self
    }

    /// Routes GC serves beside its own.
    pub fn with_routes(mut self, extra_routes: Router<AppState>) -> Self {
        self.extra_routes = extra_routes;
        self
    }
}

/// Lifecycle settings for tests: controllers heartbeat every second and are unhealthy after
/// three silent seconds.
pub fn test_lifecycle() -> LifecycleSettings {
    LifecycleSettings {
        heartbeat_interval_secs: 1,
        heartbeat_timeout_secs: 3,
        // The tests race joins and leaves of the same user by the hundred; the budget that
        // stops that in production is tested on its own (`races`).
        join_leave_burst: 100_000,
        ..LifecycleSettings::default()
    }
}

/// Seeds an org (`acme`, default limits) with the users above and the services' clients, then
/// starts AC and a GC that trusts it, set up as `options` say. Meeting controllers are started
/// on demand ([`TestStack::start_mc`]).
pub async fn spawn_stack(pool: PgPool, options: StackOptions) -> TestStack {
    let StackOptions {
        shell,
        lifecycle,
        web,
        extra_routes,
        gc_pool,
        ac_proxy,
        webhooks,
    } = options;
    // The process's one recorder gets GC's buckets only if GC installs it before AC does.
    gc_service::metrics::install().unwrap();
    let user = |email: &str, roles: Value| json!({"email": email, "password": PASSWORD, "display_name": "Someone", "roles": roles});
    let file: SeedFile = serde_json::from_value(json!({
        "service_clients": [
            {"client_id": GC_CLIENT.0, "client_secret": GC_CLIENT.1,
             "service_type": "global-controller", "scopes": ["internal:meeting-token", "internal:mc"]},
            {"client_id": ADMIN_CLIENT.0, "client_secret": ADMIN_CLIENT.1,
             "service_type": "admin", "scopes": ["admin"]},
            {"client_id": MC_CLIENTS[0].0, "client_secret": MC_CLIENTS[0].1,
             "service_type": "meeting-controller", "scopes": ["internal:gc"]},
            {"client_id": MC_CLIENTS[1].0, "client_secret": MC_CLIENTS[1].1,
             "service_type": "meeting-controller", "scopes": ["internal:gc"]}],
        "orgs": [{"slug": "acme", "name": "Acme", "users": [
            user(HOST, json!(["user"])),
            user(MEMBER, json!(["user"])),
            user(NO_ROLE, json!([])),
            user(ORG_ADMIN, json!(["org_admin"])),
        ]}]
    }))
    .unwrap();
    seed::apply(&pool, &file).await.unwrap();
    let org_id = sqlx::query_scalar("select id from organizations where slug = 'acme'")
        .fetch_one(&pool)
        .await
        .unwrap();

    let ac_config = ac_config();
    let ac_app = ac_service::startup::Application::build(ac_config.clone(), pool.clone())
        .await
        .unwrap();
    let ac_app_addr = ac_app.http_addr();
    let ac_base = format!("http://{ac_app_addr}");
    let ac_stop = serve(|stopped| {
        ac_app.run_until_stopped(async move {
            let _ = stopped.await;
        })
    })
    .await;

    let ac_proxy = match ac_proxy {
        true => Some(fault_proxy::FaultProxy::start(ac_app_addr).await.unwrap()),
        false => None,
    };
    let gc_sees_ac = match &ac_proxy {
        Some(proxy) => format!("http://{}", proxy.addr()),
        None => ac_base.clone(),
    };
    let config = Config {
        shell,
        lifecycle,
        web,
        webhooks,
        ..gc_config(&gc_sees_ac)
    };
    let gc_pool = gc_pool.unwrap_or_else(|| pool.clone());
    let gc_app = Application::build_with(config, gc_pool, extra_routes)
        .await
        .unwrap();
    let gc_base = format!("http://{}", gc_app.http_addr());
    let gc_grpc = format!("http://{}", gc_app.grpc_addr());
    let gc_ops = gc_app.ops_addr();
    let gc_stop = serve(|stopped| {
        gc_app.run_until_stopped(async move {
            let _ = stopped.await;
        })
    })
    .await;

    TestStack {
        ac: Server {
            base: ac_base,
            _stop: ac_stop,
        },
        ac_config,
        gc: Server {
            base: gc_base,
            _stop: gc_stop,
        },
        gc_grpc,
        gc_ops,
        mcs: Vec::new(),
        client: common::http_client(Duration::from_secs(30)).unwrap(),
        pool,
        org_id,
        ac_proxy,
    }
}

fn ac_config() -> ac_service::config::Config {
    let mut key = [0u8; 32];
    ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut key).unwrap();
    ac_service::config::Config {
        database_url: "postgres://unused".into(),
        db_max_connections: 5,
        http_addr: "127.0.0.1:0".parse().unwrap(),
        ops_addr: "127.0.0.1:0".parse().unwrap(),
        jwt_issuer: ISSUER.into(),
        master_key: MasterKey::from_bytes(key.to_vec()).unwrap(),
        user_token_ttl_secs: 3600,
        service_token_ttl_secs: 3600,
        meeting_token_ttl_secs: 900,
        key_rotation_interval_secs: 30 * 24 * 3600,
        key_refresh_interval_secs: 30,
        // No JWKS cache, so a key a test adds to the database is published at once.
        jwks_cache_ttl_ms: 0,
        login_max_failures_per_account: 1000,
        login_max_failures_per_ip: 1000,
        login_failure_window_secs: 900,
        trust_forwarded_for: false,
        // The pages GC serves in the web tests sign in from this origin.
        cors_allowed_origins: vec![WEB_ORIGIN.into()],
    }
}

/// The origin AC lets sign in from a browser in these tests.
pub const WEB_ORIGIN: &str = "http://meet.test";

/// The shell's defaults, but a stop that does not wait for load balancers.
pub fn test_shell_settings() -> ShellSettings {
    ShellSettings {
        readiness_grace_secs: 0,
        ..ShellSettings::default()
    }
}

fn gc_config(ac_base: &str) -> Config {
    Config {
        database_url: "postgres://unused".into(),
        db_max_connections: 5,
        http_addr: "127.0.0.1:0".parse().unwrap(),
        ops_addr: "127.0.0.1:0".parse().unwrap(),
        ac_url: ac_base.to_owned(),
        jwt_issuer: ISSUER.into(),
        public_base_url: PUBLIC_BASE_URL.into(),
        trust_forwarded_for: false,
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        client_id: GC_CLIENT.0.into(),
        client_secret: GC_CLIENT.1.into(),
        shell: test_shell_settings(),
        lifecycle: test_lifecycle(),
        web: Default::default(),
        webhooks: test_webhooks(),
    }
}

/// Webhooks on (a fresh key), with local receivers allowed, and retries fast enough to watch.
pub fn test_webhooks() -> gc_service::config::WebhookSettings {
    let mut key = [0u8; 32];
    ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut key).unwrap();
    gc_service::config::WebhookSettings {
        key: Some(gc_service::config::WebhookKey::from_bytes(key.to_vec()).unwrap()),
        allow_private_targets: true,
        timeout_secs: 2,
        retry_base_ms: 50,
        retry_max_secs: 1,
        poll_interval_ms: 100,
        ..Default::default()
    }
}

/// A meeting controller started by [`TestStack::start_mc`] (in this process, on a runtime of its
/// own) or [`TestStack::start_mc_process`] (a process of its own). Dropping it stops it: the
/// in-process one gracefully, the process with SIGKILL.
pub struct McServer {
    /// Its gRPC API, `http://127.0.0.1:<port>`.
    pub grpc: String,
    running: Running,
}

enum Running {
    InProcess {
        stop: Option<oneshot::Sender<()>>,
        /// Resolves once the controller has stopped.
        stopped: Option<oneshot::Receiver<()>>,
        runtime: Option<tokio::runtime::Runtime>,
    },
    /// The child keeps running while its stdin is open: it exits by itself if this test
    /// process dies without killing it.
    Process {
        child: std::process::Child,
        _stdin: std::process::ChildStdin,
    },
}

impl McServer {
    /// Stops an in-process controller as SIGTERM does (readiness off, sockets closed with
    /// "going away", jobs stopped); whether it stopped within 20 s. (The system tests use it;
    /// GC's tests do not, hence the allowance.)
    #[allow(dead_code)]
    pub async fn stop(mut self) -> bool {
        let Running::InProcess { stop, stopped, .. } = &mut self.running else {
            panic!("only an in-process controller stops gracefully here");
        };
        if let Some(stop) = stop.take() {
            let _ = stop.send(());
        }
        let Some(stopped) = stopped.take() else {
            return false;
        };
        tokio::time::timeout(Duration::from_secs(20), stopped)
            .await
            .is_ok()
    }

    /// Ends the controller without a word to anyone. A process gets SIGKILL, and this waits
    /// until the kernel says it died of it; an in-process controller loses its runtime, which
    /// ends every task and socket of it at once.
    pub fn kill(mut self) {
        match &mut self.running {
            Running::InProcess { stop, runtime, .. } => {
                stop.take();
                if let Some(runtime) = runtime.take() {
                    runtime.shutdown_background();
                }
            }
            Running::Process { child, .. } => {
                use std::os::unix::process::ExitStatusExt;
                child.kill().unwrap();
                let status = child.wait().unwrap();
                assert_eq!(status.signal(), Some(9), "the controller died of SIGKILL");
            }
        }
    }
}

impl Drop for McServer {
    fn drop(&mut self) {
        match &mut self.running {
            Running::InProcess { stop, runtime, .. } => {
                if let Some(stop) = stop.take() {
                    let _ = stop.send(());
                }
                if let Some(runtime) = runtime.take() {
                    runtime.shutdown_background();
                }
            }
            Running::Process { child, .. } => {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// What [`meeting_controller_process`] prints once it serves: its gRPC URL follows.
const MC_PROCESS_READY: &str = "convene-test-mc-grpc=";
/// The environment variable that tells [`meeting_controller_process`] it is the child.
const MC_PROCESS_PREFIX_ENV: &str = "CONVENE_TEST_MC_KEY_PREFIX";

/// Not a test but the body of the process [`TestStack::start_mc_process`] starts: this test
/// binary again, running only this function. Without the variable that marks the child it
/// does nothing. It reads MC's configuration from the environment as the real binary does.
#[test]
#[ignore = "the entry point of a child process, started by TestStack::start_mc_process"]
fn meeting_controller_process() {
    use clap::Parser;
    use std::io::{Read, Write};

    let Ok(prefix) = std::env::var(MC_PROCESS_PREFIX_ENV) else {
        return;
    };
    // The parent holds our stdin; when it is gone, so are we.
    std::thread::spawn(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        std::process::exit(1);
    });
    let mut config = mc_service::config::Config::try_parse_from(["mc-service"]).unwrap();
    config.shell = test_shell_settings();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let prefix = mc_service::room::KeyPrefix::parse(&prefix).unwrap();
        let app = mc_service::startup::Application::build_with(config, Router::new(), prefix)
            .await
            .unwrap();
        let mut out = std::io::stdout().lock();
        writeln!(out, "{MC_PROCESS_READY}http://{}", app.grpc_addr()).unwrap();
        out.flush().unwrap();
        drop(out);
        app.run_until_stopped(std::future::pending::<()>()).await;
    });
}

/// The Redis MCs of this test write to.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

impl TestStack {
    /// Starts meeting controller `index` (0 or 1) with room keys under `prefix` (one per test,
    /// shared by the test's controllers so one can take over the other's rooms), and waits
    /// until it has registered with GC.
    pub async fn start_mc(&mut self, index: usize, prefix: &str, redis: McRedis) -> &McServer {
        let signaling = mc_service::config::SignalingArgs::default();
        self.start_mc_with(index, prefix, redis, signaling).await
    }

    /// [`TestStack::start_mc`] with the signaling settings chosen by the test.
    pub async fn start_mc_with(
        &mut self,
        index: usize,
        prefix: &str,
        redis: McRedis,
        signaling: mc_service::config::SignalingArgs,
    ) -> &McServer {
        let (id, secret) = MC_CLIENTS[index];
        let (redis_url, redis_cluster_urls) = match redis {
            McRedis::Single => (Some(redis_url()), Vec::new()),
            McRedis::Cluster(urls) => (None, urls),
        };
        let config = mc_service::config::Config {
            http_addr: "127.0.0.1:0".parse().unwrap(),
            grpc_addr: "127.0.0.1:0".parse().unwrap(),
            ops_addr: "127.0.0.1:0".parse().unwrap(),
            redis_url,
            redis_cluster_urls,
            room_ttl_secs: 600,
            ac_url: self.ac.base.clone(),
            jwt_issuer: ISSUER.into(),
            client_id: id.into(),
            client_secret: Some(secret.into()),
            client_secret_file: None,
            gc_grpc_url: self.gc_grpc.clone(),
            grpc_advertise_url: None,
            public_ws_url: None,
            capacity: 100,
            shell: test_shell_settings(),
            signaling,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let prefix = mc_service::room::KeyPrefix::parse(prefix).unwrap();
        let app = runtime
            .spawn(mc_service::startup::Application::build_with(
                config,
                Router::new(),
                prefix,
            ))
            .await
            .unwrap()
            .unwrap();
        let grpc = format!("http://{}", app.grpc_addr());
        let (stop, stop_signal) = oneshot::channel::<()>();
        let (done, stopped) = oneshot::channel::<()>();
        runtime.spawn(async move {
            app.run_until_stopped(async move {
                let _ = stop_signal.await;
            })
            .await;
            let _ = done.send(());
        });
        self.wait_registered(id).await;
        self.put_mc(
            index,
            McServer {
                grpc,
                running: Running::InProcess {
                    stop: Some(stop),
                    stopped: Some(stopped),
                    runtime: Some(runtime),
                },
            },
        )
    }

    /// Starts meeting controller `index` as [`TestStack::start_mc`] does, but as a process of
    /// its own (this test binary running [`meeting_controller_process`]), so that
    /// [`McServer::kill`] is a real SIGKILL. Single Redis only.
    pub async fn start_mc_process(&mut self, index: usize, prefix: &str) -> &McServer {
        use std::io::BufRead;
        use std::process::{Command, Stdio};

        let (id, secret) = MC_CLIENTS[index];
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "helpers::meeting_controller_process",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(MC_PROCESS_PREFIX_ENV, prefix)
            .env("MC_HTTP_ADDR", "127.0.0.1:0")
            .env("MC_GRPC_ADDR", "127.0.0.1:0")
            .env("MC_OPS_ADDR", "127.0.0.1:0")
            .env("REDIS_URL", redis_url())
            .env_remove("REDIS_CLUSTER_URLS")
            .env("ROOM_TTL_SECS", "600")
            .env("AC_URL", &self.ac.base)
            .env("JWT_ISSUER", ISSUER)
            .env("MC_CLIENT_ID", id)
            .env("MC_CLIENT_SECRET", secret)
            .env("GC_GRPC_URL", &self.gc_grpc)
            .env_remove("MC_GRPC_ADVERTISE_URL")
            .env_remove("MC_PUBLIC_WS_URL")
            .env("MC_CAPACITY", "100")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        // Read the child's stdout to its end on a thread of its own, handing over the URL.
        let (ready, grpc) = oneshot::channel::<String>();
        std::thread::spawn(move || {
            let mut ready = Some(ready);
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest's "test … ... " may open the same line.
                if let Some((_, url)) = line.split_once(MC_PROCESS_READY)
                    && let Some(ready) = ready.take()
                {
                    let _ = ready.send(url.to_owned());
                }
            }
        });
        let grpc = match tokio::time::timeout(Duration::from_secs(30), grpc).await {
            Ok(Ok(grpc)) => grpc,
            outcome => {
                let _ = child.kill();
                panic!("{id} as a process never served: {outcome:?}");
            }
        };
        let server = McServer {
            grpc,
            running: Running::Process {
                child,
                _stdin: stdin,
            },
        };
        self.wait_registered(id).await;
        self.put_mc(index, server)
    }

    fn put_mc(&mut self, index: usize, server: McServer) -> &McServer {
        while self.mcs.len() <= index {
            self.mcs.push(None);
        }
        self.mcs[index] = Some(server);
        self.mcs[index].as_ref().unwrap()
    }

    /// Waits (bounded) until controller `id` has registered with GC.
    pub async fn wait_registered(&self, id: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let registered: bool = sqlx::query_scalar(
                "select exists (select 1 from meeting_controllers
                                where id = $1 and last_heartbeat_at > now() - interval '2 seconds')",
            )
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .unwrap();
            if registered {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{id} never registered"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn gc_url(&self, path: &str) -> String {
        format!("{}{}", self.gc.base, path)
    }

    /// A user token from AC's sign-in endpoint.
    pub async fn user_token(&self, email: &str) -> String {
        let response = self
            .client
            .post(format!("{}/api/v1/auth/user/token", self.ac.base))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// A service token from AC's client-credentials endpoint.
    pub async fn service_token(&self, client: (&str, &str)) -> String {
        let response = self
            .client
            .post(format!("{}/api/v1/auth/service/token", self.ac.base))
            .basic_auth(client.0, Some(client.1))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// `POST /api/v1/meetings` with a JSON body.
    pub async fn create(&self, token: &str, body: &Value) -> Response {
        self.create_with_key(token, body, None).await
    }

    pub async fn create_with_key(&self, token: &str, body: &Value, key: Option<&str>) -> Response {
        let mut request = self
            .client
            .post(self.gc_url("/api/v1/meetings"))
            .bearer_auth(token)
            .json(body);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        request.send().await.unwrap()
    }

    pub async fn user_id(&self, email: &str) -> Uuid {
        sqlx::query_scalar("select id from users where email = $1")
            .bind(email)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    pub async fn set_org_limits(&self, max_meetings: i32, max_participants: i32) {
        sqlx::query(
            "update organizations
             set max_concurrent_meetings = $2, max_participants_per_meeting = $3
             where id = $1",
        )
        .bind(self.org_id)
        .bind(max_meetings)
        .bind(max_participants)
        .execute(&self.pool)
        .await
        .unwrap();
    }

    /// Checks the slot invariants of the org: no slot over its cap, and the caps summing to
    /// the limit (or, while over a lowered limit, to the live meetings, the excess recorded).
    /// Returns (live meetings, limit).
    pub async fn check_slots(&self) -> (i64, i64) {
        let (limit, excess): (i32, i32) = sqlx::query_as(
            "select max_concurrent_meetings, meeting_slot_excess from organizations where id = $1",
        )
        .bind(self.org_id)
        .fetch_one(&self.pool)
        .await
        .unwrap();
        let (used, cap, over): (i64, i64, i64) = sqlx::query_as(
            "select coalesce(sum(used), 0), coalesce(sum(cap), 0),
                    count(*) filter (where used > cap)
             from org_meeting_slots where org_id = $1",
        )
        .bind(self.org_id)
        .fetch_one(&self.pool)
        .await
        .unwrap();
        let live: i64 = sqlx::query_scalar(
            "select count(*) from meetings where org_id = $1 and status <> 'ended'",
        )
        .bind(self.org_id)
        .fetch_one(&self.pool)
        .await
        .unwrap();
        assert_eq!(over, 0, "no slot holds more than its cap");
        assert_eq!(used, live, "the slots count every live meeting");
        assert_eq!(cap, i64::from(limit).max(used), "the caps sum to the limit");
        assert_eq!(i64::from(excess), (used - i64::from(limit)).max(0));
        (live, i64::from(limit))
    }

    pub async fn meeting_count(&self) -> i64 {
        sqlx::query_scalar("select count(*) from meetings")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// The org's live meetings as its slots count them (`org_meeting_slots`).
    pub async fn live_meeting_count(&self) -> i32 {
        sqlx::query_scalar(
            "select coalesce(sum(used), 0)::int from org_meeting_slots where org_id = $1",
        )
        .bind(self.org_id)
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }

    /// The value of one series of GC's `/metrics` (0 when it does not exist yet).
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric_value(&self.metrics_text().await, name, labels)
    }

    /// GC's `/metrics` (in-process AC and MC record into the same registry).
    pub async fn metrics_text(&self) -> String {
        self.client
            .get(self.gc_url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// A key pair that AC publishes (as a retired key still in its publication window), so
    /// tests can sign tokens GC accepts or refuses for exactly one reason, such as expiry.
    pub async fn published_test_signer(&self) -> TestSigner {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let kid = format!("test-{}", Uuid::new_v4());
        sqlx::query(
            "insert into signing_keys (kid, public_key, private_key_ciphertext,
                                       private_key_nonce, retired_at, publish_until)
             values ($1, $2, '\\x00', '\\x000000000000000000000000', now(),
                     now() + interval '1 hour')",
        )
        .bind(&kid)
        .bind(pair.public_key().as_ref())
        .execute(&self.pool)
        .await
        .unwrap();
        TestSigner {
            kid,
            key: jsonwebtoken::EncodingKey::from_ed_der(pkcs8.as_ref()),
        }
    }
}

/// Which Redis a test's controllers use.
pub enum McRedis {
    Single,
    /// A cluster's node URLs.
    Cluster(Vec<String>),
}

pub struct TestSigner {
    pub kid: String,
    key: jsonwebtoken::EncodingKey,
}

impl TestSigner {
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }
}

/// User-token claims as AC issues them, valid for an hour from now.
pub fn user_claims(user_id: Uuid, org_id: Uuid, roles: &[&str]) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "iss": ISSUER, "aud": "convene-api", "token_type": "user",
        "sub": user_id, "org_id": org_id, "roles": roles, "name": "Someone",
        "jti": Uuid::new_v4(), "iat": now, "exp": now + 3600,
    })
}

/// The token with its payload changed and its signature kept.
pub fn tampered(token: &str, change: impl FnOnce(&mut Value)) -> String {
    let mut parts = token.split('.');
    let (header, payload, signature) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    change(&mut claims);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    format!("{header}.{payload}.{signature}")
}

/// Reads one series from Prometheus text; labels may appear in any order.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, series_labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let matches = series_name == name
                && labels.iter().all(|(k, v)| {
                    series_labels
                        .split(',')
                        .any(|l| l == format!("{k}=\"{v}\""))
                });
            matches.then(|| value.parse::<f64>().ok()).flatten()
        })
        .next()
        .unwrap_or(0.0)
}

/// The `error.code` of an envelope, asserting the envelope shape on the way.
pub async fn error_code(response: Response) -> String {
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(!message.is_empty());
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    body["error"]["code"].as_str().unwrap().to_owned()
}

pub fn meeting_body(name: &str) -> Value {
    json!({ "display_name": name })
}

/// Sessions of the test's database waiting for a lock (to know that a statement is blocked).
pub async fn lock_waiters(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "select count(*) from pg_stat_activity
         where datname = current_database() and wait_event_type = 'Lock'",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Returns once some session of the test's database waits for a lock (a statement the test
/// meant to block is blocked); fails the test after 10 s.
pub async fn until_someone_waits_for_a_lock(pool: &PgPool) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while lock_waiters(pool).await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing ever waited"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The audit rows of the meeting with code `code` (every row when `None`), in the order they
/// were written, each read back as the [`MeetingEvent`] it records. Panics on a row that is not
/// one: a statement that records another shape than the domain's event type.
pub async fn recorded_events(pool: &PgPool, code: Option<&str>) -> Vec<MeetingEvent> {
    let rows: Vec<(String, Value)> = sqlx::query_as(
        "select action, details from audit_logs
         where $1::text is null
            or resource_id = (select id::text from meetings where meeting_code = $1)
         order by id",
    )
    .bind(code)
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(action, details)| {
            MeetingEvent::from_row(&action, details.clone())
                .unwrap_or_else(|e| panic!("audit row {action} {details} is no event: {e}"))
        })
        .collect()
}
