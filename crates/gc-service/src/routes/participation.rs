//! `/api/v1/meetings/{code}` beyond create: read, join, the lobby, leave, end, config, and
//! `/api/v1/meetings/history`. Thin adapters: extract, parse, call the use case, answer.

use axum::Json;
use axum::extract::{Path, Query, State};
use common::auth::Authenticated;
use common::error::{ApiError, ErrorCode, ErrorEnvelope};
use common::http::StrictJson;
use common::jwt::{MeetingRole, UserClaims};
use common::meeting_code::MeetingCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{MeetingParticipant, Participant};
use crate::client::ClientInfo;
use crate::clients::ac::MeetingTokens;
use crate::domain::events::Actor;
use crate::domain::meeting::{MaxParticipants, ValidationError};
use crate::error::Error;
use crate::routes::meeting_response::MeetingResponse;
use crate::routes::meetings::SettingsRequest;
use crate::state::PublicBaseUrl;
use crate::use_cases::config::ConfigChange;
use crate::use_cases::detached::Detached;
use crate::use_cases::guest_join::GuestJoined;
use crate::use_cases::history::HistoryRequest;
use crate::use_cases::join::Admission;
use crate::use_cases::room::Rooms;
use crate::use_cases::{config, end, get, guest_join, history, join, leave, lobby, moderation};

/// The `{code}` path parameter.
const CODE_PARAM: &str =
    "The meeting code; anything but 12 characters of 0-9A-Za-z is an unknown meeting (404)";
const NOT_FOUND_DESCRIPTION: &str =
    "Unknown, ended or invisible meeting: all the same answer, so codes cannot be probed";
const NOT_HOST_DESCRIPTION: &str = "The caller may see the meeting but is not its host";
const CONTROLLER_UNAVAILABLE: &str = "The meeting's controller failed or is unreachable (or AC, for GC's own service token); safe to retry";
const CONTROLLER_UNAVAILABLE_JOIN: &str = "No controller can take the meeting; its controller failed; AC did not issue the meeting token. If AC failed after the seat was taken, the seat stands: join again to get the token";

/// Runs `work` as a task of its own, in the request's span, and waits for it (at most
/// [`crate::use_cases::detached::MAX_DETACHED`] such tasks at once). For the use cases that
/// change both the room (Redis, through its controller) and PostgreSQL: a client that hangs up
/// between the two writes drops the request's future, and would leave the stores disagreeing (a
/// seat with no visit, a visit left open); the task finishes both writes anyway.
async fn to_completion<T: Send + 'static>(
    detached: Detached,
    work: impl Future<Output = Result<T, Error>> + Send + 'static,
) -> Result<T, Error> {
    detached.run(work).await
}

fn actor<'a>(caller: &UserClaims, client: &'a ClientInfo) -> Actor<'a> {
    Actor::User {
        id: caller.sub,
        from: client.origin(),
    }
}

/// The actor of a change a member or a guest makes on one of the routes guests may use.
fn participant_actor<'a>(caller: &Participant, client: &'a ClientInfo) -> Actor<'a> {
    match caller {
        Participant::Member(claims) => actor(claims, client),
        Participant::Guest(claims) => Actor::Guest {
            id: claims.sub,
            from: client.origin(),
        },
    }
}

/// Read a meeting.
///
/// With `participant_count` read from the room now (when the room's controller cannot be
/// reached, the count of open visits recorded in PostgreSQL, and a `lobby_count` of 0).
/// `lobby_count` only for the host. Writes nothing.
#[utoipa::path(
    get,
    path = "/api/v1/meetings/{code}",
    tag = "meetings",
    security(("userToken" = [])),
    params(("code" = MeetingCode, Path, description = CODE_PARAM)),
    responses(
        (status = 200, description = "The meeting", body = MeetingResponse,
         example = json!(super::openapi::meeting_example("active"))),
        (status = 404, description = NOT_FOUND_DESCRIPTION, body = ErrorEnvelope,
         example = json!(super::openapi::example(Error::MeetingNotFound))),
    ),
)]
#[tracing::instrument(name = "gc.meeting.get", skip_all)]
pub async fn get_meeting(
    State(rooms): State<Rooms>,
    State(base_url): State<PublicBaseUrl>,
    MeetingParticipant(caller): MeetingParticipant,
    Path(code): Path<String>,
) -> Result<Json<MeetingResponse>, Error> {
    let view = get::get_meeting(&rooms, &caller, &code).await?;
    Ok(Json(MeetingResponse::of_view(view, base_url.as_str())))
}

