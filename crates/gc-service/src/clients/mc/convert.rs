//! The wire forms of the room's domain types (`domain::room`), each written once: roles,
//! admissions, seat numbers, user ids, times, settings, a join's and a leave's answers, and a
//! controller's error as GC's.

use chrono::{DateTime, Utc};
use common::error::ApiError;
use common::jwt::MeetingRole;
use common::proto::internal::v1::{
    AdmissionStatus, HostChange as ProtoHostChange, JoinParticipantResponse,
    LeaveParticipantResponse, LeftFrom, MeetingSettings as ProtoSettings, ParticipantRole,
};
use common::settings::MeetingSettings;
use uuid::Uuid;

use crate::domain::room::{Admission, EndedSeat, HostChange, RoomJoin, RoomLeave, Seated};
use crate::error::Error;

/// A role as the room's messages carry it.
pub fn role_to_proto(role: MeetingRole) -> ParticipantRole {
    match role {
        MeetingRole::Host => ParticipantRole::Host,
        MeetingRole::Guest => ParticipantRole::Guest,
    }
}

/// A role as a controller reports it; an unknown one is a guest (DESIGN §11: anyone who is not
/// the host).
pub fn role_from_proto(role: i32) -> MeetingRole {
    match ParticipantRole::try_from(role) {
        Ok(ParticipantRole::Host) => MeetingRole::Host,
        _ => MeetingRole::Guest,
    }
}

/// Where a join left the caller, as the room answered.
pub fn admission(status: i32) -> Result<Admission, Error> {
    match AdmissionStatus::try_from(status) {
        Ok(AdmissionStatus::Admitted) => Ok(Admission::Admitted),
        Ok(AdmissionStatus::Waiting) => Ok(Admission::Waiting),
        _ => Err(Error::Internal(
            "a meeting controller answered an unknown admission",
        )),
    }
}

/// A seat number as a controller reports it (`u64`), as PostgreSQL stores it.
pub fn seat_number(seat: u64) -> Result<i64, Error> {
    i64::try_from(seat).map_err(|_| Error::Internal("a meeting controller reported a huge seat"))
}

/// User ids as a controller reports them.
pub fn user_ids(ids: &[String]) -> Result<Vec<Uuid>, Error> {
    ids.iter()
        .map(|id| {
            Uuid::parse_str(id)
                .map_err(|_| Error::Internal("a meeting controller reported a malformed user id"))
        })
        .collect()
}

/// The guests a controller admitted from the lobby, with their seat numbers (`seats` in the
/// order of `admitted`).
pub fn guest_seats(admitted: &[String], seats: &[u64]) -> Result<Vec<Seated>, Error> {
    let admitted = user_ids(admitted)?;
    if admitted.len() != seats.len() {
        return Err(Error::Internal(
            "a meeting controller reported admissions without their seats",
        ));
    }
    admitted
        .into_iter()
        .zip(seats)
        .map(|(user_id, seat)| {
            Ok(Seated {
                user_id,
                role: MeetingRole::Guest,
                seat: seat_number(*seat)?,
            })
        })
        .collect()
}

/// A protobuf timestamp as a time, when it is one.
pub fn timestamp(t: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?)
}

/// The settings as the room's messages carry them.
pub fn settings(s: &MeetingSettings) -> ProtoSettings {
    (*s).into()
}

/// What the room's answer to a join says, with the signaling URL of the room's owner. An
/// answer without `lobby_count` (from a controller older than the field) leaves it unknown.
pub fn room_join(
    response: &JoinParticipantResponse,
    signaling_url: String,
) -> Result<RoomJoin, Error> {
    let admission = admission(response.status)?;
    let seat = match admission {
        Admission::Admitted => Some(seat_number(response.seat)?),
        Admission::Waiting => None,
    };
    Ok(RoomJoin {
        admission,
        seat,
        participant_count: response.participant_count,
        lobby_count: response.lobby_count,
        signaling_url,
        role: match ParticipantRole::try_from(response.role) {
            Ok(ParticipantRole::Host) => Some(MeetingRole::Host),
            Ok(ParticipantRole::Guest) => Some(MeetingRole::Guest),
            _ => None,
        },
        host_change: response.host_change.as_ref().map(host_change).transpose()?,
        host: response.host.as_ref().map(host_change).transpose()?,
    })
}

