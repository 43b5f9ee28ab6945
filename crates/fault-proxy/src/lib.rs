//! A TCP proxy that breaks the connection between a service and one of its dependencies on
//! command, the role toxiproxy plays elsewhere (this kernel has no `netem`): put it between GC
//! and PostgreSQL, MC and Redis, GC and AC, and tell it what the network does now.
//!
//! A fault applies at once to the connections already open and to new ones:
//! - [`Fault::Pass`] forwards every byte as it comes;
//! - [`Fault::Delay`] holds each chunk for the given time in each direction (a round trip
//!   gains twice that);
//! - [`Fault::Stall`] accepts and holds everything, forwarding nothing, until the fault
//!   changes (a dependency that hangs: SIGSTOP, a full disk, a lost route with no RST), then
//!   forwards what it held;
//! - [`Fault::Blackhole`] reads and drops every byte, answering nothing (a partition that
//!   drops packets): connections stay open, and whatever was sent meanwhile is lost;
//! - [`Fault::Reset`] closes every connection with a TCP reset, and new ones at once (a
//!   dependency that died: the peer's kernel answers RST).
//!
//! Every task of the proxy ends when it is dropped. Bounded: at most [`MAX_CONNECTIONS`]
//! connections at once (more are reset), chunks of at most 64 KiB, at most 64 chunks held per
//! direction.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// Connections the proxy holds at once, at most.
pub const MAX_CONNECTIONS: usize = 1024;
const CHUNK: usize = 64 * 1024;
/// Chunks read and not yet written, per direction of a connection, at most (a delay holds
/// them); the reader waits beyond that.
const IN_FLIGHT: usize = 64;

/// What the network between the two sides does now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Pass,
    Delay(Duration),
    Stall,
    Blackhole,
    Reset,
}

/// A running proxy to one upstream address.
pub struct FaultProxy {
    addr: SocketAddr,
    fault: watch::Sender<Fault>,
    upstream: watch::Sender<SocketAddr>,
    _tasks: JoinSet<()>,
}

impl FaultProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> io::Result<FaultProxy> {
        FaultProxy::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), upstream).await
    }

    /// Listens on `listen` (a fixed port, for a stack whose services are other processes
    /// configured before the proxy starts) and forwards to `upstream`.
    pub async fn start_on(listen: SocketAddr, upstream: SocketAddr) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (fault, watching) = watch::channel(Fault::Pass);
        let (upstream, following) = watch::channel(upstream);
        let mut tasks = JoinSet::new();
        tasks.spawn(accept(listener, following, watching));
        Ok(FaultProxy {
            addr,
            fault,
            upstream,
            _tasks: tasks,
        })
    }

    /// Where the service should connect instead of the dependency.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port of [`FaultProxy::addr`].
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// From now on, for every connection.
    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }

    pub fn fault(&self) -> Fault {
        *self.fault.borrow()
    }

    /// From now on, new connections go to `upstream`, and the open ones are reset: what a
    /// virtual address moved to a promoted replica does (no session of the old server lives on).
    pub fn set_upstream(&self, upstream: SocketAddr) {
        self.upstream.send_replace(upstream);
    }
}

