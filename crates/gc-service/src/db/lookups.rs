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

use std::collections::HashMap;

use common::meeting_code::MeetingCode;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use super::meetings::{self, Located};

/// Distinct codes in one statement, at most.
pub const MAX_CODES: usize = 256;
/// Codes waiting for a statement, at most.
pub const QUEUE: usize = 4096;

struct Pending {
    code: MeetingCode,
    reply: oneshot::Sender<Result<Option<Located>, sqlx::Error>>,
}

/// The handle joins read meetings through; clones share the queue.
#[derive(Clone)]
pub struct Lookups {
    queue: mpsc::Sender<Pending>,
}

impl Lookups {
    /// Starts the reading task (on the current Tokio runtime); it ends when the last clone of
    /// the handle is dropped.
    pub fn new(pool: PgPool, heartbeat_timeout_secs: u32) -> Self {
        let (queue, pending) = mpsc::channel(QUEUE);
        tokio::spawn(read_loop(pool, heartbeat_timeout_secs, pending));
        Self { queue }
    }

    /// The meeting of `code`, whatever its status, with its assignment; `None` for no meeting.
    pub async fn find(&self, code: MeetingCode) -> Result<Option<Located>, sqlx::Error> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { code, reply })
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        answer.await.map_err(|_| sqlx::Error::PoolClosed)?
    }
}

async fn read_loop(pool: PgPool, timeout: u32, mut queue: mpsc::Receiver<Pending>) {
    // Weighs every lookup 1: a batch has at most MAX_CODES lookups, so at most as many codes.
    while let Some(batch) = super::next_batch(&mut queue, MAX_CODES, |_| 1).await {
        // Callers that gave up (their client left) are not read for.
        let batch: Vec<Pending> = batch.into_iter().filter(|p| !p.reply.is_closed()).collect();
        if batch.is_empty() {
            continue;
        }
        let mut codes: Vec<&str> = batch.iter().map(|p| p.code.as_str()).collect();
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
                    let row = by_code.get(pending.code.as_str()).cloned();
                    let _ = pending.reply.send(Ok(row));
                }
            }
            Err(error) => {
                for pending in batch {
                    let _ = pending.reply.send(Err(super::copy_error(&error)));
                }
            }
        }
    }
}
