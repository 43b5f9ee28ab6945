//! `/api/v1/webhooks`: an organization's webhooks (DESIGN §13). Thin handlers over
//! `use_cases::webhooks`; the caller is a [`WebhookManager`] (an `org_admin` of the org, or an
//! `admin` service token naming it with `?org_id=`).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use common::error::{ApiError, ErrorEnvelope};
use common::http::StrictJson;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::WebhookManager;
use crate::db::webhooks::{DeliveryRow, WebhookChange, WebhookRow};
use crate::domain::webhooks::EventType;
use crate::error::Error;
use crate::use_cases::webhooks::{
    self as use_case, Checked, DELIVERIES_PAGE_SIZE, Webhooks, check_description, check_events,
    check_url,
};

/// `POST /api/v1/webhooks`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// Where deliveries are POSTed: `https`, at most 2048 characters, no credentials or
    /// fragment, never a loopback, private, link-local, multicast or metadata address.
    pub url: String,
    /// The event types to deliver, at least one.
    pub events: Vec<EventType>,
    /// Free text for the org, at most 500 characters.
    #[serde(default)]
    pub description: Option<String>,
}

/// `PATCH /api/v1/webhooks/{webhook_id}`: the fields to change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhookRequest {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub events: Option<Vec<EventType>>,
    #[serde(default)]
    pub description: Option<String>,
    /// `true` enables it again (also after GC disabled it on a 410); `false` stops deliveries,
    /// which wait until it is enabled.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// A webhook. The secret is never shown here, only when it is made.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookResponse {
    pub webhook_id: Uuid,
    pub url: String,
    pub events: Vec<String>,
    pub description: String,
    pub enabled: bool,
    /// `gone` when GC disabled it because the endpoint answered 410; null otherwise.
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// While a rotated-out secret still signs (beside the current one): until when.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
}

impl WebhookResponse {
    fn of(row: WebhookRow) -> WebhookResponse {
        let previous = use_case::rotation_ends(&row, Utc::now());
        WebhookResponse {
            webhook_id: row.id,
            url: row.url,
            events: row.events,
            description: row.description,
            enabled: row.enabled,
            disabled_reason: row.disabled_reason,
            created_at: row.created_at,
            updated_at: row.updated_at,
            previous_secret_expires_at: previous,
        }
    }
}

/// A webhook with its new secret: the answer of create and of rotate-secret, the only times
/// the secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookWithSecretResponse {
    #[serde(flatten)]
    pub webhook: WebhookResponse,
    /// `whsec_` + base64 of 32 random bytes, as the Standard Webhooks libraries take it.
    pub secret: String,
}

/// `GET /api/v1/webhooks`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookListResponse {
    pub webhooks: Vec<WebhookResponse>,
}

/// One delivery of an event to a webhook.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryResponse {
    /// Also the `webhook-id` header of every attempt.
    pub delivery_id: Uuid,
    pub webhook_id: Uuid,
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    /// When it is tried next, while pending.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The last answer's HTTP status; null when there was none.
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
}

impl DeliveryResponse {
    fn of(row: DeliveryRow) -> DeliveryResponse {
        DeliveryResponse {
            delivery_id: row.id,
            webhook_id: row.webhook_id,
            event_type: row.event_type,
            next_attempt_at: (row.status == "pending").then_some(row.next_attempt_at),
            status: row.status,
            attempts: row.attempts,
            created_at: row.created_at,
            last_attempt_at: row.last_attempt_at,
            last_status: row.last_status,
            last_error: row.last_error,
            delivered_at: row.delivered_at,
        }
    }
}

/// `GET /api/v1/webhooks/{webhook_id}/deliveries`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryListResponse {
    pub deliveries: Vec<DeliveryResponse>,
    pub page: u32,
    pub page_size: u32,
}

/// The org an `admin` service token acts for; a user's org is their own.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrgQuery {
    /// The organization, for an `admin` service token (required then); a user may give only
    /// their own.
    pub org_id: Option<Uuid>,
}

/// Query of the deliveries list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// `pending`, `delivered` or `failed`.
    pub status: Option<String>,
    /// From 1; 50 deliveries a page, newest first.
    #[param(minimum = 1, maximum = 1000, default = 1)]
    pub page: Option<u32>,
    /// See [`OrgQuery`].
    pub org_id: Option<Uuid>,
}

fn path_id(raw: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(raw).map_err(|_| Error::Api(ApiError::not_found()))
}

fn invalid_query(rejection: axum::extract::rejection::QueryRejection) -> Error {
    Error::Api(ApiError::bad_request(format!(
        "invalid query: {}",
        rejection.body_text()
    )))
}

const MANAGER: &str = "An `org_admin` of the organization, or an `admin` service token naming it \
    with `?org_id=`";

