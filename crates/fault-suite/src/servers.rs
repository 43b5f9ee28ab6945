//! The suite's own PostgreSQL cluster and Redis server: initialised fresh for each run in
//! directories of their own, on ports of their own, so that stopping, hanging or emptying
//! them touches nothing else on the machine.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};

use crate::process::{run, wait_for};

/// A PostgreSQL cluster of the suite's own (`initdb` into a fresh directory).
pub struct Postgres {
    bindir: PathBuf,
    pub data: PathBuf,
    pub port: u16,
}

/// `initdb` and `pg_ctl` refuse to run as root: as root they run as the `postgres` user.
fn as_owner(program: &Path) -> Command {
    Command::from(owner_command(program))
}

fn owner_command(program: &Path) -> std::process::Command {
    if is_root() {
        let mut command = std::process::Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        std::process::Command::new(program)
    }
}

fn is_root() -> bool {
    std::env::var("USER").is_ok_and(|u| u == "root")
        || std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
}

impl Postgres {
    /// A new cluster in `data` (emptied first), not started.
    pub async fn init(bindir: &Path, data: &Path, port: u16) -> Result<Self> {
        if data.exists() {
            std::fs::remove_dir_all(data).with_context(|| format!("rm -r {}", data.display()))?;
        }
        std::fs::create_dir_all(data)?;
        if is_root() {
            run(Command::new("chown").arg("postgres:postgres").arg(data)).await?;
        }
        run(as_owner(&bindir.join("initdb"))
            .arg("-D")
            .arg(data)
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8"]))
        .await?;
        Ok(Self {
            bindir: bindir.to_owned(),
            data: data.to_owned(),
            port,
        })
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub async fn start(&self) -> Result<()> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300",
            self.port,
            self.data.display()
        );
        run(as_owner(&self.bindir.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-w", "-t", "60", "-l"])
            .arg(self.data.join("log"))
            .args(["-o", &options, "start"]))
        .await?;
        Ok(())
    }

    /// A streaming replica of this cluster in `data` (emptied first), on `port`, started:
    /// `pg_basebackup -R` (it writes the replica's `primary_conninfo` and `standby.signal`).
    pub async fn replica(&self, data: &Path, port: u16) -> Result<Postgres> {
        if data.exists() {
            std::fs::remove_dir_all(data).with_context(|| format!("rm -r {}", data.display()))?;
        }
        std::fs::create_dir_all(data)?;
        // PostgreSQL refuses a data directory others may read.
        std::fs::set_permissions(data, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        if is_root() {
            run(Command::new("chown").arg("postgres:postgres").arg(data)).await?;
        }
        run(as_owner(&self.bindir.join("pg_basebackup"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .arg("-D")
            .arg(data)
            .args(["-R", "-X", "stream", "-c", "fast"]))
        .await?;
        let replica = Postgres {
            bindir: self.bindir.clone(),
            data: data.to_owned(),
            port,
        };
        replica.start().await?;
        Ok(replica)
    }

    /// A replica becomes a primary (`pg_ctl promote`, waiting until it accepts writes).
    pub async fn promote(&self) -> Result<()> {
        run(as_owner(&self.bindir.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-w", "-t", "60", "promote"]))
        .await?;
        Ok(())
    }

    /// `mode`: `fast` (sessions terminated, a clean shutdown) or `immediate` (a crash).
    pub async fn stop(&self, mode: &str) -> Result<()> {
        run(as_owner(&self.bindir.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", mode, "-w", "-t", "60", "stop"]))
        .await?;
        Ok(())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = owner_command(&self.bindir.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A Redis server without persistence: a restart brings it back empty.
pub struct Redis {
    dir: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

impl Redis {
    pub async fn start(dir: &Path, port: u16) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut redis = Self {
            dir: dir.to_owned(),
            port,
            child: None,
        };
        redis.spawn().await?;
        Ok(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    async fn spawn(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("redis.log"))?;
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("redis-server")?;
        self.child = Some(child);
        let url = self.url();
        wait_for(Duration::from_secs(10), "redis answers PING", || {
            let url = url.clone();
            async move { ping(&url).await }
        })
        .await?;
        Ok(())
    }

    /// Killed and started again: everything it held is gone (no persistence).
    pub async fn restart_empty(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await?;
        }
        self.spawn().await
    }
}

pub async fn ping(url: &str) -> bool {
    let Ok(client) = deadpool_redis::redis::Client::open(url) else {
        return false;
    };
    let attempt = async {
        let mut connection = client.get_multiplexed_async_connection().await.ok()?;
        deadpool_redis::redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .ok()
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), attempt).await,
        Ok(Some(_))
    )
}

/// How long a Redis Cluster node may be silent before the others count it failed and its
/// replica is promoted: short, so that a failover takes a few seconds rather than the 15 s of
/// Redis's default.
pub const CLUSTER_NODE_TIMEOUT_MS: u64 = 1000;
/// Primaries of the cluster, each with one replica.
const CLUSTER_PRIMARIES: usize = 3;

/// A Redis Cluster of the suite's own: three primaries with a replica each (six servers without
/// persistence), formed with `redis-cli --cluster create`. Node *i* serves clients on
/// `port + i` and the cluster bus on `bus_port + i`.
pub struct RedisCluster {
    port: u16,
    nodes: Vec<Option<Child>>,
}

impl RedisCluster {
    /// Started and formed: every node says `cluster_state:ok` and every primary has its
    /// replica attached.
    pub async fn start(dir: &Path, port: u16, bus_port: u16) -> Result<Self> {
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        std::fs::create_dir_all(dir)?;
        let mut cluster = Self {
            port,
            nodes: Vec::new(),
        };
        for i in 0..2 * CLUSTER_PRIMARIES {
            let node_port = port + i as u16;
            let log = std::fs::File::create(dir.join(format!("node-{node_port}.log")))?;
            let child = Command::new("redis-server")
                .args(["--port", &node_port.to_string()])
                .args(["--cluster-port", &(bus_port + i as u16).to_string()])
                .args(["--cluster-enabled", "yes"])
                .args([
                    "--cluster-node-timeout",
                    &CLUSTER_NODE_TIMEOUT_MS.to_string(),
                ])
                .args(["--cluster-config-file", &format!("nodes-{node_port}.conf")])
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .context("redis-server (cluster node)")?;
            cluster.nodes.push(Some(child));
        }
        for url in cluster.urls() {
            wait_for(
                Duration::from_secs(10),
                "a cluster node answers PING",
                || {
                    let url = url.clone();
                    async move { ping(&url).await }
                },
            )
            .await?;
        }
        let mut create = Command::new("redis-cli");
        create.args(["--cluster", "create"]);
        for i in 0..2 * CLUSTER_PRIMARIES {
            create.arg(format!("127.0.0.1:{}", port + i as u16));
        }
        run(create.args(["--cluster-replicas", "1", "--cluster-yes"])).await?;
        wait_for(Duration::from_secs(30), "the cluster formed", || {
            cluster.formed()
        })
        .await?;
        Ok(cluster)
    }

    /// Every node's URL (MC's `REDIS_CLUSTER_URLS`).
    pub fn urls(&self) -> Vec<String> {
        (0..self.nodes.len())
            .map(|i| format!("redis://127.0.0.1:{}", self.port + i as u16))
            .collect()
    }

    /// The URL of a node that is still running.
    fn alive(&self) -> Option<u16> {
        (0..self.nodes.len())
            .find(|i| self.nodes[*i].is_some())
            .map(|i| self.port + i as u16)
    }

    /// Every running node says `cluster_state:ok`, and every primary has a replica attached.
    async fn formed(&self) -> bool {
        let mut primaries_with_replica = 0;
        for (i, node) in self.nodes.iter().enumerate() {
            if node.is_none() {
                continue;
            }
            let port = self.port + i as u16;
            if !cli(port, &["cluster", "info"])
                .await
                .contains("cluster_state:ok")
            {
                return false;
            }
            let replication = cli(port, &["info", "replication"]).await;
            if replication.contains("role:master") && replication.contains("connected_slaves:1") {
                primaries_with_replica += 1;
            }
        }
        primaries_with_replica == CLUSTER_PRIMARIES
    }

    /// The port of the primary serving `key`'s slot, as a running node sees the cluster now.
    pub async fn primary_of(&self, key: &str) -> Result<u16> {
        let port = self.alive().context("no cluster node is running")?;
        let slot: u16 = cli(port, &["cluster", "keyslot", key])
            .await
            .trim()
            .parse()
            .context("cluster keyslot")?;
        // `CLUSTER SHARDS` would need parsing of nested maps; `CLUSTER NODES` is one line per
        // node: `id addr:port@bus flags master - ... connected 0-5460 ...`.
        for line in cli(port, &["cluster", "nodes"]).await.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let serves = fields[8..].iter().any(|range| {
                let mut bounds = range.split('-').filter_map(|b| b.parse::<u16>().ok());
                match (bounds.next(), bounds.next()) {
                    (Some(start), Some(end)) => (start..=end).contains(&slot),
                    (Some(only), None) => only == slot,
                    _ => false,
                }
            });
            if serves {
                let addr = fields[1].split('@').next().unwrap_or_default();
                return addr
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .context("a node's address");
            }
        }
        bail!("no primary serves slot {slot}")
    }

    /// SIGKILL of the node on `port`.
    pub async fn kill(&mut self, port: u16) -> Result<()> {
        let i = usize::from(port - self.port);
        if let Some(mut child) = self.nodes.get_mut(i).and_then(Option::take) {
            child.kill().await?;
        }
        Ok(())
    }

    /// Until the running nodes agree the cluster is whole again (`cluster_state:ok`) with
    /// `key`'s slot served by a running primary other than `killed`; the time it took.
    pub async fn wait_failover(&self, key: &str, killed: u16, limit: Duration) -> Result<Duration> {
        wait_for(limit, "the replica promoted", || async {
            let Some(port) = self.alive() else {
                return false;
            };
            cli(port, &["cluster", "info"])
                .await
                .contains("cluster_state:ok")
                && self.primary_of(key).await.is_ok_and(|p| p != killed)
        })
        .await
    }
}

/// `redis-cli -p port args…`'s output; empty when it could not run.
async fn cli(port: u16, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output();
    match tokio::time::timeout(Duration::from_secs(2), output).await {
        Ok(Ok(output)) => String::from_utf8_lossy(&output.stdout).into_owned(),
        _ => String::new(),
    }
}
