use clap::Parser;
use mc_service::config::Config;
use mc_service::startup::Application;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let _telemetry = common::telemetry::init("mc-service")?;
    let app = Application::build(config).await?;
    app.run_until_stopped(common::http::shutdown_signal()).await;
    Ok(())
}
