//! `meetings` (with its `audit_logs` and `idempotency_keys` companions).
//!
//! The create is ONE statement, so the happy path is one round trip and one implicit
//! transaction. Its CTEs insert the meeting, the `meeting_created` audit row and (when the
//! client sent a key) the idempotency key; either all of them commit or none does. The org's
//! concurrent-meeting limit is not in this statement at all: the `meetings` insert trigger
//! (migration `20261201130001`) takes a place in one of the org's slots in O(1), skipping slots
//! other creates hold, which keeps the limit exact under concurrency while one org's creates
//! commit in parallel. Nothing here counts meetings.
//!
//! A busy GC writes several creates in one statement ([`insert_batch`], fed by
//! [`super::creates`]); a create the batch leaves out runs this one-create statement alone.

use chrono::{DateTime, Utc};
use common::db::Bounded;
use common::meeting_code::MeetingCode;
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use crate::db::controllers::Assignment;
use std::future::Future;

use crate::db::{FRESH_ATTEMPTS, Recorded};
use crate::domain::events::{Actor, EndReason, LeaveReason, Origin};
use crate::domain::meeting::{Meeting, MeetingStatus, NewMeeting};
use common::settings::MeetingSettings;

/// SQLSTATE raised by the insert trigger when the org is at `max_concurrent_meetings`.
pub const SQLSTATE_ORG_LIMIT_REACHED: &str = "CV403";
/// SQLSTATE raised by the insert trigger when the org is unknown or not active.
pub const SQLSTATE_ORG_NOT_ACTIVE: &str = "CV410";
/// Unique constraint on `meetings.meeting_code`: a code collision.
pub const MEETING_CODE_CONSTRAINT: &str = "meetings_meeting_code_key";
/// Primary key of `idempotency_keys`: a concurrent request with the same key won.
pub const IDEMPOTENCY_KEY_CONSTRAINT: &str = "idempotency_keys_pkey";

/// The `events` of the create statements (see [`crate::db::events`]): a `meeting_created`
/// event for each meeting of `m`, by its host, from the address and user agent in `b` (one row
/// per create: `id`, its idempotency `key`, `ip`, `agent`).
macro_rules! created_events {
    () => {
        "events as (
    select m.org_id, m.id as meeting_id, m.host_id::text as actor_id, 'user' as actor_type,
           b.ip, b.agent as user_agent, 'meeting_created' as action,
           jsonb_build_object('meeting_code', m.meeting_code,
                              'max_participants', m.max_participants,
                              'idempotency_key', b.key is not null) as details
    from m
    join b on b.id = m.id
)"
    };
}

/// The columns every query that returns a meeting selects, in [`MeetingRow`]'s order.
macro_rules! meeting_columns {
    () => {
        "id, org_id, host_id, creator_id, host_seq, meeting_code, display_name, status,
         max_participants,
         waiting_room_enabled, enable_transcription, enable_e2e_encryption, require_auth,
         recording_enabled, allow_guests, allow_external_participants, settings_version,
         scheduled_start_time, created_at, started_at, ended_at"
    };
}

/// `$1` id, `$2` org, `$3` host, `$4` code, `$5` display name, `$6` requested max participants
/// (null: `min(100, org limit)`), `$7..$13` settings, `$14` join-token secret, `$15` scheduled
/// start, `$16` idempotency key (null: none), `$17` request hash, `$18` client IP, `$19` user
/// agent.
///
/// The meeting is inserted only if the org exists, the host is an active user of that org, the
/// requested limit is within the org's, and the key (if any) is not stored yet. Zero rows back
/// means one of those failed; the caller finds out which, on the failure path only.
pub const CREATE_MEETING_SQL: &str = concat!(
    "with m as (
    insert into meetings (id, org_id, host_id, creator_id, meeting_code, display_name,
                          max_participants,
                          waiting_room_enabled, enable_transcription, enable_e2e_encryption,
                          require_auth, recording_enabled, allow_guests,
                          allow_external_participants, join_token_secret, scheduled_start_time)
    select $1, o.id, u.id, u.id, $4, $5,
           coalesce($6, least(100, o.max_participants_per_meeting)),
           $7, $8, $9, $10, $11, $12, $13, $14, $15
    from organizations o
    join users u on u.id = $3 and u.org_id = o.id and u.is_active
    where o.id = $2
      and ($6::int is null or $6 between 2 and o.max_participants_per_meeting)
      and ($16::text is null
           or not exists (select 1 from idempotency_keys k where k.user_id = $3 and k.key = $16))
    returning ",
    meeting_columns!(),
    "
),
b as (select $1::uuid as id, $16::text as key, $18::text as ip, $19::text as agent),
",
    created_events!(),
    ",
