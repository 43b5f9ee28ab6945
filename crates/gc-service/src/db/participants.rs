//! `participants`: the history of who was in which meeting, with which role and until when.
//! Each visit records the room's number of the seat it is the history of (`seat`, one row per
//! seat: `participants_one_row_per_seat`).
//!
//! The room decides who is present and numbers the seats it gives; GC records its decisions
//! after it made them. An admission and the leave of the same seat may reach PostgreSQL in
//! either order (a join racing a leave), so both write the seat's row: the admission opens it
//! unless it exists, the leave closes it or writes it closed.

use chrono::{DateTime, Utc};
use common::db::Bounded;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::db::Recorded;
use crate::domain::events::{LeaveReason, MeetingEvent};
use crate::domain::meeting::{MeetingStart, MeetingStatus};
pub use crate::domain::room::{EndedSeat, Seated};

/// Whether the user has a visit of the meeting open.
pub async fn has_open_visit(
    pool: &PgPool,
    meeting_id: Uuid,
    user_id: Uuid,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "select exists (select 1 from participants
                        where meeting_id = $1 and user_id = $2 and left_at is null)",
    )
    .bind(meeting_id)
    .bind(user_id)
    .fetch_one(pool)
    .bounded()
    .await
}

/// The seat of the user's open visit of the meeting, if one is open: `Some(None)` for a visit
/// recorded before seats were numbered, `Some(Some(seat))` for the latest numbered one.
pub async fn open_seat(
    pool: &PgPool,
    meeting_id: Uuid,
    user_id: Uuid,
) -> Result<Option<Option<i64>>, sqlx::Error> {
    sqlx::query_scalar(
        "select seat from participants
         where meeting_id = $1 and user_id = $2 and left_at is null
         order by seat desc nulls last limit 1",
    )
    .bind(meeting_id)
    .bind(user_id)
    .fetch_optional(pool)
    .bounded()
    .await
}

/// Open visits of a meeting (people GC believes are present).
pub async fn open_count(pool: &PgPool, meeting_id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "select count(*) from participants where meeting_id = $1 and left_at is null",
    )
    .bind(meeting_id)
    .fetch_one(pool)
    .bounded()
    .await
}

/// A meeting whose seats an admission statement recorded, as the statement left its row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdmittedMeeting {
    pub meeting_id: Uuid,
    /// Its status and start: `active` from its first seat, with the time of that seat.
    pub start: MeetingStart,
    /// Visits the statement opened in the meeting (for all the admissions it held).
    pub opened: u64,
}

/// Records seats a room has just given ([`ADMIT_SQL`]): a visit per seat whose row does not
/// exist yet, with its `participant_admitted` event by `actor`; the meeting active from its
/// first seat (with its `meeting_started` event); its empty-meeting clock stopped unless the
/// room was seen empty after these seats. Nothing is recorded for a meeting that has ended
/// (`None`). Returns the meeting as the admission left it.
pub async fn admit<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    meeting_id: Uuid,
    org_id: Uuid,
    seats: &[Seated],
    actor: crate::domain::events::Actor<'_>,
) -> Result<Option<AdmittedMeeting>, sqlx::Error> {
    let mut rows = crate::db::admissions::AdmissionRows::default();
    for seated in seats {
        rows.add(meeting_id, org_id, *seated, actor);
    }
    let admitted = admit_batch(executor, &rows).await?;
    Ok(admitted.into_iter().find(|m| m.meeting_id == meeting_id))
}

