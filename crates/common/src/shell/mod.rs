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
//!    [`ShutdownTimings::jobs_timeout`];
//! 4. the background tasks ([`Background`]: what serves requests and jobs from behind, such as
//!    GC's batch queues) are told so ([`Background::finishing`]) and awaited for what is left of
//!    [`ShutdownTimings::jobs_timeout`]. Their users are gone by now, so they finish what was
//!    handed to them and end.
//!
//! Every task a service starts runs under one of these: a connection or a task that outlives
//! its request (a WebSocket, a check that must not stop halfway) on [`ShellHandle::tracker`],
//! a periodic job through [`Shell::spawn_job`], a task that serves the others on
//! [`ShellHandle::background`]. A plain `tokio::spawn` is for a child a tracked task owns and
//! awaits, and for tests.
//!
//! Every listener bounds what a client can hold (see [`ListenerLimits`]): the number of open
//! connections, in all and from one address (beyond either a connection is answered at once
//! and closed, before file descriptors run out), the time from the accept to the first request
//! head and to every later one, and the time a connection may sit idle with no request in
//! flight. These are the defences against slowloris and idle-socket floods; they apply to
//! HTTP/1, HTTP/2 and gRPC alike because every listener goes through the same accept loop.
//!
//! Each service also serves its health probes and metrics on a small listener of their own,
//! the ops listener ([`Shell::listen_ops`]), so that a flood that fills the public listener
//! cannot fail the liveness probe and get the pod restarted.

mod accept;
mod per_address;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use accept::AcceptLoop;

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

/// What the shell's listeners hold right now, as [`ShellHandle::occupancy`] reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Occupancy {
    /// Listeners bound and not yet closed: counted from [`Shell::serve`] (the socket is bound
    /// and queues connections from then on) until its accept loop has ended and the socket is
    /// closed, so a connection attempted once this reads 0 is refused by the kernel.
    pub listening: usize,
    /// Connections accepted and admitted (within the bounds) that have not ended yet, on every
    /// listener. A connection refused over a bound is never counted.
    pub connections: usize,
}

/// Where a service runs the tasks that serve its requests and jobs from behind, for as long as
/// they are used (GC's batch queues, which end once their last handle is dropped, and the
/// closing of their pool): the last step of a stop, once listeners and jobs are done, cancels
/// [`Background::finishing`] and waits for them. The default is a `Background` no shell waits
/// for, for tests and tools that run a part of a service on its own.
#[derive(Clone, Debug, Default)]
pub struct Background {
    tracker: TaskTracker,
    finishing: CancellationToken,
}

impl Background {
    /// Runs `task` until it ends; a stop waits for it in its last step.
    pub fn spawn<F>(&self, name: &'static str, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(async move {
            task.await;
            tracing::debug!(task = name, "background task finished");
        });
    }

    /// Cancelled at the last step of a stop, when nothing but the background tasks runs any
    /// more: a task that waits for something other than its users (the batch pool waits for
    /// the main pool to close) stops waiting then.
    pub fn finishing(&self) -> &CancellationToken {
        &self.finishing
    }
}

/// What tasks outside the accept loops need from the shell: WebSocket tasks watch
/// [`ShellHandle::stopping`] to close with "going away" and are spawned on
/// [`ShellHandle::tracker`] so the shell waits for them while draining.
#[derive(Clone, Debug)]
pub struct ShellHandle {
    stopping: CancellationToken,
    tracker: TaskTracker,
    background: Background,
    readiness: Readiness,
    occupancy: Arc<watch::Sender<Occupancy>>,
}

impl ShellHandle {
    /// Cancelled when listeners start draining.
    pub fn stopping(&self) -> &CancellationToken {
        &self.stopping
    }