",
    crate::db::events::record_events!(),
    ",
idem as (
    insert into idempotency_keys (user_id, key, request_hash, meeting_id)
    select m.host_id, $16, $17, m.id from m where $16::text is not null
)
select * from m"
);

/// Why the create statement inserted nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Zero rows: unknown org, inactive host, limit out of range, or the key is stored.
    NotInserted,
    OrgLimitReached,
    OrgNotActive,
    /// Another meeting holds this code: retry with a fresh one.
    CodeTaken,
    /// A concurrent request with the same key committed first.
    IdempotencyKeyTaken,
}

#[derive(Debug)]
pub enum InsertOutcome {
    Created(Meeting),
    Refused(Refusal),
}

/// The values of one create, as the create statements bind them.
#[derive(Debug)]
pub struct CreateRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub host_id: Uuid,
    pub code: String,
    pub display_name: String,
    pub max_participants: Option<i32>,
    pub settings: MeetingSettings,
    pub join_token_secret: Vec<u8>,
    pub scheduled_start_time: Option<DateTime<Utc>>,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<Vec<u8>>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl CreateRow {
    /// The values of `new`, created by its host from `from`.
    pub fn new(new: &NewMeeting, from: Origin<'_>) -> Self {
        CreateRow {
            id: new.id,
            org_id: new.org_id,
            host_id: new.host_id,
            code: new.code.as_str().to_owned(),
            display_name: new.create.display_name.as_str().to_owned(),
            max_participants: new.create.max_participants.map(|n| n.get()),
            settings: new.create.settings,
            join_token_secret: new.join_token_secret.expose_bytes().to_vec(),
            scheduled_start_time: new.create.scheduled_start_time,
            idempotency_key: new.idempotency.as_ref().map(|r| r.key.as_str().to_owned()),
            request_hash: new
                .idempotency
                .as_ref()
                .map(|r| r.request_hash.as_bytes().to_vec()),
            ip: from.ip.map(|ip| ip.to_string()),
            user_agent: from.user_agent.map(str::to_owned),
        }
    }
}

/// Runs the create statement once.
pub async fn insert_meeting(
    pool: &PgPool,
    new: &NewMeeting,
    from: Origin<'_>,
) -> Result<InsertOutcome, sqlx::Error> {
    insert_row(pool, &CreateRow::new(new, from)).await
}

/// Runs the create statement once, for `row`.
#[tracing::instrument(name = "gc.db.insert_meeting", skip_all)]
pub async fn insert_row(pool: &PgPool, row: &CreateRow) -> Result<InsertOutcome, sqlx::Error> {
    let settings = row.settings;
    let result = sqlx::query_as::<_, MeetingRow>(CREATE_MEETING_SQL)
        .bind(row.id)
        .bind(row.org_id)
        .bind(row.host_id)
        .bind(&row.code)
        .bind(&row.display_name)
        .bind(row.max_participants)
        .bind(settings.waiting_room_enabled)
        .bind(settings.enable_transcription)
        .bind(settings.enable_e2e_encryption)
        .bind(settings.require_auth)
        .bind(settings.recording_enabled)
        .bind(settings.allow_guests)
        .bind(settings.allow_external_participants)
        .bind(&row.join_token_secret)
        .bind(row.scheduled_start_time)
        .bind(&row.idempotency_key)
        .bind(&row.request_hash)
        .bind(&row.ip)
        .bind(&row.user_agent)
        .fetch_optional(pool)
        .bounded()
        .await;
    match result {
        Ok(Some(row)) => Ok(InsertOutcome::Created(row.try_into()?)),
        Ok(None) => Ok(InsertOutcome::Refused(Refusal::NotInserted)),
        Err(error) => refusal_of(&error).map(InsertOutcome::Refused).ok_or(error),
    }
}

