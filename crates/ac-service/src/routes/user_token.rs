//! `POST /api/v1/auth/user/token`: e-mail and password in, user token out.
//!
//! Unknown e-mail, wrong password, and a deactivated user or org all give the same 401 body,
//! and the first two take the same time (an unknown e-mail is checked against a dummy hash).
//! Attempts are rate limited per account (also for e-mails that have no account, so the limit
//! reveals nothing) and per client address; see `db::login_failures` for how.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::routing::post;
use axum::{Json, Router};
use common::http::StrictJson;
use common::jwt::Role;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::db::{login_failures, users};
use crate::domain::password;
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
    let email = request.email.trim().to_lowercase();
    if email.is_empty()
        || email.len() > MAX_EMAIL_LEN
        || request.password.expose_secret().chars().count() > MAX_PASSWORD_LEN
    {
        return Err(AcError::BadRequest(
            "email or password is too long or empty".into(),
        ));
    }

    let limits = &state.login_limits;
    let account_key = login_failures::account_key(&email);
    let ip_key = login_failures::ip_key(ip);
    let counters = login_failures::record_attempt(
        &state.pool,
        &[account_key.clone(), ip_key.clone()],
        limits.window,
    )
    .await?;
    let retry_after = counters
        .iter()
        .filter(|c| {
            let limit = if c.key == account_key {
                limits.per_account
            } else {
                limits.per_ip
            };
            i64::from(c.failures) > i64::from(limit)
        })
        .map(|c| c.retry_after_secs(limits.window))
        .max();
    if let Some(retry_after_secs) = retry_after {
        metrics::login_rate_limited();
        tracing::warn!(retry_after_secs, "sign-in rate limited");
        return Err(AcError::RateLimited { retry_after_secs });
    }

    let account = users::find_for_login(&state.pool, &email).await?;
    let phc = account
        .as_ref()
        .map_or_else(|| state.dummy_hash.phc(), |a| a.password_hash.clone());
    let password_ok = password::verify(request.password, phc).await?;
    let Some(account) = account.filter(|_| password_ok) else {
        metrics::login_failed(LoginFailure::InvalidCredentials);
        tracing::info!("sign-in refused: invalid credentials");
        return Err(AcError::InvalidLogin);
    };
    if !account.user_active || !account.org_active {
        metrics::login_failed(LoginFailure::Inactive);
        tracing::info!("sign-in refused: user or org inactive");
        return Err(AcError::InvalidLogin);
    }

    login_failures::record_success(&state.pool, &account_key, &ip_key).await?;
    let roles = account
        .roles
        .iter()
        .filter_map(|r| Role::parse(r))
        .collect();
    let issued =
        state
            .tokens
            .issue_user(account.id, account.org_id, roles, account.display_name)?;
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

/// The address sign-in attempts are counted against: the TCP peer, or, when
/// `AC_TRUST_FORWARDED_FOR` is set, the last `X-Forwarded-For` entry (the one the trusted proxy
/// appended; earlier entries are whatever the client chose to send).
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = AcError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AcError> {
        if state.login_limits.trust_forwarded_for
            && let Some(ip) = forwarded_for(&parts.headers)
        {
            return Ok(ClientIp(ip));
        }
        parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| ClientIp(addr.ip()))
            .ok_or_else(|| AcError::Internal(anyhow::anyhow!("no peer address on the request")))
    }
}

fn forwarded_for(headers: &axum::http::HeaderMap) -> Option<IpAddr> {
    let last_header = headers.get_all("x-forwarded-for").iter().next_back()?;
    let last_entry = last_header.to_str().ok()?.rsplit(',').next()?;
    last_entry.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    #[test]
    fn forwarded_for_takes_the_entry_the_proxy_appended() {
        let mut headers = HeaderMap::new();
        assert_eq!(forwarded_for(&headers), None);
        headers.append(
            "x-forwarded-for",
            HeaderValue::from_static("1.1.1.1, 2.2.2.2"),
        );
        assert_eq!(forwarded_for(&headers), Some("2.2.2.2".parse().unwrap()));
        headers.append("x-forwarded-for", HeaderValue::from_static("3.3.3.3"));
        assert_eq!(forwarded_for(&headers), Some("3.3.3.3".parse().unwrap()));
        headers.insert("x-forwarded-for", HeaderValue::from_static("garbage"));
        assert_eq!(forwarded_for(&headers), None);
    }
}
