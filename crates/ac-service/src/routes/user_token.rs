//! `POST /api/v1/auth/user/token`: e-mail and password in, user token out.
//!
//! Unknown e-mail, wrong password, and a deactivated user or org all give the same 401 body,
//! and the first two take the same time (an unknown e-mail is checked against a dummy hash).
//! Attempts are rate limited per account (also for e-mails that have no account, so the limit
//! reveals nothing) and per client address, and hashed within the replica's hashing capacity;
//! see `credential_check` for how.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use common::http::StrictJson;
use common::jwt::Role;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::credential_check::{ClientIp, CredentialCheck, Verdict};
use crate::db::{login_failures, users};
use crate::domain::validation::has_control_characters;
use crate::error::AcError;
use crate::metrics::{self, LoginFailure};
use crate::startup::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/auth/user/token", post(issue_user_token))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserTokenRequest {
    email: String,
    password: SecretString,
}

#[derive(Serialize)]
struct UserTokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
}

/// Longest e-mail and password looked at; anything longer cannot be an account (see
/// `domain::validation`) and is refused before it costs a database query or a hash.
const MAX_EMAIL_LEN: usize = 254;
const MAX_PASSWORD_LEN: usize = 1024;

#[tracing::instrument(skip_all, name = "ac.token.user", fields(user_id, org_id))]
async fn issue_user_token(
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
        return Err(AcError::BadRequest(
            "email must be 1-254 bytes without control characters, and password at most 1024 \
             characters"
                .into(),
        ));
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
