//! Start-up without migrating: wait until a migration job has applied the schema.
//!
//! By default AC and GC migrate at start-up (sqlx holds an advisory lock, so replicas starting
//! together are safe). A deployment that runs migrations as a job of their own
//! (`MIGRATE_ON_START=false`, the Kubernetes manifests) starts the replicas at the same time as
//! the job; each replica then waits here until every migration it was built with is applied,
//! and gives up after a bound so that a job that failed shows as a crash loop, not a silent hang.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::migrate::Migrator;

/// How often the applied migrations are read again while waiting.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error(
        "migrations {0:?} are still not applied after MIGRATION_WAIT_SECS: run the migration job \
         (`<service> migrate`) or start with MIGRATE_ON_START=true"
    )]
    NotApplied(Vec<i64>),
    #[error("a migration failed half-way (version {0}): repair it before starting")]
    Failed(i64),
    #[error("cannot read the applied migrations: {0}")]
    Database(#[from] sqlx::Error),
}

/// The versions of `migrator` not yet applied to the database behind `pool`.
pub async fn pending(pool: &PgPool, migrator: &Migrator) -> Result<Vec<i64>, WaitError> {
    // Before the first migration there is no table yet: everything is pending.
    let table: Option<String> = sqlx::query_scalar("select to_regclass('_sqlx_migrations')::text")
        .fetch_one(pool)
        .await?;
    let applied: Vec<(i64, bool)> = if table.is_some() {
        sqlx::query_as("select version, success from _sqlx_migrations")
            .fetch_all(pool)
            .await?
    } else {
        Vec::new()
    };
    if let Some((version, _)) = applied.iter().find(|(_, success)| !success) {
        return Err(WaitError::Failed(*version));
    }
    let applied: HashSet<i64> = applied.into_iter().map(|(version, _)| version).collect();
    Ok(migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| m.version)
        .filter(|version| !applied.contains(version))
        .collect())
}

/// Returns once every migration of `migrator` is applied, or fails after `wait`.
pub async fn wait_until_applied(
    pool: &PgPool,
    migrator: &Migrator,
    wait: Duration,
) -> Result<(), WaitError> {
    let started = Instant::now();
    loop {
        let missing = pending(pool, migrator).await?;
        if missing.is_empty() {
            tracing::info!(
                "schema is up to date; serving without migrating (MIGRATE_ON_START=false)"
            );
            return Ok(());
        }
        if started.elapsed() >= wait {
            return Err(WaitError::NotApplied(missing));
        }
        tracing::info!(
            ?missing,
            "waiting for the migration job to apply the schema"
        );
        tokio::time::sleep(POLL_INTERVAL.min(wait.saturating_sub(started.elapsed()))).await;
    }
}

/// How a service's `serve` treats the schema: the flags AC and GC share.
#[derive(Clone, Debug, clap::Args)]
pub struct MigrationArgs {
    /// Apply the migrations at start-up (`true`), or wait for a migration job to have applied
    /// them (`false`; the Kubernetes manifests run `gc-service migrate` as a Job).
    #[arg(long, env = "MIGRATE_ON_START", default_value_t = true, action = clap::ArgAction::Set)]
    pub migrate_on_start: bool,

    /// With MIGRATE_ON_START=false: seconds to wait for the schema before giving up.
    #[arg(long, env = "MIGRATION_WAIT_SECS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub migration_wait_secs: u64,
}
