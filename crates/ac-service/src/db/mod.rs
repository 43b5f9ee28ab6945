//! Plain async functions over PostgreSQL, one module per table. Rows are returned as `*Row`
//! structs; routes map them to response types, so a column never reaches a client by accident.

use common::db::Bounded;

pub mod login_failures;
pub mod orgs;
pub mod service_credentials;
pub mod signing_keys;
pub mod users;

/// One round trip to PostgreSQL: what readiness asks of the database.
pub async fn ping(pool: &sqlx::PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("select 1")
        .execute(pool)
        .bounded()
        .await
        .map(|_| ())
}

/// Whether `error` is a unique-constraint violation (SQLSTATE 23505): a duplicate slug,
/// e-mail or client id, which the API answers with 409.
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some("23505"))
}
