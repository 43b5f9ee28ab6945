//! Meetings read by code for joins, many to a statement.
//!
//! A join reads its meeting and the meeting's assignment before it calls the room
//! ([`super::meetings::find_by_codes_with_assignment`]). Read one statement each, a busy GC
//! spends more of PostgreSQL's time on each statement's round trip and start than on the index
//! lookup itself. [`Lookups::find`] queues the code instead; one task reads the queue, one
//! statement at a time, each for the codes queued while the previous one ran (at most
//! [`MAX_CODES`] distinct codes). Nothing waits for more: an idle GC reads each meeting at once,
//! and the joins of one crowded room share a single row.
//!
//! Every statement starts after the codes it reads were queued, so a join still sees what was
//! committed before it asked (a meeting its host has just ended is ended). A statement that
//! fails gives its error to every caller in it. The queue is bounded ([`QUEUE`]); a full queue
//! makes callers wait, never grows.

use common::shell::Background;
use std::collections::HashMap;

use common::meeting_code::MeetingCode;
use sqlx::PgPool;

use super::meetings::{self, Located};
use crate::batch::{Batcher, Item, Shape};

/// Distinct codes in one statement, at most.
pub const MAX_CODES: usize = 256;
/// Codes waiting for a statement, at most.
pub const QUEUE: usize = 4096;

/// The handle joins read meetings through; clones share the queue.
#[derive(Clone)]
pub struct Lookups {
    batcher: Batcher<MeetingCode, Result<Option<Located>, sqlx::Error>>,
}

impl Lookups {
    /// Starts the reading task (on the current Tokio runtime); it ends when the last clone of
    /// the handle is dropped.
    pub fn new(pool: PgPool, heartbeat_timeout_secs: u32, background: &Background) -> Self {
        let shape = Shape {
            name: "meeting lookups",
            capacity: QUEUE,
            max_weight: MAX_CODES,
            linger: None,
        };
        // Weighs every lookup 1: a batch has at most MAX_CODES lookups, so at most as many codes.
        let batcher = Batcher::start(
            shape,
            |_| 1,
            move |batch| read(pool.clone(), heartbeat_timeout_secs, batch),
            background,
        );
        Self { batcher }
    }

    /// The meeting of `code`, whatever its status, with its assignment; `None` for no meeting.
    pub async fn find(&self, code: MeetingCode) -> Result<Option<Located>, sqlx::Error> {
        self.batcher.submit(code).await?
    }
}

type Lookup = Item<MeetingCode, Result<Option<Located>, sqlx::Error>>;

async fn read(pool: PgPool, timeout: u32, batch: Vec<Lookup>) {
    // Callers that gave up (their client left) are not read for.
    let batch: Vec<Lookup> = batch.into_iter().filter(|p| !p.is_abandoned()).collect();
    if batch.is_empty() {
        return;
    }
    let mut codes: Vec<&str> = batch.iter().map(|p| p.request.as_str()).collect();
    codes.sort_unstable();
    codes.dedup();
    crate::metrics::db_batch(crate::metrics::queue::LOOKUPS, codes.len());
    match meetings::find_by_codes_with_assignment(&pool, &codes, timeout).await {
        Ok(found) => {
            let by_code: HashMap<String, Located> = found
                .into_iter()
                .map(|(meeting, assignment)| {
                    (meeting.code.as_str().to_owned(), (meeting, assignment))
                })
                .collect();
            for pending in batch {
                let row = by_code.get(pending.request.as_str()).cloned();
                pending.answer(Ok(row));
            }
        }
        Err(error) => {
            for pending in batch {
                pending.answer(Err(super::copy_error(&error)));
            }
        }
    }
}
