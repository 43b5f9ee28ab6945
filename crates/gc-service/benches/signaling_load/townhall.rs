//! The town hall: `--people` users (1,000) in ONE meeting on one MC, every socket open and
//! past `welcome`, then `--rounds` single broadcasts to all of them, each timed until the last
//! socket has it (docs/benchmarks.md, "A town hall: one broadcast to 1,000").
//!
//! Each round has two parts:
//! - **a speaker change**: one of two members (they alternate, so every round is a change)
//!   sends loud `audio_level` samples until MC's detector makes them the speaker. Timed: from
//!   the send of the sample that completes the 300 ms run (half a period off the grid, as in
//!   `stream.rs`) to `active_speaker` at each of the sockets, the speaker's own included;
//! - **a join**: one more user joins over REST (MC publishes `participant.joined`), connects
//!   (MC publishes `participant.updated` with `status: connected`, then writes the joiner's
//!   `welcome`) and leaves with the socket's `leave` (MC publishes `participant.left`), so the
//!   room stays at `--people`. Timed: each event at the sockets, from the REST join sent, from
//!   the joiner's connect (socket opened and `auth` sent: MC then reads the room, publishes,
//!   and writes the joiner's `welcome`, which lists every seat) and from the `leave` sent.
//!
//! The `broadcast` mode is the baseline: the same sockets on the broadcast server of
//! `benches/ws_echo.rs`, which sends every text frame it receives to every socket; one member
//! sends a frame shaped like MC's `active_speaker`, timed the same way.
//!
//! Every socket has its own reader task, started as soon as the socket is welcomed, that stamps
//! the events it reads; the stamps are what is timed, so both modes pay the same client
//! (`hall.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::hall::{CpuTotal, Kind, Series, Sink, Spread, fill};
use crate::procfs::{self, CpuSnapshot};
use crate::report::{self, micros};
use crate::{STEP_TIMEOUT, api, authenticated, connect, expect, join, lobby, mc};

/// Between two broadcasts: the last one's writes are done, and a speaker's run is broken
/// (MC's silence gap is 150 ms).
const PAUSE: Duration = Duration::from_millis(300);
/// Between the last welcome and the first round.
const SETTLE: Duration = Duration::from_secs(1);
const LOUD: &str = r#"{"type":"audio_level","level_dbfs":-20}"#;

/// What both modes share.
#[derive(Args, Debug)]
pub struct HallArgs {
    /// Sockets in the room.
    #[arg(long, default_value_t = 1000)]
    people: usize,
    /// Broadcasts timed (each a speaker change, and in `townhall` also a join and a leave).
    #[arg(long, default_value_t = 50)]
    rounds: usize,
    /// A process whose CPU time over the broadcasts to report, as name=pid (repeatable).
    #[arg(long = "cpu", value_parser = crate::parse_named_pid)]
    cpu: Vec<(String, u32)>,
    /// The server's pid, for its resident memory before and with the sockets.
    #[arg(long)]
    server_pid: Option<u32>,
}

#[derive(Args, Debug)]
pub struct TownhallArgs {
    #[command(flatten)]
    stack: crate::Stack,
    /// Base URL of MC's HTTP listener, for /metrics.
    #[arg(long)]
    mc_url: String,
    /// MC's ACTIVE_SPEAKER_MIN_DURATION_MS: the run that makes a speaker.
    #[arg(long, default_value_t = 300)]
    min_run_ms: u64,
    /// Seconds between two pings of a socket (MC closes a socket silent for
    /// WS_IDLE_TIMEOUT_SECS, 60).
    #[arg(long, default_value_t = 20)]
    keepalive_secs: u64,
    #[command(flatten)]
    hall: HallArgs,
}

#[derive(Args, Debug)]
pub struct BroadcastArgs {
    /// The broadcast server (`ws_echo --broadcast`), e.g. ws://127.0.0.1:18283.
    #[arg(long)]
    url: String,
    #[command(flatten)]
    hall: HallArgs,
}

/// Sends loud samples every 50 ms until the run is `min_run` long, then the completing sample
/// half a period later (clear of the boundary both ways); returns when that one was sent.
async fn speak(sink: &Sink, min_run: Duration) -> anyhow::Result<Instant> {
    const PERIOD: Duration = Duration::from_millis(50);
    let mut sink = sink.lock().await;
    let start = Instant::now();
    let mut at = start;
    while at < start + min_run {
        tokio::time::sleep_until(at.into()).await;
        sink.send(Message::text(LOUD)).await?;
        at += PERIOD;
    }
    tokio::time::sleep_until((start + min_run + PERIOD / 2).into()).await;
    let sent = Instant::now();
    sink.send(Message::text(LOUD)).await?;
    Ok(sent)
}

fn memory_line(server: &str, before: Option<u64>, open: Option<u64>, people: usize) -> f64 {
    let (before, open) = (before.unwrap_or(0), open.unwrap_or(0));
    let per_connection = open.saturating_sub(before) as f64 / people.max(1) as f64;
    println!(
        "memory       {server} VmRSS {before} KiB before the sockets, {open} KiB with them open: \
         {per_connection:.1} KiB per connection"
    );
    per_connection
}

