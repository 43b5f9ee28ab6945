//! The storage layer on its own: the live-meeting counter kept by triggers, code-collision
//! retries, and the create statement's cost as meetings accumulate.

use common::display_name::DisplayName;
use common::error::ServiceError;
use common::jwt::MeetingRole;
use common::meeting_code::MeetingCode;
use common::settings::MeetingSettings;
use common::shell::{Background, Shell, ShutdownTimings};
use gc_service::db::creates::Creates;
use gc_service::db::meetings::CREATE_MEETING_SQL;
use gc_service::domain::events::Origin;
use gc_service::domain::idempotency::IdempotencyRecord;
use gc_service::domain::meeting::{CreateMeeting, NewMeeting};
use gc_service::domain::secret::JoinTokenSecret;
use gc_service::error::Error;
use gc_service::use_cases::create::{Created, insert_with_fresh_codes};
use ring::rand::SystemRandom;
use serde_json::Value;
use sqlx::{Connection, PgPool};
use uuid::Uuid;

use crate::helpers::{
    HOST, MEMBER, StackOptions, TestStack, lock_waiters, spawn_stack,
    until_someone_waits_for_a_lock,
};

/// A create queue of the stack's pool (each starts its own writing task).
fn creates(stack: &TestStack) -> Creates {
    Creates::new(stack.pool.clone(), &Background::default())
}

fn new_meeting(stack: &TestStack, host: Uuid, code: &str) -> NewMeeting {
    NewMeeting {
        id: Uuid::now_v7(),
        org_id: stack.org_id,
        host_id: host,
        create: CreateMeeting {
            display_name: DisplayName::parse("Stored").unwrap(),
            max_participants: None,
            scheduled_start_time: None,
            settings: MeetingSettings::default(),
        },
        code: MeetingCode::parse(code).unwrap(),
        join_token_secret: JoinTokenSecret::generate(&SystemRandom::new()).unwrap(),
        idempotency: None::<IdempotencyRecord>,
    }
}

/// Stores a meeting of the stack's org hosted by `host`; its id.
pub async fn insert_meeting(stack: &TestStack, host: Uuid, code: &str) -> Uuid {
    let new = new_meeting(stack, host, code);
    let id = new.id;
    insert_with_fresh_codes(&creates(stack), new, Origin::default(), || {
        Err(Error::Internal("unused"))
    })
    .await
    .unwrap();
    id
}

async fn exec(pool: &PgPool, sql: &'static str) -> Result<u64, sqlx::Error> {
    sqlx::query(sql)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_live_counter_follows_ends_and_deletes_of_live_meetings(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let host = stack.user_id(HOST).await;
    let audit = Origin::default();
    for code in ["AAAAAAAAAAA1", "AAAAAAAAAAA2", "AAAAAAAAAAA3"] {
        let new = new_meeting(&stack, host, code);
        insert_with_fresh_codes(&creates(&stack), new, audit, || {
            Err(Error::Internal("unused"))
        })
        .await
        .unwrap();
    }
    assert_eq!(stack.live_meeting_count().await, 3);

    exec(&stack.pool, "update meetings set status = 'active', started_at = now() where meeting_code = 'AAAAAAAAAAA1'").await.unwrap();
    assert_eq!(
        stack.live_meeting_count().await,
        3,
        "scheduled -> active keeps the slot"
    );
    exec(&stack.pool, "update meetings set status = 'ended', ended_at = now() where meeting_code = 'AAAAAAAAAAA1'").await.unwrap();
    assert_eq!(stack.live_meeting_count().await, 2);
    exec(
        &stack.pool,
        "update meetings set display_name = 'Renamed' where meeting_code = 'AAAAAAAAAAA1'",
    )
    .await
    .unwrap();
    exec(
        &stack.pool,
        "delete from meetings where meeting_code = 'AAAAAAAAAAA1'",
    )
    .await
    .unwrap();
    assert_eq!(
        stack.live_meeting_count().await,
        2,
        "deleting an ended meeting frees nothing"
    );
    exec(
        &stack.pool,
        "delete from meetings where meeting_code = 'AAAAAAAAAAA2'",
    )
    .await
    .unwrap();
    assert_eq!(
        stack.live_meeting_count().await,
        1,
        "deleting a live meeting frees its slot"
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn ended_meetings_cannot_be_reopened_nor_moved_to_another_org(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let host = stack.user_id(HOST).await;
    insert_meeting(&stack, host, "BBBBBBBBBBB1").await;
    exec(
        &stack.pool,
        "insert into organizations (slug, name) values ('other', 'Other')",
    )
    .await
    .unwrap();

    let moved = exec(
        &stack.pool,
        "update meetings set org_id = (select id from organizations where slug = 'other')",
    )
    .await;
    assert!(moved.is_err());
    exec(
        &stack.pool,
        "update meetings set status = 'ended', ended_at = now()",
    )
    .await
    .unwrap();
    let reopened = exec(
        &stack.pool,
        "update meetings set status = 'scheduled', ended_at = null",
    )
    .await;
    assert!(reopened.is_err());
    assert_eq!(stack.live_meeting_count().await, 0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_code_collision_is_retried_with_a_fresh_code(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let host = stack.user_id(HOST).await;
    let audit = Origin::default();
    let taken = new_meeting(&stack, host, "TAKENTAKEN01");
    insert_with_fresh_codes(&creates(&stack), taken, audit, || {
        Err(Error::Internal("unused"))
    })
    .await
    .unwrap();

    // The first code and the first replacement collide; the second replacement is free.
    let mut replacements = vec!["FRESHFRESH01", "TAKENTAKEN01"];
    let new = new_meeting(&stack, host, "TAKENTAKEN01");
    let created = insert_with_fresh_codes(&creates(&stack), new, audit, || {
        Ok(MeetingCode::parse(replacements.pop().unwrap()).unwrap())
    })
    .await
    .unwrap();
    let Created::New(meeting) = created else {
        panic!("expected a new meeting")
    };
    assert_eq!(meeting.code.as_str(), "FRESHFRESH01");
    assert_eq!(stack.live_meeting_count().await, 2);
}

#[sqlx::test(migrations = "../../migrations")]
async fn three_collisions_in_a_row_give_up_with_code_collision_and_store_nothing(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let host = stack.user_id(HOST).await;
    let audit = Origin::default();
    let taken = new_meeting(&stack, host, "TAKENTAKEN01");
    insert_with_fresh_codes(&creates(&stack), taken, audit, || {
        Err(Error::Internal("unused"))
    })
    .await
    .unwrap();

    let mut draws = 0;
    let new = new_meeting(&stack, host, "TAKENTAKEN01");
    let result = insert_with_fresh_codes(&creates(&stack), new, audit, || {
        draws += 1;
        Ok(MeetingCode::parse("TAKENTAKEN01").unwrap())
    })
    .await;
    assert!(matches!(result, Err(Error::CodeCollision(3))), "{result:?}");
    assert_eq!(
        draws, 2,
        "three attempts: the first code and two replacements"
    );
    let api = result.unwrap_err().api_error();
    assert_eq!(api.message, "internal error");
    assert_eq!(stack.meeting_count().await, 1);
    assert_eq!(stack.live_meeting_count().await, 1);
}

/// Buffers the create statement touches, read from its plan: executed twice on one connection
/// (the first run of a session also loads catalogs and compiles the trigger) and measured the
/// second time, in a transaction that is rolled back. `probe` is 11 characters.
async fn create_statement_buffers(stack: &TestStack, host: Uuid, probe: &str) -> (u64, Value) {
    let mut conn = stack.pool.acquire().await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "prepare {probe} as {CREATE_MEETING_SQL}"
    )))
    .execute(&mut *tx)
    .await
    .unwrap();
    let mut plan = Value::Null;
    for run in 1..=2 {
        plan = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "explain (analyze, buffers, format json) execute {probe}(
                gen_random_uuid(), '{org}', '{host}', '{probe}{run}', 'Probe', null,
                true, false, true, true, false, false, false,
                decode(md5('a') || md5('b'), 'hex'), null, null, null, '127.0.0.1', 'probe')",
            org = stack.org_id,
        )))
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    }
    tx.rollback().await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("deallocate {probe}")))
        .execute(&mut *conn)
        .await
        .unwrap();
    let root = &plan[0]["Plan"];
    let blocks = ["Shared Hit Blocks", "Shared Read Blocks"]
        .iter()
        .map(|k| root[*k].as_u64().unwrap_or(0))
        .sum();
    (blocks, plan)
}

