//! GC's OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations and
//! the `ToSchema` of their real request and response types, served at
//! `GET /api/v1/openapi.json` and printed by `gc-service openapi`. `docs/openapi/gc-service.json`
//! is the checked-in copy (`scripts/openapi.sh` regenerates it; a test fails when it differs).
//!
//! A new endpoint: its `#[utoipa::path]` (every status it answers, with examples) and a line in
//! `paths(...)` below. What the common middleware adds to every route is added by
//! `common::openapi::add_shared_responses`.

use axum::extract::State;
use axum::response::Response;
use common::error::{ApiError, ErrorCode, ServiceError};
use common::openapi::SharedResponses;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::{health, meetings, participation, webhooks};
use crate::error::Error;

/// Security scheme of user tokens, the only tokens GC's REST API takes.
pub const USER_TOKEN: &str = "userToken";
pub const SERVICE_TOKEN: &str = "serviceToken";

const DESCRIPTION: &str = "\
Convene's public REST API for meetings: creating them, reading them, joining them, the \
host-controlled lobby, leaving, ending, settings and history.

**Authentication.** Every `/api/v1/meetings` endpoint needs `Authorization: Bearer <user \
token>`, a token from AC's `POST /api/v1/auth/user/token` (scheme name case-insensitive). \
Service and meeting tokens, and missing, expired or forged tokens, get 401 with \
`WWW-Authenticate: Bearer realm=\"convene\"`. Creating a meeting needs the role `user`, \
`org_admin` or `admin`; the other endpoints take any user token, and host rights come from \
being the meeting's host.

**Visibility.** A user may see a meeting of their org, or one with \
`allow_external_participants`. An unknown code, a malformed one, a meeting the caller may not \
see and an ended meeting all answer the same 404, so codes cannot be probed (the host's `end` \
of an ended meeting aside).

**Errors.** Every error body is `{\"error\": {\"code\": \"UPPER_SNAKE\", \"message\": \
\"...\"}}` (schema `ErrorEnvelope`); 500 and 503 messages are generic. Any route also answers \
404 `NOT_FOUND` for a path GC does not serve and 405 `METHOD_NOT_ALLOWED` for a method a path \
does not serve. A 503 is safe to retry: a repeated join, admit, admit-all, leave, end or \
config changes nothing the first one did.

**Bounds.** JSON bodies at most 64 KiB (413), `Content-Type: application/json` required (a \
400 `UNSUPPORTED_MEDIA_TYPE` otherwise), parsed strictly (unknown fields refused at every \
level); request target at most 8 KiB (414); at most 100 headers or 32 KiB of them (431); a \
request answered within 30 s, else 503.

After a join, the client opens the signaling WebSocket at `signaling_url` with its \
`meeting_token` (see `docs/signaling.md`). The full behaviour: `docs/meetings-api.md` in the \
repository.";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Convene global controller (GC): meetings API",
        description = DESCRIPTION,
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    servers(
        (url = "/", description = "The GC that serves this document"),
        (url = "http://127.0.0.1:8080", description = "The local development stack (scripts/dev.sh)"),
    ),
    paths(
        meetings::create_meeting,
        participation::history,
        participation::get_meeting,
        participation::join_meeting,
        participation::guest_join,
        participation::admit,
        participation::reject,
        participation::remove,
        participation::hand_over,
        participation::admit_all,
        participation::leave_meeting,
        participation::end_meeting,
        participation::update_config,
        webhooks::create,
        webhooks::list,
        webhooks::get,
        webhooks::update,
        webhooks::delete,
        webhooks::rotate_secret,
        webhooks::test,
        webhooks::deliveries,
        webhooks::retry,
        common::http::health::live,
        health::ready,
        health::metrics,
        openapi_document,
    ),
    tags(
        (name = "meetings", description = "Creating, reading, ending and configuring meetings."),
        (name = "participation", description = "Joining and leaving: a seat in the room or a place in the lobby."),
        (name = "lobby", description = "The host's decisions on who waits in the lobby."),
        (name = "history", description = "Ended meetings the caller hosted or attended."),
        (name = "webhooks", description = "An organization's webhooks: signed, at-least-once deliveries of its meetings' events (DESIGN §13). For an `org_admin`, or an `admin` service token naming the org with `?org_id=`."),
        (name = "operations", description = "Probes, metrics and this document; keep the probes and metrics off the public ingress."),
    ),
)]
struct ApiDoc;

