//! The day-in-the-life load generator (issue 27): meetings created at a steady rate against a
//! running stack (the scale stack of `scripts/dev.sh up --scale`, through its front), each
//! with a host and its people ([`meeting`]); at the end the delays, every refusal and close,
//! what the stack's processes and stores spent, and the fault suite's checker run on the
//! stack's PostgreSQL and Redis Cluster ([`crate::check::check_stores`]).
//!
//! The run: an org of its own is made at AC with its users ([`setup`]); meetings are created
//! for `--duration`; then no new step begins, the meetings still held stay as they are while the
//! checker reads the stores, and their hosts end them. `scripts/day-in-the-life.sh` builds it,
//! starts the scale stack when it is not running, and passes the stack's URLs.

mod measure;
mod meeting;
mod setup;
mod socket;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::api::{Api, lock};
use crate::check::{Report, Stores, check_stores};
use crate::stack::RoomStore;
use measure::{Metrics, summary};
use meeting::{Ctx, Shape, Sizes};

/// A day in the life of the platform, against a running stack.
#[derive(Parser, Debug)]
#[command(name = "day-in-the-life")]
pub struct Args {
    /// How long meetings are created (`600s`, `3m`, `90`).
    #[arg(long, default_value = "600s", value_parser = parse_duration)]
    duration: Duration,
    /// Meetings created a second.
    #[arg(long, default_value_t = 0.5)]
    create_per_sec: f64,
    /// People in a meeting, host included: `LO..=HI` (uniform) or `skewed` (half 2–4, three in
    /// ten 5–10, two in ten 11–20).
    #[arg(long, default_value = "2..=20", value_parser = parse_sizes)]
    size: Sizes,
    /// Meetings with the waiting room on: their guests wait and the host admits them.
    #[arg(long, default_value_t = 0.2)]
    lobby_fraction: f64,
    /// Guests who leave over REST and join again.
    #[arg(long, default_value_t = 0.1)]
    leave_return_fraction: f64,
    /// Clients who drop their socket without a close frame and reconnect.
    #[arg(long, default_value_t = 0.05)]
    reconnect_fraction: f64,
    /// How long a meeting is held before its guests leave and the host ends it, in seconds.
    #[arg(long, default_value = "60..=180", value_parser = parse_seconds)]
    hold: (Duration, Duration),
    /// `audio_level` messages a second of the speaker.
    #[arg(long, default_value_t = 20.0)]
    audio_hz: f64,
    /// `audio_level` messages a second of everyone else (default: `--audio-hz`).
    #[arg(long)]
    quiet_hz: Option<f64>,
    /// Users of the run's org (default: what the shape holds at once, with a margin).
    #[arg(long)]
    users: Option<usize>,
    /// Where the report is written as JSON.
    #[arg(long, default_value = "day-in-the-life.json")]
    report: PathBuf,
    /// The public API (the scale stack's front).
    #[arg(long, env = "CONVENE_GC_URL")]
    gc_url: String,
    /// AC's URL.
    #[arg(long, env = "CONVENE_AC_URL")]
    ac_url: String,
    /// The MCs' HTTP URLs, for their readiness (comma-separated).
    #[arg(long, env = "CONVENE_MC_URLS", value_delimiter = ',')]
    mc_urls: Vec<String>,
    #[arg(long, env = "CONVENE_ADMIN_CLIENT_ID", default_value = "convene-admin")]
    admin_client_id: String,
    #[arg(long, env = "CONVENE_ADMIN_CLIENT_SECRET")]
    admin_client_secret: String,
    /// The stack's database, read by the checker.
    #[arg(
        long,
        env = "DAY_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/convene"
    )]
    database_url: String,
    /// The rooms' Redis Cluster nodes (comma-separated).
    #[arg(
        long,
        env = "DAY_REDIS_CLUSTER_URLS",
        value_delimiter = ',',
        default_value = "redis://127.0.0.1:16380,redis://127.0.0.1:16381,redis://127.0.0.1:16382"
    )]
    redis_nodes: Vec<String>,
    /// The dev stack's state directory, where the processes' pids are.
    #[arg(long, env = "CONVENE_DEV_DIR", default_value = ".dev")]
    dev_dir: PathBuf,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((text, "s"), |at| text.split_at(at));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("not a duration: {text}"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("not a duration: {text}")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

fn range(text: &str) -> Result<(usize, usize), String> {
    let (lo, hi) = text
        .split_once("..=")
        .or_else(|| text.split_once(".."))
        .ok_or_else(|| format!("not a range: {text} (LO..=HI)"))?;
    let lo = lo
        .trim()
        .parse()
        .map_err(|_| format!("not a range: {text}"))?;
    let hi = hi
        .trim()
        .parse()
        .map_err(|_| format!("not a range: {text}"))?;
    if lo > hi {
        return Err(format!("empty range {text}"));
    }
    Ok((lo, hi))
}

fn parse_sizes(text: &str) -> Result<Sizes, String> {
    if text == "skewed" {
        return Ok(Sizes::Skewed);
    }
    let (lo, hi) = range(text)?;
    if lo < 2 {
        return Err("a meeting has at least 2 people".to_owned());
    }
    Ok(Sizes::Uniform(lo, hi))
}

fn parse_seconds(text: &str) -> Result<(Duration, Duration), String> {
    let (lo, hi) = range(text)?;
    Ok((
        Duration::from_secs(lo as u64),
        Duration::from_secs(hi as u64),
    ))
}

pub async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(error) => {
            eprintln!("day: {error:#}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> Result<bool> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    if args.create_per_sec <= 0.0 || args.audio_hz <= 0.0 {
        bail!("--create-per-sec and --audio-hz must be positive");
    }
    let shape = Shape {
        size: args.size,
        lobby_fraction: args.lobby_fraction,
        leave_return_fraction: args.leave_return_fraction,
        reconnect_fraction: args.reconnect_fraction,
        hold: args.hold,
        loud_period: Duration::from_secs_f64(1.0 / args.audio_hz),
        quiet_period: Duration::from_secs_f64(1.0 / args.quiet_hz.unwrap_or(args.audio_hz)),
    };
    // A meeting lives its hold, the guests' arrival and its end: about hold + 20 s.
    let lifetime = args.hold.1.as_secs_f64() + 20.0;
    let at_once = args.create_per_sec * lifetime.min(args.duration.as_secs_f64());
    let users = args
        .users
        .unwrap_or((at_once * args.size.mean() * 1.05).ceil() as usize + args.size.max());
    let limits = setup::Limits {
        meetings: (at_once * 1.3).ceil() as usize + 20,
        seats: args.size.max() + 2,
    };
    println!(
        "day: {:.0} s of {} meetings/s, sizes {:?}, hold {:?}, waiting room {}, leave and \
         return {}, reconnect {}, audio {} Hz; {users} users, org limit {} meetings",
        args.duration.as_secs_f64(),
        args.create_per_sec,
        args.size,
        args.hold,
        args.lobby_fraction,
        args.leave_return_fraction,
        args.reconnect_fraction,
        args.audio_hz,
        limits.meetings
    );
    // Idle connections are dropped before the front's keep-alive timeout (10 s) closes them,
    // so that no request goes out on a connection the front is closing.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(40))
        .pool_idle_timeout(Duration::from_secs(5))
        .build()?;
    let db = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&args.database_url)
        .await
        .context("the stack's PostgreSQL")?;
    let org = setup::make_org(
        &http,
        &args.ac_url,
        (&args.admin_client_id, &args.admin_client_secret),
        users,
        &limits,
    )
    .await?;

    let api = Arc::new(Api::new(http.clone(), vec![args.gc_url.clone()]));
    let metrics = Arc::new(Metrics::default());
    let ctx = Arc::new(Ctx {
        api: Arc::clone(&api),
        metrics: Arc::clone(&metrics),
        shape,
        pool: Mutex::new(org.users.clone()),
        stop: CancellationToken::new(),
        finish: CancellationToken::new(),
        busy: Default::default(),
    });
    // The org's inserts and sign-ins reach pg_stat_user_tables within seconds: not counted as
    // the run's.
    tokio::time::sleep(measure::STATS_DELAY).await;
    let before = measure::snapshot(&args.dev_dir, &db, &args.redis_nodes).await?;
    let started_at = chrono::Utc::now();
    let begun = Instant::now();
    let seconds = tokio::spawn({
        let metrics = Arc::clone(&metrics);
        let stop = ctx.stop.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            while !stop.is_cancelled() {
                tick.tick().await;
                metrics.tick_seated();
            }
        }
    });
    let mut meetings = JoinSet::new();
    let mut create = tokio::time::interval(Duration::from_secs_f64(1.0 / args.create_per_sec));
    let mut progress = tokio::time::interval(Duration::from_secs(30));
    progress.tick().await;
    let mut index = 0;
    while begun.elapsed() < args.duration {
        tokio::select! {
            _ = create.tick() => {
                index += 1;
                meetings.spawn(meeting::meeting(Arc::clone(&ctx), index));
            }
            _ = progress.tick() => println!(
                "day: {:>4.0} s: {index} meetings begun, {} seated, {} answers 5xx so far",
                begun.elapsed().as_secs_f64(),
                metrics.seated.load(Ordering::Relaxed),
                lock(&api.stats.answers).iter().filter(|(k, _)| k.ends_with(" 503") || k.ends_with(" 500")).map(|(_, v)| v).sum::<u64>(),
            ),
            Some(_) = meetings.join_next() => {}
        }
    }
    println!(
        "day: load stopped after {:.0} s; waiting for every step in progress",
        begun.elapsed().as_secs_f64()
    );
    ctx.stop.cancel();
    let parked = crate::process::wait_for(
        crate::api::GIVE_UP + Duration::from_secs(30),
        "every step of the load answered",
        || {
            let ctx = Arc::clone(&ctx);
            async move { ctx.busy.load(Ordering::SeqCst) == 0 }
        },
    )
    .await;
    if let Err(error) = parked {
        api.stats.violation(format!("{error:#}"));
    }
    let _ = seconds.await;
    let ran = begun.elapsed();
    let mut after = measure::snapshot(&args.dev_dir, &db, &args.redis_nodes).await?;
    // The rows: once the run's last writes have reached the statistics.
    tokio::time::sleep(measure::STATS_DELAY).await;
    after.rows = measure::rows(&db).await?;

    println!("day: checking the stores");
    let mut report = Report::default();
    let ready = ready_urls(&args);
    match wait_ready(&http, &ready).await {
        Ok(took) => report.ready_after = took,
        Err(error) => report.failures.push(format!("not ready: {error:#}")),
    }
    let room_store = RoomStore::Cluster(args.redis_nodes.clone());
    let stores = Stores {
        db: &db,
        room_store: &room_store,
        org_id: org.id,
        orgs: vec![(org.id, org.slug.clone())],
        only_org: Some(org.id),
    };
    let report = check_stores(&stores, &api, report).await?;

    println!("day: ending the meetings still held");
    ctx.finish.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(120), async {
        while meetings.join_next().await.is_some() {}
    })
    .await;
    meetings.abort_all();

    let participant_seconds = metrics.participant_seconds.load(Ordering::Relaxed);
    let document = json!({
        "started_at": started_at.to_rfc3339(),
        "ran_seconds": ran.as_secs_f64().round(),
        "shape": {
            "duration_s": args.duration.as_secs_f64(), "create_per_sec": args.create_per_sec,
            "size": format!("{:?}", args.size), "hold_s": [args.hold.0.as_secs(), args.hold.1.as_secs()],
            "lobby_fraction": args.lobby_fraction, "leave_return_fraction": args.leave_return_fraction,
            "reconnect_fraction": args.reconnect_fraction, "audio_hz": args.audio_hz,
            "quiet_hz": args.quiet_hz.unwrap_or(args.audio_hz),
        },
        "org": {"slug": org.slug, "id": org.id.to_string(), "users": org.users.len(),
                "max_concurrent_meetings": limits.meetings, "max_participants_per_meeting": limits.seats},
        "answers": *lock(&api.stats.answers),
        "refusals": *lock(&api.stats.refusals),
        "events": *lock(&metrics.counts),
        "closes": *lock(&metrics.closes),
        "latencies": latencies(&api, &metrics),
        "participant_seconds": participant_seconds,
        "resources": measure::spent(&before, &after, participant_seconds as f64 / 3600.0),
        "checker": {
            "passed": report.failures.is_empty(), "line": report.line(),
            "failures": report.failures,
        },
        "violations": api.stats.violations().0,
        "violations_count": api.stats.violations().1,
    });
    std::fs::write(&args.report, serde_json::to_string_pretty(&document)?)
        .with_context(|| format!("write {}", args.report.display()))?;
    print_report(&document);
    println!("day: report written to {}", args.report.display());
    Ok(report.failures.is_empty())
}

