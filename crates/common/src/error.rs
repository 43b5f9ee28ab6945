//! The error envelope every Convene service answers with, and the shared error codes.
//!
//! Every error body, on every route of every service, is
//! `{"error": {"code": "UPPER_SNAKE", "message": "human sentence"}}`. A code maps to one HTTP
//! status and one gRPC code, so the same failure reads the same on both transports.
//!
//! Several codes share a gRPC code (`MEETING_FULL` and `ORG_MEETING_LIMIT_REACHED` are both
//! `FAILED_PRECONDITION`), so the gRPC code alone cannot tell GC which 4xx to answer when MC
//! refuses a call. A [`tonic::Status`] made from an [`ApiError`] therefore also carries the
//! code itself in the [`GRPC_ERROR_CODE_METADATA`] entry, and [`ApiError::from_status`] reads
//! it back: an error raised in MC reaches GC's client with the same code and message.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// gRPC metadata entry (of a failed call's status) naming the [`ErrorCode`], e.g.
/// `x-convene-error-code: MEETING_FULL`.
pub const GRPC_ERROR_CODE_METADATA: &str = "x-convene-error-code";

/// gRPC metadata entry of a `RATE_LIMITED` status: seconds to wait, as HTTP's `Retry-After`.
pub const GRPC_RETRY_AFTER_METADATA: &str = "retry-after";

/// The shared error codes (DESIGN §7). A new code goes into [`ErrorCode::ALL`] too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    MeetingFull,
    /// A guest asked to wait in a lobby that holds as many guests as it may (DESIGN §12).
    LobbyFull,
    /// The host removed the caller from this meeting; refused until it ends (DESIGN §12).
    RemovedFromMeeting,
    OrgMeetingLimitReached,
    PayloadTooLarge,
    UnsupportedMediaType,
    UriTooLong,
    RequestHeadersTooLarge,
    RateLimited,
    ServiceUnavailable,
    /// Internal (MC → GC): the room is not held by this meeting controller with the caller's
    /// fencing token (it restarted, or lost the meeting). GC assigns the meeting again; a client
    /// never sees this code.
    RoomNotAssigned,
    Internal,
}

impl ErrorCode {
    /// Every code, in declaration order.
    pub const ALL: [ErrorCode; 18] = [
        ErrorCode::BadRequest,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::Conflict,
        ErrorCode::MeetingFull,
        ErrorCode::LobbyFull,
        ErrorCode::RemovedFromMeeting,
        ErrorCode::OrgMeetingLimitReached,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::UriTooLong,
        ErrorCode::RequestHeadersTooLarge,
        ErrorCode::RateLimited,
        ErrorCode::ServiceUnavailable,
        ErrorCode::RoomNotAssigned,
        ErrorCode::Internal,
    ];

    /// The code named `name` (`"MEETING_FULL"`); names are exact, case included.
    pub fn parse(name: &str) -> Option<ErrorCode> {
        Self::ALL.into_iter().find(|code| code.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "BAD_REQUEST",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::MeetingFull => "MEETING_FULL",
            ErrorCode::LobbyFull => "LOBBY_FULL",
            ErrorCode::RemovedFromMeeting => "REMOVED_FROM_MEETING",
            ErrorCode::OrgMeetingLimitReached => "ORG_MEETING_LIMIT_REACHED",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ErrorCode::UriTooLong => "URI_TOO_LONG",
            ErrorCode::RequestHeadersTooLarge => "REQUEST_HEADERS_TOO_LARGE",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            ErrorCode::RoomNotAssigned => "ROOM_NOT_ASSIGNED",
            ErrorCode::Internal => "INTERNAL",
        }
    }

