//! A delivery's outcome racing a change of its webhook (DESIGN §13): the outcome a worker
//! writes when its request ends against a `PATCH`, a `DELETE` and a `rotate-secret` of the
//! same webhook through the API, and against a later attempt of the same delivery (a lease
//! that ran out). Hundreds of trials each, with the two sides started together and one of
//! them delayed by a random few hundred microseconds to reach both orders; after each, the
//! API and PostgreSQL are compared, and a reader watching the two rows in one snapshot during
//! the race must never see what no order of the two changes leaves.
//!
//! The stack's own delivery loop is kept out of the way (it may have no request in flight,
//! so it never claims): the test
//! claims the deliveries itself, as a worker would, and writes their outcomes through
//! `db::webhooks::finish_batch`, the statement the workers' queue writes with.

use std::time::Duration;

use gc_service::db::webhooks::{self, Attempted, Claimed, Finished, Written};
use gc_service::domain::webhooks::Backoff;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;

use tokio::sync::Barrier;
use uuid::Uuid;

use crate::helpers::{ORG_ADMIN, StackOptions, TestStack, spawn_stack, test_webhooks};
use crate::webhooks::webhooks_call as api;

const TRIALS: usize = 200;

async fn quiet_stack(pool: PgPool) -> TestStack {
    let webhooks = gc_service::config::WebhookSettings {
        max_in_flight: 0,
        ..test_webhooks()
    };
    spawn_stack(pool, StackOptions::default().with_webhooks(webhooks)).await
}