/// Inserts several creates in one statement and one transaction (`meetings_insert_batch`,
/// migration `20261206000002`), each with its `meeting_created` event and idempotency key. Returns the
/// meetings inserted: a create that would be refused, or would have to wait for a slot of its
/// org, is left out (not failed) and must be run alone with [`insert_row`]. Two rows must not
/// share an idempotency key.
#[tracing::instrument(name = "gc.db.insert_meetings", skip_all, fields(rows = rows.len()))]
pub async fn insert_batch(pool: &PgPool, rows: &[&CreateRow]) -> Result<Vec<Meeting>, sqlx::Error> {
    fn column<'a, T>(rows: &[&'a CreateRow], f: impl Fn(&'a CreateRow) -> T) -> Vec<T> {
        rows.iter().map(|row| f(row)).collect()
    }
    let created: Vec<MeetingRow> = sqlx::query_as(concat!(
        "with m as (
    select * from meetings_insert_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
                                        $14, $15, $16, $17)
),
b as (select * from unnest($1::uuid[], $16::text[], $18::text[], $19::text[])
          as b(id, key, ip, agent)),
",
        created_events!(),
        ",
",
        crate::db::events::record_events!(),
        "
select ",
        meeting_columns!(),
        " from m"
    ))
    .bind(column(rows, |r| r.id))
    .bind(column(rows, |r| r.org_id))
    .bind(column(rows, |r| r.host_id))
    .bind(column(rows, |r| r.code.as_str()))
    .bind(column(rows, |r| r.display_name.as_str()))
    .bind(column(rows, |r| r.max_participants))
    .bind(column(rows, |r| r.settings.waiting_room_enabled))
    .bind(column(rows, |r| r.settings.enable_transcription))
    .bind(column(rows, |r| r.settings.enable_e2e_encryption))
    .bind(column(rows, |r| r.settings.require_auth))
    .bind(column(rows, |r| r.settings.recording_enabled))
    .bind(column(rows, |r| r.settings.allow_guests))
    .bind(column(rows, |r| r.settings.allow_external_participants))
    .bind(column(rows, |r| r.join_token_secret.as_slice()))
    .bind(column(rows, |r| r.scheduled_start_time))
    .bind(column(rows, |r| r.idempotency_key.as_deref()))
    .bind(column(rows, |r| r.request_hash.as_deref()))
    .bind(column(rows, |r| r.ip.as_deref()))
    .bind(column(rows, |r| r.user_agent.as_deref()))
    .fetch_all(pool)
    .bounded()
    .await?;
    created.into_iter().map(Meeting::try_from).collect()
}

/// The refusals the database reports as errors; anything else stays an error.
fn refusal_of(error: &sqlx::Error) -> Option<Refusal> {
    let db = error.as_database_error()?;
    match db.code().as_deref() {
        Some(SQLSTATE_ORG_LIMIT_REACHED) => Some(Refusal::OrgLimitReached),
        Some(SQLSTATE_ORG_NOT_ACTIVE) => Some(Refusal::OrgNotActive),
        _ if db.is_unique_violation() => match db.constraint() {
            Some(MEETING_CODE_CONSTRAINT) => Some(Refusal::CodeTaken),
            Some(IDEMPOTENCY_KEY_CONSTRAINT) => Some(Refusal::IdempotencyKeyTaken),
            _ => None,
        },
        _ => None,
    }
}