/// The admission of seats, one statement: `$1..$9` the columns of the seats (meeting, org,
/// user, role, seat number, and the actor, address and user agent of their audit rows), `$10`
/// their meetings, sorted.
///
/// - `was` locks, in id order, the meetings still `scheduled` (only those: a running meeting's
///   admission takes no lock here; the test is written as a `case` so that no plan can serve
///   it from the partial index of scheduled meetings, read whole, instead of the primary key)
///   and keeps those that are still `scheduled` once locked: the
///   meetings this statement starts, each recorded `meeting_started` exactly once whatever
///   admissions race (without the lock, 63 of 200 racing pairs recorded two starts). `live`'s
///   condition reads `was` (an init plan, run before its first row is updated), so the locks
///   are taken before any update of the statement. `live` updates each meeting's row (an index
///   scan over the sorted `$10`, so two statements sharing meetings lock them in the same
///   order): `active` from its first seat, `last_seat`
///   raised, and the empty clock stopped only for a seat above the one the room was last seen
///   empty at (`empty_as_of_seat`), or started when the room was seen empty before the meeting
///   was active and nothing later has been seated. The update re-reads a row another
///   transaction changed meanwhile, so these hold whatever order the marks and admissions of
///   a meeting commit in. An ended meeting is not updated, and none of its seats is recorded.
/// - `superseded` closes a visit still open of an earlier seat of the same user: the room gave
///   the new seat, so that one had ended (its leave is late or was lost; when it comes, it
///   replaces this reason with its own). It finds them user by user (a lateral subquery, which
///   the planner cannot turn into a join over the whole table), so a plan made while the table
///   was small stays a few index steps per seat as it grows; a user has a handful of open visits
///   at most, 64 per admission are closed.
/// - `newest` keeps the seats with no later seat of their user recorded: a subquery per seat
///   (the user's highest seat), which stays a lookup by the seat's keys whatever the plan. Written
///   as `not exists`, it became an anti join, and the plan a batch connection made while the
///   table was empty read the whole index once per statement until the table was analyzed
///   again (4 times a join's PostgreSQL CPU after 10,000 visits, docs/benchmarks.md).
/// - `visits` opens the seat's visit unless its row exists (the seat's leave was recorded
///   first, or this admission was) or a later seat of the user is recorded. The unique index
///   of one row per seat settles an admission and a leave of the same seat inserting at once.
/// - `events` are what it changed, recorded by [`crate::db::events::record_events!`]: the
///   meetings it started, then a `participant_admitted` per visit it opened, by the actor of
///   the admission.
/// - The statement answers a row per meeting it updated (none for an ended one): its status
///   and `started_at` as `live` left them, and the visits it opened there. A join shows the
///   meeting from this row, without reading it again.
///
/// A seat that this statement's snapshot did not show as replaced may still be opened after a
/// later seat of the user was recorded by a transaction that committed meanwhile; its own leave,
/// which the room sent when it ended that seat, closes it (`tests/api/visits.rs` applies every
/// order of a room's records).
pub const ADMIT_SQL: &str = concat!(
    "with b as (
    select distinct on (b.meeting_id, b.user_id) b.*
    from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::bigint[], $6::text[],
                $7::text[], $8::text[], $9::text[])
             as b(meeting_id, org_id, user_id, role, seat, actor_id, actor_type, ip, user_agent)
    order by b.meeting_id, b.user_id, b.seat desc
),
was as (
    select m.id from meetings m
    where m.id = any($10) and case m.status when 'scheduled' then true else false end
    order by m.id
    for no key update
),
live as (
    update meetings m
    set status = 'active',
        started_at = coalesce(m.started_at, now()),
        empty_since = case
            when (select max(b.seat) from b where b.meeting_id = m.id)
                 > coalesce(m.empty_as_of_seat, 0) then null
            when coalesce(m.last_seat, 0) <= m.empty_as_of_seat
                then coalesce(m.empty_since, now())
            else m.empty_since end,
        last_seat = greatest(coalesce(m.last_seat, 0),
                             (select max(b.seat) from b where b.meeting_id = m.id))
    where m.id = any($10) and m.status <> 'ended'
      and cardinality(array(select id from was)) >= 0
    returning m.id, m.status, m.started_at, m.id = any(array(select id from was)) as started
),
newest as (
    select b.* from b
    where b.meeting_id in (select id from live)
      and coalesce((select max(q.seat) from participants q
                    where q.meeting_id = b.meeting_id and q.user_id = b.user_id) < b.seat,
                   true)
),
superseded as (
    update participants p
    set left_at = greatest(p.joined_at, now()), leave_reason = 'superseded'
    where p.id = any (array(
        select o.id
        from newest n
        cross join lateral (
            select q.id from participants q
            where q.meeting_id = n.meeting_id and q.user_id = n.user_id and q.left_at is null
              and (q.seat is null or q.seat < n.seat)
            limit 64) o))
),
visits as (
    insert into participants (meeting_id, user_id, role, seat)
    select n.meeting_id, n.user_id, n.role, n.seat from newest n
    on conflict do nothing
    returning meeting_id, user_id, role
),
events as (
    select b.org_id, l.id as meeting_id, b.actor_id, b.actor_type, b.ip, b.user_agent,
           'meeting_started' as action, '{}'::jsonb as details
    from live l
    cross join lateral (select * from b where b.meeting_id = l.id order by b.seat limit 1) b
    where l.started
    union all
    select n.org_id, v.meeting_id, n.actor_id, n.actor_type, n.ip, n.user_agent,
           'participant_admitted', jsonb_build_object('user_id', v.user_id, 'role', v.role)
    from visits v
    join newest n on n.meeting_id = v.meeting_id and n.user_id = v.user_id
),
",
    crate::db::events::record_events!(),
    "
