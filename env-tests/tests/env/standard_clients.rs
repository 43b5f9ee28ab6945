//! AC as standard clients see it: the `oauth2` crate gets service tokens by client
//! credentials and understands AC's errors (RFC 6749 §5.2), and `jsonwebtoken` verifies every
//! kind of token against the keys AC publishes, discovered at `/.well-known/jwks.json`.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use oauth2::basic::{BasicClient, BasicErrorResponseType, BasicTokenType};
use oauth2::{
    AuthType, ClientId, ClientSecret, HttpRequest, HttpResponse, RequestTokenError, Scope,
    TokenResponse, TokenUrl,
};
use serde_json::Value;

use crate::support::config::stack;
use crate::support::http::client;
use crate::support::{Ac, GcClient, Limits, named, org, require_meeting_controllers};

/// `oauth2`'s HTTP client, over our reqwest: the crate's own reqwest integration is of another
/// reqwest major version, which would be a second copy of the HTTP stack in the lock file.
async fn send(request: HttpRequest) -> Result<HttpResponse, reqwest::Error> {
    let response = client()
        .execute(reqwest::Request::try_from(request)?)
        .await?;
    let mut answer = http::Response::new(Vec::new());
    *answer.status_mut() = response.status();
    *answer.headers_mut() = response.headers().clone();
    *answer.body_mut() = response.bytes().await?.to_vec();
    Ok(answer)
}

fn token_url() -> TokenUrl {
    TokenUrl::new(stack().ac.at("/api/v1/auth/service/token")).expect("a valid AC URL")
}

