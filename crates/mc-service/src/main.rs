//! `mc-service [serve|healthcheck]`; `serve` is the default.

use clap::{Parser, Subcommand};
use common::cli::{Binary, SharedCommand};
use mc_service::config::Config;
use mc_service::startup::Application;

#[derive(Parser)]
#[command(name = "mc-service", about = "Convene meeting controller")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the signaling WebSocket, the gRPC API GC calls and the ops listener (the default).
    Serve(Box<Config>),
    #[command(flatten)]
    Shared(SharedCommand),
}

const BINARY: Binary = Binary {
    name: "mc-service",
    ops_addr_env: "MC_OPS_ADDR",
    ops_default_port: 9081,
};

fn main() -> anyhow::Result<std::process::ExitCode> {
    let config = match Cli::parse().command {
        Some(Command::Shared(shared)) => return Ok(BINARY.answer(shared)),
        Some(Command::Serve(config)) => *config,
        None => BINARY.serve_settings(),
    };
    BINARY.run(|| serve(config))?;
    Ok(std::process::ExitCode::SUCCESS)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = Application::build(config).await?;
    app.run_until_stopped(common::http::shutdown_signal()).await;
    Ok(())
}
