//! `POST /api/v1/auth/service/token`: the OAuth2 client-credentials grant (RFC 6749 §4.4).
//!
//! The body is form-encoded (as OAuth clients send it) or JSON; the client authenticates with
//! HTTP Basic or with `client_id`/`client_secret` in the body, not both. Secrets are verified
//! with Argon2id off the runtime, and an unknown client id is checked against a dummy hash so
//! it takes as long as a wrong secret. Since anyone can send this request, attempts are counted
//! against failure budgets per client id and per address and hashed within the replica's
//! hashing capacity, exactly like sign-ins (see `credential_check`). Errors are RFC 6749 error
//! objects, not the Convene envelope (see `oauth`).

use axum::extract::{Form, FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::http::StrictJson;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::credential_check::{ClientIp, CredentialCheck, Verdict};
use crate::db::{login_failures, service_credentials};
use crate::domain::validation::{ClientId, has_control_characters};
use crate::error::AcError;
use crate::metrics::{self, ClientAuthFailure};
use crate::oauth::{ErrorBody as OAuthErrorBody, OAuthError};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/auth/service/token", post(issue_service_token))
}

/// The JSON body. Unknown fields are refused, as on every JSON endpoint.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ServiceTokenJsonRequest)]
pub(super) struct JsonTokenRequest {
    #[schema(schema_with = grant_type_schema)]
    grant_type: String,
    /// With `client_secret`, instead of HTTP Basic. 3-64 characters of `a-z 0-9 . _ -`,
    /// starting with a letter or digit.
    #[schema(schema_with = client_id_schema, nullable = true)]
    client_id: Option<String>,
    /// At most 1024 bytes, no control characters.
    #[schema(value_type = Option<String>, format = Password, max_length = 1024)]
    client_secret: Option<SecretString>,
    /// Space-separated scopes, each held by the client; absent: all the client's scopes,
    /// empty: none. At most 1024 bytes, no control characters.
    #[schema(max_length = 1024, examples("admin"))]
    scope: Option<String>,
}

/// The form body. RFC 6749 §3.2 tells servers to ignore parameters they do not know, so this
/// one does not refuse them.
#[derive(Deserialize, ToSchema)]
#[schema(as = ServiceTokenFormRequest)]
pub(super) struct FormTokenRequest {
    #[schema(schema_with = grant_type_schema)]
    grant_type: String,
    /// With `client_secret`, instead of HTTP Basic. 3-64 characters of `a-z 0-9 . _ -`,
    /// starting with a letter or digit.
    #[schema(schema_with = client_id_schema, nullable = true)]
    client_id: Option<String>,
    /// At most 1024 bytes, no control characters.
    #[schema(value_type = Option<String>, format = Password, max_length = 1024)]
    client_secret: Option<SecretString>,
    /// Space-separated scopes, each held by the client; absent: all the client's scopes,
    /// empty: none. At most 1024 bytes, no control characters.
    #[schema(max_length = 1024, examples("admin"))]
    scope: Option<String>,
}

/// `grant_type`: only `client_credentials` is served.
fn grant_type_schema() -> utoipa::openapi::schema::ObjectBuilder {
    common::openapi::string_enum(["client_credentials"])
}

/// The format of client ids (`ClientId::parse`).
pub(super) fn client_id_schema() -> utoipa::openapi::schema::ObjectBuilder {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(3))
        .max_length(Some(64))
        .pattern(Some("^[a-z0-9][a-z0-9._-]*$"))
        .examples(["convene-gc"])
}

pub(super) struct TokenRequest {
    grant_type: String,
    client_id: Option<String>,
    client_secret: Option<SecretString>,
    scope: Option<String>,
}

impl<S: Send + Sync> FromRequest<S> for TokenRequest {
    type Rejection = OAuthError;