/// The document: the annotations, the security scheme, and the answers every route shares.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            USER_TOKEN,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A user token (`token_type: user`, `aud: convene-api`) from AC's \
                         `POST /api/v1/auth/user/token`, verified against AC's JWKS. Names in a \
                         requirement are roles, of which the token must carry one.",
                    ))
                    .build(),
            ),
        );
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            SERVICE_TOKEN,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A service token (`token_type: service`, `aud: convene-internal`) of an \
                         `admin` credential with the `admin` scope, from AC's \
                         `POST /api/v1/auth/service/token`: accepted by the webhook API only, \
                         which it must name the organization for (`?org_id=`).",
                    ))
                    .build(),
            ),
        );
    common::openapi::add_shared_responses(
        &mut doc,
        SharedResponses {
            bearer_schemes: &[USER_TOKEN, SERVICE_TOKEN],
            remote_keys: true,
        },
    );
    for name in ["SettingsRequest", "ConfigRequest"] {
        require_agreeing_waiting_room(&mut doc, name);
    }
    doc
}

/// `lock_room` is another name for `waiting_room_enabled`: a body may give both only if they
/// agree (else 400). Said in the schema, so that a schema-valid body is never refused: the
/// object, and any of "one of the two is absent or null" or "both true" or "both false".
fn require_agreeing_waiting_room(doc: &mut utoipa::openapi::OpenApi, schema: &str) {
    use utoipa::openapi::schema::{
        AdditionalProperties, AllOfBuilder, AnyOfBuilder, ObjectBuilder, Type,
    };
    use utoipa::openapi::{RefOr, Schema};

    let Some(original) = doc
        .components
        .as_mut()
        .and_then(|components| components.schemas.remove(schema))
    else {
        return;
    };
    let null = || ObjectBuilder::new().schema_type(Type::Null);
    // Each branch speaks of these two properties only; the object itself names the rest.
    let branch = || {
        ObjectBuilder::new()
            .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(true)))
    };
    let exactly = |value: bool| {
        ObjectBuilder::new()
            .schema_type(Type::Boolean)
            .enum_values(Some([value]))
    };
    let agreeing = AnyOfBuilder::new()
        .item(branch().property("lock_room", null()))
        .item(branch().property("waiting_room_enabled", null()))
        .item(
            branch()
                .property("lock_room", exactly(true))
                .property("waiting_room_enabled", exactly(true)),
        )
        .item(
            branch()
                .property("lock_room", exactly(false))
                .property("waiting_room_enabled", exactly(false)),
        );
    let description = match &original {
        RefOr::T(Schema::Object(object)) => object.description.clone(),
        _ => None,
    };
    let combined = AllOfBuilder::new()
        .description(description)
        .item(original)
        .item(agreeing);
    if let Some(components) = doc.components.as_mut() {
        components
            .schemas
            .insert(schema.to_owned(), RefOr::T(Schema::AllOf(combined.build())));
    }
}

/// The document as served and printed (`common::openapi::render`).
pub fn rendered() -> Result<String, serde_json::Error> {
    common::openapi::render(&document())
}

/// An example value: the envelope GC answers `error` with.
pub(super) fn example(error: Error) -> serde_json::Value {
    common::openapi::example_body(&error.api_error())
}

/// An example value: the generic 503 of a peer (a meeting controller, AC) that failed.
pub(super) fn unavailable() -> serde_json::Value {
    common::openapi::example_body(&ApiError::unavailable())
}

