//! Builds MC's HTTP app from its configuration and runs it until a shutdown signal.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;
use common::jwks::{JwksVerifier, VerifierConfig};
use deadpool_redis::{Pool, Runtime};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::routes;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub redis: Pool,
    pub verifier: JwksVerifier,
    pub metrics: PrometheusHandle,
}

pub struct Application {
    listener: TcpListener,
    router: Router,
}

impl Application {
    /// Binds the listener (use `127.0.0.1:0` in tests) and wires the routes.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let redis = deadpool_redis::Config::from_url(&config.redis_url)
            .create_pool(Some(Runtime::Tokio1))
            .context("invalid REDIS_URL")?;
        let verifier = JwksVerifier::new(VerifierConfig::new(&config.ac_url, config.jwt_issuer))
            .context("cannot build the JWKS client")?;
        let metrics = common::metrics::install_recorder()?;
        let state = AppState {
            redis,
            verifier,
            metrics,
        };
        let listener = TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("cannot bind {}", config.http_addr))?;
        Ok(Self {
            listener,
            router: routes::router(state),
        })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Serves until `shutdown` resolves, then lets requests in flight finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
            .context("http server failed")
    }
}
