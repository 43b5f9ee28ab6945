//! The fixtures: the stack from the environment (`config`), bounded HTTP with readable failures
//! (`http`), AC (`ac`: orgs, users, tokens, the admin API), GC (`gc`: `GcClient`), MC's signaling
//! WebSocket (`signaling`) and `/metrics` (`metrics`).

pub mod ac;
pub mod config;
pub mod gc;
pub mod http;
pub mod metrics;
pub mod signaling;

pub use ac::{Ac, Limits, Org, User, org};
pub use gc::{GcClient, Joined, named};
pub use signaling::Socket;

/// Fails the test at once, with a message naming the controller, when a meeting controller of
/// the stack does not answer its readiness probe: the tests that need MC say so in seconds
/// instead of waiting for a join's 503 or a socket's timeout.
pub async fn require_meeting_controllers() -> anyhow::Result<()> {
    let http = http::client();
    for mc in &config::stack().mcs {
        let reply = http::send(
            mc,
            http::request(&http, reqwest::Method::GET, mc, "/health/ready", None),
        )
        .await
        .map_err(|error| anyhow::anyhow!("this test needs every meeting controller: {error}"))?;
        if reply.status != 200 {
            return Err(reply
                .unexpected("expected 200")
                .context("this test needs every meeting controller ready"));
        }
    }
    Ok(())
}
