//! The webhook delivery workers' outcomes, written together (group commit).
//!
//! Each attempt's outcome is one row to update; written one statement each, a busy replica
//! would spend a commit (and a wait for the WAL to reach the disk) per delivery, on its two
//! connections, and fall behind a busy org's changes. [`Outcomes::write`] queues the outcome
//! instead; one task writes the queue through [`webhooks::finish_batch`], each statement
//! holding what was queued while the previous one ran (at most [`MAX_ROWS`]). Nothing waits for
//! more: a lone outcome is written at once. A batch PostgreSQL refuses whole (a deadlock with
//! another replica whose lease ran out, a webhook deleted meanwhile) writes each of its
//! outcomes alone; one that found no connection fails them all with that error, and their
//! leases running out sends them again (at least once).
//!
//! The queue holds at most [`QUEUE`] outcomes (more than the requests a replica may have in
//! flight), so it never makes a worker wait in practice; every statement's size is recorded in
//! `gc_db_batch_items{queue="webhook_outcomes"}`.

use std::collections::HashMap;

use common::shell::Background;
use sqlx::PgPool;
use uuid::Uuid;

use super::webhooks::{self, Attempted, Written};
use crate::batch::{Batcher, Item, Shape};

/// Outcomes in one statement, at most.
pub const MAX_ROWS: usize = 256;
/// Outcomes waiting for a statement, at most.
pub const QUEUE: usize = 1024;

type Pending = Item<Attempted, Result<Written, sqlx::Error>>;

/// The handle the workers write outcomes through; clones share the queue.
#[derive(Clone)]
pub struct Outcomes {
    batcher: Batcher<Attempted, Result<Written, sqlx::Error>>,
}

impl Outcomes {
    /// Starts the writing task on `background`; it ends when the last handle is dropped, after
    /// writing what is queued.
    pub fn new(pool: PgPool, background: &Background) -> Self {
        let shape = Shape {
            name: "webhook outcomes",
            capacity: QUEUE,
            max_weight: MAX_ROWS,
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

    /// Writes one attempt's outcome: what was written, or `Superseded` when the row is no
    /// longer that attempt.
    pub async fn write(&self, attempted: Attempted) -> Result<Written, sqlx::Error> {
        self.batcher.submit(attempted).await?
    }
}

async fn write(pool: PgPool, batch: Vec<Pending>) {
    crate::metrics::db_batch(crate::metrics::queue::WEBHOOK_OUTCOMES, batch.len());
    let rows: Vec<Attempted> = batch.iter().map(|item| item.request.clone()).collect();
    match webhooks::finish_batch(&pool, &rows).await {
        Ok(written) => answer(batch, written),
        Err(error @ sqlx::Error::Database(_)) if batch.len() > 1 => {
            tracing::warn!(outcomes = batch.len(), %error,
                "webhook outcomes written together failed, writing each alone");
            for item in batch {
                let outcome = webhooks::finish_batch(&pool, std::slice::from_ref(&item.request))
                    .await
                    .map(|written| written.first().map_or(Written::Superseded, |(_, w)| *w));
                item.answer(outcome);
            }
        }
        Err(error) => {
            for item in batch {
                item.answer(Err(super::copy_error(&error)));
            }
        }
    }
}

/// Answers each outcome with what was written for its delivery (`Superseded` if nothing).
fn answer(batch: Vec<Pending>, written: Vec<(Uuid, Written)>) {
    let written: HashMap<Uuid, Written> = written.into_iter().collect();
    for item in batch {
        let outcome = written
            .get(&item.request.id)
            .copied()
            .unwrap_or(Written::Superseded);
        item.answer(Ok(outcome));
    }
}
