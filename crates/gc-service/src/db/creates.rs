//! Creates written in shared transactions (group commit).
//!
//! Written one transaction each, a busy GC spends most of a create's database time on what
//! every transaction costs whatever it holds (a round trip, the executor's start, a commit
//! record and a wait for the WAL to reach the disk). [`Creates::insert`] queues the create
//! instead; one task writes the queue, one statement at a time, each holding what was queued
//! while the previous one ran (at most [`MAX_ROWS`] creates), through
//! `meetings_create_batch` (migration `20261202000001`). Nothing waits for more: a lone create
//! is written at once by the one-create statement ([`super::meetings::insert_meeting`]), as
//! before, and a busy GC writes many per commit. A caller is answered only when the statement
//! holding its meeting has committed.
//!
//! A create the batch did not insert is run again alone by its caller, through the one-create
//! statement, which decides it exactly as before: the batch leaves out, without failing or
//! waiting, every create that would be refused (org inactive or at its limit, host inactive,
//! `max_participants` above the org's, the idempotency key already stored) or that would have
//! to wait for an org slot another create holds. A batch PostgreSQL refuses whole (a code or
//! idempotency-key collision) sends all of its creates alone the same way. A batch that found
//! no connection (or lost it) fails all of its creates at once with that error, rather than
//! make each wait as long again.
//!
//! A create whose caller has gone before its statement (a client that hung up) is not written;
//! once in a statement, it is written even if the caller goes meanwhile. Every statement's size
//! is recorded in `gc_db_batch_items{queue="creates"}`.
//!
//! The queue is bounded ([`QUEUE`]); a full queue makes callers wait, never grows.

use common::shell::Background;
use std::collections::{HashMap, HashSet};

use crate::batch::{Batcher, Item, Shape};
use sqlx::PgPool;
use uuid::Uuid;

use super::meetings::{self, CreateRow, InsertOutcome};
use crate::domain::events::Origin;
use crate::domain::meeting::{Meeting, NewMeeting};

/// Creates in one statement, at most.
pub const MAX_ROWS: usize = 256;
/// Creates waiting for a statement, at most.
pub const QUEUE: usize = 4096;

/// What the writer answers a queued create.
enum Answer {
    /// The statement ran: its outcome for this create.
    Done(Result<InsertOutcome, sqlx::Error>),
    /// The batch did not insert it: the caller runs it alone.
    Alone,
}

/// One queued create.
type Pending = Item<CreateRow, Answer>;

/// The handle the create use case inserts through; clones share the queue.
#[derive(Clone)]
pub struct Creates {
    pool: PgPool,
    batcher: Batcher<CreateRow, Answer>,
}

impl Creates {
    /// Starts the writing task on `background`; it writes what is queued and ends when the
    /// last clone of the handle is dropped.
    pub fn new(pool: PgPool, background: &Background) -> Self {
        let shape = Shape {
            name: "creates",
            capacity: QUEUE,
            max_weight: MAX_ROWS,
            linger: None,
        };
        let writer = pool.clone();
        let batcher = Batcher::start(
            shape,
            |_| 1,
            move |batch| write(writer.clone(), batch),
            background,
        );
        Self { pool, batcher }
    }

    /// The pool the creates are written through.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Inserts `new`, with its `meeting_created` event and idempotency key, sharing a statement with the
    /// creates queued meanwhile; the outcome is that of [`meetings::insert_meeting`].
    pub async fn insert(
        &self,
        new: &NewMeeting,
        from: Origin<'_>,
    ) -> Result<InsertOutcome, sqlx::Error> {
        match self.batcher.submit(CreateRow::new(new, from)).await? {
            Answer::Done(outcome) => outcome,
            Answer::Alone => meetings::insert_meeting(&self.pool, new, from).await,
        }
    }
}

/// Writes a batch in one statement (a lone create with the one-create statement).
async fn write(pool: PgPool, batch: Vec<Pending>) {
    let pool = &pool;
    // Callers that gave up (their client left) are not written for. Two creates with the same
    // idempotency key would fail the whole statement on the key's primary key: the later ones
    // go alone once the statement is done (not meanwhile, where they would wait for the key the
    // statement holds), and the key's own rules decide them.
    let mut keys = HashSet::new();
    let (batch, repeated): (Vec<Pending>, Vec<Pending>) = batch
        .into_iter()
        .filter(|pending| !pending.is_abandoned())
        .partition(|pending| {
            let row = &pending.request;
            match &row.idempotency_key {
                Some(key) => keys.insert((row.host_id, key.clone())),
                None => true,
            }
        });
    write_distinct(pool, batch).await;
    for pending in repeated {
        pending.answer(Answer::Alone);
    }
}

/// Writes creates of which no two share an idempotency key.
async fn write_distinct(pool: &PgPool, mut batch: Vec<Pending>) {
    if batch.is_empty() {
        return;
    }
    crate::metrics::db_batch(crate::metrics::queue::CREATES, batch.len());
    if batch.len() == 1
        && let Some(pending) = batch.pop()
    {
        let outcome = meetings::insert_row(pool, &pending.request).await;
        pending.answer(Answer::Done(outcome));
        return;
    }
    let rows: Vec<&CreateRow> = batch.iter().map(|pending| &pending.request).collect();
    match meetings::insert_batch(pool, &rows).await {
        Ok(created) => {
            tracing::debug!(
                creates = batch.len(),
                inserted = created.len(),
                "creates written together"
            );
            let mut created: HashMap<Uuid, Meeting> = created
                .into_iter()
                .map(|meeting| (meeting.id, meeting))
                .collect();
            for pending in batch {
                let answer = match created.remove(&pending.request.id) {
                    Some(meeting) => Answer::Done(Ok(InsertOutcome::Created(meeting))),
                    None => Answer::Alone,
                };
                pending.answer(answer);
            }
        }
        // PostgreSQL refused the statement (a code or key collision with another transaction,
        // a concurrent change): each create alone gets its own answer.
        Err(error @ sqlx::Error::Database(_)) => {
            tracing::warn!(
                creates = batch.len(),
                error = %error,
                "creates written together failed, writing each alone"
            );
            for pending in batch {
                pending.answer(Answer::Alone);
            }
        }
        // No connection, or it broke: each create alone would only wait as long again.
        Err(error) => {
            tracing::warn!(
                creates = batch.len(),
                error = %error,
                "creates could not be written"
            );
            for pending in batch {
                pending.answer(Answer::Done(Err(super::copy_error(&error))));
            }
        }
    }
}
