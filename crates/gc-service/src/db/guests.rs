//! `meeting_guests`: the people without an account who asked to join a meeting by its link
//! (DESIGN §12), each with the name they gave, recorded with their `guest_joined` event.

use common::db::Bounded;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::events::{Actor, MeetingEvent};

/// Records a guest who now waits in the meeting's lobby, and their `guest_joined` event, in one
/// statement. A guest already recorded (the same id again) writes nothing, event included.
pub async fn record_guest(
    pool: &PgPool,
    meeting_id: Uuid,
    org_id: Uuid,
    guest_id: Uuid,
    display_name: &str,
    actor: Actor<'_>,
) -> Result<(), sqlx::Error> {
    let (actor_id, actor_type, ip, user_agent) = actor.columns();
    let event = MeetingEvent::GuestJoined { guest_id };
    sqlx::query(concat!(
        "with guest as (
            insert into meeting_guests (meeting_id, guest_id, display_name)
            values ($1, $3, $4)
            on conflict (meeting_id, guest_id) do nothing
            returning meeting_id
         ),
         events as (
            select $2::uuid as org_id, g.meeting_id, $5::text as actor_id,
                   $6::text as actor_type, $7::text as ip, $8::text as user_agent,
                   $9::text as action, $10::jsonb as details
            from guest g
         )
         ",
        crate::db::events::record_events!()
    ))
    .bind(meeting_id)
    .bind(org_id)
    .bind(guest_id)
    .bind(display_name)
    .bind(actor_id)
    .bind(actor_type)
    .bind(ip.map(|ip| ip.to_string()))
    .bind(user_agent)
    .bind(event.action())
    .bind(event.details())
    .execute(pool)
    .bounded()
    .await?;
    Ok(())
}