    async fn from_request(req: Request, state: &S) -> Result<Self, OAuthError> {
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
                        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                            AcError::Api(common::http::payload_too_large())
                        } else {
                            AcError::BadRequest(
                                format!("invalid form body: {}", e.body_text()).into(),
                            )
                        }
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
                let StrictJson(j) = StrictJson::<JsonTokenRequest>::from_request(req, state)
                    .await
                    .map_err(AcError::Api)?;
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

/// A service token.
#[derive(Serialize, ToSchema)]
pub(super) struct ServiceTokenResponse {
    /// The JWT: `token_type: service`, `aud: convene-internal`, with `sub` (client id),
    /// `scope`, `service_type` and `jti`.
    access_token: String,
    #[schema(schema_with = super::user_token::bearer_token_type)]
    token_type: &'static str,
    /// Seconds until the token expires (`AC_SERVICE_TOKEN_TTL_SECS`, 3600 by default).
    expires_in: u64,
    /// The granted scopes, space-separated and sorted; left out when none is granted (RFC 6749
    /// has no empty scope, and clients read `""` as one empty scope).
    #[serde(skip_serializing_if = "String::is_empty")]
    #[schema(required = false)]
    scope: String,
}

/// Longest secret and scope looked at; anything longer cannot be a credential or a scope AC
/// grants (see `domain::validation`) and is refused before it costs a database query or a
/// hash. Client ids are held to their format (`ClientId`).
const MAX_SECRET_LEN: usize = 1024;
const MAX_SCOPE_LEN: usize = 1024;

/// Get a service token.
///
/// The OAuth2 client-credentials grant (RFC 6749 section 4.4). The body is form-encoded or
/// JSON; the client authenticates with HTTP Basic or with `client_id` and `client_secret` in
/// the body, not both (repeating the Basic client id in the body is allowed). Errors are
/// RFC 6749 section 5.2 error objects, not the Convene envelope, all with
/// `Cache-Control: no-store`; only answers of the common middleware (a second
/// `Authorization` or `Content-Type` header, an overlong head, a timeout, a panic) keep the
/// envelope.
#[utoipa::path(
    post,
    path = "/api/v1/auth/service/token",
    tag = "tokens",
    security(("clientBasic" = []), ()),
    request_body(
        description = "`application/x-www-form-urlencoded` (unknown parameters ignored) or `application/json` (unknown fields refused)",
        content(
            (FormTokenRequest = "application/x-www-form-urlencoded",
             example = json!({"grant_type": "client_credentials", "scope": "admin"})),
            (JsonTokenRequest = "application/json",
             example = json!({"grant_type": "client_credentials", "client_id": "convene-gc",
                              "client_secret": "convene-gc-dev-secret", "scope": "internal:meeting-token"})),
        ),
    ),
    responses(
        (status = 200, description = "A token",
         headers(("Cache-Control" = String, description = "`no-store`"),
                 ("Pragma" = String, description = "`no-cache`")),
         body = ServiceTokenResponse,
         example = json!({
             "access_token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSIsImtpZCI6ImsyMDI2MTEyMS1hQmNEZWZHaElqS2wifQ.eyJzdWIiOiJjb252ZW5lLWdjIn0.c2lnbmF0dXJl",
             "token_type": "Bearer",
             "expires_in": 3600,
             "scope": "internal:mc internal:meeting-token"
         })),
        (status = 400, description = "A malformed request, refused before anything is looked up, hashed or counted; or a scope the client does not hold",
         headers(("Cache-Control" = String, description = "`no-store`")),
         body = OAuthErrorBody,
         examples(
             ("unsupported_grant_type" = (summary = "grant_type is not client_credentials",
                 value = json!(OAuthError::UnsupportedGrantType.body()))),
             ("malformed_client_id" = (summary = "A client_id outside the format, or a secret over 1024 bytes or with a control character",
                 value = json!(CredentialsRefused::Invalid.into_error().body()))),
             ("two_methods" = (summary = "HTTP Basic and a secret in the body",
                 value = json!(CredentialsRefused::TwoMethods.into_error().body()))),
             ("unsupported_media_type" = (summary = "Neither a form nor application/json",
                 value = json!(OAuthError::from(AcError::Api(common::http::unsupported_media_type())).body()))),
             ("invalid_scope" = (summary = "A requested scope the client does not hold",
                 value = json!(OAuthError::InvalidScope.body()))),
         )),
        (status = 401, description = "Unknown client, wrong secret, deactivated client, no credentials, or an Authorization header that is not decodable HTTP Basic",
         headers(("WWW-Authenticate" = String, description = "`Basic realm=\"convene\"`"),
                 ("Cache-Control" = String, description = "`no-store`")),
         body = OAuthErrorBody, example = json!(OAuthError::InvalidClient.body())),
        (status = 413, description = "A body over 64 KiB",
         headers(("Cache-Control" = String, description = "`no-store`")),
         body = OAuthErrorBody,
         example = json!(OAuthError::from(AcError::Api(common::http::payload_too_large())).body())),
        (status = 429, description = "The client id or the address is over its failure budget",
         headers(("Retry-After" = u64, description = "Seconds until the window that locked ends"),
                 ("Cache-Control" = String, description = "`no-store`")),
         body = OAuthErrorBody,
         example = json!(OAuthError::from(AcError::RateLimited { retry_after_secs: 840 }).body())),
        (status = 500, description = "A failure on AC's side (a database failure); the cause is only logged",
         headers(("Cache-Control" = String, description = "`no-store`")),
         body = OAuthErrorBody,
         example = json!(OAuthError::from(AcError::Internal(anyhow::anyhow!("example"))).body())),
        (status = 503, description = "No hashing slot freed up in time, or a failure budget stayed full of attempts being checked",
         headers(("Retry-After" = u64, description = "`1`"),
                 ("Cache-Control" = String, description = "`no-store`")),
         body = OAuthErrorBody,
         example = json!(OAuthError::from(AcError::Busy { retry_after_secs: 1 }).body())),
    ),
)]
#[tracing::instrument(skip_all, name = "ac.token.service", fields(client_id))]
pub(super) async fn issue_service_token(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    request: TokenRequest,
) -> Result<impl IntoResponse, OAuthError> {
    if request.grant_type != "client_credentials" {
        return Err(OAuthError::UnsupportedGrantType);
    }
    if let Some(scope) = &request.scope
        && (scope.len() > MAX_SCOPE_LEN || has_control_characters(scope))
    {
        return Err(OAuthError::InvalidRequest(
            "scope must be at most 1024 bytes without control characters".into(),
        ));
    }
    let (client_id, secret) =
        client_credentials(&headers, request.client_id, request.client_secret).map_err(
            |refused| {
                metrics::client_auth_failed(refused.reason());
                // Debug, not info: these cost nothing to send, so they can come in floods.
                tracing::debug!(reason = ?refused.reason(), "client authentication refused");
                refused.into_error()
            },
        )?;
    tracing::Span::current().record("client_id", client_id.as_str());

    let check = CredentialCheck::new(
        &state,
        login_failures::client_key(&client_id),
        state.credential_limits.per_client,
        ip,
    );
    let verdict = check
        .run(&state, move |state| async move {
            let credential = service_credentials::find(&state.pool, &client_id).await?;
            let phc = credential
                .as_ref()
                .map_or_else(|| state.dummy_hash.phc(), |c| c.secret_hash.clone());
            let secret_ok = state.hasher.verify(secret, phc).await?;
            Ok(match credential.filter(|_| secret_ok) {
                None => Verdict::Invalid(ClientAuthFailure::InvalidCredentials),
                Some(c) if !c.is_active => Verdict::Invalid(ClientAuthFailure::Inactive),
                Some(c) => Verdict::Valid(c),
            })
        })
        .await
        .inspect_err(|error| {
            if let AcError::RateLimited { retry_after_secs } = error {
                metrics::client_auth_failed(ClientAuthFailure::RateLimited);
                tracing::warn!(retry_after_secs, "client authentication rate limited");
            }
        })?;
    let credential = match verdict {
        Verdict::Valid(credential) => credential,
        Verdict::Invalid(reason) => {
            metrics::client_auth_failed(reason);
            if reason == ClientAuthFailure::Inactive {
                tracing::info!("client authentication refused: client inactive");
            } else {
                tracing::info!("client authentication failed");
            }
            return Err(OAuthError::InvalidClient);
        }
    };

    let granted = grant_scopes(&credential.scopes, request.scope.as_deref())?;
    let issued = state
        .tokens
        .issue_service(&credential.client_id, &granted, &credential.service_type)
        .await
        .map_err(AcError::Internal)?;
    tracing::info!(scope = %granted, "service token issued");
    // RFC 6749 §5.1: a token response must not be cached.
    let no_store = [
        (header::CACHE_CONTROL, "no-store"),
        (header::PRAGMA, "no-cache"),
    ];
    Ok((
        no_store,
        Json(ServiceTokenResponse {
            access_token: issued.token,
            token_type: "Bearer",
            expires_in: issued.expires_in,
            scope: granted,
        }),
    ))
}

