//! Webhooks and their outbox (`webhooks`, `webhook_deliveries`, DESIGN §13).
//!
//! Deliveries of recorded changes are written by [`crate::db::events::record_events!`]; this
//! file holds the management statements (every one scoped to the caller's org, so another
//! org's webhook is simply not found), and the delivery workers' claim and outcome.
//!
//! **Claiming.** A worker claims due rows with `for update skip locked`, at most a few per
//! webhook and never for a webhook it already has as many in flight for as it may send, and
//! leases them: `next_attempt_at` moves to the end of the lease and `attempts` counts the
//! attempt. The row lock lasts only the claiming statement; the lease keeps other workers
//! (other replicas) away while the request is in flight, and a worker that dies mid-attempt
//! leaves the row due again when its lease ends (at least once). An outcome is written only
//! while the row is still the claimed attempt (`attempts` unchanged), so a worker whose lease
//! ran out cannot overwrite a later attempt's.

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::db::Bounded;
use common::envelope::Sealed;
use sqlx::PgPool;
use uuid::Uuid;

/// A webhook as stored.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct WebhookRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub url: String,
    pub events: Vec<String>,
    pub description: String,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub secret_sealed: Vec<u8>,
    pub secret_nonce: Vec<u8>,
    pub previous_secret_sealed: Option<Vec<u8>>,
    pub previous_secret_nonce: Option<Vec<u8>>,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The columns of [`WebhookRow`], in its order.
macro_rules! webhook_columns {
    () => {
        "id, org_id, url, events, description, enabled, disabled_reason, secret_sealed,
         secret_nonce, previous_secret_sealed, previous_secret_nonce,
         previous_secret_expires_at, created_at, updated_at"
    };
}

/// A new webhook.
pub struct NewWebhook<'a> {
    pub id: Uuid,
    pub org_id: Uuid,
    pub url: &'a str,
    pub events: &'a [String],
    pub description: &'a str,
    pub secret: &'a Sealed,
}

/// Stores `webhook` unless its org already has `limit` webhooks (`None` then). The org's row is
/// locked first, so two creates at once cannot both pass the limit.
pub async fn create(
    pool: &PgPool,
    webhook: &NewWebhook<'_>,
    limit: i64,
) -> Result<Option<WebhookRow>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("select 1 from organizations where id = $1 for update")
        .bind(webhook.org_id)
        .execute(&mut *tx)
        .bounded()
        .await?;
    let row = sqlx::query_as::<_, WebhookRow>(concat!(
        "insert into webhooks (id, org_id, url, events, description, secret_sealed, secret_nonce)
         select $1, $2, $3, $4, $5, $6, $7
         where (select count(*) from webhooks where org_id = $2) < $8
         returning ",
        webhook_columns!()
    ))
    .bind(webhook.id)
    .bind(webhook.org_id)
    .bind(webhook.url)
    .bind(webhook.events)
    .bind(webhook.description)
    .bind(&webhook.secret.ciphertext)
    .bind(&webhook.secret.nonce)
    .bind(limit)
    .fetch_optional(&mut *tx)
    .bounded()
    .await?;
    tx.commit().await?;
    Ok(row)
}

/// Whether `org_id` names an organization that exists and is active.
pub async fn org_is_active(pool: &PgPool, org_id: Uuid) -> Result<bool, sqlx::Error> {
    let found: Option<(bool,)> =
        sqlx::query_as("select is_active from organizations where id = $1")
            .bind(org_id)
            .fetch_optional(pool)
            .bounded()
            .await?;
    Ok(found.is_some_and(|(active,)| active))
}

/// The webhooks of `org_id`, oldest first.
pub async fn list(pool: &PgPool, org_id: Uuid) -> Result<Vec<WebhookRow>, sqlx::Error> {
    sqlx::query_as::<_, WebhookRow>(concat!(
        "select ",
        webhook_columns!(),
        " from webhooks where org_id = $1 order by created_at, id"
    ))
    .bind(org_id)
    .fetch_all(pool)
    .bounded()
    .await
}

