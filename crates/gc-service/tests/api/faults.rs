//! GC when PostgreSQL or AC fails under it (issue 24): PostgreSQL stopped (every connection
//! reset and new ones refused), hung (nothing answers), and its sessions terminated (a restart,
//! a failover); AC stopped or hung. GC reaches the broken peer through a fault proxy
//! (`crates/fault-proxy`); AC, the test's own reads and the controllers reach theirs directly.
//! After each fault the stores are compared with what GC answered.
//!
//! The time bounds asserted here are far from any speed target: they say that a request is
//! refused by the statement deadline (5 s) rather than held to the request timeout (30 s).

use std::time::{Duration, Instant};

use fault_proxy::{Fault, FaultProxy};
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::{
    HOST, McRedis, StackOptions, TestStack, error_code, meeting_body, spawn_stack,
};
use crate::meetings::People;

/// Well under the 30 s request timeout, well over the 5 s statement deadline.
const REFUSED_WITHIN: Duration = Duration::from_secs(15);

/// GC's connections to PostgreSQL in these tests.
const GC_POOL: u32 = 5;

/// A proxy to the test's PostgreSQL, and a pool for GC through it.
async fn proxied(pool: &PgPool) -> (FaultProxy, PgPool) {
    let options = pool.connect_options();
    let upstream = tokio::net::lookup_host((options.get_host(), options.get_port()))
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = FaultProxy::start(upstream).await.unwrap();
    let through = options
        .as_ref()
        .clone()
        .host("127.0.0.1")
        .port(proxy.port());
    let gc_pool = common::db::pool_options()
        .max_connections(GC_POOL)
        .connect_lazy_with(through);
    (proxy, gc_pool)
}

/// A stack whose GC runs on a pool through a proxy, and that pool with all of its connections
/// open and idle.
async fn stack_on(pool: PgPool) -> (TestStack, FaultProxy) {
    let (proxy, gc_pool) = proxied(&pool).await;
    let open = futures::future::join_all((0..GC_POOL).map(|_| gc_pool.acquire())).await;
    assert!(open.iter().all(Result::is_ok));
    drop(open);
    let stack = spawn_stack(pool, StackOptions::default().with_gc_pool(gc_pool)).await;
    (stack, proxy)
}

/// The status of `path` on GC's ops listener.
async fn ops(stack: &TestStack, path: &str) -> StatusCode {
    stack
        .client
        .get(format!("http://{}{path}", stack.gc_ops))
        .send()
        .await
        .unwrap()
        .status()
}

async fn ready(stack: &TestStack) -> StatusCode {
    ops(stack, "/health/ready").await
}

async fn live(stack: &TestStack) -> StatusCode {
    ops(stack, "/health/live").await
}