fn scans_meetings(node: &Value) -> bool {
    let is_scan = node["Relation Name"] == "meetings" && node["Node Type"] != "ModifyTable";
    let is_aggregate = node["Node Type"] == "Aggregate";
    is_scan
        || is_aggregate
        || node["Plans"]
            .as_array()
            .is_some_and(|children| children.iter().any(scans_meetings))
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_create_statement_costs_the_same_with_20000_meetings_in_the_org(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let host = stack.user_id(HOST).await;
    stack.set_org_limits(100_000, 100).await;
    let (empty, _) = create_statement_buffers(&stack, host, "emptyprobe0").await;

    sqlx::query(
        "insert into meetings (org_id, host_id, meeting_code, display_name, max_participants,
                               join_token_secret, status, ended_at)
         select $1, $2, substr(md5(i::text), 1, 12), 'Bulk', 10,
                decode(md5(i::text) || md5(i::text), 'hex'),
                case when i % 2 = 0 then 'ended' else 'scheduled' end,
                case when i % 2 = 0 then now() end
         from generate_series(1, 20000) i",
    )
    .bind(stack.org_id)
    .bind(host)
    .execute(&stack.pool)
    .await
    .unwrap();
    // What autovacuum does in production: the bulk insert above updated the org row 10,000
    // times in one transaction.
    sqlx::raw_sql("vacuum analyze organizations, meetings")
        .execute(&stack.pool)
        .await
        .unwrap();
    assert_eq!(stack.live_meeting_count().await, 10_000);

    let (full, plan) = create_statement_buffers(&stack, host, "fullprobe00").await;
    assert!(
        !scans_meetings(&plan[0]["Plan"]),
        "the create must not read other meetings: {plan}"
    );
    // Index descents get at most a level or two deeper; counting the org's meetings would touch
    // hundreds of pages.
    assert!(
        full <= empty + 8,
        "buffers with 0 meetings: {empty}, with 20000: {full}"
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn creates_and_ends_leave_an_orgs_updated_at_alone(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let host = stack.user_id(HOST).await;
    let long_ago: chrono::DateTime<chrono::Utc> = "2000-01-01T00:00:00Z".parse().unwrap();
    sqlx::query("update organizations set updated_at = $2 where id = $1")
        .bind(stack.org_id)
        .bind(long_ago)
        .execute(&stack.pool)
        .await
        .unwrap();
    let updated_at = || async {
        sqlx::query_scalar::<_, chrono::DateTime<chrono::Utc>>(
            "select updated_at from organizations where id = $1",
        )
        .bind(stack.org_id)
        .fetch_one(&stack.pool)
        .await
        .unwrap()
    };

    insert_meeting(&stack, host, "UPDATEDAT001").await;
    exec(
        &stack.pool,
        "update meetings set status = 'ended', ended_at = now()",
    )
    .await
    .unwrap();
    assert_eq!(updated_at().await, long_ago);

    stack.set_org_limits(20, 100).await;
    assert!(updated_at().await > long_ago);
}

#[sqlx::test(migrations = "../../migrations")]
async fn an_org_over_a_lowered_limit_shrinks_back_as_its_meetings_end(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let host = stack.user_id(HOST).await;
    let audit = Origin::default();
    for i in 0..6 {
        let new = new_meeting(&stack, host, &format!("SHRINK{i:06}"));
        insert_with_fresh_codes(&creates(&stack), new, audit, || {
            Err(Error::Internal("unused"))
        })
        .await
        .unwrap();
    }

    stack.set_org_limits(2, 100).await;
    assert_eq!(stack.check_slots().await, (6, 2));
    let refused = insert_with_fresh_codes(
        &creates(&stack),
        new_meeting(&stack, host, "SHRINKREFUSE"),
        audit,
        || Err(Error::Internal("unused")),
    )
    .await;
    assert!(
        matches!(refused, Err(Error::OrgMeetingLimitReached)),
        "{refused:?}"
    );

    // Four ends bring the org back to its limit; still no room.
    exec(
        &stack.pool,
        "update meetings set status = 'ended', ended_at = now()
         where meeting_code in ('SHRINK000000', 'SHRINK000001', 'SHRINK000002', 'SHRINK000003')",
    )
    .await
    .unwrap();
    assert_eq!(stack.check_slots().await, (2, 2));
    let refused = insert_with_fresh_codes(
        &creates(&stack),
        new_meeting(&stack, host, "SHRINKREFUSE"),
        audit,
        || Err(Error::Internal("unused")),
    )
    .await;
    assert!(matches!(refused, Err(Error::OrgMeetingLimitReached)));

    // One more end frees exactly one place.
    exec(
        &stack.pool,
        "delete from meetings where meeting_code = 'SHRINK000004'",
    )
    .await
    .unwrap();
    assert_eq!(stack.check_slots().await, (1, 2));
    insert_with_fresh_codes(
        &creates(&stack),
        new_meeting(&stack, host, "SHRINKFITS01"),
        audit,
        || Err(Error::Internal("unused")),
    )
    .await
    .unwrap();
    assert_eq!(stack.check_slots().await, (2, 2));

    // Raising the limit spreads the new room over the slots.
    stack.set_org_limits(50, 100).await;
    assert_eq!(stack.check_slots().await, (2, 50));
    let slots: i64 = sqlx::query_scalar("select count(*) from org_meeting_slots where org_id = $1")
        .bind(stack.org_id)
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    assert_eq!(slots, 32);
}

/// The next seat number a room would give: seats of one test never share a number.
fn next_seat() -> i64 {
    static SEATS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(1);
    SEATS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// `user`'s admission with `role` to a new seat.
fn seated(user: Uuid, role: &'static str) -> gc_service::db::participants::Seated {
    gc_service::db::participants::Seated {
        user_id: user,
        role: if role == "host" {
            MeetingRole::Host
        } else {
            MeetingRole::Guest
        },
        seat: next_seat(),
    }
}

/// The meeting's visits still open.
async fn open_visits(pool: &PgPool, meeting_id: Uuid) -> i64 {
    sqlx::query_scalar(
        "select count(*) from participants where meeting_id = $1 and left_at is null",
    )
    .bind(meeting_id)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// How the meeting stands when the end and the admission race.
#[derive(Clone, Copy, Debug)]
enum BeforeTheRace {
    /// Nobody joined yet: the admission would make it active.
    Scheduled,
    /// The host is seated: the admission changes nothing of the meeting row.
    Active,
    /// Active, with its empty clock running: the admission would stop it.
    ActiveEmpty,
}

/// The interleaving that used to leave a visit open on an ended meeting: the end has marked
/// the meeting ended and closed its visits but not committed, when an admission starts. The
/// admission must wait for the end and then record nothing, whether it would have updated the
/// meeting row or not.
#[sqlx::test(migrations = "../../migrations")]
async fn an_admission_racing_an_end_leaves_no_visit_open(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    for (i, before) in [
        BeforeTheRace::Scheduled,
        BeforeTheRace::Active,
        BeforeTheRace::ActiveEmpty,
    ]
    .into_iter()
    .enumerate()
    {
        admission_racing_an_end(&stack, &format!("RACEENDJOIN{i}"), before, None).await;
        // The same admission sharing its statement with one into another, live meeting: that
        // one is recorded, the ended one's is not.
        let host = stack.user_id(HOST).await;
        let other_id = insert_meeting(&stack, host, &format!("RACEOTHERJN{i}")).await;
        admission_racing_an_end(&stack, &format!("RACEBATCHJN{i}"), before, Some(other_id)).await;
        assert_eq!(open_visits(&stack.pool, other_id).await, 1, "{before:?}");
    }
}

/// Records the host's admission, which makes the meeting active.
async fn seat_host(stack: &TestStack, meeting_id: Uuid, host: Uuid) {
    use gc_service::domain::events::Actor;
    let opened = gc_service::db::participants::admit(
        &stack.pool,
        meeting_id,
        stack.org_id,
        &[seated(host, "host")],
        Actor::System,
    )
    .await
    .unwrap();
    assert_eq!(
        opened.map(|m| m.opened),
        Some(1),
        "the host is seated in the live meeting"
    );
}

/// The leave of the host's seat, as the room answered it when the host left an empty room.
fn hosts_leave(
    meeting: &gc_service::domain::meeting::Meeting,
    host: Uuid,
    seat: i64,
) -> gc_service::db::participants::Leave<'static> {
    gc_service::db::participants::Leave {
        meeting_id: meeting.id,
        org_id: meeting.org_id,
        user_id: host,
        reason: "left",
        left_at: None,
        seat: Some(gc_service::db::participants::EndedSeat {
            seat,
            role: MeetingRole::Host,
            joined_at: None,
        }),
        last_seat: seat,
        room_empty: true,
    }
}

/// Whether the meeting's empty-meeting clock runs.
async fn empty_clock_runs(pool: &PgPool, meeting_id: Uuid) -> bool {
    sqlx::query_scalar("select empty_since is not null from meetings where id = $1")
        .bind(meeting_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// A seat's admission and its leave (which empties the room) recorded at once, in both orders
/// of taking the meeting's row: both are recorded, neither deadlocks nor undoes the other, and
/// the meeting ends up with no visit open and its empty clock running, as the room says. The
/// leave used to close the visit and then wait for the meeting's row, which the admission held
/// while it waited for that visit (a deadlock the API fuzzer found); and an admission recorded
/// after the leave of its own seat used to reopen the visit (a ghost, issue 22).
#[sqlx::test(migrations = "../../migrations")]
async fn a_seats_admission_and_its_leave_agree_in_either_order(pool: PgPool) {
    use gc_service::db::{meetings, participants};
    use gc_service::domain::events::Actor;

    let stack = spawn_stack(pool, StackOptions::default()).await;
    let host = stack.user_id(HOST).await;
    for (i, admission_first) in [true, false].into_iter().enumerate() {
        let meeting_id = insert_meeting(&stack, host, &format!("RACELEAVEJN{i}")).await;
        seat_host(&stack, meeting_id, host).await;
        let meeting = meetings::find_meeting(&stack.pool, meeting_id)
            .await
            .unwrap()
            .unwrap();
        // The host joins again (a new seat), and leaves it at once.
        let seat = seated(host, "host");
        let leave = hosts_leave(&meeting, host, seat.seat);

        // Whichever goes first holds the meeting's row, its writes made but not committed,
        // while the other starts and waits for the row.
        let mut first = stack.pool.begin().await.unwrap();
        if admission_first {
            participants::admit(
                &mut *first,
                meeting_id,
                stack.org_id,
                &[seat],
                Actor::System,
            )
            .await
            .unwrap();
        } else {
            participants::record_leave_in(&mut first, &leave, Actor::System)
                .await
                .unwrap();
        }
        let (pool, org) = (stack.pool.clone(), stack.org_id);
        let second = tokio::spawn(async move {
            if admission_first {
                participants::record_leave(&pool, &leave, Actor::System)
                    .await
                    .map(|_| ())
            } else {
                participants::admit(&pool, meeting_id, org, &[seat], Actor::System)
                    .await
                    .map(|_| ())
            }
        });
        until_someone_waits_for_a_lock(&stack.pool).await;
        first.commit().await.unwrap();
        let second = second.await.unwrap();
        assert!(second.is_ok(), "{second:?}");

        let order = if admission_first {
            "admission first"
        } else {
            "leave first"
        };
        assert_eq!(open_visits(&stack.pool, meeting_id).await, 0, "{order}");
        assert!(empty_clock_runs(&stack.pool, meeting_id).await, "{order}");
        let rows: i64 = sqlx::query_scalar(
            "select count(*) from participants where meeting_id = $1 and seat = $2",
        )
        .bind(meeting_id)
        .bind(seat.seat)
        .fetch_one(&stack.pool)
        .await
        .unwrap();
        assert_eq!(rows, 1, "{order}: the seat has one visit, closed");
    }
}

/// `with`: admit through one statement with an admission into that other meeting too
/// ([`gc_service::db::participants::admit_batch`]), instead of alone.
async fn admission_racing_an_end(
    stack: &TestStack,
    code: &str,
    before: BeforeTheRace,
    with: Option<Uuid>,
) {
    use gc_service::db::Recorded;
    use gc_service::db::admissions::AdmissionRows;
    use gc_service::db::{meetings, participants};
    use gc_service::domain::events::{Actor, EndReason};

    let host = stack.user_id(HOST).await;
    let guest = stack.user_id(MEMBER).await;
    let meeting_id = insert_meeting(stack, host, code).await;
    let already_seated: u64 = match before {
        BeforeTheRace::Scheduled => 0,
        BeforeTheRace::Active | BeforeTheRace::ActiveEmpty => {
            seat_host(stack, meeting_id, host).await;
            1
        }
    };
    if let BeforeTheRace::ActiveEmpty = before {
        sqlx::query("update meetings set empty_since = now() where id = $1")
            .bind(meeting_id)
            .execute(&stack.pool)
            .await
            .unwrap();
    }

    let mut ending = stack.pool.begin().await.unwrap();
    let ended = meetings::end(
        &mut *ending,
        meeting_id,
        EndReason::EndedByHost,
        Actor::System,
    )
    .await
    .unwrap();
    assert!(
        matches!(ended, Recorded::Done(Some((_, closed))) if closed == already_seated),
        "{ended:?}"
    );
    let pool = stack.pool.clone();
    let org_id = stack.org_id;
    let admitting = tokio::spawn(async move {
        match with {
            None => {
                participants::admit(
                    &pool,
                    meeting_id,
                    org_id,
                    &[seated(guest, "guest")],
                    Actor::System,
                )
                .await
            }
            Some(other) => {
                let mut rows = AdmissionRows::default();
                rows.add(other, org_id, seated(guest, "guest"), Actor::System);
                rows.add(meeting_id, org_id, seated(guest, "guest"), Actor::System);
                // Only the other meeting's visit opens.
                participants::admit_batch(&pool, &rows)
                    .await
                    .map(|all| all.into_iter().find(|m| m.meeting_id == meeting_id))
            }
        }
    });
    // Commit only once the admission has run to its end or is waiting for the end's lock, so
    // that its snapshot surely predates the end's commit.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !admitting.is_finished() && lock_waiters(&stack.pool).await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the admission never ran"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    ending.commit().await.unwrap();

    let admitted = admitting.await.unwrap().unwrap();
    assert_eq!(
        admitted, None,
        "{before:?}: nothing is recorded for an ended meeting"
    );
    assert_eq!(open_visits(&stack.pool, meeting_id).await, 0, "{before:?}");
    let status: String = sqlx::query_scalar("select status from meetings where id = $1")
        .bind(meeting_id)
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    assert_eq!(
        status, "ended",
        "{before:?}: the admission did not reopen it"
    );
    let admitted: i64 = sqlx::query_scalar(
        "select count(*) from audit_logs
         where resource_id = $1::text and action = 'participant_admitted'",
    )
    .bind(meeting_id)
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    assert_eq!(
        admitted,
        i64::try_from(already_seated).unwrap(),
        "{before:?}: only the host's admission is in the audit log"
    );
}

/// An end that waits for the meeting's row while an admission holds it, the admission's
/// visit not yet committed: the end's statement read the visits before that commit, so it
/// must not end the meeting with that visit left open. It finds the row changed, writes
/// nothing, and is run again: the meeting ends with every visit closed, the admitted one
/// counted in its `meeting_ended` row. Without the check of the row's version, the admitted
/// visit stays open in an ended meeting.
#[sqlx::test(migrations = "../../migrations")]
async fn an_end_waiting_for_an_admission_closes_the_visit_it_opened(pool: PgPool) {
    use gc_service::db::{meetings, participants};
    use gc_service::domain::events::{Actor, EndReason};

    let stack = spawn_stack(pool, StackOptions::default()).await;
    let host = stack.user_id(HOST).await;
    let guest = stack.user_id(MEMBER).await;
    for round in 0..3 {
        let meeting_id = insert_meeting(&stack, host, &format!("ENDWAITSJNX{round}")).await;
        if round > 0 {
            seat_host(&stack, meeting_id, host).await;
        }
        let mut admitting = stack.pool.begin().await.unwrap();
        let admitted = participants::admit(
            &mut *admitting,
            meeting_id,
            stack.org_id,
            &[seated(guest, "guest")],
            Actor::System,
        )
        .await
        .unwrap();
        assert_eq!(admitted.map(|m| m.opened), Some(1));
        let pool = stack.pool.clone();
        let ending = tokio::spawn(async move {
            meetings::end_and_record(&pool, meeting_id, EndReason::EndedByHost, Actor::System).await
        });
        until_someone_waits_for_a_lock(&stack.pool).await;
        admitting.commit().await.unwrap();
        let (ended, closed) = ending.await.unwrap().unwrap().expect("the end ended it");
        assert!(ended.status.is_ended());
        let seated_before = if round > 0 { 2 } else { 1 };
        assert_eq!(closed, seated_before, "round {round}: every visit closed");
        assert_eq!(
            open_visits(&stack.pool, meeting_id).await,
            0,
            "round {round}"
        );
        let present: Vec<serde_json::Value> = sqlx::query_scalar(
            "select details from audit_logs
             where resource_id = $1::text and action = 'meeting_ended'",
        )
        .bind(meeting_id)
        .fetch_all(&stack.pool)
        .await
        .unwrap();
        assert_eq!(
            present,
            vec![
                serde_json::json!({"reason": "ended_by_host", "participants_present": seated_before})
            ],
            "round {round}: one end, counting the admitted visit"
        );
    }
}

/// A leave without a seat (the room no longer held one: every visit of the user up to the
/// room's last seat is stale) that waits for the meeting's row while an admission of an earlier
/// seat of that user holds it: the admission's visit is closed too, by the statement run again
/// with a snapshot that shows it. Without the check of the row's version it stays open.
#[sqlx::test(migrations = "../../migrations")]
async fn a_leave_waiting_for_an_admission_closes_the_visit_it_opened(pool: PgPool) {
    use gc_service::db::participants::{self, Leave};
    use gc_service::domain::events::Actor;

    let stack = spawn_stack(pool, StackOptions::default()).await;
    let host = stack.user_id(HOST).await;
    let guest = stack.user_id(MEMBER).await;
    for room_empty in [false, true] {
        let meeting_id = insert_meeting(
            &stack,
            host,
            &format!("LEAVEWAITSJ{}", u8::from(room_empty)),
        )
        .await;
        seat_host(&stack, meeting_id, host).await;
        let seat = seated(guest, "guest");
        let mut admitting = stack.pool.begin().await.unwrap();
        participants::admit(
            &mut *admitting,
            meeting_id,
            stack.org_id,
            &[seat],
            Actor::System,
        )
        .await
        .unwrap();
        let leave = Leave {
            meeting_id,
            org_id: stack.org_id,
            user_id: guest,
            reason: "left",
            left_at: None,
            seat: None,
            last_seat: seat.seat,
            room_empty,
        };
        let pool = stack.pool.clone();
        let leaving =
            tokio::spawn(
                async move { participants::record_leave(&pool, &leave, Actor::System).await },
            );
        until_someone_waits_for_a_lock(&stack.pool).await;
        admitting.commit().await.unwrap();
        assert!(
            leaving.await.unwrap().unwrap(),
            "room_empty {room_empty}: the leave closed the admitted visit"
        );
        let open: i64 = sqlx::query_scalar(
            "select count(*) from participants
             where meeting_id = $1 and user_id = $2 and left_at is null",
        )
        .bind(meeting_id)
        .bind(guest)
        .fetch_one(&stack.pool)
        .await
        .unwrap();
        assert_eq!(open, 0, "room_empty {room_empty}");
        let left: i64 = sqlx::query_scalar(
            "select count(*) from audit_logs
             where resource_id = $1::text and action = 'participant_left'",
        )
        .bind(meeting_id)
        .fetch_one(&stack.pool)
        .await
        .unwrap();
        assert_eq!(left, 1, "room_empty {room_empty}: one participant_left row");
    }
}

/// `count` more users of the stack's org, like `like` (its roles and password hash), with
/// e-mails `{name}{i}@acme.test`.
async fn more_users(stack: &TestStack, like: Uuid, name: &str, count: usize) -> Vec<Uuid> {
    let mut users = Vec::with_capacity(count);
    for i in 0..count {
        let id = Uuid::new_v4();
        sqlx::query(
            "insert into users (id, org_id, email, password_hash, display_name, roles)
             select $1, org_id, $2, password_hash, 'Crowd', roles from users where id = $3",
        )
        .bind(id)
        .bind(format!("{name}{i}@acme.test"))
        .bind(like)
        .execute(&stack.pool)
        .await
        .unwrap();
        users.push(id);
    }
    users
}

/// Many first admissions of a meeting nobody has joined yet, at once (a storm on a cold room):
/// one of them makes the meeting active, and every one records its visit. None may deadlock
/// with another over the meeting row.
#[sqlx::test(migrations = "../../migrations")]
async fn simultaneous_first_admissions_all_record_and_none_deadlocks(pool: PgPool) {
    use gc_service::db::participants;
    use gc_service::domain::events::Actor;

    let stack = spawn_stack(pool, StackOptions::default()).await;
    let host = stack.user_id(HOST).await;
    let users = more_users(&stack, host, "storm", 24).await;
    for round in 0..5 {
        let meeting_id = insert_meeting(&stack, host, &format!("COLDSTORM00{round}")).await;
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(users.len()));
        let admissions = users.iter().map(|&user| {
            let pool = stack.pool.clone();
            let barrier = barrier.clone();
            let org_id = stack.org_id;
            tokio::spawn(async move {
                barrier.wait().await;
                participants::admit(
                    &pool,
                    meeting_id,
                    org_id,
                    &[seated(user, "guest")],
                    Actor::System,
                )
                .await
            })
        });
        for admission in futures::future::join_all(admissions).await {
            let admitted = admission.unwrap().unwrap();
            assert_eq!(admitted.map(|m| m.opened), Some(1), "round {round}");
        }
        assert_eq!(
            open_visits(&stack.pool, meeting_id).await,
            24,
            "round {round}"
        );
        let status: String = sqlx::query_scalar("select status from meetings where id = $1")
            .bind(meeting_id)
            .fetch_one(&stack.pool)
            .await
            .unwrap();
        assert_eq!(status, "active");
    }
}

/// An audit row's meeting, `actor_type:actor_id`, address and user agent.
type AuditRow = (String, Option<String>, Option<String>, Option<String>);

/// Admissions queued while a statement runs are recorded together, in one transaction, with
/// each one's actor; the same user admitted twice is audited once. When that statement fails,
/// each admission is written alone: only the one at fault fails.
#[sqlx::test(migrations = "../../migrations")]
async fn queued_admissions_share_a_transaction_and_fail_alone(pool: PgPool) {
    use gc_service::db::admissions::Admissions;
    use gc_service::domain::events::Actor;
    use gc_service::domain::meeting::{MeetingStart, MeetingStatus};
    use std::future::Future;
    use std::pin::Pin;
    use std::task::Poll;

    type Recording<'a> = Pin<Box<dyn Future<Output = Answer> + Send + 'a>>;
    type Answer = Result<Option<gc_service::db::participants::AdmittedMeeting>, sqlx::Error>;
    /// Polls once: by then the admission is queued (the queue has room) and waits for its
    /// statement.
    async fn queued(mut recording: Recording<'_>) -> Recording<'_> {
        assert!(matches!(futures::poll!(&mut recording), Poll::Pending));
        recording
    }

    let stack = spawn_stack(pool, StackOptions::default()).await;
    let host = stack.user_id(HOST).await;
    let guest = stack.user_id(MEMBER).await;
    let admissions = Admissions::new(stack.pool.clone(), &Background::default());
    let org = stack.org_id;
    let from_a_browser = Actor::User {
        id: guest,
        from: Origin {
            ip: Some("203.0.113.7".parse().unwrap()),
            user_agent: Some("Browser/1.0"),
        },
    };

    let overlong_agent = "x".repeat(600);
    for phase in ["together", "one fails"] {
        let blocked = insert_meeting(&stack, host, &format!("QUEUEBLOCK{:02}", phase.len())).await;
        let first = insert_meeting(&stack, host, &format!("QUEUEFIRST{:02}", phase.len())).await;
        let second = insert_meeting(&stack, host, &format!("QUEUESECND{:02}", phase.len())).await;
        // Holds the writer on its first statement, so that what follows queues behind it.
        let mut holder = stack.pool.begin().await.unwrap();
        sqlx::query("select 1 from meetings where id = $1 for update")
            .bind(blocked)
            .execute(&mut *holder)
            .await
            .unwrap();
        let ahead = queued(Box::pin(admissions.record(
            blocked,
            org,
            vec![seated(host, "host")],
            Actor::System,
        )))
        .await;
        until_someone_waits_for_a_lock(&stack.pool).await;
        let guests_seat = seated(guest, "guest");
        let mut behind = vec![
            queued(Box::pin(admissions.record(
                first,
                org,
                vec![seated(host, "host"), seated(guest, "guest")],
                Actor::System,
            )))
            .await,
            queued(Box::pin(admissions.record(
                second,
                org,
                vec![guests_seat],
                from_a_browser,
            )))
            .await,
            // Admitted again by someone else in the same statement: recorded once.
            queued(Box::pin(admissions.record(
                second,
                org,
                vec![guests_seat],
                Actor::System,
            )))
            .await,
        ];
        if phase == "one fails" {
            // An audit row the table refuses (a user agent over its 512 characters; GC's
            // client info cuts longer ones, this test does not): that admission's statement
            // fails, and only its caller hears of it.
            behind.push(
                queued(Box::pin(admissions.record(
                    second,
                    org,
                    vec![seated(Uuid::new_v4(), "guest")],
                    Actor::User {
                        id: guest,
                        from: Origin {
                            ip: None,
                            user_agent: Some(&overlong_agent),
                        },
                    },
                )))
                .await,
            );
        }
        holder.commit().await.unwrap();
        ahead.await.unwrap();
        let results = futures::future::join_all(behind).await;
        let (last, rest) = results.split_last().unwrap();
        for result in rest {
            result.as_ref().unwrap();
        }
        if phase == "one fails" {
            assert!(last.is_err(), "the admission of nobody fails");
        } else {
            last.as_ref().unwrap();
        }
        // Each is answered with its own meeting as the statement left it: active, since the
        // time its row holds.
        let answered = results.iter().filter_map(|result| result.as_ref().ok());
        for (answer, meeting) in answered.zip([first, second, second]) {
            let admitted = answer.expect("a live meeting's admission is recorded");
            let started_at: Option<chrono::DateTime<chrono::Utc>> =
                sqlx::query_scalar("select started_at from meetings where id = $1")
                    .bind(meeting)
                    .fetch_one(&stack.pool)
                    .await
                    .unwrap();
            assert_eq!(admitted.meeting_id, meeting, "{phase}");
            assert_eq!(
                admitted.start,
                MeetingStart {
                    status: MeetingStatus::Active,
                    started_at
                },
                "{phase}"
            );
            assert!(started_at.is_some());
        }

        assert_eq!(open_visits(&stack.pool, first).await, 2, "{phase}");
        assert_eq!(open_visits(&stack.pool, second).await, 1, "{phase}");
        let transactions: i64 = sqlx::query_scalar(
            "select count(distinct xmin::text) from participants where meeting_id in ($1, $2)",
        )
        .bind(first)
        .bind(second)
        .fetch_one(&stack.pool)
        .await
        .unwrap();
        let expected = if phase == "together" { 1 } else { 2 };
        assert_eq!(
            transactions, expected,
            "{phase}: visits recorded per transaction"
        );
        let audit: Vec<AuditRow> = sqlx::query_as(
            "select resource_id, actor_type || ':' || coalesce(actor_id, ''), host(ip),
                        user_agent
                 from audit_logs
                 where action = 'participant_admitted' and resource_id in ($1::text, $2::text)
                 order by resource_id, details->>'role', details->>'user_id'",
        )
        .bind(first)
        .bind(second)
        .fetch_all(&stack.pool)
        .await
        .unwrap();
        let sys = Some("system:".to_owned());
        let mut want = vec![
            (first.to_string(), sys.clone(), None, None),
            (first.to_string(), sys.clone(), None, None),
            (
                second.to_string(),
                Some(format!("user:{guest}")),
                Some("203.0.113.7".to_owned()),
                Some("Browser/1.0".to_owned()),
            ),
        ];
        want.sort();
        let mut got = audit;
        got.sort();
        assert_eq!(
            got, want,
            "{phase}: one audit row per visit, with its actor"
        );
    }
}

/// With no connection to be had, the admissions queued behind the first fail together with the
/// pool's timeout (a 503 to their callers), instead of each waiting out the timeout in turn
/// while the queue stalls; and the queue works again once a connection is free.
#[sqlx::test(migrations = "../../migrations")]
async fn a_starved_pool_fails_queued_admissions_together(pool: PgPool) {
    use gc_service::db::admissions::Admissions;
    use gc_service::domain::events::Actor;
    use sqlx::postgres::PgPoolOptions;
    use std::time::{Duration, Instant};

    let stack = spawn_stack(pool, StackOptions::default()).await;
    let host = stack.user_id(HOST).await;
    let users = more_users(&stack, host, "starved", 6).await;
    let meeting = insert_meeting(&stack, host, "STARVEDPOOL0").await;
    let timeout = Duration::from_millis(500);
    let small = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(timeout)
        .connect_with((*stack.pool.connect_options()).clone())
        .await
        .unwrap();
    let admissions = Admissions::new(small.clone(), &Background::default());
    let held = small.acquire().await.unwrap();

    let started = Instant::now();
    let results = futures::future::join_all(users[..5].iter().map(|&user| {
        admissions.record(
            meeting,
            stack.org_id,
            vec![seated(user, "guest")],
            Actor::System,
        )
    }))
    .await;
    let took = started.elapsed();
    for result in results {
        assert!(
            matches!(result, Err(sqlx::Error::PoolTimedOut)),
            "{result:?}"
        );
    }
    // The first statement and the shared one each wait out one timeout; five statements one
    // after the other would take five.
    assert!(took < timeout * 4, "took {took:?}");

    drop(held);
    admissions
        .record(
            meeting,
            stack.org_id,
            vec![seated(users[5], "guest")],
            Actor::System,
        )
        .await
        .unwrap();
    assert_eq!(open_visits(&stack.pool, meeting).await, 1);
}

/// Two GC replicas' queues admitting a crowd into the same cold meetings at once, every
/// statement mixing several meetings: each visit is recorded once with its audit row, every
/// meeting becomes active, and no admission fails (statements that crossed and deadlocked are
/// written again one by one).
#[sqlx::test(migrations = "../../migrations")]
async fn two_replicas_admitting_into_the_same_cold_meetings_record_everyone_once(pool: PgPool) {
    use gc_service::db::admissions::Admissions;
    use gc_service::domain::events::Actor;

    let stack = spawn_stack(pool, StackOptions::default()).await;
    let host = stack.user_id(HOST).await;
    let users = more_users(&stack, host, "crowd", 30).await;
    let mut meetings = Vec::new();
    for m in 0..6 {
        meetings.push(insert_meeting(&stack, host, &format!("CROWDROOM{m:03}")).await);
    }
    let replicas = [
        Admissions::new(stack.pool.clone(), &Background::default()),
        Admissions::new(stack.pool.clone(), &Background::default()),
    ];
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(users.len() * meetings.len()));
    let mut tasks = Vec::new();
    for (u, &user) in users.iter().enumerate() {
        for (m, &meeting) in meetings.iter().enumerate() {
            // Each (user, meeting) pair is admitted by both replicas for one pair in five.
            let mut by = vec![replicas[(u + m) % 2].clone()];
            if (u + m) % 5 == 0 {
                by.push(replicas[(u + m + 1) % 2].clone());
            }
            let barrier = barrier.clone();
            let org = stack.org_id;
            // Both replicas record the same seat: the room gave one.
            let seat = seated(user, "guest");
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                for replica in by {
                    replica
                        .record(meeting, org, vec![seat], Actor::System)
                        .await?;
                }
                Ok::<_, sqlx::Error>(())
            }));
        }
    }
    for task in futures::future::join_all(tasks).await {
        task.unwrap().unwrap();
    }
    for &meeting in &meetings {
        assert_eq!(open_visits(&stack.pool, meeting).await, 30);
        let (status, audited): (String, i64) = sqlx::query_as(
            "select m.status, (select count(*) from audit_logs a
                               where a.resource_id = m.id::text
                                 and a.action = 'participant_admitted')
             from meetings m where m.id = $1",
        )
        .bind(meeting)
        .fetch_one(&stack.pool)
        .await
        .unwrap();
        assert_eq!(status, "active");
        assert_eq!(audited, 30, "one audit row per visit");
    }
}