/// Where a join left the caller, and how to reach the room.
#[derive(Debug, Serialize, ToSchema)]
pub struct JoinResponse {
    /// `admitted`: seated; `waiting`: in the lobby.
    #[schema(schema_with = admission_status)]
    pub status: &'static str,
    #[schema(value_type = MeetingRole)]
    pub role: &'static str,
    /// A meeting token from AC (`aud: convene-mc`), for the first message of the signaling
    /// WebSocket; a waiting caller gets one too.
    pub meeting_token: String,
    /// Seconds the meeting token is valid: at most 900.
    #[schema(maximum = 900)]
    pub expires_in: u64,
    /// `<the controller's public WebSocket URL>/ws/v1/meetings/<code>`.
    #[schema(format = "uri")]
    pub signaling_url: String,
    /// The meeting after the join.
    pub meeting: MeetingResponse,
}

fn admission_status() -> utoipa::openapi::schema::ObjectBuilder {
    common::openapi::string_enum([Admission::Admitted, Admission::Waiting].map(Admission::as_str))
}

/// Join a meeting.
///
/// The host, and everyone when the waiting room is off, take a seat if one is free; others
/// wait in the lobby for the host. The first seat makes a `scheduled` meeting `active`.
/// Joining again while seated or waiting changes nothing and issues a fresh meeting token, so
/// a client may retry after a timeout or a 503. No body (one sent is ignored).
#[utoipa::path(
    post,
    path = "/api/v1/meetings/{code}/join",
    tag = "participation",
    security(("userToken" = [])),
    params(("code" = MeetingCode, Path, description = CODE_PARAM)),
    responses(
        (status = 200, description = "Seated or waiting", body = JoinResponse,
         example = json!({
             "status": "admitted",
             "role": "host",
             "meeting_token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSIsImtpZCI6ImsyMDI2MTEyMS1hQmNEZWZHaElqS2wifQ.eyJ0b2tlbl90eXBlIjoibWVldGluZyJ9.c2lnbmF0dXJl",
             "expires_in": 900,
             "signaling_url": "ws://127.0.0.1:8081/ws/v1/meetings/wRmjjLrHq4qH",
             "meeting": super::openapi::meeting_example("active")
         })),
        (status = 404, description = NOT_FOUND_DESCRIPTION, body = ErrorEnvelope,
         example = json!(super::openapi::example(Error::MeetingNotFound))),
        (status = 409, description = "No free seat for a caller who would be seated; the caller is neither seated nor put in the lobby",
         body = ErrorEnvelope, example = json!(super::openapi::meeting_full())),
        (status = 429, description = super::openapi::JOIN_LEAVE_LIMITED, body = ErrorEnvelope,
         headers(("Retry-After" = u64, description = "Seconds until the next join or leave is allowed")),
         example = json!(super::openapi::rate_limited())),
        (status = 503, description = CONTROLLER_UNAVAILABLE_JOIN, body = ErrorEnvelope,
         examples(
             ("no_controller" = (summary = "No registered meeting controller has a fresh heartbeat and spare capacity",
                 value = json!(super::openapi::example(Error::NoControllerAvailable)))),
             ("controller_failed" = (summary = "The controller failed or is unreachable, or AC did not issue the meeting token",
                 value = json!(super::openapi::unavailable()))),
         )),
    ),
)]
#[tracing::instrument(name = "gc.meeting.join", skip_all)]
pub async fn join_meeting(
    State(rooms): State<Rooms>,
    State(meeting_tokens): State<MeetingTokens>,
    State(base_url): State<PublicBaseUrl>,
    MeetingParticipant(caller): MeetingParticipant,
    client: ClientInfo,
    Path(code): Path<String>,
) -> Result<Json<JoinResponse>, Error> {
    let joined = join::join_meeting(
        &rooms,
        &meeting_tokens,
        &caller,
        &code,
        participant_actor(&caller, &client),
    )
    .await?;
    Ok(Json(JoinResponse {
        status: joined.admission.as_str(),
        role: joined.role.as_str(),
        meeting_token: joined.meeting_token,
        expires_in: joined.expires_in,
        signaling_url: joined.signaling_url,
        meeting: MeetingResponse::of_view(joined.view, base_url.as_str()),
    }))
}

/// Body of `POST /{code}/guest-join`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"display_name": "Visiting Vera"}))]
pub struct GuestJoinRequest {
    /// The name the room shows, under the rules of users' names: 1 to 255 characters after
    /// trimming, no control, invisible or direction-changing characters.
    #[schema(value_type = String, min_length = 1, max_length = 255)]
    pub display_name: String,
}

/// A guest's place in the lobby, the guest token for this meeting, and how to reach the room.
#[derive(Debug, Serialize, ToSchema)]
pub struct GuestJoinResponse {
    /// Always `waiting`: only the host lets a guest in.
    #[schema(schema_with = waiting_status)]
    pub status: &'static str,
    /// Always `guest`.
    #[schema(value_type = MeetingRole)]
    pub role: &'static str,
    /// A guest token from AC (`token_type: guest`, at most 2 h): the bearer token of this
    /// meeting's `GET`, `join` (a reload keeps the same guest and place) and `leave`, and of
    /// nothing else.
    pub guest_token: String,
    /// A meeting token (`guest: true`), for the first message of the signaling WebSocket.
    pub meeting_token: String,
    /// Seconds the meeting token is valid: at most 900.
    #[schema(maximum = 900)]
    pub expires_in: u64,
    #[schema(format = "uri")]
    pub signaling_url: String,
    /// The meeting as a participant who is not the host sees it.
    pub meeting: MeetingResponse,
}