select l.id, l.status, l.started_at,
       (select count(*) from visits v where v.meeting_id = l.id) as opened
from live l"
);

/// [`admit`] for the seats of many meetings at once (row `i` of each column of `rows` is one
/// seat), in one statement and one transaction: each meeting it recorded seats of, as it left
/// it (an ended meeting is not among them).
pub async fn admit_batch<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    rows: &crate::db::admissions::AdmissionRows,
) -> Result<Vec<AdmittedMeeting>, sqlx::Error> {
    let admitted: Vec<(Uuid, String, Option<DateTime<Utc>>, i64)> = sqlx::query_as(ADMIT_SQL)
        .bind(&rows.meeting_ids)
        .bind(&rows.org_ids)
        .bind(&rows.user_ids)
        .bind(&rows.roles)
        .bind(&rows.seats)
        .bind(&rows.actor_ids)
        .bind(&rows.actor_types)
        .bind(&rows.ips)
        .bind(&rows.user_agents)
        .bind(rows.meetings())
        .fetch_all(executor)
        .bounded()
        .await?;
    admitted
        .into_iter()
        .map(|(meeting_id, status, started_at, opened)| {
            let status = MeetingStatus::parse(&status).ok_or_else(|| {
                sqlx::Error::Decode("meetings.status is not a known status".into())
            })?;
            Ok(AdmittedMeeting {
                meeting_id,
                start: MeetingStart { status, started_at },
                opened: u64::try_from(opened).unwrap_or(0),
            })
        })
        .collect()
}

/// A leave as the room decided it, to be recorded.
#[derive(Clone, Debug)]
pub struct Leave<'a> {
    pub meeting_id: Uuid,
    pub org_id: Uuid,
    pub user_id: Uuid,
    /// `left`, `connection_lost`, ...
    pub reason: &'a str,
    /// When the room saw it (now when `None`).
    pub left_at: Option<DateTime<Utc>>,
    /// The seat that ended, when the user was seated.
    pub seat: Option<EndedSeat>,
    /// The room's last seat number when the user left: every seat of theirs up to it has
    /// ended (0: none numbered yet, so every open visit has).
    pub last_seat: i64,
    /// Nobody is seated any more (as the room answered the leave).
    pub room_empty: bool,
}

/// Records a leave: the meeting's row locked first (and, when the room is empty, its empty
/// clock started as of `last_seat`); the seat's visit closed, or written closed if its
/// admission has not been recorded yet (with that admission's audit row); every other visit of
/// the user up to `last_seat` closed; and a `participant_left` audit row when the user was
/// seated or had a visit open. Nothing is recorded for a meeting that has ended (its end closed
/// every visit). Returns whether a `participant_left` row was written.
///
/// One statement ([`LEAVE_SQL`]), so one round trip and one implicit transaction in the common
/// case. A statement reads what committed before it started, and the meeting's row it locks may
/// have been changed since by an admission it waited for, whose visits it would not see: it
/// then writes nothing and says so ([`Recorded::Stale`]), and is run again with a new snapshot;
/// after [`crate::db::FRESH_ATTEMPTS`] such answers, in a transaction that takes the row's lock
/// first ([`crate::db::meetings::run_fresh`]).
pub async fn record_leave(
    pool: &PgPool,
    leave: &Leave<'_>,
    actor: crate::domain::events::Actor<'_>,
) -> Result<bool, sqlx::Error> {
    let leaving = Leaving { leave, actor };
    crate::db::meetings::run_fresh(pool, leave.meeting_id, &leaving).await
}

