//! Load generator for `POST /api/v1/meetings/{code}/join` against a running AC, GC and MC.
//!
//! ```text
//! # once: user tokens for a pool of users (one sign-in each through AC), one per line
//! cargo bench -p gc-service --bench join_load -- sign-in --ac-url http://127.0.0.1:8082 \
//!     --email-format 'bench-u{}@bench.test' --count 500 --password "$PW" --out tokens.txt
//! # rooms, created and warmed as the host (not measured); then steady joins
//! cargo bench -p gc-service --bench join_load -- prepare --url http://127.0.0.1:8080 \
//!     --host-token "$HOST_TOKEN" --rooms 500 --seats 201 --out rooms.txt
//! cargo bench -p gc-service --bench join_load -- steady --url http://127.0.0.1:8080 \
//!     --tokens-file tokens.txt --users 200 --rooms-file rooms.txt --concurrency 16 \
//!     --duration-secs 10
//! # a storm: many users join one room at the same instant
//! cargo bench -p gc-service --bench join_load -- storm --url http://127.0.0.1:8080 \
//!     --host-token "$HOST_TOKEN" --tokens-file tokens.txt --users 500 --max-participants 100
//! # guests without an account (DESIGN §12): rooms that take guests, then steady guest-joins
//! cargo bench -p gc-service --bench join_load -- prepare --guests --url http://127.0.0.1:8080 \
//!     --host-token "$HOST_TOKEN" --rooms 500 --seats 2 --out guest-rooms.txt
//! cargo bench -p gc-service --bench join_load -- guest-steady --url http://127.0.0.1:8080 \
//!     --rooms-file guest-rooms.txt --concurrency 16 --duration-secs 10
//! # a storm of guests, each from a loopback address of its own, into one lobby
//! cargo bench -p gc-service --bench join_load -- guest-storm --url http://127.0.0.1:8080 \
//!     --host-token "$HOST_TOKEN" --guests 500
//! # a webhook receiver that answers 204 at once and counts (GET /stats), until killed
//! cargo bench -p gc-service --bench join_load -- webhook-sink --addr 127.0.0.1:18190
//! # the floor of one delivery: bare POSTs of a webhook-sized body to that receiver
//! cargo bench -p gc-service --bench join_load -- post-load --url http://127.0.0.1:18190/hook \
//!     --concurrency 16 --duration-secs 10 --body-bytes 400
//! ```
//!
//! `guest-steady` has `--concurrency` workers ask `POST /{code}/guest-join` back to back, each
//! request a new guest (AC signs a guest token and a meeting token) in room `k mod rooms`; a
//! guest always waits, so the rooms' lobbies fill, at most `MAX_GUESTS_WAITING` guests each:
//! give enough rooms. The GC under test needs a guest-join budget per address larger than the
//! run (`GC_GUEST_JOIN_BURST`), since the workers share one address. `guest-storm` creates one
//! room that takes guests, warms it with the host's join, and releases `--guests` guest-joins
//! at once, each from its own loopback address (127.0.2.1, ...), as a crowd arriving by a
//! shared link would: exactly `MAX_GUESTS_WAITING` wait, the others are refused 409.
//!
//! `prepare` creates `--rooms` meetings as the host (waiting room off, `--seats` seats: give one
//! for the host and one for every pool user) and warms each with one join of the host, which
//! assigns it to a meeting controller and makes it active. `steady` then has `--concurrency`
//! workers, one keep-alive connection each, join back to back for `--duration-secs` seconds
//! (at most 600). Request `k` seats user `(k / rooms + k mod rooms) mod users` in room
//! `k mod rooms`: no pair comes twice, and requests in flight at once name different rooms and
//! different users.
//! When every pair has been used the run stops early and says so.
//!
//! `storm` creates one meeting with `--max-participants` seats and the waiting room off, left
//! cold (not assigned to a controller yet, as at a meeting's start), opens one connection per
//! user, and then releases all the joins at once behind a barrier. It prints how each was
//! answered and the slowest answer.
//!
//! Outcomes are counted as `200` (admitted), `200 waiting`, `<status> <error code>` (from the
//! error envelope), `timeout` and `transport_error`. Without a command it prints
//! this usage and exits 0, so a plain `cargo bench` does not fail.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use futures::StreamExt;
use serde_json::json;