#[tokio::test]
async fn the_oauth2_crate_gets_service_tokens_with_basic_and_with_body_authentication()
-> anyhow::Result<()> {
    let ac = Ac::new();
    let admin = ac.admin().await?;
    // A client that may do nothing: the test leaves no powerful credential on the stack.
    let credential = admin.service_client("admin", &[]).await?;

    for auth_type in [AuthType::BasicAuth, AuthType::RequestBody] {
        let oauth = BasicClient::new(ClientId::new(credential.client_id.clone()))
            .set_client_secret(ClientSecret::new(credential.secret.clone()))
            .set_auth_type(auth_type.clone())
            .set_token_uri(token_url());
        let token = oauth
            .exchange_client_credentials()
            .request_async(&send)
            .await
            .map_err(|error| anyhow::anyhow!("{auth_type:?}: {error:?}"))?;

        // AC says "Bearer"; RFC 6749 §7.1 makes the type case-insensitive, as oauth2 reads it.
        assert_eq!(token.token_type(), &BasicTokenType::Bearer, "{auth_type:?}");
        assert!(token.expires_in().is_some_and(|ttl| ttl.as_secs() > 60));
        // No scope granted: AC leaves `scope` out, so the library sees no scope at all (an
        // empty string would read as one empty scope).
        assert!(
            token.scopes().is_none(),
            "{auth_type:?}: {:?}",
            token.scopes()
        );
        let claims = verify(&ac, token.access_token().secret(), "convene-internal").await?;
        assert_eq!(
            (&claims["token_type"], &claims["sub"], &claims["scope"]),
            (
                &Value::from("service"),
                &Value::from(credential.client_id.as_str()),
                &Value::from("")
            )
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_wrong_secret_is_the_oauth2_crates_invalid_client_error() -> anyhow::Result<()> {
    let ac = Ac::new();
    let admin = ac.admin().await?;
    let credential = admin.service_client("admin", &[]).await?;

    for auth_type in [AuthType::BasicAuth, AuthType::RequestBody] {
        let oauth = BasicClient::new(ClientId::new(credential.client_id.clone()))
            .set_client_secret(ClientSecret::new(format!("{}x", credential.secret)))
            .set_auth_type(auth_type.clone())
            .set_token_uri(token_url());
        match oauth
            .exchange_client_credentials()
            .request_async(&send)
            .await
        {
            Err(RequestTokenError::ServerResponse(refusal)) => {
                assert_eq!(
                    refusal.error(),
                    &BasicErrorResponseType::InvalidClient,
                    "{auth_type:?}"
                );
                assert!(
                    refusal.error_description().is_some(),
                    "{auth_type:?}: {refusal:?}"
                );
            }
            other => panic!(
                "{auth_type:?}: a wrong secret must be RequestTokenError::ServerResponse with \
                 invalid_client, got {other:?}"
            ),
        }
    }

    // A scope the client does not hold is the library's invalid_scope, with the right secret.
    let oauth = BasicClient::new(ClientId::new(credential.client_id.clone()))
        .set_client_secret(ClientSecret::new(credential.secret.clone()))
        .set_token_uri(token_url());
    match oauth
        .exchange_client_credentials()
        .add_scope(Scope::new("admin".into()))
        .request_async(&send)
        .await
    {
        Err(RequestTokenError::ServerResponse(refusal)) => {
            assert_eq!(refusal.error(), &BasicErrorResponseType::InvalidScope);
        }
        other => panic!("an ungranted scope must be invalid_scope, got {other:?}"),
    }
    Ok(())
}

/// Verifies `token` as a standard client would: the key by the header's `kid` from AC's
/// JWKS, EdDSA only, `aud` and `iss` checked. Returns the claims.
async fn verify(ac: &Ac, token: &str, audience: &str) -> anyhow::Result<Value> {
    let jwks: JwkSet = serde_json::from_value(ac.jwks().await?)?;
    let header = decode_header(token)?;
    anyhow::ensure!(header.alg == Algorithm::EdDSA, "alg {:?}", header.alg);
    let kid = header
        .kid
        .ok_or_else(|| anyhow::anyhow!("no kid in the header"))?;
    let jwk = jwks
        .find(&kid)
        .ok_or_else(|| anyhow::anyhow!("kid {kid} is not published"))?;
    let key = DecodingKey::from_jwk(jwk)?;
    let claims = decode::<Value>(token, &key, &validation(audience, &stack().issuer))?.claims;
    Ok(claims)
}

fn validation(audience: &str, issuer: &str) -> Validation {
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    validation
}

#[tokio::test]
async fn every_kind_of_token_verifies_against_the_published_jwks() -> anyhow::Result<()> {
    require_meeting_controllers().await?;
    let (ac, org) = org(Limits::default()).await?;
    let host = org.user("Env Host").await?;
    let gc = GcClient::new();
    let meeting = gc.create_meeting(&host.token, &named("Verified")).await?;
    let code = meeting["meeting_code"].as_str().unwrap();
    let meeting_token = gc.joined(&host.token, code).await?.meeting_token;
    let service_token = ac.admin().await?.token;

    let user = verify(&ac, &host.token, "convene-api").await?;
    assert_eq!(
        (&user["token_type"], &user["sub"], &user["org_id"]),
        (
            &Value::from("user"),
            &Value::from(host.id.as_str()),
            &Value::from(org.id.as_str())
        )
    );
    assert!(
        user.get("email").is_none(),
        "access tokens carry no e-mail: {user}"
    );
    let service = verify(&ac, &service_token, "convene-internal").await?;
    assert_eq!(service["token_type"], "service");
    let meeting = verify(&ac, &meeting_token, "convene-mc").await?;
    assert_eq!(
        (
            &meeting["token_type"],
            &meeting["meeting_code"],
            &meeting["role"]
        ),
        (
            &Value::from("meeting"),
            &Value::from(code),
            &Value::from("host")
        )
    );

    // The checks bite: each token is refused for another audience and another issuer.
    for (token, audience) in [
        (&host.token, "convene-mc"),
        (&service_token, "convene-api"),
        (&meeting_token, "convene-api"),
    ] {
        let error = verify(&ac, token, audience).await.unwrap_err();
        assert!(
            matches!(
                error
                    .downcast_ref::<jsonwebtoken::errors::Error>()
                    .map(|e| e.kind()),
                Some(ErrorKind::InvalidAudience)
            ),
            "{audience}: {error:?}"
        );
    }
    let jwks: JwkSet = serde_json::from_value(ac.jwks().await?)?;
    let kid = decode_header(&host.token)?.kid.unwrap_or_default();
    let key = DecodingKey::from_jwk(jwks.find(&kid).unwrap())?;
    let error = decode::<Value>(
        &host.token,
        &key,
        &validation("convene-api", "someone-else"),
    )
    .unwrap_err();
    assert!(
        matches!(error.kind(), ErrorKind::InvalidIssuer),
        "{error:?}"
    );
    Ok(())
}