/// Webhook `id` of `org_id`.
pub async fn get(pool: &PgPool, org_id: Uuid, id: Uuid) -> Result<Option<WebhookRow>, sqlx::Error> {
    sqlx::query_as::<_, WebhookRow>(concat!(
        "select ",
        webhook_columns!(),
        " from webhooks where org_id = $1 and id = $2"
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(pool)
    .bounded()
    .await
}

/// A change of a webhook: each `Some` field replaces the stored one.
#[derive(Clone, Debug, Default)]
pub struct WebhookChange {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

/// Applies `change` to webhook `id` of `org_id`. Enabling clears why GC had disabled it.
pub async fn update(
    pool: &PgPool,
    org_id: Uuid,
    id: Uuid,
    change: &WebhookChange,
) -> Result<Option<WebhookRow>, sqlx::Error> {
    sqlx::query_as::<_, WebhookRow>(concat!(
        "update webhooks
         set url = coalesce($3, url),
             events = coalesce($4, events),
             description = coalesce($5, description),
             enabled = coalesce($6, enabled),
             disabled_reason = case when coalesce($6, enabled) then null else disabled_reason end,
             updated_at = now()
         where org_id = $1 and id = $2
         returning ",
        webhook_columns!()
    ))
    .bind(org_id)
    .bind(id)
    .bind(change.url.as_deref())
    .bind(change.events.as_deref())
    .bind(change.description.as_deref())
    .bind(change.enabled)
    .fetch_optional(pool)
    .bounded()
    .await
}

/// Deletes webhook `id` of `org_id` with its deliveries; whether it existed.
pub async fn delete(pool: &PgPool, org_id: Uuid, id: Uuid) -> Result<bool, sqlx::Error> {
    let deleted = sqlx::query("delete from webhooks where org_id = $1 and id = $2")
        .bind(org_id)
        .bind(id)
        .execute(pool)
        .bounded()
        .await?;
    Ok(deleted.rows_affected() == 1)
}

/// Makes `secret` the current secret of webhook `id` of `org_id`; the current one keeps signing
/// for `overlap`.
pub async fn rotate(
    pool: &PgPool,
    org_id: Uuid,
    id: Uuid,
    secret: &Sealed,
    overlap: Duration,
) -> Result<Option<WebhookRow>, sqlx::Error> {
    sqlx::query_as::<_, WebhookRow>(concat!(
        "update webhooks
         set previous_secret_sealed = secret_sealed,
             previous_secret_nonce = secret_nonce,
             previous_secret_expires_at = now() + make_interval(secs => $5),
             secret_sealed = $3,
             secret_nonce = $4,
             updated_at = now()
         where org_id = $1 and id = $2
         returning ",
        webhook_columns!()
    ))
    .bind(org_id)
    .bind(id)
    .bind(&secret.ciphertext)
    .bind(&secret.nonce)
    .bind(overlap.as_secs_f64())
    .fetch_optional(pool)
    .bounded()
    .await
}

/// Webhooks with pending deliveries one claim looks at, at most.
pub const CLAIM_SCAN: i32 = 1024;

/// A delivery as the API shows it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub event_type: String,
    pub status: String,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// The columns of [`DeliveryRow`] (of `webhook_deliveries d`), in its order.
macro_rules! delivery_columns {
    () => {
        "d.id, d.webhook_id, d.event_type, d.status, d.attempts, d.created_at,
         d.next_attempt_at, d.last_attempt_at, d.last_status, d.last_error, d.delivered_at"
    };
}

/// Queues a `webhook.test` event for webhook `id` of `org_id` (enabled or not: a test of a
/// disabled webhook waits until it is enabled).
pub async fn queue_test(
    pool: &PgPool,
    org_id: Uuid,
    id: Uuid,
) -> Result<Option<DeliveryRow>, sqlx::Error> {
    sqlx::query_as::<_, DeliveryRow>(concat!(
        "with d as (
            insert into webhook_deliveries (webhook_id, event_type, payload)
            select w.id, 'webhook.test',
                   jsonb_build_object(
                       'type', 'webhook.test',
                       'timestamp', to_char(now() at time zone 'UTC',
                                            'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
                       'data', jsonb_build_object('org_id', w.org_id, 'webhook_id', w.id))::text
            from webhooks w
            where w.org_id = $1 and w.id = $2
            returning *)
         select ",
        delivery_columns!(),
        " from d"
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(pool)
    .bounded()
    .await
}

/// A page of webhook `id`'s deliveries, newest first, with `status` if given; `None` when the
/// webhook is not `org_id`'s.
pub async fn deliveries(
    pool: &PgPool,
    org_id: Uuid,
    id: Uuid,
    status: Option<&str>,
    page: u32,
    page_size: u32,
) -> Result<Option<Vec<DeliveryRow>>, sqlx::Error> {
    if get(pool, org_id, id).await?.is_none() {
        return Ok(None);
    }
    let rows = sqlx::query_as::<_, DeliveryRow>(concat!(
        "select ",
        delivery_columns!(),
        "
         from webhook_deliveries d
         where d.webhook_id = $1 and ($2::text is null or d.status = $2)
         order by d.created_at desc, d.id
         limit $3 offset $4"
    ))
    .bind(id)
    .bind(status)
    .bind(i64::from(page_size))
    .bind(i64::from(page.saturating_sub(1)) * i64::from(page_size))
    .fetch_all(pool)
    .bounded()
    .await?;
    Ok(Some(rows))
}

/// What asking for a delivery's retry found.
#[derive(Debug)]
pub enum Retry {
    /// It is due now, with a fresh retry window.
    Queued(DeliveryRow),
    /// It was delivered already.
    Delivered,
    NotFound,
}

/// Makes delivery `delivery_id` of webhook `id` of `org_id` due now with a fresh retry window,
/// unless it was delivered.
pub async fn retry(
    pool: &PgPool,
    org_id: Uuid,
    id: Uuid,
    delivery_id: Uuid,
) -> Result<Retry, sqlx::Error> {
    let found: Option<(String,)> = sqlx::query_as(
        "select d.status
         from webhook_deliveries d
                  join webhooks w on w.id = d.webhook_id
         where w.org_id = $1 and w.id = $2 and d.id = $3",
    )
    .bind(org_id)
    .bind(id)
    .bind(delivery_id)
    .fetch_optional(pool)
    .bounded()
    .await?;
    match found {
        None => return Ok(Retry::NotFound),
        Some((status,)) if status == "delivered" => return Ok(Retry::Delivered),
        Some(_) => {}
    }
    let queued = sqlx::query_as::<_, DeliveryRow>(concat!(
        "update webhook_deliveries d
         set status = 'pending', next_attempt_at = now(), window_started_at = now()
         where d.id = $1 and d.status <> 'delivered'
         returning ",
        delivery_columns!()
    ))
    .bind(delivery_id)
    .fetch_optional(pool)
    .bounded()
    .await?;
    // Delivered (or deleted with its webhook) between the two statements.
    Ok(queued.map_or(Retry::Delivered, Retry::Queued))
}

/// A claimed attempt, with what sending it needs.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Claimed {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub event_type: String,
    pub payload: String,
    /// This attempt's number (1 for the first); the outcome is written only for it.
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub url: String,
    pub secret_sealed: Vec<u8>,
    pub secret_nonce: Vec<u8>,
    pub previous_secret_sealed: Option<Vec<u8>>,
    pub previous_secret_nonce: Option<Vec<u8>>,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
}

impl Claimed {
    pub fn secrets(&self) -> (Sealed, Option<Sealed>) {
        let current = Sealed {
            ciphertext: self.secret_sealed.clone(),
            nonce: self.secret_nonce.clone(),
        };
        let previous = match (
            &self.previous_secret_sealed,
            &self.previous_secret_nonce,
            self.previous_secret_expires_at,
        ) {
            (Some(ciphertext), Some(nonce), Some(until)) if until > self.now => Some(Sealed {
                ciphertext: ciphertext.clone(),
                nonce: nonce.clone(),
            }),
            _ => None,
        };
        (current, previous)
    }
}

/// Claims at most `limit` due deliveries of enabled webhooks, at most `per_webhook` of any one
/// and none of the webhooks in `busy`, oldest due first within a webhook, and leases them for
/// `lease`.
///
/// The webhooks with pending deliveries are found by skipping along
/// `webhook_deliveries_pending_idx` from one webhook to the next (one index probe each, however
/// many deliveries each has waiting), starting at a random point and wrapping around, at most
/// [`CLAIM_SCAN`] webhooks a claim: a claim costs what the number of webhooks with pending
/// deliveries does, not the backlog, and no webhook is always last.
pub async fn claim(
    pool: &PgPool,
    busy: &[Uuid],
    per_webhook: u32,
    limit: u32,
    lease: Duration,
) -> Result<Vec<Claimed>, sqlx::Error> {
    sqlx::query_as::<_, Claimed>(CLAIM_SQL)
        .bind(busy)
        .bind(i64::from(per_webhook))
        .bind(i64::from(limit))
        .bind(lease.as_secs_f64())
        .bind(Uuid::new_v4())
        .bind(CLAIM_SCAN)
        .fetch_all(pool)
        .bounded()
        .await
}

/// The claim ([`claim`]): `$1` the busy webhooks, `$2` at most this many of one webhook, `$3`
/// at most this many in all, `$4` the lease in seconds, `$5` the scan's random start, `$6`
/// [`CLAIM_SCAN`]. Run on [`crate::db::webhook_pool`], whose sessions keep its generic plan to
/// index lookups: the lease's update names only the claimed rows.
pub const CLAIM_SQL: &str = "with recursive pending(webhook_id, wrapped, n) as (
            select $5::uuid, false, 0
            union all
            select s.id, s.wrapped, p.n + 1
            from pending p
                     cross join lateral (
                select (select d.webhook_id
                        from webhook_deliveries d
                        where d.status = 'pending' and d.webhook_id > p.webhook_id
                        order by d.webhook_id
                        limit 1) as after) a
                     cross join lateral (
                select case
                           when a.after is not null then a.after
                           when not p.wrapped then (select d.webhook_id
                                                    from webhook_deliveries d
                                                    where d.status = 'pending'
                                                    order by d.webhook_id
                                                    limit 1)
                           end as id,
                       p.wrapped or a.after is null as wrapped) s
            where p.n < $6 and s.id is not null and not (s.wrapped and s.id >= $5)),
         hooks as (
            select w.id
            from pending p
                     join webhooks w on w.id = p.webhook_id and w.enabled
            where p.n > 0 and w.id <> all ($1)),
         picked as (
            select p.id
            from hooks h
                     cross join lateral (
                select d.id
                from webhook_deliveries d
                where d.webhook_id = h.id and d.status = 'pending' and d.next_attempt_at <= now()
                order by d.next_attempt_at
                limit $2
                for update skip locked) p
            limit $3),
         leased as (
            update webhook_deliveries d
            set attempts = d.attempts + 1,
                last_attempt_at = now(),
                next_attempt_at = now() + make_interval(secs => $4)
            where d.id = any (array(select p.id from picked p))
            returning d.id, d.webhook_id, d.event_type, d.payload, d.attempts, d.created_at,
                      d.next_attempt_at)
         select l.id, l.webhook_id, l.event_type, l.payload, l.attempts, l.created_at, w.url,
                w.secret_sealed, w.secret_nonce, w.previous_secret_sealed,
                w.previous_secret_nonce, w.previous_secret_expires_at, now() as now
         from leased l
                  join webhooks w on w.id = l.webhook_id
         order by l.next_attempt_at";

/// How an attempt ended, as stored.
#[derive(Clone, Debug)]
pub enum Finished {
    Delivered {
        status: u16,
    },
    /// The endpoint answered 410: the delivery fails and the webhook is disabled.
    Gone,
    /// Try again after the backoff, unless the retry window has passed since the delivery's
    /// window started: then it fails.
    Failed {
        status: Option<u16>,
        error: String,
        backoff: crate::domain::webhooks::Backoff,
    },
}

/// What writing an outcome did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    Delivered,
    Retrying,
    Failed,
    /// The attempt was not the row's latest any more (its lease ran out and another worker
    /// claimed it, or its webhook went): nothing was written.
    Superseded,
}

/// One attempt's outcome, to be written.
#[derive(Clone, Debug)]
pub struct Attempted {
    pub id: Uuid,
    /// The attempt's number (the row's `attempts` when it was claimed).
    pub attempt: i32,
    pub finished: Finished,
}

/// Writes the outcomes of `attempts` (of distinct deliveries) in one statement: each is
/// written only while its row is still that attempt, pending. A 410 disables its webhook in
/// the same statement, so a failed delivery never sits beside a webhook still enabled. Returns
/// what was written, by delivery; a delivery left out was superseded.
pub async fn finish_batch(
    pool: &PgPool,
    attempts: &[Attempted],
) -> Result<Vec<(Uuid, Written)>, sqlx::Error> {
    let none = crate::domain::webhooks::Backoff {
        base: Duration::ZERO,
        cap: Duration::ZERO,
        window: Duration::ZERO,
        jitter: 1.0,
    };
    let n = attempts.len();
    let (mut ids, mut numbers, mut statuses, mut errors, mut kinds) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut bases, mut caps, mut windows, mut jitters) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for attempted in attempts {
        let (status, error, backoff, kind) = match &attempted.finished {
            Finished::Delivered { status } => (Some(i32::from(*status)), None, none, "delivered"),
            Finished::Gone => (
                Some(410),
                Some("the endpoint answered 410 Gone: the webhook was disabled"),
                none,
                "gone",
            ),
            Finished::Failed {
                status,
                error,
                backoff,
            } => (
                status.map(i32::from),
                Some(error.as_str()),
                *backoff,
                "failed",
            ),
        };
        ids.push(attempted.id);
        numbers.push(attempted.attempt);
        statuses.push(status);
        errors.push(error);
        kinds.push(kind);
        bases.push(backoff.base.as_secs_f64());
        caps.push(backoff.cap.as_secs_f64());
        windows.push(backoff.window.as_secs_f64());
        jitters.push(backoff.jitter);
    }
    // The wait is `domain::webhooks::retry_delay` on PostgreSQL's clock: as long as the
    // delivery has been failing, within base and cap, times the jitter. The update checks
    // the attempt again on the row it locks (a lease that ran out meanwhile loses).
    let written: Vec<(Uuid, String)> = sqlx::query_as(
        "with input as (
            select *
            from unnest($1::uuid[], $2::int4[], $3::int4[], $4::text[], $5::text[],
                        $6::float8[], $7::float8[], $8::float8[], $9::float8[])
                     as i(id, attempt, status, error, kind, base, cap, win, jitter)),
         d as (
            select i.*,
                   now() + i.jitter * least(make_interval(secs => i.cap),
                                            greatest(make_interval(secs => i.base),
                                                     now() - w.window_started_at)) as retry_at,
                   now() > w.window_started_at + make_interval(secs => i.win) as window_over
            from input i
                     join webhook_deliveries w on w.id = i.id
            where w.id = any ($1::uuid[]) and w.attempts = i.attempt and w.status = 'pending'),
         updated as (
            update webhook_deliveries w
            set status = case
                    when d.kind = 'delivered' then 'delivered'
                    when d.kind = 'gone' or d.window_over then 'failed'
                    else 'pending' end,
                next_attempt_at = case when d.kind = 'failed' then d.retry_at
                                       else w.next_attempt_at end,
                delivered_at = case when d.kind = 'delivered' then now() end,
                last_status = d.status,
                last_error = left(d.error, 500)
            from d
            where w.id = any ($1::uuid[]) and w.id = d.id and w.attempts = d.attempt
              and w.status = 'pending'
            returning w.id, w.status, w.webhook_id, d.kind),
         disabled as (
            update webhooks
            set enabled = false, disabled_reason = 'gone', updated_at = now()
            where id in (select webhook_id from updated where kind = 'gone')
            returning id)
         select id, status from updated",
    )
    .bind(&ids)
    .bind(&numbers)
    .bind(&statuses)
    .bind(&errors)
    .bind(&kinds)
    .bind(&bases)
    .bind(&caps)
    .bind(&windows)
    .bind(&jitters)
    .fetch_all(pool)
    .bounded()
    .await?;
    Ok(written
        .into_iter()
        .map(|(id, status)| {
            let written = match status.as_str() {
                "delivered" => Written::Delivered,
                "failed" => Written::Failed,
                _ => Written::Retrying,
            };
            (id, written)
        })
        .collect())
}