/// What stopped an insert that returned zero rows, read after the fact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotInsertedCause {
    OrgNotActive,
    UserNotActive,
    MaxParticipantsAboveOrgLimit {
        max: i32,
    },
    /// Nothing the statement checks is wrong any more (a concurrent change): try again.
    Unexplained,
}

#[derive(sqlx::FromRow)]
struct CauseRow {
    org_active: Option<bool>,
    max_participants_per_meeting: Option<i32>,
    user_active: bool,
}

/// Finds out why the create statement inserted nothing (failure path only).
pub async fn explain_not_inserted(
    pool: &PgPool,
    new: &NewMeeting,
) -> Result<NotInsertedCause, sqlx::Error> {
    let row: CauseRow = sqlx::query_as(
        "select o.is_active as org_active, o.max_participants_per_meeting,
                coalesce(u.is_active and u.org_id = $1, false) as user_active
         from (select 1) one
         left join organizations o on o.id = $1
         left join users u on u.id = $2",
    )
    .bind(new.org_id)
    .bind(new.host_id)
    .fetch_one(pool)
    .bounded()
    .await?;
    if row.org_active != Some(true) {
        return Ok(NotInsertedCause::OrgNotActive);
    }
    if !row.user_active {
        return Ok(NotInsertedCause::UserNotActive);
    }
    if let (Some(requested), Some(max)) = (
        new.create.max_participants,
        row.max_participants_per_meeting,
    ) && requested.get() > max
    {
        return Ok(NotInsertedCause::MaxParticipantsAboveOrgLimit { max });
    }
    Ok(NotInsertedCause::Unexplained)
}