/// [`record_leave`] in the caller's transaction, which holds the meeting's row until it ends.
pub async fn record_leave_in(
    tx: &mut PgConnection,
    leave: &Leave<'_>,
    actor: crate::domain::events::Actor<'_>,
) -> Result<bool, sqlx::Error> {
    let leaving = Leaving { leave, actor };
    crate::db::meetings::run_locked(tx, leave.meeting_id, &leaving).await
}

struct Leaving<'a> {
    leave: &'a Leave<'a>,
    actor: crate::domain::events::Actor<'a>,
}

impl crate::db::meetings::LockingStatement for Leaving<'_> {
    type Output = bool;

    fn ended(&self) -> bool {
        false
    }

    fn run<'c>(
        &'c self,
        conn: &'c mut PgConnection,
    ) -> impl std::future::Future<Output = Result<Recorded<bool>, sqlx::Error>> + Send + 'c {
        run_leave(conn, self.leave, self.actor)
    }
}

/// The leave, one statement: `$1` meeting, `$2` user, `$3` the seat's role, `$4` its number
/// (null: the user held no seat), `$5` when it was given, `$6` when it ended (null: now), `$7`
/// the reason, `$8` the room's last seat number, `$9` whether the room is empty, `$10` the org,
/// `$11..$14` the actor's audit columns, `$15` and `$16` the details of the
/// `participant_admitted` and `participant_left` events.
///
/// - `snap` is the meeting's row as the statement's snapshot shows it (live only).
/// - `marked` (an empty room) starts its empty clock as of `$8` and `locked` (otherwise) locks
///   it; both only if the row is still the version `snap` read (its `xmin`): a row another
///   transaction changed meanwhile (an admission, whose visits this snapshot misses) is
///   re-read by the update or the lock after that transaction commits, with another `xmin`, and
///   the statement then writes nothing (`stale`). `live` is the row kept, read as a one-time
///   filter by every write below, so the row is locked before any visit is (the order every
///   writer of visits takes: no deadlock with an admission).
/// - `seat` closes the seat's row, or writes it closed when its admission has not been
///   recorded (that admission will find the row and leave it so); a row closed as
///   `superseded` by a later seat's admission takes the leave's time and reason instead.
/// - `others` closes every other open visit of the user up to `$8` (every one when `$8` is 0).
/// - `events`: `participant_admitted` for a seat row it inserted, `participant_left` when it
///   closed anything, recorded by [`crate::db::events::record_events!`].
pub const LEAVE_SQL: &str = concat!(
    "with snap as (
    select m.id, m.xmin as version from meetings m where m.id = $1 and m.status <> 'ended'
),
marked as (
    update meetings m
    set empty_since = case
            when m.status = 'active' and coalesce(m.last_seat, 0) <= $8
                then coalesce(m.empty_since, now())
            else m.empty_since end,
        empty_as_of_seat = case
            when coalesce(m.last_seat, 0) <= $8 then greatest(coalesce(m.empty_as_of_seat, 0), $8)
            else m.empty_as_of_seat end
    where m.id = $1 and $9 and m.status <> 'ended' and m.xmin = (select version from snap)
    returning m.id
),
locked as (
    select m.id, m.xmin as version from meetings m
    where m.id = $1 and not $9 and m.status <> 'ended'
    for no key update
),
live as (
    select id from marked
    union all
    select id from locked where version = (select version from snap)
),
seat as (
    insert into participants (meeting_id, user_id, role, seat, joined_at, left_at, leave_reason)
    select $1, $2, $3, $4, coalesce($5, now()), greatest(coalesce($5, now()), coalesce($6, now())),
           $7
    where $4::bigint is not null and exists (select 1 from live)
    on conflict (meeting_id, user_id, seat) where seat is not null do update
        set left_at = greatest(participants.joined_at, excluded.left_at),
            leave_reason = excluded.leave_reason
        where participants.left_at is null or participants.leave_reason = 'superseded'
    returning xmax = 0 as inserted
),
others as (
    update participants p
    set left_at = greatest(p.joined_at, coalesce($6, now())), leave_reason = $7
    where p.meeting_id = $1 and p.user_id = $2 and p.left_at is null
      and ($8 = 0 or p.seat is null or p.seat <= $8)
      and ($4::bigint is null or p.seat is distinct from $4)
      and exists (select 1 from live)
    returning p.id
),
closed as (
    select exists (select 1 from seat) or exists (select 1 from others) as hit
),
events as (
    select $10::uuid as org_id, $1::uuid as meeting_id, $11::text as actor_id,
           $12::text as actor_type, $13::text as ip, $14::text as user_agent,
           'participant_admitted' as action, $15::jsonb as details
    from seat where seat.inserted
    union all
    select $10, $1, $11, $12, $13, $14, 'participant_left', $16::jsonb
    where (select hit from closed)
),
",
    crate::db::events::record_events!(),
    "
