//! The process shell every Convene service runs in: its listeners (HTTP, gRPC, and the
//! WebSockets upgraded from HTTP), its background jobs, its readiness, and an orderly stop.
//!
//! A service builds its routers and jobs, hands them to a [`Shell`], and calls
//! [`Shell::run`] with the future that says when to stop (SIGTERM in production, a channel in
//! tests). On that signal the shell stops in this order, each step bounded in time:
//!
//! 1. readiness turns not-ready ([`Readiness`]), so load balancers stop sending new work, and
//!    the shell waits [`ShutdownTimings::readiness_grace`] for them to notice;
//! 2. listeners stop accepting; open connections finish their requests in flight and close
//!    (HTTP/1 after the current response, HTTP/2 with GOAWAY), and everything that watches
//!    [`ShellHandle::stopping`] (WebSockets) says goodbye; whatever is still open after
//!    [`ShutdownTimings::drain_timeout`] is closed;
//! 3. background jobs are cancelled through their [`CancellationToken`] and awaited for at most
//!    [`ShutdownTimings::jobs_timeout`].
//!
//! Every listener bounds what a client can hold (see [`ListenerLimits`]): the number of open
//! connections (beyond it a connection is answered at once and closed, before file
//! descriptors run out), the time to send a request head, and the time a connection may sit
//! idle with no request in flight. These are the defences against slowloris and idle-socket
//! floods; they apply to HTTP/1, HTTP/2 and gRPC alike because every listener goes through the
//! same accept loop.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// Whether the service wants new work. Starts ready; the shell turns it off first when
/// stopping. A service's `/health/ready` answers 503 when it is off, whatever its
/// dependencies say.
#[derive(Clone, Debug)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    fn new() -> Self {
        Self(Arc::new(AtomicBool::new(true)))
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    fn set_not_ready(&self) {
        self.0.store(false, Ordering::Release);
    }
}

/// What tasks outside the accept loops need from the shell: WebSocket tasks watch
/// [`ShellHandle::stopping`] to close with "going away" and are spawned on
/// [`ShellHandle::tracker`] so the shell waits for them while draining.
#[derive(Clone, Debug)]
pub struct ShellHandle {
    stopping: CancellationToken,
    tracker: TaskTracker,
    readiness: Readiness,
}

impl ShellHandle {
    /// Cancelled when listeners start draining.
    pub fn stopping(&self) -> &CancellationToken {
        &self.stopping
    }

    /// Tasks the drain step waits for (connections and sockets).
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }
}

/// The protocol a listener speaks, which decides how a connection over the limit is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 (and HTTP/2 with prior knowledge): REST, health, metrics, WebSocket upgrades.
    Http,
    /// gRPC: HTTP/2 only.
    Grpc,
}

/// What one listener lets a client hold.
#[derive(Clone, Debug)]
pub struct ListenerLimits {
    /// Open connections at most; the next one is refused at once (HTTP: a 503 envelope with
    /// `Connection: close`; gRPC: closed) until one closes.
    pub max_connections: usize,
    /// HTTP/1: time to send a complete request head, counted from the connection's start and
    /// again from the end of each response (so it also ends idle keep-alive connections).
    pub header_read_timeout: Duration,
    /// Any protocol: a connection with no request in flight for this long is closed
    /// gracefully (it also ends connections that never send a byte, and idle HTTP/2 ones).
    pub idle_timeout: Duration,
    /// Largest request head hyper buffers (HTTP/1). Heads above the service's own, smaller
    /// limits get an envelope from `common::http`; above this one hyper answers 431 itself.
    pub max_head_bytes: usize,
    /// HTTP/2 streams one connection may have open.
    pub max_concurrent_streams: u32,
    /// The kernel's send buffer of each connection (`SO_SNDBUF`), when set; `None` leaves the
    /// kernel's autotuning, which may grow it to megabytes for a client that does not read.
    /// A listener of long-lived sockets sets it, so that such a client is found out (its
    /// service-side queue fills) after kilobytes, and so kernel memory per socket is bounded.
    pub send_buffer_bytes: Option<usize>,
}

impl ListenerLimits {
    /// Defaults for a public HTTP listener.
    pub fn http() -> Self {
        Self {
            max_connections: 4096,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_head_bytes: 64 * 1024,
            max_concurrent_streams: 128,
            send_buffer_bytes: None,
        }
    }

    /// Defaults for an internal gRPC listener: few, long-lived connections from other services.
    pub fn grpc() -> Self {
        Self {
            max_connections: 512,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            max_head_bytes: 64 * 1024,
            max_concurrent_streams: 256,
            send_buffer_bytes: None,
        }
    }
}

