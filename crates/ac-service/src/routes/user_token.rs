//! `POST /api/v1/auth/user/token`: e-mail and password in, user token out.
//!
//! Unknown e-mail, wrong password, and a deactivated user or org all give the same 401 body,
//! and the first two take the same time (an unknown e-mail is checked against a dummy hash).
//! Attempts are rate limited per account (also for e-mails that have no account, so the limit
//! reveals nothing) and per client address, and hashed within the replica's hashing capacity;
//! see `credential_check` for how.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::routing::post;
use axum::{Json, Router};
use common::error::ErrorEnvelope;
use common::http::StrictJson;
use common::jwt::Role;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::ToSchema;

use crate::credential_check::{ClientIp, CredentialCheck, Verdict};
use crate::db::{login_failures, users};
use crate::domain::validation::has_control_characters;
use crate::error::AcError;
use crate::metrics::{self, LoginFailure};
use crate::state::AppState;

/// The route, answering browsers' CORS requests from `origins` (and no other): the meeting page
/// GC serves signs in here. No credentials (cookies) are involved; the token comes back in the
/// body and the page keeps it.
pub fn router(origins: &[String]) -> Router<AppState> {
    if origins.is_empty() {
        return Router::new().route("/api/v1/auth/user/token", post(issue_user_token));
    }
    // The layer answers preflights itself, but only on a method the route has: without an
    // OPTIONS handler the method router would answer 405 before the layer saw the request.
    let route = Router::new().route(
        "/api/v1/auth/user/token",
        post(issue_user_token).options(|| async { StatusCode::NO_CONTENT }),
    );
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    route.layer(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(allowed))
            .allow_methods([Method::POST])
            .allow_headers([header::CONTENT_TYPE])
            .max_age(Duration::from_secs(600)),
    )
}

/// An e-mail address and its password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "host@demo.test", "password": "demo-password"}))]
pub(super) struct UserTokenRequest {
    /// Trimmed; compared case-insensitively. At most 254 bytes, no control characters.
    #[schema(min_length = 1, max_length = 254, examples("host@demo.test"))]
    email: String,
    /// At most 1024 characters; any character is allowed.
    #[schema(value_type = String, format = Password, max_length = 1024)]
    password: SecretString,
}

/// A user token.
#[derive(Serialize, ToSchema)]
pub(super) struct UserTokenResponse {
    /// The JWT: `token_type: user`, `aud: convene-api`, with `sub` (user id), `org_id`,
    /// `roles`, `name` and `jti`.
    access_token: String,
    #[schema(schema_with = bearer_token_type)]
    token_type: &'static str,
    /// Seconds until the token expires (`AC_USER_TOKEN_TTL_SECS`, 3600 by default).
    expires_in: u64,
}

/// The `token_type` of every token response: always `Bearer`.
pub(super) fn bearer_token_type() -> utoipa::openapi::schema::ObjectBuilder {
    common::openapi::string_enum(["Bearer"])
}

/// Longest e-mail and password looked at; anything longer cannot be an account (see
/// `domain::validation`) and is refused before it costs a database query or a hash.
const MAX_EMAIL_LEN: usize = 254;
const MAX_PASSWORD_LEN: usize = 1024;
const INVALID_CREDENTIAL_SHAPE: &str =
    "email must be 1-254 bytes without control characters, and password at most 1024 characters";

