//! MC configuration, read from the environment (or flags) at start-up; anything missing or
//! malformed stops the process with a message naming it.

use std::net::SocketAddr;

use clap::Parser;
use common::shell::ShellSettings;

#[derive(Clone, Debug, Parser)]
#[command(name = "mc-service", about = "Convene meeting controller")]
pub struct Config {
    /// Address of the HTTP listener (WebSocket, health, metrics).
    #[arg(long, env = "MC_HTTP_ADDR", default_value = "0.0.0.0:8081")]
    pub http_addr: SocketAddr,

    /// Redis holding the live room state.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: String,

    /// Base URL of the auth controller, whose JWKS verifies meeting tokens.
    #[arg(long, env = "AC_URL")]
    pub ac_url: String,

    /// The `iss` every token must carry.
    #[arg(long, env = "JWT_ISSUER", default_value = "convene-ac")]
    pub jwt_issuer: String,

    /// Connection bounds, timeouts and stop timings of the listeners.
    #[command(flatten)]
    pub shell: ShellSettings,
}
