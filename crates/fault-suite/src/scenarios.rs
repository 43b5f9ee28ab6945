//! The scenarios: each breaks one thing under the load, measures how long the stack takes to
//! recover, checks its own promises, and ends with the shared checker (`check.rs`).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use fault_proxy::Fault;
use reqwest::Method;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::api::{Answer, Api, lock};
use crate::check::{Report, check};
use crate::load::{Load, Shape, join};
use crate::process::wait_for;
use crate::stack::{Stack, User};

/// MC's `RECONNECT_GRACE` (its default, which the stack keeps).
const RECONNECT_GRACE: Duration = Duration::from_secs(30);
/// A refusal that the docs promise "within a few seconds" must come within this.
const PROMPT: Duration = Duration::from_secs(6);
/// GC's deadline on its calls to AC and to a controller (`MC_CALL_TIMEOUT_MS`, 3 s).
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// What a refusal may take over its deadline on this machine (a debug build, a busy CPU).
const SLACK: Duration = Duration::from_secs(1);

pub struct Outcome {
    pub name: &'static str,
    /// What was measured, in the order it happened: `(what, how long)`.
    pub timings: Vec<(String, Duration)>,
    pub notes: Vec<String>,
    pub report: Report,
    /// The scenario's own failed promises (the checker's are in `report.failures`).
    pub failures: Vec<String>,
}

impl Outcome {
    pub(crate) fn new(name: &'static str) -> Self {
        Self {
            name,
            timings: Vec::new(),
            notes: Vec::new(),
            report: Report::default(),
            failures: Vec::new(),
        }
    }

    pub(crate) fn time(&mut self, what: &str, took: Duration) {
        self.timings.push((what.to_owned(), took));
    }

    pub(crate) fn expect(&mut self, holds: bool, promise: String) {
        if !holds {
            self.failures.push(promise);
        }
    }

    pub fn passed(&self) -> bool {
        self.failures.is_empty() && self.report.failures.is_empty()
    }
}

/// The scenarios of a default run (the test command's), in order.
pub const ALL: [&str; 13] = [
    "postgres-stopped",
    "postgres-promoted",
    "redis-restarted-empty",
    "ac-stopped",
    "hung",
    "slow",
    "mc-killed",
    "mc-partitioned",
    "gc-replicas",
    "clock-skew",
    "redis-cluster-failover",
    "webhooks-gc-killed",
    "webhooks-endpoints",
];

pub async fn run(name: &str, stack: &mut Stack) -> Result<Outcome> {
    match name {
        "postgres-stopped" => postgres_stopped(stack).await,
        "postgres-promoted" => postgres_promoted(stack).await,
        "redis-restarted-empty" => redis_restarted_empty(stack).await,
        "ac-stopped" => ac_stopped(stack).await,
        "hung" => hung(stack).await,
        "slow" => slow(stack).await,
        "mc-killed" => mc_killed(stack).await,
        "mc-partitioned" => mc_partitioned(stack).await,
        "gc-replicas" => gc_replicas(stack).await,
        "clock-skew" => clock_skew(stack).await,
        "redis-cluster-failover" => redis_cluster_failover(stack).await,
        "webhooks-gc-killed" => crate::webhooks::webhooks_gc_killed(stack).await,
        "webhooks-endpoints" => crate::webhook_endpoints::webhooks_endpoints(stack).await,
        other => bail!("no scenario {other}; there are {ALL:?}"),
    }
}

fn api(stack: &Stack) -> Arc<Api> {
    Arc::new(Api::new(
        stack.http.clone(),
        stack.gcs.iter().map(|gc| gc.url()).collect(),
    ))
}

/// The load's usual shape: 20 rooms of 5 (a host, three seated, one waiting), each held 3–8 s.
fn churn() -> Shape {
    Shape {
        rooms: 20,
        per_room: 5,
        hold: Some((Duration::from_secs(3), Duration::from_secs(8))),
    }
}

async fn finish(mut outcome: Outcome, stack: &mut Stack, load: Load) -> Result<Outcome> {
    load.pause().await;
    // The reports the last calls caused (MC to GC) settle first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    outcome.report = check(stack, &load.api).await?;
    load.finish().await;
    Ok(outcome)
}

/// A user of the org that the load does not use, for the scenario's own probes.
fn prober(stack: &Stack, i: usize) -> User {
    stack.users[stack.users.len() - 1 - i].clone()
}

/// A meeting of the prober's, joined by its host (so assigned to a controller).
async fn probe_meeting(api: &Api, host: &User) -> Result<String> {
    let never = CancellationToken::new();
    let answer = api
        .retrying(
            "probe create",
            Method::POST,
            "",
            &host.token,
            Some(&serde_json::json!({"display_name": "Fault probe"})),
            Some(&Uuid::new_v4().to_string()),
            &never,
        )
        .await?;
    let code = answer.text("meeting_code")?;
    join(api, &code, host, &never).await?;
    Ok(code)
}

/// A meeting created by `host` (retried through 503s), ended at once; the create's answer.
async fn probe_create(api: &Api, host: &User, name: &str) -> Result<Answer> {
    let created = api
        .retrying(
            "probe create",
            Method::POST,
            "",
            &host.token,
            Some(&serde_json::json!({"display_name": name})),
            Some(&Uuid::new_v4().to_string()),
            &CancellationToken::new(),
        )
        .await?;
    if let Ok(code) = created.text("meeting_code") {
        end_probe(api, &code, host).await;
    }
    Ok(created)
}

/// Ends a probe's meeting (once: a failure is the next scenario's to see).
async fn end_probe(api: &Api, code: &str, host: &User) {
    let path = format!("/{code}/end");
    let _ = api
        .call("probe end", Method::POST, &path, &host.token, None, None)
        .await;
}

/// Waits, at most `limit`, until `host`'s join of `code` answers 200; the time it took.
async fn join_answers(
    api: &Arc<Api>,
    code: &str,
    host: &User,
    limit: Duration,
) -> Result<Duration> {
    let path = format!("/{code}/join");
    let start = Instant::now();
    while start.elapsed() < limit {
        let answer = api
            .call("probe join", Method::POST, &path, &host.token, None, None)
            .await;
        let wait = match answer {
            Ok(answer) if answer.status == 200 => return Ok(start.elapsed()),
            // As a client does, after the wait a refusal names (an open breaker's, the join
            // limiter's), but at least once a second so that the time to recover is measured
            // to a second: polling every 100 ms through a breaker's 5 s spent the prober's
            // join budget (20 at once) and the next probe met 429.
            Ok(answer) => answer.retry_after.map_or(PROBE_POLL, |wait| {
                wait.clamp(PROBE_POLL, Duration::from_secs(1))
            }),
            Err(_) => PROBE_POLL,
        };
        tokio::time::sleep(wait.min(limit.saturating_sub(start.elapsed()))).await;
    }
    bail!("a join answered 200: not within {limit:?}")
}

