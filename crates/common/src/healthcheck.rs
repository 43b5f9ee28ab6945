//! `<service> healthcheck`: a liveness probe that needs no shell and no curl.
//!
//! Container images carry only the service binary (a distroless runtime), so a container
//! runtime's health check runs the binary itself: `gc-service healthcheck` asks the running
//! process for `GET /health/live` on its own ops port (the listener of the probes, which a
//! flood of the public one cannot fill) and exits 0 only on a 200 within the timeout. It is
//! plain blocking HTTP/1.0 over loopback on purpose: no runtime to start, nothing to configure,
//! a few milliseconds per probe.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// How long a probe may take in all (connect, send, read).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The most of the answer a probe reads: the status line is all it needs.
const MAX_RESPONSE_BYTES: usize = 4096;

/// Why a probe failed; its message is what the subcommand prints.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("invalid probe address {0:?}: {1}")]
    Address(String, String),
    #[error("cannot reach {0}: {1}")]
    Connect(SocketAddr, std::io::Error),
    #[error("no answer from {0}: {1}")]
    Io(SocketAddr, std::io::Error),
    #[error("{0} answered {1:?}")]
    Status(SocketAddr, String),
}

/// The address to probe: the service's listen address from its environment variable, with an
/// unspecified IP (`0.0.0.0`, `::`) read as loopback, or `default_port` on loopback.
pub fn probe_addr(listen_env: &str, default_port: u16) -> Result<SocketAddr, ProbeError> {
    let value = std::env::var_os(listen_env).map(|v| v.to_string_lossy().into_owned());
    probe_addr_from(value.as_deref(), default_port)
}

fn probe_addr_from(value: Option<&str>, default_port: u16) -> Result<SocketAddr, ProbeError> {
    let Some(value) = value else {
        return Ok(SocketAddr::from(([127, 0, 0, 1], default_port)));
    };
    let mut addr = value
        .to_socket_addrs()
        .map_err(|e| ProbeError::Address(value.to_owned(), e.to_string()))?
        .next()
        .ok_or_else(|| ProbeError::Address(value.to_owned(), "resolves to nothing".into()))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    Ok(addr)
}

/// Asks `addr` for `GET /health/live`; `Ok` only for status 200 within `timeout`.
pub fn probe(addr: SocketAddr, timeout: Duration) -> Result<(), ProbeError> {
    let deadline = Instant::now() + timeout;
    let remaining = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    let mut stream =
        TcpStream::connect_timeout(&addr, remaining()).map_err(|e| ProbeError::Connect(addr, e))?;
    let io = |e| ProbeError::Io(addr, e);
    stream.set_write_timeout(Some(remaining())).map_err(io)?;
    stream
        .write_all(
            b"GET /health/live HTTP/1.0\r\nHost: localhost\r\nUser-Agent: healthcheck\r\n\r\n",
        )
        .map_err(io)?;
    let mut response = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    while response.len() < MAX_RESPONSE_BYTES && !response.contains(&b'\n') {
        stream.set_read_timeout(Some(remaining())).map_err(io)?;
        match stream.read(&mut chunk).map_err(io)? {
            0 => break,
            n => response.extend_from_slice(&chunk[..n]),
        }
    }
    let status_line = response
        .split(|&b| b == b'\n')
        .next()
        .map(|line| String::from_utf8_lossy(line).trim_end().to_owned())
        .unwrap_or_default();
    let mut parts = status_line.split_ascii_whitespace();
    match (parts.next(), parts.next()) {
        (Some(version), Some("200")) if version.starts_with("HTTP/1.") => Ok(()),
        _ => Err(ProbeError::Status(addr, status_line)),
    }
}

/// The `healthcheck` subcommand of every service: probes the address from `listen_env` (or
/// loopback and `default_port`), prints why on failure, and gives the exit code.
pub fn run(listen_env: &str, default_port: u16) -> std::process::ExitCode {
    match probe_addr(listen_env, default_port).and_then(|addr| probe(addr, PROBE_TIMEOUT)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("unhealthy: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    /// A one-shot server that answers the first request with `answer` (or nothing at all).
    fn serve_once(answer: Option<&'static [u8]>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut request = [0u8; 1024];
            let _ = socket.read(&mut request);
            match answer {
                Some(bytes) => {
                    let _ = socket.write_all(bytes);
                }
                // Hold the socket open and silent past the probe's timeout.
                None => thread::sleep(Duration::from_secs(3)),
            }
        });
        addr
    }

    #[test]
    fn a_200_is_healthy() {
        let addr = serve_once(Some(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"));
        probe(addr, PROBE_TIMEOUT).unwrap();
    }

    #[test]
    fn any_other_status_is_unhealthy() {
        let addr = serve_once(Some(b"HTTP/1.1 503 Service Unavailable\r\n\r\n"));
        let error = probe(addr, PROBE_TIMEOUT).unwrap_err();
        assert!(matches!(error, ProbeError::Status(_, ref line) if line.contains("503")));
    }

    #[test]
    fn a_silent_server_times_out() {
        let addr = serve_once(None);
        let started = Instant::now();
        let error = probe(addr, Duration::from_millis(300)).unwrap_err();
        assert!(matches!(error, ProbeError::Io(..)), "{error}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn garbage_and_a_closed_port_are_unhealthy() {
        let addr = serve_once(Some(b"200 OK\r\n\r\n"));
        assert!(matches!(
            probe(addr, PROBE_TIMEOUT),
            Err(ProbeError::Status(..))
        ));
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(matches!(
            probe(closed, PROBE_TIMEOUT),
            Err(ProbeError::Connect(..))
        ));
    }

    #[test]
    fn the_listen_address_reads_unspecified_as_loopback() {
        // Unset: the default port on loopback.
        let addr = probe_addr_from(None, 8080).unwrap();
        assert_eq!(addr, SocketAddr::from(([127, 0, 0, 1], 8080)));
        let addr = probe_addr_from(Some("0.0.0.0:9000"), 8080).unwrap();
        assert_eq!(addr, SocketAddr::from(([127, 0, 0, 1], 9000)));
        let addr = probe_addr_from(Some("[::]:9001"), 8080).unwrap();
        assert_eq!(addr, "[::1]:9001".parse().unwrap());
        let addr = probe_addr_from(Some("10.1.2.3:9002"), 8080).unwrap();
        assert_eq!(addr, SocketAddr::from(([10, 1, 2, 3], 9002)));
        assert!(matches!(
            probe_addr_from(Some("not an address"), 8080),
            Err(ProbeError::Address(..))
        ));
    }
}
