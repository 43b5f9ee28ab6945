//! The fault stack: PostgreSQL and Redis of the suite's own, AC, two GC replicas and three MCs
//! as processes of the real binaries, and a fault proxy between each service and each of its
//! data stores. Every port is fixed, below Linux's ephemeral range (32768), and on loopback.
//!
//! | what | ports |
//! |---|---|
//! | AC | 17010 (HTTP), 17011 (ops) |
//! | GC *i* (0, 1) | 17020 + 10 *i* (HTTP), + 1 (gRPC), + 2 (ops) |
//! | MC *i* (0, 1, 2) | 17040 + 10 *i* (HTTP), + 1 (gRPC), + 2 (ops) |
//! | PostgreSQL, its proxy | 17100, 17101 |
//! | PostgreSQL's streaming replica (the promotion scenario) | 17102 |
//! | Redis, its proxy for MC *i* | 17110, 17111 + *i* |
//! | proxies of GC's calls to MC *i*, and of MC *i*'s calls to its GC | 17120 + *i*, 17130 + *i* |
//! | the Redis Cluster's six nodes (the failover scenario), their cluster bus | 17140–17145, 17150–17155 |
//! | the webhook scenarios' receivers | 17190, 17191–17196 |

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use fault_proxy::FaultProxy;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::process::Command;
use uuid::Uuid;

use crate::process::{Service, run};
use crate::servers::{Postgres, Redis};

pub const AC_PORT: u16 = 17010;
const GC_BASE: u16 = 17020;
const MC_BASE: u16 = 17040;
const PG_PORT: u16 = 17100;
const PG_PROXY_PORT: u16 = 17101;
pub const PG_REPLICA_PORT: u16 = 17102;
const REDIS_PORT: u16 = 17110;
const REDIS_PROXY_BASE: u16 = 17111;
/// GC's calls to MC *i* go through 17120 + *i*, MC *i*'s to its GC through 17130 + *i*.
const MC_GRPC_PROXY_BASE: u16 = 17120;
const GC_GRPC_PROXY_BASE: u16 = 17130;
pub const CLUSTER_PORT: u16 = 17140;
pub const CLUSTER_BUS_PORT: u16 = 17150;

pub const GCS: usize = 2;
pub const MCS: usize = 3;
/// Users of the load's org, and its limits.
pub const USERS: usize = 220;
pub const ORG_MEETINGS: i64 = 60;
pub const ORG_SEATS: i64 = 12;
/// The org of the limit scenario: few users, a limit of its own.
pub const LIMIT_USERS: usize = 10;
pub const LIMIT_MEETINGS: i64 = 50;
const PASSWORD: &str = "fault-suite-password";
/// GC's webhook key in this stack (base64 of 32 bytes; a test key, never a real one).
const WEBHOOK_KEY: &str = "ZmF1bHQtc3VpdGUtd2ViaG9vay1rZXktMzItYnl0ZXM=";
/// GC's webhook delivery timeout here; a claimed delivery's lease is 3 x this + 30 s.
pub const WEBHOOK_TIMEOUT_SECS: u64 = 2;
/// Where the webhook scenario's receiver listens.
pub const WEBHOOK_RECEIVER_PORT: u16 = 17190;
/// GC's retry schedule here: the first wait, and the longest (so that an endpoint's two-minute
/// outage is over within a wait of it, not of an hour).
pub const WEBHOOK_RETRY_BASE_MS: u64 = 200;
pub const WEBHOOK_RETRY_MAX_SECS: u64 = 30;
/// What the services' settings are in this stack, where they are not the defaults.
pub const SCHEDULED_TTL_SECS: u64 = 60;
pub const HOUSEKEEPING_SECS: u64 = 2;

/// The checker's pool: straight to the cluster on `port`, not through the proxy.
pub async fn direct_pool(port: u16) -> Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&format!("postgres://postgres@127.0.0.1:{port}/convene"))
        .await?)
}

pub fn addr_of(port: u16) -> SocketAddr {
    addr(port)
}

/// A signed-in user of the suite's orgs.
#[derive(Clone, Debug)]
pub struct User {
    pub id: Uuid,
    pub token: String,
}