    pub fn http_status(self) -> StatusCode {
        match self {
            ErrorCode::BadRequest | ErrorCode::UnsupportedMediaType => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden
            | ErrorCode::OrgMeetingLimitReached
            | ErrorCode::RemovedFromMeeting => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Conflict | ErrorCode::MeetingFull | ErrorCode::LobbyFull => {
                StatusCode::CONFLICT
            }
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UriTooLong => StatusCode::URI_TOO_LONG,
            ErrorCode::RequestHeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::ServiceUnavailable | ErrorCode::RoomNotAssigned => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The gRPC code of a status carrying this error. Several codes share one; the code itself
    /// travels in [`GRPC_ERROR_CODE_METADATA`].
    pub fn grpc_code(self) -> tonic::Code {
        match self {
            ErrorCode::BadRequest
            | ErrorCode::UnsupportedMediaType
            | ErrorCode::PayloadTooLarge
            | ErrorCode::UriTooLong
            | ErrorCode::RequestHeadersTooLarge
            | ErrorCode::MethodNotAllowed => tonic::Code::InvalidArgument,
            ErrorCode::Unauthorized => tonic::Code::Unauthenticated,
            ErrorCode::Forbidden | ErrorCode::RemovedFromMeeting => tonic::Code::PermissionDenied,
            ErrorCode::NotFound => tonic::Code::NotFound,
            ErrorCode::Conflict => tonic::Code::AlreadyExists,
            ErrorCode::MeetingFull
            | ErrorCode::LobbyFull
            | ErrorCode::OrgMeetingLimitReached
            | ErrorCode::RoomNotAssigned => tonic::Code::FailedPrecondition,
            ErrorCode::RateLimited => tonic::Code::ResourceExhausted,
            ErrorCode::ServiceUnavailable => tonic::Code::Unavailable,
            ErrorCode::Internal => tonic::Code::Internal,
        }
    }

    /// The code of a status that does not name one: a status from tonic itself (a timeout, a
    /// refused connection, an undecodable message), from a proxy, or from an older peer.
    pub fn from_grpc_code(code: tonic::Code) -> ErrorCode {
        use tonic::Code;
        match code {
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => {
                ErrorCode::ServiceUnavailable
            }
            Code::Unauthenticated => ErrorCode::Unauthorized,
            Code::PermissionDenied => ErrorCode::Forbidden,
            Code::NotFound => ErrorCode::NotFound,
            Code::InvalidArgument | Code::OutOfRange => ErrorCode::BadRequest,
            Code::AlreadyExists => ErrorCode::Conflict,
            Code::ResourceExhausted => ErrorCode::RateLimited,
            Code::Ok
            | Code::Unknown
            | Code::FailedPrecondition
            | Code::Aborted
            | Code::Unimplemented
            | Code::Internal
            | Code::DataLoss => ErrorCode::Internal,
        }
    }

    /// A message safe to show for this code when the peer's own cannot be shown.
    fn generic_message(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "the request is invalid",
            ErrorCode::Unauthorized => UNAUTHORIZED_MESSAGE,
            ErrorCode::Forbidden => "the request is not allowed",
            ErrorCode::NotFound => NOT_FOUND_MESSAGE,
            ErrorCode::MethodNotAllowed => "method not allowed",
            ErrorCode::Conflict => "the request conflicts with the current state",
            ErrorCode::MeetingFull => "the meeting is full",
            ErrorCode::LobbyFull => "the lobby is full",
            ErrorCode::RemovedFromMeeting => "you were removed from this meeting",
            ErrorCode::OrgMeetingLimitReached => {
                "the organization has reached its concurrent meeting limit"
            }
            ErrorCode::PayloadTooLarge => "the request is too large",
            ErrorCode::UnsupportedMediaType => "unsupported media type",
            ErrorCode::UriTooLong => "the request URI is too long",
            ErrorCode::RequestHeadersTooLarge => "the request headers are too large",
            ErrorCode::RateLimited => RATE_LIMITED_MESSAGE,
            ErrorCode::ServiceUnavailable | ErrorCode::RoomNotAssigned => UNAVAILABLE_MESSAGE,
            ErrorCode::Internal => INTERNAL_MESSAGE,
        }
    }

    fn is_server_error(self) -> bool {
        self.http_status().is_server_error()
    }

    /// Whether a client can ever receive this code; [`ErrorCode::RoomNotAssigned`] stays
    /// between GC and MC.
    pub fn reaches_clients(self) -> bool {
        self != ErrorCode::RoomNotAssigned
    }
}

const UNAUTHORIZED_MESSAGE: &str = "a valid bearer token is required";
const NOT_FOUND_MESSAGE: &str = "the resource does not exist";
const RATE_LIMITED_MESSAGE: &str = "too many requests, retry later";
const UNAVAILABLE_MESSAGE: &str = "service temporarily unavailable";

/// `Retry-After` of a 503 that names no wait of its own (a dependency down or hung, a request
/// that took too long): every `SERVICE_UNAVAILABLE` tells the client when to come back, so that
/// clients retry at a pace rather than at once (RFC 9110 §10.2.3).
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 2;
const INTERNAL_MESSAGE: &str = "internal error";

/// The JSON body of every error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

/// What went wrong: a stable code to act on, and a sentence for people. 500 and 503 messages
/// are generic; the cause is only in the service's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    #[cfg_attr(feature = "openapi", schema(schema_with = error_code_schema))]
    pub code: String,
    /// A human sentence, lowercase, without a trailing period. Never parse it.
    #[cfg_attr(feature = "openapi", schema(examples("the resource does not exist")))]
    pub message: String,
}

