//! The auth controller (AC): Convene's identity service and the only signer of JWTs.
//!
//! AC owns organizations, users, service credentials and the Ed25519 signing keys. It issues
//! user tokens (e-mail and password), service tokens (OAuth2 client credentials) and meeting
//! tokens (on behalf of GC), and publishes its public keys at `/.well-known/jwks.json` so GC and
//! MC verify tokens without calling AC. It must never hand out a password hash, a client secret
//! after creation, or a private key, never log an e-mail address, password, secret or token, and
//! never fall back to development credentials: those exist only in the seed file.
//!
//! Flow: [`config`] → [`startup::Application`] (routes in [`routes`], rules in [`domain`], SQL in
//! [`db`], key custody in [`keys`], token minting in [`tokens`], rate-limited and
//! capacity-bounded password checks in [`credential_check`]). [`seed`] loads development data.

pub mod auth;
pub mod config;
pub mod credential_check;
pub mod db;
pub mod domain;
pub mod error;
pub mod keys;
pub mod maintenance;
pub mod metrics;
pub mod oauth;
pub mod routes;
pub mod seed;
pub mod startup;
pub mod state;
pub mod tokens;

/// The migrations shared by AC and GC, embedded at compile time (see `build.rs`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Applies the shared migrations. sqlx holds a PostgreSQL advisory lock meanwhile, so replicas
/// starting together are safe. Migrations the database has but this binary does not are
/// tolerated: during a rolling deploy GC (or a newer AC) may already have applied the next one,
/// and an older AC replica must still be able to restart.
pub async fn migrate(pool: &sqlx::PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    let mut migrator = sqlx::migrate::Migrator {
        migrations: MIGRATOR.migrations.clone(),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    migrator.set_ignore_missing(true);
    migrator.run(pool).await
}