/// A change of host as a controller reports it.
pub fn host_change(change: &ProtoHostChange) -> Result<HostChange, Error> {
    let host = if change.host_id.is_empty() {
        None
    } else {
        Some(
            Uuid::parse_str(&change.host_id)
                .map_err(|_| Error::Internal("a meeting controller reported a malformed host"))?,
        )
    };
    Ok(HostChange {
        host,
        seq: seat_number(change.host_seq)?,
    })
}

/// What the room's answer to a leave says about the seat and the room.
pub fn room_leave(response: &LeaveParticipantResponse) -> Result<RoomLeave, Error> {
    let from_room = LeftFrom::try_from(response.left_from) == Ok(LeftFrom::Room);
    let seat = match (&response.seat, from_room) {
        (Some(seat), true) => Some(EndedSeat {
            seat: seat_number(seat.number)?,
            role: role_from_proto(seat.role),
            joined_at: seat.joined_at.as_ref().and_then(timestamp),
        }),
        _ => None,
    };
    Ok(RoomLeave {
        seat,
        last_seat: seat_number(response.last_seat)?,
        room_empty: response.remaining_participants == 0,
        host_change: response.host_change.as_ref().map(host_change).transpose()?,
    })
}

/// A controller's answer as GC's error: refusals keep their code; failures on its side or on
/// the way are 503s whose cause is logged.
pub fn room_error(status: tonic::Status) -> Error {
    room_error_from(ApiError::from(status))
}

pub(super) fn room_error_from(error: ApiError) -> Error {
    if error.code.http_status().is_server_error() {
        Error::unavailable("a meeting controller failed", error)
    } else {
        Error::Api(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_go_to_the_wire_and_back() {
        for role in [MeetingRole::Host, MeetingRole::Guest] {
            assert_eq!(role_from_proto(role_to_proto(role) as i32), role);
        }
        assert_eq!(role_from_proto(0), MeetingRole::Guest, "unspecified");
        assert_eq!(role_from_proto(99), MeetingRole::Guest, "unknown");
    }

    #[test]
    fn an_unknown_admission_is_an_error_not_a_guess() {
        assert_eq!(
            admission(AdmissionStatus::Admitted as i32).ok(),
            Some(Admission::Admitted)
        );
        assert_eq!(
            admission(AdmissionStatus::Waiting as i32).ok(),
            Some(Admission::Waiting)
        );
        assert!(admission(0).is_err());
        assert!(admission(42).is_err());
    }

    #[test]
    fn admissions_without_their_seats_are_refused() {
        let id = Uuid::from_u128(1).to_string();
        assert!(guest_seats(std::slice::from_ref(&id), &[]).is_err());
        assert!(guest_seats(&["not-a-uuid".to_owned()], &[1]).is_err());
        assert!(guest_seats(std::slice::from_ref(&id), &[u64::MAX]).is_err());
        let seats = guest_seats(&[id], &[7]).unwrap();
        assert_eq!(seats[0].seat, 7);
        assert_eq!(seats[0].role, MeetingRole::Guest);
    }

    #[test]
    fn a_join_carries_the_lobby_count_and_an_older_controllers_answer_leaves_it_unknown() {
        let mut response = JoinParticipantResponse {
            status: AdmissionStatus::Admitted as i32,
            participant_count: 2,
            seat: 9,
            lobby_count: Some(3),
            role: 0,
            host_change: None,
            host: None,
        };
        let joined = room_join(&response, "ws://mc/ws/v1/meetings/x".into()).unwrap();
        assert_eq!(
            (joined.seat, joined.participant_count, joined.lobby_count),
            (Some(9), 2, Some(3))
        );
        // An MC that does not know field 5 sends nothing for it.
        response.lobby_count = None;
        let older = room_join(&response, String::new()).unwrap();
        assert_eq!(older.lobby_count, None);
        response.status = AdmissionStatus::Waiting as i32;
        assert_eq!(room_join(&response, String::new()).unwrap().seat, None);
    }

    #[test]
    fn a_lobby_leave_ends_no_seat() {
        let response = LeaveParticipantResponse {
            left_from: LeftFrom::Lobby as i32,
            seat: Some(Default::default()),
            last_seat: 3,
            remaining_participants: 0,
            host_change: None,
        };
        let leave = room_leave(&response).unwrap();
        assert_eq!(leave.seat, None);
        assert_eq!(leave.last_seat, 3);
        assert!(leave.room_empty);
    }
}