/// Why the request carried no usable client credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CredentialsRefused {
    /// Neither HTTP Basic nor an id and secret in the body.
    Missing,
    /// An `Authorization` header that is not valid Basic.
    Malformed,
    /// An id or secret that cannot be a credential: an id outside the format of client ids, a
    /// secret that is oversized or holds control characters, or either not UTF-8.
    Invalid,
    /// HTTP Basic and a secret in the body (RFC 6749 §2.3: one method per request).
    TwoMethods,
}

impl CredentialsRefused {
    fn reason(self) -> ClientAuthFailure {
        match self {
            CredentialsRefused::Missing => ClientAuthFailure::MissingCredentials,
            CredentialsRefused::Malformed
            | CredentialsRefused::Invalid
            | CredentialsRefused::TwoMethods => ClientAuthFailure::MalformedCredentials,
        }
    }

    fn into_error(self) -> OAuthError {
        match self {
            CredentialsRefused::Missing | CredentialsRefused::Malformed => {
                OAuthError::InvalidClient
            }
            CredentialsRefused::Invalid => OAuthError::InvalidRequest(
                "client_id must be 3-64 characters of a-z, 0-9, '.', '_' and '-', and \
                 client_secret at most 1024 bytes without control characters"
                    .into(),
            ),
            CredentialsRefused::TwoMethods => {
                OAuthError::InvalidRequest("use one client authentication method".into())
            }
        }
    }
}