fn waiting_status() -> utoipa::openapi::schema::ObjectBuilder {
    common::openapi::string_enum([Admission::Waiting.as_str()])
}

/// Join as a guest, without an account.
///
/// For a meeting that allows guests (`allow_guests` on, `require_auth` off): the guest gives a
/// name, gets a guest token for this meeting, and waits in the lobby for the host, whatever
/// `waiting_room_enabled` says. Needs no `Authorization`. Each call makes a new guest; a guest
/// who reloads joins again with their guest token (`POST /{code}/join`).
#[utoipa::path(
    post,
    path = "/api/v1/meetings/{code}/guest-join",
    tag = "participation",
    security(()),
    params(("code" = MeetingCode, Path, description = CODE_PARAM)),
    request_body = GuestJoinRequest,
    responses(
        (status = 200, description = "Waiting in the lobby", body = GuestJoinResponse,
         example = json!({
             "status": "waiting",
             "role": "guest",
             "guest_token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSIsImtpZCI6ImsyMDI2MTEyMS1hQmNEZWZHaElqS2wifQ.eyJ0b2tlbl90eXBlIjoiZ3Vlc3QifQ.c2lnbmF0dXJl",
             "meeting_token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSIsImtpZCI6ImsyMDI2MTEyMS1hQmNEZWZHaElqS2wifQ.eyJ0b2tlbl90eXBlIjoibWVldGluZyJ9.c2lnbmF0dXJl",
             "expires_in": 900,
             "signaling_url": "ws://127.0.0.1:8081/ws/v1/meetings/wRmjjLrHq4qH",
             "meeting": super::openapi::meeting_example("active")
         })),
        (status = 400, description = "A malformed body or a name that breaks the rules", body = ErrorEnvelope,
         example = json!(super::openapi::example(Error::Validation(ValidationError::DisplayName(common::display_name::DisplayNameError::Blank))))),
        (status = 404, description = "Unknown, ended, or not open to guests: all the same answer", body = ErrorEnvelope,
         example = json!(super::openapi::example(Error::MeetingNotFound))),
        (status = 409, description = "The lobby holds as many guests as it may (`MAX_GUESTS_WAITING`, 50), or (for an older meeting controller) no free seat", body = ErrorEnvelope,
         example = json!(super::openapi::lobby_full())),
        (status = 429, description = super::openapi::GUEST_JOIN_LIMITED, body = ErrorEnvelope,
         headers(("Retry-After" = u64, description = "Seconds until this address may ask again")),
         example = json!(super::openapi::rate_limited())),
        (status = 503, description = CONTROLLER_UNAVAILABLE_JOIN, body = ErrorEnvelope,
         example = json!(super::openapi::unavailable())),
    ),
)]
#[tracing::instrument(name = "gc.meeting.guest_join", skip_all)]
pub async fn guest_join(
    State(rooms): State<Rooms>,
    State(meeting_tokens): State<MeetingTokens>,
    State(base_url): State<PublicBaseUrl>,
    client: ClientInfo,
    Path(code): Path<String>,
    body: Result<StrictJson<GuestJoinRequest>, ApiError>,
) -> Result<Json<GuestJoinResponse>, Error> {
    let name = body
        .map(|StrictJson(body)| body.display_name)
        .map_err(Error::from);
    let joined =
        guest_join::guest_join(&rooms, &meeting_tokens, &code, name, client.origin()).await;
    crate::metrics::guest_join(guest_join_outcome(&joined));
    let GuestJoined {
        joined,
        guest_token,
    } = joined?;
    Ok(Json(GuestJoinResponse {
        status: joined.admission.as_str(),
        role: joined.role.as_str(),
        guest_token,
        meeting_token: joined.meeting_token,
        expires_in: joined.expires_in,
        signaling_url: joined.signaling_url,
        meeting: MeetingResponse::of_view(joined.view, base_url.as_str()),
    }))
}

fn guest_join_outcome(result: &Result<GuestJoined, Error>) -> &'static str {
    use crate::metrics::guest_join as outcome;
    match result {
        Ok(_) => outcome::WAITING,
        Err(Error::MeetingNotFound) => outcome::NOT_FOUND,
        Err(Error::Api(api)) if api.code == ErrorCode::RateLimited => outcome::LIMITED,
        Err(Error::Api(api)) if api.code == ErrorCode::LobbyFull => outcome::LOBBY_FULL,
        Err(_) => outcome::FAILED,
    }
}

/// What the host decided for one user in the lobby.
#[derive(Debug, Serialize, ToSchema)]
pub struct LobbyDecision {
    pub user_id: Uuid,
    /// `admitted` (admit) or `rejected` (reject).
    #[schema(schema_with = decision_status)]
    pub status: &'static str,
}

