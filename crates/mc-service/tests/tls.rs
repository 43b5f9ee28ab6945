//! MC over TLS to Redis (`rediss://`), as with a managed Redis in production: a Redis of this
//! test's own with TLS only, a certificate from a throwaway CA, and the real `mc-service`
//! binary, which is ready only once it has reached Redis. The CA is trusted through
//! `SSL_CERT_FILE` (which rustls reads for the system roots); without it, the same Redis is
//! refused: the server's certificate is checked.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "shared/jwks.rs"]
mod jwks;

/// A child process killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl {args:?} failed");
}

/// A CA and a server certificate for `localhost` / 127.0.0.1 it signed, in a fresh directory.
fn certificates() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("convene-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    run(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=convene test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    run(
        &dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ],
    );
    dir
}

/// A Redis that speaks TLS only, on a port of its own.
fn tls_redis(dir: &Path) -> (Process, u16) {
    let port = free_port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .args([
            "--tls-cert-file",
            "server.pem",
            "--tls-key-file",
            "server.key",
        ])
        .args(["--tls-ca-cert-file", "ca.pem", "--tls-auth-clients", "no"])
        .args(["--save", "", "--appendonly", "no"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server runs");
    let process = Process(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the TLS Redis did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (process, port)
}

/// Starts `mc-service` against `redis_url`, trusting `ca` when given; returns the process and
/// whether it became ready within `wait`.
async fn mc_ready(redis_url: &str, ca: Option<&Path>, wait: Duration) -> (Process, bool) {
    let http = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_mc-service"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("MC_HTTP_ADDR", format!("127.0.0.1:{http}"))
        .env("MC_GRPC_ADDR", "127.0.0.1:0")
        .env("MC_OPS_ADDR", "127.0.0.1:0")
        .env("REDIS_URL", redis_url)
        .env("AC_URL", jwks::jwks_endpoint().await)
        .env("MC_CLIENT_ID", "tls-test-mc")
        .env("MC_CLIENT_SECRET", "unused-secret")
        .env("GC_GRPC_URL", "http://127.0.0.1:1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(ca) = ca {
        command.env("SSL_CERT_FILE", ca);
    }
    let process = Process(command.spawn().unwrap());
    let client = common::http_client(Duration::from_secs(3)).unwrap();
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if let Ok(response) = client
            .get(format!("http://127.0.0.1:{http}/health/ready"))
            .timeout(Duration::from_secs(3))
            .send()
            .await
            && response.status() == 200
        {
            return (process, true);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (process, false)
}

#[tokio::test]
async fn mc_reaches_redis_over_tls_and_checks_its_certificate() {
    let dir = certificates();
    let (_redis, port) = tls_redis(&dir);
    let url = format!("rediss://localhost:{port}");

    let (_trusting, ready) =
        mc_ready(&url, Some(&dir.join("ca.pem")), Duration::from_secs(20)).await;
    assert!(
        ready,
        "MC with the CA trusted never became ready over rediss://"
    );

    // Without the CA: the system's roots do not vouch for this server, so no connection.
    let (_untrusting, ready) = mc_ready(&url, None, Duration::from_secs(5)).await;
    assert!(
        !ready,
        "MC became ready with a certificate it had no reason to trust"
    );

    // The same Redis over plain TCP: nothing listens there but TLS.
    let (_plain, ready) = mc_ready(
        &format!("redis://localhost:{port}"),
        None,
        Duration::from_secs(5),
    )
    .await;
    assert!(!ready, "MC became ready speaking plain TCP to a TLS port");
    std::fs::remove_dir_all(&dir).unwrap();
}
