//! The `mc` mode: 100 meetings of 20 users joined over GC (waiting room off), their sockets
//! welcomed on MC, then the stream for the run's duration. Reports MC's processed rate (its own
//! counter), the speaker delays (`stream.rs`), dropped clients, MC's memory per connection and
//! each process's CPU time over the load.

use std::time::{Duration, Instant};

use clap::Args;
use futures::StreamExt;

use crate::procfs::{self, CpuSnapshot};
use crate::stream::{self, Ws};
use crate::{
    CONNECT_CONCURRENCY, Load, SETUP_CONCURRENCY, Stack, StreamArgs, api, authenticated, expect,
    lobby, print_memory, print_sent_and_dropped, report, schedule,
};

#[derive(Args, Debug)]
pub struct McArgs {
    #[command(flatten)]
    stack: Stack,
    /// Base URL of MC's HTTP listener, for /metrics.
    #[arg(long)]
    mc_url: String,
    #[command(flatten)]
    stream: StreamArgs,
}

/// A counter of MC's /metrics, summed over its label sets that contain `labels`.
async fn counter(client: &reqwest::Client, mc_url: &str, name: &str, labels: &str) -> Option<f64> {
    let url = format!("{}/metrics", mc_url.trim_end_matches('/'));
    let text = client.get(url).send().await.ok()?.text().await.ok()?;
    let total = text
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with([' ', '{']) && rest.contains(labels))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    Some(total)
}

/// MC's counters that tell how the run went on its side.
const MC_COUNTERS: [(&str, &str, &str); 5] = [
    (
        "audio_level",
        "mc_ws_messages_received_total",
        "type=\"audio_level\"",
    ),
    ("speaker_changes", "mc_active_speaker_changes_total", ""),
    (
        "active_speaker_sent",
        "mc_ws_messages_sent_total",
        "type=\"active_speaker\"",
    ),
    ("slow_consumers", "mc_ws_slow_consumers_dropped_total", ""),
    ("rate_limited", "mc_ws_rate_limited_total", ""),
];

/// MC's count of sockets it closed as slow consumers so far.
pub async fn slow_consumers(client: &reqwest::Client, mc_url: &str) -> Option<f64> {
    counter(client, mc_url, "mc_ws_slow_consumers_dropped_total", "").await
}

async fn mc_counters(client: &reqwest::Client, mc_url: &str) -> Vec<Option<f64>> {
    let mut values = Vec::new();
    for (_, name, labels) in MC_COUNTERS {
        values.push(counter(client, mc_url, name, labels).await);
    }
    values
}

pub async fn run(args: McArgs) -> anyhow::Result<()> {
    let s = &args.stream;
    let clients = s.rooms * s.per_room;
    let tokens = api::read_lines(&args.stack.tokens_file, clients, clients)?;
    let users = tokens
        .iter()
        .map(|t| lobby::subject(t))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let http = common::http_client(Duration::from_secs(30))?;
    let begun = Instant::now();

    let codes: Vec<String> = futures::stream::iter(0..s.rooms)
        .map(|_| {
            let (http, args) = (&http, &args);
            async move {
                let max = args.stream.per_room + 1;
                let created = api::create_room(
                    http,
                    &args.stack.gc_url,
                    &args.stack.host_token,
                    "signaling bench",
                    max,
                    false,
                );
                Ok::<_, anyhow::Error>(created.await?.1)
            }
        })
        .buffered(SETUP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let each = tokens.iter().enumerate();
    let joins = crate::join_all_admitted(
        &http,
        &args.stack.gc_url,
        each.map(|(client, token)| (codes[client / s.per_room].as_str(), token.as_str())),
    )
    .await?;
    let joined_in = begun.elapsed();

    let rss = || s.server_pid.and_then(procfs::rss_kib);
    let rss_before = rss();
    let sockets: Vec<Ws> = futures::stream::iter(&joins)
        .map(|j| async move {
            let mut ws = authenticated(&j.signaling_url, &j.meeting_token).await?;
            expect(&mut ws, "welcome").await?;
            Ok::<_, anyhow::Error>(ws)
        })
        .buffered(CONNECT_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    println!(
        "--- mc: {} rooms of {}, {} Hz, a speaker change per room every {} ms, for {} s",
        s.rooms, s.per_room, s.rate_hz, s.turn_ms, s.duration_secs
    );
    println!(
        "setup        {} rooms created and {clients} joins in {:.2} s; {clients} sockets \
         welcomed in {:.2} s",
        s.rooms,
        joined_in.as_secs_f64(),
        (begun.elapsed() - joined_in).as_secs_f64()
    );

    let schedule = schedule(s);
    let load = Load::start(sockets, schedule, false);
    let rss_open = rss();
    let cpu_before = Load::started(&schedule, s).await;
    let counters_before = mc_counters(&http, &args.mc_url).await;
    tokio::time::sleep_until(schedule.end().into()).await;
    let cpu = CpuSnapshot::take(&s.cpu).since(&cpu_before);
    let counters_after = mc_counters(&http, &args.mc_url).await;
    let rss_end = rss();
    let (talked, heard) = load.finish().await?;

    let (sent, dropped) = print_sent_and_dropped(&schedule, &talked, &heard);
    let deltas: Vec<(&str, Option<f64>)> = MC_COUNTERS
        .iter()
        .zip(counters_before.iter().zip(&counters_after))
        .map(|((label, _, _), (b, a))| (*label, a.zip(*b).map(|(a, b)| a - b)))
        .collect();
    let processed = deltas
        .first()
        .and_then(|(_, d)| *d)
        .map_or(f64::NAN, |d| d / schedule.duration.as_secs_f64());
    println!(
        "mc metrics   over the run: {}",
        deltas
            .iter()
            .map(|(l, d)| format!("{l} {}", d.map_or("?".to_owned(), |d| format!("{d:.0}"))))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("mc received  {processed:.1} audio_level/s");

    let delays = stream::speaker_delays(&schedule, &users, &talked, &heard);
    println!(
        "changes      {} scripted changes completed; active_speaker due at the other clients \
         {}, received {}, missing {}, early {}, duplicates {}, unmatched {}",
        delays.changes,
        delays.expected,
        delays.sorted_us.len(),
        delays.missing,
        delays.early,
        delays.duplicates,
        delays.unmatched
    );
    report::print_percentiles("delay ms", &delays.sorted_us);

    let per_connection = print_memory("MC", [rss_before, rss_open, rss_end], clients);
    println!("cpu ms       {}", procfs::cpu_line(&cpu));
    let ms = |p: f64| report::percentile(&delays.sorted_us, p) as f64 / 1000.0;
    println!(
        "result {} processed_per_s={processed:.1} delay_p50_ms={:.2} \
         delay_p99_ms={:.2} delay_max_ms={:.2} changes={} expected={} missing={} early={} \
         dropped={dropped} rss_kib_per_conn={per_connection:.1} {}",
        sent.fields(),
        ms(0.5),
        ms(0.99),
        ms(1.0),
        delays.changes,
        delays.expected,
        delays.missing,
        delays.early,
        procfs::cpu_fields(&cpu, &["mc", "redis", "client", "machine", "elsewhere"])
    );
    Ok(())
}