#[path = "support/api.rs"]
mod api;
#[path = "support/report.rs"]
mod report;
#[path = "support/sink.rs"]
mod sink;

const MAX_DURATION_SECS: u64 = 600;
const MAX_USERS: usize = 100_000;
const MAX_ROOMS: usize = 100_000;
/// Requests in flight while rooms are set up or users sign in.
const SETUP_CONCURRENCY: usize = 8;

#[derive(Parser, Debug)]
#[command(
    name = "join_load",
    about = "Load generator for POST /api/v1/meetings/{code}/join"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true, global = true)]
    bench: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Signs users in through AC and writes their user tokens, one per line.
    SignIn(SignInArgs),
    /// Creates rooms as the host and warms each with the host's join.
    Prepare(PrepareArgs),
    /// Steady joins of distinct (user, room) pairs over the prepared rooms.
    Steady(SteadyArgs),
    /// Distinct users joining one cold room at the same instant.
    Storm(StormArgs),
    /// Steady guest-joins (people without an account) over rooms that take guests.
    GuestSteady(GuestSteadyArgs),
    /// Guests from distinct loopback addresses asking to join one room at the same instant.
    GuestStorm(GuestStormArgs),
    /// A webhook receiver that answers at once and counts what it got (`GET /stats`).
    WebhookSink(WebhookSinkArgs),
    /// Bare POSTs with the Standard Webhooks headers, back to back: the least one delivery
    /// can cost (no database, no signature computed).
    PostLoad(PostLoadArgs),
}

#[derive(Args, Debug)]
struct PostLoadArgs {
    /// Where to POST, e.g. the webhook-sink's http://127.0.0.1:18190/hook.
    #[arg(long)]
    url: String,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seconds of requests (at most 600).
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Bytes of each request's body (at most 65536).
    #[arg(long, default_value_t = 400)]
    body_bytes: usize,
}

#[derive(Args, Debug)]
struct WebhookSinkArgs {
    /// Loopback address to listen on.
    #[arg(long, default_value = "127.0.0.1:18190")]
    addr: std::net::SocketAddr,
}

#[derive(Args, Debug)]
struct GuestSteadyArgs {
    /// Base URL of the GC under test, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    url: String,
    /// File of room codes, one per line (from `prepare --guests`).
    #[arg(long)]
    rooms_file: PathBuf,
    /// Requests in flight at once (one connection each).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seconds of measured guest-joins (at most 600).
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
}

#[derive(Args, Debug)]
struct GuestStormArgs {
    /// Base URL of the GC under test, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    url: String,
    /// User token of the host who creates the room and joins it first.
    #[arg(long, env = "GC_BENCH_HOST_TOKEN", hide_env_values = true)]
    host_token: String,
    /// Guests asking at once, each from its own loopback address (at most 60,000).
    #[arg(long, default_value_t = 500)]
    guests: usize,
    /// Seconds a guest-join may take before it counts as a timeout.
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
}

