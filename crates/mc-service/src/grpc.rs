//! MC's gRPC surface: `MeetingControllerService`, called by GC. Thin adapters over the room
//! store, behind the service-token layer of `common` (caller of type `global-controller` with
//! scope `internal:mc`). Outcomes the caller acts on travel as error codes
//! (proto/convene/internal/v1/meeting_controller.proto): `ROOM_NOT_ASSIGNED` when this MC does
//! not hold the room with the caller's token, `MEETING_FULL`, `NOT_FOUND` for a user who is not
//! waiting. Every refusal is a [`crate::error::Error`], made a status in one place.

use axum::Router;
use chrono::Utc;
use common::grpc::refusal;
use common::grpc::server::ServiceAuthLayer;
use common::jwks::JwksVerifier;
use common::jwt::{scope, service_type};
use common::meeting_code::MeetingCode;
use common::proto::internal::v1::join_outcome;
use common::proto::internal::v1::meeting_controller_service_server::{
    MeetingControllerService, MeetingControllerServiceServer,
};
use common::proto::internal::v1::{
    AdmissionStatus, AdmitAllRequest, AdmitAllResponse, AdmitParticipantRequest,
    AdmitParticipantResponse, AssignMeetingRequest, AssignMeetingResponse, EndMeetingRequest,
    EndMeetingResponse, GetRoomStateRequest, GetRoomStateResponse, HostChange, JoinOutcome,
    JoinParticipantRequest, JoinParticipantResponse, JoinParticipantsRequest,
    JoinParticipantsResponse, LeaveParticipantRequest, LeaveParticipantResponse, LeftFrom,
    LobbyEntry as ProtoLobbyEntry, MeetingSettings as ProtoSettings, ParticipantRole,
    RejectParticipantRequest, RejectParticipantResponse, Seat, TransferHostRequest,
    TransferHostResponse, UpdateSettingsRequest, UpdateSettingsResponse,
};
use common::settings::MeetingSettings;
use tonic::{Request, Response, Status};
use tower::Layer;
use uuid::Uuid;

use crate::error::Error;
use crate::held::HeldRooms;
use crate::room::{
    Admission, AdmitOutcome, AssignOutcome, FencingToken, LeaveOutcome, MaxGuestsWaiting,
    OwnedRoom, Participant, Presence, RejectOutcome, RemoveOutcome, Role, RoomError, RoomMeta,
    RoomStore, TransferOutcome,
};
use crate::signaling::Signaling;

/// The router of MC's gRPC listener.
pub fn router(
    store: RoomStore,
    controller_id: String,
    held: HeldRooms,
    verifier: JwksVerifier,
    signaling: std::sync::Arc<Signaling>,
) -> Router {
    let auth = ServiceAuthLayer::new(
        verifier,
        service_type::GLOBAL_CONTROLLER,
        scope::INTERNAL_MC,
    );
    let service = MeetingControllerServiceServer::new(MeetingController {
        store,
        controller_id,
        held,
        signaling,
    });
    tonic::service::Routes::new(auth.layer(service)).into_axum_router()
}

struct MeetingController {
    store: RoomStore,
    controller_id: String,
    held: HeldRooms,
    signaling: std::sync::Arc<Signaling>,
}

/// Counts seats given, by the operation that gave them.
fn admitted(via: &'static str, count: usize) {
    if count > 0 {
        metrics::counter!("mc_admissions_total", "via" => via).increment(count as u64);
    }
}

fn code(raw: &str) -> Result<MeetingCode, Error> {
    MeetingCode::parse(raw).ok_or(Error::BadRequest("malformed meeting code"))
}

fn user(raw: &str) -> Result<String, Error> {
    Uuid::parse_str(raw)
        .map(|id| id.to_string())
        .map_err(|_| Error::BadRequest("malformed user id"))
}

