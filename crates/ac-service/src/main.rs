//! `ac-service [serve|migrate|seed --file PATH|healthcheck|openapi]`; `serve` is the default.

use std::path::PathBuf;
use std::time::Duration;

use ac_service::config::{Config, Safeguards};
use ac_service::startup::Application;
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use common::cli::{Binary, SharedCommand};
use common::migrations::MigrationArgs;
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;

#[derive(Parser)]
#[command(name = "ac-service", about = "Convene auth controller")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate the database (or wait for a migration job), then serve the HTTP API (the default).
    Serve(Box<Serve>),
    /// Apply the database migrations and exit.
    Migrate(Database),
    /// Create or update the clients, orgs and users of a seed file (development only).
    Seed {
        #[command(flatten)]
        database: Database,
        /// Path of the seed JSON file.
        #[arg(long)]
        file: PathBuf,
    },
    /// Print the OpenAPI document of the HTTP API (what `GET /api/v1/openapi.json` serves) and
    /// exit; needs no configuration.
    Openapi,
    #[command(flatten)]
    Shared(SharedCommand),
}

const BINARY: Binary = Binary {
    name: "ac-service",
    ops_addr_env: "AC_OPS_ADDR",
    ops_default_port: 9082,
};

/// `Config` and `Safeguards` together are the settings of `serve`.
#[derive(Parser)]
#[command(about = "Run the auth controller's HTTP API")]
struct Serve {
    #[command(flatten)]
    config: Config,
    #[command(flatten)]
    safeguards: Safeguards,
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
            print!("{}", ac_service::routes::openapi::rendered()?);
            return Ok(std::process::ExitCode::SUCCESS);
        }
        Some(command) => command,
        None => Command::Serve(Box::new(BINARY.serve_settings())),
    };
    BINARY.run(|| run(command))?;
    Ok(std::process::ExitCode::SUCCESS)
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(serve_args) => serve(*serve_args).await,
        Command::Migrate(database) => {
            let pool = connect(&database.database_url, 2).await?;
            migrate(&pool).await
        }
        Command::Seed { database, file } => {
            let seed = ac_service::seed::SeedFile::from_path(&file)?;
            let pool = connect(&database.database_url, 2).await?;
            ac_service::seed::apply(&pool, &seed).await?;
            tracing::info!("seed applied");
            Ok(())
        }
        Command::Shared(_) | Command::Openapi => {
            unreachable!("answered before the runtime starts")
        }
    }
}

async fn serve(
    Serve {
        config,
        safeguards,
        migrations,
    }: Serve,
) -> anyhow::Result<()> {
    let pool = connect(&config.database_url, config.db_max_connections).await?;
    if migrations.migrate_on_start {
        migrate(&pool).await?;
    } else {
        let wait = Duration::from_secs(migrations.migration_wait_secs);
        common::migrations::wait_until_applied(&pool, &ac_service::MIGRATOR, wait).await?;
    }
    let app = Application::build_with(config, safeguards, pool).await?;
    app.run_until_stopped(common::http::shutdown_signal()).await;
    Ok(())
}

async fn connect(url: &SecretString, max_connections: u32) -> anyhow::Result<PgPool> {
    common::db::pool_options()
        .max_connections(max_connections)
        .connect(url.expose_secret())
        .await
        .context("cannot connect to PostgreSQL (DATABASE_URL)")
}

async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    ac_service::migrate(pool)
        .await
        .context("database migration failed")
}