fn decision_status() -> utoipa::openapi::schema::ObjectBuilder {
    common::openapi::string_enum([ADMITTED, REJECTED])
}

const ADMITTED: &str = "admitted";
const REJECTED: &str = "rejected";

/// Admit a user from the lobby (host).
///
/// Moves `user_id` from the lobby to a seat, as a guest, if a seat is free. Admitting someone
/// already seated changes nothing and answers 200. The first seat makes the meeting `active`.
/// No body.
#[utoipa::path(
    post,
    path = "/api/v1/meetings/{code}/admit/{user_id}",
    tag = "lobby",
    security(("userToken" = [])),
    params(
        ("code" = MeetingCode, Path, description = CODE_PARAM),
        ("user_id" = Uuid, Path, description = "The user to admit (their token's `sub`); anything but a UUID is a 404"),
    ),
    responses(
        (status = 200, description = "Seated", body = LobbyDecision,
         example = json!({"user_id": "67b7069f-22ef-4512-8324-02ad22af87f8", "status": "admitted"})),
        (status = 403, description = NOT_HOST_DESCRIPTION, body = ErrorEnvelope,
         example = json!(super::openapi::example(Error::NotHost))),
        (status = 404, description = "Unknown, ended or invisible meeting; `user_id` not a UUID; the user neither waiting nor seated; nobody has joined yet",
         body = ErrorEnvelope,
         examples(
             ("meeting" = (summary = "Unknown, ended or invisible meeting", value = json!(super::openapi::example(Error::MeetingNotFound)))),
             ("not_waiting" = (summary = "The user is not in the lobby", value = json!(super::openapi::not_waiting()))),
         )),
        (status = 409, description = "No free seat; the user stays in the lobby", body = ErrorEnvelope,
         example = json!(super::openapi::meeting_full())),
        (status = 503, description = CONTROLLER_UNAVAILABLE, body = ErrorEnvelope,
         example = json!(super::openapi::unavailable())),
    ),
)]
#[tracing::instrument(name = "gc.meeting.admit", skip_all)]
pub async fn admit(
    State(rooms): State<Rooms>,
    Authenticated(caller): Authenticated<UserClaims>,
    client: ClientInfo,
    Path((code, user_id)): Path<(String, String)>,
) -> Result<Json<LobbyDecision>, Error> {
    let user_id = to_completion(rooms.detached.clone(), async move {
        lobby::admit(&rooms, &caller, &code, &user_id, actor(&caller, &client)).await
    })
    .await?;
    Ok(Json(LobbyDecision {
        user_id,
        status: ADMITTED,
    }))
}

/// Reject a user in the lobby (host).
///
/// Removes `user_id` from the lobby with the reason `rejected_by_host`; never unseats anyone.
/// A rejected user may join again. No body.
#[utoipa::path(
    post,
    path = "/api/v1/meetings/{code}/reject/{user_id}",
    tag = "lobby",
    security(("userToken" = [])),
    params(
        ("code" = MeetingCode, Path, description = CODE_PARAM),
        ("user_id" = Uuid, Path, description = "The user to reject; anything but a UUID is a 404"),
    ),
    responses(
        (status = 200, description = "Rejected", body = LobbyDecision,
         example = json!({"user_id": "67b7069f-22ef-4512-8324-02ad22af87f8", "status": "rejected"})),
        (status = 403, description = NOT_HOST_DESCRIPTION, body = ErrorEnvelope,
         example = json!(super::openapi::example(Error::NotHost))),
        (status = 404, description = "Unknown, ended or invisible meeting; `user_id` not a UUID; the user not waiting (also when seated, or rejected already); nobody has joined yet",
         body = ErrorEnvelope,
         examples(
             ("meeting" = (summary = "Unknown, ended or invisible meeting", value = json!(super::openapi::example(Error::MeetingNotFound)))),
             ("not_waiting" = (summary = "The user is not in the lobby", value = json!(super::openapi::not_waiting()))),
         )),
        (status = 503, description = CONTROLLER_UNAVAILABLE, body = ErrorEnvelope,
         example = json!(super::openapi::unavailable())),
    ),
)]
#[tracing::instrument(name = "gc.meeting.reject", skip_all)]
pub async fn reject(
    State(rooms): State<Rooms>,
    Authenticated(caller): Authenticated<UserClaims>,
    client: ClientInfo,
    Path((code, user_id)): Path<(String, String)>,
) -> Result<Json<LobbyDecision>, Error> {
    let user_id = to_completion(rooms.detached.clone(), async move {
        lobby::reject(&rooms, &caller, &code, &user_id, actor(&caller, &client)).await
    })
    .await?;
    Ok(Json(LobbyDecision {
        user_id,
        status: REJECTED,
    }))
}

