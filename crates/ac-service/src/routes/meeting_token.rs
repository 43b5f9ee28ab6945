//! `POST /api/v1/auth/internal/meeting-token`: GC asks AC to sign a meeting token for a user it
//! has admitted (or put in the lobby). Only a service token with `internal:meeting-token` may
//! ask; AC checks the shape of the grant, GC is responsible for its truth.
//!
//! `POST /api/v1/auth/internal/meeting-tokens` signs up to [`MAX_GRANTS`] grants in one
//! request, under the same rules: GC gathers the joins that arrive while its previous requests
//! are in flight, so a busy GC pays one request, and AC one service-token check, per batch
//! instead of per join.

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::post;
use axum::{Json, Router};
use common::display_name::DisplayName;
use common::error::ErrorEnvelope;
use common::http::StrictJson;
use common::jwt::MeetingRole;
use common::meeting_code::MeetingCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::MeetingTokenRequester;
use crate::domain::validation::{parse_display_name, parse_meeting_code, parse_ttl_secs};
use crate::error::AcError;
use crate::state::AppState;
use crate::tokens::{GuestGrant, MeetingGrant};

const GUEST_HOST: &str = "a guest's role must be guest";
const GUEST_TOKEN_WITHOUT_GUEST: &str = "a guest token is signed only for a guest";
/// A meeting token's shape, for the documentation's examples.
const EXAMPLE_TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSIsImtpZCI6ImsyMDI2MTEyMS1hQmNEZWZHaElqS2wifQ.eyJ0b2tlbl90eXBlIjoibWVldGluZyJ9.c2lnbmF0dXJl";

/// The most grants one batch request may carry.
pub const MAX_GRANTS: usize = 100;

const BATCH_SIZE: &str = "grants must hold from 1 to 100 grants";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/auth/internal/meeting-token",
            post(issue_meeting_token),
        )
        .route(
            "/api/v1/auth/internal/meeting-tokens",
            post(issue_meeting_tokens).layer(DefaultBodyLimit::max(MAX_BATCH_BODY_BYTES)),
        )
}

/// The largest batch body AC reads. [`MAX_GRANTS`] grants with the longest names (255
/// characters of four UTF-8 bytes, or twelve when JSON-escaped as surrogate pairs) take up to
/// about 330 KiB, past the 64 KiB every other body is held to; with this bound a batch GC
/// builds is never refused for its size, and one of too many grants is read and refused with
/// 400. Only a service with the scope gets this far: the token is checked before the body is
/// read.
pub const MAX_BATCH_BODY_BYTES: usize = 512 * 1024;

/// The grant GC asks AC to sign. AC checks its shape only; GC decides whether the user may join.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "user_id": "6f1c2e9a-0b1d-4c55-9a43-2f8e1d7b3c10",
    "meeting_id": "0b6f3c1e-7d1a-4a8e-9c55-2f1f0a9d6b11",
    "meeting_code": "Ab3dE5gH9jK1",
    "org_id": "9f2773c6-a4b1-4f91-a244-c60b6347fee0",
    "role": "host",
    "name": "Demo Host"
}))]
pub(super) struct MeetingTokenRequest {
    user_id: Uuid,
    meeting_id: Uuid,
    #[schema(value_type = MeetingCode)]
    meeting_code: String,
    org_id: Uuid,
    role: MeetingRole,
    /// The name the other participants see.
    #[schema(value_type = DisplayName)]
    name: String,
    /// The holder is a guest without an account (`user_id` their guest id): the token says
    /// `guest: true`, and `role` must be `guest`.
    #[serde(default)]
    guest: bool,
    /// With `guest`: also sign the guest token of this guest id (`user_id`, which GC drew from
    /// its CSPRNG), answered as `guest_token`. GC asks for both tokens of a new guest in one
    /// grant, so a guest's first join costs AC no request of its own (DESIGN §12).
    #[serde(default)]
    guest_token: bool,
    /// Requested lifetime in seconds; larger values are capped at 900 (and at
    /// `AC_MEETING_TOKEN_TTL_SECS`, the default); `0` is refused.
    #[schema(minimum = 1, examples(600))]
    // An `int64`, as the schema says: a number beyond that range is malformed, not a very long
    // lifetime to cap.
    ttl_secs: Option<i64>,
}

