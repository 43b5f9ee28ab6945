//! The webhook delivery workers (DESIGN §13), one per GC replica, started by `startup`.
//!
//! A loop claims due deliveries (`db::webhooks::claim`, safe with any number of replicas) as
//! long as it has room for more requests in flight (`WEBHOOK_MAX_IN_FLIGHT`), and sends each in
//! its own task. Each webhook has its own bound (`WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT`): a task
//! waits for its endpoint's permit, and the loop claims nothing more for an endpoint whose
//! permits are all taken, so a slow or dead endpoint holds at most its own share of the
//! requests in flight and never delays another's. After each attempt the task gives its
//! endpoint's permit back at once (the endpoint may take its next request while this one's
//! outcome is written) and writes the outcome: delivered, retried after a backoff with
//! jitter, failed once the retry window has passed, or failed with the webhook disabled on a
//! 410. The replica's own permit is held until the outcome is written, so requests and
//! outcomes waiting to be written together stay within `WEBHOOK_MAX_IN_FLIGHT`.
//!
//! The loop claims again at once while something was due and there is room; otherwise it
//! waits for the next poll (`WEBHOOK_POLL_INTERVAL_MS`) or for a request in flight to end (its
//! endpoint, or the whole, may then have room for what is already due).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::clients::webhooks::{Delivery, Sender};
use crate::config::{WebhookKey, WebhookSettings};
use crate::db::webhook_outcomes::Outcomes;
use crate::db::webhooks::{self, Attempted, Claimed, Finished, Written};
use crate::domain::webhooks::{Backoff, Outcome, Secret, jitter_factor};

/// Everything the workers need.
#[derive(Clone)]
pub struct Deliveries {
    pub pool: PgPool,
    /// The outcomes' writer (through `pool`, in batches).
    pub outcomes: Outcomes,
    pub sender: Sender,
    pub key: WebhookKey,
    pub settings: WebhookSettings,
}

/// Requests in flight per webhook: a semaphore each, dropped when no request holds it.
#[derive(Default)]
struct Endpoints {
    permits: HashMap<Uuid, (Arc<Semaphore>, usize)>,
    /// A webhook whose every permit was taken or waited for has had one given back since the
    /// loop last looked: a claim may find something for it.
    freed: bool,
}

impl Endpoints {
    /// The webhooks whose every permit is taken or waited for.
    fn busy(&self, per_endpoint: usize) -> Vec<Uuid> {
        self.permits
            .iter()
            .filter(|(_, (_, users))| *users >= per_endpoint)
            .map(|(id, _)| *id)
            .collect()
    }

    fn enter(&mut self, id: Uuid, per_endpoint: usize) -> Arc<Semaphore> {
        let (semaphore, users) = self
            .permits
            .entry(id)
            .or_insert_with(|| (Arc::new(Semaphore::new(per_endpoint)), 0));
        *users += 1;
        semaphore.clone()
    }

    fn leave(&mut self, id: Uuid, per_endpoint: usize) {
        if let Some((_, users)) = self.permits.get_mut(&id) {
            if *users == per_endpoint {
                self.freed = true;
            }
            *users -= 1;
            if *users == 0 {
                self.permits.remove(&id);
            }
        }
    }
}