/// The host removed someone.
#[derive(Debug, Serialize, ToSchema)]
pub struct RemoveResponse {
    pub user_id: Uuid,
    /// Always `removed`.
    #[schema(schema_with = removed_status)]
    pub status: &'static str,
}

fn removed_status() -> utoipa::openapi::schema::ObjectBuilder {
    common::openapi::string_enum([REMOVED])
}

const REMOVED: &str = "removed";

/// Remove someone from the meeting (host).
///
/// Takes a member or a guest out, seated or waiting: their sockets are told `removed` and
/// closed (4403), the room hears `participant.left` (or the host `lobby.left`) with the reason
/// `removed_by_host`, their visit is closed with that reason, and every later join of theirs
/// answers 403 `REMOVED_FROM_MEETING` until the meeting ends. Removing someone again answers
/// the same. No body.
#[utoipa::path(
    post,
    path = "/api/v1/meetings/{code}/remove/{user_id}",
    tag = "lobby",
    security(("userToken" = [])),
    params(
        ("code" = MeetingCode, Path, description = CODE_PARAM),
        ("user_id" = Uuid, Path, description = "The user or guest to remove; anything but a UUID is a 404"),
    ),
    responses(
        (status = 200, description = "Removed", body = RemoveResponse,
         example = json!({"user_id": "67b7069f-22ef-4512-8324-02ad22af87f8", "status": "removed"})),
        (status = 403, description = NOT_HOST_DESCRIPTION, body = ErrorEnvelope,
         example = json!(super::openapi::example(Error::NotHost))),
        (status = 404, description = "Unknown, ended or invisible meeting; `user_id` not a UUID; nobody has joined the meeting yet",
         body = ErrorEnvelope, example = json!(super::openapi::example(Error::MeetingNotFound))),
        (status = 409, description = "The host cannot remove themselves", body = ErrorEnvelope,
         example = json!(super::openapi::host_not_removable())),
        (status = 503, description = CONTROLLER_UNAVAILABLE, body = ErrorEnvelope,
         example = json!(super::openapi::unavailable())),
    ),
)]
#[tracing::instrument(name = "gc.meeting.remove", skip_all)]
pub async fn remove(
    State(rooms): State<Rooms>,
    Authenticated(caller): Authenticated<UserClaims>,
    client: ClientInfo,
    Path((code, user_id)): Path<(String, String)>,
) -> Result<Json<RemoveResponse>, Error> {
    let user_id = to_completion(rooms.detached.clone(), async move {
        moderation::remove(&rooms, &caller, &code, &user_id, actor(&caller, &client)).await
    })
    .await?;
    Ok(Json(RemoveResponse {
        user_id,
        status: REMOVED,
    }))
}

/// Hand the meeting over (host).
///
/// Makes a seated member of the meeting's organization its host (DESIGN §12): both hear
/// `participant.updated` with their new `role`, the new host gets the lobby (`host.granted`)
/// and the host's rights here, and `host_id` changes. The meeting shows in the history of
/// everyone who hosted it. Answers the meeting as the caller sees it afterwards (no longer
/// its host, so without `lobby_count`). Handing it to oneself changes nothing. No body.
#[utoipa::path(
    post,
    path = "/api/v1/meetings/{code}/host/{user_id}",
    tag = "lobby",
    security(("userToken" = [])),
    params(
        ("code" = MeetingCode, Path, description = CODE_PARAM),
        ("user_id" = Uuid, Path, description = "The seated member to make the host; anything but a UUID is a 404"),
    ),
    responses(
        (status = 200, description = "Handed over", body = MeetingResponse),
        (status = 403, description = "The caller does not host the meeting (any more)", body = ErrorEnvelope,
         example = json!(super::openapi::example(Error::NotHost))),
        (status = 404, description = "Unknown, ended or invisible meeting; `user_id` not a UUID",
         body = ErrorEnvelope, example = json!(super::openapi::example(Error::MeetingNotFound))),
        (status = 409, description = "The user is not seated, is a guest without an account, or is not a member of the meeting's organization",
         body = ErrorEnvelope, example = json!(super::openapi::cannot_host())),
        (status = 503, description = CONTROLLER_UNAVAILABLE, body = ErrorEnvelope,
         example = json!(super::openapi::unavailable())),
    ),
)]
#[tracing::instrument(name = "gc.meeting.hand_over", skip_all)]
pub async fn hand_over(
    State(rooms): State<Rooms>,
    State(base_url): State<PublicBaseUrl>,
    Authenticated(caller): Authenticated<UserClaims>,
    client: ClientInfo,
    Path((code, user_id)): Path<(String, String)>,
) -> Result<Json<MeetingResponse>, Error> {
    let view = to_completion(rooms.detached.clone(), async move {
        moderation::hand_over(&rooms, &caller, &code, &user_id, actor(&caller, &client)).await
    })
    .await?;
    Ok(Json(MeetingResponse::of_view(view, base_url.as_str())))
}

