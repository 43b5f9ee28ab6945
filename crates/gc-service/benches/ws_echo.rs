//! A minimal WebSocket echo server: the transport baseline of the signaling benchmark
//! (docs/benchmarks.md, "Signaling load (MC WebSocket)").
//!
//! ```text
//! cargo bench -p gc-service --bench ws_echo -- --addr 127.0.0.1:18283
//! ```
//!
//! One task per connection reads each frame and writes it straight back: nothing is parsed,
//! queued or looked up, so what it sustains is what this machine's loopback TCP, tokio and
//! tungstenite allow for the same stream, with the load generator beside it. Sockets are
//! configured as MC's are (4 KiB read buffer, each message written at once, no Nagle), so the
//! difference to MC is MC's own work. It serves until killed; without `--addr` it prints this
//! usage and exits 0, so a plain `cargo bench` does not fail.

use std::net::SocketAddr;

use clap::Parser;
use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

#[derive(Parser, Debug)]
#[command(name = "ws_echo", about = "WebSocket echo server (transport baseline)")]
struct Args {
    /// Address to listen on, e.g. 127.0.0.1:18283.
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Some(addr) = Args::parse().addr else {
        println!("ws_echo: nothing to do without --addr (see --help)");
        return Ok(());
    };
    let listener = TcpListener::bind(addr).await?;
    println!("ws_echo listening on {addr}");
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(echo(stream));
            }
            // Out of file descriptors, say: the run's numbers will show it; keep serving.
            Err(error) => {
                eprintln!("accept failed: {error}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

async fn echo(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(64 * 1024)
        .max_message_size(Some(16 * 1024))
        .max_frame_size(Some(16 * 1024));
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    while let Some(Ok(message)) = ws.next().await {
        if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
            return;
        }
    }
}