#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks",
    security(("userToken" = []), ("serviceToken" = [])), params(OrgQuery),
    request_body(content = CreateWebhookRequest,
        example = json!({"url": "https://hooks.example.com/convene",
                         "events": ["meeting.created", "meeting.ended"],
                         "description": "CRM sync"})),
    responses(
        (status = 201, description = "Created; `secret` is shown only here", body = WebhookWithSecretResponse),
        (status = 400, description = "A field is invalid (the URL, an unknown event type, ...)", body = ErrorEnvelope),
        (status = 403, description = MANAGER, body = ErrorEnvelope),
        (status = 409, description = "The organization has 20 webhooks already", body = ErrorEnvelope),
        (status = 503, description = "Webhooks are not configured on this deployment", body = ErrorEnvelope),
    ))]
#[tracing::instrument(name = "gc.webhooks.create", skip_all)]
pub async fn create(
    State(webhooks): State<Webhooks>,
    manager: WebhookManager,
    body: Result<StrictJson<CreateWebhookRequest>, ApiError>,
) -> Result<(StatusCode, Json<WebhookWithSecretResponse>), Error> {
    let StrictJson(body) = body?;
    let events: Vec<String> = body.events.iter().map(|e| e.as_str().to_owned()).collect();
    let fields = Checked {
        url: check_url(&webhooks, &body.url)?,
        events: check_events(&events)?,
        description: check_description(body.description.as_deref().unwrap_or(""))?,
    };
    let made = use_case::create(&webhooks, manager.org_id, fields).await?;
    Ok((
        StatusCode::CREATED,
        Json(WebhookWithSecretResponse {
            secret: made.secret.reveal(),
            webhook: WebhookResponse::of(made.webhook),
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks",
    security(("userToken" = []), ("serviceToken" = [])), params(OrgQuery),
    responses(
        (status = 200, description = "The organization's webhooks, oldest first", body = WebhookListResponse),
        (status = 403, description = MANAGER, body = ErrorEnvelope),
    ))]
#[tracing::instrument(name = "gc.webhooks.list", skip_all)]
pub async fn list(
    State(webhooks): State<Webhooks>,
    manager: WebhookManager,
) -> Result<Json<WebhookListResponse>, Error> {
    let rows = use_case::list(&webhooks, manager.org_id).await?;
    Ok(Json(WebhookListResponse {
        webhooks: rows.into_iter().map(WebhookResponse::of).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/webhooks/{webhook_id}", tag = "webhooks",
    security(("userToken" = []), ("serviceToken" = [])),
    params(("webhook_id" = Uuid, Path), OrgQuery),
    responses(
        (status = 200, description = "The webhook", body = WebhookResponse),
        (status = 403, description = MANAGER, body = ErrorEnvelope),
        (status = 404, description = "No such webhook in the organization", body = ErrorEnvelope),
    ))]
#[tracing::instrument(name = "gc.webhooks.get", skip_all)]
pub async fn get(
    State(webhooks): State<Webhooks>,
    manager: WebhookManager,
    Path(id): Path<String>,
) -> Result<Json<WebhookResponse>, Error> {
    let row = use_case::get(&webhooks, manager.org_id, path_id(&id)?).await?;
    Ok(Json(WebhookResponse::of(row)))
}

#[utoipa::path(patch, path = "/api/v1/webhooks/{webhook_id}", tag = "webhooks",
    security(("userToken" = []), ("serviceToken" = [])),
    params(("webhook_id" = Uuid, Path), OrgQuery),
    request_body(content = UpdateWebhookRequest, example = json!({"enabled": true})),
    responses(
        (status = 200, description = "The webhook after the change", body = WebhookResponse),
        (status = 400, description = "A field is invalid", body = ErrorEnvelope),
        (status = 403, description = MANAGER, body = ErrorEnvelope),
        (status = 404, description = "No such webhook in the organization", body = ErrorEnvelope),
    ))]
#[tracing::instrument(name = "gc.webhooks.update", skip_all)]
pub async fn update(
    State(webhooks): State<Webhooks>,
    manager: WebhookManager,
    Path(id): Path<String>,
    body: Result<StrictJson<UpdateWebhookRequest>, ApiError>,
) -> Result<Json<WebhookResponse>, Error> {
    let id = path_id(&id)?;
    let StrictJson(body) = body?;
    let change = WebhookChange {
        url: body
            .url
            .as_deref()
            .map(|u| check_url(&webhooks, u))
            .transpose()?,
        events: body
            .events
            .map(|events| {
                check_events(
                    &events
                        .iter()
                        .map(|e| e.as_str().to_owned())
                        .collect::<Vec<_>>(),
                )
            })
            .transpose()?,
        description: body
            .description
            .as_deref()
            .map(check_description)
            .transpose()?,
        enabled: body.enabled,
    };
    let row = use_case::update(&webhooks, manager.org_id, id, change).await?;
    Ok(Json(WebhookResponse::of(row)))
}

#[utoipa::path(delete, path = "/api/v1/webhooks/{webhook_id}", tag = "webhooks",
    security(("userToken" = []), ("serviceToken" = [])),
    params(("webhook_id" = Uuid, Path), OrgQuery),
    responses(
        (status = 204, description = "Deleted, with its deliveries (pending ones are not sent)"),
        (status = 403, description = MANAGER, body = ErrorEnvelope),
        (status = 404, description = "No such webhook in the organization", body = ErrorEnvelope),
    ))]
#[tracing::instrument(name = "gc.webhooks.delete", skip_all)]
pub async fn delete(
    State(webhooks): State<Webhooks>,
    manager: WebhookManager,
    Path(id): Path<String>,
) -> Result<StatusCode, Error> {
    use_case::delete(&webhooks, manager.org_id, path_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/webhooks/{webhook_id}/rotate-secret", tag = "webhooks",
    security(("userToken" = []), ("serviceToken" = [])),
    params(("webhook_id" = Uuid, Path), OrgQuery),
    responses(
        (status = 200, description = "The new secret; the previous one signs beside it for 24 h", body = WebhookWithSecretResponse),
        (status = 403, description = MANAGER, body = ErrorEnvelope),
        (status = 404, description = "No such webhook in the organization", body = ErrorEnvelope),
    ))]
#[tracing::instrument(name = "gc.webhooks.rotate", skip_all)]
pub async fn rotate_secret(
    State(webhooks): State<Webhooks>,
    manager: WebhookManager,
    Path(id): Path<String>,
) -> Result<Json<WebhookWithSecretResponse>, Error> {
    let made = use_case::rotate(&webhooks, manager.org_id, path_id(&id)?).await?;
    Ok(Json(WebhookWithSecretResponse {
        secret: made.secret.reveal(),
        webhook: WebhookResponse::of(made.webhook),
    }))
}

#[utoipa::path(post, path = "/api/v1/webhooks/{webhook_id}/test", tag = "webhooks",
    security(("userToken" = []), ("serviceToken" = [])),
    params(("webhook_id" = Uuid, Path), OrgQuery),
    responses(
        (status = 202, description = "A `webhook.test` event is queued", body = DeliveryResponse),
        (status = 403, description = MANAGER, body = ErrorEnvelope),
        (status = 404, description = "No such webhook in the organization", body = ErrorEnvelope),
    ))]
