//! Load generator for `POST /api/v1/meetings` against a running GC.
//!
//! ```text
//! cargo bench -p gc-service --bench create_load -- \
//!     --url http://127.0.0.1:8080 --token "$USER_TOKEN" --concurrency 64 --duration-secs 30
//! ```
//!
//! `--concurrency` workers each keep one keep-alive connection busy, sending a small JSON body
//! back to back, for `--requests` requests in total or `--duration-secs` seconds (at most 600).
//! With `--token-file` (one token per line) worker i sends the token of line i mod n, so
//! creates can be spread over many users and orgs.
//! It prints throughput, latency percentiles and the count of each status. Every 201 is a new
//! live meeting: give the org a `max_concurrent_meetings` above the number of requests, or the
//! run measures 403s. Without `--url` it prints this usage and exits, so a plain `cargo bench`
//! does not fail.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;

#[path = "support/report.rs"]
mod report;

const MAX_DURATION_SECS: u64 = 600;
const MAX_REQUESTS: u64 = 10_000_000;

#[derive(Parser, Debug)]
#[command(
    name = "create_load",
    about = "Load generator for POST /api/v1/meetings"
)]
struct Args {
    /// Base URL of the GC under test, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    url: Option<String>,
    /// A user token (role user, org_admin or admin).
    #[arg(
        long,
        env = "GC_BENCH_TOKEN",
        hide_env_values = true,
        conflicts_with = "token_file"
    )]
    token: Option<String>,
    /// A file of user tokens, one per line, shared out over the workers.
    #[arg(long)]
    token_file: Option<std::path::PathBuf>,
    /// Requests in flight at once (one connection each).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Stop after this many requests.
    #[arg(long, conflicts_with = "duration_secs")]
    requests: Option<u64>,
    /// Stop after this many seconds (at most 600).
    #[arg(long)]
    duration_secs: Option<u64>,
    /// Display name of the created meetings.
    #[arg(long, default_value = "load test")]
    display_name: String,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// When the run stops.
#[derive(Clone, Copy)]
enum Budget {
    Requests(u64),
    Until(Instant),
}

#[derive(Default)]
struct WorkerReport {
    latencies_us: Vec<u64>,
    statuses: BTreeMap<String, u64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let tokens: Vec<String> = match (&args.token, &args.token_file) {
        (Some(token), _) => vec![token.clone()],
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect(),
        (None, None) => Vec::new(),
    };
    let (Some(url), false) = (args.url.clone(), tokens.is_empty()) else {
        println!(
            "create_load: nothing to do without --url and --token or --token-file (see --help)"
        );
        return Ok(());
    };
    let budget = match (args.requests, args.duration_secs) {
        (Some(n), _) => Budget::Requests(n.clamp(1, MAX_REQUESTS)),
        (None, Some(secs)) => {
            Budget::Until(Instant::now() + Duration::from_secs(secs.clamp(1, MAX_DURATION_SECS)))
        }
        (None, None) => Budget::Requests(10_000),
    };
    let concurrency = args.concurrency.clamp(1, 4096);
    let client = common::http_client(Duration::from_secs(30)).context("cannot build the client")?;
    let endpoint = format!("{}/api/v1/meetings", url.trim_end_matches('/'));
    let body = serde_json::to_vec(&serde_json::json!({ "display_name": args.display_name }))?;

    let issued = Arc::new(AtomicU64::new(0));
    let cpu_before = report::own_cpu_ms();
    let started = Instant::now();
    let mut workers = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let client = client.clone();
        let endpoint = endpoint.clone();
        let token = tokens[worker % tokens.len()].clone();
        let body = body.clone();
        let issued = Arc::clone(&issued);
        workers.push(tokio::spawn(async move {
            let mut tally = WorkerReport::default();
            loop {
                let go = match budget {
                    Budget::Requests(n) => issued.fetch_add(1, Ordering::Relaxed) < n,
                    Budget::Until(deadline) => Instant::now() < deadline,
                };
                if !go {
                    return tally;
                }
                let sent = Instant::now();
                let outcome = client
                    .post(&endpoint)
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                let label = match outcome {
                    Ok(response) => {
                        let status = response.status().as_u16().to_string();
                        // Read the body so the connection can be reused.
                        let _ = response.bytes().await;
                        status
                    }
                    Err(error) if error.is_timeout() => "timeout".to_owned(),
                    Err(_) => "transport_error".to_owned(),
                };
                tally.latencies_us.push(report::micros(sent.elapsed()));
                *tally.statuses.entry(label).or_default() += 1;
            }
        }));
    }

    let mut latencies = Vec::new();
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    for worker in workers {
        let tally = worker.await.context("a worker panicked")?;
        latencies.extend(tally.latencies_us);
        for (status, n) in tally.statuses {
            *statuses.entry(status).or_default() += n;
        }
    }
    let wall = started.elapsed();
    report::print_summary(concurrency, wall, &mut latencies, &statuses);
    if let Some(cpu) = report::own_cpu_ms()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before))
    {
        println!("client cpu   {cpu} ms");
    }
    Ok(())
}
