//! The service shell over real sockets: the order of a stop, the connection limit, and the
//! bounds that cut off idle and half-sent connections.

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
use common::shell::{ListenerLimits, Protocol, Readiness, Shell, ShutdownTimings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::time::Instant;

async fn ready(State(readiness): State<Readiness>) -> StatusCode {
    if readiness.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

fn limits(max_connections: usize) -> ListenerLimits {
    ListenerLimits {
        max_connections,
        header_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
        ..ListenerLimits::http()
    }
}

struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
}

/// A shell serving `/ready` (from its readiness), `/slow` (500 ms) and `/health/live`.
async fn start(
    timings: ShutdownTimings,
    limits: ListenerLimits,
    job: Option<Arc<Mutex<Option<Instant>>>>,
) -> Running {
    let mut shell = Shell::new("test", timings);
    let router = Router::new()
        .route("/ready", get(ready))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(500)).await;
                "slow"
            }),
        )
        .route("/health/live", get(|| async { "live" }))
        .with_state(shell.readiness());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    shell.serve("http", listener, router, Protocol::Http, limits);
    if let Some(cancelled_at) = job {
        shell.spawn_job("test job", move |stop| async move {
            stop.cancelled().await;
            *cancelled_at.lock().unwrap() = Some(Instant::now());
        });
    }
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(shell.run(async move {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stop: Some(stop),
        done,
    }
}

#[tokio::test]
async fn a_stop_turns_readiness_off_then_closes_listeners_then_cancels_jobs() {
    let cancelled_at = Arc::new(Mutex::new(None));
    let timings = ShutdownTimings {
        readiness_grace: Duration::from_millis(500),
        drain_timeout: Duration::from_secs(5),
        jobs_timeout: Duration::from_secs(5),
    };
    let mut running = start(timings, limits(64), Some(Arc::clone(&cancelled_at))).await;
    let addr = running.addr;
    assert_eq!(
        attack::get_status(addr, "/ready", Duration::from_secs(2)).await,
        Some(200)
    );

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
    assert!(
        cancelled_at.lock().unwrap().is_none(),
        "jobs run on while listeners drain"
    );

    // Then the listener closes.
    let closed_at = loop {
        if TcpStream::connect(addr).await.is_err() {
            break Instant::now();
        }
        assert!(!running.done.is_finished());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::timeout(Duration::from_secs(10), &mut running.done)
        .await
        .expect("the shell stops")
        .unwrap();
    let cancelled = cancelled_at
        .lock()
        .unwrap()
        .expect("the job saw the cancellation");
    assert!(
        cancelled + Duration::from_millis(50) >= closed_at,
        "jobs stop after listeners"
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
    let slow = tokio::spawn(attack::get_status(addr, "/slow", Duration::from_secs(5)));
    tokio::time::sleep(Duration::from_millis(100)).await;

    running.stop.take().unwrap().send(()).unwrap();

    assert_eq!(slow.await.unwrap(), Some(200));
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
    // Give the accept loop time to hand both out before the third knocks.
    tokio::time::sleep(Duration::from_millis(100)).await;

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
    let (_stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(shell.run(async move {
        let _ = stopped.await;
    }));

    let silent = attack::idle_sockets(addr, 4, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
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
