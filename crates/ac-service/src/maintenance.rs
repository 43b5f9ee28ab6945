//! The background task of every replica: rotate the signing key when it is due, switch to a key
//! that has activated (or was rotated by another replica), delete retired keys whose
//! publication has ended, and drop failure counters whose window ended long ago.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::db::login_failures;
use crate::keys::KeyStore;

/// Runs until `stop` is cancelled; a tick in progress finishes first. Errors are logged and
/// retried on the next tick: a database blip must not stop key refreshes for the life of the
/// process.
pub async fn run(
    keys: KeyStore,
    pool: PgPool,
    every: Duration,
    failure_window: Duration,
    stop: CancellationToken,
) {
    // The first tick is one period away: start-up has just loaded the keys.
    keys.record_age();
    common::shell::every(every, stop, || run_once(&keys, &pool, failure_window)).await;
}

/// One tick of [`run`]. Every step runs even if an earlier one failed.
pub async fn run_once(keys: &KeyStore, pool: &PgPool, failure_window: Duration) {
    if let Err(error) = keys.rotate_if_due().await {
        tracing::warn!(
            error = format!("{error:#}"),
            "scheduled key rotation failed"
        );
    }
    if let Err(error) = keys.refresh_active().await {
        tracing::warn!(
            error = format!("{error:#}"),
            "reloading the signing key failed"
        );
    }
    keys.record_age();
    if let Err(error) = keys.delete_unpublished().await {
        tracing::warn!(%error, "deleting retired signing keys failed");
    }
    match login_failures::purge_expired(pool, failure_window).await {
        Ok(0) => {}
        Ok(purged) => tracing::debug!(purged, "purged expired failure counters"),
        Err(error) => tracing::warn!(%error, "purging failure counters failed"),
    }
}