/// Seconds since the oldest due delivery of an enabled webhook became due (0 for none).
pub async fn oldest_due_age(pool: &PgPool) -> Result<f64, sqlx::Error> {
    let (age,): (f64,) = sqlx::query_as(
        "select coalesce(extract(epoch from now() - min(d.next_attempt_at))::float8, 0)
         from webhooks w
                  cross join lateral (
             select d.next_attempt_at
             from webhook_deliveries d
             where d.webhook_id = w.id and d.status = 'pending'
             order by d.next_attempt_at
             limit 1) d
         where w.enabled and d.next_attempt_at <= now()",
    )
    .fetch_one(pool)
    .bounded()
    .await?;
    Ok(age.max(0.0))
}

/// Deletes at most `batch` deliveries that were delivered, or failed, more than `days` ago.
pub async fn delete_old(pool: &PgPool, days: u32, batch: i64) -> Result<u64, sqlx::Error> {
    let deleted = sqlx::query(
        "delete from webhook_deliveries
         where id in (select id
                      from webhook_deliveries
                      where (status = 'delivered'
                                 and delivered_at < now() - make_interval(days => $1))
                         or (status = 'failed'
                                 and last_attempt_at < now() - make_interval(days => $1))
                      limit $2
                      for update skip locked)",
    )
    .bind(i32::try_from(days).unwrap_or(i32::MAX))
    .bind(batch)
    .execute(pool)
    .bounded()
    .await?;
    Ok(deleted.rows_affected())
}