/// A meeting by id.
pub async fn find_meeting(pool: &PgPool, id: Uuid) -> Result<Option<Meeting>, sqlx::Error> {
    let row: Option<MeetingRow> = sqlx::query_as(concat!(
        "select ",
        meeting_columns!(),
        " from meetings where id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .bounded()
    .await?;
    row.map(Meeting::try_from).transpose()
}

#[derive(sqlx::FromRow)]
struct MeetingRow {
    id: Uuid,
    org_id: Uuid,
    host_id: Option<Uuid>,
    creator_id: Uuid,
    host_seq: i64,
    meeting_code: String,
    display_name: String,
    status: String,
    max_participants: i32,
    waiting_room_enabled: bool,
    enable_transcription: bool,
    enable_e2e_encryption: bool,
    require_auth: bool,
    recording_enabled: bool,
    allow_guests: bool,
    allow_external_participants: bool,
    settings_version: i64,
    scheduled_start_time: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
}

impl TryFrom<MeetingRow> for Meeting {
    type Error = sqlx::Error;

    fn try_from(row: MeetingRow) -> Result<Self, Self::Error> {
        let status = MeetingStatus::parse(&row.status)
            .ok_or_else(|| sqlx::Error::Decode("meetings.status is not a known status".into()))?;
        let code = MeetingCode::parse(&row.meeting_code)
            .ok_or_else(|| sqlx::Error::Decode("meetings.meeting_code is malformed".into()))?;
        Ok(Meeting {
            id: row.id,
            org_id: row.org_id,
            host_id: row.host_id,
            creator_id: row.creator_id,
            host_seq: row.host_seq,
            code,
            display_name: row.display_name,
            status,
            max_participants: row.max_participants,
            settings: MeetingSettings {
                waiting_room_enabled: row.waiting_room_enabled,
                enable_transcription: row.enable_transcription,
                enable_e2e_encryption: row.enable_e2e_encryption,
                require_auth: row.require_auth,
                recording_enabled: row.recording_enabled,
                allow_guests: row.allow_guests,
                allow_external_participants: row.allow_external_participants,
            },
            settings_version: row.settings_version,
            scheduled_start_time: row.scheduled_start_time,
            created_at: row.created_at,
            started_at: row.started_at,
            ended_at: row.ended_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct LocatedRow {
    #[sqlx(flatten)]
    meeting: MeetingRow,
    controller_id: Option<String>,
    ws_url: Option<String>,
    grpc_addr: Option<String>,
    fencing_token: Option<i64>,
    healthy: Option<bool>,
}

/// A meeting found by its code, with its assignment if it has one
/// ([`crate::db::controllers::assignment`]'s answer).
pub type Located = (Meeting, Option<Assignment>);

/// The meetings of `codes`, whatever their status, each with its assignment, in one round trip:
/// what a join needs to read before it calls the room. Codes of no meeting are left out; the
/// answer pairs each meeting with its code.
///
/// Each meeting's assignment is read by its primary key (a lateral subquery that the `limit`
/// keeps the planner from flattening): as a plain left join, PostgreSQL read and hashed every
/// assignment of every live meeting for each statement, a cost that grew with the meetings in
/// progress everywhere rather than with the codes asked for.
pub async fn find_by_codes_with_assignment<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    codes: &[&str],
    heartbeat_timeout_secs: u32,
) -> Result<Vec<Located>, sqlx::Error> {
    let rows: Vec<LocatedRow> = sqlx::query_as(concat!(
        "select m.*, x.controller_id, x.ws_url, x.grpc_addr, x.fencing_token, x.healthy
         from (select ",
        meeting_columns!(),
        " from meetings where meeting_code = any($1)) m
         left join lateral (
            select a.controller_id, c.ws_url, c.grpc_addr, a.fencing_token,
                   c.last_heartbeat_at > now() - make_interval(secs => $2) as healthy
            from meeting_assignments a
            join meeting_controllers c on c.id = a.controller_id
            where a.meeting_id = m.id
            limit 1
         ) x on true"
    ))
    .bind(codes)
    .bind(f64::from(heartbeat_timeout_secs))
    .fetch_all(executor)
    .bounded()
    .await?;
    rows.into_iter().map(located).collect()
}

fn located(row: LocatedRow) -> Result<Located, sqlx::Error> {
    let assignment = match (
        row.controller_id,
        row.ws_url,
        row.grpc_addr,
        row.fencing_token,
        row.healthy,
    ) {
        (
            Some(controller_id),
            Some(ws_url),
            Some(grpc_addr),
            Some(fencing_token),
            Some(healthy),
        ) => Some(Assignment {
            controller_id,
            ws_url,
            grpc_addr,
            fencing_token,
            healthy,
        }),
        _ => None,
    };
    Ok((Meeting::try_from(row.meeting)?, assignment))
}

/// A meeting by its code, whatever its status.
pub async fn find_by_code(
    pool: &PgPool,
    code: &MeetingCode,
) -> Result<Option<Meeting>, sqlx::Error> {
    let row: Option<MeetingRow> = sqlx::query_as(concat!(
        "select ",
        meeting_columns!(),
        " from meetings where meeting_code = $1"
    ))
    .bind(code.as_str())
    .fetch_optional(pool)
    .bounded()
    .await?;
    row.map(Meeting::try_from).transpose()
}

/// The room was seen empty when its last seat was `last_seat`: starts the empty-meeting clock
/// (unless it runs already), and remembers `last_seat` so that an admission of an earlier seat
/// recorded after this does not stop it again. A mark is stale, and changes nothing, when a
/// seat above `last_seat` has been recorded: someone came in since. Locks the meeting's row
/// (the first thing a leave does: see [`super::participants::record_leave`]); false when the
/// meeting has ended.
pub async fn mark_empty(
    conn: &mut PgConnection,
    id: Uuid,
    last_seat: i64,
    since: Option<DateTime<Utc>>,
) -> Result<bool, sqlx::Error> {
    let live: Option<Uuid> = sqlx::query_scalar(
        "update meetings
         set empty_since = case
                 when status = 'active' and coalesce(last_seat, 0) <= $2
                     then coalesce(empty_since, $3, now())
                 else empty_since end,
             empty_as_of_seat = case
                 when coalesce(last_seat, 0) <= $2 then greatest(coalesce(empty_as_of_seat, 0), $2)
                 else empty_as_of_seat end
         where id = $1 and status <> 'ended'
         returning id",
    )
    .bind(id)
    .bind(last_seat)
    .bind(since)
    .fetch_optional(conn)
    .bounded()
    .await?;
    Ok(live.is_some())
}

/// Locks a live meeting's row until the transaction ends and reads it; `None` when it has
/// ended. What every change of the meeting's settings or visits takes first, so that such
/// changes apply one after the other and each reads what the one before wrote.
pub async fn lock_live(conn: &mut PgConnection, id: Uuid) -> Result<Option<Meeting>, sqlx::Error> {
    let row: Option<MeetingRow> = sqlx::query_as(concat!(
        "select ",
        meeting_columns!(),
        " from meetings where id = $1 and status <> 'ended' for update"
    ))
    .bind(id)
    .fetch_optional(conn)
    .bounded()
    .await?;
    row.map(Meeting::try_from).transpose()
}

/// Ends a live meeting and records it, in one statement ([`END_SQL`]): `ended`, `ended_at`,
/// its assignment dropped (the room is gone), every open visit closed with `reason`, and the
/// `meeting_ended` event (with the visits it closed) by `actor`. The release trigger gives the
/// org's place back. `Done(None)` when it had ended already (or does not exist); `Stale` when
/// the row changed between the statement's snapshot and its lock (an admission it waited for,
/// whose visits it would not see): nothing was written, and the caller runs it again, or runs
/// it in a transaction that took the lock first ([`lock_live`]), where it is never stale.
pub async fn end<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    id: Uuid,
    reason: EndReason,
    actor: Actor<'_>,
) -> Result<Recorded<Option<(Meeting, u64)>>, sqlx::Error> {
    let (actor_id, actor_type, ip, user_agent) = actor.columns();
    let row: (bool, Option<i64>, Option<MeetingRow>) = {
        let row = sqlx::query(END_SQL)
            .bind(id)
            .bind(LeaveReason::MEETING_ENDED)
            .bind(reason.as_str())
            .bind(actor_id)
            .bind(actor_type)
            .bind(ip.map(|ip| ip.to_string()))
            .bind(user_agent)
            .fetch_one(executor)
            .bounded()
            .await?;
        use sqlx::Row;
        let stale: bool = row.try_get("stale")?;
        let closed: Option<i64> = row.try_get("closed")?;
        let ended = match row.try_get::<Option<Uuid>, _>("id")? {
            Some(_) => Some(MeetingRow::from_row(&row)?),
            None => None,
        };
        (stale, closed, ended)
    };
    match row {
        (true, _, _) => Ok(Recorded::Stale),
        (false, closed, Some(ended)) => Ok(Recorded::Done(Some((
            Meeting::try_from(ended)?,
            u64::try_from(closed.unwrap_or(0)).unwrap_or(0),
        )))),
        (false, _, None) => Ok(Recorded::Done(None)),
    }
}

/// [`end`], run again while it is stale, then under the row's lock taken first
/// ([`run_fresh`]): the meeting as it ended and the visits it closed, or `None` when it had
/// ended already.
pub async fn end_and_record(
    pool: &PgPool,
    id: Uuid,
    reason: EndReason,
    actor: Actor<'_>,
) -> Result<Option<(Meeting, u64)>, sqlx::Error> {
    run_fresh(pool, id, &Ending { id, reason, actor }).await
}

struct Ending<'a> {
    id: Uuid,
    reason: EndReason,
    actor: Actor<'a>,
}

impl LockingStatement for Ending<'_> {
    type Output = Option<(Meeting, u64)>;

    fn ended(&self) -> Self::Output {
        None
    }

    fn run<'c>(
        &'c self,
        conn: &'c mut PgConnection,
    ) -> impl Future<Output = Result<Recorded<Self::Output>, sqlx::Error>> + Send + 'c {
        end(conn, self.id, self.reason, self.actor)
    }
}

/// A statement that locks a meeting's row, and writes nothing and answers [`Recorded::Stale`]
/// when the row it locked is not the version its snapshot read ([`END_SQL`],
/// [`crate::db::participants::LEAVE_SQL`]).
pub trait LockingStatement: Sync {
    type Output: Send;

    /// Its answer for a meeting that has ended (found so by [`run_locked`]).
    fn ended(&self) -> Self::Output;

    fn run<'c>(
        &'c self,
        conn: &'c mut PgConnection,
    ) -> impl Future<Output = Result<Recorded<Self::Output>, sqlx::Error>> + Send + 'c;
}