/// An example value: a join or leave beyond the user's budget for the meeting.
pub(super) fn rate_limited() -> serde_json::Value {
    common::openapi::example_body(&ApiError::rate_limited(3))
}

/// What a 429 of a join or leave says.
pub(super) const JOIN_LEAVE_LIMITED: &str = "The caller joined and left this meeting too often: 20 at once, then one every 3 s (`GC_JOIN_LEAVE_BURST`, `GC_JOIN_LEAVE_INTERVAL_MS`); `Retry-After` says when to try again";

/// What a 429 of a guest join says.
pub(super) const GUEST_JOIN_LIMITED: &str = "This client address (an IPv6 /64) asked to join as a guest too often: 10 at once, then one every 6 s (`GC_GUEST_JOIN_BURST`, `GC_GUEST_JOIN_INTERVAL_MS`); `Retry-After` says when to try again";

/// An example value: the host asking to remove themselves.
pub(super) fn host_not_removable() -> serde_json::Value {
    common::openapi::example_body(&ApiError::new(
        ErrorCode::Conflict,
        "the host cannot be removed; hand the meeting over first",
    ))
}

/// An example value: a hand-over to someone who cannot host.
pub(super) fn cannot_host() -> serde_json::Value {
    common::openapi::example_body(&ApiError::new(
        ErrorCode::Conflict,
        "only a member of the meeting's organization can host it",
    ))
}

/// An example value: a lobby that holds as many guests as it may.
pub(super) fn lobby_full() -> serde_json::Value {
    common::openapi::example_body(&ApiError::new(
        ErrorCode::LobbyFull,
        "the lobby holds as many guests as it may",
    ))
}

/// An example value: a meeting controller's refusal of a seat, as GC passes it on.
pub(super) fn meeting_full() -> serde_json::Value {
    common::openapi::example_body(&ApiError::new(
        ErrorCode::MeetingFull,
        "the meeting is full",
    ))
}

/// An example value: a meeting controller's refusal to admit or reject someone not waiting.
pub(super) fn not_waiting() -> serde_json::Value {
    common::openapi::example_body(&ApiError::new(
        ErrorCode::NotFound,
        "the user is not waiting in the lobby",
    ))
}

/// An example meeting object as its host sees it, in `status`.
pub(super) fn meeting_example(status: &str) -> serde_json::Value {
    let (started_at, ended_at, participants) = match status {
        "scheduled" => (None, None, 0),
        "active" => (Some("2026-12-01T12:47:04.272041Z"), None, 1),
        _ => (
            Some("2026-12-01T12:47:04.272041Z"),
            Some("2026-12-01T13:30:12.003117Z"),
            0,
        ),
    };
    serde_json::json!({
        "meeting_id": "01a1fff2-2c3f-7011-9c5b-33dff30e3113",
        "meeting_code": "wRmjjLrHq4qH",
        "display_name": "Weekly sync",
        "status": status,
        "host_id": "f3067a20-7ca4-4fd5-b01f-f824d67f9a1b",
        "max_participants": 25,
        "settings": {
            "waiting_room_enabled": false,
            "enable_transcription": true,
            "enable_e2e_encryption": true,
            "require_auth": true,
            "recording_enabled": false,
            "allow_guests": false,
            "allow_external_participants": false
        },
        "scheduled_start_time": "2027-01-07T08:00:00Z",
        "created_at": "2026-11-21T21:10:23.552871Z",
        "started_at": started_at,
        "ended_at": ended_at,
        "join_url": "http://127.0.0.1:8080/m/wRmjjLrHq4qH",
        "participant_count": participants,
        "lobby_count": 0
    })
}

/// This document.
///
/// The OpenAPI 3.1 document of GC's HTTP API, the same as `gc-service openapi` prints.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "operations",
    security(()),
    responses(
        (status = 200, description = "The document",
         headers(("Cache-Control" = String, description = "`public, max-age=300`")),
         content_type = "application/json", body = Object),
    ),
)]
pub async fn openapi_document(State(document): State<common::openapi::Document>) -> Response {
    document.response()
}