#[tracing::instrument(name = "gc.webhooks.test", skip_all)]
pub async fn test(
    State(webhooks): State<Webhooks>,
    manager: WebhookManager,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<DeliveryResponse>), Error> {
    let row = use_case::test(&webhooks, manager.org_id, path_id(&id)?).await?;
    Ok((StatusCode::ACCEPTED, Json(DeliveryResponse::of(row))))
}

#[utoipa::path(get, path = "/api/v1/webhooks/{webhook_id}/deliveries", tag = "webhooks",
    security(("userToken" = []), ("serviceToken" = [])),
    params(("webhook_id" = Uuid, Path), DeliveriesQuery),
    responses(
        (status = 200, description = "A page of deliveries, newest first", body = DeliveryListResponse),
        (status = 400, description = "An unknown status or a page out of range", body = ErrorEnvelope),
        (status = 403, description = MANAGER, body = ErrorEnvelope),
        (status = 404, description = "No such webhook in the organization", body = ErrorEnvelope),
    ))]
#[tracing::instrument(name = "gc.webhooks.deliveries", skip_all)]
pub async fn deliveries(
    State(webhooks): State<Webhooks>,
    manager: WebhookManager,
    Path(id): Path<String>,
    query: Result<Query<DeliveriesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DeliveryListResponse>, Error> {
    let id = path_id(&id)?;
    let Query(query) = query.map_err(invalid_query)?;
    let page = query.page.unwrap_or(1);
    let rows =
        use_case::deliveries(&webhooks, manager.org_id, id, query.status.as_deref(), page).await?;
    Ok(Json(DeliveryListResponse {
        deliveries: rows.into_iter().map(DeliveryResponse::of).collect(),
        page,
        page_size: DELIVERIES_PAGE_SIZE,
    }))
}

#[utoipa::path(post, path = "/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/retry",
    tag = "webhooks", security(("userToken" = []), ("serviceToken" = [])),
    params(("webhook_id" = Uuid, Path), ("delivery_id" = Uuid, Path), OrgQuery),
    responses(
        (status = 202, description = "Due now, with a fresh retry window", body = DeliveryResponse),
        (status = 403, description = MANAGER, body = ErrorEnvelope),
        (status = 404, description = "No such delivery of a webhook of the organization", body = ErrorEnvelope),
        (status = 409, description = "It was delivered already", body = ErrorEnvelope),
    ))]
#[tracing::instrument(name = "gc.webhooks.retry", skip_all)]
pub async fn retry(
    State(webhooks): State<Webhooks>,
    manager: WebhookManager,
    Path((id, delivery_id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<DeliveryResponse>), Error> {
    let row = use_case::retry(
        &webhooks,
        manager.org_id,
        path_id(&id)?,
        path_id(&delivery_id)?,
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(DeliveryResponse::of(row))))
}
