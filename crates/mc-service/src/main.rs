//! `mc-service` serves; `mc-service healthcheck` exits 0 if the running service answers
//! `GET /health/live` on its ops port (MC_OPS_ADDR): the container health check, no shell
//! needed.

use clap::Parser;
use mc_service::config::Config;
use mc_service::startup::Application;

fn main() -> anyhow::Result<std::process::ExitCode> {
    if std::env::args_os()
        .nth(1)
        .is_some_and(|arg| arg == "healthcheck")
    {
        return Ok(common::healthcheck::run("MC_OPS_ADDR", 9081));
    }
    let config = Config::parse();
    tokio::runtime::Runtime::new()?.block_on(serve(config))?;
    Ok(std::process::ExitCode::SUCCESS)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let _telemetry = common::telemetry::init("mc-service")?;
    let app = Application::build(config).await?;
    app.run_until_stopped(common::http::shutdown_signal()).await;
    Ok(())
}
