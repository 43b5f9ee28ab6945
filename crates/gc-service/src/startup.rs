//! Building and running GC: its state (`crate::state`), its listeners (HTTP, gRPC and ops) and its background
//! jobs, inside the common service shell (`common::shell`). Migrations are the caller's job
//! (`main` runs them; tests get a migrated database from `#[sqlx::test]`), so building never
//! changes the schema.
//!
//! A new background job: a function taking the shell's cancellation token, registered with
//! `shell.spawn_job` in [`Application::build`]. Every other task GC starts runs under the same
//! shell: work a request starts on its tracker, the queues on its background.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use common::service_token::AcClients;
use common::shell::{Protocol, Shell};
use ring::rand::SystemRandom;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::client::ForwardedFor;
use crate::clients::ac::MeetingTokens;
use crate::clients::mc::{MeetingControllers, Placement};
use crate::config::Config;
use crate::db::admissions::Admissions;
use crate::db::creates::Creates;
use crate::db::lookups::Lookups;
use crate::state::{AppState, PublicBaseUrl};
use crate::use_cases::detached::{Detached, MAX_DETACHED};
use crate::use_cases::room::Rooms;

/// How often a replica deletes expired idempotency keys, and how many per statement.
const JANITOR_EVERY: Duration = Duration::from_secs(600);
const JANITOR_BATCH: i64 = 1000;

/// A built GC, bound to its port but not yet serving.
pub struct Application {
    shell: Shell,
    http_addr: SocketAddr,
    grpc_addr: SocketAddr,
    ops_addr: SocketAddr,
}

impl Application {
    /// [`Application::build_with`] GC's routes alone.
    pub async fn build(config: Config, pool: PgPool) -> anyhow::Result<Application> {
        Application::build_with(config, pool, Router::new()).await
    }

    /// Binds `config.http_addr`, `config.grpc_addr` and `config.ops_addr` (port 0 picks a free
    /// port) and assembles the routes plus `extra_routes` (tests add some). AC is not contacted
    /// here: keys are fetched on first use and by the readiness probe, so GC starts even while
    /// AC is still starting.
    pub async fn build_with(
        config: Config,
        pool: PgPool,
        extra_routes: Router<AppState>,
    ) -> anyhow::Result<Application> {
        let metrics =
            crate::metrics::install().context("cannot install the Prometheus recorder")?;
        // First, so that every task below runs under it: the work requests start on its
        // tracker, the statement and call queues on its background.
        let mut shell = Shell::new("gc", config.shell.timings());
        let handle = shell.handle();
        let (tasks, background) = (handle.tracker(), handle.background());
        let AcClients {
            verifier,
            tokens: service_tokens,
        } = AcClients::new(
            &config.ac_url,
            &config.jwt_issuer,
            &config.client_id,
            config.client_secret.clone(),
            tasks,
        )
        .context("cannot build the clients of AC")?;
        let call_timeout = Duration::from_millis(config.lifecycle.mc_call_timeout_ms);
        let batch_pool = crate::db::batch_pool(&pool, background);
        let rooms = Rooms {
            pool: pool.clone(),
            placement: Placement::new(
                pool.clone(),
                MeetingControllers::new(Arc::clone(&service_tokens), call_timeout, background),
                config.lifecycle.heartbeat_timeout_secs,
            ),
            settings: config.lifecycle.clone(),
            admissions: Admissions::new(batch_pool.clone(), background),
            lookups: Lookups::new(
                batch_pool.clone(),
                config.lifecycle.heartbeat_timeout_secs,
                background,
            ),
            guests: crate::db::guests::GuestRecords::new(batch_pool.clone(), background),
            detached: Detached::new(MAX_DETACHED, tasks.clone()),
            comings_and_goings: crate::use_cases::room::join_leave_budget(&config.lifecycle),
            guest_joins: crate::use_cases::room::guest_join_budget(&config.lifecycle),
        };
        let meeting_tokens = MeetingTokens::new(
            &config.ac_url,
            Arc::clone(&service_tokens),
            call_timeout,
            background,
        )
        .context("cannot build AC's meeting-token client")?;
        let web = crate::web::WebClient::load(&config.web, &config.ac_url)
            .context("cannot load the web client (GC_WEB_DIR)")?;
        let webhook_settings = config.webhooks.clone();
        let webhooks = crate::use_cases::webhooks::Webhooks {
            pool: pool.clone(),
            key: webhook_settings.key.clone(),
            allow_private: webhook_settings.allow_private_targets,
            rng: SystemRandom::new(),
        };
        let sender = crate::clients::webhooks::Sender::new(
            Duration::from_secs(webhook_settings.timeout_secs),
            webhook_settings.allow_private_targets,
        )
        .context("cannot build the webhook delivery client")?;
        let state = AppState {
            pool: pool.clone(),
            webhooks,
            creates: Creates::new(pool.clone(), background),
            verifier,
            rng: SystemRandom::new(),
            public_base_url: PublicBaseUrl(Arc::from(config.public_base_url)),
            forwarded_for: ForwardedFor {
                trusted: config.trust_forwarded_for,
            },
            metrics,
            readiness: shell.readiness(),
            rooms: rooms.clone(),
            meeting_tokens,
            openapi_document: common::openapi::Document::new(
                crate::routes::openapi::rendered().context("cannot render the OpenAPI document")?,
            ),
            web,
        };
        let grpc_router = common::grpc::layers::apply(
            crate::grpc::router(
                pool.clone(),
                state.verifier.clone(),
                config.lifecycle.heartbeat_interval_secs,
            ),
            "gc",
        );
        let layers = config.shell.layers("gc");
        let ops_router = crate::routes::ops_router(state.clone(), layers);
        let router = crate::routes::router_with(state, layers, extra_routes);
        let http_addr = shell
            .listen_http(config.http_addr, router, &config.shell)
            .await?;
        let ops_addr = shell
            .listen_ops(config.ops_addr, ops_router, &config.shell)
            .await?;
        let grpc_addr = shell
            .listen(
                "grpc",
                config.grpc_addr,
                grpc_router,
                Protocol::Grpc,
                config.shell.grpc_limits(),
            )
            .await?;
        shell.spawn_job("housekeeping", |stop| {
            crate::use_cases::housekeeping::run(rooms, stop)
        });
        let gauge_pool = pool.clone();
        let timeout = config.lifecycle.heartbeat_timeout_secs;
        let every = Duration::from_secs(u64::from(config.lifecycle.heartbeat_interval_secs));
        shell.spawn_job("controller health gauge", move |stop| {
            controller_health(gauge_pool, timeout, every, stop)
        });
        match webhook_settings.key.clone() {
            Some(key) => {
                let webhook_pool = crate::db::webhook_pool(&pool, background);
                let deliveries = crate::use_cases::deliveries::Deliveries {
                    outcomes: crate::db::webhook_outcomes::Outcomes::new(
                        webhook_pool.clone(),
                        background,
                    ),
                    pool: webhook_pool,
                    sender,
                    key,
                    settings: webhook_settings.clone(),
                };
                shell.spawn_job("webhook deliveries", |stop| {
                    crate::use_cases::deliveries::run(deliveries, stop)
                });
            }
            None => tracing::warn!(
                "GC_WEBHOOK_KEY is not set: the webhook API answers 503 and nothing is delivered"
            ),
        }
        let retention_pool = pool.clone();
        let retention_days = webhook_settings.retention_days;
        shell.spawn_job("webhook delivery retention", move |stop| {
            crate::use_cases::deliveries::retain(retention_pool, retention_days, stop)
        });
        shell.spawn_job("idempotency-key janitor", |stop| {
            purge_expired_keys(pool, stop)
        });
        Ok(Application {
            shell,
            http_addr,
            grpc_addr,
            ops_addr,
        })
    }

