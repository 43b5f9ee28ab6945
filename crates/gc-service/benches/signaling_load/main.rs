//! Load generator for MC's signaling WebSocket (docs/benchmarks.md, "Signaling load (MC
//! WebSocket)"); `scripts/bench-signaling.sh` runs it against the release build.
//!
//! ```text
//! # the transport baseline: the same stream against a plain echo server (bench ws_echo)
//! cargo bench -p gc-service --bench signaling_load -- echo --url ws://127.0.0.1:18283 \
//!     --rooms 100 --per-room 20 --duration-secs 15
//! # MC: 100 meetings of 20 users joined over GC (waiting room off), 20 Hz each, a scripted
//! # speaker change per room every 2 s
//! GC_BENCH_HOST_TOKEN=... cargo bench -p gc-service --bench signaling_load -- mc \
//!     --gc-url http://127.0.0.1:18280 --mc-url http://127.0.0.1:18281 \
//!     --tokens-file tokens.txt --rooms 100 --per-room 20 --duration-secs 15 \
//!     --server-pid "$MC_PID" --cpu mc="$MC_PID" --cpu redis="$REDIS_PID"
//! # the lobby round trip: REST admit on GC → `admitted` on the waiting socket
//! GC_BENCH_HOST_TOKEN=... cargo bench -p gc-service --bench signaling_load -- lobby \
//!     --gc-url http://127.0.0.1:18280 --tokens-file tokens.txt --first 2000 --users 300
//! # the town hall: 1,000 users in one meeting, 50 rounds of a speaker change, a join and a
//! # leave, each timed until the last socket heard it; and its baseline, the same sockets on
//! # a bare broadcast server (bench ws_echo -- --broadcast)
//! GC_BENCH_HOST_TOKEN=... cargo bench -p gc-service --bench signaling_load -- townhall \
//!     --gc-url http://127.0.0.1:18280 --mc-url http://127.0.0.1:18281 \
//!     --tokens-file tokens.txt --people 1000 --rounds 50 --cpu mc="$MC_PID"
//! cargo bench -p gc-service --bench signaling_load -- broadcast --url ws://127.0.0.1:18283 \
//!     --people 1000 --rounds 50
//! ```
//!
//! The stream and how speaker delays are matched are in `stream.rs`, the mc mode in `mc.rs`,
//! the lobby in `lobby.rs`, the town hall and its baseline in `townhall.rs`.
//! Each mode prints readable lines, then one `result key=value …` line for the script.
//! Without a command it prints this usage and exits 0, so a plain `cargo bench` does not fail.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

#[path = "../support/api.rs"]
mod api;
mod hall;
mod lobby;
mod mc;
#[path = "../support/procfs.rs"]
mod procfs;
#[allow(
    dead_code,
    reason = "shared with the HTTP load generators, which use the rest of it"
)]
#[path = "../support/report.rs"]
mod report;
mod stream;
mod townhall;

use procfs::CpuSnapshot;
use stream::{EchoQueue, Heard, Schedule, Talked, Ws};

/// Sockets opened at once while the clients connect.
const CONNECT_CONCURRENCY: usize = 32;
/// REST calls in flight at once during set-up.
const SETUP_CONCURRENCY: usize = 16;
/// How long one step of a client's set-up (connect, a message awaited) may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// Between the last socket's set-up and the first sample: every task is parked by then.
const SETTLE: Duration = Duration::from_secs(1);
/// Reading goes on this long after the last sample, so late events still count.
const DRAIN: Duration = Duration::from_secs(1);
const MAX_DURATION_SECS: u64 = 600;

#[derive(Parser, Debug)]
#[command(
    name = "signaling_load",
    about = "Load generator for MC's signaling WebSocket"
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
    /// The stream against an echo server: the transport baseline.
    Echo(EchoArgs),
    /// The stream against MC, in meetings joined over GC, with scripted speaker changes.
    Mc(mc::McArgs),
    /// Users admitted from the lobby one at a time: REST admit to `admitted`.
    Lobby(lobby::LobbyArgs),
    /// One meeting of 1,000 on MC: a speaker change, a join and a leave, each timed until the
    /// last socket heard it.
    Townhall(townhall::TownhallArgs),
    /// The same sockets on a bare broadcast server (`ws_echo --broadcast`): the baseline.
    Broadcast(townhall::BroadcastArgs),
}