/// Sign in.
///
/// Exchanges an e-mail address and password for a user token. Unknown e-mail, wrong password,
/// and a deactivated user or org all answer the same 401, in the same time. Failures are
/// rate limited per account (by default the 6th failure within 15 minutes is refused) and per
/// client address (429 with `Retry-After`).
#[utoipa::path(
    post,
    path = "/api/v1/auth/user/token",
    tag = "tokens",
    security(()),
    request_body = UserTokenRequest,
    responses(
        (status = 200, description = "Signed in", body = UserTokenResponse,
         example = json!({
             "access_token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSIsImtpZCI6ImsyMDI2MTEyMS1hQmNEZWZHaElqS2wifQ.eyJzdWIiOiIuLi4ifQ.c2lnbmF0dXJl",
             "token_type": "Bearer",
             "expires_in": 3600
         })),
        (status = 400, description = "An empty, oversized or control-character e-mail, or a password over 1024 characters; refused before anything is looked up or counted",
         body = ErrorEnvelope, example = json!(super::openapi::example(AcError::BadRequest(INVALID_CREDENTIAL_SHAPE.into())))),
        (status = 401, description = "Unknown e-mail, wrong password, deactivated user or org: all the same answer",
         body = ErrorEnvelope, example = json!(super::openapi::example(AcError::InvalidLogin))),
        (status = 429, description = "The account or the client address is over its failure budget",
         headers(("Retry-After" = u64, description = "Seconds until the window that locked ends")),
         body = ErrorEnvelope, example = json!(super::openapi::example(AcError::RateLimited { retry_after_secs: 840 }))),
        (status = 503, description = "No hashing slot freed up within `AC_HASH_WAIT_MS`, or a failure budget stayed full of attempts being checked",
         headers(("Retry-After" = u64, description = "`1`")),
         body = ErrorEnvelope, example = json!(super::openapi::example(AcError::Busy { retry_after_secs: 1 }))),
    ),
)]
#[tracing::instrument(skip_all, name = "ac.token.user", fields(user_id, org_id))]
pub(super) async fn issue_user_token(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    StrictJson(request): StrictJson<UserTokenRequest>,
) -> Result<Json<UserTokenResponse>, AcError> {
    use secrecy::ExposeSecret;
    // Only trimmed: lowercasing is PostgreSQL's job (see `db::users`).
    let email = request.email.trim();
    if email.is_empty()
        || email.len() > MAX_EMAIL_LEN
        || has_control_characters(email)
        || request.password.expose_secret().chars().count() > MAX_PASSWORD_LEN
    {
        return Err(AcError::BadRequest(INVALID_CREDENTIAL_SHAPE.into()));
    }

    let check = CredentialCheck::new(
        &state,
        login_failures::account_key(email),
        state.credential_limits.per_account,
        ip,
    );
    let email = email.to_owned();
    let password = request.password;
    let verdict = check
        .run(&state, move |state| async move {
            let account = users::find_for_login(&state.pool, &email).await?;
            let phc = account
                .as_ref()
                .map_or_else(|| state.dummy_hash.phc(), |a| a.password_hash.clone());
            let password_ok = state.hasher.verify(password, phc).await?;
            // A right password for a deactivated user or org is a failure like any other.
            Ok(match account.filter(|_| password_ok) {
                None => Verdict::Invalid(LoginFailure::InvalidCredentials),
                Some(a) if !a.user_active || !a.org_active => {
                    Verdict::Invalid(LoginFailure::Inactive)
                }
                Some(a) => Verdict::Valid(a),
            })
        })
        .await
        .inspect_err(|error| {
            if let AcError::RateLimited { retry_after_secs } = error {
                metrics::login_rate_limited();
                tracing::warn!(retry_after_secs, "sign-in rate limited");
            }
        })?;
    let account = match verdict {
        Verdict::Valid(account) => account,
        Verdict::Invalid(reason) => {
            metrics::login_failed(reason);
            match reason {
                LoginFailure::InvalidCredentials => {
                    tracing::info!("sign-in refused: invalid credentials")
                }
                LoginFailure::Inactive => tracing::info!("sign-in refused: user or org inactive"),
            }
            return Err(AcError::InvalidLogin);
        }
    };

    let roles = account
        .roles
        .iter()
        .filter_map(|r| Role::parse(r))
        .collect();
    let issued = state
        .tokens
        .issue_user(account.id, account.org_id, roles, account.display_name)
        .await?;
    let span = tracing::Span::current();
    span.record("user_id", tracing::field::display(account.id));
    span.record("org_id", tracing::field::display(account.org_id));
    tracing::info!("user token issued");
    Ok(Json(UserTokenResponse {
        access_token: issued.token,
        token_type: "Bearer",
        expires_in: issued.expires_in,
    }))
}
