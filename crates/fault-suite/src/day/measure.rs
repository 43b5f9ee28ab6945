//! What the generator measures besides the API's own counts ([`crate::api::Stats`]): the
//! clients' events and delays, and what the stack's processes and stores spent over the run
//! (CPU seconds from `/proc/<pid>/stat`, Redis' commands from `INFO`, PostgreSQL's rows from
//! `pg_stat_user_tables`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use deadpool_redis::redis;
use serde_json::json;
use sqlx::PgPool;

use crate::api::lock;

/// The clients' side of the run.
#[derive(Default)]
pub struct Metrics {
    /// Client events and outcomes → count.
    pub counts: Mutex<BTreeMap<String, u64>>,
    /// Microseconds of each measured delay, by name.
    pub delays: Mutex<BTreeMap<&'static str, Vec<u64>>>,
    /// Close codes the server sent (`none`: the connection ended without a close frame).
    pub closes: Mutex<BTreeMap<String, u64>>,
    /// Sockets seated now, integrated once a second into `participant_seconds`.
    pub seated: AtomicI64,
    pub participant_seconds: AtomicU64,
}

impl Metrics {
    pub fn count(&self, what: &str) {
        *lock(&self.counts).entry(what.to_owned()).or_default() += 1;
    }

    pub fn delay(&self, what: &'static str, took: Duration) {
        lock(&self.delays)
            .entry(what)
            .or_default()
            .push(took.as_micros() as u64);
    }

    pub fn close(&self, code: String) {
        *lock(&self.closes).entry(code).or_default() += 1;
    }

    pub fn tick_seated(&self) {
        let now = self.seated.load(Ordering::Relaxed).max(0) as u64;
        self.participant_seconds.fetch_add(now, Ordering::Relaxed);
    }
}

/// `{count, p50_ms, p99_ms, max_ms}` of microsecond samples.
pub fn summary(values: &[u64]) -> serde_json::Value {
    if values.is_empty() {
        return json!({"count": 0});
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let at = |p: f64| {
        let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[index] as f64 / 1000.0
    };
    json!({"count": sorted.len(), "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": at(1.0)})
}

/// What the stack's processes and stores had spent at one moment.
pub struct Snapshot {
    /// Process group → CPU seconds (user + system).
    pub cpu: BTreeMap<String, f64>,
    /// Redis node → (total_commands_processed, command → calls).
    pub redis: BTreeMap<String, (u64, BTreeMap<String, u64>)>,
    /// Table → (inserted, updated, deleted).
    pub rows: BTreeMap<String, (i64, i64, i64)>,
}

pub async fn snapshot(dev_dir: &Path, db: &PgPool, redis_nodes: &[String]) -> Result<Snapshot> {
    let mut cpu = BTreeMap::new();
    let ticks = clock_ticks();
    if let Ok(entries) = std::fs::read_dir(dev_dir.join("pids")) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().replace(".pid", "");
            if let Some(pid) = read_pid(&entry.path())
                && let Some(stat) = stat_of(pid)
            {
                cpu.insert(name, stat.own as f64 / ticks);
            }
        }
    }
    if let Some(pid) = read_pid(&dev_dir.join("nginx/nginx.pid")) {
        cpu.insert("nginx".to_owned(), family_ticks(pid) as f64 / ticks);
    }
    if let Ok(entries) = std::fs::read_dir(dev_dir.join("redis-cluster")) {
        for entry in entries.flatten() {
            let name = format!("redis-{}", entry.file_name().to_string_lossy());
            if let Some(pid) = read_pid(&entry.path().join("redis.pid"))
                && let Some(stat) = stat_of(pid)
            {
                cpu.insert(name, stat.own as f64 / ticks);
            }
        }
    }
    // PostgreSQL: the postmaster with the backends it reaped, and the live ones.
    let data_dir: String = sqlx::query_scalar("show data_directory")
        .fetch_one(db)
        .await?;
    if let Some(pid) = read_pid(&Path::new(&data_dir).join("postmaster.pid")) {
        cpu.insert("postgresql".to_owned(), family_ticks(pid) as f64 / ticks);
    }
    if let Some(stat) = stat_of(std::process::id()) {
        cpu.insert(
            "generator (this process)".to_owned(),
            stat.own as f64 / ticks,
        );
    }

    let mut redis_counts = BTreeMap::new();
    for url in redis_nodes {
        let client = redis::Client::open(url.as_str())?;
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .with_context(|| format!("redis {url}"))?;
        let stats: String = redis::cmd("INFO")
            .arg("stats")
            .query_async(&mut conn)
            .await?;
        let commands: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut conn)
            .await?;
        let total = info_field(&stats, "total_commands_processed").unwrap_or(0);
        let mut by_command = BTreeMap::new();
        for line in commands.lines() {
            // cmdstat_hset:calls=12,usec=...
            if let Some((name, rest)) = line
                .strip_prefix("cmdstat_")
                .and_then(|l| l.split_once(':'))
                && let Some(calls) = rest
                    .split(',')
                    .find_map(|f| f.strip_prefix("calls="))
                    .and_then(|c| c.parse().ok())
            {
                by_command.insert(name.to_owned(), calls);
            }
        }
        redis_counts.insert(url.clone(), (total, by_command));
    }

    Ok(Snapshot {
        cpu,
        redis: redis_counts,
        rows: rows(db).await?,
    })
}