impl MeetingTokenRequest {
    /// The grant to sign, its requested lifetime, and whether a guest token goes with it, once
    /// every field has passed.
    fn into_grant(self) -> Result<(MeetingGrant, Option<u64>, bool), AcError> {
        let meeting_code = parse_meeting_code(&self.meeting_code)?;
        let name = parse_display_name(&self.name)?;
        if self.guest && self.role != MeetingRole::Guest {
            return Err(AcError::BadRequest(GUEST_HOST.into()));
        }
        if self.guest_token && !self.guest {
            return Err(AcError::BadRequest(GUEST_TOKEN_WITHOUT_GUEST.into()));
        }
        let ttl_secs = parse_ttl_secs(self.ttl_secs)?;
        let grant = MeetingGrant {
            user_id: self.user_id,
            meeting_id: self.meeting_id,
            meeting_code,
            org_id: self.org_id,
            role: self.role,
            name: name.as_str().to_owned(),
            guest: self.guest,
        };
        Ok((grant, ttl_secs, self.guest_token))
    }
}

/// Signs a grant's meeting token, and its guest token when asked.
async fn sign(
    state: &AppState,
    grant: MeetingGrant,
    ttl_secs: Option<u64>,
    with_guest_token: bool,
) -> Result<MeetingTokenResponse, AcError> {
    let guest = with_guest_token.then(|| {
        (
            grant.user_id,
            GuestGrant {
                meeting_code: grant.meeting_code.clone(),
                org_id: grant.org_id,
                name: grant.name.clone(),
            },
        )
    });
    let issued = state.tokens.issue_meeting(grant, ttl_secs).await?;
    let guest_token = match guest {
        Some((guest_id, grant)) => Some(
            state
                .tokens
                .issue_guest_as(guest_id, grant, None)
                .await?
                .token
                .token,
        ),
        None => None,
    };
    Ok(MeetingTokenResponse {
        token: issued.token,
        expires_in: issued.expires_in,
        guest_token,
    })
}

/// Several grants to sign at once.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct MeetingTokensRequest {
    /// From 1 to 100 grants; each is checked as the single route checks it.
    #[schema(min_items = 1, max_items = 100)]
    grants: Vec<MeetingTokenRequest>,
}

/// One meeting token per grant, in the order of the grants.
#[derive(Serialize, ToSchema)]
pub(super) struct MeetingTokensResponse {
    tokens: Vec<MeetingTokenResponse>,
}

/// A meeting token.
#[derive(Serialize, ToSchema)]
pub(super) struct MeetingTokenResponse {
    /// The JWT: `token_type: meeting`, `aud: convene-mc`, with `sub` (user id), `meeting_id`,
    /// `meeting_code`, `org_id`, `role`, `name` and `jti` (and `guest: true` for a guest).
    token: String,
    /// Seconds until the token expires: at most 900.
    #[schema(maximum = 900)]
    expires_in: u64,
    /// For a grant with `guest_token`: the guest token of `user_id` (`token_type: guest`, `aud:
    /// convene-api`, good for two hours and for this one meeting).
    #[serde(skip_serializing_if = "Option::is_none")]
    guest_token: Option<String>,
}

