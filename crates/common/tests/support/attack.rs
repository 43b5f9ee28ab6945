//! A hostile client for tests of every service's listeners: sockets that never send a byte,
//! sockets that send a request head one byte at a time (slowloris) or only part of one, and a
//! well-behaved client that must keep getting answers meanwhile. Included by path from each
//! crate's tests.

#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What happened to an attacking socket.
#[derive(Debug, PartialEq, Eq)]
pub enum Fate {
    /// The server closed it (EOF or reset), after this long.
    ClosedAfter(Duration),
    /// Still open when the attacker gave up waiting.
    StillOpen,
}

/// What an HTTP/2 client sends first (RFC 9113 §3.4), before any frame.
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame: length 0, type 4, no flags, stream 0. With [`H2_PREFACE`] it is a
/// complete HTTP/2 connection start that asks for nothing.
pub const H2_EMPTY_SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

/// Connects to `addr` from the local address `local` (any of 127/8 on Linux, where the whole
/// block is routed to the loopback interface), so one test can be several clients.
pub async fn connect_from(local: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = match local {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(local, 0))?;
    socket.connect(addr).await
}

/// Waits until the server closes `stream` (EOF or reset), reading and dropping whatever it
/// sends meanwhile; how long that took since `opened`, or [`Fate::StillOpen`] at `give_up`.
async fn await_close(mut stream: TcpStream, opened: Instant, give_up: Duration) -> Fate {
    let mut buf = [0u8; 1024];
    let deadline = opened + give_up;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return Fate::StillOpen,
            Ok(Ok(0) | Err(_)) => return Fate::ClosedAfter(opened.elapsed()),
            // An answer (a 503 for a connection over the limit, HTTP/2 settings): wait for
            // the close.
            Ok(Ok(_)) => continue,
        }
    }
}

/// Opens a connection that sends `bytes` (none, part of a request head, the HTTP/2 preface)
/// at once and then nothing; the task reports when the server closed it.
pub async fn sends_then_waits(
    addr: SocketAddr,
    bytes: &[u8],
    give_up: Duration,
) -> JoinHandle<Fate> {
    let mut stream = TcpStream::connect(addr).await.expect("connected");
    let opened = Instant::now();
    let bytes = bytes.to_vec();
    tokio::spawn(async move {
        // A server that already closed is a fate too: the close is read below.
        let _ = stream.write_all(&bytes).await;
        await_close(stream, opened, give_up).await
    })
}

/// Opens `count` connections that send nothing; each task reports when the server closed it.
pub async fn idle_sockets(
    addr: SocketAddr,
    count: usize,
    give_up: Duration,
) -> Vec<JoinHandle<Fate>> {
    let mut tasks = Vec::with_capacity(count);
    for _ in 0..count {
        let Ok(stream) = TcpStream::connect(addr).await else {
            continue;
        };
        let opened = Instant::now();
        tasks.push(tokio::spawn(await_close(stream, opened, give_up)));
    }
    tasks
}

/// Opens `count` connections that send a request head one byte every `every`, never
/// finishing it; each task reports when the server closed it.
pub async fn slowloris(
    addr: SocketAddr,
    count: usize,
    every: Duration,
    give_up: Duration,
) -> Vec<JoinHandle<Fate>> {
    let head = b"GET /health/live HTTP/1.1\r\nhost: x\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut tasks = Vec::with_capacity(count);
    for _ in 0..count {
        let Ok(stream) = TcpStream::connect(addr).await else {
            continue;
        };
        tasks.push(tokio::spawn(async move {
            let opened = Instant::now();
            let (mut read, mut write) = stream.into_split();
            let writer = tokio::spawn(async move {
                for byte in head.iter().cycle() {
                    if write.write_all(&[*byte]).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(every).await;
                }
            });
            let mut buf = [0u8; 1024];
            let deadline = opened + give_up;
            let fate = loop {
                match tokio::time::timeout_at(deadline, read.read(&mut buf)).await {
                    Err(_) => break Fate::StillOpen,
                    Ok(Ok(0) | Err(_)) => break Fate::ClosedAfter(opened.elapsed()),
                    Ok(Ok(_)) => continue,
                }
            };
            writer.abort();
            fate
        }));
    }
    tasks
}

/// One plain HTTP/1.1 GET on a fresh connection, with a deadline: the status code, or `None`
/// when no answer came in time (or the connection failed).
pub async fn get_status(addr: SocketAddr, path: &str, deadline: Duration) -> Option<u16> {
    tokio::time::timeout(deadline, get_status_over(TcpStream::connect(addr), path))
        .await
        .ok()
        .flatten()
}

/// [`get_status`] from the local address `local` ([`connect_from`]).
pub async fn get_status_from(
    local: IpAddr,
    addr: SocketAddr,
    path: &str,
    deadline: Duration,
) -> Option<u16> {
    let connect = connect_from(local, addr);
    tokio::time::timeout(deadline, get_status_over(connect, path))
        .await
        .ok()
        .flatten()
}

