//! A meeting's live room on its meeting controller: finding (or choosing) the owner, and the
//! room operations the use cases call, with domain outcomes (`domain::room`).
//!
//!
//! The first join of a meeting gives it to the least loaded healthy controller with spare
//! capacity and records that in `meeting_assignments` with fencing token 1; later calls reuse
//! the owner while its heartbeat is fresh. When the owner has gone silent, the next call that
//! needs the room gives it to another controller with the next fencing token; the new owner
//! loads the room from Redis, and the old one's writes are refused by the token.
//!
//! A controller that answers ROOM_NOT_ASSIGNED does not hold the room with GC's token: it
//! restarted, the assignment was recorded but never delivered, or another replica reassigned
//! the meeting meanwhile. GC reads the assignment again, delivers it, and tries once more.
//!
//! Within one GC, a meeting is assigned (or its assignment delivered again) by one call at a
//! time ([`AssignmentLocks`]): when hundreds join a meeting nobody is in yet, the first assigns
//! and delivers it while the others wait, then they use the owner it chose, without a write or
//! a delivery of their own; those that reached the owner before the delivery did wait for it
//! in the same way before trying again. Across GC replicas the compare-and-set in
//! `meeting_assignments` still decides.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::error::{ApiError, ErrorCode};
use common::jwt::MeetingRole;
use common::proto::internal::v1::{
    AdmitAllRequest, AdmitParticipantRequest, AssignMeetingRequest, EndMeetingRequest,
    GetRoomStateRequest, JoinParticipantRequest, LeaveParticipantRequest, RejectParticipantRequest,
    TransferHostRequest, TransferHostResponse, UpdateSettingsRequest,
};
use sqlx::PgPool;
use tokio::sync::Mutex;
use uuid::Uuid;

use super::breaker::{self, Breaker};
use super::{Joins, McClient, MeetingControllers, convert};
use crate::db::controllers::{self, Assignment};
use crate::domain::meeting::Meeting;
use crate::domain::room::{AdmittedAll, Counts, HostChange, RoomJoin, RoomLeave, Seated};
use crate::error::Error;

/// Statements a settle may run when each finds no healthy owner afterwards: a lost race for a
/// controller's last place is retried with another draw; no place anywhere answers 503.
const SETTLE_ATTEMPTS: u32 = 3;

/// Where a meeting's room is, as far as GC knows: its owner, read from
/// `meeting_assignments`; and GC's calls to it.
#[derive(Clone)]
pub struct Placement {
    pool: PgPool,
    controllers: MeetingControllers,
    /// How long an owner stays healthy without a heartbeat.
    heartbeat_timeout_secs: u32,
    assigning: AssignmentLocks,
}

/// What the caller knows of the meeting's assignment.
#[derive(Clone, Debug)]
pub enum Known {
    /// Nothing: the placement reads it.
    NotRead,
    /// Read: nobody holds the meeting.
    Unassigned,
    /// Read: this controller holds it (healthy or not).
    Assigned(Assignment),
}

impl From<Option<Assignment>> for Known {
    fn from(read: Option<Assignment>) -> Self {
        read.map_or(Known::Unassigned, Known::Assigned)
    }
}

impl Placement {
    pub fn new(pool: PgPool, controllers: MeetingControllers, heartbeat_timeout_secs: u32) -> Self {
        Self {
            pool,
            controllers,
            heartbeat_timeout_secs,
            assigning: AssignmentLocks::default(),
        }
    }
}

/// Stripes of locks under which this GC assigns meetings, one meeting at a time per stripe,
/// each remembering the last assignment it made (for the joins that waited for it).
#[derive(Clone)]
pub struct AssignmentLocks(Arc<[Mutex<Option<Assigned>>]>);

/// Stripes: meetings being assigned at the same moment rarely share one.
const ASSIGNMENT_STRIPES: usize = 64;
/// How long a waiter may take the assignment made while it waited, instead of reading it.
const ASSIGNED_JUST_NOW: Duration = Duration::from_secs(1);

struct Assigned {
    meeting_id: Uuid,
    assignment: Assignment,
    at: Instant,
}

impl Default for AssignmentLocks {
    fn default() -> Self {
        Self((0..ASSIGNMENT_STRIPES).map(|_| Mutex::new(None)).collect())
    }
}

impl AssignmentLocks {
    fn stripe(&self, meeting_id: Uuid) -> &Mutex<Option<Assigned>> {
        // Meeting ids are UUIDv7: their low bits are random.
        &self.0[(meeting_id.as_u128() % self.0.len() as u128) as usize]
    }
}