/// `GET /api/v1/meetings/{code}`, the whole response (the tests read its headers).
async fn read_meeting(stack: &TestStack, token: &str, code: &str) -> reqwest::Response {
    stack
        .client
        .get(format!("{}/api/v1/meetings/{code}", stack.gc.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// A create with `key` as its Idempotency-Key: the status, the meeting code when one came
/// back, and how long it took.
async fn create(
    stack: &TestStack,
    token: &str,
    key: &str,
) -> (StatusCode, Option<String>, Duration) {
    let started = Instant::now();
    let response = stack
        .create_with_key(token, &meeting_body("Fault"), Some(key))
        .await;
    let took = started.elapsed();
    let status = response.status();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        let retry_after = response.headers().get("retry-after").cloned();
        assert!(retry_after.is_some(), "a 503 without Retry-After");
        assert_eq!(error_code(response).await, "SERVICE_UNAVAILABLE");
        return (status, None, took);
    }
    let body: Value = response.json().await.unwrap();
    let code = body["meeting_code"].as_str().map(str::to_owned);
    (status, code, took)
}

/// [`GC_POOL`] creates one after the other, keys `{prefix}-{n}`.
async fn creates(
    stack: &TestStack,
    token: &str,
    prefix: &str,
) -> Vec<(StatusCode, Option<String>, Duration)> {
    let mut answers = Vec::new();
    for n in 0..GC_POOL {
        answers.push(create(stack, token, &format!("{prefix}-{n}")).await);
    }
    answers
}

/// Every meeting has its `meeting_created` record and every record its meeting; the codes.
async fn stored_meetings(pool: &PgPool) -> Vec<String> {
    let unmatched: i64 = sqlx::query_scalar(
        "select count(*) from meetings m
         full join (select distinct resource_id from audit_logs
                    where action = 'meeting_created' and resource_type = 'meeting') a
           on a.resource_id = m.id::text
         where m.id is null or a.resource_id is null",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(unmatched, 0, "a meeting without its record, or the reverse");
    let mut codes: Vec<String> = sqlx::query_scalar("select meeting_code from meetings")
        .fetch_all(pool)
        .await
        .unwrap();
    codes.sort();
    codes
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_stopped_postgres_is_a_503_with_retry_after_and_gc_recovers_by_itself(pool: PgPool) {
    let (stack, proxy) = stack_on(pool.clone()).await;
    let token = stack.user_token(HOST).await;
    let mut answered = Vec::new();
    for (status, code, _) in creates(&stack, &token, "before").await {
        assert_eq!(status, StatusCode::CREATED);
        answered.extend(code);
    }
    assert_eq!(ready(&stack).await, StatusCode::OK);

    // Stopped: the open connections are reset and new ones refused.
    proxy.set(Fault::Reset);
    let (status, _, took) = create(&stack, &token, "down").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(took < REFUSED_WITHIN, "refused after {took:?}");
    assert_eq!(ready(&stack).await, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(live(&stack).await, StatusCode::OK);

    // Back: every request is served at once. The pool's other connections died idle during
    // the outage; they are checked before use rather than each failing one request.
    proxy.set(Fault::Pass);
    for (status, code, _) in creates(&stack, &token, "after").await {
        assert_eq!(status, StatusCode::CREATED);
        answered.extend(code);
    }
    assert_eq!(ready(&stack).await, StatusCode::OK);

    // Nothing of the refused create was written; the answered ones are there, with their
    // records.
    answered.sort();
    assert_eq!(stored_meetings(&pool).await, answered);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_hung_postgres_is_refused_at_the_statement_deadline_not_the_request_timeout(
    pool: PgPool,
) {
    let (stack, proxy) = stack_on(pool.clone()).await;
    let token = stack.user_token(HOST).await;
    let (status, before, _) = create(&stack, &token, "before").await;
    assert_eq!(status, StatusCode::CREATED);
    let before = before.unwrap();

    // Hung: connections stay open and nothing answers.
    proxy.set(Fault::Stall);
    let (status, _, took) = create(&stack, &token, "while-hung").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(took < REFUSED_WITHIN, "a create held for {took:?}");
    let started = Instant::now();
    let read = read_meeting(&stack, &token, &before).await;
    assert_eq!(read.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(read.headers().contains_key("retry-after"));
    assert!(
        started.elapsed() < REFUSED_WITHIN,
        "a read held for {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    assert_eq!(ready(&stack).await, StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < REFUSED_WITHIN);
    assert_eq!(live(&stack).await, StatusCode::OK);

    // Back: what the hung connections held is delivered late, so the create refused with 503
    // may have been written after all. Its retry with the same key finds it rather than
    // creating a second meeting.
    proxy.set(Fault::Pass);
    let (status, retried, _) = create(&stack, &token, "while-hung").await;
    assert!(
        status == StatusCode::CREATED || status == StatusCode::OK,
        "{status}"
    );
    assert_eq!(ready(&stack).await, StatusCode::OK);
    let mut answered = vec![before, retried.unwrap()];
    answered.sort();
    assert_eq!(stored_meetings(&pool).await, answered);
}

#[sqlx::test(migrations = "../../migrations")]
async fn terminated_sessions_cost_at_most_one_503_and_never_a_500(pool: PgPool) {
    let stack = spawn_stack(pool.clone(), StackOptions::default()).await;
    let token = stack.user_token(HOST).await;
    let mut answered = Vec::new();
    for round in 0..3 {
        let (status, code, _) = create(&stack, &token, &format!("warm-{round}")).await;
        assert_eq!(status, StatusCode::CREATED);
        answered.extend(code);
        // What a restart or a failover does to every session but the test's own.
        sqlx::query(
            "select pg_terminate_backend(pid) from pg_stat_activity
             where datname = current_database() and pid <> pg_backend_pid()",
        )
        .execute(&pool)
        .await
        .unwrap();
        let mut refused = 0;
        loop {
            let (status, code, _) = create(&stack, &token, &format!("after-{round}")).await;
            match status {
                StatusCode::CREATED => {
                    answered.extend(code);
                    break;
                }
                StatusCode::SERVICE_UNAVAILABLE => refused += 1,
                other => panic!("round {round}: {other}"),
            }
            assert!(refused <= 1, "round {round}: {refused} refusals in a row");
        }
    }
    answered.sort();
    assert_eq!(stored_meetings(&pool).await, answered);
}

#[sqlx::test(migrations = "../../migrations")]
async fn with_ac_stopped_or_hung_gc_reads_and_creates_and_refuses_joins_with_retry_after(
    pool: PgPool,
) {
    let mut stack = spawn_stack(pool.clone(), StackOptions::default().with_ac_proxy()).await;
    let people = People::new(&stack).await;
    let prefix = format!("t{}:", uuid::Uuid::new_v4().simple());
    stack.start_mc(0, &prefix, McRedis::Single).await;
    let token = stack.user_token(HOST).await;
    let (status, code, _) = create(&stack, &token, "first").await;
    assert_eq!(status, StatusCode::CREATED);
    let code = code.unwrap();
    let join = |token: String| {
        let request = stack
            .client
            .post(format!("{}/api/v1/meetings/{code}/join", stack.gc.base))
            .bearer_auth(token);
        async move {
            let started = Instant::now();
            let response = request.send().await.unwrap();
            (response, started.elapsed())
        }
    };
    let (joined, _) = join(token.clone()).await;
    assert_eq!(joined.status(), StatusCode::OK);
    let proxy = stack.ac_proxy.as_ref().unwrap();

    for (round, fault) in [Fault::Reset, Fault::Stall].into_iter().enumerate() {
        proxy.set(fault);
        // GC holds AC's keys and its own service token: tokens still verify, so what needs
        // no new token from AC goes on, and GC stays ready.
        let (status, _, _) = create(&stack, &token, &format!("during-{round}")).await;
        assert_eq!(status, StatusCode::CREATED, "{fault:?}");
        let read = read_meeting(&stack, &token, &code).await;
        assert_eq!(read.status(), StatusCode::OK, "{fault:?}");
        assert_eq!(ready(&stack).await, StatusCode::OK, "{fault:?}");

        // A join needs a meeting token from AC: refused at AC's deadline, with Retry-After.
        let (_, newcomer) = people
            .user(&stack, stack.org_id, &format!("newcomer-{round}"))
            .await;
        let (refused, took) = join(newcomer.clone()).await;
        assert_eq!(
            refused.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{fault:?}"
        );
        assert!(refused.headers().contains_key("retry-after"));
        assert!(took < REFUSED_WITHIN, "{fault:?}: a join held for {took:?}");

        // Back: the same join succeeds, with nothing restarted.
        proxy.set(Fault::Pass);
        let (joined, _) = join(newcomer).await;
        assert_eq!(joined.status(), StatusCode::OK, "{fault:?}");
        let body: Value = joined.json().await.unwrap();
        assert!(
            body["meeting_token"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
        );
    }
}

/// A guest-join needs a guest token from AC before the room is asked: with AC stopped or hung
/// it is refused with 503 and `Retry-After` at AC's deadline, and nothing is left behind (no
/// guest waiting, none recorded); once AC is back, the same request succeeds.
#[sqlx::test(migrations = "../../migrations")]
async fn with_ac_stopped_or_hung_a_guest_join_is_refused_and_leaves_nothing(pool: PgPool) {
    let mut stack = spawn_stack(pool.clone(), StackOptions::default().with_ac_proxy()).await;
    let prefix = format!("t{}:", uuid::Uuid::new_v4().simple());
    stack.start_mc(0, &prefix, McRedis::Single).await;
    let token = stack.user_token(HOST).await;
    let response = stack
        .create(
            &token,
            &serde_json::json!({"display_name": "Open",
                                "settings": {"allow_guests": true, "require_auth": false}}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let code = response.json::<Value>().await.unwrap()["meeting_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let guest_join = || {
        let request = stack
            .client
            .post(format!(
                "{}/api/v1/meetings/{code}/guest-join",
                stack.gc.base
            ))
            .json(&serde_json::json!({"display_name": "Gus"}));
        async move {
            let started = Instant::now();
            let response = request.send().await.unwrap();
            (response, started.elapsed())
        }
    };
    let proxy = stack.ac_proxy.as_ref().unwrap();
    // A warm room (assigned, GC's service token held): were the tokens asked for alongside the
    // room, the room would put the guest in its lobby while AC fails.
    let host_joined = stack
        .client
        .post(format!("{}/api/v1/meetings/{code}/join", stack.gc.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(host_joined.status(), StatusCode::OK);

    for fault in [Fault::Reset, Fault::Stall] {
        proxy.set(fault);
        let (refused, took) = guest_join().await;
        assert_eq!(
            refused.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{fault:?}"
        );
        assert!(refused.headers().contains_key("retry-after"));
        assert!(
            took < REFUSED_WITHIN,
            "{fault:?}: a guest-join held for {took:?}"
        );
        let guests: i64 = sqlx::query_scalar("select count(*) from meeting_guests")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(guests, 0, "{fault:?}: a guest recorded without a token");
        proxy.set(Fault::Pass);
    }
    let (joined, _) = guest_join().await;
    assert_eq!(joined.status(), StatusCode::OK);
    let (status, seen) = {
        let response = stack
            .client
            .get(format!("{}/api/v1/meetings/{code}", stack.gc.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        (response.status(), response.json::<Value>().await.unwrap())
    };
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        seen["lobby_count"], 1,
        "only the guest who got a token waits"
    );
}