/// Runs `statement` on its own (one round trip, its own implicit transaction) until it is not
/// stale, at most [`FRESH_ATTEMPTS`] times, then in a transaction that takes the meeting's
/// lock first ([`run_locked`]).
pub async fn run_fresh<S: LockingStatement>(
    pool: &PgPool,
    meeting_id: Uuid,
    statement: &S,
) -> Result<S::Output, sqlx::Error> {
    for _ in 0..FRESH_ATTEMPTS {
        let mut conn = pool.acquire().bounded().await?;
        if let Recorded::Done(output) = statement.run(&mut conn).await? {
            return Ok(output);
        }
    }
    let mut tx = pool.begin().bounded().await?;
    let output = run_locked(&mut tx, meeting_id, statement).await?;
    tx.commit().bounded().await?;
    Ok(output)
}

/// Runs `statement` in the caller's transaction after locking the meeting's row
/// ([`lock_live`]), which the transaction holds until it ends: the statement's snapshot then
/// holds every change of the row, so it is never stale.
pub async fn run_locked<S: LockingStatement>(
    tx: &mut PgConnection,
    meeting_id: Uuid,
    statement: &S,
) -> Result<S::Output, sqlx::Error> {
    if lock_live(&mut *tx, meeting_id).await?.is_none() {
        return Ok(statement.ended());
    }
    match statement.run(&mut *tx).await? {
        Recorded::Done(output) => Ok(output),
        Recorded::Stale => Err(sqlx::Error::Protocol(
            "a statement under the meeting's lock found its row changed".into(),
        )),
    }
}