fn latencies(api: &Api, metrics: &Metrics) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for (op, values) in lock(&api.stats.latencies).iter() {
        out.insert(format!("rest_{op}"), summary(values));
    }
    for (what, values) in lock(&metrics.delays).iter() {
        out.insert((*what).to_owned(), summary(values));
    }
    for what in [
        "join_to_welcome",
        "admit_to_admitted",
        "speaker_delay",
        "reconnect_to_welcome",
    ] {
        out.entry(what).or_insert_with(|| summary(&[]));
    }
    serde_json::Value::Object(out)
}

fn print_report(document: &serde_json::Value) {
    let section = |title: &str, value: &serde_json::Value| {
        println!("\n{title}:");
        if let Some(map) = value.as_object() {
            for (key, value) in map {
                println!("  {key}: {value}");
            }
        }
    };
    section("answers (operation status)", &document["answers"]);
    section("refusals (operation status code)", &document["refusals"]);
    section("client events", &document["events"]);
    section("socket closes by code", &document["closes"]);
    section("latencies", &document["latencies"]);
    let resources = &document["resources"];
    println!(
        "\nparticipant-seconds: {} ({:.2} participant-hours)",
        document["participant_seconds"],
        document["participant_seconds"].as_f64().unwrap_or(0.0) / 3600.0
    );
    section("CPU seconds over the run", &resources["cpu_seconds"]);
    println!(
        "  the stack in all: {} s, {} s per participant-hour",
        resources["cpu_seconds_of_the_stack"], resources["stack_cpu_seconds_per_participant_hour"]
    );
    println!(
        "redis commands: {} (by node {})",
        resources["redis_commands"]["total"], resources["redis_commands"]["by_node"]
    );
    println!(
        "postgres rows: {} inserted, {} updated, {} deleted",
        resources["postgres_rows"]["inserted"],
        resources["postgres_rows"]["updated"],
        resources["postgres_rows"]["deleted"]
    );
    let checker = &document["checker"];
    println!("\nchecker: {}", checker["line"].as_str().unwrap_or(""));
    for failure in checker["failures"].as_array().into_iter().flatten() {
        println!("  FAILED: {}", failure.as_str().unwrap_or(""));
    }
    println!(
        "checker: {}",
        if checker["passed"] == true {
            "passed"
        } else {
            "FAILED"
        }
    );
}

/// The front (twice: round robin over both GCs), AC and every MC.
fn ready_urls(args: &Args) -> Vec<String> {
    let mut urls = vec![
        args.gc_url.clone(),
        args.gc_url.clone(),
        args.ac_url.clone(),
    ];
    urls.extend(args.mc_urls.iter().cloned());
    urls.iter()
        .map(|u| format!("{}/health/ready", u.trim_end_matches('/')))
        .collect()
}

async fn wait_ready(http: &reqwest::Client, urls: &[String]) -> Result<Duration> {
    let start = Instant::now();
    for url in urls {
        crate::process::wait_for(Duration::from_secs(60), url, || async {
            matches!(http.get(url).send().await, Ok(r) if r.status() == 200)
        })
        .await?;
    }
    Ok(start.elapsed())
}