#[derive(Args, Debug)]
struct SignInArgs {
    /// Base URL of AC, e.g. http://127.0.0.1:8082.
    #[arg(long)]
    ac_url: String,
    /// E-mail of user i, with `{}` standing for i (0-based).
    #[arg(long)]
    email_format: String,
    /// How many users (at most 100,000).
    #[arg(long)]
    count: usize,
    /// The password every one of them has.
    #[arg(long, env = "GC_BENCH_PASSWORD", hide_env_values = true)]
    password: String,
    /// Sign-ins in flight at once (AC hashes a few at a time anyway).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Where to write the tokens.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args, Debug)]
struct PrepareArgs {
    /// Base URL of the GC under test, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    url: String,
    /// User token of the host who creates the rooms (not one of the pool).
    #[arg(long, env = "GC_BENCH_HOST_TOKEN", hide_env_values = true)]
    host_token: String,
    /// Rooms to create (at most 100,000).
    #[arg(long, default_value_t = 500)]
    rooms: usize,
    /// Seats of each room: one for the host and one for each pool user that will join it.
    #[arg(long)]
    seats: usize,
    /// Display name of the created meetings.
    #[arg(long, default_value = "join bench")]
    display_name: String,
    /// Rooms that take guests without an account (`allow_guests`, `require_auth` off).
    #[arg(long)]
    guests: bool,
    /// Where to write the rooms' codes, one per line.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args, Debug)]
struct SteadyArgs {
    /// Base URL of the GC under test, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    url: String,
    /// File of user tokens, one per line (from `sign-in`).
    #[arg(long)]
    tokens_file: PathBuf,
    /// Pool users to join with: the first N tokens of the file.
    #[arg(long)]
    users: usize,
    /// File of room codes, one per line (from `prepare`).
    #[arg(long)]
    rooms_file: PathBuf,
    /// Requests in flight at once (one connection each).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seconds of measured joins (at most 600).
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
}

#[derive(Args, Debug)]
struct StormArgs {
    /// Base URL of the GC under test, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    url: String,
    /// User token of the host who creates the room (not one of the pool; does not join).
    #[arg(long, env = "GC_BENCH_HOST_TOKEN", hide_env_values = true)]
    host_token: String,
    /// File of user tokens, one per line (from `sign-in`).
    #[arg(long)]
    tokens_file: PathBuf,
    /// Users joining: the first N tokens of the file.
    #[arg(long)]
    users: usize,
    /// Seats of the room.
    #[arg(long, default_value_t = 100)]
    max_participants: usize,
    /// Display name of the created meeting.
    #[arg(long, default_value = "join storm")]
    display_name: String,
    /// Seconds a join may take before it counts as a timeout.
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        None => {
            println!(
                "join_load: nothing to do without a command: sign-in, prepare, steady, storm, \
                 guest-steady, guest-storm, webhook-sink or post-load \
                 (see --help)"
            );
            Ok(())
        }
        Some(Command::SignIn(args)) => sign_in(args).await,
        Some(Command::Prepare(args)) => prepare(args).await,
        Some(Command::Steady(args)) => steady(args).await,
        Some(Command::Storm(args)) => storm(args).await,
        Some(Command::GuestSteady(args)) => guest_steady(args).await,
        Some(Command::GuestStorm(args)) => guest_storm(args).await,
        Some(Command::WebhookSink(args)) => sink::serve(args.addr).await,
        Some(Command::PostLoad(args)) => post_load(args).await,
    }
}

/// `post-load`: each worker POSTs a body of `--body-bytes` with a distinct `webhook-id`, a
/// timestamp and a signature header of a real one's length (not computed: an HMAC-SHA256 of a
/// few hundred bytes is a microsecond), back to back, over the client's keep-alive
/// connections, as GC's delivery workers send.
async fn post_load(args: PostLoadArgs) -> anyhow::Result<()> {
    if args.body_bytes > 65_536 {
        bail!("--body-bytes must be at most 65536");
    }
    let body = format!(
        "{{\"type\":\"meeting.created\",\"data\":\"{}\"}}",
        "x".repeat(args.body_bytes.saturating_sub(37))
    );
    let signature = format!("v1,{}", "A".repeat(44));
    let concurrency = args.concurrency.clamp(1, 4096);
    let client = common::http_client(Duration::from_secs(30))?;
    let cpu_before = report::own_cpu_ms();
    let next = Arc::new(AtomicU64::new(0));
    let deadline =
        Instant::now() + Duration::from_secs(args.duration_secs.clamp(1, MAX_DURATION_SECS));
    let started = Instant::now();
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (client, url, body, signature, next) = (
            client.clone(),
            args.url.clone(),
            body.clone(),
            signature.clone(),
            Arc::clone(&next),
        );
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
            while Instant::now() < deadline {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let sent = Instant::now();
                let answer = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("webhook-id", format!("floor_{k}"))
                    .header(
                        "webhook-timestamp",
                        chrono::Utc::now().timestamp().to_string(),
                    )
                    .header("webhook-signature", &signature)
                    .body(body.clone())
                    .send()
                    .await;
                let outcome = match answer {
                    Ok(answer) => answer.status().as_u16().to_string(),
                    Err(error) if error.is_timeout() => "timeout".to_owned(),
                    Err(_) => "transport_error".to_owned(),
                };
                latencies.push(report::micros(sent.elapsed()));
                *statuses.entry(outcome).or_default() += 1;
            }
            (latencies, statuses)
        }));
    }
    print_workers(workers, concurrency, started, cpu_before).await?;
    Ok(())
}