/// Where the meetings are made and as whom: what `mc`, `lobby` and `townhall` share.
#[derive(Args, Debug)]
struct Stack {
    /// Base URL of GC, e.g. http://127.0.0.1:18280.
    #[arg(long)]
    gc_url: String,
    /// User token of the host who creates the meetings (`lobby`: and admits; `mc`, `townhall`:
    /// does not join them).
    #[arg(long, env = "GC_BENCH_HOST_TOKEN", hide_env_values = true)]
    host_token: String,
    /// User tokens, one per line (join_load sign-in). `mc` uses the first rooms × per-room;
    /// `townhall` seats the first `--people` and has the next `--rounds` join, one a round.
    #[arg(long)]
    tokens_file: PathBuf,
}

/// The shape of the load, shared by `echo` and `mc`.
#[derive(Args, Debug)]
struct StreamArgs {
    #[arg(long, default_value_t = 100)]
    rooms: usize,
    #[arg(long, default_value_t = 20)]
    per_room: usize,
    /// `audio_level` samples a second per client.
    #[arg(long, default_value_t = 20)]
    rate_hz: u32,
    /// Milliseconds each scripted speaker talks.
    #[arg(long, default_value_t = 2000)]
    turn_ms: u64,
    /// MC's ACTIVE_SPEAKER_MIN_DURATION_MS: the run that makes a speaker.
    #[arg(long, default_value_t = 300)]
    min_run_ms: u64,
    /// Seconds of load (at most 600).
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// A process whose CPU time over the load to report, as name=pid (repeatable).
    #[arg(long = "cpu", value_parser = parse_named_pid)]
    cpu: Vec<(String, u32)>,
    /// The server's pid, for its resident memory before and with the sockets.
    #[arg(long)]
    server_pid: Option<u32>,
    /// A file created when the load begins (a profiler can wait for it).
    #[arg(long)]
    started_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct EchoArgs {
    /// The echo server, e.g. ws://127.0.0.1:18283.
    #[arg(long)]
    url: String,
    #[command(flatten)]
    stream: StreamArgs,
}

fn parse_named_pid(text: &str) -> Result<(String, u32), String> {
    let (name, pid) = text.split_once('=').ok_or("expected name=pid")?;
    let pid = pid.parse().map_err(|_| format!("not a pid: {pid}"))?;
    Ok((name.to_owned(), pid))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        None => {
            println!(
                "signaling_load: nothing to do without a command: echo, mc, lobby, townhall or \
                 broadcast (see --help)"
            );
            Ok(())
        }
        Some(Command::Echo(args)) => echo(args).await,
        Some(Command::Mc(args)) => mc::run(args).await,
        Some(Command::Lobby(args)) => lobby::run(args).await,
        Some(Command::Townhall(args)) => townhall::townhall(args).await,
        Some(Command::Broadcast(args)) => townhall::broadcast(args).await,
    }
}

/// Small buffers, as MC's own: the load is thousands of sockets of small messages, and the
/// load generator's memory should not be what limits it.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
}

async fn connect(url: &str) -> anyhow::Result<Ws> {
    let connecting = tokio_tungstenite::connect_async_with_config(url, Some(ws_config()), true);
    let (ws, _) = tokio::time::timeout(STEP_TIMEOUT, connecting)
        .await
        .context("connecting timed out")?
        .context("connecting failed")?;
    Ok(ws)
}

/// Reads until a message of type `kind` (others are skipped); fails on a close or a timeout.
async fn expect(ws: &mut Ws, kind: &str) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .with_context(|| format!("no {kind} within {STEP_TIMEOUT:?}"))?;
        match frame {
            None => bail!("closed before {kind}"),
            Some(Err(error)) => bail!("failed before {kind}: {error}"),
            Some(Ok(Message::Close(frame))) => {
                bail!("closed with {:?} before {kind}", frame.map(|f| f.code))
            }
            Some(Ok(Message::Text(text))) => {
                let message: Value = serde_json::from_str(&text)?;
                if message["type"] == kind {
                    return Ok(message);
                }
            }
            Some(Ok(_)) => {}
        }
    }
}

/// Opens a socket to MC and authenticates with a meeting token (docs/signaling.md).
async fn authenticated(url: &str, meeting_token: &str) -> anyhow::Result<Ws> {
    let mut ws = connect(url).await?;
    let auth = json!({ "type": "auth", "token": meeting_token }).to_string();
    ws.send(Message::text(auth)).await?;
    Ok(ws)
}

/// A join's answer: where and with what token to connect.
struct Joined {
    status: String,
    meeting_token: String,
    signaling_url: String,
}

