//! A minimal WebSocket echo server: the transport baseline of the signaling benchmark
//! (docs/benchmarks.md, "Signaling load (MC WebSocket)").
//!
//! ```text
//! cargo bench -p gc-service --bench ws_echo -- --addr 127.0.0.1:18283
//! # the town hall's baseline: every text frame goes to every socket
//! cargo bench -p gc-service --bench ws_echo -- --addr 127.0.0.1:18283 --broadcast
//! ```
//!
//! One task per connection reads each frame and writes it straight back: nothing is parsed,
//! queued or looked up, so what it sustains is what this machine's loopback TCP, tokio and
//! tungstenite allow for the same stream, with the load generator beside it. Sockets are
//! configured as MC's are (4 KiB read buffer, each message written at once, no Nagle), so the
//! difference to MC is MC's own work. It serves until killed; without `--addr` it prints this
//! usage and exits 0, so a plain `cargo bench` does not fail.
//!
//! With `--broadcast` it is the town hall's baseline instead (docs/benchmarks.md, "A town
//! hall: one broadcast to 1,000"): each socket has a bounded queue and a writer task, as MC's
//! sockets do, and a text frame read from any socket is queued for every socket, the sender
//! included (a full queue drops the frame for that socket). What separates it from MC's
//! fan-out is everything MC does before its own fan-out: parsing, the speaker detector or the
//! room script, Redis and its pub/sub.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use clap::Parser;
use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// A socket's queue in broadcast mode, as MC's default `WS_OUTBOUND_QUEUE`.
const QUEUE: usize = 256;

/// The broadcast mode's sockets, by connection number.
type Sockets = Arc<Mutex<HashMap<u64, mpsc::Sender<Message>>>>;

#[derive(Parser, Debug)]
#[command(name = "ws_echo", about = "WebSocket echo server (transport baseline)")]
struct Args {
    /// Address to listen on, e.g. 127.0.0.1:18283.
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// Send each text frame to every socket instead of echoing it.
    #[arg(long)]
    broadcast: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let Some(addr) = args.addr else {
        println!("ws_echo: nothing to do without --addr (see --help)");
        return Ok(());
    };
    let listener = TcpListener::bind(addr).await?;
    let sockets: Sockets = Arc::default();
    let mut next_id = 0;
    println!(
        "ws_echo listening on {addr}{}",
        if args.broadcast { " (broadcast)" } else { "" }
    );
    loop {
        match listener.accept().await {
            Ok((stream, _)) if args.broadcast => {
                next_id += 1;
                tokio::spawn(broadcast(stream, next_id, Arc::clone(&sockets)));
            }
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

/// MC's socket settings.
fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(64 * 1024)
        .max_message_size(Some(16 * 1024))
        .max_frame_size(Some(16 * 1024))
}

async fn echo(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config())).await
    else {
        return;
    };
    while let Some(Ok(message)) = ws.next().await {
        if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
            return;
        }
    }
}

/// One socket in broadcast mode: its writer drains its queue; its reader queues each text
/// frame for every socket.
async fn broadcast(stream: TcpStream, id: u64, sockets: Sockets) {
    let _ = stream.set_nodelay(true);
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config())).await else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let (queue, mut queued) = mpsc::channel::<Message>(QUEUE);
    sockets
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(id, queue);
    let writer = tokio::spawn(async move {
        while let Some(message) = queued.recv().await {
            if sink.send(message).await.is_err() {
                return;
            }
        }
    });
    while let Some(Ok(message)) = stream.next().await {
        if message.is_text() {
            let all: Vec<mpsc::Sender<Message>> = sockets
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .values()
                .cloned()
                .collect();
            for socket in all {
                let _ = socket.try_send(message.clone());
            }
        }
    }
    sockets
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&id);
    writer.abort();
}