/// Two GC replicas record the first seats of the same new meeting at the same moment, 200
/// times: each meeting's start is recorded exactly once, before its admissions.
#[sqlx::test(migrations = "../../migrations")]
async fn two_replicas_starting_the_same_meeting_record_its_start_once(pool: PgPool) {
    use gc_service::db::admissions::Admissions;
    use gc_service::domain::events::Actor;

    const TRIALS: usize = 200;
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let host = stack.user_id(HOST).await;
    let users = more_users(&stack, host, "starter", 2).await;
    stack
        .set_org_limits(i32::try_from(TRIALS).unwrap(), 100)
        .await;
    let replicas = [
        Admissions::new(stack.pool.clone(), &Background::default()),
        Admissions::new(stack.pool.clone(), &Background::default()),
    ];
    let org = stack.org_id;
    let mut wrong = Vec::new();
    for trial in 0..TRIALS {
        let meeting = insert_meeting(&stack, host, &format!("STARTRACE{trial:03}")).await;
        let (first, second) = tokio::join!(
            replicas[0].record(meeting, org, vec![seated(users[0], "guest")], Actor::System),
            replicas[1].record(meeting, org, vec![seated(users[1], "guest")], Actor::System),
        );
        first.unwrap();
        second.unwrap();
        let actions: Vec<String> = sqlx::query_scalar(
            "select action from audit_logs where resource_id = $1::text order by id",
        )
        .bind(meeting)
        .fetch_all(&stack.pool)
        .await
        .unwrap();
        let expected = [
            "meeting_created",
            "meeting_started",
            "participant_admitted",
            "participant_admitted",
        ];
        if actions != expected {
            wrong.push((trial, actions));
        }
    }
    assert!(wrong.is_empty(), "{} of {TRIALS}: {wrong:?}", wrong.len());
}