/// Who got a seat and who still waits, each in admission order.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdmitAllResponse {
    pub admitted: Vec<Uuid>,
    /// Left in the lobby for want of a seat.
    pub still_waiting: Vec<Uuid>,
}

/// Admit the whole lobby (host).
///
/// Longest waiting first (ties broken by user id), while seats remain. An empty lobby, and a
/// meeting nobody has joined yet, answer two empty arrays. No body.
#[utoipa::path(
    post,
    path = "/api/v1/meetings/{code}/admit-all",
    tag = "lobby",
    security(("userToken" = [])),
    params(("code" = MeetingCode, Path, description = CODE_PARAM)),
    responses(
        (status = 200, description = "Admitted while seats remained", body = AdmitAllResponse,
         example = json!({
             "admitted": ["0b9c0f3e-5d0c-4c7e-8a51-2f4d9f1c6a10", "5e2d7c1b-9a43-4f0e-b2d6-8c1e0a7f3b22"],
             "still_waiting": ["c3a1e9d7-6b25-4e8f-9f10-4d2b7a6e8c33"]
         })),
        (status = 403, description = NOT_HOST_DESCRIPTION, body = ErrorEnvelope,
         example = json!(super::openapi::example(Error::NotHost))),
        (status = 404, description = NOT_FOUND_DESCRIPTION, body = ErrorEnvelope,
         example = json!(super::openapi::example(Error::MeetingNotFound))),
        (status = 503, description = CONTROLLER_UNAVAILABLE, body = ErrorEnvelope,
         example = json!(super::openapi::unavailable())),
    ),
)]
#[tracing::instrument(name = "gc.meeting.admit_all", skip_all)]
pub async fn admit_all(
    State(rooms): State<Rooms>,
    Authenticated(caller): Authenticated<UserClaims>,
    client: ClientInfo,
    Path(code): Path<String>,
) -> Result<Json<AdmitAllResponse>, Error> {
    let (admitted, still_waiting) = to_completion(rooms.detached.clone(), async move {
        lobby::admit_all(&rooms, &caller, &code, actor(&caller, &client)).await
    })
    .await?;
    Ok(Json(AdmitAllResponse {
        admitted,
        still_waiting,
    }))
}

/// `{"status": "left"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeaveResponse {
    #[schema(schema_with = left_status)]
    pub status: &'static str,
}

fn left_status() -> utoipa::openapi::schema::ObjectBuilder {
    common::openapi::string_enum([LEFT])
}

const LEFT: &str = "left";

/// Leave a meeting.
///
/// Removes the caller from their seat or from the lobby. Leaving twice, or leaving a meeting
/// one never joined, changes nothing and is not an error. A caller who came in while the
/// meeting allowed external participants may still leave it after the host turned that off,
/// while they hold a visit. No body.
#[utoipa::path(
    post,
    path = "/api/v1/meetings/{code}/leave",
    tag = "participation",
    security(("userToken" = [])),
    params(("code" = MeetingCode, Path, description = CODE_PARAM)),
    responses(
        (status = 200, description = "Not in the room or the lobby any more", body = LeaveResponse,
         example = json!({"status": "left"})),
        (status = 404, description = NOT_FOUND_DESCRIPTION, body = ErrorEnvelope,
         example = json!(super::openapi::example(Error::MeetingNotFound))),
        (status = 429, description = super::openapi::JOIN_LEAVE_LIMITED, body = ErrorEnvelope,
         headers(("Retry-After" = u64, description = "Seconds until the next join or leave is allowed")),
         example = json!(super::openapi::rate_limited())),
        (status = 503, description = "The controller failed; the caller may still be in the room: leave again", body = ErrorEnvelope,
         example = json!(super::openapi::unavailable())),
    ),
)]
#[tracing::instrument(name = "gc.meeting.leave", skip_all)]
pub async fn leave_meeting(
    State(rooms): State<Rooms>,
    MeetingParticipant(caller): MeetingParticipant,
    client: ClientInfo,
    Path(code): Path<String>,
) -> Result<Json<LeaveResponse>, Error> {
    to_completion(rooms.detached.clone(), async move {
        leave::leave(&rooms, &caller, &code, participant_actor(&caller, &client)).await
    })
    .await?;
    Ok(Json(LeaveResponse { status: LEFT }))
}