/// One GET of `path` with `connection: close` on the stream `connect` opens: its status.
async fn get_status_over(
    connect: impl Future<Output = std::io::Result<TcpStream>>,
    path: &str,
) -> Option<u16> {
    let mut stream = connect.await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.ok()?;
    let text = String::from_utf8_lossy(&response);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// Floods `addr` with `idle` silent sockets and `slow` slowloris sockets while a normal client
/// asks for `path` every 100 ms for `duration`. Returns the normal client's statuses in order
/// (`None` for a request that got no answer within 2 s) and the attackers' fates.
pub async fn flood_while_serving(
    addr: SocketAddr,
    path: &str,
    idle: usize,
    slow: usize,
    duration: Duration,
) -> (Vec<Option<u16>>, Vec<Fate>) {
    let give_up = duration + Duration::from_secs(5);
    let mut attackers = idle_sockets(addr, idle, give_up).await;
    attackers.extend(slowloris(addr, slow, Duration::from_millis(200), give_up).await);
    let mut statuses = Vec::new();
    let until = Instant::now() + duration;
    while Instant::now() < until {
        statuses.push(get_status(addr, path, Duration::from_secs(2)).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut fates = Vec::new();
    for attacker in attackers {
        fates.push(attacker.await.unwrap_or(Fate::StillOpen));
    }
    (statuses, fates)
}

/// The checks every service's flood test makes: every normal request was answered (a 503
/// envelope while the attackers hold every slot is an answer), the normal client got through
/// once the attackers' sockets were cut, and every attacker socket was closed by the server
/// within `bound`.
pub fn assert_flood_survived(statuses: &[Option<u16>], fates: &[Fate], bound: Duration) {
    assert!(
        statuses.iter().all(|s| matches!(s, Some(200 | 503))),
        "every request gets an answer: {statuses:?}"
    );
    let tail = &statuses[statuses.len().saturating_sub(5)..];
    assert!(
        tail.iter().all(|s| *s == Some(200)),
        "the normal client gets through once the attack is cut off: {statuses:?}"
    );
    for fate in fates {
        match fate {
            Fate::ClosedAfter(after) => assert!(*after <= bound, "closed after {after:?}"),
            Fate::StillOpen => panic!("an attacking socket was never closed: {fates:?}"),
        }
    }
}

/// A handler with a bug, for tests of the panic catch.
pub async fn panics() -> &'static str {
    #[allow(clippy::panic)]
    if true {
        panic!("a handler bug");
    }
    "unreachable"
}

/// A handler that takes longer than any test's request timeout.
pub async fn stalls() -> &'static str {
    tokio::time::sleep(Duration::from_secs(30)).await;
    "too late"
}

/// The error code of an envelope response, checking its shape on the way.
async fn envelope_code(response: reqwest::Response) -> String {
    let body: serde_json::Value = response.json().await.expect("a JSON envelope");
    assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    body["error"]["code"].as_str().expect("a code").to_owned()
}

/// The checks every service's middleware stack must pass, through the real server at `base`:
/// `/test/panic` ([`panics`]) answers a 500 envelope, `/test/slow` ([`stalls`]) a 503 envelope
/// after the request timeout, an oversized JSON body POSTed to `json_path` (with `token`, when
/// the route checks its caller before reading the body) a 413 envelope, two `Authorization`
/// headers a 400 envelope, and every answer carries a request id.
pub async fn assert_middleware_stack(base: &str, json_path: &str, token: Option<&str>) {
    let client = common::http_client(Duration::from_secs(20)).expect("a client");

    let response = client
        .get(format!("{base}/test/panic"))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 500);
    assert!(response.headers().contains_key("x-request-id"));
    assert_eq!(envelope_code(response).await, "INTERNAL");

    let started = Instant::now();
    let response = client
        .get(format!("{base}/test/slow"))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answered at the timeout"
    );
    assert_eq!(envelope_code(response).await, "SERVICE_UNAVAILABLE");

    let oversized = format!("{{\"pad\":\"{}\"}}", "x".repeat(100 * 1024));
    let mut request = client
        .post(format!("{base}{json_path}"))
        .header("content-type", "application/json")
        .body(oversized);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("answered");
    assert_eq!(response.status(), 413);
    assert_eq!(envelope_code(response).await, "PAYLOAD_TOO_LARGE");

    let response = client
        .post(format!("{base}{json_path}"))
        .header("authorization", "Bearer a")
        .header("authorization", "Bearer b")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 400);
    assert_eq!(envelope_code(response).await, "BAD_REQUEST");
}

/// Sends `head` (a whole request head, CRLFs included) on a fresh connection and returns the
/// status and body of the answer (`None` when none came within 5 s).
pub async fn raw_exchange(addr: SocketAddr, head: &[u8]) -> Option<(u16, String)> {
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        stream.write_all(head).await.ok()?;
        let mut response = Vec::new();
        // The server may close before reading everything we sent: keep what arrived.
        let _ = stream.read_to_end(&mut response).await;
        let text = String::from_utf8_lossy(&response).into_owned();
        let status = text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
        Some((status, body))
    };
    tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .ok()
        .flatten()
}