async fn sign_in(args: SignInArgs) -> anyhow::Result<()> {
    if args.count == 0 || args.count > MAX_USERS || !args.email_format.contains("{}") {
        bail!("--count must be 1..={MAX_USERS} and --email-format must contain {{}}");
    }
    let client = common::http_client(Duration::from_secs(30))?;
    let endpoint = format!(
        "{}/api/v1/auth/user/token",
        args.ac_url.trim_end_matches('/')
    );
    let started = Instant::now();
    let tokens: Vec<String> = futures::stream::iter(0..args.count)
        .map(|i| {
            let email = args.email_format.replace("{}", &i.to_string());
            sign_in_one(&client, &endpoint, email, &args.password)
        })
        .buffered(args.concurrency.clamp(1, 64))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    std::fs::write(&args.out, tokens.join("\n") + "\n")
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!(
        "signed in   {} users in {:.1} s",
        tokens.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One sign-in; AC answers 503 while its hashing queue is full, so that is tried again.
async fn sign_in_one(
    client: &reqwest::Client,
    endpoint: &str,
    email: String,
    password: &str,
) -> anyhow::Result<String> {
    for attempt in 0..10u64 {
        let response = client
            .post(endpoint)
            .json(&json!({ "email": email, "password": password }))
            .send()
            .await?;
        let status = response.status();
        if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            tokio::time::sleep(Duration::from_millis(100 * (attempt + 1))).await;
            continue;
        }
        if !status.is_success() {
            bail!("sign-in of {email} answered {status}");
        }
        let body: serde_json::Value = response.json().await?;
        return body["access_token"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no access_token for {email}"));
    }
    bail!("sign-in of {email}: AC stayed unavailable")
}

fn join_url(base: &str, code: &str) -> String {
    format!("{}/api/v1/meetings/{code}/join", base.trim_end_matches('/'))
}

/// Sends one join and names its outcome (module documentation).
async fn join(client: &reqwest::Client, url: &str, token: &str) -> String {
    match client.post(url).bearer_auth(token).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            // Read the body so the connection can be reused.
            let body = response.bytes().await.unwrap_or_default();
            if status == 200 {
                return if contains(&body, br#""status":"admitted""#) {
                    "200".to_owned()
                } else {
                    "200 waiting".to_owned()
                };
            }
            // The error envelope of DESIGN §7: {"error": {"code": "MEETING_FULL", ...}}.
            let code = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"]["code"].as_str().map(str::to_owned));
            match code {
                Some(code) => format!("{status} {code}"),
                None => status.to_string(),
            }
        }
        Err(error) if error.is_timeout() => "timeout".to_owned(),
        Err(_) => "transport_error".to_owned(),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn prepare(args: PrepareArgs) -> anyhow::Result<()> {
    let rooms = args.rooms.clamp(1, MAX_ROOMS);
    let client = common::http_client(Duration::from_secs(30))?;
    let started = Instant::now();
    let codes: Vec<String> = futures::stream::iter(0..rooms)
        .map(|_| {
            let (client, args) = (&client, &args);
            async move {
                let settings = if args.guests {
                    json!({"waiting_room_enabled": false, "allow_guests": true,
                           "require_auth": false})
                } else {
                    json!({"waiting_room_enabled": false})
                };
                let (_, code) = api::create_room_with(
                    client,
                    &args.url,
                    &args.host_token,
                    &args.display_name,
                    args.seats,
                    settings,
                )
                .await?;
                let outcome = join(client, &join_url(&args.url, &code), &args.host_token).await;
                if outcome != "200" {
                    bail!("the warm-up join of {code} answered {outcome}");
                }
                Ok(code)
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect::<Vec<anyhow::Result<String>>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    std::fs::write(&args.out, codes.join("\n") + "\n")
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!(
        "prepared     {rooms} rooms of {} seats, created and warmed by the host's join in {:.2} s",
        args.seats,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn steady(args: SteadyArgs) -> anyhow::Result<()> {
    let tokens = Arc::new(api::read_lines(
        &args.tokens_file,
        args.users,
        args.users.min(MAX_USERS),
    )?);
    let users = tokens.len();
    let codes = api::read_lines(&args.rooms_file, 1, MAX_ROOMS)?;
    let rooms = codes.len();
    let urls: Arc<Vec<String>> = Arc::new(codes.iter().map(|c| join_url(&args.url, c)).collect());
    let concurrency = args.concurrency.clamp(1, 4096);
    let client = common::http_client(Duration::from_secs(30))?;
    let cpu_before = report::own_cpu_ms();

    let pairs = (rooms * users) as u64;
    let next = Arc::new(AtomicU64::new(0));
    let deadline =
        Instant::now() + Duration::from_secs(args.duration_secs.clamp(1, MAX_DURATION_SECS));
    let started = Instant::now();
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (client, urls, tokens, next) = (
            client.clone(),
            Arc::clone(&urls),
            Arc::clone(&tokens),
            Arc::clone(&next),
        );
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
            while Instant::now() < deadline {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= pairs {
                    break;
                }
                let (q, room) = (k / urls.len() as u64, k % urls.len() as u64);
                let user = ((q + room) % tokens.len() as u64) as usize;
                let sent = Instant::now();
                let outcome = join(&client, &urls[room as usize], &tokens[user]).await;
                latencies.push(report::micros(sent.elapsed()));
                *statuses.entry(outcome).or_default() += 1;
            }
            (latencies, statuses)
        }));
    }
    print_workers(workers, concurrency, started, cpu_before).await?;
    let used = next.load(Ordering::Relaxed).min(pairs);
    println!(
        "pairs        {used} of {pairs} (user, room) pairs used{}",
        if used >= pairs {
            "; EXHAUSTED before the deadline"
        } else {
            ""
        }
    );
    Ok(())
}

async fn storm(args: StormArgs) -> anyhow::Result<()> {
    let tokens = api::read_lines(&args.tokens_file, args.users, args.users.min(MAX_USERS))?;
    let client = common::http_client(Duration::from_secs(30))?;
    let (meeting_id, code) = api::create_room(
        &client,
        &args.url,
        &args.host_token,
        &args.display_name,
        args.max_participants,
        false,
    )
    .await?;
    let url = Arc::new(join_url(&args.url, &code));
    let live = format!("{}/health/live", args.url.trim_end_matches('/'));
    let timeout = Duration::from_secs(args.timeout_secs.clamp(1, MAX_DURATION_SECS));

    // One client (so one connection) per user, opened before the barrier, so that the joins
    // leave together instead of queueing behind connection set-up.
    let barrier = Arc::new(tokio::sync::Barrier::new(tokens.len() + 1));
    let mut tasks = Vec::with_capacity(tokens.len());
    for token in tokens {
        let client = common::http_client(timeout)?;
        let (url, live, barrier) = (Arc::clone(&url), live.clone(), Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            let warm = client.get(&live).send().await;
            let warm_ok = match warm {
                Ok(response) => response.bytes().await.is_ok(),
                Err(_) => false,
            };
            barrier.wait().await;
            let sent = Instant::now();
            let outcome = join(&client, &url, &token).await;
            (warm_ok, sent, Instant::now(), outcome)
        }));
    }
    barrier.wait().await;

    let mut latencies = Vec::new();
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    let mut sends = Vec::new();
    let mut answers = Vec::new();
    let mut cold = 0u64;
    for task in tasks {
        let (warm_ok, sent, answered, outcome) = task.await.context("a join task panicked")?;
        cold += u64::from(!warm_ok);
        sends.push(sent);
        answers.push(answered);
        latencies.push(report::micros(answered - sent));
        *statuses.entry(outcome).or_default() += 1;
    }
    latencies.sort_unstable();
    let (Some(first_sent), Some(last_sent), Some(last_answer)) =
        (sends.iter().min(), sends.iter().max(), answers.iter().max())
    else {
        bail!("no user joined");
    };
    println!(
        "storm        {} users joined room {code} ({} seats, waiting room off, cold) at once",
        latencies.len(),
        args.max_participants
    );
    println!("meeting      {meeting_id} {code}");
    println!("statuses     {}", report::statuses_line(&statuses));
    report::print_latencies(&latencies);
    println!(
        "spread       last answer {:.1} ms after the first send; sends spread over {:.1} ms; \
         {cold} connections failed to warm",
        (*last_answer - *first_sent).as_secs_f64() * 1000.0,
        (*last_sent - *first_sent).as_secs_f64() * 1000.0,
    );
    Ok(())
}

fn guest_join_url(base: &str, code: &str) -> String {
    format!(
        "{}/api/v1/meetings/{code}/guest-join",
        base.trim_end_matches('/')
    )
}

/// Sends one guest-join and names its outcome: `200 waiting`, or the status and error code.
async fn guest_join(client: &reqwest::Client, url: &str, name: &str) -> String {
    let sent = client
        .post(url)
        .json(&json!({ "display_name": name }))
        .send()
        .await;
    match sent {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.bytes().await.unwrap_or_default();
            if status == 200 && contains(&body, br#""status":"waiting""#) {
                return "200 waiting".to_owned();
            }
            let code = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"]["code"].as_str().map(str::to_owned));
            match code {
                Some(code) => format!("{status} {code}"),
                None => status.to_string(),
            }
        }
        Err(error) if error.is_timeout() => "timeout".to_owned(),
        Err(_) => "transport_error".to_owned(),
    }
}