/// Runs the delivery loop until `stop`; requests in flight then finish on their own (their
/// outcome is written, or their lease runs out and another replica sends them again).
pub async fn run(deliveries: Deliveries, stop: CancellationToken) {
    let settings = deliveries.settings.clone();
    let per_endpoint = usize::try_from(settings.max_in_flight_per_endpoint).unwrap_or(1);
    let max_in_flight = usize::try_from(settings.max_in_flight).unwrap_or(1);
    let total = Arc::new(Semaphore::new(max_in_flight));
    let endpoints = Arc::new(Mutex::new(Endpoints::default()));
    let finished = Arc::new(Notify::new());
    let poll = Duration::from_millis(settings.poll_interval_ms);
    let mut last_gauge: Option<Instant> = None;
    let mut next_poll = tokio::time::Instant::now();
    let mut claim_now = true;
    loop {
        if stop.is_cancelled() {
            return;
        }
        if last_gauge.is_none_or(|at| at.elapsed() >= Duration::from_secs(5)) {
            last_gauge = Some(Instant::now());
            match webhooks::oldest_due_age(&deliveries.pool).await {
                Ok(age) => crate::metrics::webhook_oldest_due(age),
                Err(error) => tracing::warn!(%error, "cannot read the webhook outbox's age"),
            }
        }
        let room = total.available_permits();
        let claimed = if room == 0 || !claim_now {
            Vec::new()
        } else {
            let busy = lock(&endpoints).busy(per_endpoint);
            match webhooks::claim(
                &deliveries.pool,
                &busy,
                u32::try_from(per_endpoint).unwrap_or(1),
                u32::try_from(room).unwrap_or(u32::MAX),
                settings.lease(),
            )
            .await
            {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::warn!(%error, "cannot claim webhook deliveries");
                    Vec::new()
                }
            }
        };
        let any = !claimed.is_empty();
        for delivery in claimed {
            let Ok(permit) = total.clone().try_acquire_owned() else {
                // Only this loop takes permits, and it claimed no more than were free.
                break;
            };
            let endpoint = lock(&endpoints).enter(delivery.webhook_id, per_endpoint);
            let deliveries = deliveries.clone();
            let endpoints = endpoints.clone();
            let finished = finished.clone();
            tokio::spawn(async move {
                let webhook_id = delivery.webhook_id;
                let notify = finished.clone();
                // The endpoint has room again once the request ends (its outcome is written
                // meanwhile); the replica's place is freed once the outcome is written, so
                // requests and outcomes waiting together stay within WEBHOOK_MAX_IN_FLIGHT.
                let sent = move || {
                    lock(&endpoints).leave(webhook_id, per_endpoint);
                    notify.notify_one();
                };
                attempt(&deliveries, delivery, endpoint, sent).await;
                drop(permit);
                finished.notify_one();
            });
        }
        if any && total.available_permits() > 0 {
            // Something was due and there is room: look again at once, for more of it (of
            // other endpoints) and for what became due meanwhile.
            continue;
        }
        // Nothing more to claim now: wait for the next poll, or for a request or an outcome
        // to end. That one is worth a claim only if it gave room to what may already be due
        // and could not be claimed: an endpoint that had all its permits taken, or the
        // replica, that had none left. (Otherwise every ended request of a busy endpoint
        // would bring a claim that finds nothing.) The poll comes on time however often
        // requests end.
        let was_full = total.available_permits() == 0;
        let in_flight = total.available_permits() < max_in_flight;
        if claim_now {
            next_poll = tokio::time::Instant::now() + poll;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(next_poll) => claim_now = true,
            _ = finished.notified(), if in_flight => {
                claim_now = std::mem::take(&mut lock(&endpoints).freed) || was_full;
            }
        }
    }
}

