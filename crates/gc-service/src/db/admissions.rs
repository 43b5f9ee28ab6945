//! Admissions recorded in shared transactions (group commit).
//!
//! Every admission a room makes is recorded in PostgreSQL ([`super::participants::admit`]):
//! the visit, its `participant_admitted` audit row, and the meeting made active. Recorded one
//! transaction each, a busy GC spends most of a join's database time on what every transaction
//! costs whatever it holds (a round trip, the executor's start, a commit record and a wait for
//! the WAL to reach the disk), and the fewer joins are in PostgreSQL at once, the fewer of
//! those commits share a disk flush.
//!
//! [`Admissions::record`] queues the admission instead; one task writes the queue, one
//! statement at a time ([`super::participants::admit_batch`]), each holding what was queued
//! while the previous one ran (at most [`MAX_ROWS`] visits). Nothing waits for more: an idle
//! GC writes each admission at once, as before, and a busy one writes many per commit. A caller
//! is answered only when the statement holding its admission has committed, so an answer still
//! means the visit is stored.
//!
//! A statement PostgreSQL refuses does not fail its neighbours: each admission of it is then
//! written alone, as before, and its caller gets its own answer. A statement that found no
//! connection (or lost it) fails all of its admissions at once, with that error. Several GC
//! replicas each write their own statements; each statement locks its meetings in the order of
//! their ids, so two of them sharing meetings wait for each other rather than deadlock.
//!
//! An admission is written even when its caller has gone meanwhile (a client that hung up
//! after the room seated it): the room and PostgreSQL stay in agreement. The queue is bounded
//! ([`QUEUE`]); a full queue makes callers wait, never grows.

use common::shell::Background;
use std::collections::HashMap;

use sqlx::PgPool;
use uuid::Uuid;

use crate::batch::{Batcher, Item, Shape};

use super::participants::{self, AdmittedMeeting, Seated};
use crate::domain::events::{Actor, OwnedActor};

/// Visits in one statement, at most (an admission with more users goes alone, whole).
pub const MAX_ROWS: usize = 256;
/// Admissions waiting for a statement, at most.
pub const QUEUE: usize = 4096;

/// One room's admission of one or more users, by one actor.
struct Admission {
    meeting_id: Uuid,
    org_id: Uuid,
    users: Vec<Seated>,
    actor: OwnedActor,
}

/// What an admission's caller is told: its meeting as the statement left it, `None` when the
/// meeting had ended (nothing was recorded).
type Answer = Result<Option<AdmittedMeeting>, sqlx::Error>;

type Pending = Item<Admission, Answer>;

/// The columns of a statement's visits, one entry per visit.
#[derive(Default)]
pub struct AdmissionRows {
    pub meeting_ids: Vec<Uuid>,
    pub org_ids: Vec<Uuid>,
    pub user_ids: Vec<Uuid>,
    pub roles: Vec<&'static str>,
    pub seats: Vec<i64>,
    pub actor_ids: Vec<Option<String>>,
    pub actor_types: Vec<&'static str>,
    pub ips: Vec<Option<String>>,
    pub user_agents: Vec<Option<String>>,
}

impl AdmissionRows {
    /// Adds the seats of `pending`. The same user twice in one meeting's statement keeps only
    /// their latest seat (the one the room holds, or held last): an earlier one ended before
    /// it was given, and its leave records it.
    fn push(&mut self, pending: &Admission, seen: &mut HashMap<(Uuid, Uuid), usize>) {
        for seated in &pending.users {
            match seen.get(&(pending.meeting_id, seated.user_id)) {
                Some(&row) if self.seats[row] >= seated.seat => {}
                Some(&row) => {
                    self.seats[row] = seated.seat;
                    self.roles[row] = seated.role.as_str();
                }
                None => {
                    seen.insert((pending.meeting_id, seated.user_id), self.len());
                    let actor = pending.actor.as_actor();
                    self.add(pending.meeting_id, pending.org_id, *seated, actor);
                }
            }
        }
    }