/// An error ready to go to a client: a code, a message safe to show, and the headers some
/// codes need (`WWW-Authenticate` on 401, `Retry-After` on 429 and on every 503: its own wait,
/// or [`UNAVAILABLE_RETRY_AFTER_SECS`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: Cow<'static, str>,
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(ErrorCode::Unauthorized, UNAUTHORIZED_MESSAGE)
    }

    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    pub fn not_found() -> Self {
        Self::new(ErrorCode::NotFound, NOT_FOUND_MESSAGE)
    }

    pub fn conflict(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self {
            code: ErrorCode::RateLimited,
            message: RATE_LIMITED_MESSAGE.into(),
            retry_after_secs: Some(retry_after_secs.max(1)),
        }
    }

    /// A generic 500; the cause belongs in the log, never in the body.
    pub fn internal() -> Self {
        Self::new(ErrorCode::Internal, INTERNAL_MESSAGE)
    }

    /// A generic 503.
    pub fn unavailable() -> Self {
        Self::new(ErrorCode::ServiceUnavailable, UNAVAILABLE_MESSAGE)
    }

    pub fn envelope(&self) -> ErrorEnvelope {
        ErrorEnvelope {
            error: ErrorBody {
                code: self.code.as_str().to_owned(),
                message: self.message.to_string(),
            },
        }
    }

    /// The error a peer's failed gRPC call stands for.
    ///
    /// The code comes from [`GRPC_ERROR_CODE_METADATA`] when the entry names a known code whose
    /// gRPC code is the status's own; otherwise from the gRPC code alone
    /// ([`ErrorCode::from_grpc_code`]). The peer's message is kept only when it came with the
    /// code entry (the peer made it for clients) and the code is not a 5xx: a server error
    /// gets the generic message, and the peer's text goes to the log.
    pub fn from_status(status: &tonic::Status) -> ApiError {
        let named = status
            .metadata()
            .get(GRPC_ERROR_CODE_METADATA)
            .and_then(|value| value.to_str().ok())
            .and_then(ErrorCode::parse)
            .filter(|code| code.grpc_code() == status.code());
        let code = named.unwrap_or_else(|| ErrorCode::from_grpc_code(status.code()));
        let message: Cow<'static, str> = if named.is_some() && !code.is_server_error() {
            status.message().to_owned().into()
        } else {
            if code.is_server_error() {
                tracing::warn!(
                    grpc_code = ?status.code(),
                    error_code = code.as_str(),
                    peer_message = status.message(),
                    "gRPC peer failed"
                );
            } else {
                tracing::debug!(
                    grpc_code = ?status.code(),
                    error_code = code.as_str(),
                    peer_message = status.message(),
                    "gRPC peer refused without naming an error code"
                );
            }
            code.generic_message().into()
        };
        let retry_after_secs = (code == ErrorCode::RateLimited)
            .then(|| status.metadata().get(GRPC_RETRY_AFTER_METADATA))
            .flatten()
            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
        ApiError {
            code,
            message,
            retry_after_secs,
        }
    }
}