/// How often a probe asks again when it was not told how long to wait.
const PROBE_POLL: Duration = Duration::from_millis(100);

/// One call, timed.
async fn timed(
    api: &Api,
    op: &'static str,
    method: Method,
    path: &str,
    token: &str,
) -> Result<(Answer, Duration)> {
    let start = Instant::now();
    let answer = api.call(op, method, path, token, None, None).await?;
    Ok((answer, start.elapsed()))
}

fn is_unavailable(answer: &Answer) -> bool {
    answer.status == 503 && answer.retry_after.is_some() && answer.code() == "SERVICE_UNAVAILABLE"
}

/// Scenario 1: PostgreSQL stopped for 15 s under load, then started again.
async fn postgres_stopped(stack: &mut Stack) -> Result<Outcome> {
    let mut outcome = Outcome::new("postgres-stopped");
    let api = api(stack);
    let load = Load::start(Arc::clone(&api), &stack.users, churn())?;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let host = prober(stack, 0);

    let stopped = Instant::now();
    stack.pg.stop("fast").await?;
    let http = stack.http.clone();
    let watched: Vec<_> = stack.gcs.iter().chain([&stack.ac]).collect();
    let mut not_ready = Duration::ZERO;
    for service in &watched {
        let took = wait_for(Duration::from_secs(10), "readiness false", || async {
            !service.ready(&http).await
        })
        .await;
        match took {
            Ok(_) => not_ready = stopped.elapsed(),
            Err(error) => outcome.failures.push(format!("{}: {error}", service.name)),
        }
    }
    outcome.time("GC and AC not ready after the stop", not_ready);
    let (answer, took) = {
        let start = Instant::now();
        let answer = api
            .call(
                "probe create",
                Method::POST,
                "",
                &host.token,
                Some(&serde_json::json!({"display_name": "During the outage"})),
                Some(&Uuid::new_v4().to_string()),
            )
            .await?;
        (answer, start.elapsed())
    };
    outcome.time("a create during the outage answered", took);
    outcome.expect(
        is_unavailable(&answer) && took < PROMPT,
        format!(
            "a create during the outage: {} {} after {took:?}",
            answer.status, answer.body
        ),
    );
    let sign_in = stack
        .http
        .post(format!("{}/api/v1/auth/user/token", stack.ac.url()))
        .json(&serde_json::json!({"email": "f0@faults.test", "password": "wrong-but-irrelevant"}))
        .send()
        .await?;
    outcome.expect(
        sign_in.status() == 503 && sign_in.headers().contains_key("retry-after"),
        format!("a sign-in during the outage: {}", sign_in.status()),
    );
    let rest = Duration::from_secs(15).saturating_sub(stopped.elapsed());
    tokio::time::sleep(rest).await;

    stack.pg.start().await?;
    let started = Instant::now();
    for service in &watched {
        if let Err(error) = wait_for(Duration::from_secs(30), "ready again", || {
            service.ready(&http)
        })
        .await
        {
            outcome.failures.push(format!("{}: {error}", service.name));
        }
    }
    outcome.time(
        "GC and AC ready after PostgreSQL is back",
        started.elapsed(),
    );
    let created = probe_create(&api, &host, "After the outage").await?;
    outcome.expect(
        created.status == 201,
        format!("a create after the outage: {}", created.status),
    );
    outcome.time(
        "first create answered 201 after PostgreSQL is back",
        started.elapsed(),
    );
    tokio::time::sleep(Duration::from_secs(8)).await;
    finish(outcome, stack, load).await
}

/// Scenario 2: The primary crashes under load and its synchronous streaming replica is promoted; the
/// services' address (the proxy, standing for a virtual IP or a DNS name) moves to it.
async fn postgres_promoted(stack: &mut Stack) -> Result<Outcome> {
    let mut outcome = Outcome::new("postgres-promoted");
    let replica = stack
        .pg
        .replica(&stack.pg_replica_data, crate::stack::PG_REPLICA_PORT)
        .await?;
    // Synchronous: a commit is acknowledged once the replica has it, so the promotion loses
    // nothing acknowledged (docs/reliability.md says what asynchronous replication loses).
    sqlx::query("alter system set synchronous_standby_names = '*'")
        .execute(&stack.db)
        .await?;
    sqlx::query("select pg_reload_conf()")
        .execute(&stack.db)
        .await?;
    let db = stack.db.clone();
    let streaming = wait_for(Duration::from_secs(30), "the replica streaming, synchronous", || {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "select count(*) from pg_stat_replication where state = 'streaming' and sync_state = 'sync'",
            )
            .fetch_one(&db)
            .await
            .is_ok_and(|n| n == 1)
        }
    })
    .await?;
    outcome.time("replica streaming, synchronous", streaming);

    let api = api(stack);
    let load = Load::start(Arc::clone(&api), &stack.users, churn())?;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let host = prober(stack, 0);
    let crashed = Instant::now();
    stack.pg.stop("immediate").await?;
    replica.promote().await?;
    outcome.time("replica promoted after the crash", crashed.elapsed());
    stack
        .pg_proxy
        .set_upstream(crate::stack::addr_of(crate::stack::PG_REPLICA_PORT));
    let moved = Instant::now();
    // The promoted replica is the primary from now on, for the checker and the next scenarios.
    let old = std::mem::replace(&mut stack.pg, replica);
    drop(old);
    stack.db.close().await;
    stack.db = crate::stack::direct_pool(crate::stack::PG_REPLICA_PORT).await?;

    let created = probe_create(&api, &host, "After the promotion").await?;
    outcome.expect(
        created.status == 201,
        format!("a create after the promotion: {}", created.status),
    );
    outcome.time(
        "first create answered 201 after the address moved",
        moved.elapsed(),
    );
    let http = stack.http.clone();
    let watched: Vec<_> = stack.gcs.iter().chain([&stack.ac]).collect();
    for service in &watched {
        if let Err(error) = wait_for(Duration::from_secs(30), "ready on the new primary", || {
            service.ready(&http)
        })
        .await
        {
            outcome.failures.push(format!("{}: {error}", service.name));
        }
    }
    outcome.time("GC and AC ready on the new primary", moved.elapsed());
    tokio::time::sleep(Duration::from_secs(8)).await;
    finish(outcome, stack, load).await
}

