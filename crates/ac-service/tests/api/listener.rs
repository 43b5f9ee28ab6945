//! AC's listener and middleware stack under a hostile client: the same stack and bounds as
//! every service (`common::shell`, `common::http::layers`), checked through AC itself.

#[path = "../../../common/tests/support/attack.rs"]
mod attack;

use std::time::Duration;

use ac_service::config::Safeguards;
use ac_service::startup::Application;
use axum::Router;
use axum::routing::get;
use common::shell::ShellSettings;
use sqlx::PgPool;
use tokio::sync::oneshot;

use crate::helpers::{test_config, test_safeguards};

/// AC with small bounds (1 s timeouts, 32 connections) and the routes of `attack`.
async fn spawn(pool: PgPool) -> (std::net::SocketAddr, oneshot::Sender<()>) {
    let safeguards = Safeguards {
        shell: ShellSettings {
            http_max_connections: 32,
            header_read_timeout_secs: 1,
            idle_timeout_secs: 1,
            request_timeout_secs: 1,
            readiness_grace_secs: 0,
            ..ShellSettings::default()
        },
        ..test_safeguards()
    };
    let extra = Router::new()
        .route("/test/panic", get(attack::panics))
        .route("/test/slow", get(attack::stalls));
    let app = Application::build_with_routes(test_config(), safeguards, pool, extra)
        .await
        .unwrap();
    let addr = app.http_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    (addr, stop)
}

#[sqlx::test(migrations = "../../migrations")]
async fn ac_answers_panics_timeouts_big_bodies_and_doubled_headers_with_envelopes(pool: PgPool) {
    let (addr, _stop) = spawn(pool).await;
    attack::assert_middleware_stack(&format!("http://{addr}"), "/api/v1/auth/user/token", None)
        .await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn ac_cuts_off_idle_and_slowloris_floods_and_keeps_answering(pool: PgPool) {
    let (addr, _stop) = spawn(pool).await;
    let (statuses, fates) =
        attack::flood_while_serving(addr, "/health/live", 48, 16, Duration::from_secs(4)).await;
    attack::assert_flood_survived(&statuses, &fates, Duration::from_secs(3));
}

#[path = "../../../common/tests/support/healthcheck.rs"]
mod healthcheck;

/// The image's health check (`ac-service healthcheck`) against the real service.
#[sqlx::test(migrations = "../../migrations")]
async fn the_healthcheck_subcommand_probes_the_running_service(pool: PgPool) {
    let app = crate::helpers::spawn_app(pool).await;
    healthcheck::assert_probes(
        env!("CARGO_BIN_EXE_ac-service"),
        "AC_OPS_ADDR",
        app.ops.port(),
    )
    .await;
}
