//! Creates sharing their statements (`db::creates`, migration `20261202000001`): what a batch
//! writes, what it leaves to the one-create statement, and that the org's limit stays exact
//! when the creates of one or two GCs are batched.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use common::display_name::DisplayName;
use common::meeting_code::MeetingCode;
use common::settings::MeetingSettings;
use common::shell::Background;
use gc_service::db::creates::Creates;
use gc_service::db::meetings::{CreateRow, insert_batch};
use gc_service::domain::events::Origin;
use gc_service::domain::idempotency::{IdempotencyKey, IdempotencyRecord};
use gc_service::domain::meeting::{CreateMeeting, MaxParticipants, NewMeeting, ValidationError};
use gc_service::domain::secret::JoinTokenSecret;
use gc_service::error::Error;
use gc_service::use_cases::create::{Created, insert_with_fresh_codes};
use ring::rand::SystemRandom;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{
    HOST, MEMBER, StackOptions, TestStack, spawn_stack, until_someone_waits_for_a_lock,
};

fn create(name: &str) -> CreateMeeting {
    CreateMeeting {
        display_name: DisplayName::parse(name).unwrap(),
        max_participants: None,
        scheduled_start_time: None,
        settings: MeetingSettings::default(),
    }
}

fn new_meeting(stack: &TestStack, host: Uuid, create: CreateMeeting) -> NewMeeting {
    let rng = SystemRandom::new();
    NewMeeting {
        id: Uuid::now_v7(),
        org_id: stack.org_id,
        host_id: host,
        create,
        code: MeetingCode::generate(&rng).unwrap(),
        join_token_secret: JoinTokenSecret::generate(&rng).unwrap(),
        idempotency: None,
    }
}

fn with_key(mut new: NewMeeting, key: &str) -> NewMeeting {
    new.idempotency = Some(IdempotencyRecord {
        key: IdempotencyKey::parse(key).unwrap(),
        request_hash: new.create.request_hash(),
    });
    new
}

type Creating<'a> = Pin<Box<dyn Future<Output = Result<Created, Error>> + Send + 'a>>;

/// Starts a create through `creates` and polls it once: by then it is queued (the queue has
/// room) and waits for its statement.
async fn queued<'a>(creates: &'a Creates, new: NewMeeting, audit: Origin<'a>) -> Creating<'a> {
    let mut creating: Creating<'a> = Box::pin(insert_with_fresh_codes(creates, new, audit, || {
        Err(Error::Internal("no second code in these tests"))
    }));
    assert!(matches!(futures::poll!(&mut creating), Poll::Pending));
    creating
}