/// Where the controllers keep their rooms, which the checker reads.
#[derive(Clone, Debug)]
pub enum RoomStore {
    /// The suite's Redis server (its URL, not a proxy's).
    Single(String),
    /// A Redis Cluster: every node's URL.
    Cluster(Vec<String>),
}

pub struct Stack {
    /// The suite's directory (its servers' data and the logs).
    pub dir: PathBuf,
    pub http: reqwest::Client,
    pub room_store: RoomStore,
    pub pg: Postgres,
    pub pg_replica_data: PathBuf,
    /// Straight to PostgreSQL, not through the proxy: the checker's view.
    pub db: PgPool,
    pub pg_proxy: FaultProxy,
    pub redis: Redis,
    pub redis_proxies: Vec<FaultProxy>,
    /// Between GC and MC *i*, one way each: GC's calls to it, its calls to GC.
    pub mc_grpc_proxies: Vec<FaultProxy>,
    pub gc_grpc_proxies: Vec<FaultProxy>,
    pub ac: Service,
    pub gcs: Vec<Service>,
    pub mcs: Vec<Service>,
    pub users: Vec<User>,
    pub org_id: Uuid,
    pub limit_users: Vec<User>,
    pub limit_org_id: Uuid,
}

/// Where the suite keeps its state, and the binaries it runs.
pub struct Paths {
    pub dir: PathBuf,
    pub bins: PathBuf,
    pub pg_bindir: PathBuf,
    pub pg_data: PathBuf,
    /// Where the promotion scenario makes its streaming replica.
    pub pg_replica_data: PathBuf,
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn env(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

impl Stack {
    pub async fn start(paths: &Paths) -> Result<Stack> {
        let logs = logs_dir(&paths.dir);
        std::fs::create_dir_all(&logs)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(40))
            .build()?;

        let pg = Postgres::init(&paths.pg_bindir, &paths.pg_data, PG_PORT).await?;
        pg.start().await?;
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&pg.url("postgres"))
            .await?;
        sqlx::query("create database convene")
            .execute(&admin)
            .await?;
        admin.close().await;
        let db = direct_pool(PG_PORT).await?;
        let pg_proxy = FaultProxy::start_on(addr(PG_PROXY_PORT), addr(PG_PORT)).await?;
        let database_url = format!("postgres://postgres@127.0.0.1:{PG_PROXY_PORT}/convene");

        let redis = Redis::start(&paths.dir.join("redis"), REDIS_PORT).await?;
        let mut redis_proxies = Vec::new();
        for i in 0..MCS {
            redis_proxies.push(
                FaultProxy::start_on(addr(REDIS_PROXY_BASE + i as u16), addr(REDIS_PORT)).await?,
            );
        }

        let ac_url = format!("http://127.0.0.1:{AC_PORT}");
        let common = [
            ("JWT_ISSUER", "convene-ac".to_owned()),
            ("AC_URL", ac_url.clone()),
        ];
        let master_key = base64::engine::general_purpose::STANDARD
            .encode((0..32).map(|_| fastrand::u8(..)).collect::<Vec<u8>>());
        let mut ac_env = env(&common);
        ac_env.extend(env(&[
            ("DATABASE_URL", database_url.clone()),
            ("AC_HTTP_ADDR", format!("127.0.0.1:{AC_PORT}")),
            ("AC_OPS_ADDR", format!("127.0.0.1:{}", AC_PORT + 1)),
            ("AC_MASTER_KEY", master_key),
        ]));
        let mut ac = Service::new(
            "ac",
            paths.bins.join("ac-service"),
            ac_env.clone(),
            AC_PORT,
            AC_PORT + 1,
            &logs,
        );

        // Migrations and the seed, with AC's environment but straight to PostgreSQL.
        let seed = paths.dir.join("seed.json");
        std::fs::write(&seed, seed_document().to_string())?;
        for args in [
            vec!["migrate".to_owned()],
            vec![
                "seed".to_owned(),
                "--file".to_owned(),
                seed.display().to_string(),
            ],
        ] {
            run(Command::new(paths.bins.join("ac-service"))
                .env_clear()
                .envs(ac_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .env("DATABASE_URL", pg.url("convene"))
                .args(&args))
            .await?;
        }

        let mut gcs = Vec::new();
        for i in 0..GCS {
            let port = GC_BASE + 10 * i as u16;
            let mut gc_env = env(&common);
            gc_env.extend(env(&[
                ("DATABASE_URL", database_url.clone()),
                ("GC_HTTP_ADDR", format!("127.0.0.1:{port}")),
                ("GC_GRPC_ADDR", format!("127.0.0.1:{}", port + 1)),
                ("GC_OPS_ADDR", format!("127.0.0.1:{}", port + 2)),
                ("GC_PUBLIC_BASE_URL", format!("http://127.0.0.1:{port}")),
                ("GC_CLIENT_ID", "convene-gc".to_owned()),
                ("GC_CLIENT_SECRET", secret("convene-gc")),
                ("SCHEDULED_MEETING_TTL", SCHEDULED_TTL_SECS.to_string()),
                (
                    "GC_HOUSEKEEPING_INTERVAL_SECS",
                    HOUSEKEEPING_SECS.to_string(),
                ),
                // Webhooks on, to the suite's own receivers on loopback; a short timeout (so a
                // killed replica's leases end in 36 s), quick retries, waits of 30 s at most.
                ("GC_WEBHOOK_KEY", WEBHOOK_KEY.to_owned()),
                ("WEBHOOK_ALLOW_PRIVATE_TARGETS", "true".to_owned()),
                ("WEBHOOK_TIMEOUT_SECS", WEBHOOK_TIMEOUT_SECS.to_string()),
                ("WEBHOOK_RETRY_BASE_MS", WEBHOOK_RETRY_BASE_MS.to_string()),
                ("WEBHOOK_RETRY_MAX_SECS", WEBHOOK_RETRY_MAX_SECS.to_string()),
                // The one CA GC trusts here: the https receivers' (webhook_endpoints.rs).
                (
                    "SSL_CERT_FILE",
                    format!("{}/ca.pem", crate::webhook_endpoints::FIXTURES),
                ),
            ]));
            gcs.push(Service::new(
                &format!("gc-{i}"),
                paths.bins.join("gc-service"),
                gc_env,
                port,
                port + 2,
                &logs,
            ));
        }
        let mut mcs = Vec::new();
        let mut mc_grpc_proxies = Vec::new();
        let mut gc_grpc_proxies = Vec::new();
        for i in 0..MCS {
            let port = MC_BASE + 10 * i as u16;
            let gc_grpc = GC_BASE + 10 * (i % GCS) as u16 + 1;
            mc_grpc_proxies.push(
                FaultProxy::start_on(addr(MC_GRPC_PROXY_BASE + i as u16), addr(port + 1)).await?,
            );
            gc_grpc_proxies.push(
                FaultProxy::start_on(addr(GC_GRPC_PROXY_BASE + i as u16), addr(gc_grpc)).await?,
            );
            let client = format!("convene-mc-{i}");
            let mut mc_env = env(&common);
            mc_env.extend(env(&[
                (
                    "REDIS_URL",
                    format!("redis://127.0.0.1:{}", REDIS_PROXY_BASE + i as u16),
                ),
                ("MC_HTTP_ADDR", format!("127.0.0.1:{port}")),
                ("MC_GRPC_ADDR", format!("127.0.0.1:{}", port + 1)),
                (
                    "MC_GRPC_ADVERTISE_URL",
                    format!("http://127.0.0.1:{}", MC_GRPC_PROXY_BASE + i as u16),
                ),
                ("MC_OPS_ADDR", format!("127.0.0.1:{}", port + 2)),
                // Each controller registers with one of the GCs; the registry is shared.
                (
                    "GC_GRPC_URL",
                    format!("http://127.0.0.1:{}", GC_GRPC_PROXY_BASE + i as u16),
                ),
                ("MC_CLIENT_ID", client.clone()),
                ("MC_CLIENT_SECRET", secret(&client)),
            ]));
            mcs.push(Service::new(
                &format!("mc-{i}"),
                paths.bins.join("mc-service"),
                mc_env,
                port,
                port + 2,
                &logs,
            ));
        }

        let limit = Duration::from_secs(90);
        ac.start()?;
        ac.wait_ready(&http, limit).await?;
        for gc in &mut gcs {
            gc.start()?;
        }
        for gc in &mut gcs {
            gc.wait_ready(&http, limit).await?;
        }
        for mc in &mut mcs {
            mc.start()?;
        }
        for mc in &mut mcs {
            mc.wait_ready(&http, limit).await?;
        }

        let users = sign_in_all(&http, "f", USERS).await?;
        let limit_users = sign_in_all(&http, "l", LIMIT_USERS).await?;
        let org_id = org_of(&db, "faults").await?;
        let limit_org_id = org_of(&db, "limits").await?;
        Ok(Stack {
            dir: paths.dir.clone(),
            room_store: RoomStore::Single(redis.url()),
            http,
            pg,
            pg_replica_data: paths.pg_replica_data.clone(),
            db,
            pg_proxy,
            redis,
            redis_proxies,
            mc_grpc_proxies,
            gc_grpc_proxies,
            ac,
            gcs,
            mcs,
            users,
            org_id,
            limit_users,
            limit_org_id,
        })
    }

    /// Every service answers ready; the time it took.
    pub async fn wait_all_ready(&mut self, limit: Duration) -> Result<Duration> {
        let start = std::time::Instant::now();
        let http = self.http.clone();
        self.ac.wait_ready(&http, limit).await?;
        for service in self.gcs.iter_mut().chain(self.mcs.iter_mut()) {
            service.wait_ready(&http, limit).await?;
        }
        Ok(start.elapsed())
    }

    /// Every controller stopped gracefully and started again with `extra` environment
    /// (`REDIS_CLUSTER_URLS` moves them onto a cluster; nothing, back onto the suite's Redis),
    /// and ready.
    pub async fn restart_mcs(&mut self, extra: &[(&str, &str)]) -> Result<()> {
        futures::future::try_join_all(self.mcs.iter_mut().map(Service::stop)).await?;
        for mc in &mut self.mcs {
            mc.start_with(extra)?;
        }
        let http = self.http.clone();
        for mc in &mut self.mcs {
            mc.wait_ready(&http, Duration::from_secs(60)).await?;
        }
        Ok(())
    }

    /// Ends every meeting of the suite's orgs that has not ended, as its host (`POST /end`):
    /// before the controllers move to another Redis, whose rooms would otherwise disagree with
    /// PostgreSQL's open visits. Returns how many it ended.
    pub async fn end_live_meetings(&self) -> Result<usize> {
        let live: Vec<(String, Uuid)> =
            sqlx::query_as("select meeting_code, host_id from meetings where status <> 'ended'")
                .fetch_all(&self.db)
                .await?;
        let gc = self.gcs.first().context("no GC")?.url();
        for (code, host) in &live {
            let token = self
                .users
                .iter()
                .chain(&self.limit_users)
                .find(|u| u.id == *host)
                .map(|u| u.token.clone())
                .context("a meeting's host is not one of the suite's users")?;
            let mut ended = false;
            for _ in 0..20 {
                let answer = self
                    .http
                    .post(format!("{gc}/api/v1/meetings/{code}/end"))
                    .bearer_auth(&token)
                    .send()
                    .await;
                match answer.map(|a| a.status().as_u16()) {
                    Ok(200 | 404) => {
                        ended = true;
                        break;
                    }
                    _ => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            }
            if !ended {
                bail!("could not end {code}");
            }
        }
        Ok(live.len())
    }

    /// The controllers that hold rooms in PostgreSQL's registry, by meeting code.
    pub async fn owner_of(&self, code: &str) -> Result<String> {
        let owner: Option<String> = sqlx::query_scalar(
            "select a.controller_id from meeting_assignments a join meetings m on m.id = a.meeting_id
              where m.meeting_code = $1",
        )
        .bind(code)
        .fetch_optional(&self.db)
        .await?;
        owner.context("no assignment")
    }

    pub fn mc_index(&self, client_id: &str) -> Result<usize> {
        match client_id.strip_prefix("convene-mc-").map(str::parse) {
            Some(Ok(i)) if i < MCS => Ok(i),
            _ => bail!("unknown controller {client_id}"),
        }
    }

    /// Every service stopped gracefully, all at once (each waits out its drain delay).
    pub async fn stop(mut self) {
        let services = self
            .mcs
            .iter_mut()
            .chain(self.gcs.iter_mut())
            .chain([&mut self.ac]);
        futures::future::join_all(services.map(Service::stop)).await;
        self.db.close().await;
    }
}

fn secret(client_id: &str) -> String {
    format!("{client_id}-fault-suite-secret")
}

/// The secret of the suite's service client `client_id`.
pub fn secret_of(client_id: &str) -> String {
    secret(client_id)
}

fn seed_document() -> serde_json::Value {
    let client = |id: &str, kind: &str, scopes: &[&str]| {
        serde_json::json!({"client_id": id, "client_secret": secret(id),
                           "service_type": kind, "scopes": scopes})
    };
    let mut clients = vec![
        client("convene-admin", "admin", &["admin"]),
        client(
            "convene-gc",
            "global-controller",
            &["internal:meeting-token", "internal:mc"],
        ),
    ];
    for i in 0..MCS {
        clients.push(client(
            &format!("convene-mc-{i}"),
            "meeting-controller",
            &["internal:gc"],
        ));
    }
    let users = |prefix: &str, count: usize| {
        (0..count)
            .map(|i| {
                serde_json::json!({"email": format!("{prefix}{i}@faults.test"), "password": PASSWORD,
                                   "display_name": format!("Fault {prefix}{i}"), "roles": ["user"]})
            })
            .collect::<Vec<_>>()
    };
    serde_json::json!({
        "service_clients": clients,
        "orgs": [
            {"slug": "faults", "name": "Fault suite", "max_concurrent_meetings": ORG_MEETINGS,
             "max_participants_per_meeting": ORG_SEATS, "users": users("f", USERS)},
            {"slug": "limits", "name": "Fault suite limits", "max_concurrent_meetings": LIMIT_MEETINGS,
             "max_participants_per_meeting": 10, "users": users("l", LIMIT_USERS)},
        ]
    })
}

async fn org_of(db: &PgPool, slug: &str) -> Result<Uuid> {
    Ok(
        sqlx::query_scalar("select id from organizations where slug = $1")
            .bind(slug)
            .fetch_one(db)
            .await?,
    )
}

/// Signs in `{prefix}0..count@faults.test`, eight at a time (AC hashes off its runtime).
async fn sign_in_all(http: &reqwest::Client, prefix: &str, count: usize) -> Result<Vec<User>> {
    use futures::StreamExt as _;
    let results: Vec<Result<User>> = futures::stream::iter(0..count)
        .map(|i| sign_in(http, format!("{prefix}{i}@faults.test")))
        .buffered(8)
        .collect()
        .await;
    results.into_iter().collect()
}

pub async fn sign_in(http: &reqwest::Client, email: String) -> Result<User> {
    let response = sign_in_at(
        http,
        &format!("http://127.0.0.1:{AC_PORT}"),
        &email,
        PASSWORD,
    )
    .await?;
    if response.status() != 200 {
        bail!("sign-in of {email}: {}", response.status());
    }
    user_of(response).await
}

/// Asks the AC at `ac_url` for a user token.
pub async fn sign_in_at(
    http: &reqwest::Client,
    ac_url: &str,
    email: &str,
    password: &str,
) -> Result<reqwest::Response> {
    Ok(http
        .post(format!("{ac_url}/api/v1/auth/user/token"))
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await?)
}

/// The user an answered sign-in (200) gives.
pub async fn user_of(response: reqwest::Response) -> Result<User> {
    let body: serde_json::Value = response.json().await?;
    let token = body["access_token"]
        .as_str()
        .context("no access_token")?
        .to_owned();
    Ok(User {
        id: subject(&token)?,
        token,
    })
}

/// The `sub` of a token (read, not verified: the suite holds tokens AC just gave it).
fn subject(token: &str) -> Result<Uuid> {
    let payload = token.split('.').nth(1).context("not a JWT")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes)?;
    Ok(claims["sub"].as_str().context("no sub")?.parse()?)
}

pub fn logs_dir(dir: &Path) -> PathBuf {
    dir.join("logs")
}
