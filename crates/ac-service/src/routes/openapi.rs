//! AC's OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations and
//! the `ToSchema` of their real request and response types, served at
//! `GET /api/v1/openapi.json` and printed by `ac-service openapi`. `docs/openapi/ac-service.json`
//! is the checked-in copy (`scripts/openapi.sh` regenerates it; a test fails when it differs).
//!
//! A new endpoint: its `#[utoipa::path]` (every status it answers, with examples) and a line in
//! `paths(...)` below. What the common middleware adds to every route is added by
//! `common::openapi::add_shared_responses`.

use axum::extract::State;
use axum::response::Response;
use common::error::ServiceError;
use common::jwt::scope;
use common::openapi::SharedResponses;
use utoipa::OpenApi;
use utoipa::openapi::security::{
    ClientCredentials, Flow, HttpAuthScheme, HttpBuilder, OAuth2, Scopes, SecurityScheme,
};

use super::{
    admin_clients, admin_orgs, admin_users, guest_token, health, jwks, meeting_token,
    service_token, user_token,
};
use crate::error::AcError;

/// Security scheme of user tokens (`POST /api/v1/auth/user/token`).
pub const USER_TOKEN: &str = "userToken";
/// Security scheme of service tokens (the client-credentials grant of
/// `POST /api/v1/auth/service/token`).
pub const SERVICE_TOKEN: &str = "serviceToken";
/// Security scheme of client credentials sent with HTTP Basic to the token endpoint.
pub const CLIENT_BASIC: &str = "clientBasic";

const DESCRIPTION: &str = "\
Convene's identity service and the only signer of JWTs (Ed25519, `alg: EdDSA`, `kid` in the \
header). It issues user tokens (e-mail and password), service tokens (OAuth2 client \
credentials) and, for GC, meeting tokens; publishes its public keys at \
`/.well-known/jwks.json`; and administers organizations, users, service clients and signing \
keys.

**Errors.** Every error body is the envelope `{\"error\": {\"code\": \"UPPER_SNAKE\", \
\"message\": \"...\"}}` (schema `ErrorEnvelope`), except those of the OAuth2 token endpoint, \
which are RFC 6749 error objects (`OAuthErrorBody`). 500 and 503 messages are generic; the \
cause is only logged. Any route also answers 404 `NOT_FOUND` for a path AC does not serve and \
405 `METHOD_NOT_ALLOWED` for a method a path does not serve.

**Order of checks.** On protected routes the bearer token is checked first (401), then the \
caller's rights (403, or 404 for an org admin of another org), and only then is the body read \
(400), so a caller without the right learns nothing from the body's validation.

**Bounds.** JSON bodies at most 64 KiB (413; 512 KiB for a batch of meeting tokens) and parsed strictly (unknown fields refused); \
request target at most 8 KiB (414); at most 100 headers or 32 KiB of them (431); a request \
answered within 30 s, else 503.

The full behaviour: `docs/auth.md` in the repository.";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Convene auth controller (AC)",
        description = DESCRIPTION,
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    servers(
        (url = "/", description = "The AC that serves this document"),
        (url = "http://127.0.0.1:8082", description = "The local development stack (scripts/dev.sh)"),
    ),
    paths(
        user_token::issue_user_token,
        service_token::issue_service_token,
        guest_token::issue_guest_token,
        meeting_token::issue_meeting_token,
        meeting_token::issue_meeting_tokens,
        jwks::jwks,
        admin_orgs::create_org,
        admin_orgs::update_org,
        admin_users::create_user,
        admin_clients::create_service_client,
        admin_clients::rotate_keys,
        admin_clients::withdraw_key,
        common::http::health::live,
        health::ready,
        health::metrics,
        openapi_document,
    ),
    tags(
        (name = "tokens", description = "Signing in: user tokens and service tokens."),
        (name = "keys", description = "The public keys every service verifies tokens with."),
        (name = "admin", description = "Administration: organizations, users, service clients and signing keys. Service tokens with the `admin` scope (and, for creating users, org admins)."),
        (name = "internal", description = "Called by Convene's own services, with a service token; not for clients."),
        (name = "operations", description = "Probes, metrics and this document; keep them off the public ingress (except this document)."),
    ),
)]
struct ApiDoc;

/// The document: the annotations, the security schemes, and the answers every route shares.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        USER_TOKEN,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some(
                    "A user token (`token_type: user`, `aud: convene-api`) from \
                     `POST /api/v1/auth/user/token`. Names in a requirement are the roles it \
                     must carry.",
                ))
                .build(),
        ),
    );
    let scopes = Scopes::from_iter([
        (scope::ADMIN, "the administration API"),
        (
            scope::INTERNAL_MEETING_TOKEN,
            "asking for meeting tokens (GC)",
        ),
        (
            scope::INTERNAL_MC,
            "calling a meeting controller's gRPC API (GC)",
        ),
        (
            scope::INTERNAL_GC,
            "calling GC's gRPC API (meeting controllers)",
        ),
    ]);
    let service = OAuth2::with_description(
        [Flow::ClientCredentials(ClientCredentials::new(
            "/api/v1/auth/service/token",
            scopes,
        ))],
        "A service token (`token_type: service`, `aud: convene-internal`), sent as \
         `Authorization: Bearer <token>`, from the client-credentials grant.",
    );
    components.add_security_scheme(SERVICE_TOKEN, SecurityScheme::OAuth2(service));
    components.add_security_scheme(
        CLIENT_BASIC,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Basic)
                .description(Some(
                    "A service client's id and secret, as HTTP Basic (RFC 6749 section 2.3.1).",
                ))
                .build(),
        ),
    );
    common::openapi::add_shared_responses(
        &mut doc,
        SharedResponses {
            bearer_schemes: &[USER_TOKEN, SERVICE_TOKEN],
            remote_keys: false,
        },
    );
    doc
}

/// The document as served and printed (`common::openapi::render`).
pub fn rendered() -> Result<String, serde_json::Error> {
    common::openapi::render(&document())
}

/// An example value: the envelope AC answers `error` with.
pub(super) fn example(error: AcError) -> serde_json::Value {
    common::openapi::example_body(&error.api_error())
}

/// An example value: the envelope AC answers the refusal in `parsed` with (`null` if it
/// parsed, which the test of the document's examples catches).
pub(super) fn refusal<T, E: Into<AcError>>(parsed: Result<T, E>) -> serde_json::Value {
    parsed
        .err()
        .map_or(serde_json::Value::Null, |error| example(error.into()))
}

/// This document.
///
/// The OpenAPI 3.1 document of AC's HTTP API, the same as `ac-service openapi` prints.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "operations",
    security(()),
    responses(
        (status = 200, description = "The document, `Cache-Control: public, max-age=300`",
         content_type = "application/json", body = Object,
         headers(("Cache-Control" = String, description = "`public, max-age=300`"))),
    ),
)]
pub(super) async fn openapi_document(
    State(document): State<common::openapi::Document>,
) -> Response {
    document.response()
}