/// Scenario 3: Redis restarted empty (no persistence) under live rooms.
async fn redis_restarted_empty(stack: &mut Stack) -> Result<Outcome> {
    let mut outcome = Outcome::new("redis-restarted-empty");
    let api = api(stack);
    let load = Load::start(Arc::clone(&api), &stack.users, churn())?;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let sockets = Arc::clone(&load.sockets);
    let before = lock(&sockets.returns).len();
    let restored_before = counter_sum(stack, "gc_lost_seats_total", "outcome=\"restored\"").await;
    stack.redis.restart_empty().await?;
    let restarted = Instant::now();
    let http = stack.http.clone();
    let mcs_ready = wait_for(Duration::from_secs(30), "every MC ready again", || {
        let checks = stack
            .mcs
            .iter()
            .map(|mc| mc.ready(&http))
            .collect::<Vec<_>>();
        async move {
            futures::future::join_all(checks)
                .await
                .into_iter()
                .all(|r| r)
        }
    })
    .await?;
    outcome.time("every MC ready again", mcs_ready);
    // Sockets of rooms that lived through it are told to reconnect, join again and are back.
    let back = wait_for(Duration::from_secs(60), "every lost socket back", || {
        let sockets = Arc::clone(&sockets);
        async move { lock(&sockets.returns).len() > before && lock(&sockets.away).is_empty() }
    })
    .await;
    match back {
        Ok(_) => outcome.time("every lost socket back in its room", restarted.elapsed()),
        Err(error) => outcome
            .failures
            .push(format!("{error}: {} away", lock(&sockets.away).len())),
    }
    let returns = lock(&sockets.returns)[before..].to_vec();
    let mut took: Vec<Duration> = returns.iter().map(|r| r.took).collect();
    took.sort_unstable();
    if let Some(p99) = took.get((took.len() * 99).div_ceil(100).saturating_sub(1)) {
        outcome.time("back in the room, p99", *p99);
        outcome.expect(
            *p99 < RECONNECT_GRACE,
            format!("p99 back {p99:?}, over the reconnect grace"),
        );
    }
    outcome
        .notes
        .push(format!("{} sockets came back", returns.len()));
    // The admitted ones were seated again by their join, not put in the lobby.
    let restored =
        counter_sum(stack, "gc_lost_seats_total", "outcome=\"restored\"").await - restored_before;
    outcome
        .notes
        .push(format!("{restored} lost seats given back at the join"));
    outcome.expect(
        restored > 0.0,
        "no seat given back after Redis lost the rooms".to_owned(),
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    finish(outcome, stack, load).await
}

/// Scenario 5: AC stopped for 2 minutes under load, then started again.
async fn ac_stopped(stack: &mut Stack) -> Result<Outcome> {
    let mut outcome = Outcome::new("ac-stopped");
    let api = api(stack);
    let load = Load::start(Arc::clone(&api), &stack.users, churn())?;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let host = prober(stack, 0);
    let code = probe_meeting(&api, &host).await?;
    let sockets = Arc::clone(&load.sockets);

    stack.ac.stop().await?;
    let stopped = Instant::now();
    let mut first = true;
    while stopped.elapsed() < Duration::from_secs(120) {
        // Verifying user tokens needs only the keys GC holds: reads and creates go on.
        let (read, read_took) = timed(
            &api,
            "probe get",
            Method::GET,
            &format!("/{code}"),
            &host.token,
        )
        .await?;
        outcome.expect(
            read.status == 200 && read_took < PROMPT,
            format!(
                "AC stopped: a read answered {} after {read_took:?}",
                read.status
            ),
        );
        // A join needs a meeting token: refused at once, with Retry-After.
        let (joined, join_took) = timed(
            &api,
            "probe join",
            Method::POST,
            &format!("/{code}/join"),
            &host.token,
        )
        .await?;
        outcome.expect(
            is_unavailable(&joined) && join_took < PROMPT,
            format!(
                "AC stopped: a join answered {} {} after {join_took:?}",
                joined.status, joined.body
            ),
        );
        let gcs_ready =
            futures::future::join_all(stack.gcs.iter().map(|gc| gc.ready(&stack.http))).await;
        let mcs_ready =
            futures::future::join_all(stack.mcs.iter().map(|mc| mc.ready(&stack.http))).await;
        outcome.expect(
            gcs_ready.iter().chain(&mcs_ready).all(|r| *r),
            format!("AC stopped: GC ready {gcs_ready:?}, MC ready {mcs_ready:?}"),
        );
        if first {
            outcome.time("AC stopped: a read answered", read_took);
            outcome.time("AC stopped: a join refused", join_took);
            first = false;
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    // What GCMeetingTokensUnavailable reads: batches that got no tokens, and none that did.
    let failed = counter_sum(
        stack,
        "gc_ac_meeting_token_batches_total",
        "outcome=\"unreachable\"",
    )
    .await;
    outcome.notes.push(format!(
        "gc_ac_meeting_token_batches_total{{outcome=\"unreachable\"}} {failed} over both GCs"
    ));
    outcome.expect(
        failed > 0.0,
        "AC stopped: no unreachable meeting-token batch counted".to_owned(),
    );
    // Sockets opened before the stop were never asked for anything AC gives: they stayed.
    let greetings = sockets.greetings.load(std::sync::atomic::Ordering::Relaxed);
    outcome.notes.push(format!(
        "{greetings} socket greetings so far, {} away at the end of the outage",
        lock(&sockets.away).len()
    ));

    stack.ac.start()?;
    let http = stack.http.clone();
    let started = Instant::now();
    stack.ac.wait_ready(&http, Duration::from_secs(60)).await?;
    outcome.time("AC ready after its start", started.elapsed());
    let back = join_answers(&api, &code, &host, Duration::from_secs(30)).await;
    match back {
        Ok(_) => outcome.time(
            "first join answered 200 after AC's start",
            started.elapsed(),
        ),
        Err(error) => outcome.failures.push(error.to_string()),
    }
    end_probe(&api, &code, &host).await;
    // The rooms the load fills next need joins, admits and sockets: all of it works again.
    tokio::time::sleep(Duration::from_secs(10)).await;
    finish(outcome, stack, load).await
}

/// The sum over the GC replicas of the samples of `metric` whose labels contain `label`.
async fn counter_sum(stack: &Stack, metric: &str, label: &str) -> f64 {
    let mut sum = 0.0;
    for gc in &stack.gcs {
        let url = format!("http://127.0.0.1:{}/metrics", gc.ops_port);
        let Ok(response) = stack.http.get(url).send().await else {
            continue;
        };
        let Ok(text) = response.text().await else {
            continue;
        };
        sum += text
            .lines()
            .filter(|l| l.starts_with(metric) && l.contains(label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
    }
    sum
}

/// Scenario 11: A dependency that hangs (SIGSTOP for 10 s, then SIGCONT): AC, Redis, one MC.
async fn hung(stack: &mut Stack) -> Result<Outcome> {
    let mut outcome = Outcome::new("hung");
    let api = api(stack);
    let load = Load::start(Arc::clone(&api), &stack.users, churn())?;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let host = prober(stack, 0);
    let code = probe_meeting(&api, &host).await?;
    let owner = stack.mc_index(&stack.owner_of(&code).await?)?;

    for target in ["ac", "redis", "mc"] {
        let pid = match target {
            "ac" => stack.ac.pid(),
            "redis" => stack.redis.pid(),
            _ => stack.mcs[owner].pid(),
        };
        let Some(pid) = pid else {
            bail!("{target} is not running")
        };
        crate::process::signal(pid, "STOP").await?;
        let stopped = Instant::now();
        tokio::time::sleep(Duration::from_secs(1)).await;
        // A join needs a meeting token (AC) and the room (its MC, and that MC's Redis).
        let (answer, took) = timed(
            &api,
            "probe join",
            Method::POST,
            &format!("/{code}/join"),
            &host.token,
        )
        .await?;
        outcome.time(&format!("{target} hung: a join refused"), took);
        // GC sends a controller's joins one call at a time: a join queued behind a call that
        // waits out its timeout waits two timeouts at most (a join sent to a controller is
        // always waited for, so that a seat it gets is recorded). AC's meeting tokens are
        // batched one call at a time too, but each grant has the timeout from when it was
        // queued. Redis under the controller: its command deadline (2 s) within GC's call.
        let within = if target == "mc" {
            2 * CALL_TIMEOUT
        } else {
            CALL_TIMEOUT
        } + SLACK;
        outcome.expect(
            is_unavailable(&answer) && took < within,
            format!(
                "{target} hung: a join answered {} {} after {took:?}",
                answer.status, answer.body
            ),
        );
        // Reading a meeting needs neither AC nor the room (its counts fall back to PostgreSQL).
        let (answer, took) = timed(
            &api,
            "probe get",
            Method::GET,
            &format!("/{code}"),
            &host.token,
        )
        .await?;
        outcome.time(&format!("{target} hung: a read answered"), took);
        outcome.expect(
            answer.status == 200 && took < PROMPT,
            format!(
                "{target} hung: a read answered {} after {took:?}",
                answer.status
            ),
        );
        if target == "redis" {
            let ready = stack.mcs[owner].ready(&stack.http).await;
            outcome.expect(
                !ready,
                "Redis hung: the controller still says it is ready".to_owned(),
            );
        }
        let gcs_ready =
            futures::future::join_all(stack.gcs.iter().map(|gc| gc.ready(&stack.http))).await;
        outcome.expect(
            gcs_ready.iter().all(|r| *r),
            format!(
                "{target} hung: GC not ready ({gcs_ready:?}), though it needs no {target} to serve"
            ),
        );
        tokio::time::sleep(Duration::from_secs(10).saturating_sub(stopped.elapsed())).await;
        crate::process::signal(pid, "CONT").await?;
        let resumed = Instant::now();
        let back = join_answers(&api, &code, &host, Duration::from_secs(30)).await;
        match back {
            Ok(_) => outcome.time(
                &format!("{target} resumed: first join answered 200"),
                resumed.elapsed(),
            ),
            Err(error) => outcome.failures.push(format!("{target}: {error}")),
        }
    }
    end_probe(&api, &code, &host).await;
    finish(outcome, stack, load).await
}

/// The added latency of `slow`, per round trip (the proxies delay each direction by half).
const ADDED: Duration = Duration::from_millis(200);

/// The round trips to PostgreSQL or Redis, one after the other, on the longest path of each
/// operation of the load (docs/reliability.md, "Slow dependencies"): a create is one statement;
/// a meeting's first join reads the meeting, assigns it (one statement), reads its settings,
/// creates the room, seats the host and records the seat; an admit reads the meeting, seats the
/// person and records it; a leave reads the meeting, ends the seat and records it; an end reads
/// the meeting, ends it with everything it closes (one statement) and deletes the room.
const ROUND_TRIPS: [(&str, u32); 5] = [
    ("create", 1),
    ("join", 6),
    ("admit", 3),
    ("leave", 3),
    ("end", 3),
];

/// How much an operation's p99 may grow under `slow`, per round trip on its path and per
/// added round-trip latency: the round trip itself, and a wait behind at most one statement or
/// call ahead of it in the queues that send one at a time (GC's shared statements, its calls
/// to a controller), with room for a busy machine.
const P99_GROWTH_PER_ROUND_TRIP: u32 = 3;

/// The least growth allowed, in added round-trip latencies: the p99 of an operation the load
/// makes a hundred times in the window is its slowest one or two, so one short operation that
/// waited behind a batch and for a busy core must not fail the scenario.
const P99_GROWTH_FLOOR: u32 = 5;

/// Scenario 10: 200 ms more per round trip to PostgreSQL and to Redis, under load: nothing is
/// refused, and each operation's p99 grows by its round trips times the added latency (at
/// most [`P99_GROWTH_PER_ROUND_TRIP`] times, or [`P99_GROWTH_FLOOR`] round trips), not by the
/// request timeout.
async fn slow(stack: &mut Stack) -> Result<Outcome> {
    let mut outcome = Outcome::new("slow");
    let api = api(stack);
    let load = Load::start(Arc::clone(&api), &stack.users, churn())?;
    tokio::time::sleep(Duration::from_secs(15)).await;
    let before = latencies(&api);
    let refused_before = unavailable(&api);
    api.stats.reset_latencies();
    let delay = Fault::Delay(ADDED / 2);
    stack.pg_proxy.set(delay);
    for proxy in &stack.redis_proxies {
        proxy.set(delay);
    }
    tokio::time::sleep(Duration::from_secs(20)).await;
    let during = latencies(&api);
    let refused = unavailable(&api) - refused_before;
    stack.pg_proxy.set(Fault::Pass);
    for proxy in &stack.redis_proxies {
        proxy.set(Fault::Pass);
    }
    for ((op, p50, p99), (_, slow50, slow99)) in before.iter().zip(&during) {
        let trips = ROUND_TRIPS
            .iter()
            .find(|(name, _)| name == op)
            .map_or(1, |(_, trips)| *trips);
        let growth = slow99.saturating_sub(*p99);
        outcome.notes.push(format!(
            "{op}: p50 {} → {} ms, p99 {} → {} ms: grew {:.1} × {} round trips × {} ms",
            p50.as_millis(),
            slow50.as_millis(),
            p99.as_millis(),
            slow99.as_millis(),
            growth.as_secs_f64() / (ADDED * trips).as_secs_f64(),
            trips,
            ADDED.as_millis()
        ));
        outcome.time(&format!("{op} p99 with 200 ms added"), *slow99);
        let allowed = ADDED * (trips * P99_GROWTH_PER_ROUND_TRIP).max(P99_GROWTH_FLOOR);
        outcome.expect(
            *slow99 > Duration::ZERO && growth <= allowed,
            format!(
                "{op}: p99 grew by {} ms (to {} ms), more than {} ms ({trips} round trips of {} ms: {P99_GROWTH_PER_ROUND_TRIP} times each, at least {P99_GROWTH_FLOOR})",
                growth.as_millis(),
                slow99.as_millis(),
                allowed.as_millis(),
                ADDED.as_millis()
            ),
        );
    }
    outcome.expect(
        refused == 0,
        format!("{refused} calls refused with 503 while only slow"),
    );
    finish(outcome, stack, load).await
}

fn latencies(api: &Api) -> Vec<(&'static str, Duration, Duration)> {
    ["create", "join", "admit", "leave", "end"]
        .into_iter()
        .map(|op| {
            (
                op,
                api.stats.percentile(op, 0.5).unwrap_or_default(),
                api.stats.percentile(op, 0.99).unwrap_or_default(),
            )
        })
        .collect()
}

fn unavailable(api: &Api) -> u64 {
    lock(&api.stats.answers)
        .iter()
        .filter(|(k, _)| k.ends_with(" 503"))
        .map(|(_, v)| *v)
        .sum()
}

/// Scenario 6: An MC killed (SIGKILL) with 200 sockets in 20 rooms.
async fn mc_killed(stack: &mut Stack) -> Result<Outcome> {
    let mut outcome = Outcome::new("mc-killed");
    let api = api(stack);
    let shape = Shape {
        rooms: 20,
        per_room: 10,
        hold: None,
    };
    let load = Load::start(Arc::clone(&api), &stack.users, shape)?;
    let sockets = Arc::clone(&load.sockets);
    let all = (shape.rooms * shape.per_room) as u64;
    let greeted = wait_for(Duration::from_secs(120), "every socket greeted", || {
        let sockets = Arc::clone(&sockets);
        async move { sockets.greetings.load(std::sync::atomic::Ordering::Relaxed) >= all }
    })
    .await?;
    outcome.time("200 sockets in 20 rooms greeted", greeted);
    // The speakers' runs complete (300 ms) and every room has its active speaker.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let rooms = lock(&load.live).clone();
    let mut owners = vec![Vec::new(); stack.mcs.len()];
    for room in &rooms {
        owners[stack.mc_index(&stack.owner_of(&room.code).await?)?].push(room.clone());
    }
    let victim = (0..owners.len())
        .max_by_key(|i| owners[*i].len())
        .unwrap_or(0);
    let moved = owners[victim].clone();
    outcome.notes.push(format!(
        "rooms per controller {:?}; mc-{victim} killed with {} rooms",
        owners.iter().map(Vec::len).collect::<Vec<_>>(),
        moved.len()
    ));
    stack.mcs[victim].kill().await?;
    let killed = Instant::now();
    let expected = moved.len() * shape.per_room;
    let back = wait_for(Duration::from_secs(90), "every socket of the dead controller back", || {
        let sockets = Arc::clone(&sockets);
        async move { lock(&sockets.returns).len() >= expected && lock(&sockets.away).is_empty() }
    })
    .await;
    if let Err(error) = back {
        outcome.failures.push(format!(
            "{error}: {} of {expected} back",
            lock(&sockets.returns).len()
        ));
    }
    outcome.time("last socket back", killed.elapsed());
    let returns = lock(&sockets.returns).clone();
    let mut took: Vec<Duration> = returns.iter().map(|r| r.took).collect();
    took.sort_unstable();
    if let (Some(p50), Some(p99)) = (
        took.get(took.len() / 2),
        took.get((took.len() * 99).div_ceil(100).saturating_sub(1)),
    ) {
        outcome.time("back in the room, p50", *p50);
        outcome.time("back in the room, p99", *p99);
        outcome.expect(
            *p99 < RECONNECT_GRACE,
            format!("p99 back {p99:?}, over the reconnect grace"),
        );
    }
    for room in &moved {
        let speaker = room.members[1].id.to_string();
        for r in returns.iter().filter(|r| r.code == room.code) {
            let last = r.user == room.members[shape.per_room - 1].id;
            if last {
                continue; // waiting in the lobby: greeted with lobby.waiting
            }
            outcome.expect(
                r.participants == shape.per_room - 1,
                format!(
                    "{}: {} back with {} participants, not {}",
                    room.code,
                    r.user,
                    r.participants,
                    shape.per_room - 1
                ),
            );
            outcome.expect(
                r.active_speaker.as_deref() == Some(speaker.as_str()),
                format!(
                    "{}: {} back with speaker {:?}, not {speaker}",
                    room.code, r.user, r.active_speaker
                ),
            );
            if r.user == room.host.id {
                outcome.expect(
                    r.lobby == Some(1),
                    format!("{}: the host back with lobby {:?}", room.code, r.lobby),
                );
            }
        }
    }
    // The killed controller is started again, as its Deployment would.
    stack.mcs[victim].start()?;
    let http = stack.http.clone();
    stack.mcs[victim]
        .wait_ready(&http, Duration::from_secs(60))
        .await?;
    finish(outcome, stack, load).await
}

/// Scenario 7: An MC partitioned from GC and Redis for 20 s under load (its connections to both, and
/// GC's to it, hold everything: what a network does to established connections while packets
/// are lost, before TCP gives up), then healed. Its people's sockets stay connected to it.
async fn mc_partitioned(stack: &mut Stack) -> Result<Outcome> {
    let mut outcome = Outcome::new("mc-partitioned");
    let api = api(stack);
    // Rooms that stay (their people do not leave): whatever moves, moves because of the fault.
    let shape = Shape {
        hold: None,
        ..churn()
    };
    let load = Load::start(Arc::clone(&api), &stack.users, shape)?;
    let sockets = Arc::clone(&load.sockets);
    let all = (shape.rooms * shape.per_room) as u64;
    wait_for(Duration::from_secs(60), "every socket greeted", || {
        let sockets = Arc::clone(&sockets);
        async move { sockets.greetings.load(std::sync::atomic::Ordering::Relaxed) >= all }
    })
    .await?;
    let rooms = lock(&load.live).clone();
    let mut owned = vec![0; stack.mcs.len()];
    for room in &rooms {
        if let Ok(owner) = stack.owner_of(&room.code).await {
            owned[stack.mc_index(&owner)?] += 1;
        }
    }
    let victim = (0..owned.len()).max_by_key(|i| owned[*i]).unwrap_or(0);
    let victim_id = format!("convene-mc-{victim}");
    let mut theirs = Vec::new();
    for room in &rooms {
        if stack
            .owner_of(&room.code)
            .await
            .is_ok_and(|o| o == victim_id)
        {
            theirs.push(room.code.clone());
        }
    }
    let victim_url = format!("127.0.0.1:{}", stack.mcs[victim].http_port);
    outcome.notes.push(format!(
        "rooms per controller {owned:?}; mc-{victim} partitioned"
    ));
    let proxies = [
        &stack.redis_proxies[victim],
        &stack.mc_grpc_proxies[victim],
        &stack.gc_grpc_proxies[victim],
    ];
    for proxy in proxies {
        proxy.set(Fault::Stall);
    }
    let cut = Instant::now();
    // Someone new joins one of its rooms once its heartbeat is late (15 s): GC gives that room
    // to another controller, whatever the partitioned one still serves.
    tokio::time::sleep(Duration::from_secs(16)).await;
    if let Some(code) = theirs.first() {
        let newcomer = prober(stack, 1);
        let joined = join(&api, code, &newcomer, &CancellationToken::new()).await;
        outcome.expect(
            joined.is_ok(),
            format!("a newcomer's join during the partition: {:?}", joined.err()),
        );
    }
    tokio::time::sleep(Duration::from_secs(20).saturating_sub(cut.elapsed())).await;
    let mut moved = 0;
    for code in &theirs {
        if stack.owner_of(code).await.is_ok_and(|o| o != victim_id) {
            moved += 1;
        }
    }
    outcome.notes.push(format!(
        "{moved} of its {} rooms given to another controller during the partition",
        owned[victim]
    ));
    for proxy in proxies {
        proxy.set(Fault::Pass);
    }
    let healed = Instant::now();
    // No socket stays on the old controller for a room another one owns now: it would be
    // served the new owner's events by a controller that can no longer change the room.
    let stale = wait_for(
        Duration::from_secs(30),
        "no socket left on the fenced controller",
        || {
            let sockets = Arc::clone(&sockets);
            let victim_url = victim_url.clone();
            let db = stack.db.clone();
            let victim_id = victim_id.clone();
            async move {
                let on: Vec<String> = lock(&sockets.on)
                    .values()
                    .filter(|(_, url)| url.contains(&victim_url))
                    .map(|(code, _)| code.clone())
                    .collect();
                for code in on {
                    let owner: Option<String> = sqlx::query_scalar(
                        "select a.controller_id from meeting_assignments a
                       join meetings m on m.id = a.meeting_id where m.meeting_code = $1",
                    )
                    .bind(&code)
                    .fetch_optional(&db)
                    .await
                    .ok()
                    .flatten();
                    if owner.is_some_and(|o| o != victim_id) {
                        return false;
                    }
                }
                true
            }
        },
    )
    .await;
    match stale {
        Ok(_) => outcome.time(
            "no socket on the fenced controller after the heal",
            healed.elapsed(),
        ),
        Err(error) => outcome.failures.push(error.to_string()),
    }
    let http = stack.http.clone();
    match stack.mcs[victim]
        .wait_ready(&http, Duration::from_secs(30))
        .await
    {
        Ok(took) => outcome.time("the partitioned controller ready after the heal", took),
        Err(error) => outcome.failures.push(error.to_string()),
    }
    // Everyone keeps their place: once the reconnect grace of the seats the new owners found
    // has passed, every person of the load is still greeted in their room (a seat whose
    // socket sat on the partitioned controller would have been given up as connection_lost).
    tokio::time::sleep(RECONNECT_GRACE.saturating_sub(healed.elapsed()) + Duration::from_secs(5))
        .await;
    let present = lock(&sockets.on).len() as u64;
    outcome.expect(
        present == all,
        format!("{present} of {all} people still in their rooms after the partition and the grace"),
    );
    outcome.notes.push(format!(
        "close codes sent to the load's sockets: {:?}",
        lock(&sockets.closes)
    ));
    finish(outcome, stack, load).await
}

/// Scenario 8, two GC replicas: 500 parallel creates over both for an org with a limit of 50,
/// every key sent twice; then housekeeping expires them, once each.
async fn gc_replicas(stack: &mut Stack) -> Result<Outcome> {
    let mut outcome = Outcome::new("gc-replicas");
    let api = api(stack);
    let users = stack.limit_users.clone();
    let start = Instant::now();
    let calls = (0..500).map(|i| {
        let api = Arc::clone(&api);
        let user = users[(i / 2) % users.len()].clone();
        // Requests 2k and 2k+1 share a key and a body, and go to different replicas.
        let key = format!("fault-suite-{}", i / 2);
        async move {
            let body = serde_json::json!({"display_name": format!("Limit {}", i / 2)});
            let answer = api
                .call(
                    "create",
                    Method::POST,
                    "",
                    &user.token,
                    Some(&body),
                    Some(&key),
                )
                .await;
            (i / 2, answer)
        }
    });
    let answers = futures::future::join_all(calls).await;
    outcome.time("500 creates answered", start.elapsed());
    let mut by_key: std::collections::HashMap<usize, Vec<String>> =
        std::collections::HashMap::new();
    let mut statuses = std::collections::BTreeMap::new();
    for (key, answer) in answers {
        let answer = answer?;
        *statuses.entry(answer.status).or_insert(0_u32) += 1;
        if answer.status == 201 {
            by_key
                .entry(key)
                .or_default()
                .push(answer.text("meeting_code")?);
        } else if !(answer.status == 403 && answer.code() == "ORG_MEETING_LIMIT_REACHED"
            || answer.status == 409)
        {
            outcome.failures.push(format!(
                "a create answered {} {}",
                answer.status, answer.body
            ));
        }
    }
    outcome.notes.push(format!("statuses {statuses:?}"));
    for (key, codes) in &by_key {
        outcome.expect(
            codes.windows(2).all(|w| w[0] == w[1]),
            format!("key {key} answered two meetings: {codes:?}"),
        );
    }
    let stored: i64 = sqlx::query_scalar("select count(*) from meetings where org_id = $1")
        .bind(stack.limit_org_id)
        .fetch_one(&stack.db)
        .await?;
    outcome.expect(
        stored == crate::stack::LIMIT_MEETINGS && by_key.len() as i64 == stored,
        format!(
            "{stored} meetings stored and {} keys answered 201, for a limit of {}",
            by_key.len(),
            crate::stack::LIMIT_MEETINGS
        ),
    );

    // Nobody joins them: both replicas' housekeeping expires them, and only one records it.
    let expired = wait_for(
        Duration::from_secs(crate::stack::SCHEDULED_TTL_SECS + 30),
        "every scheduled meeting expired",
        || {
            let db = stack.db.clone();
            let org = stack.limit_org_id;
            async move {
                sqlx::query_scalar::<_, i64>(
                    "select count(*) from meetings where org_id = $1 and status <> 'ended'",
                )
                .bind(org)
                .fetch_one(&db)
                .await
                .is_ok_and(|n| n == 0)
            }
        },
    )
    .await;
    if let Err(error) = expired {
        outcome.failures.push(error.to_string());
    }
    outcome.time("all expired by housekeeping", start.elapsed());
    let twice: Vec<(String, i64)> = sqlx::query_as(
        "select a.resource_id, count(*) from audit_logs a
          where a.org_id = $1 and a.action = 'meeting_ended' group by 1 having count(*) <> 1",
    )
    .bind(stack.limit_org_id)
    .fetch_all(&stack.db)
    .await?;
    outcome.expect(
        twice.is_empty(),
        format!("meetings ended more or less than once: {twice:?}"),
    );
    let ended: i64 = sqlx::query_scalar(
        "select count(distinct resource_id) from audit_logs where org_id = $1 and action = 'meeting_ended'",
    )
    .bind(stack.limit_org_id)
    .fetch_one(&stack.db)
    .await?;
    outcome.expect(
        ended == stored,
        format!("{ended} meeting_ended rows for {stored} meetings"),
    );
    outcome.report = check(stack, &api).await?;
    Ok(outcome)
}

/// Scenario 9: AC's clock off by ±90 s and +30 s (libfaketime; monotonic time left alone, so its
/// timers run normally): the tokens it signs are accepted by GC within the 60 s leeway of
/// `iat` and `exp` (docs/auth.md), and refused beyond it with `iat_future` in GC's log.
async fn clock_skew(stack: &mut Stack) -> Result<Outcome> {
    let mut outcome = Outcome::new("clock-skew");
    let api = api(stack);
    let http = stack.http.clone();
    // Preloaded into AC itself (the `faketime` program would run it as its child, and a stop
    // would reach only the wrapper).
    let library = libfaketime()?;
    for (offset, accepted) in [("+90s", false), ("+30s", true), ("-90s", true)] {
        stack.ac.stop().await?;
        stack.ac.start_with(&[
            ("LD_PRELOAD", library.as_str()),
            ("FAKETIME", offset),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ])?;
        stack.ac.wait_ready(&http, Duration::from_secs(60)).await?;
        let logged_before = log_mentions(stack, "iat_future");
        let user = crate::stack::sign_in(&http, "f0@faults.test".to_owned()).await?;
        let answer = api
            .call(
                "probe create",
                Method::POST,
                "",
                &user.token,
                Some(&serde_json::json!({"display_name": format!("AC at {offset}")})),
                Some(&Uuid::new_v4().to_string()),
            )
            .await?;
        outcome.notes.push(format!(
            "AC at {offset}: a create with its token answered {}",
            answer.status
        ));
        if accepted {
            outcome.expect(
                answer.status == 201,
                format!("AC at {offset}: {} {}", answer.status, answer.body),
            );
            if let Ok(code) = answer.text("meeting_code") {
                end_probe(&api, &code, &user).await;
            }
        } else {
            outcome.expect(
                answer.status == 401,
                format!("AC at {offset}: {} {}", answer.status, answer.body),
            );
            // The log line says why, for whoever is paged.
            let said = wait_for(Duration::from_secs(5), "iat_future in GC's log", || {
                let now = log_mentions(stack, "iat_future");
                async move { now > logged_before }
            })
            .await;
            outcome.expect(
                said.is_ok(),
                format!("AC at {offset}: no iat_future in GC's log"),
            );
        }
    }
    stack.ac.stop().await?;
    stack.ac.start()?;
    stack.ac.wait_ready(&http, Duration::from_secs(60)).await?;
    outcome.report = check(stack, &api).await?;
    Ok(outcome)
}

/// libfaketime's library: FAULT_LIBFAKETIME (scripts/fault-tests.sh finds it), or where
/// Debian's `faketime` package puts it.
fn libfaketime() -> Result<String> {
    if let Ok(path) = std::env::var("FAULT_LIBFAKETIME")
        && !path.is_empty()
    {
        // A preload that is not there is only a warning of the loader: AC would run on the
        // true clock, and the scenario would fail for the wrong reason.
        if !Path::new(&path).exists() {
            bail!("FAULT_LIBFAKETIME={path} does not exist (apt-get install faketime)");
        }
        return Ok(path);
    }
    let found = std::fs::read_dir("/usr/lib")?
        .filter_map(Result::ok)
        .map(|dir| dir.path().join("faketime/libfaketime.so.1"))
        .find(|path| path.exists());
    match found {
        Some(path) => Ok(path.display().to_string()),
        None => bail!("libfaketime.so.1 not found (apt-get install faketime)"),
    }
}

/// How many lines of the GCs' logs mention `needle`.
fn log_mentions(stack: &Stack, needle: &str) -> usize {
    stack
        .gcs
        .iter()
        .filter_map(|gc| std::fs::read_to_string(gc.log()).ok())
        .map(|log| log.lines().filter(|l| l.contains(needle)).count())
        .sum()
}

/// Rooms of the admission storm, their seats, and the people waiting in each.
const STORM_ROOMS: usize = 4;
const STORM_SEATS: usize = 6;
const STORM_WAITING: usize = 10;
/// The storm's people: after the load's 100, before the probers at the end.
const STORM_FIRST_USER: usize = 120;

/// Scenario 4: the controllers on a Redis Cluster (three primaries, a replica each); the
/// primary holding the most rooms of an admission storm is SIGKILLed while every host admits
/// everyone waiting at once, under the usual load. After the failover: no room over its
/// seats, every admission answered 200 seated in Redis with its visit (the checker), the
/// refused ones 409 `MEETING_FULL`.
async fn redis_cluster_failover(stack: &mut Stack) -> Result<Outcome> {
    let mut outcome = Outcome::new("redis-cluster-failover");
    let started = Instant::now();
    let mut cluster = crate::servers::RedisCluster::start(
        &stack.dir.join("redis-cluster"),
        crate::stack::CLUSTER_PORT,
        crate::stack::CLUSTER_BUS_PORT,
    )
    .await?;
    outcome.time(
        "cluster formed (3 primaries, 3 replicas)",
        started.elapsed(),
    );
    // The controllers move onto the cluster with no room live: a room of the single Redis
    // would be lost by the move, which is not this scenario's fault.
    let ended = stack.end_live_meetings().await?;
    let urls = cluster.urls();
    stack
        .restart_mcs(&[("REDIS_CLUSTER_URLS", &urls.join(","))])
        .await?;
    stack.room_store = crate::stack::RoomStore::Cluster(urls);
    outcome.notes.push(format!(
        "{ended} meetings ended before the controllers moved onto the cluster"
    ));

    let result = storm_and_failover(stack, &mut cluster, outcome).await;
    // Back onto the suite's Redis for any scenario after this one.
    stack.end_live_meetings().await?;
    stack.room_store = crate::stack::RoomStore::Single(stack.redis.url());
    stack.restart_mcs(&[]).await?;
    result
}

async fn storm_and_failover(
    stack: &mut Stack,
    cluster: &mut crate::servers::RedisCluster,
    mut outcome: Outcome,
) -> Result<Outcome> {
    let api = api(stack);
    let load = Load::start(Arc::clone(&api), &stack.users, churn())?;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let never = CancellationToken::new();

    // The storm's rooms: a host and ten waiting in each, six seats.
    let mut rooms = Vec::new();
    for r in 0..STORM_ROOMS {
        let first = STORM_FIRST_USER + r * (STORM_WAITING + 1);
        let host = stack.users[first].clone();
        let waiting: Vec<User> = stack.users[first + 1..=first + STORM_WAITING].to_vec();
        let created = api
            .retrying(
                "storm create",
                Method::POST,
                "",
                &host.token,
                Some(&serde_json::json!({"display_name": "Admission storm",
                                         "max_participants": STORM_SEATS})),
                Some(&Uuid::new_v4().to_string()),
                &never,
            )
            .await?;
        let code = created.text("meeting_code")?;
        join(&api, &code, &host, &never).await?;
        for user in &waiting {
            let joined = join(&api, &code, user, &never).await?;
            if joined.status != "waiting" {
                bail!("storm join of {code}: {} (expected waiting)", joined.status);
            }
        }
        rooms.push((code, host, waiting));
    }
    // The primary serving the most storm rooms.
    let mut served: std::collections::HashMap<u16, Vec<String>> = Default::default();
    for (code, _, _) in &rooms {
        let primary = cluster.primary_of(&format!("room:{{{code}}}:meta")).await?;
        served.entry(primary).or_default().push(code.clone());
    }
    let (victim, victim_rooms) = served
        .into_iter()
        .max_by_key(|(_, codes)| codes.len())
        .context("no storm room")?;
    outcome.notes.push(format!(
        "primary {victim} killed, serving {} of the {STORM_ROOMS} storm rooms",
        victim_rooms.len()
    ));

    // Every host admits everyone waiting at once; the primary dies among the admissions.
    let mut admits = tokio::task::JoinSet::new();
    for (code, host, waiting) in &rooms {
        for user in waiting {
            let api = Arc::clone(&api);
            let path = format!("/{code}/admit/{}", user.id);
            let (code, token, user) = (code.clone(), host.token.clone(), user.id);
            admits.spawn(async move {
                let never = CancellationToken::new();
                let answer = api
                    .retrying(
                        "storm admit",
                        Method::POST,
                        &path,
                        &token,
                        None,
                        None,
                        &never,
                    )
                    .await;
                (code, user, answer)
            });
        }
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    cluster.kill(victim).await?;
    let killed = Instant::now();
    let key = format!("room:{{{}}}:meta", victim_rooms[0]);
    let promoted = cluster
        .wait_failover(&key, victim, Duration::from_secs(30))
        .await?;
    outcome.time("replica promoted after the primary's SIGKILL", promoted);

    let mut admitted: std::collections::HashMap<String, Vec<Uuid>> = Default::default();
    let (mut full, mut other) = (0, Vec::new());
    while let Some(done) = admits.join_next().await {
        let (code, user, answer) = done?;
        match answer {
            Ok(a) if a.status == 200 => admitted.entry(code).or_default().push(user),
            Ok(a) if a.status == 409 && a.code() == "MEETING_FULL" => full += 1,
            Ok(a) => other.push(format!("admit into {code}: {} {}", a.status, a.body)),
            Err(error) => other.push(format!("admit into {code}: {error:#}")),
        }
    }
    outcome.time("every admission answered", killed.elapsed());
    let seated: usize = admitted.values().map(Vec::len).sum();
    outcome.notes.push(format!(
        "{seated} admissions answered 200, {full} answered 409 MEETING_FULL"
    ));
    outcome.expect(other.is_empty(), format!("storm admissions: {other:?}"));
    for (code, users) in &admitted {
        outcome.expect(
            users.len() < STORM_SEATS,
            format!(
                "{code}: {} admitted besides the host into {STORM_SEATS} seats",
                users.len()
            ),
        );
    }
    outcome.expect(
        seated == STORM_ROOMS * (STORM_SEATS - 1),
        format!(
            "{seated} admitted in all, not every free seat ({})",
            STORM_ROOMS * (STORM_SEATS - 1)
        ),
    );
    // Nothing else is told: whoever got a 200 is seated in the cluster, with their visit (the
    // checker compares every room's seats with its open visits).
    finish(outcome, stack, load).await
}