/// A meeting's room on its owner, ready to be called.
#[derive(Clone)]
pub struct Room {
    client: McClient,
    /// The owner's join queue.
    joins: Joins,
    code: String,
    fencing_token: u64,
    /// The owner's WebSocket base URL.
    ws_url: String,
    /// The owner's circuit breaker ([`super::breaker`]).
    breaker: Arc<Breaker>,
}

impl Room {
    /// The URL a participant's client connects its signaling WebSocket to.
    pub fn signaling_url(&self) -> String {
        format!(
            "{}/ws/v1/meetings/{}",
            self.ws_url.trim_end_matches('/'),
            self.code
        )
    }
}

impl Placement {
    /// Runs `call` on the meeting's room, assigning the meeting first when it has no healthy
    /// owner, and once more after ROOM_NOT_ASSIGNED (module documentation). Errors of the
    /// controller come back with their code (MEETING_FULL stays MEETING_FULL); an unreachable
    /// controller is a 503.
    /// `known` is the meeting's assignment when the caller has read it already, as
    /// [`crate::use_cases::visible_meeting_located`] does: one query fewer.
    async fn call<T, F, Fut>(&self, meeting: &Meeting, known: Known, call: F) -> Result<T, Error>
    where
        F: Fn(Room) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let room = self.ensure(meeting, None, known).await?;
        let sent = Instant::now();
        match room.attempt(&call).await? {
            Ok(value) => Ok(value),
            Err(status) => {
                let error = ApiError::from(status);
                if error.code != ErrorCode::RoomNotAssigned {
                    return Err(convert::room_error_from(error));
                }
                // Common and harmless when many join a meeting at its very first moment: they
                // reach the controller before the assignment does.
                tracing::debug!("room not held by its controller, assigning it again");
                let room = self.ensure(meeting, Some(sent), Known::NotRead).await?;
                room.attempt(&call).await?.map_err(convert::room_error)
            }
        }
    }

    /// [`Placement::call`] only when the meeting has been given to a controller already (whose
    /// room then holds people: an unhealthy owner's room moves to another controller first);
    /// `None` (and no call) for a meeting nobody has joined yet. For changes that a room
    /// created later picks up from PostgreSQL anyway (settings), or that need someone already
    /// in the room (leave, the lobby). `known` is the assignment when the caller read it with
    /// the meeting ([`crate::use_cases::visible_meeting_located`]): one round trip fewer.
    async fn call_if_assigned<T, F, Fut>(
        &self,
        meeting: &Meeting,
        known: Known,
        call: F,
    ) -> Result<Option<T>, Error>
    where
        F: Fn(Room) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let Some(assignment) = self.assignment(meeting, known).await? else {
            return Ok(None);
        };
        self.call(meeting, Known::Assigned(assignment), call)
            .await
            .map(Some)
    }

    /// The room if the meeting has a healthy owner, without assigning it: for reads.
    pub async fn current(&self, meeting: &Meeting) -> Result<Option<Room>, Error> {
        self.current_known(meeting, Known::NotRead).await
    }

    /// [`Placement::current`] with the assignment the caller read, if it did.
    pub async fn current_known(
        &self,
        meeting: &Meeting,
        known: Known,
    ) -> Result<Option<Room>, Error> {
        match self.assignment(meeting, known).await? {
            Some(a) if a.healthy => Ok(Some(self.room(meeting, &a)?)),
            _ => Ok(None),
        }
    }

    /// The meeting's assignment: as the caller read it, or read now when it did not.
    async fn assignment(
        &self,
        meeting: &Meeting,
        known: Known,
    ) -> Result<Option<Assignment>, Error> {
        Ok(match known {
            Known::Assigned(assignment) => Some(assignment),
            Known::Unassigned => None,
            Known::NotRead => {
                let timeout = self.heartbeat_timeout_secs;
                controllers::assignment(&self.pool, meeting.id, timeout).await?
            }
        })
    }

    /// The meeting's room on a healthy owner, assigning (and delivering the assignment) when
    /// needed; `redeliver` (the moment a call the owner refused with ROOM_NOT_ASSIGNED was
    /// sent) sends AssignMeeting to a current owner too. `known` is the assignment as the
    /// caller read it, if it did.
    async fn ensure(
        &self,
        meeting: &Meeting,
        redeliver: Option<Instant>,
        known: Known,
    ) -> Result<Room, Error> {
        match self.assignment(meeting, known).await? {
            Some(a) if a.healthy && redeliver.is_none() => self.room(meeting, &a),
            _ => self.settle(meeting, redeliver).await,
        }
    }

    /// Under the meeting's stripe: gives the meeting to a healthy controller when it has
    /// none, or delivers its assignment again when `redeliver` (its owner refused a call sent
    /// then: it does not hold the room), and delivers it. A call that waited while another did
    /// this for the same meeting takes its result instead of doing it again; after a refusal,
    /// only a delivery that ended after the refused call was sent (the call may have overtaken
    /// it). One that ended before it did not stop the refusal: the owner lost the room since
    /// (Redis restarted empty), and it is delivered again.
    async fn settle(&self, meeting: &Meeting, redeliver: Option<Instant>) -> Result<Room, Error> {
        let timeout = self.heartbeat_timeout_secs;
        let mut last = self.assigning.stripe(meeting.id).lock().await;
        if let Some(settled) = last.as_ref()
            && settled.meeting_id == meeting.id
            && settled.at.elapsed() < ASSIGNED_JUST_NOW
            && redeliver.is_none_or(|sent| settled.at > sent)
        {
            return self.room(meeting, &settled.assignment);
        }
        // Read again under the lock (another replica may have assigned it meanwhile), and
        // assigned when it has no healthy owner, in one statement.
        let mut attempts = 0;
        let (assignment, delivery) = loop {
            attempts += 1;
            match controllers::settle(&self.pool, meeting.id, timeout).await? {
                controllers::Settled::Kept(a) => break (a, redeliver.map(|_| "redelivered")),
                controllers::Settled::Assigned(a) => break (a, Some("assigned")),
                controllers::Settled::Lost => {
                    match controllers::assignment(&self.pool, meeting.id, timeout).await? {
                        Some(a) if a.healthy => break (a, Some("assigned")),
                        // No healthy owner: no controller had room, or the one picked was
                        // filled by racing statements meanwhile (the statement checks its
                        // capacity again under the counter's lock); another draw may find one.
                        _ if attempts < SETTLE_ATTEMPTS => continue,
                        _ => return Err(Error::NoControllerAvailable),
                    }
                }
            }
        };
        let room = self.room(meeting, &assignment)?;
        if let Some(delivery) = delivery {
            self.deliver(meeting, &room).await?;
            tracing::info!(
                meeting_id = %meeting.id,
                controller_id = %assignment.controller_id,
                fencing_token = assignment.fencing_token,
                delivery,
                "meeting assignment delivered"
            );
            crate::metrics::meeting_assignment_delivered(delivery);
        }
        *last = Some(Assigned {
            meeting_id: meeting.id,
            assignment,
            at: Instant::now(),
        });
        Ok(room)
    }

    fn room(&self, meeting: &Meeting, assignment: &Assignment) -> Result<Room, Error> {
        let controller = self.controllers.controller(&assignment.grpc_addr)?;
        Ok(Room {
            client: controller.client,
            joins: controller.joins,
            breaker: controller.breaker,
            code: meeting.code.to_string(),
            fencing_token: u64::try_from(assignment.fencing_token)
                .map_err(|_| Error::Internal("a fencing token is negative"))?,
            ws_url: assignment.ws_url.clone(),
        })
    }

    /// Sends the owner the assignment, with the meeting's settings as PostgreSQL holds them
    /// now: read after the assignment was recorded, so a PATCH that committed before and found
    /// no room to tell (it read the assignment before this one existed) is in them. A PATCH
    /// that committed later sees the assignment and tells the room itself; the room keeps the
    /// newer version of the two, whichever arrives first.
    async fn deliver(&self, meeting: &Meeting, room: &Room) -> Result<(), Error> {
        let current = crate::db::meetings::find_meeting(&self.pool, meeting.id).await?;
        let meeting = current.as_ref().unwrap_or(meeting);
        let request = AssignMeetingRequest {
            meeting_id: meeting.id.to_string(),
            meeting_code: room.code.clone(),
            host_id: meeting.host_id.map(|id| id.to_string()).unwrap_or_default(),
            max_participants: u32::try_from(meeting.max_participants).unwrap_or(2),
            settings: Some(convert::settings(&meeting.settings)),
            fencing_token: room.fencing_token,
            settings_version: u64::try_from(meeting.settings_version).unwrap_or(0),
            creator_id: meeting.creator_id.to_string(),
            host_seq: u64::try_from(meeting.host_seq).unwrap_or(0),
        };
        room.attempt(&|mut room: Room| {
            let request = request.clone();
            async move { room.client.assign_meeting(request).await.map(|_| ()) }
        })
        .await?
        .map_err(convert::room_error)
    }

    /// Seats `user_id` in the meeting's room, or puts them in its lobby (through the owner's
    /// join queue), assigning the meeting first when nobody holds it. `guest_cap`: the joiner
    /// is a guest (DESIGN §12), who always waits, and the lobby holds at most this many guests
    /// (409 `LOBBY_FULL` beyond). `member`: a member of the meeting's org, who may be made the
    /// host.
    #[allow(clippy::too_many_arguments)]
    pub async fn join(
        &self,
        meeting: &Meeting,
        known: Known,
        user_id: Uuid,
        role: MeetingRole,
        name: &str,
        guest_cap: Option<u32>,
        member: bool,
    ) -> Result<RoomJoin, Error> {
        let (response, room) = self
            .call(meeting, known, |room| {
                let request = JoinParticipantRequest {
                    meeting_code: room.code.clone(),
                    user_id: user_id.to_string(),
                    display_name: name.to_owned(),
                    role: convert::role_to_proto(role) as i32,
                    fencing_token: room.fencing_token,
                    guest: guest_cap.is_some(),
                    max_guests_waiting: guest_cap.unwrap_or(0),
                    member,
                };
                async move {
                    let response = room.joins.join(request).await?;
                    Ok((response, room))
                }
            })
            .await?;
        convert::room_join(&response, room.signaling_url())
    }

    /// Seats a waiting user; their seat's number. `None` when no controller holds the meeting
    /// (nobody waits in a room that does not exist).
    pub async fn admit(
        &self,
        meeting: &Meeting,
        known: Known,
        user_id: Uuid,
    ) -> Result<Option<i64>, Error> {
        let response = self
            .call_if_assigned(meeting, known, |mut room| async move {
                room.client
                    .admit_participant(AdmitParticipantRequest {
                        meeting_code: room.code.clone(),
                        user_id: user_id.to_string(),
                        fencing_token: room.fencing_token,
                    })
                    .await
                    .map(tonic::Response::into_inner)
            })
            .await?;
        response
            .map(|response| convert::seat_number(response.seat))
            .transpose()
    }

    /// Turns a waiting user away, telling them `reason`; `None` when no controller holds the
    /// meeting.
    pub async fn reject(
        &self,
        meeting: &Meeting,
        known: Known,
        user_id: Uuid,
        reason: &str,
    ) -> Result<Option<()>, Error> {
        self.call_if_assigned(meeting, known, |mut room| async move {
            room.client
                .reject_participant(RejectParticipantRequest {
                    meeting_code: room.code.clone(),
                    user_id: user_id.to_string(),
                    reason: reason.to_owned(),
                    fencing_token: room.fencing_token,
                })
                .await
                .map(|_| ())
        })
        .await
    }

    /// Seats everyone waiting, longest waiting first, while seats remain (nobody for a meeting
    /// no controller holds).
    pub async fn admit_all(&self, meeting: &Meeting, known: Known) -> Result<AdmittedAll, Error> {
        let response = self
            .call_if_assigned(meeting, known, |mut room| async move {
                room.client
                    .admit_all(AdmitAllRequest {
                        meeting_code: room.code.clone(),
                        fencing_token: room.fencing_token,
                    })
                    .await
                    .map(tonic::Response::into_inner)
            })
            .await?;
        let Some(response) = response else {
            return Ok(AdmittedAll::default());
        };
        Ok(AdmittedAll {
            admitted: convert::guest_seats(&response.admitted, &response.admitted_seats)?,
            still_waiting: convert::user_ids(&response.still_waiting)?,
        })
    }

    /// Takes `user_id` out of the room or its lobby, telling the room `reason`; `None` when no
    /// controller holds the meeting.
    pub async fn leave(
        &self,
        meeting: &Meeting,
        known: Known,
        user_id: Uuid,
        reason: &str,
    ) -> Result<Option<RoomLeave>, Error> {
        self.leave_or_remove(meeting, known, user_id, reason, false)
            .await
    }

    /// The host takes `user_id` out, seated or waiting (DESIGN §12): told `removed`, refused by
    /// the room until the meeting ends. `None` when no controller holds the meeting.
    pub async fn remove(
        &self,
        meeting: &Meeting,
        known: Known,
        user_id: Uuid,
        reason: &str,
    ) -> Result<Option<RoomLeave>, Error> {
        self.leave_or_remove(meeting, known, user_id, reason, true)
            .await
    }

    async fn leave_or_remove(
        &self,
        meeting: &Meeting,
        known: Known,
        user_id: Uuid,
        reason: &str,
        remove: bool,
    ) -> Result<Option<RoomLeave>, Error> {
        let response = self
            .call_if_assigned(meeting, known, |mut room| async move {
                room.client
                    .leave_participant(LeaveParticipantRequest {
                        meeting_code: room.code.clone(),
                        user_id: user_id.to_string(),
                        reason: reason.to_owned(),
                        fencing_token: room.fencing_token,
                        remove,
                    })
                    .await
                    .map(tonic::Response::into_inner)
            })
            .await?;
        response.as_ref().map(convert::room_leave).transpose()
    }

    /// Hands the host role from `from` (the host PostgreSQL names) to `to` (DESIGN §12): the
    /// room's compare-and-set. `Ok(change)`: `to` hosts now; `Err(host)`: the room's host is
    /// not `from`, and this is who hosts. `None` when no controller holds the meeting (nobody
    /// is seated, so nobody can take the role).
    pub async fn transfer_host(
        &self,
        meeting: &Meeting,
        known: Known,
        from: Uuid,
        to: Uuid,
    ) -> Result<Option<Result<HostChange, HostChange>>, Error> {
        let response = self
            .call_if_assigned(meeting, known, |mut room| async move {
                room.client
                    .transfer_host(TransferHostRequest {
                        meeting_code: room.code.clone(),
                        from_user_id: from.to_string(),
                        to_user_id: to.to_string(),
                        fencing_token: room.fencing_token,
                    })
                    .await
                    .map(tonic::Response::into_inner)
            })
            .await?;
        match response {
            Some(TransferHostResponse {
                host_change: Some(change),
                transferred,
            }) => {
                let change = convert::host_change(&change)?;
                Ok(Some(if transferred { Ok(change) } else { Err(change) }))
            }
            Some(_) => Err(Error::Internal(
                "a meeting controller answered a hand-over without its change",
            )),
            None => Ok(None),
        }
    }

    /// Sends the room the settings of `meeting` with their version; the guests that seated
    /// (the waiting room turned off). `None` when no controller holds the meeting: the room
    /// created later reads its settings from PostgreSQL then.
    pub async fn update_settings(&self, meeting: &Meeting) -> Result<Option<Vec<Seated>>, Error> {
        let settings = meeting.settings;
        let max = u32::try_from(meeting.max_participants).unwrap_or(2);
        let version = u64::try_from(meeting.settings_version).unwrap_or(0);
        let response = self
            .call_if_assigned(meeting, Known::NotRead, |mut room| async move {
                room.client
                    .update_settings(UpdateSettingsRequest {
                        meeting_code: room.code.clone(),
                        settings: Some(convert::settings(&settings)),
                        max_participants: max,
                        fencing_token: room.fencing_token,
                        settings_version: version,
                    })
                    .await
                    .map(tonic::Response::into_inner)
            })
            .await?;
        response
            .map(|response| convert::guest_seats(&response.admitted, &response.admitted_seats))
            .transpose()
    }
}