pub async fn townhall(args: TownhallArgs) -> anyhow::Result<()> {
    let h = &args.hall;
    let wanted = h.people + h.rounds;
    let tokens = api::read_lines(&args.stack.tokens_file, wanted, wanted)?;
    let users = tokens
        .iter()
        .map(|t| lobby::subject(t))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if h.people < 2 {
        bail!("--people must be at least 2 (two of them take turns speaking)");
    }
    let http = common::http_client(Duration::from_secs(30))?;
    let begun = Instant::now();
    // The room's seats: the people and the joiner of the round.
    let (_, code) = api::create_room(
        &http,
        &args.stack.gc_url,
        &args.stack.host_token,
        "signaling townhall bench",
        h.people + 1,
        false,
    )
    .await?;
    let people = tokens[..h.people].iter();
    let joins = crate::join_all_admitted(
        &http,
        &args.stack.gc_url,
        people.map(|token| (code.as_str(), token.as_str())),
    )
    .await?;
    let joined_in = begun.elapsed();

    let rss = || h.server_pid.and_then(procfs::rss_kib);
    let rss_before = rss();
    let welcome_bytes = Arc::new(AtomicUsize::new(0));
    let keepalive = Duration::from_secs(args.keepalive_secs.max(1));
    let mut hall = fill(h.people, Some(keepalive), |i| {
        let (joined, welcome_bytes) = (&joins[i], Arc::clone(&welcome_bytes));
        async move {
            let mut ws = authenticated(&joined.signaling_url, &joined.meeting_token).await?;
            let welcome = expect(&mut ws, "welcome").await?;
            welcome_bytes.fetch_max(welcome.to_string().len(), Ordering::Relaxed);
            Ok(ws)
        }
    })
    .await?;
    let welcome_bytes = welcome_bytes.load(Ordering::Relaxed);
    println!(
        "--- townhall: {} people in one meeting ({code}), {} rounds of a speaker change, a \
         join and a leave",
        h.people, h.rounds
    );
    println!(
        "setup        {} joins in {:.2} s; {} sockets welcomed in {:.2} s; the largest \
         welcome {welcome_bytes} bytes",
        h.people,
        joined_in.as_secs_f64(),
        h.people,
        (begun.elapsed() - joined_in).as_secs_f64()
    );
    tokio::time::sleep(SETTLE).await;
    let rss_open = rss();
    hall.armed.store(true, Ordering::Relaxed);
    let counters_before = mc::slow_consumers(&http, &args.mc_url).await;

    let min_run = Duration::from_millis(args.min_run_ms);
    let (mut speaker, mut joined) = (Series::default(), Series::default());
    let (mut connected, mut left) = (Series::default(), Series::default());
    let (mut rest_us, mut welcome_us) = (Vec::new(), Vec::new());
    let (mut speaker_cpu, mut join_cpu) = (CpuTotal::default(), CpuTotal::default());
    for round in 0..h.rounds {
        // A speaker change: members 0 and 1 take turns.
        let talker = round % 2;
        hall.drain();
        let due = hall.open();
        let cpu_before = CpuSnapshot::take(&h.cpu);
        let sent = speak(&hall.sinks[talker], min_run).await?;
        let heard = hall.gather(&[(Kind::Speaker, &users[talker])]).await;
        speaker_cpu.add(CpuSnapshot::take(&h.cpu).since(&cpu_before));
        speaker.push(Spread::of(sent, &heard[0]), due);
        tokio::time::sleep(PAUSE).await;

        // A join, its connection and its leave.
        let (token, user) = (&tokens[h.people + round], users[h.people + round].as_str());
        hall.drain();
        let due = hall.open();
        let cpu_before = CpuSnapshot::take(&h.cpu);
        let rest_sent = Instant::now();
        let answer = join(&http, &args.stack.gc_url, &code, token).await?;
        rest_us.push(micros(rest_sent.elapsed()));
        if answer.status != "admitted" {
            bail!("round {round}: the join answered {}", answer.status);
        }
        let auth_sent = Instant::now();
        let mut ws = authenticated(&answer.signaling_url, &answer.meeting_token).await?;
        expect(&mut ws, "welcome")
            .await
            .with_context(|| format!("round {round}: the joiner's welcome"))?;
        welcome_us.push(micros(rest_sent.elapsed()));
        let heard = hall
            .gather(&[(Kind::Joined, user), (Kind::Connected, user)])
            .await;
        joined.push(Spread::of(rest_sent, &heard[0]), due);
        connected.push(Spread::of(auth_sent, &heard[1]), due);
        hall.drain();
        let leave_sent = Instant::now();
        ws.send(Message::text(r#"{"type":"leave"}"#)).await?;
        let heard = hall.gather(&[(Kind::Left, user)]).await;
        join_cpu.add(CpuSnapshot::take(&h.cpu).since(&cpu_before));
        left.push(Spread::of(leave_sent, &heard[0]), due);
        let closing = async {
            while let Some(Ok(message)) = ws.next().await
                && !message.is_close()
            {}
        };
        tokio::time::timeout(STEP_TIMEOUT, closing)
            .await
            .with_context(|| {
                format!("round {round}: the joiner's socket stayed open after leave")
            })?;
        tokio::time::sleep(PAUSE).await;
    }
    hall.drain();
    let slow = mc::slow_consumers(&http, &args.mc_url)
        .await
        .zip(counters_before)
        .map_or("?".to_owned(), |(a, b)| format!("{:.0}", a - b));
    let dropped: u64 = hall.dropped.values().sum();
    println!(
        "dropped      {dropped} sockets {}; MC's slow consumers dropped over the rounds: {slow}",
        report::statuses_line(&hall.dropped)
    );
    let speaker_fields = speaker.report("active_speaker (completing sample)", "speaker");
    let joined_fields = joined.report("participant.joined (REST join sent)", "joined");
    let connected_fields = connected.report("participant.updated (connect sent)", "connected");
    let left_fields = left.report("participant.left (leave sent)", "left");
    rest_us.sort_unstable();
    welcome_us.sort_unstable();
    report::print_percentiles("join answer ms", &rest_us);
    report::print_percentiles("join welcome ms", &welcome_us);
    let per_connection = memory_line("MC", rss_before, rss_open, h.people);
    let names = ["mc", "redis", "client", "machine", "elsewhere"];
    println!(
        "cpu ms       speaker changes: {}; joins and leaves: {} (over {} rounds)",
        procfs::cpu_line(&speaker_cpu.0),
        procfs::cpu_line(&join_cpu.0),
        h.rounds
    );
    println!(
        "result people={} rounds={} welcome_bytes={welcome_bytes} {speaker_fields} \
         {joined_fields} {connected_fields} {left_fields} join_answer_p50_ms={:.2} \
         dropped={dropped} slow_consumers={slow} rss_kib_per_conn={per_connection:.1} {} {}",
        h.people,
        h.rounds,
        report::percentile(&rest_us, 0.5) as f64 / 1000.0,
        speaker_cpu.per_round("speaker", &names, h.rounds),
        join_cpu.per_round("join", &names, h.rounds),
    );
    hall.close();
    Ok(())
}

pub async fn broadcast(args: BroadcastArgs) -> anyhow::Result<()> {
    let h = &args.hall;
    if h.people < 2 {
        bail!("--people must be at least 2 (two of them take turns sending)");
    }
    let rss = || h.server_pid.and_then(procfs::rss_kib);
    let rss_before = rss();
    let begun = Instant::now();
    let mut hall = fill(h.people, None, |_| connect(&args.url)).await?;
    println!(
        "--- broadcast: {} sockets on {}, {} rounds of one frame to all",
        h.people, args.url, h.rounds
    );
    println!(
        "setup        {} sockets open in {:.2} s",
        h.people,
        begun.elapsed().as_secs_f64()
    );
    tokio::time::sleep(SETTLE).await;
    let rss_open = rss();
    hall.armed.store(true, Ordering::Relaxed);

    let mut frames = Series::default();
    let mut cpu = CpuTotal::default();
    let mut frame_bytes = 0;
    for round in 0..h.rounds {
        // Shaped as MC's `active_speaker`: two user ids of the same length.
        let user = format!("00000000-0000-4000-8000-{round:012}");
        let previous = format!("00000000-0000-4000-8000-{:012}", round + 1_000_000);
        let frame =
            json!({"type": "active_speaker", "user_id": user, "previous_user_id": previous})
                .to_string();
        frame_bytes = frame.len();
        hall.drain();
        let due = hall.open();
        let cpu_before = CpuSnapshot::take(&h.cpu);
        let sent = Instant::now();
        hall.sinks[round % 2]
            .lock()
            .await
            .send(Message::text(frame))
            .await?;
        let heard = hall.gather(&[(Kind::Speaker, &user)]).await;
        cpu.add(CpuSnapshot::take(&h.cpu).since(&cpu_before));
        frames.push(Spread::of(sent, &heard[0]), due);
        tokio::time::sleep(PAUSE).await;
    }
    hall.drain();
    let dropped: u64 = hall.dropped.values().sum();
    println!(
        "dropped      {dropped} sockets {}",
        report::statuses_line(&hall.dropped)
    );
    let fields = frames.report(&format!("one {frame_bytes}-byte frame (sent)"), "frame");
    let per_connection = memory_line("broadcast server", rss_before, rss_open, h.people);
    println!(
        "cpu ms       {} (over {} rounds)",
        procfs::cpu_line(&cpu.0),
        h.rounds
    );
    println!(
        "result people={} rounds={} frame_bytes={frame_bytes} {fields} dropped={dropped} \
         rss_kib_per_conn={per_connection:.1} {}",
        h.people,
        h.rounds,
        cpu.per_round(
            "frame",
            &["echo", "client", "machine", "elsewhere"],
            h.rounds
        )
    );
    hall.close();
    Ok(())
}
