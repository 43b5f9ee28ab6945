//! What the web client's page reads from the database: the controllers' WebSocket addresses,
//! whose origins its Content-Security-Policy lets the page connect to.

use common::db::Bounded;
use sqlx::PgPool;

/// The WebSocket URL of every registered meeting controller, each once.
pub async fn controller_websocket_urls(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("select distinct ws_url from meeting_controllers")
        .fetch_all(pool)
        .bounded()
        .await
}