async fn guest_steady(args: GuestSteadyArgs) -> anyhow::Result<()> {
    let codes = api::read_lines(&args.rooms_file, 1, MAX_ROOMS)?;
    let urls: Arc<Vec<String>> =
        Arc::new(codes.iter().map(|c| guest_join_url(&args.url, c)).collect());
    let concurrency = args.concurrency.clamp(1, 4096);
    let client = common::http_client(Duration::from_secs(30))?;
    let cpu_before = report::own_cpu_ms();
    let next = Arc::new(AtomicU64::new(0));
    let deadline =
        Instant::now() + Duration::from_secs(args.duration_secs.clamp(1, MAX_DURATION_SECS));
    let started = Instant::now();
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (client, urls, next) = (client.clone(), Arc::clone(&urls), Arc::clone(&next));
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
            while Instant::now() < deadline {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let url = &urls[(k % urls.len() as u64) as usize];
                let sent = Instant::now();
                let outcome = guest_join(&client, url, &format!("Bench Guest {k}")).await;
                latencies.push(report::micros(sent.elapsed()));
                *statuses.entry(outcome).or_default() += 1;
            }
            (latencies, statuses)
        }));
    }
    print_workers(workers, concurrency, started, cpu_before).await?;
    Ok(())
}

/// The `i`-th storm guest's loopback address: 127.0.2.1, 127.0.2.2, ... 127.0.2.250,
/// 127.0.3.1, ...
fn storm_address(i: usize) -> std::net::IpAddr {
    let (third, fourth) = (2 + i / 250, 1 + i % 250);
    std::net::IpAddr::from([127, 0, third as u8, fourth as u8])
}