impl From<ApiError> for tonic::Status {
    /// A status with the code's gRPC code, the message, and the code itself in
    /// [`GRPC_ERROR_CODE_METADATA`] (plus [`GRPC_RETRY_AFTER_METADATA`] when set).
    fn from(error: ApiError) -> Self {
        let mut metadata = tonic::metadata::MetadataMap::new();
        metadata.insert(
            GRPC_ERROR_CODE_METADATA,
            tonic::metadata::MetadataValue::from_static(error.code.as_str()),
        );
        if let Some(secs) = error.retry_after_secs {
            metadata.insert(GRPC_RETRY_AFTER_METADATA, secs.into());
        }
        tonic::Status::with_metadata(error.code.grpc_code(), error.message, metadata)
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        ApiError::from_status(&status)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.code.http_status();
        let mut response = (status, axum::Json(self.envelope())).into_response();
        // Middleware (metrics, access logs) reads the code from here instead of the body.
        response.extensions_mut().insert(self.code);
        let headers = response.headers_mut();
        if self.code == ErrorCode::Unauthorized {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"convene\""),
            );
        }
        let retry_after =
            self.retry_after_secs
                .or((status == StatusCode::SERVICE_UNAVAILABLE)
                    .then_some(UNAVAILABLE_RETRY_AFTER_SECS));
        if let Some(secs) = retry_after
            && let Ok(value) = HeaderValue::from_str(&secs.to_string())
        {
            headers.insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// A service's own error type: each failure knows what the client is told. Implementing it is
/// all a service does; [`error_response`] (HTTP) logs and renders every service's errors the
/// same way.
pub trait ServiceError: std::error::Error {
    fn api_error(&self) -> ApiError;
}

/// The HTTP response for a service error. Failures on our side (5xx) are logged here, once,
/// with their cause chain; the client gets the generic message of [`ApiError::internal`] or
/// [`ApiError::unavailable`].
pub fn error_response(error: &dyn ServiceError) -> Response {
    let api_error = error.api_error();
    let status = api_error.code.http_status();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        tracing::warn!(error = %error, cause = %cause_chain(error), code = api_error.code.as_str(), "request failed");
    } else if status.is_server_error() {
        tracing::error!(error = %error, cause = %cause_chain(error), code = api_error.code.as_str(), "request failed");
    }
    api_error.into_response()
}

/// The sources of an error, `outer: inner: innermost`, for logs.
pub fn cause_chain(error: &dyn std::error::Error) -> String {
    let mut chain = Vec::new();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push(cause.to_string());
        source = cause.source();
    }
    chain.join(": ")
}