/// Lookups queued while a statement runs are read together, and each caller gets the meeting
/// of its own code (or none), as it stands when the statement runs: one ended meanwhile is
/// read as ended.
#[sqlx::test(migrations = "../../migrations")]
async fn queued_lookups_each_get_their_own_meeting(pool: PgPool) {
    use gc_service::db::lookups::Lookups;
    use std::task::Poll;

    let stack = spawn_stack(pool, StackOptions::default()).await;
    let host = stack.user_id(HOST).await;
    let lookups = Lookups::new(stack.pool.clone(), 30, &Background::default());
    let first = insert_meeting(&stack, host, "LOOKUPFIRST0").await;
    let second = insert_meeting(&stack, host, "LOOKUPSECND0").await;
    let code = |c: &str| MeetingCode::parse(c).unwrap();

    // Holds the reader on its first statement, so that what follows queues behind it.
    let mut holder = stack.pool.begin().await.unwrap();
    sqlx::query("lock table meetings in access exclusive mode")
        .execute(&mut *holder)
        .await
        .unwrap();
    let mut ahead = Box::pin(lookups.find(code("LOOKUPFIRST0")));
    assert!(matches!(futures::poll!(&mut ahead), Poll::Pending));
    until_someone_waits_for_a_lock(&stack.pool).await;
    let mut behind = Vec::new();
    for c in [
        "LOOKUPSECND0",
        "LOOKUPFIRST0",
        "NOSUCHCODE00",
        "LOOKUPSECND0",
    ] {
        let mut lookup = Box::pin(lookups.find(code(c)));
        assert!(matches!(futures::poll!(&mut lookup), Poll::Pending));
        behind.push(lookup);
    }
    // Ended while the lookups wait: they read it ended.
    sqlx::query("update meetings set status = 'ended', ended_at = now() where id = $1")
        .bind(second)
        .execute(&mut *holder)
        .await
        .unwrap();
    holder.commit().await.unwrap();

    let (meeting, assignment) = ahead.await.unwrap().unwrap();
    assert_eq!(meeting.id, first);
    assert!(assignment.is_none(), "nobody joined it yet");
    let found: Vec<Option<(Uuid, bool)>> = futures::future::join_all(behind)
        .await
        .into_iter()
        .map(|r| r.unwrap().map(|(m, _)| (m.id, m.status.is_ended())))
        .collect();
    assert_eq!(
        found,
        vec![
            Some((second, true)),
            Some((first, false)),
            None,
            Some((second, true)),
        ]
    );
}

