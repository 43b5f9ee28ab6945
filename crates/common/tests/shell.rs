//! The service shell over real sockets: the order of a stop, the connection limit, and the
//! bounds that cut off idle and half-sent connections.
//!
//! A test waits for what it needs on a signal: the shell's occupancy
//! ([`ShellHandle::occupancy`]: a connection accepted, the listeners closed) or a handler's
//! notice that a request has arrived, never for a guessed time. The sleeps left are a pace a
//! test measures the bounds against (a client that sends late, a handler that answers late).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/attack.rs"]
mod attack;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use common::shell::{
    ListenerLimits, Occupancy, Protocol, Readiness, Shell, ShellHandle, ShutdownTimings,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What the test routes see of the shell.
#[derive(Clone)]
struct Routes {
    readiness: Readiness,
    /// Told when a `/held` request has reached its handler.
    held: Arc<Notify>,
    /// Lets `/held` requests answer.
    release: CancellationToken,
}

async fn ready(State(routes): State<Routes>) -> StatusCode {
    if routes.readiness.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// Says it has arrived, then answers only once the test releases it: a request that is
/// certainly in flight for as long as the test needs.
async fn held(State(routes): State<Routes>) -> &'static str {
    routes.held.notify_one();
    routes.release.cancelled().await;
    "held"
}

fn limits(max_connections: usize) -> ListenerLimits {
    ListenerLimits {
        max_connections,
        header_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
        ..ListenerLimits::http()
    }
}

/// Waits until the shell's occupancy satisfies `condition` (at most 10 s).
async fn wait_for(handle: &ShellHandle, condition: impl FnMut(&Occupancy) -> bool) {
    let mut occupancy = handle.occupancy();
    tokio::time::timeout(Duration::from_secs(10), occupancy.wait_for(condition))
        .await
        .expect("the shell reached the expected occupancy")
        .unwrap();
}

struct Running {
    addr: SocketAddr,
    handle: ShellHandle,
    held: Arc<Notify>,
    release: CancellationToken,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
}

/// A shell serving `/ready` (from its readiness), `/held` (see [`held`]), `/slow` (500 ms)
/// and `/health/live`; with `job`, a background job that stores there the shell's occupancy
/// at the moment it is cancelled.
async fn start(
    timings: ShutdownTimings,
    limits: ListenerLimits,
    job: Option<Arc<Mutex<Option<Occupancy>>>>,
) -> Running {
    let mut shell = Shell::new("test", timings);
    let handle = shell.handle();
    let routes = Routes {
        readiness: shell.readiness(),
        held: Arc::new(Notify::new()),
        release: CancellationToken::new(),
    };
    let held_signal = Arc::clone(&routes.held);
    let release = routes.release.clone();
    let router = Router::new()
        .route("/ready", get(ready))
        .route("/held", get(held))
        .route(
            "/slow",
            get(|| async {
                // The server's pace, part of what a test measures, not synchronisation.
                tokio::time::sleep(Duration::from_millis(500)).await;
                "slow"
            }),
        )
        .route("/health/live", get(|| async { "live" }))
        .with_state(routes);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    shell.serve("http", listener, router, Protocol::Http, limits);
    if let Some(seen) = job {
        let occupancy = handle.occupancy();
        shell.spawn_job("test job", move |stop| async move {
            stop.cancelled().await;
            *seen.lock().unwrap() = Some(*occupancy.borrow());
        });
    }
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(shell.run(async move {
        let _ = stopped.await;
    }));
    Running {
        addr,
        handle,
        held: held_signal,
        release,
        stop: Some(stop),
        done,
    }
}

#[tokio::test]
async fn a_stop_turns_readiness_off_then_closes_listeners_then_cancels_jobs() {
    let seen_by_job = Arc::new(Mutex::new(None));
    let timings = ShutdownTimings {
        readiness_grace: Duration::from_millis(500),
        drain_timeout: Duration::from_secs(5),
        jobs_timeout: Duration::from_secs(5),
    };
    let mut running = start(timings, limits(64), Some(Arc::clone(&seen_by_job))).await;
    let addr = running.addr;
    assert_eq!(
        attack::get_status(addr, "/ready", Duration::from_secs(2)).await,
        Some(200)
    );
    let in_flight = tokio::spawn(attack::get_status(addr, "/held", Duration::from_secs(10)));
    tokio::time::timeout(Duration::from_secs(5), running.held.notified())
        .await
        .expect("the request reached its handler");

    running.stop.take().unwrap().send(()).unwrap();

    // Not ready, yet still accepting connections: load balancers can see it and move away.
    let mut saw_not_ready = false;
    let deadline = Instant::now() + Duration::from_millis(400);
    while Instant::now() < deadline {
        if attack::get_status(addr, "/ready", Duration::from_secs(1)).await == Some(503) {
            saw_not_ready = true;
            break;
        }
    }
    assert!(
        saw_not_ready,
        "readiness must fail while the listener still accepts"
    );

    // Then the listener closes, and a connection is refused; the request in flight holds its
    // connection open, and the job runs on while it drains.
    wait_for(&running.handle, |o| o.listening == 0 && o.connections == 1).await;
    assert!(TcpStream::connect(addr).await.is_err());
    assert!(
        seen_by_job.lock().unwrap().is_none(),
        "jobs run on while connections drain"
    );

    running.release.cancel();
    assert_eq!(in_flight.await.unwrap(), Some(200));
    tokio::time::timeout(Duration::from_secs(10), &mut running.done)
        .await
        .expect("the shell stops")
        .unwrap();
    let seen = seen_by_job
        .lock()
        .unwrap()
        .expect("the job saw the cancellation");
    assert_eq!(
        seen,
        Occupancy {
            listening: 0,
            connections: 0
        },
        "jobs are cancelled only once listeners and connections are closed"
    );
}

#[tokio::test]
async fn a_request_in_flight_finishes_while_the_listener_drains() {
    let timings = ShutdownTimings {
        readiness_grace: Duration::ZERO,
        ..ShutdownTimings::default()
    };
    let mut running = start(timings, limits(64), None).await;
    let addr = running.addr;
    let in_flight = tokio::spawn(attack::get_status(addr, "/held", Duration::from_secs(5)));
    tokio::time::timeout(Duration::from_secs(5), running.held.notified())
        .await
        .expect("the request reached its handler");

    running.stop.take().unwrap().send(()).unwrap();
    // The listener has closed: the shell is draining, and the request is still in flight.
    wait_for(&running.handle, |o| o.listening == 0).await;
    running.release.cancel();

    assert_eq!(in_flight.await.unwrap(), Some(200));
    tokio::time::timeout(Duration::from_secs(10), running.done)
        .await
        .expect("the shell stops")
        .unwrap();
}

#[tokio::test]
async fn connections_over_the_limit_are_answered_503_with_the_envelope_and_closed() {
    let running = start(ShutdownTimings::default(), limits(2), None).await;
    let _held: Vec<TcpStream> = vec![
        TcpStream::connect(running.addr).await.unwrap(),
        TcpStream::connect(running.addr).await.unwrap(),
    ];
    // Both accepted and counted before the third knocks.
    wait_for(&running.handle, |o| o.connections == 2).await;

    let mut third = TcpStream::connect(running.addr).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(2), third.read_to_string(&mut answer))
        .await
        .expect("answered at once")
        .unwrap();

    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    assert!(
        answer.contains(r#""code":"SERVICE_UNAVAILABLE""#),
        "{answer}"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let running = start(ShutdownTimings::default(), limits(64), None).await;
    let mut stream = TcpStream::connect(running.addr).await.unwrap();
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let opened = Instant::now();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    // Keep-alive: the connection stays open, then closes once idle for the timeout.
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "an idle keep-alive connection must be closed"
    );
    assert!(opened.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn silent_and_slowloris_sockets_are_cut_off_while_a_normal_client_gets_answers() {
    let running = start(ShutdownTimings::default(), limits(32), None).await;

    let (statuses, fates) =
        attack::flood_while_serving(running.addr, "/health/live", 48, 16, Duration::from_secs(4))
            .await;

    attack::assert_flood_survived(&statuses, &fates, Duration::from_secs(3));
}

#[tokio::test]
async fn a_grpc_listener_closes_connections_that_never_speak_and_over_the_limit() {
    let mut shell = Shell::new("test", ShutdownTimings::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Router::new().route("/x", get(|| async { "x" }));
    shell.serve("grpc", listener, router, Protocol::Grpc, limits(4));
    let handle = shell.handle();
    let (_stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(shell.run(async move {
        let _ = stopped.await;
    }));

    let silent = attack::idle_sockets(addr, 4, Duration::from_secs(5)).await;
    wait_for(&handle, |o| o.connections == 4).await;
    // Over the limit: closed at once, without an HTTP/1 answer a gRPC client could not read.
    let mut fifth = TcpStream::connect(addr).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(1), fifth.read_to_end(&mut answer))
        .await
        .expect("closed at once")
        .unwrap();
    assert!(answer.is_empty());

    for fate in silent {
        match fate.await.unwrap() {
            attack::Fate::ClosedAfter(after) => assert!(after <= Duration::from_secs(3)),
            attack::Fate::StillOpen => panic!("a silent gRPC connection stayed open"),
        }
    }
}

/// A 1 s head timeout and a 30 s idle timeout: what closes a connection within seconds here
/// is the first-request deadline, not the idle timeout.
fn deadline_limits() -> ListenerLimits {
    ListenerLimits {
        header_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(30),
        ..ListenerLimits::http()
    }
}

/// Opens connections that never complete a request head, each sending one of `starts` and
/// then nothing, and checks that the server dropped every one within a few seconds: about the
/// 1 s head timeout of [`deadline_limits`], far before its 30 s idle timeout.
async fn assert_dropped_without_a_request(addr: SocketAddr, starts: &[&[u8]]) {
    let mut sockets = Vec::new();
    for start in starts {
        sockets.push(attack::sends_then_waits(addr, start, Duration::from_secs(8)).await);
    }
    for (start, socket) in starts.iter().zip(sockets) {
        let fate = socket.await.unwrap();
        let sent = String::from_utf8_lossy(start);
        match fate {
            attack::Fate::ClosedAfter(after) => {
                assert!(
                    after <= Duration::from_secs(4),
                    "{sent:?}: closed after {after:?}"
                )
            }
            attack::Fate::StillOpen => panic!("a connection that sent {sent:?} stayed open"),
        }
    }
}

#[tokio::test]
async fn connections_that_send_no_complete_request_head_are_dropped_at_the_header_timeout() {
    let running = start(ShutdownTimings::default(), deadline_limits(), None).await;

    assert_dropped_without_a_request(
        running.addr,
        &[
            b"",
            b"GET /health/live HTTP/1.1\r\nhost: x\r\n",
            &attack::H2_PREFACE[..10],
            attack::H2_PREFACE,
            &[attack::H2_PREFACE, attack::H2_EMPTY_SETTINGS].concat(),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_grpc_listener_drops_connections_that_send_no_request_at_the_header_timeout() {
    let mut shell = Shell::new("test", ShutdownTimings::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Router::new().route("/x", get(|| async { "x" }));
    let limits = ListenerLimits {
        idle_timeout: Duration::from_secs(300),
        ..deadline_limits()
    };
    shell.serve("grpc", listener, router, Protocol::Grpc, limits);
    let (_stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(shell.run(async move {
        let _ = stopped.await;
    }));

    assert_dropped_without_a_request(
        addr,
        &[
            b"",
            &attack::H2_PREFACE[..10],
            attack::H2_PREFACE,
            &[attack::H2_PREFACE, attack::H2_EMPTY_SETTINGS].concat(),
        ],
    )
    .await;
}

/// The last step of a stop: once the jobs have stopped, the background tasks are told
/// ([`Background::finishing`](common::shell::Background::finishing)), and the stop ends only
/// when they have ended.
#[tokio::test]
async fn a_stop_ends_with_the_background_tasks_after_the_jobs() {
    let mut shell = Shell::new(
        "test",
        ShutdownTimings {
            readiness_grace: Duration::ZERO,
            ..ShutdownTimings::default()
        },
    );
    let background = shell.handle().background().clone();
    let order = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&order);
    shell.spawn_job("test job", move |stop| async move {
        stop.cancelled().await;
        seen.lock().unwrap().push("job stopped");
    });
    let (release, gate) = oneshot::channel::<()>();
    let (seen, finishing) = (Arc::clone(&order), background.finishing().clone());
    background.spawn("test task", async move {
        finishing.cancelled().await;
        seen.lock().unwrap().push("task told");
        let _ = gate.await;
        seen.lock().unwrap().push("task ended");
    });

    let stop = tokio::spawn(shell.run(async {}));
    background.finishing().cancelled().await;
    assert!(
        !stop.is_finished(),
        "the stop ended before its background task"
    );
    release.send(()).unwrap();

    tokio::time::timeout(Duration::from_secs(10), stop)
        .await
        .expect("the stop did not end with its background task")
        .unwrap();
    assert_eq!(
        *order.lock().unwrap(),
        ["job stopped", "task told", "task ended"]
    );
}

/// hyper's own head timeout starts with the first byte; the deadline starts with the accept.
#[tokio::test]
async fn the_first_request_deadline_counts_from_the_accept_not_from_the_first_byte() {
    let running = start(ShutdownTimings::default(), deadline_limits(), None).await;
    let mut stream = TcpStream::connect(running.addr).await.unwrap();
    let opened = Instant::now();

    // The attacker's pace, not synchronisation: the first bytes come 900 ms after the connect,
    // so hyper's timeout alone would close the connection no earlier than 1.9 s.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let _ = stream.write_all(b"GET /health/live HTTP/1.1\r\n").await;
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await;

    assert!(
        matches!(closed, Ok(Ok(0) | Err(_))),
        "closed without an answer"
    );
    assert!(
        opened.elapsed() < Duration::from_millis(1800),
        "closed after {:?}, counted from the first byte",
        opened.elapsed()
    );
}

#[tokio::test]
async fn a_connection_that_made_a_request_is_kept_past_the_first_request_deadline() {
    let running = start(ShutdownTimings::default(), deadline_limits(), None).await;
    let mut stream = TcpStream::connect(running.addr).await.unwrap();
    let mut buf = vec![0u8; 4096];
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    // The client's pace: the next request comes after the first-request deadline (1 s after
    // the accept) but within the keep-alive time hyper gives after a response (1 s).
    tokio::time::sleep(Duration::from_millis(700)).await;
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let n = stream.read(&mut buf).await.unwrap();

    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
}

/// Connections this test can hold beside the server's side of each, within the process's
/// limit of open files (`ulimit -n`), at most `wanted`.
fn connections_within_the_file_limit(wanted: usize) -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let soft: usize = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse().ok())
        .unwrap_or(1024);
    // Two descriptors per connection (client and server), and room for everything else.
    wanted.min(soft.saturating_sub(256) / 2)
}

/// The value of `metric` with the label `reason="<reason>"` in the Prometheus text.
fn refused_with(text: &str, metric: &str, reason: &str) -> u64 {
    text.lines()
        .find(|line| line.starts_with(metric) && line.contains(&format!("reason=\"{reason}\"")))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {metric} with reason {reason} in:\n{text}"))
}

#[tokio::test]
async fn one_address_holds_at_most_its_bound_while_another_address_is_served() {
    let metrics = common::metrics::install_recorder(&[]).unwrap();
    let attempts = connections_within_the_file_limit(2000);
    let per_address = attempts * 3 / 4;
    let mut shell = Shell::new("flood", ShutdownTimings::default());
    let router = Router::new().route("/health/live", get(|| async { "live" }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = ListenerLimits {
        max_connections: 4096,
        max_connections_per_address: per_address,
        // Nothing of this test is cut off by time: only the bounds act.
        header_read_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(60),
        ..ListenerLimits::http()
    };
    shell.serve("http", listener, router, Protocol::Http, limits);
    let (_stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(shell.run(async move {
        let _ = stopped.await;
    }));
    let attacker: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    let other: std::net::IpAddr = "127.0.0.2".parse().unwrap();

    let mut held = Vec::with_capacity(per_address);
    for _ in 0..per_address {
        held.push(attack::connect_from(attacker, addr).await.unwrap());
    }
    // Each further connection from the attacker's address waits in the accept queue behind
    // the held ones, so it meets a full address.
    let overflow = attempts - per_address;
    for attempt in 0..overflow {
        let mut refused = attack::connect_from(attacker, addr).await.unwrap();
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(2), refused.read_to_string(&mut answer))
            .await
            .expect("answered at once")
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("retry-after: 1"), "{answer}");
        assert!(answer.contains("connection: close"), "{answer}");
        assert!(
            answer.contains(r#""code":"SERVICE_UNAVAILABLE""#),
            "{answer}"
        );
        if attempt % 50 == 0 {
            assert_eq!(
                attack::get_status_from(other, addr, "/health/live", Duration::from_secs(2)).await,
                Some(200),
                "another address is served while the attacker's is full"
            );
        }
    }
    for _ in 0..10 {
        assert_eq!(
            attack::get_status_from(other, addr, "/health/live", Duration::from_secs(2)).await,
            Some(200)
        );
    }

    let text = metrics.render();
    let metric = "flood_connections_refused_total{";
    assert_eq!(refused_with(&text, metric, "address_full"), overflow as u64);
    assert_eq!(refused_with(&text, metric, "listener_full"), 0);
    drop(held);
}

#[tokio::test]
async fn the_ops_listener_answers_probes_while_the_http_listener_is_full() {
    let settings = common::shell::ShellSettings {
        http_max_connections: 8,
        header_read_timeout_secs: 30,
        idle_timeout_secs: 30,
        ..Default::default()
    };
    let mut shell = Shell::new("test", ShutdownTimings::default());
    let router = Router::new().route("/health/live", get(|| async { "live" }));
    let any_port: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let http = shell
        .listen_http(any_port, router.clone(), &settings)
        .await
        .unwrap();
    let ops = shell.listen_ops(any_port, router, &settings).await.unwrap();
    let (_stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(shell.run(async move {
        let _ = stopped.await;
    }));

    let _held = attack::idle_sockets(http, 8, Duration::from_secs(20)).await;
    // Behind the eight in the accept queue: the listener is full when it is accepted.
    assert_eq!(
        attack::get_status(http, "/health/live", Duration::from_secs(2)).await,
        Some(503)
    );

    for _ in 0..5 {
        assert_eq!(
            attack::get_status(ops, "/health/live", Duration::from_secs(2)).await,
            Some(200)
        );
    }
}
