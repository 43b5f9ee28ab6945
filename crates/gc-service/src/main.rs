//! `gc-service [serve|migrate]`; `serve` is the default.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use gc_service::config::Config;
use gc_service::db;
use gc_service::startup::Application;
use secrecy::SecretString;

#[derive(Parser)]
#[command(name = "gc-service", about = "Convene global controller")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate the database, then serve the HTTP API (the default).
    Serve(Box<Config>),
    /// Apply the database migrations and exit.
    Migrate(Database),
}

#[derive(Args)]
struct Database {
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: SecretString,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = common::telemetry::init("gc-service")?;
    let command = match Cli::parse().command {
        Some(command) => command,
        None => Command::Serve(Box::new(Config::parse_from(["gc-service"]))),
    };
    let (url, max_connections) = match &command {
        Command::Serve(config) => (&config.database_url, config.db_max_connections),
        Command::Migrate(database) => (&database.database_url, 2),
    };
    let pool = db::connect(url, max_connections)
        .await
        .context("cannot connect to PostgreSQL (DATABASE_URL)")?;
    // Safe with many replicas starting at once: sqlx holds an advisory lock while migrating.
    // Migrations this build does not know were applied by a newer release: during a rolling
    // deploy an older replica must still start.
    let mut migrator = db::migrator();
    migrator.set_ignore_missing(true);
    migrator
        .run(&pool)
        .await
        .context("database migration failed")?;
    if let Command::Serve(config) = command {
        let app = Application::build(*config, pool).await?;
        app.run_until_stopped(common::http::shutdown_signal()).await;
    }
    Ok(())
}
