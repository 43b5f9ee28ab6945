//! Scenario 13, `webhooks-endpoints` (DESIGN §13, issue 26): how delivery treats endpoints
//! that misbehave, and the outbox's own database going away. Four receivers of the scenario's
//! own, one webhook each on the load's org:
//!
//! - **flaky** answers 500 for two minutes from its webhook's creation, then 200. Promised and
//!   checked: every one of its deliveries arrives with a 200 exactly once, after the outage,
//!   and each delivery's attempts are spaced as the backoff says (each wait as long as the
//!   delivery had been failing, within `WEBHOOK_RETRY_BASE_MS` and `WEBHOOK_RETRY_MAX_SECS`,
//!   times a jitter of ±20 %), measured at the receiver;
//! - **healthy** answers 204 at once. Its deliveries' delay (the change's commit to the
//!   request's arrival) is measured without and then with **hanging**, which never answers:
//!   checked that a hanging endpoint never makes the healthy one wait for its timeout (the
//!   healthy delay's p99 stays under `WEBHOOK_TIMEOUT_SECS`), and both delays are reported;
//! - with **slow** (100 ms an answer, so requests are in flight), PostgreSQL is cut off from
//!   both GC replicas for 5 s in the middle of a load: afterwards every delivery of the org's
//!   changes arrives at least once, and the replicas' loops go on delivering;
//! - first of all, two **https** receivers named `localhost`: one whose certificate the test CA
//!   signed (the GCs trust that CA alone here, `SSL_CERT_FILE`), which gets its test event
//!   over TLS, and one with a self-signed certificate for the same name, which never gets a
//!   request: the handshake fails and the delivery stays due, saying why. Production's path
//!   (https, a name resolved and checked, the certificate verified) without a shortcut.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::{DateTime, Utc};
use fault_proxy::Fault;
use uuid::Uuid;

use crate::scenarios::Outcome;
use crate::stack::{Stack, WEBHOOK_RETRY_BASE_MS, WEBHOOK_RETRY_MAX_SECS, WEBHOOK_TIMEOUT_SECS};
use crate::webhooks::{admin_token, cycles, drained};

/// The receivers' ports (stack.rs's table).
const FLAKY_PORT: u16 = 17191;
const HEALTHY_PORT: u16 = 17192;
const HANGING_PORT: u16 = 17193;
const SLOW_PORT: u16 = 17194;
const OUTAGE: Duration = Duration::from_secs(120);
/// Create-join-end cycles of each measured phase.
const PHASE_CYCLES: usize = 150;
const PG_CUT: Duration = Duration::from_secs(5);
const TLS_TRUSTED_PORT: u16 = 17195;
const TLS_STRANGER_PORT: u16 = 17196;

/// The certificates of the https receivers (`fixtures/`): `localhost.pem` signed by `ca.pem`
/// (whose key was thrown away once it had signed), `stranger.pem` self-signed, both for
/// `localhost` and 127.0.0.1, valid for 50 years from 2026-12-07.
pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");

/// An https receiver on `port` with the certificate and key `name`.pem and `name`.key of
/// [`FIXTURES`]: answers 204 to every request and counts them.
async fn start_tls(
    port: u16,
    name: &str,
) -> Result<(Arc<AtomicUsize>, tokio::task::JoinHandle<()>)> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = std::path::Path::new(FIXTURES);
    let certs = CertificateDer::pem_file_iter(dir.join(format!("{name}.pem")))
        .context("the receiver's certificate")?
        .collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(dir.join(format!("{name}.key")))
        .context("the receiver's key")?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = Router::new().route(
        "/hook",
        post(move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::Relaxed);
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(crate::stack::addr_of(port)).await?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
            });
        }
    });
    Ok((hits, task))
}

/// A test event for `webhook`, queued through the API.
async fn send_test(stack: &Stack, admin: &str, webhook: Uuid) -> Result<()> {
    let answer = stack
        .http
        .post(format!(
            "{}/api/v1/webhooks/{webhook}/test?org_id={}",
            stack.gcs[0].url(),
            stack.org_id
        ))
        .bearer_auth(admin)
        .send()
        .await?;
    if answer.status() != 202 {
        bail!("a test event answered {}", answer.status());
    }
    Ok(())
}