/// How long each step of a stop may take.
#[derive(Clone, Debug)]
pub struct ShutdownTimings {
    /// Between readiness turning off and listeners closing: time for load balancers to notice.
    pub readiness_grace: Duration,
    /// For connections to finish their requests in flight; then they are closed.
    pub drain_timeout: Duration,
    /// For background jobs to stop once cancelled.
    pub jobs_timeout: Duration,
}

impl Default for ShutdownTimings {
    /// Fits Kubernetes' default 30 s termination grace period: 5 + 15 + 5.
    fn default() -> Self {
        Self {
            readiness_grace: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(15),
            jobs_timeout: Duration::from_secs(5),
        }
    }
}

/// The shell's settings as every service reads them from its environment (the same names in
/// every service: each process reads its own).
#[derive(Clone, Debug, clap::Args)]
pub struct ShellSettings {
    /// Open connections the HTTP listener accepts; more are answered 503 and closed.
    #[arg(long, env = "HTTP_MAX_CONNECTIONS", default_value_t = 4096,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub http_max_connections: u32,

    /// Open connections the gRPC listener accepts; more are closed.
    #[arg(long, env = "GRPC_MAX_CONNECTIONS", default_value_t = 512,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub grpc_max_connections: u32,

    /// Seconds an HTTP/1 client has to send a request head (also the keep-alive idle time).
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub header_read_timeout_secs: u64,

    /// Seconds an HTTP connection may stay open with no request in flight.
    #[arg(long, env = "IDLE_TIMEOUT_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub idle_timeout_secs: u64,

    /// Seconds a gRPC connection (a long-lived channel between services) may stay open with no
    /// call in flight.
    #[arg(long, env = "GRPC_IDLE_TIMEOUT_SECS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub grpc_idle_timeout_secs: u64,

    /// Seconds a request may take before it is answered 503.
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub request_timeout_secs: u64,

    /// Seconds between readiness turning off and listeners closing, on SIGTERM.
    #[arg(long, env = "SHUTDOWN_READINESS_GRACE_SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(0..=300))]
    pub readiness_grace_secs: u64,

    /// Seconds open connections have to finish, on SIGTERM, before they are closed.
    #[arg(long, env = "SHUTDOWN_DRAIN_TIMEOUT_SECS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(0..=300))]
    pub drain_timeout_secs: u64,
}

impl Default for ShellSettings {
    fn default() -> Self {
        Self {
            http_max_connections: 4096,
            grpc_max_connections: 512,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            grpc_idle_timeout_secs: 300,
            request_timeout_secs: 30,
            readiness_grace_secs: 5,
            drain_timeout_secs: 15,
        }
    }
}

impl ShellSettings {
    pub fn http_limits(&self) -> ListenerLimits {
        ListenerLimits {
            max_connections: self.http_max_connections as usize,
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            ..ListenerLimits::http()
        }
    }

    pub fn grpc_limits(&self) -> ListenerLimits {
        ListenerLimits {
            max_connections: self.grpc_max_connections as usize,
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(self.grpc_idle_timeout_secs),
            ..ListenerLimits::grpc()
        }
    }

    pub fn timings(&self) -> ShutdownTimings {
        ShutdownTimings {
            readiness_grace: Duration::from_secs(self.readiness_grace_secs),
            drain_timeout: Duration::from_secs(self.drain_timeout_secs),
            ..ShutdownTimings::default()
        }
    }

    /// The middleware settings of `service`'s HTTP router.
    pub fn layers(&self, service: &'static str) -> crate::http::layers::ServiceLayers {
        crate::http::layers::ServiceLayers {
            service,
            request_timeout: Duration::from_secs(self.request_timeout_secs),
        }
    }
}

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

struct PendingListener {
    name: &'static str,
    listener: TcpListener,
    router: Router,
    protocol: Protocol,
    limits: ListenerLimits,
}

/// A service's listeners and jobs, run until a stop signal (see the module documentation).
pub struct Shell {
    service: &'static str,
    timings: ShutdownTimings,
    handle: ShellHandle,
    close_now: CancellationToken,
    stop_jobs: CancellationToken,
    listeners: Vec<PendingListener>,
    jobs: Vec<(&'static str, Job)>,
}

impl Shell {
    /// `service` prefixes the shell's metrics (`{service}_connections_open`, ...).
    pub fn new(service: &'static str, timings: ShutdownTimings) -> Self {
        Self {
            service,
            timings,
            handle: ShellHandle {
                stopping: CancellationToken::new(),
                tracker: TaskTracker::new(),
                readiness: Readiness::new(),
            },
            close_now: CancellationToken::new(),
            stop_jobs: CancellationToken::new(),
            listeners: Vec::new(),
            jobs: Vec::new(),
        }
    }

