//! `POST /api/v1/auth/service/token`: the OAuth2 client-credentials grant (RFC 6749 §4.4).
//!
//! The body is form-encoded (as OAuth clients send it) or JSON; the client authenticates with
//! HTTP Basic or with `client_id`/`client_secret` in the body, not both. Secrets are verified
//! with Argon2id off the runtime, and an unknown client id is checked against a dummy hash so
//! it takes as long as a wrong secret.

use axum::extract::{Form, FromRequest, Request, State};
use axum::http::{HeaderMap, header};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::error::{ApiError, ErrorCode};
use common::http::StrictJson;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::db::service_credentials;
use crate::domain::password;
use crate::error::AcError;
use crate::startup::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/auth/service/token", post(issue_service_token))
}

/// The JSON body. Unknown fields are refused, as on every JSON endpoint.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonTokenRequest {
    grant_type: String,
    client_id: Option<String>,
    client_secret: Option<SecretString>,
    scope: Option<String>,
}

/// The form body. RFC 6749 §3.2 tells servers to ignore parameters they do not know, so this
/// one does not refuse them.
#[derive(Deserialize)]
struct FormTokenRequest {
    grant_type: String,
    client_id: Option<String>,
    client_secret: Option<SecretString>,
    scope: Option<String>,
}

struct TokenRequest {
    grant_type: String,
    client_id: Option<String>,
    client_secret: Option<SecretString>,
    scope: Option<String>,
}

impl<S: Send + Sync> FromRequest<S> for TokenRequest {
    type Rejection = AcError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AcError> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default();
        match content_type.as_str() {
            "application/x-www-form-urlencoded" => {
                let Form(f) = Form::<FormTokenRequest>::from_request(req, state)
                    .await
                    .map_err(|e| {
                        AcError::BadRequest(format!("invalid form body: {}", e.body_text()).into())
                    })?;
                Ok(TokenRequest {
                    grant_type: f.grant_type,
                    client_id: f.client_id,
                    client_secret: f.client_secret,
                    scope: f.scope,
                })
            }
            _ => {
                // Anything else must be JSON; StrictJson refuses a wrong content type.
                let StrictJson(j) =
                    StrictJson::<JsonTokenRequest>::from_request(req, state).await?;
                Ok(TokenRequest {
                    grant_type: j.grant_type,
                    client_id: j.client_id,
                    client_secret: j.client_secret,
                    scope: j.scope,
                })
            }
        }
    }
}

#[derive(Serialize)]
struct ServiceTokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    scope: String,
}

const MAX_SECRET_LEN: usize = 1024;

#[tracing::instrument(skip_all, name = "ac.token.service", fields(client_id))]
async fn issue_service_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: TokenRequest,
) -> Result<Json<ServiceTokenResponse>, AcError> {
    if request.grant_type != "client_credentials" {
        return Err(AcError::BadRequest(
            "unsupported_grant_type: only client_credentials is supported".into(),
        ));
    }
    let (client_id, secret) =
        client_credentials(&headers, request.client_id, request.client_secret)?;
    tracing::Span::current().record("client_id", client_id.as_str());
    if client_id.len() > 64 || secret.expose_secret().len() > MAX_SECRET_LEN {
        crate::metrics::client_auth_failed();
        return Err(AcError::InvalidClient);
    }

    let credential = service_credentials::find(&state.pool, &client_id).await?;
    let phc = credential
        .as_ref()
        .map_or_else(|| state.dummy_hash.phc(), |c| c.secret_hash.clone());
    let secret_ok = password::verify(secret, phc).await?;
    let Some(credential) = credential.filter(|c| secret_ok && c.is_active) else {
        crate::metrics::client_auth_failed();
        tracing::info!("client authentication failed");
        return Err(AcError::InvalidClient);
    };

    let granted = grant_scopes(&credential.scopes, request.scope.as_deref())?;
    let issued =
        state
            .tokens
            .issue_service(&credential.client_id, &granted, &credential.service_type)?;
    tracing::info!(scope = %granted, "service token issued");
    Ok(Json(ServiceTokenResponse {
        access_token: issued.token,
        token_type: "Bearer",
        expires_in: issued.expires_in,
        scope: granted,
    }))
}

/// Picks the client's credentials from HTTP Basic or from the body; using both is refused.
fn client_credentials(
    headers: &HeaderMap,
    body_id: Option<String>,
    body_secret: Option<SecretString>,
) -> Result<(String, SecretString), AcError> {
    match (basic_credentials(headers)?, body_id, body_secret) {
        (Some(basic), None, None) => Ok(basic),
        // Some clients repeat the id in the body; harmless if it is the same one.
        (Some(basic), Some(id), None) if id == basic.0 => Ok(basic),
        (Some(_), _, _) => Err(AcError::Api(ApiError::new(
            ErrorCode::BadRequest,
            "invalid_request: use one client authentication method",
        ))),
        (None, Some(id), Some(secret)) => Ok((id, secret)),
        (None, _, _) => Err(AcError::InvalidClient),
    }
}

/// Decodes `Authorization: Basic base64(client_id:client_secret)`, if that header is present.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, SecretString)>, AcError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| AcError::InvalidClient)?;
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Err(AcError::InvalidClient);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(AcError::InvalidClient);
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or(AcError::InvalidClient)?;
    let (id, secret) = decoded.split_once(':').ok_or(AcError::InvalidClient)?;
    Ok(Some((id.to_owned(), SecretString::from(secret))))
}

/// The scopes of the token: all of the client's when none are asked for, else exactly those
/// asked for, each of which the client must hold (RFC 6749 §3.3).
fn grant_scopes(allowed: &[String], requested: Option<&str>) -> Result<String, AcError> {
    let mut granted: Vec<&str> = match requested {
        None => allowed.iter().map(String::as_str).collect(),
        Some(requested) => {
            let mut granted = Vec::new();
            for scope in requested.split_ascii_whitespace() {
                if !allowed.iter().any(|a| a == scope) {
                    return Err(AcError::BadRequest(
                        "invalid_scope: a requested scope is not granted to this client".into(),
                    ));
                }
                granted.push(scope);
            }
            granted
        }
    };
    granted.sort_unstable();
    granted.dedup();
    Ok(granted.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<String> {
        vec!["internal:meeting-token".into(), "admin".into()]
    }

    #[test]
    fn scopes_default_to_everything_granted_and_narrow_on_request() {
        assert_eq!(
            grant_scopes(&allowed(), None).unwrap(),
            "admin internal:meeting-token"
        );
        assert_eq!(
            grant_scopes(&allowed(), Some("admin admin")).unwrap(),
            "admin"
        );
        assert_eq!(grant_scopes(&allowed(), Some("")).unwrap(), "");
        assert!(grant_scopes(&allowed(), Some("admin root")).is_err());
    }

    #[test]
    fn basic_credentials_are_decoded_and_malformed_ones_refused() {
        let mut headers = HeaderMap::new();
        assert!(basic_credentials(&headers).unwrap().is_none());
        let value = format!("Basic {}", STANDARD.encode("convene-gc:s3cret:with:colons"));
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        let (id, secret) = basic_credentials(&headers).unwrap().unwrap();
        assert_eq!(id, "convene-gc");
        assert_eq!(secret.expose_secret(), "s3cret:with:colons");
        headers.insert(header::AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert!(basic_credentials(&headers).is_err());
        headers.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert!(basic_credentials(&headers).is_err());
    }
}
