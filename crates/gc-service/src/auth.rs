//! Who may call the public REST API.
//!
//! Every endpoint takes the caller as an extractor in its signature:
//! [`common::auth::Authenticated<UserClaims>`] for any signed-in user, or [`MeetingCreator`]
//! where a role is needed. Only user tokens pass: service and meeting tokens fail on their
//! audience and type with the same 401 as a missing or forged token. Extractors run before the
//! body is read, so a caller without the right learns nothing about what a valid body looks
//! like.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use common::auth::{AuthState, Authenticated};
use common::jwt::{Role, UserClaims};

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