    /// One more seat to record.
    pub fn add(&mut self, meeting_id: Uuid, org_id: Uuid, seated: Seated, actor: Actor<'_>) {
        let (actor_id, actor_type, ip, user_agent) = actor.columns();
        self.meeting_ids.push(meeting_id);
        self.org_ids.push(org_id);
        self.user_ids.push(seated.user_id);
        self.roles.push(seated.role.as_str());
        self.seats.push(seated.seat);
        self.actor_ids.push(actor_id);
        self.actor_types.push(actor_type);
        self.ips.push(ip.map(|ip| ip.to_string()));
        self.user_agents.push(user_agent.map(str::to_owned));
    }

    /// The meetings of the rows, sorted, each once.
    pub fn meetings(&self) -> Vec<Uuid> {
        let mut ids = self.meeting_ids.clone();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    pub fn len(&self) -> usize {
        self.user_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.user_ids.is_empty()
    }
}

/// The handle the use cases record admissions through; clones share the queue.
#[derive(Clone)]
pub struct Admissions {
    batcher: Batcher<Admission, Answer>,
}

impl Admissions {
    /// Starts the writing task on `background`; it writes what is queued and ends when the
    /// last clone of the handle is dropped.
    pub fn new(pool: PgPool, background: &Background) -> Self {
        let shape = Shape {
            name: "admissions",
            capacity: QUEUE,
            max_weight: MAX_ROWS,
            linger: None,
        };
        let batcher = Batcher::start(
            shape,
            |admission: &Admission| admission.users.len(),
            move |batch| write(pool.clone(), batch),
            background,
        );
        Self { batcher }
    }

    /// Records that the room of `meeting_id` gave these seats: their visits, audit rows, and
    /// the meeting active. Returns once it is committed, with the meeting's status and start as
    /// the statement left them. Nothing is recorded for a meeting that has ended (`None`), nor
    /// for no seats (`None`, and no statement).
    pub async fn record(
        &self,
        meeting_id: Uuid,
        org_id: Uuid,
        users: Vec<Seated>,
        actor: Actor<'_>,
    ) -> Answer {
        if users.is_empty() {
            return Ok(None);
        }
        let admission = Admission {
            meeting_id,
            org_id,
            users,
            actor: actor.into(),
        };
        self.batcher.submit(admission).await?
    }
}

/// Writes a batch in one statement; if that fails, each admission alone.
async fn write(pool: PgPool, mut batch: Vec<Pending>) {
    let pool = &pool;
    crate::metrics::db_batch(crate::metrics::queue::ADMISSIONS, batch.len());
    if batch.len() == 1
        && let Some(pending) = batch.pop()
    {
        let result = write_alone(pool, &pending.request).await;
        pending.answer(result);
        return;
    }
    let mut rows = AdmissionRows::default();
    let mut seen = HashMap::new();
    for pending in &batch {
        rows.push(&pending.request, &mut seen);
    }
    match participants::admit_batch(pool, &rows).await {
        Ok(admitted) => {
            tracing::debug!(
                admissions = batch.len(),
                visits = rows.len(),
                "admissions recorded together"
            );
            let meetings: HashMap<Uuid, AdmittedMeeting> =
                admitted.into_iter().map(|m| (m.meeting_id, m)).collect();
            for pending in batch {
                let meeting = meetings.get(&pending.request.meeting_id).copied();
                pending.answer(Ok(meeting));
            }
        }
        // PostgreSQL refused the statement (a visit whose user was deleted meanwhile, a
        // deadlock it broke): written alone, only the admission at fault fails.
        Err(error @ sqlx::Error::Database(_)) => {
            tracing::warn!(
                admissions = batch.len(),
                error = %error,
                "admissions recorded together failed, recording each alone"
            );
            for pending in batch {
                let result = write_alone(pool, &pending.request).await;
                pending.answer(result);
            }
        }
        // No connection, or it broke: each admission alone would only wait as long again, one
        // after the other, while the queue stalls behind them. All fail now.
        Err(error) => {
            tracing::warn!(
                admissions = batch.len(),
                error = %error,
                "admissions could not be recorded"
            );
            for pending in batch {
                pending.answer(Err(super::copy_error(&error)));
            }
        }
    }
}

async fn write_alone(pool: &PgPool, pending: &Admission) -> Answer {
    participants::admit(
        pool,
        pending.meeting_id,
        pending.org_id,
        &pending.users,
        pending.actor.as_actor(),
    )
    .await
}
