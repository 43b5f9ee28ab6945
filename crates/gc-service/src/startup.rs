//! Building and running GC: state, router, listener, the idempotency-key janitor and graceful
//! shutdown. Migrations are the caller's job (`main` runs them; tests get a migrated database
//! from `#[sqlx::test]`), so building an application never changes the schema.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use common::jwks::{JwksVerifier, VerifierConfig};
use metrics_exporter_prometheus::PrometheusHandle;
use ring::rand::SystemRandom;
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::config::Config;

/// How often a replica deletes expired idempotency keys, and how many per statement.
const JANITOR_EVERY: Duration = Duration::from_secs(600);
const JANITOR_BATCH: i64 = 1000;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub verifier: JwksVerifier,
    /// The OS CSPRNG, for meeting codes and join-token secrets.
    pub rng: SystemRandom,
    /// `GC_PUBLIC_BASE_URL` without a trailing slash.
    pub public_base_url: Arc<str>,
    pub trust_forwarded_for: bool,
    pub metrics: PrometheusHandle,
}

/// A built GC, bound to its port but not yet serving.
pub struct Application {
    listener: TcpListener,
    http_addr: SocketAddr,
    router: Router,
    pool: PgPool,
}

impl Application {
    /// Binds `config.http_addr` (port 0 picks a free port) and assembles the routes. AC is not
    /// contacted here: keys are fetched on first use and by the readiness probe, so GC starts
    /// even while AC is still starting.
    pub async fn build(config: Config, pool: PgPool) -> anyhow::Result<Application> {
        let metrics = common::metrics::install_recorder()
            .context("cannot install the Prometheus recorder")?;
        crate::metrics::register();
        let verifier = JwksVerifier::new(VerifierConfig::new(&config.ac_url, config.jwt_issuer))
            .context("cannot build the JWKS client")?;
        let state = AppState {
            pool: pool.clone(),
            verifier,
            rng: SystemRandom::new(),
            public_base_url: Arc::from(config.public_base_url),
            trust_forwarded_for: config.trust_forwarded_for,
            metrics,
        };
        let listener = TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("cannot listen on {}", config.http_addr))?;
        let http_addr = listener.local_addr()?;
        Ok(Application {
            listener,
            http_addr,
            router: crate::routes::router(state),
            pool,
        })
    }

    /// The address actually bound (useful when the config asked for port 0).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Serves until `shutdown` resolves, then stops accepting connections and lets requests in
    /// flight finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let janitor = tokio::spawn(purge_expired_keys(self.pool.clone()));
        tracing::info!(addr = %self.http_addr, "global controller listening");
        let served = axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        janitor.abort();
        served.context("the HTTP server failed")
    }
}

/// Deletes expired idempotency keys now and then, in small batches. Every replica runs it; the
/// deletes skip rows another replica holds, so they never wait on each other.
async fn purge_expired_keys(pool: PgPool) {
    let mut every = tokio::time::interval(JANITOR_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        loop {
            match crate::db::idempotency::purge_expired(&pool, JANITOR_BATCH).await {
                Ok(deleted) if deleted == JANITOR_BATCH.unsigned_abs() => continue,
                Ok(deleted) => {
                    if deleted > 0 {
                        tracing::info!(deleted, "expired idempotency keys purged");
                    }
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot purge expired idempotency keys");
                    break;
                }
            }
        }
    }
}