/// End a meeting (host).
///
/// Ends it for everyone: the meeting becomes `ended`, every open visit closes, and the room's
/// controller is asked to end the room. PostgreSQL decides, so the answer is 200 even when the
/// controller cannot be reached. Ending an ended meeting answers 200 with the same body and
/// writes nothing. No body.
#[utoipa::path(
    post,
    path = "/api/v1/meetings/{code}/end",
    tag = "meetings",
    security(("userToken" = [])),
    params(("code" = MeetingCode, Path, description = CODE_PARAM)),
    responses(
        (status = 200, description = "Ended, with `ended_at`, `participant_count` 0 and `lobby_count` 0", body = MeetingResponse,
         example = json!(super::openapi::meeting_example("ended"))),
        (status = 403, description = "The caller is not the host, also when the meeting has ended", body = ErrorEnvelope,
         example = json!(super::openapi::example(Error::NotHost))),
        (status = 404, description = "Unknown code, or a meeting the caller may not see", body = ErrorEnvelope,
         example = json!(super::openapi::example(Error::MeetingNotFound))),
    ),
)]
#[tracing::instrument(name = "gc.meeting.end", skip_all)]
pub async fn end_meeting(
    State(rooms): State<Rooms>,
    State(base_url): State<PublicBaseUrl>,
    Authenticated(caller): Authenticated<UserClaims>,
    client: ClientInfo,
    Path(code): Path<String>,
) -> Result<Json<MeetingResponse>, Error> {
    let meeting = to_completion(rooms.detached.clone(), async move {
        end::end_by_host(&rooms, &caller, &code, actor(&caller, &client)).await
    })
    .await?;
    Ok(Json(MeetingResponse::ended(
        meeting,
        base_url.as_str(),
        true,
    )))
}

/// Body of `PATCH /{code}/config`: any of the settings (and `lock_room`) and
/// `max_participants`, at the top level. A field left out or `null` keeps its value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigRequest {
    /// Turning it off admits the lobby at once, longest waiting first, while seats remain.
    #[serde(default)]
    pub waiting_room_enabled: Option<bool>,
    /// Another name for `waiting_room_enabled` (DESIGN §3); if both are sent they must agree.
    #[serde(default)]
    pub lock_room: Option<bool>,
    #[serde(default)]
    pub enable_transcription: Option<bool>,
    #[serde(default)]
    pub enable_e2e_encryption: Option<bool>,
    #[serde(default)]
    pub require_auth: Option<bool>,
    #[serde(default)]
    pub recording_enabled: Option<bool>,
    #[serde(default)]
    pub allow_guests: Option<bool>,
    #[serde(default)]
    pub allow_external_participants: Option<bool>,
    /// 2 up to the org's `max_participants_per_meeting` (at most 10000, AC's bound), read now;
    /// a lower value unseats nobody.
    #[serde(default)]
    #[schema(minimum = 2, maximum = 10000)]
    pub max_participants: Option<i32>,
}

impl ConfigRequest {
    fn into_change(self) -> Result<ConfigChange, ValidationError> {
        let settings = SettingsRequest {
            waiting_room_enabled: self.waiting_room_enabled,
            lock_room: self.lock_room,
            enable_transcription: self.enable_transcription,
            enable_e2e_encryption: self.enable_e2e_encryption,
            require_auth: self.require_auth,
            recording_enabled: self.recording_enabled,
            allow_guests: self.allow_guests,
            allow_external_participants: self.allow_external_participants,
        };
        Ok(ConfigChange {
            settings: settings.into_change()?,
            max_participants: self
                .max_participants
                .map(MaxParticipants::parse)
                .transpose()?,
        })
    }
}

/// Change a meeting's settings (host).
///
/// The meeting and the caller's right to change it are checked before the body's errors are
/// answered. PostgreSQL is changed first, then the room; if the controller cannot be reached
/// the answer is 503 and the change stands: send the same PATCH again to bring the room in
/// line. A change that changes nothing writes nothing.
#[utoipa::path(
    patch,
    path = "/api/v1/meetings/{code}/config",
    tag = "meetings",
    security(("userToken" = [])),
    params(("code" = MeetingCode, Path, description = CODE_PARAM)),
    request_body(content = ConfigRequest,
        example = json!({"lock_room": false, "max_participants": 10})),
    responses(
        (status = 200, description = "The meeting as its host sees it, after the change", body = MeetingResponse,
         example = json!(super::openapi::meeting_example("active"))),
        (status = 400, description = "A field out of range (`max_participants` below 2 or above the org's limit), `lock_room` and `waiting_room_enabled` disagree",
         body = ErrorEnvelope,
         examples(
             ("above_org_limit" = (summary = "max_participants above the org's limit",
                 value = json!(super::openapi::example(Error::Validation(ValidationError::MaxParticipantsAboveOrgLimit { max: 100 }))))),
             ("lock_room" = (summary = "lock_room and waiting_room_enabled disagree",
                 value = json!(super::openapi::example(Error::Validation(ValidationError::ConflictingWaitingRoom))))),
         )),
        (status = 403, description = NOT_HOST_DESCRIPTION, body = ErrorEnvelope,
         example = json!(super::openapi::example(Error::NotHost))),
        (status = 404, description = NOT_FOUND_DESCRIPTION, body = ErrorEnvelope,
         example = json!(super::openapi::example(Error::MeetingNotFound))),
        (status = 503, description = "The controller failed; the change is stored: send it again", body = ErrorEnvelope,
         example = json!(super::openapi::unavailable())),
    ),
)]
#[tracing::instrument(name = "gc.meeting.config", skip_all)]
pub async fn update_config(
    State(rooms): State<Rooms>,
    State(base_url): State<PublicBaseUrl>,
    Authenticated(caller): Authenticated<UserClaims>,
    client: ClientInfo,
    Path(code): Path<String>,
    body: Result<StrictJson<ConfigRequest>, ApiError>,
) -> Result<Json<MeetingResponse>, Error> {
    let change = body
        .map_err(Error::from)
        .and_then(|StrictJson(body)| body.into_change().map_err(Error::from));
    let view = to_completion(rooms.detached.clone(), async move {
        config::update_config(&rooms, &caller, &code, change, actor(&caller, &client)).await
    })
    .await?;
    Ok(Json(MeetingResponse::of_view(view, base_url.as_str())))
}

