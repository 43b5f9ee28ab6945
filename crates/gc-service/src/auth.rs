//! Who may call the public REST API.
//!
//! Every endpoint takes the caller as an extractor in its signature:
//! [`common::auth::Authenticated<UserClaims>`] for any signed-in user, [`MeetingCreator`]
//! where a role is needed, and [`MeetingParticipant`] on the three routes a guest may use (a
//! meeting's get, join and leave, DESIGN §12). Only user tokens pass: service and meeting tokens fail on their
//! audience and type with the same 401 as a missing or forged token. Extractors run before the
//! body is read, so a caller without the right learns nothing about what a valid body looks
//! like.

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use common::auth::{AuthState, Authenticated, authenticate};
use common::error::ErrorCode;
use common::jwt::{GuestClaims, Role, ServiceClaims, UserClaims, scope, service_type};
use uuid::Uuid;

use crate::error::{Error, forbidden};

/// Roles that may create meetings.
pub const MEETING_CREATOR_ROLES: [Role; 3] = [Role::User, Role::OrgAdmin, Role::Admin];

/// A signed-in user with one of [`MEETING_CREATOR_ROLES`] (403 otherwise).
#[derive(Clone, Debug)]
pub struct MeetingCreator(pub UserClaims);

impl<S: AuthState> FromRequestParts<S> for MeetingCreator {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let Authenticated(claims) =
            Authenticated::<UserClaims>::from_request_parts(parts, state).await?;
        if !claims.has_any_role(&MEETING_CREATOR_ROLES) {
            return Err(Error::Forbidden(forbidden::MISSING_ROLE.into()));
        }
        Ok(MeetingCreator(claims))
    }
}

/// Who may read, join and leave one meeting: a signed-in user, or a guest (a person without an
/// account, DESIGN §12) whose token AC signed for this very meeting.
#[derive(Clone, Debug)]
pub enum Participant {
    Member(UserClaims),
    Guest(GuestClaims),
}

impl Participant {
    /// The user id, or the guest id.
    pub fn id(&self) -> Uuid {
        match self {
            Participant::Member(claims) => claims.sub,
            Participant::Guest(claims) => claims.sub,
        }
    }

    /// The name the room shows.
    pub fn name(&self) -> &str {
        match self {
            Participant::Member(claims) => &claims.name,
            Participant::Guest(claims) => &claims.name,
        }
    }

    pub fn is_guest(&self) -> bool {
        matches!(self, Participant::Guest(_))
    }
}

/// The caller of `GET /{code}`, `POST /{code}/join` and `POST /{code}/leave`: a user token, or
/// a guest token whose `meeting_code` is the path's `{code}` (a guest token for any other
/// meeting, or on any other route, is the 401 of a forged token).
#[derive(Clone, Debug)]
pub struct MeetingParticipant(pub Participant);

impl<S: AuthState> FromRequestParts<S> for MeetingParticipant {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let verifier = state.token_verifier();
        let refused = match authenticate::<UserClaims, _>(&parts.headers, verifier).await {
            Ok(claims) => return Ok(MeetingParticipant(Participant::Member(claims))),
            // Only a token that failed as a user's may be a guest's; a duplicated header or
            // missing keys answer as they are.
            Err(refused) if refused.code == ErrorCode::Unauthorized => refused,
            Err(other) => return Err(other.into()),
        };
        if common::http::bearer_token(&parts.headers).is_none() {
            return Err(refused.into());
        }
        let guest = authenticate::<GuestClaims, _>(&parts.headers, verifier)
            .await
            .map_err(|_| refused.clone())?;
        let path = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| refused.clone())?;
        let for_this_meeting = path
            .iter()
            .any(|(name, value)| name == "code" && value == guest.meeting_code);
        if !for_this_meeting {
            tracing::warn!(
                reason = "other_meeting",
                "guest token refused: it is for another meeting"
            );
            return Err(refused.into());
        }
        Ok(MeetingParticipant(Participant::Guest(guest)))
    }
}

/// Roles of a user who may manage their organization's webhooks (DESIGN §13).
pub const WEBHOOK_MANAGER_ROLES: [Role; 2] = [Role::OrgAdmin, Role::Admin];

/// The caller of `/api/v1/webhooks`, and the organization whose webhooks they manage: a user
/// with one of [`WEBHOOK_MANAGER_ROLES`] (their own org; an `org_id` parameter naming another
/// is 403), or a service token of an `admin` credential with the `admin` scope, which names the
/// org with `?org_id=` (400 without it). Any other valid token is 403; no valid token, 401.
#[derive(Clone, Copy, Debug)]
pub struct WebhookManager {
    pub org_id: Uuid,
}

/// Messages of the webhook API's 403s.
pub mod webhook_refusal {
    pub const ROLE: &str =
        "managing webhooks requires the role org_admin (or an admin service token)";
    pub const OTHER_ORG: &str = "a user manages only their own organization's webhooks";
    pub const SERVICE: &str =
        "managing webhooks requires a service token of an admin credential with the admin scope";
}

fn org_id_parameter(parts: &Parts) -> Result<Option<Uuid>, Error> {
    let Some(query) = parts.uri.query() else {
        return Ok(None);
    };
    let mut found = None;
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if name == "org_id" {
            if found.is_some() {
                return Err(Error::Api(common::error::ApiError::bad_request(
                    "org_id must appear at most once",
                )));
            }
            found = Some(Uuid::parse_str(&value).map_err(|_| {
                Error::Api(common::error::ApiError::bad_request(
                    "org_id must be a UUID",
                ))
            })?);
        }
    }
    Ok(found)
}

impl<S: AuthState> FromRequestParts<S> for WebhookManager {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let verifier = state.token_verifier();
        let refused = match authenticate::<UserClaims, _>(&parts.headers, verifier).await {
            Ok(claims) => {
                if !claims.has_any_role(&WEBHOOK_MANAGER_ROLES) {
                    return Err(Error::Forbidden(webhook_refusal::ROLE.into()));
                }
                return match org_id_parameter(parts)? {
                    Some(org_id) if org_id != claims.org_id => {
                        Err(Error::Forbidden(webhook_refusal::OTHER_ORG.into()))
                    }
                    _ => Ok(WebhookManager {
                        org_id: claims.org_id,
                    }),
                };
            }
            Err(refused) if refused.code == ErrorCode::Unauthorized => refused,
            Err(other) => return Err(other.into()),
        };
        let Ok(service) = authenticate::<ServiceClaims, _>(&parts.headers, verifier).await else {
            return Err(refused.into());
        };
        if service.service_type != service_type::ADMIN || !service.has_scope(scope::ADMIN) {
            return Err(Error::Forbidden(webhook_refusal::SERVICE.into()));
        }
        let org_id = org_id_parameter(parts)?.ok_or_else(|| {
            Error::Api(common::error::ApiError::bad_request(
                "an admin service token names the organization with ?org_id=",
            ))
        })?;
        Ok(WebhookManager { org_id })
    }
}