fn lock(endpoints: &Mutex<Endpoints>) -> std::sync::MutexGuard<'_, Endpoints> {
    endpoints
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Sends one claimed delivery once its endpoint has room, gives the endpoint's place back
/// (`sent`), and writes the outcome.
async fn attempt(
    deliveries: &Deliveries,
    claimed: Claimed,
    endpoint: Arc<Semaphore>,
    sent: impl FnOnce(),
) {
    let Ok(place) = endpoint.acquire_owned().await else {
        sent();
        return;
    };
    let settings = &deliveries.settings;
    let started = Instant::now();
    let outcome = match secrets(&deliveries.key, &claimed) {
        Ok(secrets) => {
            let signing: Vec<&Secret> = secrets.iter().collect();
            let id = claimed.id.to_string();
            deliveries
                .sender
                .send(
                    &Delivery {
                        url: &claimed.url,
                        id: &id,
                        body: &claimed.payload,
                        secrets: &signing,
                    },
                    chrono::Utc::now().timestamp(),
                )
                .await
        }
        Err(error) => {
            tracing::error!(webhook_id = %claimed.webhook_id, %error,
                "cannot open a webhook's secret: is GC_WEBHOOK_KEY the key it was sealed with?");
            Outcome::Failed {
                status: None,
                error: "the webhook's secret could not be opened".to_owned(),
            }
        }
    };
    let elapsed = started.elapsed();
    drop(place);
    sent();
    let finished = match &outcome {
        Outcome::Delivered { status } => Finished::Delivered { status: *status },
        Outcome::Gone => Finished::Gone,
        Outcome::Failed { status, error } => Finished::Failed {
            status: *status,
            error: error.clone(),
            backoff: settings.backoff(),
        },
        Outcome::Refused { reason } => Finished::Failed {
            status: None,
            error: reason.clone(),
            backoff: settings.backoff(),
        },
    };
    let attempted = Attempted {
        id: claimed.id,
        attempt: claimed.attempts,
        finished,
    };
    let written = match deliveries.outcomes.write(attempted).await {
        Ok(written) => written,
        Err(error) => {
            // The lease runs out and the delivery is sent again: at least once.
            tracing::warn!(delivery_id = %claimed.id, %error,
                "cannot write a webhook delivery's outcome");
            return;
        }
    };
    if written == Written::Failed {
        tracing::warn!(delivery_id = %claimed.id, webhook_id = %claimed.webhook_id,
            event_type = %claimed.event_type, attempts = claimed.attempts,
            "webhook delivery failed for good");
    }
    let latency = (chrono::Utc::now() - claimed.created_at)
        .to_std()
        .unwrap_or_default();
    crate::metrics::webhook_delivery(&claimed.event_type, &outcome, elapsed, latency);
}

/// The current secret and, during a rotation, the previous one. A previous secret that cannot
/// be opened (sealed under a key since lost, which is why it was rotated) is left out: the
/// current one signs alone.
fn secrets(key: &WebhookKey, claimed: &Claimed) -> Result<Vec<Secret>, String> {
    let (current, previous) = claimed.secrets();
    let row = claimed.webhook_id.to_string();
    let open = |sealed| -> Result<Secret, String> {
        let bytes =
            common::envelope::open(key.bytes(), &row, &sealed).map_err(|e| e.to_string())?;
        Secret::from_bytes(&bytes).ok_or_else(|| "a stored secret has the wrong length".to_owned())
    };
    let mut secrets = vec![open(current)?];
    if let Some(previous) = previous {
        match open(previous) {
            Ok(secret) => secrets.push(secret),
            Err(error) => tracing::warn!(webhook_id = %claimed.webhook_id, %error,
                "the rotated-out secret cannot be opened: signing with the current one alone"),
        }
    }
    Ok(secrets)
}

/// Deletes deliveries that ended more than `days` ago, a batch at a time, every few minutes,
/// on every replica (`for update skip locked`: they share the work without waiting).
pub async fn retain(pool: PgPool, days: u32, stop: CancellationToken) {
    common::shell::every(Duration::from_secs(300), stop, || async {
        loop {
            match webhooks::delete_old(&pool, days, 1000).await {
                Ok(1000) => continue,
                Ok(0) => break,
                Ok(deleted) => {
                    tracing::info!(deleted, "old webhook deliveries deleted");
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot delete old webhook deliveries");
                    break;
                }
            }
        }
    })
    .await;
}

impl WebhookSettings {
    /// How long a claimed delivery stays away from other workers: its wait for the endpoint's
    /// permit (at most the requests ahead of it, each at most the timeout) and its own request.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.timeout_secs * 3 + 30)
    }

    /// The retry schedule of a failed attempt, with this attempt's jitter drawn.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            base: Duration::from_millis(self.retry_base_ms),
            cap: Duration::from_secs(self.retry_max_secs),
            window: Duration::from_secs(self.retry_window_secs),
            jitter: jitter_factor(fastrand::f64()),
        }
    }
}
