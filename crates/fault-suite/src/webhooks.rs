//! Scenario 12, `webhooks-gc-killed` (DESIGN §13, issue 26): an org's webhook receives every
//! event of thousands of meetings delivered by two GC replicas at once, then one replica is
//! killed with SIGKILL in the middle of a thousand creates and joins. Promised and checked:
//! with both replicas delivering, no event arrives twice; after the kill and a restart, every
//! change PostgreSQL committed has exactly one delivery row, every delivery arrives at least
//! once, and nothing arrives that no committed change caused.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use futures::StreamExt as _;
use uuid::Uuid;

use crate::scenarios::Outcome;
use crate::stack::{Stack, User, WEBHOOK_RECEIVER_PORT};

/// The event types the scenario subscribes to: what a create, a join and an end cause.
const EVENTS: [&str; 5] = [
    "meeting.created",
    "meeting.started",
    "participant.joined",
    "participant.left",
    "meeting.ended",
];
/// Create-join-end cycles with both replicas delivering: about 10,000 events.
const CALM_CYCLES: usize = 2_500;
/// Cycles during which one replica is killed, and after how many answers.
const KILL_CYCLES: usize = 1_000;
const KILL_AFTER: usize = 300;
const CONCURRENCY: usize = 16;

/// `webhook-id`s received, with how often; and whether to answer slowly (100 ms), so that a
/// killed replica surely has deliveries in flight.
#[derive(Clone, Default)]
struct Received(
    Arc<Mutex<HashMap<String, u32>>>,
    Arc<std::sync::atomic::AtomicBool>,
);

