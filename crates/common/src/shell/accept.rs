//! The accept loop every listener runs, and the task of each connection it accepts: the
//! connection bounds of [`ListenerLimits`] are enforced here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::{ListenerLimits, PendingListener, Protocol};

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
}

impl AcceptLoop {
    pub(super) async fn run(self) {
        let AcceptLoop {
            service,
            listener,
            connections,
            stopping,
            close_now,
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
        let refusals = Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT));
        let open = metrics::gauge!(format!("{service}_connections_open"), "listener" => name);
        let refused =
            metrics::counter!(format!("{service}_connections_refused_total"), "listener" => name);
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
            let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                refused.increment(1);
                if let Ok(refusal) = Arc::clone(&refusals).try_acquire_owned() {
                    tokio::spawn(async move {
                        refuse(stream, protocol).await;
                        drop(refusal);
                    });
                }
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
                idle_timeout: limits.idle_timeout,
                stopping: stopping.clone(),
                close_now: close_now.clone(),
            };
            let open = open.clone();
            open.increment(1.0);
            connections.spawn(async move {
                connection.serve(stream).await;
                open.decrement(1.0);
                drop(permit);
            });
        }
        tracing::debug!(service, listener = name, "listener closed");
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

/// When a connection last finished a request, and how many it has in flight.
struct Activity {
    started: Instant,
    in_flight: AtomicUsize,
    last_done_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_done_ms: AtomicU64::new(0),
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
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
            idle_timeout,
            stopping,
            close_now,
        } = self;
        let activity = Arc::new(Activity::new());
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
