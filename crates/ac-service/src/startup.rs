//! Building and running AC: its state (`crate::state`), routers, listeners (HTTP and ops) and background
//! maintenance, inside the common service shell (`common::shell`). Migrations are the caller's
//! job (`main` runs them; tests get a migrated database from `#[sqlx::test]`), so building
//! never changes the schema.
//!
//! A new background job: a function taking the shell's cancellation token, registered with
//! `shell.spawn_job` in [`Application::build_with_routes`].

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use common::shell::Shell;
use sqlx::PgPool;

use crate::config::{Config, Safeguards};
use crate::domain::password::{DummyHash, Hasher};
use crate::keys::KeyStore;
use crate::keys::store::KeySettings;
use crate::state::{AppState, CredentialLimits};
use crate::tokens::TokenIssuer;

/// A built AC, bound to its ports but not yet serving.
pub struct Application {
    shell: Shell,
    http_addr: SocketAddr,
    ops_addr: SocketAddr,
    hasher: Hasher,
}

impl Application {
    /// [`Application::build_with`] the default [`Safeguards`].
    pub async fn build(config: Config, pool: PgPool) -> anyhow::Result<Application> {
        Application::build_with(config, Safeguards::default(), pool).await
    }

    /// [`Application::build_with_routes`] AC's routes alone.
    pub async fn build_with(
        config: Config,
        safeguards: Safeguards,
        pool: PgPool,
    ) -> anyhow::Result<Application> {
        Application::build_with_routes(config, safeguards, pool, Router::new()).await
    }

    /// Checks the configuration, loads (or creates) the signing key, binds `config.http_addr`
    /// and `config.ops_addr` and assembles the routes plus `extra_routes` (tests add some).
    /// Fails if a setting is out of bounds or the signing key cannot be decrypted with
    /// `config.master_key`.
    pub async fn build_with_routes(
        config: Config,
        safeguards: Safeguards,
        pool: PgPool,
        extra_routes: Router<AppState>,
    ) -> anyhow::Result<Application> {
        crate::config::check(&config, &safeguards).map_err(anyhow::Error::msg)?;
        let metrics = common::metrics::install_recorder(&[])
            .context("cannot install the Prometheus recorder")?;
        crate::metrics::register();
        let keys = KeyStore::load(
            pool.clone(),
            config.master_key.clone(),
            KeySettings::from_config(&config, &safeguards),
        )
        .await
        .context("cannot load the signing key")?;
        let hasher = Hasher::new(
            usize::try_from(safeguards.max_concurrent_hashes).unwrap_or(1),
            safeguards.hash_wait(),
        )
        .context("cannot start the hashing threads")?;
        let dummy_hash = DummyHash::generate(&hasher).await?;
        let mut shell = Shell::new("ac", safeguards.shell.timings());
        let state = AppState {
            pool,
            tokens: TokenIssuer::new(keys.clone(), &config),
            keys,
            dummy_hash,
            hasher,
            credential_limits: CredentialLimits {
                per_account: config.login_max_failures_per_account,
                // No per-id limit unless configured: u32::MAX failures are never reached.
                per_client: safeguards
                    .client_max_failures_per_client
                    .unwrap_or(u32::MAX),
                per_ip: config.login_max_failures_per_ip,
                window: Duration::from_secs(config.login_failure_window_secs),
                trust_forwarded_for: config.trust_forwarded_for,
            },
            browser_origins: config.cors_allowed_origins.clone().into(),
            metrics,
            readiness: shell.readiness(),
            tasks: shell.handle().tracker().clone(),
            openapi_document: common::openapi::Document::new(
                crate::routes::openapi::rendered().context("cannot render the OpenAPI document")?,
            ),
        };
        let hasher = state.hasher.clone();
        let (keys, pool) = (state.keys.clone(), state.pool.clone());
        let (every, window) = (
            config.key_refresh_interval(),
            state.credential_limits.window,
        );
        let layers = safeguards.shell.layers("ac");
        let ops_router = crate::routes::ops_router(state.clone(), layers);
        let router = crate::routes::router_with(state, layers, extra_routes);
        let http_addr = shell
            .listen_http(config.http_addr, router, &safeguards.shell)
            .await?;
        let ops_addr = shell
            .listen_ops(config.ops_addr, ops_router, &safeguards.shell)
            .await?;
        shell.spawn_job("key maintenance", move |stop| {
            crate::maintenance::run(keys, pool, every, window, stop)
        });
        Ok(Application {
            shell,
            http_addr,
            ops_addr,
            hasher,
        })
    }

    /// The address actually bound (useful when the config asked for port 0).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The ops listener's address actually bound (health probes and metrics).
    pub fn ops_addr(&self) -> SocketAddr {
        self.ops_addr
    }

    /// The hashing capacity the requests share (tests reserve it to see AC turn callers away).
    pub fn hasher(&self) -> Hasher {
        self.hasher.clone()
    }

    /// Serves until `shutdown` resolves, then stops in the shell's order: readiness off,
    /// connections drained, maintenance stopped.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        self.shell.run(shutdown).await;
    }
}