impl Received {
    fn snapshot(&self) -> HashMap<String, u32> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

async fn start_receiver() -> Result<(Received, tokio::task::JoinHandle<()>)> {
    let received = Received::default();
    let state = received.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap| {
            let state = state.clone();
            async move {
                if let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok()) {
                    *state
                        .0
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .entry(id.to_owned())
                        .or_default() += 1;
                }
                if state.1.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener =
        tokio::net::TcpListener::bind(crate::stack::addr_of(WEBHOOK_RECEIVER_PORT)).await?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((received, task))
}

pub(crate) async fn admin_token(stack: &Stack) -> Result<String> {
    let response = stack
        .http
        .post(format!("{}/api/v1/auth/service/token", stack.ac.url()))
        .basic_auth(
            "convene-admin",
            Some(crate::stack::secret_of("convene-admin")),
        )
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await?;
    let body: serde_json::Value = response.json().await?;
    Ok(body["access_token"]
        .as_str()
        .context("no admin service token")?
        .to_owned())
}

/// One meeting's life: created, joined by its host, ended. Failures (a killed replica's
/// refused or broken connections) are counted, not fatal: only what committed is checked.
async fn cycle(stack: &Stack, user: &User, gc: &str, failed: &AtomicUsize) {
    let http = &stack.http;
    let base = format!("{gc}/api/v1/meetings");
    let created = http
        .post(&base)
        .bearer_auth(&user.token)
        .json(&serde_json::json!({"display_name": "Hooked"}))
        .send()
        .await;
    let code = match created {
        Ok(r) if r.status() == 201 => r
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|b| b["meeting_code"].as_str().map(str::to_owned)),
        _ => None,
    };
    let Some(code) = code else {
        failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    for step in ["join", "end"] {
        let answer = http
            .post(format!("{base}/{code}/{step}"))
            .bearer_auth(&user.token)
            .send()
            .await;
        if !answer.is_ok_and(|r| r.status() == 200) {
            failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
}

/// Runs `count` cycles, `CONCURRENCY` at a time, over both replicas; `on_answer` after each.
pub(crate) async fn cycles(
    stack: &Stack,
    count: usize,
    failed: &AtomicUsize,
    on_answer: impl Fn(usize) + Sync,
) {
    let done = AtomicUsize::new(0);
    let gcs: Vec<String> = stack.gcs.iter().map(|gc| gc.url()).collect();
    futures::stream::iter(0..count)
        .for_each_concurrent(CONCURRENCY, |i| {
            let user = &stack.users[i % stack.users.len()];
            let gc = &gcs[i % gcs.len()];
            let done = &done;
            let on_answer = &on_answer;
            async move {
                cycle(stack, user, gc, failed).await;
                on_answer(done.fetch_add(1, Ordering::Relaxed) + 1);
            }
        })
        .await;
}

/// Waits until no delivery of `webhook` is pending (or `limit` passes).
pub(crate) async fn drained(stack: &Stack, webhook: Uuid, limit: Duration) -> Result<Duration> {
    crate::process::wait_for(limit, "every webhook delivery delivered", || {
        let db = stack.db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "select count(*) from webhook_deliveries
                  where webhook_id = $1 and status <> 'delivered'",
            )
            .bind(webhook)
            .fetch_one(&db)
            .await
            .is_ok_and(|n| n == 0)
        }
    })
    .await
}

/// A (meeting, type) whose recorded changes and delivery rows differ in number.
type Mismatch = (Option<String>, Option<String>, Option<i64>, Option<i64>);

/// Every committed change has exactly one delivery row, and every delivery row one change:
/// (meeting, type) -> count, from the audit log and from the outbox, must be equal.
async fn outbox_matches_the_record(
    stack: &Stack,
    webhook: Uuid,
    outcome: &mut Outcome,
) -> Result<Vec<Uuid>> {
    let mismatched: Vec<Mismatch> =
        sqlx::query_as(
            "with a as (
                select resource_id as meeting_id, webhook_event_type(action) as type, count(*) as n
                from audit_logs
                where org_id = $1 and webhook_event_type(action) = any ($3)
                  -- Changes made since the webhook exists (the org's meetings of earlier
                  -- scenarios have none); no load runs while it is created.
                  and created_at >= (select created_at from webhooks where id = $2)
                group by 1, 2),
             d as (
                select (payload::jsonb -> 'data' ->> 'meeting_id') as meeting_id, event_type as type,
                       count(*) as n
                from webhook_deliveries
                where webhook_id = $2
                group by 1, 2)
             select coalesce(a.meeting_id, d.meeting_id), coalesce(a.type, d.type), a.n, d.n
             from a full join d on a.meeting_id = d.meeting_id and a.type = d.type
             where a.n is distinct from d.n
             limit 20",
        )
        .bind(stack.org_id)
        .bind(webhook)
        .bind(EVENTS.map(str::to_owned).to_vec())
        .fetch_all(&stack.db)
        .await?;
    outcome.expect(
        mismatched.is_empty(),
        format!(
            "changes and deliveries disagree (meeting, type, recorded, delivery rows): {mismatched:?}"
        ),
    );
    Ok(
        sqlx::query_scalar("select id from webhook_deliveries where webhook_id = $1")
            .bind(webhook)
            .fetch_all(&stack.db)
            .await?,
    )
}

pub async fn webhooks_gc_killed(stack: &mut Stack) -> Result<Outcome> {
    let mut outcome = Outcome::new("webhooks-gc-killed");
    let (received, receiver) = start_receiver().await?;
    let admin = admin_token(stack).await?;
    let webhook =
        crate::webhook_endpoints::subscribe(stack, &admin, WEBHOOK_RECEIVER_PORT, &EVENTS).await?;

    // Calm: both replicas create, record and deliver at once.
    let failed = AtomicUsize::new(0);
    let start = Instant::now();
    cycles(stack, CALM_CYCLES, &failed, |_| {}).await;
    outcome.time(
        &format!("{CALM_CYCLES} create-join-end cycles"),
        start.elapsed(),
    );
    let start = Instant::now();
    match drained(stack, webhook, Duration::from_secs(60)).await {
        Ok(took) => outcome.time("their deliveries all delivered", took),
        Err(error) => outcome
            .failures
            .push(format!("{error:#} after {:?}", start.elapsed())),
    }
    let ids = outbox_matches_the_record(stack, webhook, &mut outcome).await?;
    let seen = received.snapshot();
    let twice = seen.values().filter(|n| **n > 1).count();
    let missing = ids
        .iter()
        .filter(|id| !seen.contains_key(&id.to_string()))
        .count();
    outcome.notes.push(format!(
        "calm: {} events delivered by two replicas, {} cycles failed",
        ids.len(),
        failed.load(Ordering::Relaxed)
    ));
    outcome.expect(
        twice == 0,
        format!("with both replicas delivering, {twice} webhook-ids arrived more than once"),
    );
    outcome.expect(
        missing == 0 && seen.len() == ids.len(),
        format!(
            "{missing} deliveries never arrived; {} ids arrived for {} deliveries",
            seen.len(),
            ids.len()
        ),
    );

    // Killed: SIGKILL one replica in the middle of the cycles, while the receiver answers
    // slowly (each replica has deliveries in flight), then start it again.
    received.1.store(true, Ordering::Relaxed);
    let failed = AtomicUsize::new(0);
    let kill_now = tokio::sync::Notify::new();
    let start = Instant::now();
    let load = cycles(stack, KILL_CYCLES, &failed, |answered| {
        if answered == KILL_AFTER {
            kill_now.notify_one();
        }
    });
    let victim = stack.gcs[0].pid().context("gc-0 is not running")?;
    let killer = async {
        kill_now.notified().await;
        crate::process::signal(victim, "KILL").await
    };
    let ((), killed) = tokio::join!(load, killer);
    killed?;
    outcome.time(
        &format!("{KILL_CYCLES} cycles with gc-0 killed after {KILL_AFTER}"),
        start.elapsed(),
    );
    received.1.store(false, Ordering::Relaxed);
    // Reap it, and start it again.
    stack.gcs[0].kill().await?;
    stack.gcs[0].start()?;
    stack.gcs[0]
        .wait_ready(&stack.http, Duration::from_secs(60))
        .await?;
    let start = Instant::now();
    // The killed replica's leases end after 3 x the timeout + 30 s.
    match drained(stack, webhook, Duration::from_secs(120)).await {
        Ok(took) => outcome.time("every delivery delivered after the kill", took),
        Err(error) => outcome
            .failures
            .push(format!("{error:#} after {:?}", start.elapsed())),
    }
    let ids = outbox_matches_the_record(stack, webhook, &mut outcome).await?;
    let seen = received.snapshot();
    let missing: Vec<&Uuid> = ids
        .iter()
        .filter(|id| !seen.contains_key(&id.to_string()))
        .take(5)
        .collect();
    let strangers = seen
        .keys()
        .filter(|id| !ids.iter().any(|d| d.to_string() == **id))
        .count();
    let twice = seen.values().filter(|n| **n > 1).count();
    let retried: i64 = sqlx::query_scalar(
        "select count(*) from webhook_deliveries where webhook_id = $1 and attempts > 1",
    )
    .bind(webhook)
    .fetch_one(&stack.db)
    .await?;
    outcome.notes.push(format!(
        "killed: {} deliveries in all, {} cycles failed around the kill; {retried} deliveries sent more than once (the killed replica's leases ran out), {twice} webhook-ids arrived more than once (at least once allows it)",
        ids.len(),
        failed.load(Ordering::Relaxed)
    ));
    outcome.expect(
        missing.is_empty(),
        format!("deliveries that never arrived after the kill: {missing:?}"),
    );
    outcome.expect(
        strangers == 0,
        format!("{strangers} webhook-ids arrived that no committed change caused"),
    );

    // Leave the stack as the other scenarios expect it: no webhook.
    crate::webhook_endpoints::unsubscribe(stack, webhook).await?;
    receiver.abort();
    Ok(outcome)
}