/// The end, one statement: `$1` the meeting, `$2` the visits' leave reason, `$3` the end's
/// reason, `$4..$7` the actor's audit columns.
///
/// - `snap` is the meeting's row as the statement's snapshot shows it.
/// - `ended` ends it only if the row is still the version `snap` read (its `xmin`): an
///   admission that changed the row meanwhile (and opened visits this snapshot misses) is
///   re-read by the update after it commits, with another `xmin`, and nothing is written
///   (`stale`).
/// - `dropped` deletes its assignment, `closed` its open visits, each only once it ended (a
///   one-time filter on `ended`, so the row is locked before any visit is).
/// - `events` is the `meeting_ended` event with the visits closed, recorded by
///   [`crate::db::events::record_events!`].
/// - One row: `stale`, the visits closed, and the meeting as it ended (nulls when it did not).
pub const END_SQL: &str = concat!(
    "with snap as (
    select m.id, m.xmin as version from meetings m where m.id = $1 and m.status <> 'ended'
),
ended as (
    update meetings m set status = 'ended', ended_at = now(), empty_since = null
    where m.id = $1 and m.status <> 'ended' and m.xmin = (select version from snap)
    returning m.*
),
dropped as (
    delete from meeting_assignments where meeting_id = $1 and exists (select 1 from ended)
),
closed as (
    update participants p set left_at = greatest(p.joined_at, now()), leave_reason = $2
    where p.meeting_id = $1 and p.left_at is null and exists (select 1 from ended)
    returning p.id
),
events as (
    select e.org_id, e.id as meeting_id, $4::text as actor_id, $5::text as actor_type,
           $6::text as ip, $7::text as user_agent, 'meeting_ended' as action,
           jsonb_build_object('reason', $3::text,
                              'participants_present', (select count(*) from closed)) as details
    from ended e
),
",
    crate::db::events::record_events!(),
    "