/// Picks the client's credentials from HTTP Basic or from the body; using both is refused.
fn client_credentials(
    headers: &HeaderMap,
    body_id: Option<String>,
    body_secret: Option<SecretString>,
) -> Result<(String, SecretString), CredentialsRefused> {
    let (id, secret) = match (basic_credentials(headers)?, body_id, body_secret) {
        (Some(basic), None, None) => basic,
        // Some clients repeat the id in the body; harmless if it is the same one.
        (Some(basic), Some(id), None) if id == basic.0 => basic,
        (Some(_), _, _) => return Err(CredentialsRefused::TwoMethods),
        (None, Some(id), Some(secret)) => (id, secret),
        (None, _, _) => return Err(CredentialsRefused::Missing),
    };
    // An id outside the format of client ids names no client; that includes anything with
    // NUL (which PostgreSQL refuses) and the replacement characters of undecodable form bytes.
    if ClientId::parse(&id).is_err()
        || secret.expose_secret().len() > MAX_SECRET_LEN
        || has_control_characters(secret.expose_secret())
    {
        return Err(CredentialsRefused::Invalid);
    }
    Ok((id, secret))
}

/// Decodes `Authorization: Basic base64(client_id:client_secret)`, if that header is present.
fn basic_credentials(
    headers: &HeaderMap,
) -> Result<Option<(String, SecretString)>, CredentialsRefused> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = CredentialsRefused::Malformed;
    let value = value.to_str().map_err(|_| malformed)?;
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Err(malformed);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(malformed);
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed)?;
    let decoded = String::from_utf8(decoded).map_err(|_| CredentialsRefused::Invalid)?;
    let (id, secret) = decoded.split_once(':').ok_or(malformed)?;
    // RFC 6749 §2.3.1: both are form-urlencoded before they are joined, so a standard client
    // sends `a+b%2Fc` for `a b/c`. The secrets AC issues are URL-safe, for which this changes
    // nothing.
    let id = form_decode(id).ok_or(malformed)?;
    let secret = form_decode(secret).ok_or(malformed)?;
    Ok(Some((id, SecretString::from(secret))))
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte; `None` for a
/// broken escape or bytes that are not UTF-8.
fn form_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The scopes of the token: all of the client's when none are asked for, else exactly those
/// asked for, each of which the client must hold (RFC 6749 §3.3).
fn grant_scopes(allowed: &[String], requested: Option<&str>) -> Result<String, OAuthError> {
    let mut granted: Vec<&str> = match requested {
        None => allowed.iter().map(String::as_str).collect(),
        Some(requested) => {
            let mut granted = Vec::new();
            for scope in requested.split_ascii_whitespace() {
                if !allowed.iter().any(|a| a == scope) {
                    return Err(OAuthError::InvalidScope);
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
        // Form-urlencoded as RFC 6749 §2.3.1 asks (what OAuth2 libraries send).
        let value = format!("Basic {}", STANDARD.encode("my+client:a+b%2Fc%3D%21%25"));
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        let (id, secret) = basic_credentials(&headers).unwrap().unwrap();
        assert_eq!(id, "my client");
        assert_eq!(secret.expose_secret(), "a b/c=!%");
        for broken in ["id:%", "id:%4", "id:%zz", "id:%ff%fe", "%:secret"] {
            let value = format!("Basic {}", STANDARD.encode(broken));
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
            assert_eq!(
                basic_credentials(&headers).err(),
                Some(CredentialsRefused::Malformed),
                "{broken}"
            );
        }
        headers.insert(header::AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert_eq!(
            basic_credentials(&headers).err(),
            Some(CredentialsRefused::Malformed)
        );
        headers.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(
            basic_credentials(&headers).err(),
            Some(CredentialsRefused::Malformed)
        );
    }

    #[test]
    fn every_refusal_has_a_reason_for_the_failure_counter() {
        let none = HeaderMap::new();
        let refusal = |headers: &HeaderMap, id: Option<&str>, secret: Option<&str>| {
            client_credentials(
                headers,
                id.map(str::to_owned),
                secret.map(SecretString::from),
            )
            .err()
            .map(CredentialsRefused::reason)
        };
        let mut basic = HeaderMap::new();
        basic.insert(
            header::AUTHORIZATION,
            format!("Basic {}", STANDARD.encode("gc:secret"))
                .parse()
                .unwrap(),
        );
        let long_id = "x".repeat(65);
        let long_secret = "x".repeat(1025);

        assert_eq!(
            refusal(&none, None, None),
            Some(ClientAuthFailure::MissingCredentials)
        );
        assert_eq!(
            refusal(&none, Some("gc"), None),
            Some(ClientAuthFailure::MissingCredentials)
        );
        assert_eq!(
            refusal(&basic, None, Some("secret")),
            Some(ClientAuthFailure::MalformedCredentials)
        );
        assert_eq!(
            refusal(&none, Some(&long_id), Some("secret")),
            Some(ClientAuthFailure::MalformedCredentials)
        );
        assert_eq!(
            refusal(&none, Some("gc"), Some(&long_secret)),
            Some(ClientAuthFailure::MalformedCredentials)
        );
        assert_eq!(
            refusal(&none, Some("gc\u{0}x"), Some("secret")),
            Some(ClientAuthFailure::MalformedCredentials)
        );
        let mut valid_basic = HeaderMap::new();
        valid_basic.insert(
            header::AUTHORIZATION,
            format!("Basic {}", STANDARD.encode("convene-gc:secret"))
                .parse()
                .unwrap(),
        );
        assert_eq!(refusal(&valid_basic, Some("convene-gc"), None), None);
    }
}
