//! `meeting_guests`: the people without an account who asked to join a meeting by its link
//! (DESIGN §12), each with the name they gave, recorded with their `guest_joined` event.

use common::db::Bounded;
use common::shell::Background;
use sqlx::PgPool;
use uuid::Uuid;

use crate::batch::{Batcher, Item, Shape};
use crate::domain::events::MeetingEvent;

/// Guests in one statement, at most.
pub const MAX_GUESTS: usize = 256;
/// Guests waiting for a statement, at most.
pub const QUEUE: usize = 4096;

/// One guest to record, with their `guest_joined` event's actor columns.
#[derive(Clone, Debug)]
pub struct GuestRecord {
    pub meeting_id: Uuid,
    pub org_id: Uuid,
    pub guest_id: Uuid,
    pub display_name: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// The handle guest-joins record their guests through, many to a statement: one task writes
/// the guests queued while its previous statement ran (at most [`MAX_GUESTS`]), so a storm of
/// guests costs PostgreSQL one commit per batch, not one per guest. Nothing waits for more: an
/// idle GC writes each guest at once. A statement that fails fails every guest in it (each
/// leaves the lobby again, and their request answers 503). The queue is bounded ([`QUEUE`]).
#[derive(Clone)]
pub struct GuestRecords {
    batcher: Batcher<GuestRecord, Result<(), sqlx::Error>>,
}

impl GuestRecords {
    pub fn new(pool: PgPool, background: &Background) -> Self {
        let shape = Shape {
            name: "guest records",
            capacity: QUEUE,
            max_weight: MAX_GUESTS,
            linger: None,
        };
        let batcher = Batcher::start(
            shape,
            |_| 1,
            move |batch| write(pool.clone(), batch),
            background,
        );
        Self { batcher }
    }

    /// Records a guest who now waits in the meeting's lobby, and their `guest_joined` event,
    /// once committed. A guest already recorded writes nothing, event included.
    pub async fn record(&self, guest: GuestRecord) -> Result<(), sqlx::Error> {
        self.batcher.submit(guest).await?
    }
}

async fn write(pool: PgPool, batch: Vec<Item<GuestRecord, Result<(), sqlx::Error>>>) {
    crate::metrics::db_batch(crate::metrics::queue::GUESTS, batch.len());
    let mut seen = std::collections::HashSet::with_capacity(batch.len());
    let guests: Vec<&GuestRecord> = batch
        .iter()
        .map(|item| &item.request)
        .filter(|g| seen.insert((g.meeting_id, g.guest_id)))
        .collect();
    let result = record_guests(&pool, &guests).await;
    for item in batch {
        item.answer(match &result {
            Ok(()) => Ok(()),
            Err(error) => Err(super::copy_error(error)),
        });
    }
}

/// Records `guests` (distinct guests of their meetings) and one `guest_joined` event each, in
/// one statement.
async fn record_guests(pool: &PgPool, guests: &[&GuestRecord]) -> Result<(), sqlx::Error> {
    let column = |f: &dyn Fn(&GuestRecord) -> Option<String>| -> Vec<Option<String>> {
        guests.iter().map(|g| f(g)).collect()
    };
    let details: Vec<serde_json::Value> = guests
        .iter()
        .map(|g| {
            MeetingEvent::GuestJoined {
                guest_id: g.guest_id,
            }
            .details()
        })
        .collect();
    sqlx::query(concat!(
        "with g as (
            select * from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[],
                                 $6::text[], $7::jsonb[])
                as g(meeting_id, org_id, guest_id, display_name, ip, user_agent, details)
         ),
         guest as (
            insert into meeting_guests (meeting_id, guest_id, display_name)
            select meeting_id, guest_id, display_name from g
            on conflict (meeting_id, guest_id) do nothing
            returning meeting_id, guest_id
         ),
         events as (
            select g.org_id, g.meeting_id, g.guest_id::text as actor_id,
                   'guest'::text as actor_type, g.ip, g.user_agent,
                   'guest_joined'::text as action, g.details, g.display_name
            from guest join g using (meeting_id, guest_id)
         ),
         ",
        crate::db::events::record_events!(with_names),
        "
         select 1"
    ))
    .bind(guests.iter().map(|g| g.meeting_id).collect::<Vec<_>>())
    .bind(guests.iter().map(|g| g.org_id).collect::<Vec<_>>())
    .bind(guests.iter().map(|g| g.guest_id).collect::<Vec<_>>())
    .bind(column(&|g| Some(g.display_name.clone())))
    .bind(column(&|g| g.ip.clone()))
    .bind(column(&|g| g.user_agent.clone()))
    .bind(details)
    .execute(pool)
    .bounded()
    .await?;
    Ok(())
}
