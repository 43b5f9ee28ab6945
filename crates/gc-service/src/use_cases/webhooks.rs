//! Managing an organization's webhooks (DESIGN §13): create, list, read, change, delete,
//! rotate the secret, send a test event, list and retry deliveries. Every call is scoped to
//! the caller's org ([`crate::auth::WebhookManager`]); another org's webhook is not found.
//!
//! Secrets are made here from the OS CSPRNG, sealed under `GC_WEBHOOK_KEY` with the webhook's
//! id as associated data, and shown only in the answers of create and rotate. Without
//! `GC_WEBHOOK_KEY` the management API answers 503: nothing could be signed.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use common::error::ApiError;
use ring::rand::SystemRandom;
use sqlx::PgPool;
use uuid::Uuid;

use crate::config::WebhookKey;
use crate::db::webhooks::{self, DeliveryRow, NewWebhook, Retry, WebhookChange, WebhookRow};
use crate::domain::webhooks::{
    EventType, MAX_DESCRIPTION_CHARS, MAX_WEBHOOKS_PER_ORG, ROTATION_OVERLAP, Secret, parse_url,
};
use crate::error::Error;

/// What the management API needs.
#[derive(Clone)]
pub struct Webhooks {
    pub pool: PgPool,
    /// `GC_WEBHOOK_KEY`; `None` turns the management API off (503).
    pub key: Option<WebhookKey>,
    /// `WEBHOOK_ALLOW_PRIVATE_TARGETS`.
    pub allow_private: bool,
    pub rng: SystemRandom,
}

/// Deliveries per page of the deliveries list.
pub const DELIVERIES_PAGE_SIZE: u32 = 50;
/// The last page of the deliveries list that can be asked for.
pub const MAX_DELIVERIES_PAGE: u32 = 1000;

/// A webhook's fields as a request gives them, checked.
#[derive(Clone, Debug)]
pub struct Checked {
    pub url: String,
    pub events: Vec<String>,
    pub description: String,
}

fn bad_request(message: impl Into<String>) -> Error {
    Error::Api(ApiError::bad_request(message.into()))
}

fn not_found() -> Error {
    Error::Api(ApiError::not_found())
}

/// Checks a URL for a webhook.
pub fn check_url(webhooks: &Webhooks, url: &str) -> Result<String, Error> {
    parse_url(url, webhooks.allow_private)
        .map(|_| url.to_owned())
        .map_err(|error| bad_request(error.to_string()))
}

/// Checks a list of event types: known names, at least one; duplicates collapse, and the list
/// is stored in a fixed order.
pub fn check_events(events: &[String]) -> Result<Vec<String>, Error> {
    if events.is_empty() {
        return Err(bad_request("events must name at least one event type"));
    }
    let mut known = BTreeSet::new();
    for name in events {
        let Some(event) = EventType::parse(name) else {
            return Err(bad_request(format!(
                "events: unknown event type (known: {})",
                EventType::ALL.map(EventType::as_str).join(", ")
            )));
        };
        known.insert(EventType::ALL.iter().position(|t| *t == event).unwrap_or(0));
    }
    Ok(known
        .into_iter()
        .map(|i| EventType::ALL[i].as_str().to_owned())
        .collect())
}

/// Checks a description: at most 500 characters, no control characters.
pub fn check_description(description: &str) -> Result<String, Error> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(bad_request("description must be at most 500 characters"));
    }
    if description.chars().any(char::is_control) {
        return Err(bad_request(
            "description must not contain control characters",
        ));
    }
    Ok(description.to_owned())
}

fn key(webhooks: &Webhooks) -> Result<&WebhookKey, Error> {
    webhooks.key.as_ref().ok_or_else(|| {
        Error::Api(ApiError::new(
            common::error::ErrorCode::ServiceUnavailable,
            "webhooks are not configured on this deployment (GC_WEBHOOK_KEY is not set)",
        ))
    })
}

fn seal(key: &WebhookKey, id: Uuid, secret: &Secret) -> Result<common::envelope::Sealed, Error> {
    common::envelope::seal(key.bytes(), &id.to_string(), secret.expose_bytes())
        .map_err(|_| Error::Internal("sealing a webhook secret failed"))
}

/// A webhook with the secret it was just given.
pub struct WithSecret {
    pub webhook: WebhookRow,
    pub secret: Secret,
}