    /// Tasks the drain step waits for: connections, sockets, and the work a request starts
    /// that must outlive it (its client may hang up, the work must not stop halfway).
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    /// The tasks the last step of a stop waits for (see [`Background`]).
    pub fn background(&self) -> &Background {
        &self.background
    }

    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    /// The listeners and connections the shell holds, updated as they open and close: a
    /// signal to wait on (`wait_for`) for whoever must know that a connection has been
    /// accepted or that the listeners have closed, instead of guessing how long that takes.
    pub fn occupancy(&self) -> watch::Receiver<Occupancy> {
        self.occupancy.subscribe()
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
    /// Open connections one client address may hold at most (an IPv6 client counts by its /64
    /// prefix); beyond it a connection from that address is refused like one over
    /// `max_connections`. Behind a proxy that ends TCP (an ingress) every client shares the
    /// proxy's address: raise it there, and bound each client on the proxy.
    pub max_connections_per_address: usize,
    /// Any protocol: time from the accept to a complete first request head; a connection that
    /// has not sent one by then (nothing, part of a head, only the HTTP/2 preface) is dropped.
    /// HTTP/1 also: time to send each later request head, counted from the end of the previous
    /// response (so it also ends idle keep-alive connections).
    pub header_read_timeout: Duration,
    /// Any protocol: a connection with no request in flight for this long is closed
    /// gracefully (it also ends idle HTTP/2 connections, which have no head timeout).
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
            max_connections_per_address: 512,
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
            max_connections_per_address: 128,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            max_head_bytes: 64 * 1024,
            max_concurrent_streams: 256,
            send_buffer_bytes: None,
        }
    }

    /// Defaults for the ops listener ([`Shell::listen_ops`]): health probes and metrics scrapes
    /// from a handful of clients (the kubelet, Prometheus), each a short request.
    pub fn ops() -> Self {
        Self {
            max_connections: 64,
            max_connections_per_address: 16,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_head_bytes: 64 * 1024,
            max_concurrent_streams: 16,
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
    /// For background jobs to stop once cancelled and, in what is left of it, for the background
    /// tasks ([`Background`]) to end.
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

    /// Open connections one client address (an IPv4 address, an IPv6 /64) may hold on the HTTP
    /// listener; more from it are answered 503 and closed. Behind a proxy that ends TCP every
    /// client has the proxy's address: raise it there and bound each client on the proxy.
    #[arg(long, env = "HTTP_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 512,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub http_max_connections_per_address: u32,

    /// Open connections the gRPC listener accepts; more are closed.
    #[arg(long, env = "GRPC_MAX_CONNECTIONS", default_value_t = 512,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub grpc_max_connections: u32,

    /// Open connections one client address may hold on the gRPC listener; more are closed.
    #[arg(long, env = "GRPC_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 128,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub grpc_max_connections_per_address: u32,

    /// Seconds a client has from connecting to its first complete request head (any
    /// protocol; then the connection is dropped), and an HTTP/1 client to send each later one
    /// (also the keep-alive idle time).
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
            http_max_connections_per_address: 512,
            grpc_max_connections: 512,
            grpc_max_connections_per_address: 128,
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
            max_connections_per_address: self.http_max_connections_per_address as usize,
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            ..ListenerLimits::http()
        }
    }

    pub fn grpc_limits(&self) -> ListenerLimits {
        ListenerLimits {
            max_connections: self.grpc_max_connections as usize,
            max_connections_per_address: self.grpc_max_connections_per_address as usize,
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(self.grpc_idle_timeout_secs),
            ..ListenerLimits::grpc()
        }
    }

    /// The ops listener's own small bounds ([`ListenerLimits::ops`]) with the HTTP listener's
    /// head and idle timeouts.
    pub fn ops_limits(&self) -> ListenerLimits {
        ListenerLimits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            ..ListenerLimits::ops()
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
                background: Background::default(),
                readiness: Readiness::new(),
                occupancy: Arc::new(watch::Sender::new(Occupancy::default())),
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

    /// Binds the service's ops listener on `addr` and serves `router` on it once [`Shell::run`]
    /// starts; returns the address bound. `router` holds only the health probes and
    /// `/metrics` (the same handlers the HTTP listener serves), with the small bounds of
    /// [`ShellSettings::ops_limits`]: the kubelet and Prometheus reach them here whatever
    /// fills the public listener.
    pub async fn listen_ops(
        &mut self,
        addr: SocketAddr,
        router: Router,
        settings: &ShellSettings,
    ) -> std::io::Result<SocketAddr> {
        let limits = settings.ops_limits();
        self.listen("ops", addr, router, Protocol::Http, limits)
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
        self.handle
            .occupancy
            .send_modify(|occupancy| occupancy.listening += 1);
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
                occupancy: Arc::clone(&handle.occupancy),
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
        // The jobs and then the background tasks share one deadline.
        let deadline = Instant::now() + timings.jobs_timeout;
        stop_jobs.cancel();
        job_tracker.close();
        if tokio::time::timeout_at(deadline, job_tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                service,
                running = job_tracker.len(),
                "background jobs did not stop in time"
            );
        }

        tracing::info!(service, "stopping: background tasks");
        let background = &handle.background;
        background.finishing.cancel();
        background.tracker.close();
        if tokio::time::timeout_at(deadline, background.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                service,
                running = background.tracker.len(),
                "background tasks did not end in time"
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