/// Joins each `(meeting code, token)` over GC's REST, [`SETUP_CONCURRENCY`] at a time, in
/// order; every join must be admitted (the benchmark's meetings have the waiting room off).
async fn join_all_admitted(
    client: &reqwest::Client,
    gc_url: &str,
    joins: impl Iterator<Item = (&str, &str)>,
) -> anyhow::Result<Vec<Joined>> {
    let joined: Vec<Joined> = futures::stream::iter(joins)
        .map(|(code, token)| join(client, gc_url, code, token))
        .buffered(SETUP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    if let Some(waiting) = joined.iter().find(|j| j.status != "admitted") {
        anyhow::bail!(
            "a join answered {} with the waiting room off",
            waiting.status
        );
    }
    Ok(joined)
}

async fn join(
    client: &reqwest::Client,
    gc_url: &str,
    code: &str,
    token: &str,
) -> anyhow::Result<Joined> {
    let url = format!(
        "{}/api/v1/meetings/{code}/join",
        gc_url.trim_end_matches('/')
    );
    let response = client.post(url).bearer_auth(token).send().await?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or_default();
    if status != reqwest::StatusCode::OK {
        bail!("joining {code} answered {status}: {body}");
    }
    let field = |name: &str| {
        body[name]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no {name} in the join answer"))
    };
    Ok(Joined {
        status: field("status")?,
        meeting_token: field("meeting_token")?,
        signaling_url: field("signaling_url")?,
    })
}

fn schedule(args: &StreamArgs) -> Schedule {
    Schedule {
        start: Instant::now() + SETTLE,
        duration: Duration::from_secs(args.duration_secs.clamp(1, MAX_DURATION_SECS)),
        period: Duration::from_secs(1) / args.rate_hz.clamp(1, 1000),
        turn: Duration::from_millis(args.turn_ms.max(1)),
        min_run: Duration::from_millis(args.min_run_ms),
        rooms: args.rooms.max(1),
        per_room: args.per_room.max(1),
    }
}

/// Every client's writer and reader, running the schedule.
struct Load {
    talkers: Vec<tokio::task::JoinHandle<Talked>>,
    listeners: Vec<tokio::task::JoinHandle<Heard>>,
}

impl Load {
    fn start(sockets: Vec<Ws>, schedule: Schedule, echo: bool) -> Self {
        let (mut talkers, mut listeners) = (Vec::new(), Vec::new());
        for (client, ws) in sockets.into_iter().enumerate() {
            let queue: Option<EchoQueue> = echo.then(EchoQueue::default);
            let (sink, stream) = ws.split();
            talkers.push(tokio::spawn(stream::talk(
                sink,
                schedule,
                client,
                queue.clone(),
            )));
            let until = schedule.end() + DRAIN;
            listeners.push(tokio::spawn(stream::listen(
                stream,
                schedule.end(),
                until,
                queue,
            )));
        }
        Self { talkers, listeners }
    }

    /// Waits for the first sample, then returns the CPU snapshot taken then.
    async fn started(schedule: &Schedule, args: &StreamArgs) -> CpuSnapshot {
        tokio::time::sleep_until(schedule.start.into()).await;
        if let Some(path) = &args.started_file
            && let Err(error) = std::fs::write(path, b"")
        {
            eprintln!("cannot create {}: {error}", path.display());
        }
        CpuSnapshot::take(&args.cpu)
    }

    async fn finish(self) -> anyhow::Result<(Vec<Talked>, Vec<Heard>)> {
        let mut talked = Vec::with_capacity(self.talkers.len());
        for t in self.talkers {
            talked.push(t.await.context("a writer panicked")?);
        }
        let mut heard = Vec::with_capacity(self.listeners.len());
        for l in self.listeners {
            heard.push(l.await.context("a reader panicked")?);
        }
        Ok((talked, heard))
    }
}

/// `sent …` and `dropped …` lines; returns (samples sent a second, dropped clients).
/// What the clients sent: the rate offered (every client once a period), the rate sent, and
/// how late the sends were against the schedule at p99 (ms: a generator that cannot keep to
/// its schedule offers less than it says).
struct Sent {
    offered: f64,
    per_sec: f64,
    late_p99_ms: f64,
}

impl Sent {
    /// `offered_per_s=… sent_per_s=… send_late_p99_ms=…` for the `result` line.
    fn fields(&self) -> String {
        format!(
            "offered_per_s={:.1} sent_per_s={:.1} send_late_p99_ms={:.2}",
            self.offered, self.per_sec, self.late_p99_ms
        )
    }
}

fn print_sent_and_dropped(
    schedule: &Schedule,
    talked: &[Talked],
    heard: &[Heard],
) -> (Sent, usize) {
    let sent: u64 = talked.iter().map(|t| t.sent).sum();
    let per_sec = sent as f64 / schedule.duration.as_secs_f64();
    let mut late: Vec<u64> = talked
        .iter()
        .flat_map(|t| t.late_us.iter().copied())
        .collect();
    late.sort_unstable();
    println!(
        "sent         {sent} audio_level in {:.1} s: {per_sec:.1} msg/s from {} clients \
         (sends late against the schedule: p99 {:.2} ms, max {:.2} ms)",
        schedule.duration.as_secs_f64(),
        talked.len(),
        report::percentile(&late, 0.99) as f64 / 1000.0,
        report::percentile(&late, 1.0) as f64 / 1000.0,
    );
    let mut reasons: std::collections::BTreeMap<String, u64> = Default::default();
    for (t, h) in talked.iter().zip(heard) {
        if let Some(why) = t.failed.as_ref().or(h.closed.as_ref()) {
            *reasons.entry(why.clone()).or_default() += 1;
        }
    }
    let dropped = reasons.values().sum::<u64>() as usize;
    println!(
        "dropped      {dropped} clients {}",
        report::statuses_line(&reasons)
    );
    let sent = Sent {
        offered: talked.len() as f64 / schedule.period.as_secs_f64().max(f64::EPSILON),
        per_sec,
        late_p99_ms: report::percentile(&late, 0.99) as f64 / 1000.0,
    };
    (sent, dropped)
}

/// The `memory` line from the server's VmRSS before the sockets, with them open, and at the
/// end of the load (KiB); returns KiB per connection, from the larger of the last two.
fn print_memory(server: &str, [before, open, end]: [Option<u64>; 3], clients: usize) -> f64 {
    let (before, open, end) = (before.unwrap_or(0), open.unwrap_or(0), end.unwrap_or(0));
    let per_connection = open.max(end).saturating_sub(before) as f64 / clients.max(1) as f64;
    println!(
        "memory       {server} VmRSS {before} KiB before the sockets, {open} KiB with them \
         open, {end} KiB at the end of the load: {per_connection:.1} KiB per connection"
    );
    per_connection
}

async fn echo(args: EchoArgs) -> anyhow::Result<()> {
    let s = &args.stream;
    let clients = s.rooms * s.per_room;
    let rss = || s.server_pid.and_then(procfs::rss_kib);
    let rss_before = rss();
    let begun = Instant::now();
    let sockets: Vec<Ws> = futures::stream::iter(0..clients)
        .map(|_| connect(&args.url))
        .buffered(CONNECT_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    println!(
        "--- echo: {clients} clients at {} Hz for {} s against {}",
        s.rate_hz, s.duration_secs, args.url
    );
    println!(
        "connected    {clients} sockets in {:.2} s",
        begun.elapsed().as_secs_f64()
    );

    let schedule = schedule(s);
    let load = Load::start(sockets, schedule, true);
    let rss_open = rss();
    let cpu_before = Load::started(&schedule, s).await;
    tokio::time::sleep_until(schedule.end().into()).await;
    let cpu = CpuSnapshot::take(&s.cpu).since(&cpu_before);
    let rss_end = rss();
    let (talked, heard) = load.finish().await?;

    let (sent, dropped) = print_sent_and_dropped(&schedule, &talked, &heard);
    let mut echo_us: Vec<u64> = heard
        .iter()
        .flat_map(|h| h.echo_us.iter().copied())
        .collect();
    echo_us.sort_unstable();
    let echoed = echo_us.len() as f64 / schedule.duration.as_secs_f64();
    println!(
        "echoed       {} messages by the end of the run: {echoed:.1} msg/s",
        echo_us.len()
    );
    report::print_percentiles("echo ms", &echo_us);
    let per_connection = print_memory("echo server", [rss_before, rss_open, rss_end], clients);
    println!("cpu ms       {}", procfs::cpu_line(&cpu));
    println!(
        "result {} echoed_per_s={echoed:.1} echo_p99_ms={:.2} dropped={dropped} \
         rss_kib_per_conn={per_connection:.1} {}",
        sent.fields(),
        report::percentile(&echo_us, 0.99) as f64 / 1000.0,
        procfs::cpu_fields(&cpu, &["echo", "client", "machine", "elsewhere"])
    );
    Ok(())
}