/// `count` ended meetings of the stack's org (they need no slot), coded `prefix` and a number
/// (`PLAN00000001`, …), all assigned to the new controller `controller`, with the tables'
/// statistics brought up to date (what the planner would see in production).
async fn assigned_meetings(
    stack: &TestStack,
    host: Uuid,
    prefix: &str,
    count: i32,
    controller: &str,
) {
    sqlx::query(
        "with c as (
            insert into meeting_controllers (id, ws_url, grpc_addr, capacity)
            values ($5, 'ws://127.0.0.1:1', 'http://127.0.0.1:2', 100000)
            returning id
         ),
         m as (
            insert into meetings (org_id, host_id, meeting_code, display_name, status,
                                  max_participants, join_token_secret, started_at, ended_at)
            select $1, $2, $3 || lpad(i::text, 12 - length($3), '0'), 'm', 'ended', 10,
                   decode(repeat('ab', 32), 'hex'), now(), now()
            from generate_series(1, $4) as i
            returning id
         )
         insert into meeting_assignments (meeting_id, controller_id)
         select m.id, c.id from m, c",
    )
    .bind(stack.org_id)
    .bind(host)
    .bind(prefix)
    .bind(count)
    .bind(controller)
    .execute(&stack.pool)
    .await
    .unwrap();
    sqlx::query("analyze meetings, meeting_assignments, meeting_controllers")
        .execute(&stack.pool)
        .await
        .unwrap();
}

