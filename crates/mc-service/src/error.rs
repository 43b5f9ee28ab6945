//! MC's one error type for the calls GC makes on its rooms (`grpc.rs`), and its one
//! conversion to [`tonic::Status`].
//!
//! Each variant maps to a shared [`ApiError`] (a `common` error code and a message), so the
//! code travels in the status's metadata and GC's client reads the same code back
//! ([`ApiError::from_status`]). Store failures are logged here with their cause chain and
//! answered generically. The signaling WebSocket answers with close codes and `error`
//! messages instead (`signaling/protocol.rs`, `signaling/messages.rs`), using the same codes.

use common::error::{ApiError, ErrorCode};

use crate::room::RoomError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field of the request is malformed; the message names it.
    #[error("{0}")]
    BadRequest(&'static str),
    /// The room is not held by this MC with the caller's fencing token (it ended, expired, or
    /// another MC holds it now): GC assigns the meeting again.
    #[error("the room is not held by this meeting controller")]
    RoomNotAssigned,
    #[error("the meeting is full")]
    MeetingFull,
    /// A guest's join found the lobby holding as many guests as it may.
    #[error("the lobby holds as many guests as it may")]
    LobbyFull,
    /// The host removed the user from this meeting.
    #[error("you were removed from this meeting")]
    Removed,
    /// An admission or rejection of a user who is not in the lobby.
    #[error("the user is not waiting in the lobby")]
    NotWaiting,
    /// A hand-over by someone the room does not name as its host.
    #[error("only the meeting's host can hand it over")]
    NotHost,
    /// A hand-over to someone who cannot host; the message says why.
    #[error("{0}")]
    CannotHost(&'static str),
    /// This MC holds as many rooms as it may take.
    #[error("this meeting controller takes no more rooms")]
    AtCapacity,
    /// Redis failed or answered something this build does not understand.
    #[error("the room store failed")]
    Store(#[source] RoomError),
}

impl From<RoomError> for Error {
    fn from(error: RoomError) -> Self {
        match error {
            RoomError::NotFound | RoomError::Fenced { .. } => Error::RoomNotAssigned,
            RoomError::InvalidInput(what) => Error::BadRequest(what),
            error @ (RoomError::Pool(_)
            | RoomError::Redis(_)
            | RoomError::Timeout(_)
            | RoomError::UnexpectedReply(_)) => Error::Store(error),
        }
    }
}

impl Error {
    /// The error as clients of any transport see it.
    pub fn api_error(&self) -> ApiError {
        match self {
            Error::BadRequest(what) => ApiError::bad_request(*what),
            Error::RoomNotAssigned => ApiError::new(ErrorCode::RoomNotAssigned, self.to_string()),
            Error::MeetingFull => ApiError::new(ErrorCode::MeetingFull, self.to_string()),
            Error::LobbyFull => ApiError::new(ErrorCode::LobbyFull, self.to_string()),
            Error::Removed => ApiError::new(ErrorCode::RemovedFromMeeting, self.to_string()),
            Error::NotWaiting => ApiError::new(ErrorCode::NotFound, self.to_string()),
            Error::NotHost => ApiError::new(ErrorCode::Forbidden, self.to_string()),
            Error::CannotHost(_) => ApiError::new(ErrorCode::Conflict, self.to_string()),
            Error::AtCapacity => ApiError::unavailable(),
            Error::Store(source) => {
                tracing::error!(error = %source, cause = %common::error::cause_chain(source), "room store failed");
                ApiError::unavailable()
            }
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(error: Error) -> Self {
        error.api_error().into()
    }
}

impl From<RoomError> for tonic::Status {
    fn from(error: RoomError) -> Self {
        Error::from(error).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(status: &tonic::Status) -> ErrorCode {
        ApiError::from_status(status).code
    }

    #[test]
    fn each_error_reaches_gc_with_its_code() {
        let cases = [
            (
                Error::BadRequest("malformed user id"),
                ErrorCode::BadRequest,
            ),
            (Error::RoomNotAssigned, ErrorCode::RoomNotAssigned),
            (Error::MeetingFull, ErrorCode::MeetingFull),
            (Error::NotWaiting, ErrorCode::NotFound),
            (Error::AtCapacity, ErrorCode::ServiceUnavailable),
            (
                RoomError::Timeout(std::time::Duration::from_secs(2)).into(),
                ErrorCode::ServiceUnavailable,
            ),
        ];
        for (error, code) in cases {
            let status = tonic::Status::from(error);
            assert_eq!(code_of(&status), code);
        }
        let status = tonic::Status::from(Error::BadRequest("malformed user id"));
        assert_eq!(status.message(), "malformed user id");
    }

    #[test]
    fn store_errors_map_to_what_gc_acts_on_and_failures_say_nothing_of_redis() {
        assert_eq!(
            code_of(&RoomError::NotFound.into()),
            ErrorCode::RoomNotAssigned
        );
        let fenced = RoomError::Fenced {
            current: crate::room::FencingToken(9),
        };
        assert_eq!(code_of(&fenced.into()), ErrorCode::RoomNotAssigned);
        assert_eq!(
            code_of(&RoomError::InvalidInput("display name too long").into()),
            ErrorCode::BadRequest
        );
        let failed: tonic::Status =
            RoomError::UnexpectedReply("secret detail from redis".into()).into();
        assert_eq!(code_of(&failed), ErrorCode::ServiceUnavailable);
        assert!(!failed.message().contains("secret"));
    }
}
