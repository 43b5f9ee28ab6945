//! A webhook receiver for the benchmarks: answers every `POST /hook` 204 at once, and counts
//! the requests and their distinct `webhook-id`s, shown at `GET /stats` as
//! `{"received": n, "distinct": m}`. It does not verify signatures (the tests do): in a
//! benchmark on the same machine as GC, its CPU is the cost of a receiver, and it should be
//! the cheapest one there is. It runs until killed; it listens on loopback only.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};

#[derive(Default)]
struct Seen {
    received: u64,
    ids: HashSet<String>,
}

type Shared = Arc<Mutex<Seen>>;

/// Serves the receiver on `addr` (a loopback address) until the process is killed.
pub async fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    if !addr.ip().is_loopback() {
        bail!("the benchmark's webhook receiver listens on loopback only, not {addr}");
    }
    let seen: Shared = Arc::default();
    let app = Router::new()
        .route("/hook", post(receive))
        .route("/stats", get(stats))
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn receive(State(seen): State<Shared>, headers: HeaderMap) -> StatusCode {
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut seen = seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    seen.received += 1;
    seen.ids.insert(id);
    StatusCode::NO_CONTENT
}

async fn stats(State(seen): State<Shared>) -> String {
    let seen = seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    format!(
        "{{\"received\": {}, \"distinct\": {}}}",
        seen.received,
        seen.ids.len()
    )
}