    /// The address actually bound (useful when the config asked for port 0).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The gRPC listener's address actually bound.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// The ops listener's address actually bound (health probes and metrics).
    pub fn ops_addr(&self) -> SocketAddr {
        self.ops_addr
    }

    /// Serves until `shutdown` resolves, then stops in the shell's order: readiness off,
    /// connections drained, jobs stopped.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        self.shell.run(shutdown).await;
    }
}

/// Sets `gc_meeting_controllers{state}` from the registry once per heartbeat interval: the
/// alerts on a fleet with no healthy controller, or with a silent one, read it. Every replica
/// reports the same registry (take the `max` across replicas).
async fn controller_health(
    pool: PgPool,
    timeout_secs: u32,
    every: Duration,
    stop: CancellationToken,
) {
    let measure = || async {
        match crate::db::controllers::health_counts(&pool, timeout_secs).await {
            Ok((healthy, unhealthy)) => {
                metrics::gauge!("gc_meeting_controllers", "state" => "healthy").set(healthy as f64);
                metrics::gauge!("gc_meeting_controllers", "state" => "unhealthy")
                    .set(unhealthy as f64);
            }
            Err(error) => tracing::warn!(%error, "cannot count the meeting controllers"),
        }
    };
    measure().await;
    common::shell::every(every, stop, measure).await;
}

/// Deletes expired idempotency keys now and then, in small batches. Every replica runs it; the
/// deletes skip rows another replica holds, so they never wait on each other.
async fn purge_expired_keys(pool: PgPool, stop: CancellationToken) {
    common::shell::every(JANITOR_EVERY, stop, || purge_batches(&pool)).await;
}

/// Deletes expired keys batch after batch until a batch comes back short.
async fn purge_batches(pool: &PgPool) {
    loop {
        match crate::db::idempotency::purge_expired(pool, JANITOR_BATCH).await {
            Ok(deleted) if deleted == JANITOR_BATCH.unsigned_abs() => continue,
            Ok(deleted) => {
                if deleted > 0 {
                    tracing::info!(deleted, "expired idempotency keys purged");
                }
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot purge expired idempotency keys");
                return;
            }
        }
    }
}
