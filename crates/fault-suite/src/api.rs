//! GC's public API as the load calls it: round robin over the GC replicas, every answer
//! counted, and every 5xx that is not the documented `503 SERVICE_UNAVAILABLE` with
//! `Retry-After` kept as a violation.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use reqwest::Method;
use tokio_util::sync::CancellationToken;

/// At most this many violations are kept word for word; the rest are counted.
const KEPT: usize = 40;
/// How long one operation is retried through 503s and 429s before the load gives it up
/// (longer than the longest outage of a scenario, AC's 2 minutes).
pub const GIVE_UP: Duration = Duration::from_secs(150);

#[derive(Default)]
pub struct Stats {
    /// `"<operation> <status>"` (or `transport`) → count.
    pub answers: Mutex<BTreeMap<String, u64>>,
    violations: Mutex<(Vec<String>, u64)>,
    /// Microseconds of every answered call, by operation.
    pub latencies: Mutex<BTreeMap<&'static str, Vec<u64>>>,
    /// Codes of the meetings whose create was answered 201.
    pub created: Mutex<Vec<String>>,
    /// Every answer outside 2xx: `"<operation> <status> <error code>"` → count.
    pub refusals: Mutex<BTreeMap<String, u64>>,
}

impl Stats {
    pub fn violation(&self, what: String) {
        let mut violations = lock(&self.violations);
        violations.1 += 1;
        if violations.0.len() < KEPT {
            violations.0.push(what);
        }
    }

    pub fn violations(&self) -> (Vec<String>, u64) {
        lock(&self.violations).clone()
    }

    fn answer(&self, op: &'static str, outcome: String, took: Duration) {
        *lock(&self.answers)
            .entry(format!("{op} {outcome}"))
            .or_default() += 1;
        lock(&self.latencies)
            .entry(op)
            .or_default()
            .push(took.as_micros() as u64);
    }

    pub fn percentile(&self, op: &str, p: f64) -> Option<Duration> {
        let latencies = lock(&self.latencies);
        let mut values = latencies.get(op)?.clone();
        values.sort_unstable();
        let index = ((values.len() as f64 * p).ceil() as usize).clamp(1, values.len()) - 1;
        Some(Duration::from_micros(values[index]))
    }

    pub fn reset_latencies(&self) {
        lock(&self.latencies).clear();
    }
}

pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
    pub retry_after: Option<Duration>,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub fn text(&self, field: &str) -> Result<String> {
        match self.body[field].as_str() {
            Some(value) => Ok(value.to_owned()),
            None => bail!("no {field} in {}", self.body),
        }
    }
}

pub struct Api {
    http: reqwest::Client,
    gcs: Vec<String>,
    next: AtomicUsize,
    pub stats: Stats,
}

impl Api {
    pub fn new(http: reqwest::Client, gcs: Vec<String>) -> Self {
        Self {
            http,
            gcs,
            next: AtomicUsize::new(0),
            stats: Stats::default(),
        }
    }

    fn gc(&self) -> &str {
        &self.gcs[self.next.fetch_add(1, Ordering::Relaxed) % self.gcs.len()]
    }

    /// One call to the next GC: `path` below `/api/v1/meetings`.
    pub async fn call(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&serde_json::Value>,
        idempotency_key: Option<&str>,
    ) -> Result<Answer> {
        let url = format!("{}/api/v1/meetings{path}", self.gc());
        let mut request = self.http.request(method, &url).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        let start = Instant::now();
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                self.stats
                    .answer(op, "transport".to_owned(), start.elapsed());
                // With its causes: reqwest's own text names only the request.
                let mut causes = String::new();
                let mut source = std::error::Error::source(&error);
                while let Some(cause) = source {
                    causes.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                self.stats.violation(format!(
                    "{op} {url}: no answer after {:?}: {error}{causes}",
                    start.elapsed()
                ));
                return Err(error.into());
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .map(Duration::from_secs);
        let body = response.json().await.unwrap_or(serde_json::Value::Null);
        let took = start.elapsed();
        self.stats.answer(op, status.to_string(), took);
        let answer = Answer {
            status,
            body,
            retry_after,
        };
        if !(200..300).contains(&status) {
            *lock(&self.stats.refusals)
                .entry(format!("{op} {status} {}", answer.code()))
                .or_default() += 1;
        }
        if status >= 500
            && !(status == 503
                && answer.retry_after.is_some()
                && answer.code() == "SERVICE_UNAVAILABLE")
        {
            self.stats
                .violation(format!("{op} {url}: {status} {}", answer.body));
        }
        Ok(answer)
    }

    /// Ends meeting `code` as its host, [`Self::retrying`]: any answer but 200 is an error.
    pub async fn end_meeting(
        &self,
        code: &str,
        host_token: &str,
        stop: &CancellationToken,
    ) -> Result<()> {
        let path = format!("/{code}/end");
        let answer = self
            .retrying("end", Method::POST, &path, host_token, None, None, stop)
            .await?;
        if answer.status != 200 {
            bail!("end of {code}: {} {}", answer.status, answer.body);
        }
        Ok(())
    }

    /// Calls until the answer is neither 503 nor 429 (waiting what `Retry-After` says, at
    /// most 5 s), [`GIVE_UP`] passes, or `stop` is cancelled.
    #[allow(clippy::too_many_arguments)]
    pub async fn retrying(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&serde_json::Value>,
        idempotency_key: Option<&str>,
        stop: &CancellationToken,
    ) -> Result<Answer> {
        let start = Instant::now();
        loop {
            let wait = match self
                .call(op, method.clone(), path, token, body, idempotency_key)
                .await
            {
                Ok(answer) if answer.status == 503 || answer.status == 429 => answer
                    .retry_after
                    .unwrap_or(Duration::from_secs(1))
                    .min(Duration::from_secs(5)),
                Ok(answer) => return Ok(answer),
                Err(_) => Duration::from_secs(1),
            };
            if start.elapsed() > GIVE_UP {
                bail!("{op} {path}: gave up after {:?}", start.elapsed());
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = stop.cancelled() => bail!("{op} {path}: stopped"),
            }
        }
    }
}
