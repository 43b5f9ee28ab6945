//! The lobby round trip: in a meeting with the waiting room on and its host connected, users
//! one at a time join over REST (and wait), connect and get `lobby.waiting`; the host admits
//! each over REST, and what is timed is the REST admit sent to `admitted` on the waiting
//! socket (GC → MC over gRPC → the room's script → Redis pub/sub → MC → the socket).
//!
//! Each admitted user then leaves by socket, so every admission finds the same room (the host
//! and an empty lobby), and a pause lets the leave's report to GC finish before the next one:
//! the round trip is measured on an otherwise idle machine.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use clap::Args;
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::procfs::{self, CpuSnapshot};
use crate::report::{self, micros};
use crate::{STEP_TIMEOUT, api, authenticated, expect, join};

#[derive(Args, Debug)]
pub struct LobbyArgs {
    #[command(flatten)]
    stack: crate::Stack,
    /// Tokens of the file to skip (those another run uses).
    #[arg(long, default_value_t = 0)]
    first: usize,
    /// Users admitted, one after another, each with the next token.
    #[arg(long, default_value_t = 300)]
    users: usize,
    /// Milliseconds of quiet after each admitted user left.
    #[arg(long, default_value_t = 50)]
    pause_ms: u64,
    /// A process whose CPU time over the admissions to report, as name=pid (repeatable).
    #[arg(long = "cpu", value_parser = crate::parse_named_pid)]
    cpu: Vec<(String, u32)>,
}

/// The `sub` claim of a JWT (not verified: these are our own tokens, read for the user id).
pub fn subject(token: &str) -> anyhow::Result<String> {
    let payload = token.split('.').nth(1).context("not a JWT")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes)?;
    claims["sub"]
        .as_str()
        .map(str::to_owned)
        .context("no sub in the token")
}

pub async fn run(args: LobbyArgs) -> anyhow::Result<()> {
    let wanted = args.first + args.users;
    let tokens = api::read_lines(&args.stack.tokens_file, wanted, wanted)?;
    let tokens = tokens
        .get(args.first..)
        .context("--first is past the tokens")?;
    let http = common::http_client(Duration::from_secs(30))?;
    let (_, code) = api::create_room(
        &http,
        &args.stack.gc_url,
        &args.stack.host_token,
        "signaling lobby bench",
        args.users + 1,
        true,
    )
    .await?;
    let host = join(&http, &args.stack.gc_url, &code, &args.stack.host_token).await?;
    let mut host_ws = authenticated(&host.signaling_url, &host.meeting_token).await?;
    expect(&mut host_ws, "welcome").await?;
    // The host hears every user come and go: read it, so its queue at MC never fills.
    let host_reader = tokio::spawn(async move { while let Some(Ok(_)) = host_ws.next().await {} });

    println!(
        "--- lobby: {} users admitted one at a time in {code}, {} ms apart",
        tokens.len(),
        args.pause_ms
    );
    let begun = Instant::now();
    let cpu_before = CpuSnapshot::take(&args.cpu);
    let (mut to_socket, mut to_answer) = (Vec::new(), Vec::new());
    let mut failures: BTreeMap<String, u64> = BTreeMap::new();
    for token in tokens {
        match admit_one(&http, &args, &code, token).await {
            Ok((heard, answered)) => {
                to_socket.push(micros(heard));
                to_answer.push(micros(answered));
            }
            Err(error) => *failures.entry(format!("{error:#}")).or_default() += 1,
        }
        tokio::time::sleep(Duration::from_millis(args.pause_ms)).await;
    }
    let cpu = CpuSnapshot::take(&args.cpu).since(&cpu_before);
    let wall = begun.elapsed().as_secs_f64();
    host_reader.abort();
    to_socket.sort_unstable();
    to_answer.sort_unstable();
    let failed: u64 = failures.values().sum();
    println!(
        "lobby        {} admitted in {wall:.1} s; {failed} failed {}",
        to_socket.len(),
        report::statuses_line(&failures)
    );
    report::print_percentiles("admit ms", &to_socket);
    report::print_percentiles("rest ms", &to_answer);
    println!("cpu ms       {}", procfs::cpu_line(&cpu));
    let ms = |sorted: &[u64], p: f64| report::percentile(sorted, p) as f64 / 1000.0;
    println!(
        "result admit_p50_ms={:.2} admit_p99_ms={:.2} admit_max_ms={:.2} rest_p99_ms={:.2} \
         admitted={} failed={failed} wall_s={wall:.1} {}",
        ms(&to_socket, 0.5),
        ms(&to_socket, 0.99),
        ms(&to_socket, 1.0),
        ms(&to_answer, 0.99),
        to_socket.len(),
        procfs::cpu_fields(&cpu, &["machine", "elsewhere"])
    );
    Ok(())
}

/// One user through the lobby: returns the time from the REST admit to `admitted` on the
/// socket, and to the REST answer.
async fn admit_one(
    http: &reqwest::Client,
    args: &LobbyArgs,
    code: &str,
    token: &str,
) -> anyhow::Result<(Duration, Duration)> {
    let joined = join(http, &args.stack.gc_url, code, token).await?;
    if joined.status != "waiting" {
        bail!("a join answered {} with the waiting room on", joined.status);
    }
    let user_id = subject(token)?;
    let mut ws = authenticated(&joined.signaling_url, &joined.meeting_token).await?;
    expect(&mut ws, "lobby.waiting").await?;

    let admit_url = format!(
        "{}/api/v1/meetings/{code}/admit/{user_id}",
        args.stack.gc_url.trim_end_matches('/')
    );
    let sent = Instant::now();
    let admit = async {
        let response = http
            .post(admit_url)
            .bearer_auth(&args.stack.host_token)
            .send()
            .await?;
        let status = response.status();
        let _ = response.bytes().await;
        let answered = sent.elapsed();
        if status != reqwest::StatusCode::OK {
            bail!("admit answered {status}");
        }
        Ok::<_, anyhow::Error>(answered)
    };
    let heard = async { expect(&mut ws, "admitted").await.map(|_| sent.elapsed()) };
    let (answered, heard) = tokio::join!(admit, heard);
    let (answered, heard) = (answered?, heard?);

    expect(&mut ws, "welcome").await?;
    ws.send(Message::text(r#"{"type":"leave"}"#)).await?;
    // MC closes the socket (1000) once the leave is done.
    let closing = async {
        while let Some(Ok(message)) = ws.next().await {
            if message.is_close() {
                break;
            }
        }
    };
    tokio::time::timeout(STEP_TIMEOUT, closing)
        .await
        .context("the socket stayed open after leave")?;
    Ok((heard, answered))
}