/// Get a meeting token (GC).
///
/// Signs a meeting token for a user GC has admitted or put in a lobby: the token a client
/// sends as the first message of the meeting controller's signaling WebSocket. Only for a
/// service token with the `internal:meeting-token` scope (GC's credential); a user token gets
/// 401, a service token without the scope 403, whatever the body.
#[utoipa::path(
    post,
    path = "/api/v1/auth/internal/meeting-token",
    tag = "internal",
    security(("serviceToken" = ["internal:meeting-token"])),
    request_body = MeetingTokenRequest,
    responses(
        (status = 200, description = "A meeting token", body = MeetingTokenResponse,
         example = json!({
             "token": EXAMPLE_TOKEN,
             "expires_in": 900
         })),
        (status = 400, description = "A malformed field: a code that is not 12 characters of 0-9A-Za-z, an invalid name, `ttl_secs` 0, a role other than host or guest, a guest whose role is not guest",
         body = ErrorEnvelope,
         examples(
             ("meeting_code" = (summary = "A malformed meeting code",
                 value = json!(super::openapi::refusal(parse_meeting_code("nope"))))),
             ("ttl_secs" = (summary = "ttl_secs 0",
                 value = json!(super::openapi::refusal(parse_ttl_secs(Some(0)))))),
         )),
        (status = 403, description = "A service token without the `internal:meeting-token` scope",
         body = ErrorEnvelope, example = json!(super::openapi::example(AcError::Forbidden(crate::auth::MISSING_SCOPE)))),
    ),
)]
#[tracing::instrument(
    skip_all,
    name = "ac.token.meeting",
    fields(client_id = %caller.0.sub, meeting_id, org_id)
)]
pub(super) async fn issue_meeting_token(
    State(state): State<AppState>,
    // Before the body: a caller without the scope learns nothing from a malformed one.
    caller: MeetingTokenRequester,
    StrictJson(request): StrictJson<MeetingTokenRequest>,
) -> Result<Json<MeetingTokenResponse>, AcError> {
    let span = tracing::Span::current();
    span.record("meeting_id", tracing::field::display(request.meeting_id));
    span.record("org_id", tracing::field::display(request.org_id));
    let role = request.role;
    let (grant, ttl_secs, with_guest_token) = request.into_grant()?;
    let issued = sign(&state, grant, ttl_secs, with_guest_token).await?;
    tracing::info!(role = role.as_str(), "meeting token issued");
    Ok(Json(issued))
}

/// Get several meeting tokens (GC).
///
/// Signs from 1 to 100 grants in one request, each checked as the single route checks it, and
/// answers their tokens in the same order. One malformed grant refuses the whole request
/// (400, naming the grant's index): GC builds every grant itself, so a malformed one is a bug
/// to see, not a case to serve around. Same callers as the single route.
#[utoipa::path(
    post,
    path = "/api/v1/auth/internal/meeting-tokens",
    tag = "internal",
    security(("serviceToken" = ["internal:meeting-token"])),
    request_body = MeetingTokensRequest,
    responses(
        (status = 200, description = "One meeting token per grant, in order",
         body = MeetingTokensResponse,
         example = json!({"tokens": [{
             "token": EXAMPLE_TOKEN,
             "expires_in": 900
         }]})),
        (status = 400, description = "No grant, more than 100, or a malformed grant",
         body = ErrorEnvelope,
         example = json!(super::openapi::example(AcError::BadRequest(BATCH_SIZE.into())))),
        (status = 403, description = "A service token without the `internal:meeting-token` scope",
         body = ErrorEnvelope, example = json!(super::openapi::example(AcError::Forbidden(crate::auth::MISSING_SCOPE)))),
        (status = 413, description = "A body over 512 KiB",
         body = ErrorEnvelope, example = json!(super::openapi::example(AcError::Api(common::http::payload_too_large())))),
    ),
)]
#[tracing::instrument(
    skip_all,
    name = "ac.token.meeting_batch",
    fields(client_id = %caller.0.sub, grants)
)]
pub(super) async fn issue_meeting_tokens(
    State(state): State<AppState>,
    caller: MeetingTokenRequester,
    StrictJson(request): StrictJson<MeetingTokensRequest>,
) -> Result<Json<MeetingTokensResponse>, AcError> {
    tracing::Span::current().record("grants", request.grants.len());
    if !(1..=MAX_GRANTS).contains(&request.grants.len()) {
        return Err(AcError::BadRequest(BATCH_SIZE.into()));
    }
    let grants = request
        .grants
        .into_iter()
        .enumerate()
        .map(|(index, grant)| {
            grant.into_grant().map_err(|error| match error {
                AcError::BadRequest(message) => {
                    AcError::BadRequest(format!("grants[{index}]: {message}").into())
                }
                other => other,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut tokens = Vec::with_capacity(grants.len());
    for (grant, ttl_secs, with_guest_token) in grants {
        tokens.push(sign(&state, grant, ttl_secs, with_guest_token).await?);
    }
    tracing::info!(count = tokens.len(), "meeting tokens issued");
    Ok(Json(MeetingTokensResponse { tokens }))
}
