//! The accept loop every listener runs, and the task of each connection it accepts: the
//! connection bounds of [`ListenerLimits`] are enforced here.
//!
//! A connection is admitted when its address holds fewer than `max_connections_per_address`
//! and the listener fewer than `max_connections`; otherwise it is refused at once. Once
//! admitted it must complete a request head within `header_read_timeout` of being accepted, or
//! it is dropped: hyper's own head timeout starts only with the first byte (the protocol
//! detection of `auto::Builder` waits for bytes with no timeout of its own), and HTTP/2 has none,
//! so without this a socket that sends nothing, part of a head, or only the HTTP/2 preface
//! would hold its place until the idle timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::per_address::ConnectionsPerAddress;
use super::{ListenerLimits, Occupancy, PendingListener, Protocol};

/// Refused connections answered at once at most; beyond this they are just closed.
const MAX_REFUSALS_IN_FLIGHT: usize = 64;
/// How long writing a refusal may take.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause after an accept error that is not about one connection (out of descriptors):
/// retrying at once would spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);
/// How long a connection that was asked to close may take to finish its request.
const CONNECTION_CLOSE_GRACE: Duration = Duration::from_secs(10);

pub(super) struct AcceptLoop {
    pub(super) service: &'static str,
    pub(super) listener: PendingListener,
    pub(super) connections: TaskTracker,
    pub(super) stopping: CancellationToken,
    pub(super) close_now: CancellationToken,
    pub(super) occupancy: Arc<watch::Sender<Occupancy>>,
}

impl AcceptLoop {
    pub(super) async fn run(self) {
        let AcceptLoop {
            service,
            listener,
            connections,
            stopping,
            close_now,
            occupancy,
        } = self;
        let PendingListener {
            name,
            listener,
            router,
            protocol,
            limits,
        } = listener;
        let builder = Arc::new(connection_builder(protocol, &limits));
        let permits = Arc::new(Semaphore::new(limits.max_connections));
        let per_address = ConnectionsPerAddress::new(limits.max_connections_per_address);
        let refusals = Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT));
        let open = metrics::gauge!(format!("{service}_connections_open"), "listener" => name);
        let refused = |reason: Refusal| {
            metrics::counter!(
                format!("{service}_connections_refused_total"),
                "listener" => name,
                "reason" => reason.label(),
            )
        };
        let (refused_listener_full, refused_address_full) = (
            refused(Refusal::ListenerFull),
            refused(Refusal::AddressFull),
        );
        loop {
            let accepted = tokio::select! {
                () = stopping.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) if is_per_connection_error(&error) => continue,
                Err(error) => {
                    tracing::warn!(service, listener = name, %error, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            };
            // The address first: when both are full, the address is the more useful reason.
            let Some(address_permit) = per_address.try_acquire(peer.ip()) else {
                refused_address_full.increment(1);
                turn_away(stream, protocol, &refusals, &connections);
                continue;
            };
            let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                refused_listener_full.increment(1);
                turn_away(stream, protocol, &refusals, &connections);
                continue;
            };
            let _ = stream.set_nodelay(true);
            if let Some(bytes) = limits.send_buffer_bytes {
                let _ = socket2::SockRef::from(&stream).set_send_buffer_size(bytes);
            }
            let connection = Connection {
                builder: Arc::clone(&builder),
                router: router.clone(),
                peer,
                accepted: Instant::now(),
                first_request_timeout: limits.header_read_timeout,
                idle_timeout: limits.idle_timeout,
                stopping: stopping.clone(),
                close_now: close_now.clone(),
            };
            let open = open.clone();
            open.increment(1.0);
            occupancy.send_modify(|o| o.connections += 1);
            let occupancy = Arc::clone(&occupancy);
            connections.spawn(async move {
                connection.serve(stream).await;
                open.decrement(1.0);
                occupancy.send_modify(|o| o.connections -= 1);
                drop((permit, address_permit));
            });
        }
        // Closed before it is reported closed: whoever waits for the report may rely on it.
        drop(listener);
        occupancy.send_modify(|o| o.listening -= 1);
        tracing::debug!(service, listener = name, "listener closed");
    }
}

/// Why a connection was refused: the `reason` of `{service}_connections_refused_total`.
#[derive(Clone, Copy, Debug)]
enum Refusal {
    /// The listener holds `max_connections`.
    ListenerFull,
    /// The connection's address holds `max_connections_per_address`.
    AddressFull,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::ListenerFull => "listener_full",
            Refusal::AddressFull => "address_full",
        }
    }
}

/// Refuses a connection ([`refuse`]) on a task of its own, while fewer than
/// [`MAX_REFUSALS_IN_FLIGHT`] refusals are being written; beyond that it is just closed, so a
/// flood of connections that never read cannot make the refusals themselves pile up. The task
/// is one of the listener's `connections`: a stop waits for a refusal being written (at most
/// [`REFUSAL_WRITE_TIMEOUT`]) as for any connection.
fn turn_away(
    stream: TcpStream,
    protocol: Protocol,
    refusals: &Arc<Semaphore>,
    connections: &TaskTracker,
) {
    if let Ok(refusal) = Arc::clone(refusals).try_acquire_owned() {
        connections.spawn(async move {
            refuse(stream, protocol).await;
            drop(refusal);
        });
    }
}