async fn accept(
    listener: TcpListener,
    upstream: watch::Receiver<SocketAddr>,
    fault: watch::Receiver<Fault>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                    reset(client);
                    continue;
                };
                let fault = fault.clone();
                let upstream = upstream.clone();
                connections.spawn(async move {
                    relay(client, upstream, fault).await;
                    drop(slot);
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Closes `stream` with a reset rather than a FIN.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn relay(
    client: TcpStream,
    mut upstream: watch::Receiver<SocketAddr>,
    mut fault: watch::Receiver<Fault>,
) {
    let _ = client.set_nodelay(true);
    // A reset dependency refuses new connections too; a stalled or blackholed one accepts
    // them (the kernel does) and never answers, so the upstream connection waits with them.
    if *fault.borrow_and_update() == Fault::Reset {
        reset(client);
        return;
    }
    let to = *upstream.borrow_and_update();
    let Ok(server) = TcpStream::connect(to).await else {
        reset(client);
        return;
    };
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let mut pumps = JoinSet::new();
    pumps.spawn(pump(client_read, server_write, fault.clone()));
    pumps.spawn(pump(server_read, client_write, fault.clone()));
    loop {
        tokio::select! {
            // Either side closing (or failing) ends the connection.
            _ = pumps.join_next() => return,
            _ = upstream.changed() => {
                pumps.abort_all();
                return;
            }
            changed = fault.changed() => {
                if changed.is_err() || *fault.borrow_and_update() == Fault::Reset {
                    // Aborting the pumps drops both halves of both sockets; the reset is
                    // what their linger setting makes of that.
                    pumps.abort_all();
                    return;
                }
            }
        }
    }
}

/// Copies `from` to `to` a chunk at a time, as the current fault says.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, fault: watch::Receiver<Fault>) {
    let _ = from.as_ref().set_zero_linger();
    let _ = to.as_ref().set_zero_linger();
    // The reader stamps each chunk with its arrival and queues it; the writer sends it when the
    // fault allows. A delay is latency, not a bandwidth limit: chunks in flight are delayed
    // together, each by the delay from its own arrival, in order.
    let (queue, mut queued) =
        tokio::sync::mpsc::channel::<(tokio::time::Instant, Vec<u8>)>(IN_FLIGHT);
    let reader = async move {
        let mut buffer = vec![0u8; CHUNK];
        loop {
            let read = match from.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => read,
            };
            let arrived = tokio::time::Instant::now();
            if queue
                .send((arrived, buffer[..read].to_vec()))
                .await
                .is_err()
            {
                return;
            }
        }
    };
    let writer = async move {
        let mut fault = fault;
        while let Some((arrived, chunk)) = queued.recv().await {
            // What to do with this chunk depends on the fault when it is due, and a stall holds
            // it until the fault changes.
            loop {
                let now = *fault.borrow_and_update();
                match now {
                    Fault::Pass | Fault::Blackhole => break,
                    Fault::Delay(by) => {
                        tokio::time::sleep_until(arrived + by).await;
                        break;
                    }
                    Fault::Stall => {
                        if fault.changed().await.is_err() {
                            return;
                        }
                    }
                    Fault::Reset => return,
                }
            }
            if *fault.borrow() == Fault::Blackhole {
                continue;
            }
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// An echo server on a free port.
    async fn echo() -> SocketAddr {
        serve(b"").await
    }

    /// A server on a free port that sends `greeting` to every connection, then echoes.
    async fn serve(greeting: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let _ = socket.write_all(greeting).await;
                    let (mut r, mut w) = socket.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn round_trip(stream: &mut TcpStream, within: Duration) -> io::Result<Vec<u8>> {
        stream.write_all(b"ping").await?;
        let mut answer = [0u8; 4];
        match tokio::time::timeout(within, stream.read_exact(&mut answer)).await {
            Ok(read) => read.map(|_| answer.to_vec()),
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        }
    }

    #[tokio::test]
    async fn each_fault_does_what_it_says_to_open_and_new_connections() {
        let proxy = FaultProxy::start(echo().await).await.unwrap();
        let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
        let second = Duration::from_secs(1);
        assert_eq!(round_trip(&mut open, second).await.unwrap(), b"ping");

        proxy.set(Fault::Delay(Duration::from_millis(150)));
        let started = Instant::now();
        assert_eq!(round_trip(&mut open, second).await.unwrap(), b"ping");
        assert!(started.elapsed() >= Duration::from_millis(300));

        // A stall holds the bytes, and forwards them once it is lifted.
        proxy.set(Fault::Stall);
        let held = round_trip(&mut open, Duration::from_millis(300)).await;
        assert_eq!(held.unwrap_err().kind(), io::ErrorKind::TimedOut);
        proxy.set(Fault::Pass);
        let mut late = [0u8; 4];
        tokio::time::timeout(second, open.read_exact(&mut late))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&late, b"ping");

        // A blackhole loses what is sent meanwhile, and the connection lives on.
        proxy.set(Fault::Blackhole);
        let lost = round_trip(&mut open, Duration::from_millis(300)).await;
        assert_eq!(lost.unwrap_err().kind(), io::ErrorKind::TimedOut);
        proxy.set(Fault::Pass);
        assert_eq!(round_trip(&mut open, second).await.unwrap(), b"ping");

        // A reset ends open connections and refuses new ones until it is lifted.
        proxy.set(Fault::Reset);
        let mut byte = [0u8; 1];
        let ended = tokio::time::timeout(second, open.read(&mut byte))
            .await
            .unwrap();
        assert!(matches!(ended, Ok(0) | Err(_)), "{ended:?}");
        let mut refused = TcpStream::connect(proxy.addr()).await.unwrap();
        assert!(round_trip(&mut refused, second).await.is_err());
        proxy.set(Fault::Pass);
        let mut again = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut again, second).await.unwrap(), b"ping");
    }

    async fn greeting(stream: &mut TcpStream) -> u8 {
        let mut tag = [0u8; 1];
        tokio::time::timeout(Duration::from_secs(1), stream.read_exact(&mut tag))
            .await
            .unwrap()
            .unwrap();
        tag[0]
    }

    #[tokio::test]
    async fn a_moved_upstream_takes_new_connections_and_resets_the_open_ones() {
        let proxy = FaultProxy::start(serve(b"a").await).await.unwrap();
        let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(greeting(&mut open).await, b'a');

        proxy.set_upstream(serve(b"b").await);
        // The session with the old server does not live on.
        let mut byte = [0u8; 1];
        let ended = tokio::time::timeout(Duration::from_secs(1), open.read(&mut byte))
            .await
            .unwrap();
        assert!(matches!(ended, Ok(0) | Err(_)), "{ended:?}");
        let mut moved = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(greeting(&mut moved).await, b'b');
        assert_eq!(
            round_trip(&mut moved, Duration::from_secs(1))
                .await
                .unwrap(),
            b"ping"
        );
    }
}
