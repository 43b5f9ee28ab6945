//! Building MC from its configuration and running it inside the common service shell
//! (`common::shell`) until a shutdown signal.
//!
//! A new background job: a function taking the shell's cancellation token, registered with
//! `shell.spawn_job` in [`Application::build_with`].

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;
use common::jwks::{JwksVerifier, VerifierConfig};
use common::shell::{Readiness, Shell};
use deadpool_redis::{Pool, Runtime};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::Config;
use crate::routes;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub redis: Pool,
    pub verifier: JwksVerifier,
    pub metrics: PrometheusHandle,
    pub readiness: Readiness,
}

pub struct Application {
    shell: Shell,
    http_addr: SocketAddr,
}

impl Application {
    /// [`Application::build_with`] MC's routes alone.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Application::build_with(config, Router::new()).await
    }

    /// Binds the listener (use `127.0.0.1:0` in tests) and wires the routes plus
    /// `extra_routes` (tests add some).
    pub async fn build_with(
        config: Config,
        extra_routes: Router<AppState>,
    ) -> anyhow::Result<Self> {
        let redis = deadpool_redis::Config::from_url(&config.redis_url)
            .create_pool(Some(Runtime::Tokio1))
            .context("invalid REDIS_URL")?;
        let verifier = JwksVerifier::new(VerifierConfig::new(&config.ac_url, config.jwt_issuer))
            .context("cannot build the JWKS client")?;
        let metrics = common::metrics::install_recorder(&[])?;
        let mut shell = Shell::new("mc", config.shell.timings());
        let state = AppState {
            redis,
            verifier,
            metrics,
            readiness: shell.readiness(),
        };
        let router = routes::router_with(state, config.shell.layers("mc"), extra_routes);
        let http_addr = shell
            .listen_http(config.http_addr, router, &config.shell)
            .await?;
        Ok(Self { shell, http_addr })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Serves until `shutdown` resolves, then stops in the shell's order.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        self.shell.run(shutdown).await;
    }
}