/// A join's meeting read finds each assignment by the meeting's key: how many meetings are in
/// progress elsewhere does not change what it reads. (Written as a plain join, PostgreSQL read
/// and hashed every assignment for each statement once the table held a few hundred.)
#[sqlx::test(migrations = "../../migrations")]
async fn the_meeting_read_of_a_join_does_not_scan_every_assignment(pool: PgPool) {
    use gc_service::db::meetings::find_by_codes_with_assignment;

    let stack = spawn_stack(pool, StackOptions::default()).await;
    let host = stack.user_id(HOST).await;
    // 400 meetings (ended ones: they need no slot), all assigned to one controller.
    assigned_meetings(&stack, host, "SCAN", 400, "mc-scan").await;

    let mut tx = stack.pool.begin().await.unwrap();
    let codes = [
        "SCAN00000007",
        "SCAN00000123",
        "SCAN00000399",
        "NOSUCHCODE00",
    ];
    let found = find_by_codes_with_assignment(&mut *tx, &codes, 30)
        .await
        .unwrap();
    assert_eq!(found.len(), 3, "three of the codes are meetings");
    for (meeting, assignment) in &found {
        assert!(codes.contains(&meeting.code.as_str()));
        let assignment = assignment.as_ref().expect("every one is assigned");
        assert_eq!(assignment.controller_id, "mc-scan");
        assert_eq!(assignment.fencing_token, 1);
    }
    // Counted in this transaction, before anything is reported to the statistics.
    let scanned: i64 = sqlx::query_scalar(
        "select pg_stat_get_xact_tuples_returned('meeting_assignments'::regclass)",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(scanned, 0, "assignments read by a scan: {scanned}");
}

/// The admission statement is planned once per batch connection (`db::batch_pool`), perhaps
/// while `participants` was empty (a new deployment; the join benchmark's "empty" database,
/// vacuumed and analyzed after each run's rows were deleted), and that plan must stay a few
/// index steps per seat as the table grows. Written as `not exists`, the check for a later seat
/// of the user became an anti join whose plan, made on the empty table, read the whole
/// `participants_one_row_per_seat` index for every statement (5-6 ms a statement, 4 times the
/// PostgreSQL CPU of a join, once a benchmark run had recorded 10,000 visits); and the test for
/// a `scheduled` meeting read the partial index of scheduled meetings whole instead of looking
/// the batch's meetings up by key. The control is the statement as it was.
#[sqlx::test(migrations = "../../migrations")]
async fn the_admissions_plan_reads_only_the_seats_it_records_whatever_the_tables_keep(
    pool: PgPool,
) {
    use gc_service::db::participants::ADMIT_SQL;

    let stack = spawn_stack(pool, StackOptions::default()).await;
    let host = stack.user_id(HOST).await;
    sqlx::query("update organizations set max_concurrent_meetings = 10000 where id = $1")
        .bind(stack.org_id)
        .execute(&stack.pool)
        .await
        .unwrap();
    let crowded = insert_meeting(&stack, host, "PLANCROWDED1").await;
    let mut meetings = Vec::new();
    for i in 0..3 {
        meetings.push(insert_meeting(&stack, host, &format!("PLANADMIT{i:03}")).await);
    }
    // As the join benchmark leaves its "empty" database between runs: 500 meetings in
    // progress and no visit, 30,000 visits having been deleted (the indexes keep their pages),
    // the tables vacuumed and analyzed, when the batch connection plans its first admission.
    past_visits(&stack, crowded, host, 1..=30_000).await;
    sqlx::query("delete from participants")
        .execute(&stack.pool)
        .await
        .unwrap();
    sqlx::query(
        "insert into meetings (org_id, host_id, meeting_code, display_name, status,
                               max_participants, join_token_secret, started_at)
         select $1, $2, 'PLANLIVE' || lpad(i::text, 4, '0'), 'm', 'active', 10,
                decode(repeat('ab', 32), 'hex'), now()
         from generate_series(1, 500) as i",
    )
    .bind(stack.org_id)
    .bind(host)
    .execute(&stack.pool)
    .await
    .unwrap();
    sqlx::query("vacuum analyze meetings, participants")
        .execute(&stack.pool)
        .await
        .unwrap();
    let before = ADMIT_SQL
        .replace(
            "case m.status when 'scheduled' then true else false end",
            "m.status = 'scheduled'",
        )
        .replace(
            "coalesce((select max(q.seat) from participants q
                    where q.meeting_id = b.meeting_id and q.user_id = b.user_id) < b.seat,
                   true)",
            "not exists (select 1 from participants q
                      where q.meeting_id = b.meeting_id and q.user_id = b.user_id
                        and q.seat >= b.seat)",
        );
    assert_eq!(
        before
            .matches("not exists (select 1 from participants q")
            .count()
            + before.matches("m.status = 'scheduled'").count(),
        2,
        "the control is the statement as it was"
    );
    let batch = gc_service::db::batch_pool(&stack.pool, &Background::default());
    let mut conn = batch.acquire().await.unwrap();
    for (name, sql) in [("admit_now", ADMIT_SQL), ("admit_before", before.as_str())] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "prepare {name}(uuid[], uuid[], uuid[], text[], int8[], text[], text[], text[],
                            text[], uuid[]) as {sql}"
        )))
        .execute(&mut *conn)
        .await
        .unwrap();
        // Planned now, on the small tables: one seat in the first meeting.
        let (_, opened) = admission_probe(&mut conn, name, &stack, meetings[0], host, 1).await;
        assert_eq!(opened, 1, "{name}");
    }
    // 20,000 visits of another meeting, and 2,000 meetings still scheduled.
    past_visits(&stack, crowded, host, 1..=20_000).await;
    sqlx::query(
        "insert into meetings (org_id, host_id, meeting_code, display_name, status,
                               max_participants, join_token_secret)
         select $1, $2, 'PLANSCH' || lpad(i::text, 5, '0'), 'm', 'scheduled', 10,
                decode(repeat('ab', 32), 'hex')
         from generate_series(0, 1999) as i",
    )
    .bind(stack.org_id)
    .bind(host)
    .execute(&stack.pool)
    .await
    .unwrap();

    // Each probe seats the host in a meeting still scheduled: the statement starts it.
    let scheduled: i64 = sqlx::query_scalar(
        "select count(*) from meetings where id = any($1) and status = 'scheduled'",
    )
    .bind(&meetings[1..3])
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    assert_eq!(scheduled, 2);
    let (now, opened) = admission_probe(&mut conn, "admit_now", &stack, meetings[1], host, 2).await;
    assert_eq!(opened, 1);
    assert!(
        now < 150,
        "the admission read {now} blocks of participants and meetings to record one seat"
    );
    let (then, opened) =
        admission_probe(&mut conn, "admit_before", &stack, meetings[2], host, 3).await;
    assert_eq!(opened, 1);
    assert!(
        then > 400,
        "the control read only {then} blocks: this test no longer shows what it guards"
    );
    drop(conn);
    batch.close().await;
}

