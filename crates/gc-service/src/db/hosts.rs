//! Who hosts a meeting (DESIGN §12): `meetings.host_id` and `host_seq`, and `meeting_hosts`,
//! everyone who was given the role after the creator (for their history).
//!
//! The live room decides every change of host in one atomic step and numbers it (`host_seq`).
//! GC hears of a change by several paths, which may reach PostgreSQL in any order: a
//! hand-over's answer, a leave's answer, a controller's report of a seat lost on its side, a
//! join's answer (the creator taking the role back). [`record_change`] writes a change only if
//! its number is above the one stored, so the newest change is the one that stays, with its
//! `host_transferred` audit row in the same transaction.

use common::db::Bounded;
use uuid::Uuid;

use crate::domain::events::{Actor, Change, HostChangeReason, MeetingEvent};
use crate::domain::meeting::Meeting;
use crate::domain::room::HostChange;

/// Records `change` of `meeting`'s host unless PostgreSQL holds this change or a newer one
/// already, or the meeting has ended; returns whether it wrote anything.
pub async fn record_change(
    pool: &sqlx::PgPool,
    meeting: &Meeting,
    change: HostChange,
    reason: HostChangeReason,
    actor: Actor<'_>,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let previous: Option<(Option<Uuid>,)> = sqlx::query_as(
        "select host_id from meetings
         where id = $1 and host_seq < $2 and status <> 'ended'
         for update",
    )
    .bind(meeting.id)
    .bind(change.seq)
    .fetch_optional(&mut *tx)
    .bounded()
    .await?;
    let Some((from,)) = previous else {
        return Ok(false);
    };
    sqlx::query("update meetings set host_id = $2, host_seq = $3 where id = $1")
        .bind(meeting.id)
        .bind(change.host)
        .bind(change.seq)
        .execute(&mut *tx)
        .bounded()
        .await?;
    if let Some(host) = change.host
        && host != meeting.creator_id
    {
        sqlx::query(
            "insert into meeting_hosts (meeting_id, user_id) values ($1, $2)
             on conflict do nothing",
        )
        .bind(meeting.id)
        .bind(host)
        .execute(&mut *tx)
        .bounded()
        .await?;
    }
    let event = Change {
        org_id: meeting.org_id,
        meeting_id: meeting.id,
        actor,
        event: MeetingEvent::HostTransferred {
            from,
            to: change.host,
            reason,
        },
    };
    crate::db::events::record(&mut *tx, &[event]).await?;
    tx.commit().await?;
    Ok(true)
}
