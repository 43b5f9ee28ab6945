//! `POST /api/v1/auth/internal/guest-token`: GC asks AC to sign a guest token for someone
//! without an account who asked to join one meeting by its link (DESIGN §12). AC makes the
//! guest id and signs; GC decides whether the meeting takes guests, and holds the bounds of
//! its one unauthenticated way in (the per-address budget, the lobby's cap).
//!
//! Only a service token with `internal:meeting-token` may ask: the scope GC holds to sign
//! meeting tokens for anyone it admits, a wider power than this one (a guest token is good for
//! one meeting's get, join and leave), so no credential needs a new scope.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use common::display_name::DisplayName;
use common::error::ErrorEnvelope;
use common::http::StrictJson;
use common::jwt::MAX_GUEST_TOKEN_TTL_SECS;
use common::meeting_code::MeetingCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::MeetingTokenRequester;
use crate::domain::validation::{parse_display_name, parse_meeting_code, parse_ttl_secs};
use crate::error::AcError;
use crate::state::AppState;
use crate::tokens::GuestGrant;

/// A guest token's shape, for the documentation's examples.
const EXAMPLE_TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSIsImtpZCI6ImsyMDI2MTEyMS1hQmNEZWZHaElqS2wifQ.eyJ0b2tlbl90eXBlIjoiZ3Vlc3QifQ.c2lnbmF0dXJl";

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/auth/internal/guest-token", post(issue_guest_token))
}

/// What GC asks AC to sign for a guest.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "meeting_code": "Ab3dE5gH9jK1",
    "org_id": "9f2773c6-a4b1-4f91-a244-c60b6347fee0",
    "name": "Visiting Vera"
}))]
pub(super) struct GuestTokenRequest {
    /// The one meeting the token is good for.
    #[schema(value_type = MeetingCode)]
    meeting_code: String,
    /// The meeting's organization.
    org_id: Uuid,
    /// The name the guest gave, under the rules of users' names.
    #[schema(value_type = DisplayName)]
    name: String,
    /// Requested lifetime in seconds; larger values are capped at 7200; `0` is refused.
    #[schema(minimum = 1, examples(7200))]
    ttl_secs: Option<i64>,
}

/// A guest token and the guest id it carries.
#[derive(Serialize, ToSchema)]
pub(super) struct GuestTokenResponse {
    /// The JWT: `token_type: guest`, `aud: convene-api`, with `sub` (the guest id),
    /// `meeting_code`, `org_id`, `name` and `jti`.
    token: String,
    /// The guest id AC made (the token's `sub`).
    guest_id: Uuid,
    /// Seconds until the token expires: at most 7200.
    #[schema(maximum = 7200)]
    expires_in: u64,
}

/// Get a guest token (GC).
///
/// Signs a guest token, with a guest id AC makes, for a person without an account whom GC lets
/// ask to join one meeting. Only for a service token with the `internal:meeting-token` scope
/// (GC's credential); a user token gets 401, a service token without the scope 403, whatever
/// the body.
#[utoipa::path(
    post,
    path = "/api/v1/auth/internal/guest-token",
    tag = "internal",
    security(("serviceToken" = ["internal:meeting-token"])),
    request_body = GuestTokenRequest,
    responses(
        (status = 200, description = "A guest token", body = GuestTokenResponse,
         example = json!({
             "token": EXAMPLE_TOKEN,
             "guest_id": "3c2d9f6e-8a41-4b7e-9d0c-5e1f2a3b4c5d",
             "expires_in": 7200
         })),
        (status = 400, description = "A malformed field: a code that is not 12 characters of 0-9A-Za-z, an invalid name, `ttl_secs` 0",
         body = ErrorEnvelope,
         examples(
             ("meeting_code" = (summary = "A malformed meeting code",
                 value = json!(super::openapi::refusal(parse_meeting_code("nope"))))),
             ("name" = (summary = "A name that breaks the rules",
                 value = json!(super::openapi::refusal(parse_display_name(" "))))),
         )),
        (status = 403, description = "A service token without the `internal:meeting-token` scope",
         body = ErrorEnvelope, example = json!(super::openapi::example(AcError::Forbidden(crate::auth::MISSING_SCOPE)))),
    ),
)]
#[tracing::instrument(
    skip_all,
    name = "ac.token.guest",
    fields(client_id = %caller.0.sub, org_id)
)]
pub(super) async fn issue_guest_token(
    State(state): State<AppState>,
    // Before the body: a caller without the scope learns nothing from a malformed one.
    caller: MeetingTokenRequester,
    StrictJson(request): StrictJson<GuestTokenRequest>,
) -> Result<Json<GuestTokenResponse>, AcError> {
    tracing::Span::current().record("org_id", tracing::field::display(request.org_id));
    let meeting_code = parse_meeting_code(&request.meeting_code)?;
    let name = parse_display_name(&request.name)?;
    let ttl_secs = parse_ttl_secs(request.ttl_secs)?;
    let grant = GuestGrant {
        meeting_code,
        org_id: request.org_id,
        name: name.as_str().to_owned(),
    };
    let issued = state.tokens.issue_guest(grant, ttl_secs).await?;
    tracing::info!(
        max_ttl_secs = MAX_GUEST_TOKEN_TTL_SECS,
        "guest token issued"
    );
    Ok(Json(GuestTokenResponse {
        token: issued.token.token,
        guest_id: issued.guest_id,
        expires_in: issued.token.expires_in,
    }))
}