/// Errors that concern the one connection being accepted, after which accepting goes on.
fn is_per_connection_error(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    )
}

fn connection_builder(protocol: Protocol, limits: &ListenerLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true)
        .max_buf_size(limits.max_head_bytes.max(8192))
        .max_headers(128);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_head_bytes).unwrap_or(u32::MAX))
        // Finds peers that vanished without closing (a pulled cable, a killed pod).
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10));
    match protocol {
        Protocol::Http => builder,
        Protocol::Grpc => builder.http2_only(),
    }
}

/// Answers a connection over the limit. HTTP clients get a 503 envelope they can act on;
/// a gRPC client's connection is closed (it sees UNAVAILABLE and retries elsewhere).
async fn refuse(mut stream: TcpStream, protocol: Protocol) {
    if protocol == Protocol::Http {
        let body = r#"{"error":{"code":"SERVICE_UNAVAILABLE","message":"too many connections, retry later"}}"#;
        let response = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
            stream.write_all(response.as_bytes()).await?;
            stream.shutdown().await
        })
        .await;
    }
}

/// Whether a connection has sent a request yet, when it last finished one, and how many it has
/// in flight.
struct Activity {
    /// When the connection was accepted.
    started: Instant,
    /// Set when the first request head has arrived: the service runs only once hyper has
    /// parsed one, whatever the protocol.
    requested: AtomicBool,
    in_flight: AtomicUsize,
    last_done_ms: AtomicU64,
}

impl Activity {
    fn new(started: Instant) -> Self {
        Self {
            started,
            requested: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            last_done_ms: AtomicU64::new(0),
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.requested.store(true, Ordering::Release);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }

    /// When the connection is dropped unless a request head arrives before; `None` once one
    /// has.
    fn first_request_deadline(&self, timeout: Duration) -> Option<Instant> {
        (!self.requested.load(Ordering::Acquire)).then(|| self.started + timeout)
    }

    /// When the connection becomes idle for `timeout`, if nothing happens before.
    fn idle_deadline(&self, timeout: Duration) -> Instant {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Instant::now() + timeout;
        }
        let last = Duration::from_millis(self.last_done_ms.load(Ordering::Acquire));
        self.started + last + timeout
    }
}

struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let elapsed = u64::try_from(self.0.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.last_done_ms.store(elapsed, Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

struct Connection {
    builder: Arc<auto::Builder<TokioExecutor>>,
    router: Router,
    peer: SocketAddr,
    accepted: Instant,
    /// Time from the accept to the first complete request head.
    first_request_timeout: Duration,
    idle_timeout: Duration,
    stopping: CancellationToken,
    close_now: CancellationToken,
}

impl Connection {
    async fn serve(self, stream: TcpStream) {
        let Connection {
            builder,
            router,
            peer,
            accepted,
            first_request_timeout,
            idle_timeout,
            stopping,
            close_now,
        } = self;
        let activity = Arc::new(Activity::new(accepted));
        let service = {
            let activity = Arc::clone(&activity);
            hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                let in_flight = activity.begin();
                let response = router.clone().oneshot(request);
                async move {
                    let response = response.await;
                    drop(in_flight);
                    response
                }
            })
        };
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        tokio::pin!(connection);
        let mut closing_since: Option<Instant> = None;
        loop {
            let idle_at = activity.idle_deadline(idle_timeout);
            let first_request_by = activity.first_request_deadline(first_request_timeout);
            let give_up_at = closing_since.map(|since| since + CONNECTION_CLOSE_GRACE);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%peer, error = %error, "connection ended with an error");
                    }
                    break;
                }
                () = stopping.cancelled(), if closing_since.is_none() => {
                    connection.as_mut().graceful_shutdown();
                    closing_since = Some(Instant::now());
                }
                () = tokio::time::sleep_until(idle_at), if closing_since.is_none() => {
                    if activity.idle_deadline(idle_timeout) <= Instant::now() {
                        tracing::debug!(%peer, "closing an idle connection");
                        connection.as_mut().graceful_shutdown();
                        closing_since = Some(Instant::now());
                    }
                }
                // Dropped, not shut down gracefully: a client that has not sent a request in
                // this long is not one to wait for, and HTTP/2's goodbye would only give it
                // more time.
                () = sleep_until_opt(first_request_by) => {
                    if activity.first_request_deadline(first_request_timeout).is_some() {
                        tracing::debug!(%peer, "dropping a connection that sent no request in time");
                        break;
                    }
                }
                () = sleep_until_opt(give_up_at) => break,
                () = close_now.cancelled() => break,
            }
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
