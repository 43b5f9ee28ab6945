//! The one error of the domain's request rules.

use common::display_name::DisplayNameError;

/// Why a request is not acceptable. Every variant is a 400; the message is safe to show.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("display_name {0}")]
    DisplayName(#[from] DisplayNameError),
    #[error("max_participants must be between 2 and the organization limit")]
    MaxParticipantsTooSmall,
    #[error("max_participants must be between 2 and {max} for this organization")]
    MaxParticipantsAboveOrgLimit { max: i32 },
    #[error("lock_room and waiting_room_enabled are the same setting and must agree")]
    ConflictingWaitingRoom,
    #[error("allow_guests needs require_auth false: people without an account cannot sign in")]
    GuestsNeedNoAuth,
    #[error("the Idempotency-Key header must be 1 to 255 visible ASCII characters")]
    InvalidIdempotencyKey,
    #[error("scheduled_start_time must not be in the past")]
    ScheduledStartInPast,
    #[error("scheduled_start_time must be within a year from now")]
    ScheduledStartTooFar,
    #[error("page must be between 1 and 10000")]
    InvalidPage,
    #[error("page_size must be between 1 and 100")]
    InvalidPageSize,
    #[error("role must be host, guest or any")]
    InvalidHistoryRole,
}