async fn guest_storm(args: GuestStormArgs) -> anyhow::Result<()> {
    if args.guests == 0 || args.guests > 60_000 {
        bail!("--guests must be 1..=60000");
    }
    let client = common::http_client(Duration::from_secs(30))?;
    let settings = json!({"allow_guests": true, "require_auth": false});
    let (meeting_id, code) = api::create_room_with(
        &client,
        &args.url,
        &args.host_token,
        "guest storm",
        2,
        settings,
    )
    .await?;
    let warm = join(&client, &join_url(&args.url, &code), &args.host_token).await;
    if warm != "200" {
        bail!("the host's join of {code} answered {warm}");
    }
    let url = Arc::new(guest_join_url(&args.url, &code));
    let live = format!("{}/health/live", args.url.trim_end_matches('/'));
    let timeout = Duration::from_secs(args.timeout_secs.clamp(1, MAX_DURATION_SECS));
    let barrier = Arc::new(tokio::sync::Barrier::new(args.guests + 1));
    let mut tasks = Vec::with_capacity(args.guests);
    for i in 0..args.guests {
        let client = reqwest::Client::builder()
            .local_address(storm_address(i))
            .timeout(timeout)
            .build()?;
        let (url, live, barrier) = (Arc::clone(&url), live.clone(), Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            let warm_ok = match client.get(&live).send().await {
                Ok(response) => response.bytes().await.is_ok(),
                Err(_) => false,
            };
            barrier.wait().await;
            let sent = Instant::now();
            let outcome = guest_join(&client, &url, &format!("Storm Guest {i}")).await;
            (warm_ok, sent, Instant::now(), outcome)
        }));
    }
    barrier.wait().await;
    let mut latencies = Vec::new();
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    let mut first_sent: Option<Instant> = None;
    let mut last_answer: Option<Instant> = None;
    let mut cold = 0u64;
    for task in tasks {
        let (warm_ok, sent, answered, outcome) = task.await.context("a guest task panicked")?;
        cold += u64::from(!warm_ok);
        first_sent = Some(first_sent.map_or(sent, |f| f.min(sent)));
        last_answer = Some(last_answer.map_or(answered, |l| l.max(answered)));
        latencies.push(report::micros(answered - sent));
        *statuses.entry(outcome).or_default() += 1;
    }
    latencies.sort_unstable();
    println!(
        "guest storm  {} guests from {} loopback addresses asked to join room {code} at once",
        latencies.len(),
        latencies.len()
    );
    println!("meeting      {meeting_id} {code}");
    println!("statuses     {}", report::statuses_line(&statuses));
    report::print_latencies(&latencies);
    if let (Some(first), Some(last)) = (first_sent, last_answer) {
        println!(
            "spread       last answer {:.1} ms after the first send; {cold} connections failed to warm",
            (last - first).as_secs_f64() * 1000.0
        );
    }
    Ok(())
}

/// What one worker of a steady run saw: its latencies (µs) and how each request was answered.
type Tally = (Vec<u64>, BTreeMap<String, u64>);

/// Waits for a steady run's workers, then prints the run's summary and the client's own CPU.
async fn print_workers(
    workers: Vec<tokio::task::JoinHandle<Tally>>,
    concurrency: usize,
    started: Instant,
    cpu_before: Option<u64>,
) -> anyhow::Result<()> {
    let mut latencies = Vec::new();
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    for worker in workers {
        let (l, s) = worker.await.context("a worker panicked")?;
        latencies.extend(l);
        for (status, n) in s {
            *statuses.entry(status).or_default() += n;
        }
    }
    let wall = started.elapsed();
    let cpu = report::own_cpu_ms()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    report::print_summary(concurrency, wall, &mut latencies, &statuses);
    if let Some(cpu) = cpu {
        println!("client cpu   {cpu} ms");
    }
    Ok(())
}