select exists (select 1 from snap) and not exists (select 1 from ended) as stale,
       (select count(*) from closed) as closed, e.*
from (select 1) one
left join (select ",
    meeting_columns!(),
    " from ended) e on true"
);

/// Stores new settings and seat count of a live meeting and raises its settings version;
/// `None` when it has ended. The caller holds the row's lock ([`lock_live`]) and computed the
/// values from what it read under it, so no concurrent change is lost.
pub async fn update_settings(
    conn: &mut PgConnection,
    id: Uuid,
    settings: &MeetingSettings,
    max_participants: i32,
) -> Result<Option<Meeting>, sqlx::Error> {
    let row: Option<MeetingRow> = sqlx::query_as(concat!(
        "update meetings
         set waiting_room_enabled = $2, enable_transcription = $3, enable_e2e_encryption = $4,
             require_auth = $5, recording_enabled = $6, allow_guests = $7,
             allow_external_participants = $8, max_participants = $9,
             settings_version = settings_version + 1
         where id = $1 and status <> 'ended' returning ",
        meeting_columns!()
    ))
    .bind(id)
    .bind(settings.waiting_room_enabled)
    .bind(settings.enable_transcription)
    .bind(settings.enable_e2e_encryption)
    .bind(settings.require_auth)
    .bind(settings.recording_enabled)
    .bind(settings.allow_guests)
    .bind(settings.allow_external_participants)
    .bind(max_participants)
    .fetch_optional(conn)
    .bounded()
    .await?;
    row.map(Meeting::try_from).transpose()
}

/// The org's per-meeting seat limit.
pub async fn org_max_participants(pool: &PgPool, org_id: Uuid) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar("select max_participants_per_meeting from organizations where id = $1")
        .bind(org_id)
        .fetch_one(pool)
        .bounded()
        .await
}

/// Whose meetings a history lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistoryRole {
    Host,
    Guest,
    Any,
}

/// One page of the ended meetings `user_id` hosted (created, or was given the host role of:
/// DESIGN §12) or attended, newest `ended_at` first, and how many there are in all.
pub async fn history(
    pool: &PgPool,
    user_id: Uuid,
    role: HistoryRole,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Meeting>, i64), sqlx::Error> {
    let (hosted, attended) = match role {
        HistoryRole::Host => (true, false),
        HistoryRole::Guest => (false, true),
        HistoryRole::Any => (true, true),
    };
    macro_rules! filter {
        () => {
            "m.status = 'ended'
             and (($2 and (m.creator_id = $1
                           or exists (select 1 from meeting_hosts h
                                      where h.meeting_id = m.id and h.user_id = $1)))
                  or ($3 and exists (select 1 from participants p
                                     where p.meeting_id = m.id and p.user_id = $1
                                       and p.role = 'guest')))"
        };
    }
    let total: i64 =
        sqlx::query_scalar(concat!("select count(*) from meetings m where ", filter!()))
            .bind(user_id)
            .bind(hosted)
            .bind(attended)
            .fetch_one(pool)
            .bounded()
            .await?;
    let rows: Vec<MeetingRow> = sqlx::query_as(concat!(
        "select ",
        meeting_columns!(),
        " from meetings m where ",
        filter!(),
        " order by m.ended_at desc, m.id desc limit $4 offset $5"
    ))
    .bind(user_id)
    .bind(hosted)
    .bind(attended)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .bounded()
    .await?;
    let meetings = rows
        .into_iter()
        .map(Meeting::try_from)
        .collect::<Result<_, _>>()?;
    Ok((meetings, total))
}