/// The schema of `ErrorBody.code`: every code a client can receive, from [`ErrorCode::ALL`].
#[cfg(feature = "openapi")]
pub fn error_code_schema() -> utoipa::openapi::schema::ObjectBuilder {
    let codes: Vec<&str> = ErrorCode::ALL
        .into_iter()
        .filter(|code| code.reaches_clients())
        .map(ErrorCode::as_str)
        .collect();
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .description(Some(
            "What went wrong, for programs: UPPER_SNAKE, stable. Each code has one HTTP status.",
        ))
        .enum_values(Some(codes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util_shim::body_json;

    mod http_body_util_shim {
        use axum::body::to_bytes;
        use axum::response::Response;

        pub async fn body_json(response: Response) -> serde_json::Value {
            let bytes = to_bytes(response.into_body(), 1 << 16).await.unwrap();
            serde_json::from_slice(&bytes).unwrap()
        }
    }

    #[tokio::test]
    async fn errors_render_the_envelope_with_their_status() {
        let response =
            ApiError::new(ErrorCode::OrgMeetingLimitReached, "limit reached").into_response();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            response.extensions().get::<ErrorCode>(),
            Some(&ErrorCode::OrgMeetingLimitReached)
        );
        let body = body_json(response).await;
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "ORG_MEETING_LIMIT_REACHED", "message": "limit reached"}})
        );
    }

    #[tokio::test]
    async fn unauthorized_carries_www_authenticate_and_rate_limited_carries_retry_after() {
        let response = ApiError::unauthorized().into_response();
        assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
        let response = ApiError::rate_limited(42).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "42");
    }

    #[tokio::test]
    async fn every_503_says_when_to_retry() {
        let response = ApiError::unavailable().into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers()[header::RETRY_AFTER],
            UNAVAILABLE_RETRY_AFTER_SECS.to_string().as_str()
        );
        let mut own = ApiError::unavailable();
        own.retry_after_secs = Some(7);
        assert_eq!(own.into_response().headers()[header::RETRY_AFTER], "7");
        for code in ErrorCode::ALL {
            let response = ApiError::new(code, "x").into_response();
            let has = response.headers().contains_key(header::RETRY_AFTER);
            assert_eq!(
                has,
                code.http_status() == StatusCode::SERVICE_UNAVAILABLE,
                "{code:?}"
            );
        }
    }

    #[test]
    fn every_code_maps_to_an_error_status_on_both_transports() {
        for code in ErrorCode::ALL {
            assert!(code.http_status().is_client_error() || code.http_status().is_server_error());
            assert_ne!(code.grpc_code(), tonic::Code::Ok);
            assert!(
                code.as_str()
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_')
            );
        }
    }

    /// Fails to compile when a variant is added: the new code belongs in `ErrorCode::ALL`.
    fn listed_in_all(code: ErrorCode) -> bool {
        match code {
            ErrorCode::BadRequest
            | ErrorCode::Unauthorized
            | ErrorCode::Forbidden
            | ErrorCode::NotFound
            | ErrorCode::MethodNotAllowed
            | ErrorCode::Conflict
            | ErrorCode::MeetingFull
            | ErrorCode::LobbyFull
            | ErrorCode::RemovedFromMeeting
            | ErrorCode::OrgMeetingLimitReached
            | ErrorCode::PayloadTooLarge
            | ErrorCode::UnsupportedMediaType
            | ErrorCode::UriTooLong
            | ErrorCode::RequestHeadersTooLarge
            | ErrorCode::RateLimited
            | ErrorCode::ServiceUnavailable
            | ErrorCode::RoomNotAssigned
            | ErrorCode::Internal => ErrorCode::ALL.contains(&code),
        }
    }

    #[test]
    fn all_lists_each_code_once_and_parse_reads_every_name_back() {
        let mut names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorCode::ALL.len());
        for code in ErrorCode::ALL {
            assert!(listed_in_all(code));
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::parse("meeting_full"), None);
        assert_eq!(ErrorCode::parse(" MEETING_FULL"), None);
        assert_eq!(ErrorCode::parse(""), None);
    }

    fn sample(code: ErrorCode) -> ApiError {
        if code == ErrorCode::RateLimited {
            return ApiError::rate_limited(7);
        }
        ApiError::new(code, format!("sample message for {} – «ü»", code.as_str()))
    }

    #[test]
    fn every_code_survives_a_round_trip_through_a_status() {
        for code in ErrorCode::ALL {
            let sent = sample(code);
            let status = tonic::Status::from(sent.clone());
            assert_eq!(status.code(), code.grpc_code());
            assert_eq!(
                status.metadata().get(GRPC_ERROR_CODE_METADATA).unwrap(),
                code.as_str()
            );
            let received = ApiError::from(status);
            assert_eq!(received.code, code);
            assert_eq!(received.retry_after_secs, sent.retry_after_secs);
            if code.is_server_error() {
                assert_eq!(received.message, code.generic_message());
            } else {
                assert_eq!(received, sent);
            }
        }
    }

    #[test]
    fn a_server_error_from_a_peer_never_carries_the_peer_message() {
        let status = tonic::Status::from(ApiError::new(
            ErrorCode::Internal,
            "connection to 10.0.0.7:5432 refused",
        ));
        let received = ApiError::from_status(&status);
        assert_eq!(received, ApiError::internal());
        let received = ApiError::from_status(&tonic::Status::unavailable("dns error: mc-3"));
        assert_eq!(received, ApiError::unavailable());
    }

    #[test]
    fn a_status_without_a_code_entry_falls_back_on_its_grpc_code() {
        use tonic::Code;
        let cases = [
            (Code::Unavailable, ErrorCode::ServiceUnavailable),
            (Code::DeadlineExceeded, ErrorCode::ServiceUnavailable),
            (Code::Cancelled, ErrorCode::ServiceUnavailable),
            (Code::Unauthenticated, ErrorCode::Unauthorized),
            (Code::PermissionDenied, ErrorCode::Forbidden),
            (Code::NotFound, ErrorCode::NotFound),
            (Code::InvalidArgument, ErrorCode::BadRequest),
            (Code::OutOfRange, ErrorCode::BadRequest),
            (Code::AlreadyExists, ErrorCode::Conflict),
            (Code::ResourceExhausted, ErrorCode::RateLimited),
            (Code::FailedPrecondition, ErrorCode::Internal),
            (Code::Aborted, ErrorCode::Internal),
            (Code::Unimplemented, ErrorCode::Internal),
            (Code::Unknown, ErrorCode::Internal),
            (Code::Internal, ErrorCode::Internal),
            (Code::DataLoss, ErrorCode::Internal),
            (Code::Ok, ErrorCode::Internal),
        ];
        for (grpc, expected) in cases {
            // The peer's text did not come with a code, so it is not shown either.
            let received = ApiError::from_status(&tonic::Status::new(grpc, "decoder: bad varint"));
            assert_eq!(received.code, expected, "{grpc:?}");
            assert_eq!(received.message, expected.generic_message(), "{grpc:?}");
        }
    }

    #[test]
    fn an_unknown_or_inconsistent_code_entry_is_ignored() {
        let mut unknown = tonic::Status::permission_denied("no");
        unknown
            .metadata_mut()
            .insert(GRPC_ERROR_CODE_METADATA, "ROOM_ON_FIRE".parse().unwrap());
        assert_eq!(ApiError::from_status(&unknown).code, ErrorCode::Forbidden);

        // A proxy's UNAVAILABLE that somehow kept a 4xx code entry is still UNAVAILABLE.
        let mut mixed = tonic::Status::unavailable("upstream reset");
        mixed
            .metadata_mut()
            .insert(GRPC_ERROR_CODE_METADATA, "MEETING_FULL".parse().unwrap());
        assert_eq!(ApiError::from_status(&mixed), ApiError::unavailable());
    }

    #[test]
    fn meeting_full_and_the_org_limit_stay_apart_although_both_are_failed_precondition() {
        let full = ApiError::from(tonic::Status::from(ApiError::new(
            ErrorCode::MeetingFull,
            "the meeting is full",
        )));
        assert_eq!(full.code, ErrorCode::MeetingFull);
        assert_eq!(full.code.http_status(), StatusCode::CONFLICT);
        let limit = ApiError::from(tonic::Status::from(ApiError::new(
            ErrorCode::OrgMeetingLimitReached,
            "limit reached",
        )));
        assert_eq!(limit.code, ErrorCode::OrgMeetingLimitReached);
    }
}
