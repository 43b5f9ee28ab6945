//! A throwaway three-primary Redis Cluster of this test's own, on free loopback ports, in a
//! temporary directory; shut down when dropped. Each test starts its own, so tests run in
//! parallel without meeting and CI needs nothing running beforehand.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use tempfile::TempDir;

const NODES: usize = 3;
const ATTEMPTS: usize = 5;

pub struct RedisCluster {
    ports: Vec<u16>,
    /// Nodes seen answering from our directory; only these get `shutdown nosave`, so a port
    /// race can never shut down another test's server.
    verified: Vec<u16>,
    // Dropped after the nodes are shut down (fields drop after `Drop::drop`).
    dir: TempDir,
}

impl RedisCluster {
    /// Blocks until every node reports `cluster_state:ok`. Call it from `spawn_blocking`.
    pub fn start() -> Self {
        require_redis_binaries();
        let mut last_error = String::new();
        for _ in 0..ATTEMPTS {
            match Self::try_start() {
                Ok(cluster) => return cluster,
                // A port picked as free may be taken by another test before our node binds it.
                Err(error) => last_error = error,
            }
        }
        panic!("could not start a Redis Cluster in {ATTEMPTS} attempts: {last_error}");
    }

    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|port| format!("redis://127.0.0.1:{port}"))
            .collect()
    }

    fn try_start() -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("convene-redis-cluster-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        // Two ports per node: clients, and the cluster bus (by default client port + 10000,
        // which may be above 65535 or taken, so it is chosen explicitly).
        let free = free_ports(2 * NODES)?;
        let (ports, bus_ports) = free.split_at(NODES);
        let mut cluster = Self {
            ports: ports.to_vec(),
            verified: Vec::new(),
            dir,
        };
        let dir = cluster.dir.path().to_path_buf();
        for (port, bus) in ports.iter().zip(bus_ports) {
            start_node(&dir, *port, *bus)?;
        }
        for port in ports {
            wait_until_ours(&dir, *port)?;
            cluster.verified.push(*port);
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for port in ports {
            create.arg(format!("127.0.0.1:{port}"));
        }
        let created = run(create.arg("--cluster-yes"))?;
        if !created.status.success() {
            return Err(format!(
                "redis-cli --cluster create failed: {}",
                String::from_utf8_lossy(&created.stdout)
            ));
        }
        for port in ports {
            wait_for(Duration::from_secs(30), || {
                cli(*port, &["cluster", "info"]).contains("cluster_state:ok")
            })
            .map_err(|()| format!("node {port} never reported cluster_state:ok"))?;
        }
        Ok(cluster)
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for port in &self.ports {
            if self.verified.contains(port) {
                let _ = Command::new("redis-cli")
                    .args(["-p", &port.to_string(), "shutdown", "nosave"])
                    .output();
            } else {
                // Started but never seen answering: stop it by the pid it wrote in our
                // directory, if it got that far.
                let pidfile = self.dir.path().join(format!("redis-{port}.pid"));
                if let Ok(pid) = std::fs::read_to_string(pidfile) {
                    let _ = Command::new("kill").arg(pid.trim()).output();
                }
            }
        }
    }
}

fn require_redis_binaries() {
    for binary in ["redis-server", "redis-cli"] {
        if Command::new(binary).arg("--version").output().is_err() {
            panic!(
                "`{binary}` is not installed: the Redis Cluster tests start their own cluster. \
                 Install it with `apt-get install -y redis-server` (scripts/lib.sh does)."
            );
        }
    }
}

fn free_ports(count: usize) -> Result<Vec<u16>, String> {
    // All listeners are held until every port is known, so the ports differ from each other.
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bind: {e}"))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("local_addr: {e}"))
}

fn start_node(dir: &Path, port: u16, bus: u16) -> Result<(), String> {
    let path = |name: String| dir.join(name).to_string_lossy().into_owned();
    let output = run(Command::new("redis-server")
        .args(["--port", &port.to_string()])
        .args(["--cluster-port", &bus.to_string()])
        .args(["--cluster-enabled", "yes"])
        .args(["--cluster-config-file", &path(format!("nodes-{port}.conf"))])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "yes"])
        .args(["--bind", "127.0.0.1"])
        .args(["--dir", &dir.to_string_lossy()])
        .args(["--logfile", &path(format!("redis-{port}.log"))])
        .args(["--pidfile", &path(format!("redis-{port}.pid"))]))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("redis-server on {port} did not start"))
    }
}

/// Waits for the node to answer, and checks it is the one started in `dir`, not another test's
/// server that won a race for the port.
fn wait_until_ours(dir: &Path, port: u16) -> Result<(), String> {
    let dir = dir.to_string_lossy().into_owned();
    wait_for(Duration::from_secs(5), || {
        cli(port, &["ping"]).trim() == "PONG"
    })
    .map_err(|()| format!("node {port} never answered PING"))?;
    if cli(port, &["config", "get", "dir"]).contains(&dir) {
        Ok(())
    } else {
        Err(format!("port {port} is served by another Redis"))
    }
}

fn cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn run(command: &mut Command) -> Result<Output, String> {
    command.output().map_err(|e| format!("{command:?}: {e}"))
}

/// Polls `ready` until it holds or `limit` passes: the nodes are other processes, with no
/// event to wait on.
fn wait_for(limit: Duration, mut ready: impl FnMut() -> bool) -> Result<(), ()> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(())
}
