//! The suite's own PostgreSQL cluster and Redis server: initialised fresh for each run in
//! directories of their own, on ports of their own, so that stopping, hanging or emptying
//! them touches nothing else on the machine.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
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