/// Query of `GET /history`; unknown parameters are refused.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// The page, from 1.
    #[serde(default)]
    #[param(minimum = 1, maximum = 10000, default = 1)]
    pub page: Option<u32>,
    /// Meetings per page.
    #[serde(default)]
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub page_size: Option<u32>,
    /// Whose meetings: see `history_role`.
    #[serde(default)]
    #[param(schema_with = history_role)]
    pub role: Option<String>,
}

fn history_role() -> utoipa::openapi::schema::ObjectBuilder {
    common::openapi::string_enum(["host", "guest", "any"])
        .default(Some("host".into()))
        .description(Some(
            "`host`: meetings the caller hosted; `guest`: meetings the caller was seated in as \
             a guest (waiting in the lobby leaves no trace); `any`: both.",
        ))
}

/// The answer to a query string that does not parse as a [`HistoryQuery`].
fn invalid_query(rejection: axum::extract::rejection::QueryRejection) -> Error {
    Error::Api(ApiError::bad_request(format!(
        "invalid query: {}",
        rejection.body_text()
    )))
}

/// The answer to `?sort=asc`, for the document's example.
fn unknown_history_parameter() -> Error {
    let uri = axum::http::Uri::from_static("/api/v1/meetings/history?sort=asc");
    match Query::<HistoryQuery>::try_from_uri(&uri) {
        Ok(_) => Error::Internal("sort=asc parsed"),
        Err(rejection) => invalid_query(rejection),
    }
}

/// One page of the caller's ended meetings.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryResponse {
    /// Newest `ended_at` first (ties broken by meeting id), with `participant_count` 0;
    /// `lobby_count` (0) only on meetings the caller hosted.
    pub items: Vec<MeetingResponse>,
    #[schema(minimum = 1)]
    pub page: u32,
    #[schema(minimum = 1)]
    pub page_size: u32,
    /// Every matching meeting; a page past the end has empty `items` and the same `total`.
    #[schema(minimum = 0)]
    pub total: i64,
}

/// The caller's meeting history.
///
/// Ended meetings, newest `ended_at` first: by default those the caller hosted. A meeting
/// leaves the history when retention deletes it (`MEETING_RETENTION_DAYS`, 90, after it
/// ended).
#[utoipa::path(
    get,
    path = "/api/v1/meetings/history",
    tag = "history",
    security(("userToken" = [])),
    params(HistoryQuery),
    responses(
        (status = 200, description = "One page", body = HistoryResponse,
         example = json!({"items": [super::openapi::meeting_example("ended")], "page": 1, "page_size": 20, "total": 1})),
        (status = 400, description = "`page` or `page_size` out of range, an unknown `role`, a value that is not a number, an unknown parameter",
         body = ErrorEnvelope,
         examples(
             ("page_size" = (summary = "page_size out of range",
                 value = json!(super::openapi::example(Error::Validation(ValidationError::InvalidPageSize))))),
             ("role" = (summary = "An unknown role",
                 value = json!(super::openapi::example(Error::Validation(ValidationError::InvalidHistoryRole))))),
             ("unknown_parameter" = (summary = "A parameter GC does not know, or a value that is not a number",
                 value = json!(super::openapi::example(unknown_history_parameter())))),
         )),
    ),
)]
#[tracing::instrument(name = "gc.meeting.history", skip_all)]
pub async fn history(
    State(rooms): State<Rooms>,
    State(base_url): State<PublicBaseUrl>,
    Authenticated(caller): Authenticated<UserClaims>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<HistoryResponse>, Error> {
    let Query(query) = query.map_err(invalid_query)?;
    let request = HistoryRequest::parse(query.page, query.page_size, query.role.as_deref())?;
    let found = history::history(&rooms.pool, &caller, request).await?;
    let items = found
        .items
        .into_iter()
        .map(|m| {
            let for_host = m.hosted_by(caller.sub);
            MeetingResponse::ended(m, base_url.as_str(), for_host)
        })
        .collect();
    Ok(Json(HistoryResponse {
        items,
        page: found.page,
        page_size: found.page_size,
        total: found.total,
    }))
}