/// Visits of `user` in `meeting` that have ended, one per seat number of `seats`.
async fn past_visits(
    stack: &TestStack,
    meeting: Uuid,
    user: Uuid,
    seats: std::ops::RangeInclusive<i64>,
) {
    sqlx::query(
        "insert into participants (meeting_id, user_id, role, seat, left_at, leave_reason)
         select $1, $2, 'guest', g, now(), 'left' from generate_series($3::int8, $4::int8) as g",
    )
    .bind(meeting)
    .bind(user)
    .bind(seats.start())
    .bind(seats.end())
    .execute(&stack.pool)
    .await
    .unwrap();
}

/// Runs the prepared admission `name` for one seat of `user` in `meeting`, in a transaction
/// that is rolled back: the blocks of `participants`, `meetings` and their indexes it read, and
/// the visits it opened.
async fn admission_probe(
    conn: &mut sqlx::PgConnection,
    name: &str,
    stack: &TestStack,
    meeting: Uuid,
    user: Uuid,
    seat: i64,
) -> (i64, i64) {
    use sqlx::Row;
    const BLOCKS: &str = "select coalesce(sum(pg_stat_get_xact_blocks_fetched(c.oid)), 0)::int8
         from pg_class c
         where c.oid in ('participants'::regclass, 'meetings'::regclass)
            or c.oid in (select indexrelid from pg_index
                         where indrelid in ('participants'::regclass, 'meetings'::regclass))";
    let mut tx = conn.begin().await.unwrap();
    // The counts of earlier statements may not be reported yet: what this one adds.
    let before: i64 = sqlx::query_scalar(BLOCKS)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    let org = stack.org_id;
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "execute {name}(array['{meeting}']::uuid[], array['{org}']::uuid[],
                        array['{user}']::uuid[], array['guest'], array[{seat}]::int8[],
                        array['{user}'], array['user'], array['127.0.0.1'], array[null]::text[],
                        array['{meeting}']::uuid[])"
    )))
    .fetch_one(&mut *tx)
    .await
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    let opened: i64 = row.get("opened");
    let after: i64 = sqlx::query_scalar(BLOCKS)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    (after - before, opened)
}