/// A user id that may be absent (empty).
fn optional_user(raw: &str) -> Result<String, Error> {
    if raw.is_empty() {
        Ok(String::new())
    } else {
        user(raw)
    }
}

fn owned(raw_code: &str, token: u64) -> Result<OwnedRoom, Error> {
    Ok(OwnedRoom::new(code(raw_code)?, FencingToken(token)))
}

/// A reason as the room tells it: a short lower-case identifier, `default` when none is given.
fn reason<'a>(raw: &'a str, default: &'static str) -> Result<&'a str, Error> {
    if raw.is_empty() {
        return Ok(default);
    }
    let plain = raw.len() <= crate::room::MAX_REASON_BYTES
        && raw.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if plain {
        Ok(raw)
    } else {
        Err(Error::BadRequest(
            "a reason is a short lower-case identifier",
        ))
    }
}

fn settings(s: Option<ProtoSettings>) -> Result<MeetingSettings, Error> {
    s.map(MeetingSettings::from)
        .ok_or(Error::BadRequest("settings are required"))
}

/// A role as the proto names it.
pub fn proto_role(role: Role) -> ParticipantRole {
    match role {
        Role::Host => ParticipantRole::Host,
        Role::Guest => ParticipantRole::Guest,
    }
}

/// A change of host as the proto carries it.
pub fn proto_host_change(change: &crate::room::HostChange) -> HostChange {
    HostChange {
        host_id: change.host.clone().unwrap_or_default(),
        host_seq: change.seq,
    }
}

/// A seat that ended, as GC records it.
pub fn proto_seat(seat: &Participant) -> Seat {
    Seat {
        number: seat.seat,
        role: proto_role(seat.role) as i32,
        joined_at: Some(prost_types::Timestamp {
            seconds: seat.joined_at.timestamp(),
            nanos: i32::try_from(seat.joined_at.timestamp_subsec_nanos()).unwrap_or(0),
        }),
    }
}

fn admission(a: Admission) -> i32 {
    match a {
        Admission::Admitted => AdmissionStatus::Admitted as i32,
        Admission::Waiting | Admission::Full | Admission::LobbyFull | Admission::Removed => {
            AdmissionStatus::Waiting as i32
        }
    }
}

pub use common::proto::MAX_JOINS_PER_CALL;

impl MeetingController {
    /// One join, of JoinParticipant or of JoinParticipants.
    async fn join_one(
        &self,
        store: &RoomStore,
        r: JoinParticipantRequest,
    ) -> Result<JoinParticipantResponse, Status> {
        let room = owned(&r.meeting_code, r.fencing_token)?;
        let role = match ParticipantRole::try_from(r.role) {
            Ok(ParticipantRole::Host) => Role::Host,
            Ok(ParticipantRole::Guest) => Role::Guest,
            _ => return Err(Error::BadRequest("the role must be host or guest").into()),
        };
        let guest = match (r.guest, role) {
            (false, _) => None,
            (true, Role::Guest) => Some(MaxGuestsWaiting(r.max_guests_waiting)),
            (true, Role::Host) => {
                return Err(Error::BadRequest("a guest's role must be guest").into());
            }
        };
        let outcome = store
            .join(
                &room,
                &user(&r.user_id)?,
                &r.display_name,
                role,
                guest,
                r.member && guest.is_none(),
                Utc::now(),
            )
            .await?;
        match outcome.admission {
            Admission::Full => return Err(Error::MeetingFull.into()),
            Admission::LobbyFull => return Err(Error::LobbyFull.into()),
            Admission::Removed => return Err(Error::Removed.into()),
            Admission::Admitted | Admission::Waiting => {}
        }
        if outcome.admission == Admission::Admitted && !outcome.already_present {
            admitted("join", 1);
        }
        Ok(JoinParticipantResponse {
            status: admission(outcome.admission),
            participant_count: outcome.participant_count,
            seat: outcome.seat,
            lobby_count: Some(outcome.lobby_count),
            role: proto_role(outcome.role) as i32,
            host_change: outcome.host_change.as_ref().map(proto_host_change),
            host: Some(proto_host_change(&outcome.host)),
        })
    }
}