/// https end to end: a certificate the GCs' trusted CA signed is accepted, a stranger's is not.
async fn tls(stack: &Stack, admin: &str, outcome: &mut Outcome) -> Result<()> {
    let (trusted_hits, trusted) = start_tls(TLS_TRUSTED_PORT, "localhost").await?;
    let (stranger_hits, stranger) = start_tls(TLS_STRANGER_PORT, "stranger").await?;
    let trusted_hook = subscribe_url(
        stack,
        admin,
        &format!("https://localhost:{TLS_TRUSTED_PORT}/hook"),
        &["webhook.test"],
    )
    .await?;
    let stranger_hook = subscribe_url(
        stack,
        admin,
        &format!("https://localhost:{TLS_STRANGER_PORT}/hook"),
        &["webhook.test"],
    )
    .await?;
    send_test(stack, admin, trusted_hook).await?;
    send_test(stack, admin, stranger_hook).await?;
    let start = Instant::now();
    match drained(stack, trusted_hook, Duration::from_secs(30)).await {
        Ok(took) => outcome.time("a test event delivered over https", took),
        Err(error) => outcome.failures.push(format!("{error:#}")),
    }
    // The stranger's delivery: tried, failed before any request, due again.
    let tried = crate::process::wait_for(Duration::from_secs(30), "the stranger's attempt", || {
        let db = stack.db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "select count(*) from webhook_deliveries
                 where webhook_id = $1 and attempts > 0 and last_error is not null",
            )
            .bind(stranger_hook)
            .fetch_one(&db)
            .await
            .is_ok_and(|n| n == 1)
        }
    })
    .await;
    let (status, error): (String, Option<String>) =
        sqlx::query_as("select status, last_error from webhook_deliveries where webhook_id = $1")
            .bind(stranger_hook)
            .fetch_one(&stack.db)
            .await?;
    outcome.notes.push(format!(
        "https: the trusted receiver got {} request(s) in {:.0?}; the stranger's delivery is {status} after \"{}\"",
        trusted_hits.load(Ordering::Relaxed),
        start.elapsed(),
        error.as_deref().unwrap_or_default()
    ));
    outcome.expect(
        trusted_hits.load(Ordering::Relaxed) == 1,
        format!(
            "the https receiver got {} requests for one test event",
            trusted_hits.load(Ordering::Relaxed)
        ),
    );
    outcome.expect(
        tried.is_ok()
            && status == "pending"
            && stranger_hits.load(Ordering::Relaxed) == 0
            && error.as_deref().is_some_and(|e| e.contains("UnknownIssuer")),
        format!(
            "a receiver whose certificate no trusted CA signed: attempt seen {}, status {status}, {} requests reached it, error {error:?} (expected UnknownIssuer)",
            tried.is_ok(),
            stranger_hits.load(Ordering::Relaxed)
        ),
    );
    for hook in [trusted_hook, stranger_hook] {
        unsubscribe(stack, hook).await?;
    }
    trusted.abort();
    stranger.abort();
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Behaviour {
    /// 500 until the instant, then 204.
    FailUntil(Instant),
    Answer,
    Hang,
    Slow,
}

/// One request a receiver got: its `webhook-id`, when (wall clock, to compare with
/// PostgreSQL's), and the status it was answered.
#[derive(Clone, Debug)]
struct Arrival {
    id: String,
    at: DateTime<Utc>,
    status: u16,
}

