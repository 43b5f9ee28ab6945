//! The background task of every replica: rotate the signing key when it is due, pick up a key
//! rotated by another replica, and drop sign-in counters whose window ended long ago.

use std::time::Duration;

use sqlx::PgPool;
use tokio::time::MissedTickBehavior;

use crate::db::login_failures;
use crate::keys::KeyStore;

/// Runs until the task is aborted. Errors are logged and retried on the next tick: a database
/// blip must not stop key refreshes for the life of the process.
pub async fn run(keys: KeyStore, pool: PgPool, every: Duration, login_window: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The first tick fires at once; start-up has just loaded the keys.
    ticker.tick().await;
    loop {
        ticker.tick().await;
        tick(&keys, &pool, login_window).await;
    }
}

async fn tick(keys: &KeyStore, pool: &PgPool, login_window: Duration) {
    if let Err(error) = keys.rotate_if_due().await {
        tracing::warn!(
            error = format!("{error:#}"),
            "scheduled key rotation failed"
        );
    }
    if let Err(error) = keys.refresh_active().await {
        tracing::warn!(
            error = format!("{error:#}"),
            "reloading the active key failed"
        );
    }
    match login_failures::purge_expired(pool, login_window).await {
        Ok(0) => {}
        Ok(purged) => tracing::debug!(purged, "purged expired sign-in counters"),
        Err(error) => tracing::warn!(%error, "purging sign-in counters failed"),
    }
}