async fn new_webhook(stack: &TestStack, token: &str) -> Uuid {
    let (status, body) = api(
        stack,
        Method::POST,
        "",
        token,
        Some(&json!({"url": "http://127.0.0.1:9/hook", "events": ["webhook.test"]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["webhook_id"].as_str().unwrap().parse().unwrap()
}

/// Queues a test event for `webhook` and claims it as a worker would (`lease`); the claim.
async fn queued_and_claimed(
    stack: &TestStack,
    token: &str,
    webhook: Uuid,
    lease: Duration,
) -> Claimed {
    let (status, queued) = api(
        stack,
        Method::POST,
        &format!("/{webhook}/test"),
        token,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    let id: Uuid = queued["delivery_id"].as_str().unwrap().parse().unwrap();
    let claimed = webhooks::claim(&stack.pool, &[], 8, 64, lease)
        .await
        .unwrap();
    claimed
        .into_iter()
        .find(|c| c.id == id)
        .expect("the queued delivery is due and claimed")
}

fn failed_with_retry() -> Finished {
    Finished::Failed {
        status: Some(503),
        error: "503 Service Unavailable".to_owned(),
        backoff: Backoff {
            base: Duration::from_secs(60),
            cap: Duration::from_secs(3600),
            window: Duration::from_secs(86_400),
            jitter: 1.0,
        },
    }
}

/// How a trial orders its two sides: one wholly before the other, or both at once with one a
/// random few milliseconds late.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Order {
    AFirst,
    BFirst,
    Together,
}

fn order(trial: usize) -> Order {
    match trial % 4 {
        0 => Order::AFirst,
        1 => Order::BFirst,
        _ => Order::Together,
    }
}

/// Runs `a` and `b` as `order` says.
async fn race<A, B>(order: Order, a: A, b: B) -> (A::Output, B::Output)
where
    A: Future,
    B: Future,
{
    match order {
        Order::AFirst => {
            let a = a.await;
            (a, b.await)
        }
        Order::BFirst => {
            let b = b.await;
            (a.await, b)
        }
        Order::Together => {
            let barrier = Barrier::new(2);
            let delay = Duration::from_micros(fastrand::u64(0..3000));
            let a_late = fastrand::bool();
            tokio::join!(
                async {
                    barrier.wait().await;
                    if a_late {
                        tokio::time::sleep(delay).await;
                    }
                    a.await
                },
                async {
                    barrier.wait().await;
                    if !a_late {
                        tokio::time::sleep(delay).await;
                    }
                    b.await
                }
            )
        }
    }
}

async fn write(pool: &PgPool, claimed: &Claimed, finished: Finished) -> Written {
    let written = webhooks::finish_batch(
        pool,
        &[Attempted {
            id: claimed.id,
            attempt: claimed.attempts,
            finished,
        }],
    )
    .await
    .unwrap();
    written.first().map_or(Written::Superseded, |(_, w)| *w)
}

/// The delivery's status and last answer, and the webhook's enabled flag, reason and
/// description, read in one snapshot.
async fn both_rows(
    pool: &PgPool,
    delivery: Uuid,
) -> Option<(String, Option<i32>, bool, Option<String>, Option<String>)> {
    sqlx::query_as(
        "select d.status, d.last_status, w.enabled, w.disabled_reason, w.description
         from webhook_deliveries d join webhooks w on w.id = d.webhook_id
         where d.id = $1",
    )
    .bind(delivery)
    .fetch_optional(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_410_racing_a_patch_that_enables_leaves_a_state_one_order_of_the_two_explains(
    pool: PgPool,
) {
    let stack = quiet_stack(pool).await;
    let admin = stack.user_token(ORG_ADMIN).await;
    let webhook = new_webhook(&stack, &admin).await;
    let mut orders = [0usize; 2];
    for trial in 0..TRIALS {
        let claimed = queued_and_claimed(&stack, &admin, webhook, Duration::from_secs(60)).await;
        let marker = format!("patched in trial {trial}");
        let patch = json!({"enabled": true, "description": marker});
        let watching = AtomicBool::new(true);
        let ((written, (status, patched)), ()) = tokio::join!(
            async {
                let outcome = race(
                    order(trial),
                    write(&stack.pool, &claimed, Finished::Gone),
                    api(
                        &stack,
                        Method::PATCH,
                        &format!("/{webhook}"),
                        &admin,
                        Some(&patch),
                    ),
                )
                .await;
                watching.store(false, Relaxed);
                outcome
            },
            async {
                // A failed 410 beside an enabled webhook exists only once the PATCH, which
                // enables it, has committed after the 410: never in between.
                while watching.load(Relaxed) {
                    let (delivery, last, enabled, reason, description) =
                        both_rows(&stack.pool, claimed.id).await.unwrap();
                    if delivery == "failed" {
                        assert_eq!(last, Some(410));
                        if enabled {
                            assert_eq!(reason, None);
                            assert_eq!(description.as_deref(), Some(marker.as_str()));
                        } else {
                            assert_eq!(reason.as_deref(), Some("gone"));
                        }
                    }
                }
            },
        );
        assert_eq!(written, Written::Failed);
        assert_eq!(status, StatusCode::OK, "{patched}");
        // The API and PostgreSQL agree, and the end state is one of the two orders'.
        let (_, shown) = api(&stack, Method::GET, &format!("/{webhook}"), &admin, None).await;
        let (delivery, last, enabled, reason, _) =
            both_rows(&stack.pool, claimed.id).await.unwrap();
        assert_eq!((delivery.as_str(), last), ("failed", Some(410)));
        assert_eq!(shown["enabled"], enabled, "{shown}");
        assert_eq!(shown["disabled_reason"].as_str(), reason.as_deref());
        match (enabled, reason.as_deref()) {
            // The PATCH came last.
            (true, None) => orders[0] += 1,
            // The 410 came last.
            (false, Some("gone")) => orders[1] += 1,
            other => panic!("no order leaves {other:?}"),
        }
        match order(trial) {
            Order::AFirst => assert!(enabled, "the PATCH came last"),
            Order::BFirst => assert!(!enabled, "the 410 came last"),
            Order::Together => {}
        }
        // Enabled again for the next trial.
        api(
            &stack,
            Method::PATCH,
            &format!("/{webhook}"),
            &admin,
            Some(&json!({"enabled": true})),
        )
        .await;
    }
    eprintln!("end states (PATCH last, 410 last): {orders:?}");
}

#[sqlx::test(migrations = "../../migrations")]
async fn an_outcome_racing_the_webhooks_delete_leaves_neither_and_no_error(pool: PgPool) {
    let stack = quiet_stack(pool).await;
    let admin = stack.user_token(ORG_ADMIN).await;
    let outcomes = [
        Finished::Delivered { status: 200 },
        failed_with_retry(),
        Finished::Gone,
    ];
    for trial in 0..TRIALS {
        let webhook = new_webhook(&stack, &admin).await;
        let claimed = queued_and_claimed(&stack, &admin, webhook, Duration::from_secs(60)).await;
        let finished = outcomes[trial % outcomes.len()].clone();
        let (written, (status, _)) = race(
            order(trial),
            write(&stack.pool, &claimed, finished),
            api(&stack, Method::DELETE, &format!("/{webhook}"), &admin, None),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        if order(trial) == Order::BFirst {
            assert_eq!(written, Written::Superseded, "the row had gone");
        }
        let (status, _) = api(&stack, Method::GET, &format!("/{webhook}"), &admin, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let left: (i64, i64) = sqlx::query_as(
            "select (select count(*) from webhooks where id = $1),
                    (select count(*) from webhook_deliveries where webhook_id = $1)",
        )
        .bind(webhook)
        .fetch_one(&stack.pool)
        .await
        .unwrap();
        assert_eq!(left, (0, 0), "trial {trial}");
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_late_outcome_of_an_attempt_whose_lease_ran_out_never_overwrites_the_next(pool: PgPool) {
    let stack = quiet_stack(pool).await;
    let admin = stack.user_token(ORG_ADMIN).await;
    let webhook = new_webhook(&stack, &admin).await;
    for trial in 0..TRIALS {
        // A lease of nothing: the delivery is due again at once, and claimed again, as another
        // replica would once a worker's lease ran out mid-request.
        let first = queued_and_claimed(&stack, &admin, webhook, Duration::ZERO).await;
        let second = webhooks::claim(&stack.pool, &[], 8, 64, Duration::from_secs(60))
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.id == first.id)
            .unwrap();
        assert_eq!(second.attempts, first.attempts + 1);
        // The late worker's outcome races the current one's.
        let (late, current) = race(
            order(trial),
            write(&stack.pool, &first, Finished::Delivered { status: 200 }),
            write(&stack.pool, &second, failed_with_retry()),
        )
        .await;
        assert_eq!(late, Written::Superseded);
        assert_eq!(current, Written::Retrying);
        let (status, attempts, last): (String, i32, Option<i32>) = sqlx::query_as(
            "select status, attempts, last_status from webhook_deliveries where id = $1",
        )
        .bind(first.id)
        .fetch_one(&stack.pool)
        .await
        .unwrap();
        assert_eq!((status.as_str(), attempts, last), ("pending", 2, Some(503)));
        // Out of the next trials' way.
        sqlx::query("delete from webhook_deliveries where id = $1")
            .bind(first.id)
            .execute(&stack.pool)
            .await
            .unwrap();
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn outcomes_written_together_each_get_their_own_result(pool: PgPool) {
    let stack = quiet_stack(pool).await;
    let admin = stack.user_token(ORG_ADMIN).await;
    let kept = new_webhook(&stack, &admin).await;
    let gone = new_webhook(&stack, &admin).await;
    let deleted = new_webhook(&stack, &admin).await;
    let lease = Duration::from_secs(60);
    let delivered = queued_and_claimed(&stack, &admin, kept, lease).await;
    let retried = queued_and_claimed(&stack, &admin, kept, lease).await;
    let refused = queued_and_claimed(&stack, &admin, gone, lease).await;
    let orphan = queued_and_claimed(&stack, &admin, deleted, lease).await;
    api(&stack, Method::DELETE, &format!("/{deleted}"), &admin, None).await;
    let attempted = |claimed: &Claimed, finished| Attempted {
        id: claimed.id,
        attempt: claimed.attempts,
        finished,
    };
    let mut written = webhooks::finish_batch(
        &stack.pool,
        &[
            attempted(&delivered, Finished::Delivered { status: 204 }),
            attempted(&retried, failed_with_retry()),
            attempted(&refused, Finished::Gone),
            attempted(&orphan, Finished::Delivered { status: 200 }),
        ],
    )
    .await
    .unwrap();
    written.sort_by_key(|(id, _)| *id);
    let mut expected = vec![
        (delivered.id, Written::Delivered),
        (retried.id, Written::Retrying),
        (refused.id, Written::Failed),
    ];
    expected.sort_by_key(|(id, _)| *id);
    assert_eq!(written, expected);
    let (_, shown) = api(&stack, Method::GET, &format!("/{gone}"), &admin, None).await;
    assert_eq!(shown["enabled"], false);
    assert_eq!(shown["disabled_reason"], "gone");
    let (_, shown) = api(&stack, Method::GET, &format!("/{kept}"), &admin, None).await;
    assert_eq!(shown["enabled"], true);
    let (_, listed) = api(
        &stack,
        Method::GET,
        &format!("/{kept}/deliveries"),
        &admin,
        None,
    )
    .await;
    let row = |id: Uuid| {
        listed["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["delivery_id"] == id.to_string())
            .unwrap()
            .clone()
    };
    assert_eq!(row(delivered.id)["status"], "delivered");
    assert_eq!(row(delivered.id)["last_status"], 204);
    assert_eq!(row(retried.id)["status"], "pending");
    assert_eq!(row(retried.id)["last_status"], 503);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_claim_finds_every_webhook_with_due_deliveries_wherever_its_scan_starts(pool: PgPool) {
    let stack = quiet_stack(pool).await;
    let admin = stack.user_token(ORG_ADMIN).await;
    let mut hooks = Vec::new();
    for _ in 0..6 {
        hooks.push(new_webhook(&stack, &admin).await);
    }
    // Two deliveries each, and one webhook disabled with its own waiting.
    for hook in &hooks {
        for _ in 0..2 {
            api(&stack, Method::POST, &format!("/{hook}/test"), &admin, None).await;
        }
    }
    let disabled = hooks[5];
    api(
        &stack,
        Method::PATCH,
        &format!("/{disabled}"),
        &admin,
        Some(&json!({"enabled": false})),
    )
    .await;
    let busy = [hooks[0]];
    // Each claim starts its scan at a random point; leases of nothing leave every row due for
    // the next one.
    for trial in 0..100 {
        let claimed = webhooks::claim(&stack.pool, &busy, 8, 64, Duration::ZERO)
            .await
            .unwrap();
        let mut found: Vec<Uuid> = claimed.iter().map(|c| c.webhook_id).collect();
        found.sort();
        let mut expected: Vec<Uuid> = hooks[1..5].iter().flat_map(|h| [*h, *h]).collect();
        expected.sort();
        if found != expected {
            let rows: Vec<(Uuid, String, i32, bool)> = sqlx::query_as(
                "select webhook_id, status, attempts, next_attempt_at <= now()
                 from webhook_deliveries order by webhook_id",
            )
            .fetch_all(&stack.pool)
            .await
            .unwrap();
            panic!("trial {trial}: claimed {found:?}, expected {expected:?}; rows {rows:?}");
        }
        // At most `per_webhook` of one, and at most `limit` in all.
        let few = webhooks::claim(&stack.pool, &busy, 1, 3, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(few.len(), 3, "trial {trial}");
        let distinct: std::collections::HashSet<Uuid> = few.iter().map(|c| c.webhook_id).collect();
        assert_eq!(distinct.len(), 3, "trial {trial}");
    }
}

/// The claim's plan on the delivery workers' own pool (`db::webhook_pool`), made once per
/// session, perhaps while the outbox is empty (a new database, or just after a vacuum), and
/// used as the table grows: it must still read only the rows it leases, however many delivered
/// rows the table keeps for retention. The control: the claim as it was before, whose lease
/// joined the picked rows (`from picked p where d.id = p.id`), planned the same way, read the
/// table's whole primary-key index to lease eight rows.
#[sqlx::test(migrations = "../../migrations")]
async fn the_claims_plan_reads_only_the_rows_it_leases_whatever_the_table_keeps(pool: PgPool) {
    let stack = quiet_stack(pool).await;
    let admin = stack.user_token(ORG_ADMIN).await;
    let hook = new_webhook(&stack, &admin).await;
    sqlx::query("analyze webhook_deliveries")
        .execute(&stack.pool)
        .await
        .unwrap();
    let workers = gc_service::db::webhook_pool(&stack.pool, &common::shell::Background::default());
    let mut conn = workers.acquire().await.unwrap();
    let before = webhooks::CLAIM_SQL.replace(
        "where d.id = any (array(select p.id from picked p))",
        "from picked p where d.id = p.id",
    );
    assert_ne!(
        before,
        webhooks::CLAIM_SQL,
        "the control's statement is the claim's"
    );
    for (name, sql) in [
        ("claim_now", webhooks::CLAIM_SQL),
        ("claim_before", before.as_str()),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "prepare {name}(uuid[], int8, int8, float8, uuid, int4) as {sql}"
        )))
        .execute(&mut *conn)
        .await
        .unwrap();
        // Planned now, on the empty table.
        let (_, claimed) = claim_probe(&mut conn, name).await;
        assert_eq!(claimed, 0);
    }
    sqlx::query(
        "insert into webhook_deliveries (webhook_id, event_type, payload, status, attempts,
                                         delivered_at, last_status)
         select $1, 'webhook.test', repeat('x', 300), 'delivered', 1, now(), 204
         from generate_series(1, 20000)",
    )
    .bind(hook)
    .execute(&stack.pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into webhook_deliveries (webhook_id, event_type, payload)
         select $1, 'webhook.test', repeat('x', 300) from generate_series(1, 16)",
    )
    .bind(hook)
    .execute(&stack.pool)
    .await
    .unwrap();

    let (now, claimed) = claim_probe(&mut conn, "claim_now").await;
    assert_eq!(claimed, 8);
    assert!(
        now < 2_000,
        "the claim read {now} buffers to lease 8 of 20,016 rows"
    );
    let (before, claimed) = claim_probe(&mut conn, "claim_before").await;
    assert_eq!(claimed, 8);
    assert!(
        before > 10_000,
        "the control read only {before} buffers: this test no longer shows what it guards"
    );
    drop(conn);
    // The claim itself, through the workers' pool: the 16 due rows, at most 8 at a time.
    let claimed = webhooks::claim(&workers, &[], 8, 64, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 8);
    workers.close().await;
}

/// Runs the prepared claim `name` under EXPLAIN ANALYZE in a transaction that is rolled back:
/// the buffers it read and the rows it leased.
async fn claim_probe(conn: &mut sqlx::PgConnection, name: &str) -> (u64, u64) {
    use sqlx::Connection;
    let mut tx = conn.begin().await.unwrap();
    let plan: serde_json::Value = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "explain (analyze, buffers, format json)
         execute {name}('{{}}', 8, 8, 36, gen_random_uuid(), 1024)"
    )))
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    let root = &plan[0]["Plan"];
    let buffers = ["Shared Hit Blocks", "Shared Read Blocks"]
        .iter()
        .map(|k| root[*k].as_u64().unwrap_or(0))
        .sum();
    (buffers, root["Actual Rows"].as_u64().unwrap_or(0))
}
