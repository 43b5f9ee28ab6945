//! The processes of the fault stack: a service binary (AC, a GC, an MC) or a server
//! (PostgreSQL, Redis) started, signalled, killed and started again by a scenario.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};

/// Polls until `ready` holds or `limit` passes; the time it took. Other processes have no
/// event to wait on, so this is how the suite waits for them (every 100 ms, bounded).
pub async fn wait_for<F, Fut>(limit: Duration, what: &str, mut ready: F) -> Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if ready().await {
            return Ok(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{what}: not within {limit:?}")
}

/// Sends `signal` (`STOP`, `CONT`, `KILL`, `TERM`) to `pid`.
pub async fn signal(pid: u32, signal: &str) -> Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .await
        .context("kill")?;
    if !status.success() {
        bail!("kill -{signal} {pid} failed");
    }
    Ok(())
}

/// Runs a command to its end; its output in the error when it fails.
pub async fn run(command: &mut Command) -> Result<String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("{command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// One service process of ours, with its environment kept so that it can be started again.
pub struct Service {
    pub name: String,
    binary: PathBuf,
    env: Vec<(String, String)>,
    pub http_port: u16,
    pub ops_port: u16,
    log: PathBuf,
    child: Option<Child>,
}

impl Service {
    pub fn log(&self) -> &Path {
        &self.log
    }

    pub fn new(
        name: &str,
        binary: PathBuf,
        env: Vec<(String, String)>,
        http_port: u16,
        ops_port: u16,
        logs: &Path,
    ) -> Self {
        Self {
            name: name.to_owned(),
            binary,
            env,
            http_port,
            ops_port,
            log: logs.join(format!("{name}.log")),
            child: None,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Starts the process, its output appended to its log (a restart keeps the earlier lines).
    pub fn start(&mut self) -> Result<()> {
        self.start_with(&[])
    }

    /// Starts the process with `env` added to its environment (`LD_PRELOAD` of libfaketime,
    /// say).
    pub fn start_with(&mut self, env: &[(&str, &str)]) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("open {}", self.log.display()))?;
        let child = Command::new(&self.binary)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {}", self.binary.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL, and waits for the process to be gone.
    pub async fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await.context("kill")?;
        }
        Ok(())
    }

    /// SIGTERM (a graceful stop), then SIGKILL after 20 s.
    pub async fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Some(pid) = child.id() {
            signal(pid, "TERM").await?;
        }
        if tokio::time::timeout(Duration::from_secs(20), child.wait())
            .await
            .is_err()
        {
            child.kill().await.context("kill after a stop that hung")?;
        }
        Ok(())
    }

    /// `/health/ready` on the ops port answers 200 within a second.
    pub async fn ready(&self, http: &reqwest::Client) -> bool {
        http.get(format!("http://127.0.0.1:{}/health/ready", self.ops_port))
            .timeout(Duration::from_secs(1))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    }

    pub async fn wait_ready(
        &mut self,
        http: &reqwest::Client,
        limit: Duration,
    ) -> Result<Duration> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!(
                    "{} exited during start-up ({status}); see {}",
                    self.name,
                    self.log.display()
                );
            }
            if self.ready(http).await {
                return Ok(start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "{} not ready within {limit:?}; see {}",
            self.name,
            self.log.display()
        )
    }
}