select exists (select 1 from live) as live,
       exists (select 1 from snap) and not exists (select 1 from live) as stale,
       (select hit from closed) as closed"
);

async fn run_leave<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    leave: &Leave<'_>,
    actor: crate::domain::events::Actor<'_>,
) -> Result<Recorded<bool>, sqlx::Error> {
    let reason = LeaveReason::bounded(leave.reason);
    let (actor_id, actor_type, ip, user_agent) = actor.columns();
    let role = leave.seat.as_ref().map(|seat| seat.role);
    let admitted = role.map(|role| {
        MeetingEvent::ParticipantAdmitted {
            user_id: leave.user_id,
            role,
        }
        .details()
    });
    let left = MeetingEvent::ParticipantLeft {
        user_id: leave.user_id,
        reason: reason.clone(),
    }
    .details();
    let (live, stale, closed): (bool, bool, bool) = sqlx::query_as(LEAVE_SQL)
        .bind(leave.meeting_id)
        .bind(leave.user_id)
        .bind(role.map(|role| role.as_str()))
        .bind(leave.seat.as_ref().map(|seat| seat.seat))
        .bind(leave.seat.as_ref().and_then(|seat| seat.joined_at))
        .bind(leave.left_at)
        .bind(reason.as_str())
        .bind(leave.last_seat)
        .bind(leave.room_empty)
        .bind(leave.org_id)
        .bind(actor_id)
        .bind(actor_type)
        .bind(ip.map(|ip| ip.to_string()))
        .bind(user_agent)
        .bind(admitted)
        .bind(left)
        .fetch_one(executor)
        .bounded()
        .await?;
    Ok(if stale {
        Recorded::Stale
    } else {
        Recorded::Done(live && closed)
    })
}

#[cfg(test)]
mod tests {
    /// The pgbench script of the join's writes runs [`super::ADMIT_SQL`] for one seat: the same
    /// text with pgbench's variables for the parameters, so the benchmark measures what GC runs.
    #[test]
    fn the_join_benchmarks_pgbench_script_runs_the_admission_statement() {
        let script = include_str!("../../benches/join_meeting.pgbench.sql");
        let mut expected = super::ADMIT_SQL.to_owned();
        for (parameter, variable) in [
            ("$10", "array[:meeting_id::uuid]"),
            ("$1::uuid[]", "array[:meeting_id::uuid]"),
            ("$2::uuid[]", "array[:org_id::uuid]"),
            ("$3::uuid[]", "array[:user_id::uuid]"),
            ("$4::text[]", "array['guest']"),
            ("$5::bigint[]", "array[:p + 1]::bigint[]"),
            ("$6::text[]", "array[:user_id::text]"),
            ("$7::text[]", "array['user']"),
            ("$8::text[]", "array['127.0.0.1']"),
            ("$9::text[]", "array[null]::text[]"),
        ] {
            assert!(
                expected.contains(parameter),
                "{parameter} is not in ADMIT_SQL"
            );
            expected = expected.replace(parameter, variable);
        }
        let words = |sql: &str| sql.split_whitespace().collect::<Vec<_>>().join(" ");
        let statement = &script[script.find("with b as (").expect("the statement")..];
        assert_eq!(
            words(statement.trim_end().trim_end_matches(';')),
            words(&expected)
        );
    }
}