impl Room {
    /// Runs `call` on this room unless the owner's breaker is open (then the 503 that says
    /// when to retry), and tells the breaker whether the owner answered.
    async fn attempt<T, F, Fut>(&self, call: &F) -> Result<Result<T, tonic::Status>, Error>
    where
        F: Fn(Room) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        self.breaker
            .admit(Instant::now())
            .map_err(|wait| Error::Api(breaker::refusal(wait)))?;
        let result = call(self.clone()).await;
        let reachable = result
            .as_ref()
            .err()
            .is_none_or(|s| !breaker::unreachable(s));
        if self.breaker.record(reachable, Instant::now()) {
            tracing::warn!(
                meeting_code = %self.code,
                open_for_secs = breaker::OPEN_FOR.as_secs(),
                "a meeting controller is not answering: its calls fail at once for a while"
            );
            crate::metrics::mc_breaker_opened();
        }
        Ok(result)
    }

    /// The room's counts, as its owner says now.
    pub async fn counts(self) -> Result<Counts, Error> {
        let state = self
            .attempt(&|mut room: Room| async move {
                room.client
                    .get_room_state(GetRoomStateRequest {
                        meeting_code: room.code.clone(),
                    })
                    .await
                    .map(tonic::Response::into_inner)
            })
            .await?
            .map_err(convert::room_error)?;
        Ok(Counts {
            participants: state.participant_count,
            lobby: u32::try_from(state.lobby.len()).unwrap_or(u32::MAX),
        })
    }

    /// Ends the room: its owner tells everyone `reason` and deletes its live state.
    pub async fn end(self, reason: &str) -> Result<(), Error> {
        self.attempt(&|mut room: Room| async move {
            room.client
                .end_meeting(EndMeetingRequest {
                    meeting_code: room.code.clone(),
                    reason: reason.to_owned(),
                    fencing_token: room.fencing_token,
                })
                .await
                .map(|_| ())
        })
        .await?
        .map_err(convert::room_error)
    }
}