/// Creates a webhook for `org_id`.
pub async fn create(
    webhooks: &Webhooks,
    org_id: Uuid,
    fields: Checked,
) -> Result<WithSecret, Error> {
    let key = key(webhooks)?;
    let id = Uuid::now_v7();
    let secret = Secret::generate(&webhooks.rng)?;
    let sealed = seal(key, id, &secret)?;
    if !webhooks::org_is_active(&webhooks.pool, org_id).await? {
        return Err(Error::Api(ApiError::new(
            common::error::ErrorCode::NotFound,
            "the organization does not exist or is not active",
        )));
    }
    let row = webhooks::create(
        &webhooks.pool,
        &NewWebhook {
            id,
            org_id,
            url: &fields.url,
            events: &fields.events,
            description: &fields.description,
            secret: &sealed,
        },
        MAX_WEBHOOKS_PER_ORG,
    )
    .await?
    .ok_or_else(|| {
        Error::Api(ApiError::conflict(format!(
            "the organization already has {MAX_WEBHOOKS_PER_ORG} webhooks, the most it may have"
        )))
    })?;
    Ok(WithSecret {
        webhook: row,
        secret,
    })
}

pub async fn list(webhooks: &Webhooks, org_id: Uuid) -> Result<Vec<WebhookRow>, Error> {
    Ok(webhooks::list(&webhooks.pool, org_id).await?)
}

pub async fn get(webhooks: &Webhooks, org_id: Uuid, id: Uuid) -> Result<WebhookRow, Error> {
    webhooks::get(&webhooks.pool, org_id, id)
        .await?
        .ok_or_else(not_found)
}

pub async fn update(
    webhooks: &Webhooks,
    org_id: Uuid,
    id: Uuid,
    change: WebhookChange,
) -> Result<WebhookRow, Error> {
    webhooks::update(&webhooks.pool, org_id, id, &change)
        .await?
        .ok_or_else(not_found)
}

pub async fn delete(webhooks: &Webhooks, org_id: Uuid, id: Uuid) -> Result<(), Error> {
    if webhooks::delete(&webhooks.pool, org_id, id).await? {
        Ok(())
    } else {
        Err(not_found())
    }
}

/// Gives webhook `id` a new secret; the old one keeps signing for 24 hours.
pub async fn rotate(webhooks: &Webhooks, org_id: Uuid, id: Uuid) -> Result<WithSecret, Error> {
    let key = key(webhooks)?;
    let secret = Secret::generate(&webhooks.rng)?;
    let sealed = seal(key, id, &secret)?;
    let row = webhooks::rotate(&webhooks.pool, org_id, id, &sealed, ROTATION_OVERLAP)
        .await?
        .ok_or_else(not_found)?;
    Ok(WithSecret {
        webhook: row,
        secret,
    })
}

pub async fn test(webhooks: &Webhooks, org_id: Uuid, id: Uuid) -> Result<DeliveryRow, Error> {
    key(webhooks)?;
    webhooks::queue_test(&webhooks.pool, org_id, id)
        .await?
        .ok_or_else(not_found)
}

/// A page of a webhook's deliveries.
pub async fn deliveries(
    webhooks: &Webhooks,
    org_id: Uuid,
    id: Uuid,
    status: Option<&str>,
    page: u32,
) -> Result<Vec<DeliveryRow>, Error> {
    if let Some(status) = status
        && !["pending", "delivered", "failed"].contains(&status)
    {
        return Err(bad_request(
            "status must be one of pending, delivered, failed",
        ));
    }
    if !(1..=MAX_DELIVERIES_PAGE).contains(&page) {
        return Err(bad_request("page must be between 1 and 1000"));
    }
    webhooks::deliveries(
        &webhooks.pool,
        org_id,
        id,
        status,
        page,
        DELIVERIES_PAGE_SIZE,
    )
    .await?
    .ok_or_else(not_found)
}

/// Sends a delivery again now, with a fresh retry window.
pub async fn retry(
    webhooks: &Webhooks,
    org_id: Uuid,
    id: Uuid,
    delivery_id: Uuid,
) -> Result<DeliveryRow, Error> {
    match webhooks::retry(&webhooks.pool, org_id, id, delivery_id).await? {
        Retry::Queued(row) => Ok(row),
        Retry::Delivered => Err(Error::Api(ApiError::conflict(
            "this delivery was delivered; it is not sent again",
        ))),
        Retry::NotFound => Err(not_found()),
    }
}

/// When a rotated-out secret stops signing, if one still does.
pub fn rotation_ends(row: &WebhookRow, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    row.previous_secret_expires_at.filter(|until| *until > now)
}
