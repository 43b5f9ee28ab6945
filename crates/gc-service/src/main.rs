//! `gc-service [serve|migrate|healthcheck|openapi]`; `serve` is the default.

use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use common::cli::{Binary, SharedCommand};
use common::migrations::MigrationArgs;
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
    /// Migrate the database (or wait for a migration job), then serve the HTTP API (the
    /// default).
    Serve(Box<Serve>),
    /// Apply the database migrations and exit.
    Migrate(Database),
    /// Print the OpenAPI document of the HTTP API (what `GET /api/v1/openapi.json` serves) and
    /// exit; needs no configuration.
    Openapi,
    #[command(flatten)]
    Shared(SharedCommand),
}

const BINARY: Binary = Binary {
    name: "gc-service",
    ops_addr_env: "GC_OPS_ADDR",
    ops_default_port: 9080,
};

/// `Config` and the migration flags together are the settings of `serve`.
#[derive(Parser)]
#[command(about = "Run the global controller's HTTP and gRPC APIs")]
struct Serve {
    #[command(flatten)]
    config: Config,
    #[command(flatten)]
    migrations: MigrationArgs,
}

#[derive(Args)]
struct Database {
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: SecretString,
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    let command = match Cli::parse().command {
        Some(Command::Shared(shared)) => return Ok(BINARY.answer(shared)),
        Some(Command::Openapi) => {
            print!("{}", gc_service::routes::openapi::rendered()?);
            return Ok(std::process::ExitCode::SUCCESS);
        }
        Some(command) => command,
        None => Command::Serve(Box::new(BINARY.serve_settings())),
    };
    BINARY.run(|| run(command))?;
    Ok(std::process::ExitCode::SUCCESS)
}

async fn run(command: Command) -> anyhow::Result<()> {
    let (url, max_connections) = match &command {
        Command::Serve(serve) => (&serve.config.database_url, serve.config.db_max_connections),
        Command::Migrate(database) => (&database.database_url, 2),
        Command::Shared(_) | Command::Openapi => {
            unreachable!("answered before the runtime starts")
        }
    };
    let pool = db::connect(url, max_connections)
        .await
        .context("cannot connect to PostgreSQL (DATABASE_URL)")?;
    let mut migrator = db::migrator();
    // Migrations this build does not know were applied by a newer release: during a rolling
    // deploy an older replica must still start.
    migrator.set_ignore_missing(true);
    let wait_for_job = match &command {
        Command::Serve(serve) if !serve.migrations.migrate_on_start => {
            Some(Duration::from_secs(serve.migrations.migration_wait_secs))
        }
        _ => None,
    };
    match wait_for_job {
        Some(wait) => common::migrations::wait_until_applied(&pool, &migrator, wait).await?,
        // Safe with many replicas starting at once: sqlx holds an advisory lock while migrating.
        None => migrator
            .run(&pool)
            .await
            .context("database migration failed")?,
    }
    if let Command::Serve(serve) = command {
        let app = Application::build(serve.config, pool).await?;
        app.run_until_stopped(common::http::shutdown_signal()).await;
    }
    Ok(())
}