/// How long a backend may hold its counts before they reach `pg_stat_user_tables`
/// (PostgreSQL 15 flushes an idle backend's statistics within 10 s).
pub const STATS_DELAY: Duration = Duration::from_secs(11);

/// Rows inserted, updated and deleted so far, by table (as of up to [`STATS_DELAY`] ago).
pub async fn rows(db: &PgPool) -> Result<BTreeMap<String, (i64, i64, i64)>> {
    let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "select relname::text, n_tup_ins, n_tup_upd, n_tup_del from pg_stat_user_tables",
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(table, ins, upd, del)| (table, (ins, upd, del)))
        .collect())
}

/// What was spent between two snapshots, as the report's JSON.
pub fn spent(before: &Snapshot, after: &Snapshot, participant_hours: f64) -> serde_json::Value {
    let mut cpu = serde_json::Map::new();
    let mut per_hour = serde_json::Map::new();
    let mut total = 0.0;
    for (name, seconds) in &after.cpu {
        let Some(was) = before.cpu.get(name) else {
            continue;
        };
        let used = seconds - was;
        if name != "generator (this process)" {
            total += used;
        }
        cpu.insert(name.clone(), json!((used * 100.0).round() / 100.0));
        if participant_hours > 0.0 {
            per_hour.insert(
                name.clone(),
                json!((used / participant_hours * 100.0).round() / 100.0),
            );
        }
    }
    let mut commands = serde_json::Map::new();
    let mut calls: BTreeMap<String, u64> = BTreeMap::new();
    let mut all_commands = 0;
    for (node, (count, by_command)) in &after.redis {
        let (was, was_by) = before.redis.get(node).cloned().unwrap_or_default();
        let used = count.saturating_sub(was);
        all_commands += used;
        commands.insert(node.clone(), json!(used));
        for (name, n) in by_command {
            *calls.entry(name.clone()).or_default() +=
                n.saturating_sub(*was_by.get(name).unwrap_or(&0));
        }
    }
    calls.retain(|_, n| *n > 0);
    let mut rows = serde_json::Map::new();
    let (mut ins, mut upd, mut del) = (0, 0, 0);
    for (table, (i, u, d)) in &after.rows {
        let (wi, wu, wd) = before.rows.get(table).copied().unwrap_or_default();
        let (i, u, d) = (i - wi, u - wu, d - wd);
        if i + u + d > 0 {
            rows.insert(
                table.clone(),
                json!({"inserted": i, "updated": u, "deleted": d}),
            );
        }
        (ins, upd, del) = (ins + i, upd + u, del + d);
    }
    json!({
        "cpu_seconds": cpu,
        "cpu_seconds_of_the_stack": (total * 100.0_f64).round() / 100.0,
        "cpu_seconds_per_participant_hour": per_hour,
        "stack_cpu_seconds_per_participant_hour": if participant_hours > 0.0 {
            json!((total / participant_hours * 100.0).round() / 100.0)
        } else {
            serde_json::Value::Null
        },
        "redis_commands": {"total": all_commands, "by_node": commands, "by_command": calls},
        "postgres_rows": {"inserted": ins, "updated": upd, "deleted": del, "by_table": rows},
    })
}

fn info_field(info: &str, field: &str) -> Option<u64> {
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

struct Stat {
    ppid: u32,
    /// utime + stime, in clock ticks.
    own: u64,
    /// cutime + cstime: the children it has waited for.
    reaped: u64,
}

fn stat_of(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command's closing parenthesis: state, ppid, ..., utime is the 12th field.
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    Some(Stat {
        ppid: field(1)? as u32,
        own: field(11)? + field(12)?,
        reaped: field(13)? + field(14)?,
    })
}

/// A process with the children it reaped and its live children (nginx's workers,
/// PostgreSQL's backends).
fn family_ticks(pid: u32) -> u64 {
    let Some(parent) = stat_of(pid) else {
        return 0;
    };
    let mut ticks = parent.own + parent.reaped;
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            if let Some(child) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
                .and_then(stat_of)
                && child.ppid == pid
            {
                ticks += child.own;
            }
        }
    }
    ticks
}

/// Linux's USER_HZ; 100 on every platform Rust targets (`getconf CLK_TCK`).
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}