#[tonic::async_trait]
impl MeetingControllerService for MeetingController {
    async fn assign_meeting(
        &self,
        request: Request<AssignMeetingRequest>,
    ) -> Result<Response<AssignMeetingResponse>, Status> {
        let r = request.into_inner();
        let code = code(&r.meeting_code)?;
        if r.fencing_token == 0 {
            return Err(Error::BadRequest("the fencing token must be positive").into());
        }
        let meta = RoomMeta {
            meeting_id: Uuid::parse_str(&r.meeting_id)
                .map_err(|_| Error::BadRequest("malformed meeting id"))?
                .to_string(),
            host_id: optional_user(&r.host_id)?,
            creator_id: optional_user(&r.creator_id)?,
            host_seq: r.host_seq,
            max_participants: r.max_participants,
            settings: settings(r.settings)?,
            settings_version: r.settings_version,
        };
        if self.held.is_full(&code) {
            return Err(Error::AtCapacity.into());
        }
        let outcome = self
            .store
            .assign(
                &code,
                &meta,
                FencingToken(r.fencing_token),
                &self.controller_id,
            )
            .await?;
        self.held.hold(&code, FencingToken(r.fencing_token));
        if let AssignOutcome::TookOver { .. } = outcome {
            // The seats that had sockets on the previous owner wait for them here: work this
            // call starts and does not wait for, on the shell's tracker so a stop waits for it.
            let owned = OwnedRoom::new(code.clone(), FencingToken(r.fencing_token));
            let signaling = std::sync::Arc::clone(&self.signaling);
            let tasks = signaling.shell.tracker().clone();
            tasks.spawn(async move { signaling.took_over(owned).await });
        }
        // A room just created holds nobody: a round trip to Redis fewer on every first join.
        let participant_count = match outcome {
            AssignOutcome::Created => 0,
            _ => self.store.state(&code).await?.participant_count(),
        };
        tracing::info!(meeting_code = %code, fencing_token = r.fencing_token, ?outcome, "room assigned");
        Ok(Response::new(AssignMeetingResponse {
            accepted: true,
            participant_count,
        }))
    }

