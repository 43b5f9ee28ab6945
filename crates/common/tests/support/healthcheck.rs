//! The `healthcheck` subcommand of a service binary, run as a container runtime runs it.
//! Included by each service's tests with `#[path]`.

use std::process::Output;

async fn run(binary: &str, listen_env: &str, addr: &str) -> Output {
    tokio::process::Command::new(binary)
        .arg("healthcheck")
        .env(listen_env, addr)
        .output()
        .await
        .expect("the service binary runs")
}

/// `binary healthcheck` exits 0 against the service listening on `port` (given as the wildcard
/// address the containers bind, which the probe reads as loopback), and 1 with a reason once
/// nothing listens there.
pub async fn assert_probes(binary: &str, listen_env: &str, port: u16) {
    let up = run(binary, listen_env, &format!("0.0.0.0:{port}")).await;
    assert!(
        up.status.success(),
        "healthcheck of a live service failed: {}",
        String::from_utf8_lossy(&up.stderr)
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let down = run(binary, listen_env, &closed.to_string()).await;
    assert_eq!(down.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&down.stderr);
    assert!(stderr.contains("unhealthy: cannot reach"), "{stderr}");
}