    pub fn handle(&self) -> ShellHandle {
        self.handle.clone()
    }

    pub fn readiness(&self) -> Readiness {
        self.handle.readiness.clone()
    }

    /// Binds `addr` (port 0 picks a free port) and serves `router` on it once [`Shell::run`]
    /// starts; returns the address bound.
    pub async fn listen(
        &mut self,
        name: &'static str,
        addr: SocketAddr,
        router: Router,
        protocol: Protocol,
        limits: ListenerLimits,
    ) -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind(addr).await.map_err(|error| {
            std::io::Error::new(error.kind(), format!("cannot listen on {addr}: {error}"))
        })?;
        let bound = listener.local_addr()?;
        self.serve(name, listener, router, protocol, limits);
        Ok(bound)
    }

    /// [`Shell::listen`] for a service's HTTP listener with the limits of `settings`.
    pub async fn listen_http(
        &mut self,
        addr: SocketAddr,
        router: Router,
        settings: &ShellSettings,
    ) -> std::io::Result<SocketAddr> {
        let limits = settings.http_limits();
        self.listen("http", addr, router, Protocol::Http, limits)
            .await
    }

    /// Serves `router` on `listener` once [`Shell::run`] starts. Each request carries the
    /// peer address as `ConnectInfo<SocketAddr>`.
    pub fn serve(
        &mut self,
        name: &'static str,
        listener: TcpListener,
        router: Router,
        protocol: Protocol,
        limits: ListenerLimits,
    ) {
        self.listeners.push(PendingListener {
            name,
            listener,
            router,
            protocol,
            limits,
        });
    }

    /// Runs `job` from [`Shell::run`] until it returns or, at the end of a stop, until it
    /// notices the token it is given has been cancelled.
    pub fn spawn_job<F, Fut>(&mut self, name: &'static str, job: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.jobs
            .push((name, Box::pin(job(self.stop_jobs.clone()))));
    }

    /// Serves until `stop` resolves, then stops in order (module documentation).
    pub async fn run(self, stop: impl Future<Output = ()>) {
        let Shell {
            service,
            timings,
            handle,
            close_now,
            stop_jobs,
            listeners,
            jobs,
        } = self;
        let job_tracker = TaskTracker::new();
        for (name, job) in jobs {
            job_tracker.spawn(async move {
                job.await;
                tracing::debug!(job = name, "background job finished");
            });
        }
        for listener in listeners {
            let addr = listener.listener.local_addr().ok();
            tracing::info!(service, listener = listener.name, addr = ?addr, "listening");
            let accept = AcceptLoop {
                service,
                listener,
                connections: handle.tracker.clone(),
                stopping: handle.stopping.clone(),
                close_now: close_now.clone(),
            };
            handle.tracker.spawn(accept.run());
        }

        stop.await;
        tracing::info!(service, "stopping: readiness off");
        handle.readiness.set_not_ready();
        tokio::time::sleep(timings.readiness_grace).await;

        tracing::info!(service, "stopping: listeners drain");
        handle.stopping.cancel();
        handle.tracker.close();
        if tokio::time::timeout(timings.drain_timeout, handle.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                service,
                open = handle.tracker.len(),
                "connections still open after the drain timeout; closing them"
            );
            close_now.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(1), handle.tracker.wait()).await;
        }

        tracing::info!(service, "stopping: background jobs");
        stop_jobs.cancel();
        job_tracker.close();
        if tokio::time::timeout(timings.jobs_timeout, job_tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                service,
                running = job_tracker.len(),
                "background jobs did not stop in time"
            );
        }
        tracing::info!(service, "stopped");
    }
}

/// Runs `tick` every `period` until `stop` is cancelled: the loop of a periodic background job
/// (register the job with [`Shell::spawn_job`]). The first tick is one period after the start;
/// a tick that overruns delays the next rather than bunching them; a tick in progress finishes
/// before the job returns.
pub async fn every<F, Fut>(period: Duration, stop: CancellationToken, mut tick: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => tick().await,
        }
    }
}

/// Refused connections answered at once at most; beyond this they are just closed.
const MAX_REFUSALS_IN_FLIGHT: usize = 64;
/// How long writing a refusal may take.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause after an accept error that is not about one connection (out of descriptors):
/// retrying at once would spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);
/// How long a connection that was asked to close may take to finish its request.
const CONNECTION_CLOSE_GRACE: Duration = Duration::from_secs(10);

struct AcceptLoop {
    service: &'static str,
    listener: PendingListener,
    connections: TaskTracker,
    stopping: CancellationToken,
    close_now: CancellationToken,
}

impl AcceptLoop {
    async fn run(self) {
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
