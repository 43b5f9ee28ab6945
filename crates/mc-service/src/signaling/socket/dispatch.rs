//! What a well-formed client message does: `ping` is answered, levels feed the room's
//! detector, `hardware` and `set_language` change the seat (or wait for it), `leave` leaves.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use common::error::ErrorCode;
use common::meeting_code::MeetingCode;

use super::end::End;
use crate::room::{HardwareReady, LeaveOutcome, OwnedRoom, ParticipantUpdate, Presence, RoomError};
use crate::signaling::Signaling;
use crate::signaling::hub::{LocalRoom, SocketShared};
use crate::signaling::messages::ServerMessage;
use crate::signaling::protocol::{ClientMessage, close};
use crate::signaling::reporter::Report;

/// Handles one well-formed client message; `Some` when it ends the connection.
pub(super) async fn handle(
    message: ClientMessage,
    received: Instant,
    sig: &Arc<Signaling>,
    room: &Arc<LocalRoom>,
    owned: &OwnedRoom,
    shared: &Arc<SocketShared>,
) -> Option<End> {
    let seated = shared.seated.load(Ordering::Acquire);
    let result = match message {
        ClientMessage::Ping => {
            shared.send(&ServerMessage::pong());
            Ok(())
        }
        ClientMessage::Auth { .. } => {
            shared.send(&ServerMessage::error(
                ErrorCode::BadRequest,
                "already authenticated",
            ));
            Ok(())
        }
        // Levels sent while waiting drive the client's own level meter only.
        ClientMessage::AudioLevel { level_dbfs } if seated => {
            sig.hub
                .observe_level(room, owned, &shared.user_id, level_dbfs, received)
                .await
        }
        ClientMessage::AudioLevel { .. } => Ok(()),
        ClientMessage::Hardware {
            audio_ready,
            video_ready,
        } => {
            let update = ParticipantUpdate {
                hardware_ready: Some(Some(HardwareReady {
                    audio_ready,
                    video_ready,
                })),
                ..ParticipantUpdate::default()
            };
            update_fields(sig, owned, shared, update, seated).await
        }
        ClientMessage::SetLanguage { language } => {
            let update = ParticipantUpdate {
                language: Some(Some(language)),
                ..ParticipantUpdate::default()
            };
            update_fields(sig, owned, shared, update, seated).await
        }
        ClientMessage::Leave => return Some(leave(sig, owned, shared).await),
    };
    match result {
        Ok(()) => None,
        Err(error) => Some(sig.room_failure(owned, error)),
    }
}

/// Changes the seat's fields, or, while the user waits, keeps them for when they are seated.
async fn update_fields(
    sig: &Signaling,
    owned: &OwnedRoom,
    shared: &SocketShared,
    update: ParticipantUpdate,
    seated: bool,
) -> Result<(), RoomError> {
    if !seated {
        shared
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .merge(update);
        return Ok(());
    }
    sig.store
        .set_participant_fields(owned, &shared.user_id, &update, Some(&shared.connection))
        .await
        .map(|_| ())
}

/// The `leave` message: as REST leave, then GC is told.
async fn leave(sig: &Signaling, owned: &OwnedRoom, shared: &SocketShared) -> End {
    match sig.store.leave(owned, &shared.user_id, "left").await {
        Ok(
            outcome @ LeaveOutcome::Left {
                was: Presence::Participant,
                ..
            },
        ) => {
            sig.report_left(&owned.code, &shared.user_id, "left", &outcome);
            End::settled(close::NORMAL, "left the meeting")
        }
        Ok(LeaveOutcome::Left {
            was: Presence::Lobby,
            ..
        }) => End::settled(close::NORMAL, "left the lobby"),
        Ok(LeaveOutcome::NotPresent { .. }) => End::settled(close::NORMAL, "not in the meeting"),
        Err(error) => sig.room_failure(owned, error),
    }
}

impl Signaling {
    /// Sends GC what a leave from a seat decided here means for its records: the seat ended
    /// (with its number, so GC closes that visit and no later one), and, when nobody is left,
    /// the room is empty as of the room's last seat.
    pub(crate) fn report_left(
        &self,
        code: &MeetingCode,
        user_id: &str,
        reason: &'static str,
        outcome: &LeaveOutcome,
    ) {
        let LeaveOutcome::Left {
            seat,
            remaining_participants,
            last_seat,
            host_change,
            ..
        } = outcome
        else {
            return;
        };
        self.reporter.send(Report::participant_left(
            code,
            user_id,
            reason,
            seat.as_deref(),
            *last_seat,
            host_change.clone(),
        ));
        if *remaining_participants == 0 {
            self.reporter.send(Report::MeetingEmpty {
                code: code.clone(),
                since: chrono::Utc::now(),
                last_seat: *last_seat,
            });
        }
    }
}
