//! The record of every change ([`crate::domain::events`]): one statement text writes it,
//! [`record_events!`], in the transaction of the change.
//!
//! A statement that makes a change and records it ends with a CTE named `events` holding one
//! row per event, with the columns `(org_id uuid, meeting_id uuid, actor_id text, actor_type
//! text, ip text, user_agent text, action text, details jsonb)`, and then runs
//! `record_events!()` (two more CTEs, then its final `select`): the create statements, the
//! admission statement (whose `events` are the seats it opened and the meetings it started),
//! the leave's and the end's statements (`db::participants::LEAVE_SQL`,
//! `db::meetings::END_SQL`), and [`record`], which the other changes (rejections, settings)
//! call with the events their use case built. The record is the audit log (`audit_logs`) and
//! the webhook outbox (`webhook_deliveries`, DESIGN §13), written from the same rows by the
//! same statement, so no change can reach one and miss the other.

use crate::domain::events::Change;
use common::db::Bounded;

/// The one writer of the record: two more CTEs of the statement whose `events` relation they
/// record (see the module's documentation for its columns), `recorded` (the audit rows) and
/// `outboxed` (one delivery per enabled webhook of the event's org subscribed to its type,
/// with the body `webhook_payload` builds; none for an event no webhook reports). The statement
/// goes on with its final `select`.
///
/// `record_events!(with_names)` is for an `events` relation with a ninth column,
/// `display_name`: the name of a person the statement itself records (a new guest), which
/// `webhook_payload` could not read from the tables in the same statement.
macro_rules! record_events {
    () => {
        $crate::db::events::record_events!(@name "null::text")
    };
    (with_names) => {
        $crate::db::events::record_events!(@name "e.display_name")
    };
    (@name $name:literal) => {
        concat!(
            "recorded as (
    insert into audit_logs (org_id, actor_id, actor_type, action, resource_type, resource_id,
                            details, ip, user_agent)
    select e.org_id, e.actor_id, e.actor_type, e.action, 'meeting', e.meeting_id::text,
           e.details, e.ip::inet, e.user_agent
    from events e
),
outboxed as (
    insert into webhook_deliveries (webhook_id, event_type, payload)
    select w.id, t.type,
           webhook_payload(t.type, now(), e.org_id, e.meeting_id, e.actor_id, e.details, ",
            $name,
            ")
    from events e
             cross join lateral (select webhook_event_type(e.action) as type) t
             join webhooks w on w.org_id = e.org_id and w.enabled and t.type = any (w.events)
)"
        )
    };
}
pub(crate) use record_events;

/// Records `changes` (nothing for none), in the caller's transaction: one statement.
pub async fn record<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    changes: &[Change<'_>],
) -> Result<(), sqlx::Error> {
    if changes.is_empty() {
        return Ok(());
    }
    let mut org_ids = Vec::with_capacity(changes.len());
    let mut meeting_ids = Vec::with_capacity(changes.len());
    let mut actor_ids = Vec::with_capacity(changes.len());
    let mut actor_types = Vec::with_capacity(changes.len());
    let mut ips = Vec::with_capacity(changes.len());
    let mut user_agents = Vec::with_capacity(changes.len());
    let mut actions = Vec::with_capacity(changes.len());
    let mut details = Vec::with_capacity(changes.len());
    for change in changes {
        let (actor_id, actor_type, ip, user_agent) = change.actor.columns();
        org_ids.push(change.org_id);
        meeting_ids.push(change.meeting_id);
        actor_ids.push(actor_id);
        actor_types.push(actor_type);
        ips.push(ip.map(|ip| ip.to_string()));
        user_agents.push(user_agent);
        actions.push(change.event.action());
        details.push(change.event.details());
    }
    sqlx::query(concat!(
        "with events as (
            select * from unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[],
                                 $6::text[], $7::text[], $8::jsonb[])
                as e(org_id, meeting_id, actor_id, actor_type, ip, user_agent, action, details)),
         ",
        record_events!(),
        "
         select 1"
    ))
    .bind(org_ids)
    .bind(meeting_ids)
    .bind(actor_ids)
    .bind(actor_types)
    .bind(ips)
    .bind(user_agents)
    .bind(actions)
    .bind(details)
    .execute(executor)
    .bounded()
    .await?;
    Ok(())
}