/// A join's statements take arrays, for which PostgreSQL's default plan cache plans every
/// execution again (the generic plan's estimate for an array of unknown length never wins).
/// The batching tasks' own connections plan them once; the main pool's keep the default, which
/// other statements rely on. The batch pool closes with the main one.
#[sqlx::test(migrations = "../../migrations")]
async fn the_batched_join_statements_are_planned_once_per_connection(pool: PgPool) {
    use gc_service::db::meetings::find_by_codes_with_assignment;

    let stack = spawn_stack(pool, StackOptions::default()).await;
    let host = stack.user_id(HOST).await;
    assigned_meetings(&stack, host, "PLAN", 2000, "mc-plan").await;

    // The plans one connection made for the meeting read, after eight reads of two codes each.
    async fn plans(conn: &mut sqlx::PgConnection) -> (String, i64, i64) {
        for i in 0..8 {
            let codes = [format!("PLAN{:08}", i + 1), format!("PLAN{:08}", i + 11)];
            let codes: Vec<&str> = codes.iter().map(String::as_str).collect();
            let found = find_by_codes_with_assignment(&mut *conn, &codes, 30)
                .await
                .unwrap();
            assert_eq!(found.len(), 2);
        }
        let mode: String = sqlx::query_scalar("show plan_cache_mode")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        let (generic, custom): (i64, i64) = sqlx::query_as(
            "select generic_plans, custom_plans from pg_prepared_statements
             where statement like '%meeting_code = any($1)%'
               and statement not like '%pg_prepared_statements%'",
        )
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        (mode, generic, custom)
    }

    let batch = gc_service::db::batch_pool(&stack.pool, &Background::default());
    let (mode, generic, custom) = plans(&mut batch.acquire().await.unwrap()).await;
    assert_eq!(mode, "force_generic_plan");
    assert_eq!(
        (generic, custom),
        (8, 0),
        "the batch pool's connection planned the read {custom} times"
    );
    // The control: what the default does with the same statement.
    let (mode, _, custom) = plans(&mut stack.pool.acquire().await.unwrap()).await;
    assert_eq!(mode, "auto");
    assert_eq!(custom, 8, "with the default, every execution is planned");

    stack.pool.close().await;
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while !batch.is_closed() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the batch pool closes with the main pool");
}

/// `DATABASE_URL` may ask for TLS (`sslmode=require`, `verify-full`), as a managed PostgreSQL
/// wants. Against a server with TLS on, GC's pool then talks TLS, and `verify-full` checks the
/// server's certificate (the local server's is self-signed, so it is refused); against one with
/// TLS off, asking for it fails instead of falling back to plain text.
/// The batch pool closes at the end of a stop, once the queues that use it are done, without
/// waiting for the main pool (which the process closes after the stop).
#[sqlx::test(migrations = "../../migrations")]
async fn the_batch_pool_closes_at_the_end_of_a_stop(pool: PgPool) {
    let shell = Shell::new(
        "test",
        ShutdownTimings {
            readiness_grace: std::time::Duration::ZERO,
            ..ShutdownTimings::default()
        },
    );
    let batch = gc_service::db::batch_pool(&pool, shell.handle().background());
    drop(batch.acquire().await.unwrap());

    tokio::time::timeout(std::time::Duration::from_secs(3), shell.run(async {}))
        .await
        .expect("the stop waited for the main pool");

    assert!(batch.is_closed());
    assert!(!pool.is_closed());
}

#[sqlx::test(migrations = false)]
async fn the_database_url_can_ask_for_tls(pool: PgPool) {
    use secrecy::SecretString;

    let ssl: String = sqlx::query_scalar("show ssl")
        .fetch_one(&pool)
        .await
        .unwrap();
    let base = std::env::var("DATABASE_URL").unwrap();
    let with = |mode: &str| {
        let separator = if base.contains('?') { '&' } else { '?' };
        SecretString::from(format!("{base}{separator}sslmode={mode}"))
    };
    let required = gc_service::db::connect(&with("require"), 1).await;
    if ssl == "on" {
        let tls_pool = required.unwrap();
        let encrypted: bool =
            sqlx::query_scalar("select ssl from pg_stat_ssl where pid = pg_backend_pid()")
                .fetch_one(&tls_pool)
                .await
                .unwrap();
        assert!(encrypted, "sslmode=require gave a plain-text connection");
        let verified = gc_service::db::connect(&with("verify-full"), 1).await;
        assert!(
            verified.is_err(),
            "verify-full accepted a certificate no trusted CA signed"
        );
    } else {
        assert!(required.is_err(), "sslmode=require fell back to plain text");
    }
}