    async fn join_participant(
        &self,
        request: Request<JoinParticipantRequest>,
    ) -> Result<Response<JoinParticipantResponse>, Status> {
        self.join_one(&self.store, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn join_participants(
        &self,
        request: Request<JoinParticipantsRequest>,
    ) -> Result<Response<JoinParticipantsResponse>, Status> {
        let joins = request.into_inner().joins;
        if joins.len() > MAX_JOINS_PER_CALL {
            return Err(Error::BadRequest("too many joins in one call").into());
        }
        // Each join runs as JoinParticipant would, all at once, on one Redis connection (their
        // scripts go to Redis together); each is answered on its own.
        let store = match self.store.on_one_connection().await {
            Ok(store) => store,
            Err(error) => return Err(error.into()),
        };
        let outcomes =
            futures::future::join_all(joins.into_iter().map(|join| self.join_one(&store, join)))
                .await
                .into_iter()
                .map(|outcome| JoinOutcome {
                    outcome: Some(match outcome {
                        Ok(joined) => join_outcome::Outcome::Joined(joined),
                        Err(status) => join_outcome::Outcome::Refused(refusal(&status)),
                    }),
                })
                .collect();
        Ok(Response::new(JoinParticipantsResponse { outcomes }))
    }

    async fn admit_participant(
        &self,
        request: Request<AdmitParticipantRequest>,
    ) -> Result<Response<AdmitParticipantResponse>, Status> {
        let r = request.into_inner();
        let room = owned(&r.meeting_code, r.fencing_token)?;
        match self
            .store
            .admit(&room, &user(&r.user_id)?, Utc::now())
            .await?
        {
            AdmitOutcome::Admitted {
                already_admitted,
                seat,
                ..
            } => {
                admitted("admit", usize::from(!already_admitted));
                Ok(Response::new(AdmitParticipantResponse {
                    status: AdmissionStatus::Admitted as i32,
                    seat,
                }))
            }
            AdmitOutcome::Full => Err(Error::MeetingFull.into()),
            AdmitOutcome::NotInLobby => Err(Error::NotWaiting.into()),
        }
    }

    async fn reject_participant(
        &self,
        request: Request<RejectParticipantRequest>,
    ) -> Result<Response<RejectParticipantResponse>, Status> {
        let r = request.into_inner();
        let room = owned(&r.meeting_code, r.fencing_token)?;
        match self
            .store
            .reject(&room, &user(&r.user_id)?, reason(&r.reason, "rejected")?)
            .await?
        {
            RejectOutcome::Rejected => Ok(Response::new(RejectParticipantResponse {})),
            RejectOutcome::NotInLobby => Err(Error::NotWaiting.into()),
        }
    }

    async fn admit_all(
        &self,
        request: Request<AdmitAllRequest>,
    ) -> Result<Response<AdmitAllResponse>, Status> {
        let r = request.into_inner();
        let room = owned(&r.meeting_code, r.fencing_token)?;
        let outcome = self.store.admit_all(&room, Utc::now()).await?;
        admitted("admit_all", outcome.admitted.len());
        Ok(Response::new(AdmitAllResponse {
            admitted: outcome.admitted,
            still_waiting: outcome.still_waiting,
            admitted_seats: outcome.seats,
        }))
    }

    async fn leave_participant(
        &self,
        request: Request<LeaveParticipantRequest>,
    ) -> Result<Response<LeaveParticipantResponse>, Status> {
        let r = request.into_inner();
        let room = owned(&r.meeting_code, r.fencing_token)?;
        let user_id = user(&r.user_id)?;
        let reason = reason(&r.reason, "left")?;
        let outcome = if r.remove {
            match self.store.remove(&room, &user_id, reason).await? {
                RemoveOutcome::Removed(outcome) => outcome,
                RemoveOutcome::IsHost => {
                    return Err(Error::CannotHost(
                        "the host cannot be removed; hand the meeting over first",
                    )
                    .into());
                }
            }
        } else {
            self.store.leave(&room, &user_id, reason).await?
        };
        let last_seat = outcome.last_seat();
        let mut host_change = None;
        let (left_from, remaining, seat) = match outcome {
            LeaveOutcome::Left {
                was: Presence::Participant,
                remaining_participants,
                seat,
                host_change: change,
                ..
            } => {
                host_change = change.as_ref().map(proto_host_change);
                (
                    LeftFrom::Room,
                    remaining_participants,
                    seat.as_deref().map(proto_seat),
                )
            }
            LeaveOutcome::Left {
                was: Presence::Lobby,
                remaining_participants,
                ..
            } => (LeftFrom::Lobby, remaining_participants, None),
            LeaveOutcome::NotPresent {
                participant_count, ..
            } => (LeftFrom::Nowhere, participant_count, None),
        };
        Ok(Response::new(LeaveParticipantResponse {
            left_from: left_from as i32,
            remaining_participants: remaining,
            seat,
            last_seat,
            host_change,
        }))
    }

    async fn transfer_host(
        &self,
        request: Request<TransferHostRequest>,
    ) -> Result<Response<TransferHostResponse>, Status> {
        let r = request.into_inner();
        let room = owned(&r.meeting_code, r.fencing_token)?;
        let from = user(&r.from_user_id)?;
        let to = user(&r.to_user_id)?;
        match self.store.transfer_host(&room, &from, &to).await? {
            TransferOutcome::Transferred { seq } => Ok(Response::new(TransferHostResponse {
                host_change: Some(HostChange {
                    host_id: to,
                    host_seq: seq,
                }),
                transferred: true,
            })),
            // Answered, not failed: GC records the room's host if it missed a change.
            TransferOutcome::NotHost { host } => Ok(Response::new(TransferHostResponse {
                host_change: Some(proto_host_change(&host)),
                transferred: false,
            })),
            TransferOutcome::NotSeated => {
                Err(Error::CannotHost("the new host must be seated in the meeting").into())
            }
            TransferOutcome::NotMember => Err(Error::CannotHost(
                "only a member of the meeting's organization can host it",
            )
            .into()),
        }
    }

    async fn update_settings(
        &self,
        request: Request<UpdateSettingsRequest>,
    ) -> Result<Response<UpdateSettingsResponse>, Status> {
        let r = request.into_inner();
        let room = owned(&r.meeting_code, r.fencing_token)?;
        let outcome = self
            .store
            .update_settings(
                &room,
                &settings(r.settings)?,
                r.max_participants,
                r.settings_version,
                Utc::now(),
            )
            .await?;
        admitted("settings", outcome.moves.admitted.len());
        Ok(Response::new(UpdateSettingsResponse {
            admitted: outcome.moves.admitted,
            admitted_seats: outcome.moves.seats,
            settings_version: outcome.settings_version,
        }))
    }

    async fn end_meeting(
        &self,
        request: Request<EndMeetingRequest>,
    ) -> Result<Response<EndMeetingResponse>, Status> {
        let r = request.into_inner();
        let room = owned(&r.meeting_code, r.fencing_token)?;
        match self
            .store
            .end_room(&room, reason(&r.reason, "ended")?)
            .await
        {
            // Ended now, or gone already: either way there is no room any more.
            Ok(_) | Err(RoomError::NotFound) => {
                self.held.forget(&room.code);
                Ok(Response::new(EndMeetingResponse {}))
            }
            Err(error) => Err(error.into()),
        }
    }

    async fn get_room_state(
        &self,
        request: Request<GetRoomStateRequest>,
    ) -> Result<Response<GetRoomStateResponse>, Status> {
        let r = request.into_inner();
        let state = self.store.state(&code(&r.meeting_code)?).await?;
        Ok(Response::new(GetRoomStateResponse {
            participant_count: state.participant_count(),
            lobby: state
                .lobby
                .into_iter()
                .map(|entry| ProtoLobbyEntry {
                    user_id: entry.user_id,
                    display_name: entry.display_name,
                    guest: entry.guest,
                    waiting_since: Some(prost_types::Timestamp {
                        seconds: entry.waiting_since.timestamp(),
                        nanos: i32::try_from(entry.waiting_since.timestamp_subsec_nanos())
                            .unwrap_or(0),
                    }),
                })
                .collect(),
            active_speaker_user_id: state.active_speaker.unwrap_or_default(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use common::proto::internal::v1::MeetingSettings as ProtoSettings;
    use common::shell::{Shell, ShellHandle, ShutdownTimings};

    use super::*;
    use crate::config::SignalingArgs;
    use crate::room::subscriber;
    use crate::room::{
        KeyPrefix, OwnedRoom, ParticipantStatus, ParticipantUpdate, RedisPool, RoomStoreConfig,
    };
    use crate::signaling::hub::Hub;
    use crate::signaling::reporter;

    /// A store on the Redis of `REDIS_URL`, under keys of this test's own.
    fn store() -> RoomStore {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let pool = RedisPool::single(&url, None).unwrap();
        let prefix = KeyPrefix::parse(&format!("unit:{}:", Uuid::new_v4().simple())).unwrap();
        RoomStore::new(
            pool,
            RoomStoreConfig {
                key_prefix: prefix.clone(),
                ttl: Duration::from_secs(600),
            },
        )
        .unwrap()
    }

    /// MC's gRPC service over `store`, its tasks under `shell`.
    fn controller(store: &RoomStore, shell: ShellHandle) -> MeetingController {
        let settings = SignalingArgs::default().settings();
        let (subscriber, _task) = subscriber::subscriber(Vec::new(), KeyPrefix::default());
        let hub = Arc::new(Hub::new(
            store.clone(),
            subscriber,
            settings.speaker,
            settings.outbound_queue,
        ));
        let held = HeldRooms::default();
        let signaling = Signaling::new(
            hub,
            store.clone(),
            held.clone(),
            JwksVerifier::from_jwks(&Default::default(), "convene-ac", Duration::ZERO),
            reporter::reporter().0,
            settings,
            "new-mc".into(),
            shell,
        );
        MeetingController {
            store: store.clone(),
            controller_id: "new-mc".into(),
            held,
            signaling: Arc::new(signaling),
        }
    }

    /// Seats in the test's room: enough that marking them all takes far longer than a stop
    /// that waits for nothing.
    const SEATS: usize = 100;

    fn user(n: usize) -> String {
        format!("00000000-0000-4000-8000-{n:012}")
    }

    fn open_room() -> MeetingSettings {
        MeetingSettings {
            waiting_room_enabled: false,
            ..MeetingSettings::default()
        }
    }

    fn assignment(code: &MeetingCode, fencing_token: u64) -> AssignMeetingRequest {
        AssignMeetingRequest {
            meeting_id: "00000000-0000-4000-8000-0000000000aa".into(),
            meeting_code: code.to_string(),
            host_id: user(0),
            max_participants: SEATS as u32,
            settings: Some(ProtoSettings::from(open_room())),
            fencing_token,
            settings_version: 0,
            creator_id: String::new(),
            host_seq: 0,
        }
    }

    /// A controller that takes a room over marks the seats whose sockets were open on the
    /// previous owner as reconnecting, in a task the assignment does not wait for: a stop waits
    /// for that task, so no seat is left marked as connected to a controller that is gone.
    #[tokio::test]
    async fn a_stop_waits_for_the_takeover_of_the_seats_of_a_room() {
        let store = store();
        let code = MeetingCode::generate(&ring::rand::SystemRandom::new()).unwrap();
        let meta = RoomMeta {
            meeting_id: "00000000-0000-4000-8000-0000000000aa".into(),
            host_id: user(0),
            creator_id: String::new(),
            host_seq: 0,
            max_participants: SEATS as u32,
            settings: open_room(),
            settings_version: 0,
        };
        // The room on its first owner, every seat taken by someone whose socket is open there.
        let first = OwnedRoom::new(code.clone(), FencingToken(1));
        store
            .assign(&code, &meta, FencingToken(1), "old-mc")
            .await
            .unwrap();
        for n in 0..SEATS {
            let role = if n == 0 { Role::Host } else { Role::Guest };
            store
                .join(&first, &user(n), "Someone", role, None, true, Utc::now())
                .await
                .unwrap();
            let connected = ParticipantUpdate {
                connection: Some(Some(format!("old-socket-{n}"))),
                ..ParticipantUpdate::default()
            };
            store
                .set_participant_fields(&first, &user(n), &connected, None)
                .await
                .unwrap();
        }
        let shell = Shell::new(
            "test",
            ShutdownTimings {
                readiness_grace: Duration::ZERO,
                ..ShutdownTimings::default()
            },
        );
        let controller = controller(&store, shell.handle());

        controller
            .assign_meeting(Request::new(assignment(&code, 2)))
            .await
            .unwrap();
        shell.run(async {}).await;

        let state = store.state(&code).await.unwrap();
        assert_eq!(state.participants.len(), SEATS);
        let reconnecting = state
            .participants
            .iter()
            .filter(|seat| seat.status == ParticipantStatus::Reconnecting)
            .count();
        assert_eq!(
            reconnecting, SEATS,
            "seats still marked connected after the stop"
        );
    }
}