#[derive(Clone)]
struct Receiver {
    arrivals: Arc<Mutex<Vec<Arrival>>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    async fn start(port: u16, behaviour: Behaviour) -> Result<Receiver> {
        let arrivals: Arc<Mutex<Vec<Arrival>>> = Arc::default();
        let state = arrivals.clone();
        let app = Router::new().route(
            "/hook",
            post(move |headers: HeaderMap| {
                let state = state.clone();
                async move {
                    let status = match behaviour {
                        Behaviour::FailUntil(until) if Instant::now() < until => 500,
                        _ => 204,
                    };
                    let id = headers
                        .get("webhook-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    lock(&state).push(Arrival {
                        id,
                        at: Utc::now(),
                        status,
                    });
                    match behaviour {
                        Behaviour::Hang => std::future::pending::<()>().await,
                        Behaviour::Slow => tokio::time::sleep(Duration::from_millis(100)).await,
                        _ => {}
                    }
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind(crate::stack::addr_of(port)).await?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Receiver {
            arrivals,
            task: Arc::new(task),
        })
    }

    fn arrivals(&self) -> Vec<Arrival> {
        lock(&self.arrivals).clone()
    }

    fn stop(&self) {
        self.task.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Creates a webhook of the load's org for `events` at the receiver on `port`; its id.
pub(crate) async fn subscribe(
    stack: &Stack,
    admin: &str,
    port: u16,
    events: &[&str],
) -> Result<Uuid> {
    subscribe_url(
        stack,
        admin,
        &format!("http://127.0.0.1:{port}/hook"),
        events,
    )
    .await
}

/// Deletes webhook `id` with its deliveries (straight in PostgreSQL: the scenarios leave the
/// stack as the next ones expect it, with no webhook).
pub(crate) async fn unsubscribe(stack: &Stack, id: Uuid) -> Result<()> {
    sqlx::query("delete from webhooks where id = $1")
        .bind(id)
        .execute(&stack.db)
        .await?;
    Ok(())
}

/// Creates a webhook of the load's org for `events` at `url`; its id.
async fn subscribe_url(stack: &Stack, admin: &str, url: &str, events: &[&str]) -> Result<Uuid> {
    let created = stack
        .http
        .post(format!(
            "{}/api/v1/webhooks?org_id={}",
            stack.gcs[0].url(),
            stack.org_id
        ))
        .bearer_auth(admin)
        .json(&serde_json::json!({
            "url": url,
            "events": events,
        }))
        .send()
        .await?;
    if created.status() != 201 {
        bail!(
            "creating a webhook answered {}: {}",
            created.status(),
            created.text().await.unwrap_or_default()
        );
    }
    Ok(created.json::<serde_json::Value>().await?["webhook_id"]
        .as_str()
        .context("no webhook_id")?
        .parse()?)
}

/// The delivery rows of `webhook`: id and when the change that made it committed.
async fn rows(stack: &Stack, webhook: Uuid) -> Result<Vec<(Uuid, DateTime<Utc>)>> {
    Ok(
        sqlx::query_as("select id, created_at from webhook_deliveries where webhook_id = $1")
            .bind(webhook)
            .fetch_all(&stack.db)
            .await?,
    )
}

/// Seconds from each delivery row's commit to its first arrival at `receiver`, sorted; and
/// how many rows never arrived.
fn delays(rows: &[(Uuid, DateTime<Utc>)], arrivals: &[Arrival]) -> (Vec<f64>, usize) {
    let mut first: HashMap<&str, DateTime<Utc>> = HashMap::new();
    for arrival in arrivals {
        first
            .entry(arrival.id.as_str())
            .and_modify(|at| *at = (*at).min(arrival.at))
            .or_insert(arrival.at);
    }
    let mut missing = 0;
    let mut delays: Vec<f64> = rows
        .iter()
        .filter_map(|(id, created)| match first.get(id.to_string().as_str()) {
            Some(at) => Some((*at - *created).as_seconds_f64().max(0.0)),
            None => {
                missing += 1;
                None
            }
        })
        .collect();
    delays.sort_by(f64::total_cmp);
    (delays, missing)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs `count` cycles and waits for `webhook`'s deliveries; the healthy receiver's delays.
async fn measured_phase(
    stack: &Stack,
    healthy: &Receiver,
    webhook: Uuid,
    outcome: &mut Outcome,
    what: &str,
) -> Result<(Vec<f64>, usize)> {
    let already: std::collections::HashSet<Uuid> = rows(stack, webhook)
        .await?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let failed = AtomicUsize::new(0);
    let start = Instant::now();
    cycles(stack, PHASE_CYCLES, &failed, |_| {}).await;
    outcome.time(&format!("{PHASE_CYCLES} cycles {what}"), start.elapsed());
    drained(stack, webhook, Duration::from_secs(60)).await?;
    let new: Vec<(Uuid, DateTime<Utc>)> = rows(stack, webhook)
        .await?
        .into_iter()
        .filter(|(id, _)| !already.contains(id))
        .collect();
    Ok(delays(&new, &healthy.arrivals()))
}

/// The flaky endpoint's promises: each delivery answered 200 once, after the outage, every
/// earlier attempt a 500, and each wait within the backoff's bounds. The failures found, the
/// attempts counted, and the longest a delivery waited for its first attempt (seconds).
///
/// A wait is the backoff plus the time the retry, due, waits for one of the endpoint's places
/// (8 per replica) behind the deliveries due before it. That queue is measured by the first
/// attempts, due at their commit: the longest any waited is added to the upper bound.
fn backoff_kept(
    rows: &[(Uuid, DateTime<Utc>)],
    arrivals: &[Arrival],
    recovered: DateTime<Utc>,
) -> (Vec<String>, usize, f64) {
    let base = WEBHOOK_RETRY_BASE_MS as f64 / 1000.0;
    let cap = WEBHOOK_RETRY_MAX_SECS as f64;
    let clamp = |failing: f64| failing.clamp(base, cap);
    let mut by_id: HashMap<&str, Vec<&Arrival>> = HashMap::new();
    for arrival in arrivals {
        by_id.entry(arrival.id.as_str()).or_default().push(arrival);
    }
    let queued = rows
        .iter()
        .filter_map(|(id, created)| {
            let first = by_id
                .get(id.to_string().as_str())?
                .iter()
                .map(|a| a.at)
                .min()?;
            Some((first - *created).as_seconds_f64())
        })
        .fold(0.0_f64, f64::max);
    let mut failures = Vec::new();
    let mut attempts = 0;
    for (id, created) in rows {
        let Some(mut got) = by_id.remove(id.to_string().as_str()) else {
            failures.push(format!("{id} never arrived"));
            continue;
        };
        got.sort_by_key(|a| a.at);
        attempts += got.len();
        let oks = got.iter().filter(|a| a.status == 204).count();
        if oks != 1 || got.last().is_none_or(|a| a.status != 204) {
            failures.push(format!("{id} answered 2xx {oks} times, not once and last"));
        }
        if got.iter().any(|a| a.status == 204 && a.at < recovered) {
            failures.push(format!("{id} answered 2xx during the outage"));
        }
        let first = got[0].at;
        for pair in got.windows(2) {
            let gap = (pair[1].at - pair[0].at).as_seconds_f64();
            // GC reckons the failing time from the row's commit (≤ the first arrival); the
            // loop polls every 250 ms and a claim or a request takes a little more; and a due
            // retry may wait for a place as long as a first attempt did.
            let low = 0.8 * clamp((pair[0].at - first).as_seconds_f64()) - 0.05;
            let high = 1.2 * clamp((pair[0].at - *created).as_seconds_f64()) + 1.5 + queued;
            if gap < low || gap > high {
                failures.push(format!(
                    "{id}: a wait of {gap:.2} s after {:.2} s failing, outside {low:.2}..{high:.2}",
                    (pair[0].at - first).as_seconds_f64()
                ));
            }
        }
    }
    let strangers = by_id.len();
    if strangers > 0 {
        failures.push(format!("{strangers} ids arrived that no delivery row has"));
    }
    (failures, attempts, queued)
}

pub async fn webhooks_endpoints(stack: &mut Stack) -> Result<Outcome> {
    let mut outcome = Outcome::new("webhooks-endpoints");
    let admin = admin_token(stack).await?;
    tls(stack, &admin, &mut outcome).await?;

    // The outage starts with the flaky endpoint's webhook; the measured phases run during it.
    let recovers = Instant::now() + OUTAGE;
    let recovered_at = Utc::now() + OUTAGE;
    let flaky = Receiver::start(FLAKY_PORT, Behaviour::FailUntil(recovers)).await?;
    let flaky_hook = subscribe(
        stack,
        &admin,
        FLAKY_PORT,
        &["meeting.created", "meeting.ended"],
    )
    .await?;
    let healthy = Receiver::start(HEALTHY_PORT, Behaviour::Answer).await?;
    let events = ["meeting.created", "participant.joined", "meeting.ended"];
    let healthy_hook = subscribe(stack, &admin, HEALTHY_PORT, &events).await?;

    // The healthy endpoint alone (beside the flaky one), then with a hanging one beside it.
    let (calm, calm_missing) = measured_phase(
        stack,
        &healthy,
        healthy_hook,
        &mut outcome,
        "with a healthy endpoint",
    )
    .await?;
    let hanging = Receiver::start(HANGING_PORT, Behaviour::Hang).await?;
    let hanging_hook = subscribe(stack, &admin, HANGING_PORT, &events).await?;
    let (hung, hung_missing) = measured_phase(
        stack,
        &healthy,
        healthy_hook,
        &mut outcome,
        "with a hanging endpoint beside it",
    )
    .await?;
    let hanging_held = hanging.arrivals().len();
    outcome.notes.push(format!(
        "the healthy endpoint's delay from commit to arrival: p50 {:.0} ms, p99 {:.0} ms alone \
         ({} deliveries); p50 {:.0} ms, p99 {:.0} ms beside a hanging endpoint ({} deliveries, \
         the hanging one held {hanging_held} requests)",
        1000.0 * percentile(&calm, 50.0),
        1000.0 * percentile(&calm, 99.0),
        calm.len(),
        1000.0 * percentile(&hung, 50.0),
        1000.0 * percentile(&hung, 99.0),
        hung.len(),
    ));
    outcome.expect(
        calm_missing == 0 && hung_missing == 0,
        format!("healthy deliveries missing: {calm_missing} alone, {hung_missing} beside the hanging one"),
    );
    outcome.expect(
        percentile(&hung, 99.0) < WEBHOOK_TIMEOUT_SECS as f64,
        format!(
            "beside a hanging endpoint, the healthy one's p99 delay is {:.2} s: deliveries waited \
             for the hanging one's timeout ({WEBHOOK_TIMEOUT_SECS} s)",
            percentile(&hung, 99.0)
        ),
    );
    outcome.expect(
        hanging_held > 0,
        "the hanging endpoint was never sent anything".to_owned(),
    );
    unsubscribe(stack, hanging_hook).await?;
    hanging.stop();

    // The outage ends; everything the flaky endpoint was sent arrives, in backoff order.
    let start = Instant::now();
    tokio::time::sleep(recovers.saturating_duration_since(Instant::now())).await;
    let limit = Duration::from_secs(WEBHOOK_RETRY_MAX_SECS * 2 + 30);
    match drained(stack, flaky_hook, limit).await {
        Ok(took) => outcome.time(
            "the flaky endpoint's deliveries all delivered after its outage",
            took,
        ),
        Err(error) => outcome
            .failures
            .push(format!("{error:#} after {:?}", start.elapsed())),
    }
    let flaky_rows = rows(stack, flaky_hook).await?;
    let (failures, attempts, queued) = backoff_kept(&flaky_rows, &flaky.arrivals(), recovered_at);
    outcome.notes.push(format!(
        "the flaky endpoint: {} deliveries, {attempts} requests over its {} s outage and after; \
         a first attempt waited at most {queued:.2} s for a place",
        flaky_rows.len(),
        OUTAGE.as_secs()
    ));
    outcome.expect(
        failures.is_empty(),
        format!(
            "the flaky endpoint's deliveries broke a promise ({} in all): {:?}",
            failures.len(),
            failures.iter().take(5).collect::<Vec<_>>()
        ),
    );
    for hook in [flaky_hook, healthy_hook] {
        unsubscribe(stack, hook).await?;
    }
    flaky.stop();
    healthy.stop();

    // PostgreSQL cut off from GC for 5 s under a load, with requests in flight.
    let slow = Receiver::start(SLOW_PORT, Behaviour::Slow).await?;
    let slow_hook = subscribe(stack, &admin, SLOW_PORT, &events).await?;
    let failed = AtomicUsize::new(0);
    let cut = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        stack.pg_proxy.set(Fault::Reset);
        tokio::time::sleep(PG_CUT).await;
        stack.pg_proxy.set(Fault::Pass);
    };
    let start = Instant::now();
    tokio::join!(cycles(stack, PHASE_CYCLES * 2, &failed, |_| {}), cut);
    outcome.time(
        &format!(
            "{} cycles with PostgreSQL cut off for {} s",
            PHASE_CYCLES * 2,
            PG_CUT.as_secs()
        ),
        start.elapsed(),
    );
    let start = Instant::now();
    // Outcomes that could not be written are sent again when their lease ends (3 x timeout +
    // 30 s).
    match drained(
        stack,
        slow_hook,
        Duration::from_secs(WEBHOOK_TIMEOUT_SECS * 3 + 90),
    )
    .await
    {
        Ok(took) => outcome.time("every delivery delivered after PostgreSQL came back", took),
        Err(error) => outcome
            .failures
            .push(format!("{error:#} after {:?}", start.elapsed())),
    }
    let slow_rows = rows(stack, slow_hook).await?;
    let arrivals = slow.arrivals();
    let (_, missing) = delays(&slow_rows, &arrivals);
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for arrival in &arrivals {
        *seen.entry(arrival.id.as_str()).or_default() += 1;
    }
    let twice = seen.values().filter(|n| **n > 1).count();
    outcome.notes.push(format!(
        "PostgreSQL cut: {} deliveries, {} cycles failed during the cut, {twice} deliveries \
         arrived twice (their outcome could not be written; at least once allows it)",
        slow_rows.len(),
        failed.load(Ordering::Relaxed)
    ));
    outcome.expect(
        missing == 0,
        format!("{missing} deliveries never arrived after PostgreSQL came back"),
    );
    unsubscribe(stack, slow_hook).await?;
    slow.stop();
    Ok(outcome)
}