/// The transaction that wrote a row (its `xmin`), to tell which creates shared one.
async fn writer_of(pool: &PgPool, meeting_id: Uuid) -> String {
    sqlx::query_scalar("select xmin::text from meetings where id = $1")
        .bind(meeting_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

fn created(result: Result<Created, Error>) -> gc_service::domain::meeting::Meeting {
    match result {
        Ok(Created::New(meeting)) => meeting,
        other => panic!("expected a new meeting, got {other:?}"),
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn queued_creates_share_a_transaction_and_refusals_are_decided_alone(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let host = stack.user_id(HOST).await;
    let inactive = stack.user_id(MEMBER).await;
    sqlx::query("update users set is_active = false where id = $1")
        .bind(inactive)
        .execute(&stack.pool)
        .await
        .unwrap();
    stack.set_org_limits(1000, 50).await;
    let creates = Creates::new(stack.pool.clone(), &Background::default());
    let quiet = Origin::default();
    let browser = Origin {
        ip: Some("203.0.113.9".parse().unwrap()),
        user_agent: Some("Browser/2.0 ☃"),
    };

    // Holds the writer on its first statement: every slot of the org is locked, so that lone
    // create waits in slot order, and what follows queues behind it.
    let mut holder = stack.pool.begin().await.unwrap();
    sqlx::query("select 1 from org_meeting_slots where org_id = $1 for update")
        .bind(stack.org_id)
        .execute(&mut *holder)
        .await
        .unwrap();
    let ahead = queued(&creates, new_meeting(&stack, host, create("Ahead")), quiet).await;
    until_someone_waits_for_a_lock(&stack.pool).await;

    let first = new_meeting(&stack, host, create("From a browser"));
    let keyed = with_key(new_meeting(&stack, host, create("Keyed")), "batch-key-1");
    // The same key and body again, queued in the same batch: replays the keyed meeting.
    let replay = with_key(new_meeting(&stack, host, create("Keyed")), "batch-key-1");
    // The same key with another body: refused as a reused key.
    let reused = with_key(
        new_meeting(&stack, host, create("Other body")),
        "batch-key-1",
    );
    let by_inactive = new_meeting(&stack, inactive, create("Inactive host"));
    let mut too_big = create("Too big");
    too_big.max_participants = Some(MaxParticipants::parse(51).unwrap());
    let too_big = new_meeting(&stack, host, too_big);
    let last = new_meeting(&stack, host, create("Last"));
    let (first_id, keyed_id, last_id) = (first.id, keyed.id, last.id);
    let behind = vec![
        queued(&creates, first, browser).await,
        queued(&creates, keyed, quiet).await,
        queued(&creates, replay, quiet).await,
        queued(&creates, reused, quiet).await,
        queued(&creates, by_inactive, quiet).await,
        queued(&creates, too_big, quiet).await,
        queued(&creates, last, quiet).await,
    ];
    // A client that hangs up while its create waits for a statement: nothing is written for it.
    let gone = new_meeting(&stack, host, create("Hung up"));
    let gone_id = gone.id;
    drop(queued(&creates, gone, quiet).await);
    holder.commit().await.unwrap();
    created(ahead.await);
    let mut results = futures::future::join_all(behind).await.into_iter();

    let first = created(results.next().unwrap());
    let keyed = created(results.next().unwrap());
    match results.next().unwrap() {
        Ok(Created::Replayed(meeting)) => assert_eq!(meeting.id, keyed.id),
        other => panic!("the same key and body replay the first meeting: {other:?}"),
    }
    let reused = results.next().unwrap();
    assert!(
        matches!(reused, Err(Error::IdempotencyKeyReused)),
        "{reused:?}"
    );
    let by_inactive = results.next().unwrap();
    assert!(
        matches!(&by_inactive, Err(Error::Forbidden(_))),
        "{by_inactive:?}"
    );
    let too_big = results.next().unwrap();
    assert!(
        matches!(
            too_big,
            Err(Error::Validation(
                ValidationError::MaxParticipantsAboveOrgLimit { max: 50 }
            ))
        ),
        "{too_big:?}"
    );
    let last = created(results.next().unwrap());
    assert_eq!((first.id, keyed.id, last.id), (first_id, keyed_id, last_id));

    // The three accepted creates behind the lone one were written by one transaction.
    let writer = writer_of(&stack.pool, first.id).await;
    assert_eq!(writer_of(&stack.pool, keyed.id).await, writer);
    assert_eq!(writer_of(&stack.pool, last.id).await, writer);

    // Each has its own audit row, with its own request's address and agent; the refused ones
    // have none, and the org holds exactly the four meetings created.
    let audit: Vec<(String, Option<String>, Option<String>, bool)> = sqlx::query_as(
        "select resource_id, host(ip), user_agent, (details->>'idempotency_key')::boolean
         from audit_logs where action = 'meeting_created' order by resource_id",
    )
    .fetch_all(&stack.pool)
    .await
    .unwrap();
    assert_eq!(audit.len(), 4, "{audit:?}");
    let row_of = |id: Uuid| {
        audit
            .iter()
            .find(|row| row.0 == id.to_string())
            .unwrap_or_else(|| panic!("no audit row for {id}"))
            .clone()
    };
    assert_eq!(
        row_of(first.id),
        (
            first.id.to_string(),
            Some("203.0.113.9".into()),
            Some("Browser/2.0 ☃".into()),
            false
        )
    );
    assert!(row_of(keyed.id).3, "the keyed create's audit row says so");
    let stored_key: Uuid = sqlx::query_scalar(
        "select meeting_id from idempotency_keys where user_id = $1 and key = 'batch-key-1'",
    )
    .bind(host)
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    assert_eq!(stored_key, keyed.id);
    assert_eq!(stack.live_meeting_count().await, 4);
    assert_eq!(stack.check_slots().await, (4, 1000));
    let gone: i64 = sqlx::query_scalar("select count(*) from meetings where id = $1")
        .bind(gone_id)
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    assert_eq!(gone, 0, "the create of a client that hung up was written");
}

/// The batch statement itself: it leaves out, without failing and without waiting, the creates
/// it cannot decide at once, and writes the others.
#[sqlx::test(migrations = "../../migrations")]
async fn the_batch_statement_leaves_out_what_it_cannot_decide_without_waiting(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let host = stack.user_id(HOST).await;
    stack.set_org_limits(2, 100).await;
    let audit = Origin::default();
    let row = |name: &str| CreateRow::new(&new_meeting(&stack, host, create(name)), audit);

    // Another create holds slot 0 (of two, one place each): the batch takes slot 1 for its
    // first row and leaves the second out instead of waiting for slot 0.
    let mut holder = stack.pool.begin().await.unwrap();
    sqlx::query("select 1 from org_meeting_slots where org_id = $1 and slot = 0 for update")
        .bind(stack.org_id)
        .execute(&mut *holder)
        .await
        .unwrap();
    let (one, two) = (row("One"), row("Two"));
    let written = tokio::time::timeout(
        Duration::from_secs(10),
        insert_batch(&stack.pool, &[&one, &two]),
    )
    .await
    .expect("the batch waited for a slot another create holds")
    .unwrap();
    assert_eq!(
        written.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![one.id]
    );
    holder.rollback().await.unwrap();
    assert_eq!(stack.check_slots().await, (1, 2));

    // One place left: of three rows, one is written and two are left out (not refused whole).
    let rows = [row("Three"), row("Four"), row("Five")];
    let written = insert_batch(&stack.pool, &rows.iter().collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(written.len(), 1);
    assert_eq!(stack.check_slots().await, (2, 2));

    // At the limit, or with the org inactive: nothing written, no error.
    let rows = [row("Six"), row("Seven")];
    assert!(
        insert_batch(&stack.pool, &rows.iter().collect::<Vec<_>>())
            .await
            .unwrap()
            .is_empty()
    );
    sqlx::query("update meetings set status = 'ended', ended_at = now()")
        .execute(&stack.pool)
        .await
        .unwrap();
    sqlx::query("update organizations set is_active = false where id = $1")
        .bind(stack.org_id)
        .execute(&stack.pool)
        .await
        .unwrap();
    assert!(
        insert_batch(&stack.pool, &rows.iter().collect::<Vec<_>>())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(stack.check_slots().await, (0, 2));
    let audit_rows: i64 =
        sqlx::query_scalar("select count(*) from audit_logs where action = 'meeting_created'")
            .fetch_one(&stack.pool)
            .await
            .unwrap();
    assert_eq!(audit_rows, 2, "one audit row per meeting written, no more");

    // Batch mode ends with the batch: a one-create statement on the same connection still
    // reports the inactive org as a refusal.
    let mut conn = stack.pool.acquire().await.unwrap();
    let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
    sqlx::query("select count(*) from meetings_create_batch('{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}')")
        .execute(&mut *tx)
        .await
        .unwrap();
    let alone = sqlx::query(
        "insert into meetings (org_id, host_id, meeting_code, display_name, max_participants,
                               join_token_secret)
         values ($1, $2, 'BATCHMODEOFF', 'Alone', 10, '\\x00')",
    )
    .bind(stack.org_id)
    .bind(host)
    .execute(&mut *tx)
    .await
    .unwrap_err();
    assert_eq!(
        alone.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("CV410"),
        "{alone}"
    );
}

/// Many creates of one org at once through one queue, and through two (two GC replicas),
/// against small limits: exactly the limit is created, every other create is refused with the
/// limit, and the slots agree.
#[sqlx::test(migrations = "../../migrations")]
async fn batched_creates_keep_the_org_limit_exact(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let host = stack.user_id(HOST).await;
    let audit = Origin::default();
    let replicas = [
        Creates::new(stack.pool.clone(), &Background::default()),
        Creates::new(stack.pool.clone(), &Background::default()),
    ];
    for (limit, attempts, queues) in [(5, 50, 1), (1, 30, 1), (2, 30, 2), (7, 60, 2)] {
        sqlx::query(
            "update meetings set status = 'ended', ended_at = now() where status <> 'ended'",
        )
        .execute(&stack.pool)
        .await
        .unwrap();
        stack.set_org_limits(limit, 100).await;
        let creating = (0..attempts).map(|i| {
            let creates = &replicas[i % queues];
            let new = new_meeting(&stack, host, create("Crowded"));
            async move {
                insert_with_fresh_codes(creates, new, audit, || {
                    Err(Error::Internal("no second code in these tests"))
                })
                .await
            }
        });
        let results = futures::future::join_all(creating).await;
        let made = results
            .iter()
            .filter(|r| matches!(r, Ok(Created::New(_))))
            .count();
        let refused = results
            .iter()
            .filter(|r| matches!(r, Err(Error::OrgMeetingLimitReached)))
            .count();
        assert_eq!(
            (made, refused),
            (limit as usize, attempts - limit as usize),
            "limit {limit}, {attempts} creates through {queues} queue(s): {results:?}"
        );
        assert_eq!(stack.check_slots().await, (limit as i64, limit as i64));
        let live: i64 = sqlx::query_scalar("select count(*) from meetings where status <> 'ended'")
            .fetch_one(&stack.pool)
            .await
            .unwrap();
        assert_eq!(live, limit as i64);
    }
}

/// With no connection to be had, every queued create fails with the pool's timeout (a 503 for
/// its client), the batch included, and nothing is half written; the queue works again once a
/// connection is free.
#[sqlx::test(migrations = "../../migrations")]
async fn a_starved_pool_fails_queued_creates_and_writes_nothing(pool: PgPool) {
    use sqlx::postgres::PgPoolOptions;

    let stack = spawn_stack(pool, StackOptions::default()).await;
    let host = stack.user_id(HOST).await;
    stack.set_org_limits(100, 100).await;
    let small = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(300))
        .connect_with((*stack.pool.connect_options()).clone())
        .await
        .unwrap();
    let creates = Creates::new(small.clone(), &Background::default());
    let audit = Origin::default();
    let held = small.acquire().await.unwrap();

    let creating = (0..6).map(|i| {
        insert_with_fresh_codes(
            &creates,
            new_meeting(&stack, host, create(&format!("Starved {i}"))),
            audit,
            || Err(Error::Internal("no second code in these tests")),
        )
    });
    for result in futures::future::join_all(creating).await {
        assert!(
            matches!(result, Err(Error::Database(sqlx::Error::PoolTimedOut))),
            "{result:?}"
        );
    }
    assert_eq!(stack.meeting_count().await, 0);
    assert_eq!(stack.check_slots().await, (0, 100));

    drop(held);
    created(
        insert_with_fresh_codes(
            &creates,
            new_meeting(&stack, host, create("After")),
            audit,
            || Err(Error::Internal("no second code in these tests")),
        )
        .await,
    );
    assert_eq!(stack.meeting_count().await, 1);
}
