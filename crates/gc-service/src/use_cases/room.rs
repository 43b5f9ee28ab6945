//! A meeting's live room on its meeting controller: finding (or choosing) the owner, and
//! calling it.
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
use common::proto::internal::v1::{AssignMeetingRequest, MeetingSettings as ProtoSettings};
use sqlx::PgPool;

use crate::clients::mc::{Joins, McClient, MeetingControllers};
use crate::config::LifecycleSettings;
use crate::db::admissions::Admissions;
use crate::db::controllers::{self, Assignment};
use crate::db::lookups::Lookups;
use crate::domain::budget::Budget;
use crate::domain::meeting::Meeting;
use crate::error::Error;
use crate::use_cases::detached::Detached;
use common::settings::MeetingSettings;
use tokio::sync::Mutex;
use uuid::Uuid;

/// What the use cases need to reach rooms.
#[derive(Clone)]
pub struct Rooms {
    pub pool: PgPool,
    pub controllers: MeetingControllers,
    pub settings: LifecycleSettings,
    pub assigning: AssignmentLocks,
    /// Where admissions are recorded, many to a transaction ([`crate::db::admissions`]).
    pub admissions: Admissions,
    /// Where joins read their meeting, many to a statement ([`crate::db::lookups`]).
    pub lookups: Lookups,
    /// The limit on the tasks that run on after their request ([`super::detached`]).
    pub detached: Detached,
    /// How often one user may join or leave one meeting (per replica).
    pub comings_and_goings: Arc<Budget<(Uuid, Uuid)>>,
}

/// (user, meeting) pairs whose joins and leaves one replica remembers at most (a few MiB).
pub const JOIN_LEAVE_KEYS: usize = 100_000;

/// The budget of joins and leaves of `settings` (by default 20 at once, then one every three
/// seconds: a page that reloads or a client that reconnects never meets it; a script cycling
/// join and leave does at once).
pub fn join_leave_budget(settings: &LifecycleSettings) -> Arc<Budget<(Uuid, Uuid)>> {
    let interval = Duration::from_millis(settings.join_leave_interval_ms.max(1));
    Arc::new(Budget::new(
        settings.join_leave_burst,
        1.0 / interval.as_secs_f64(),
        JOIN_LEAVE_KEYS,
    ))
}

impl Rooms {
    /// Spends one of the caller's joins and leaves of the meeting, or refuses with 429
    /// `RATE_LIMITED` and the seconds until the next (`Retry-After`).
    pub fn come_or_go(&self, user_id: Uuid, meeting_id: Uuid) -> Result<(), Error> {
        self.comings_and_goings
            .take(&(user_id, meeting_id), Instant::now())
            .map_err(|wait| {
                crate::metrics::join_leave_limited();
                Error::Api(ApiError::rate_limited(wait.as_secs_f64().ceil() as u64))
            })
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
    pub client: McClient,
    /// The owner's join queue (`clients::mc`).
    pub joins: Joins,
    pub code: String,
    pub fencing_token: u64,
    /// The owner's WebSocket base URL.
    pub ws_url: String,
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

impl Rooms {
    /// Runs `call` on the meeting's room, assigning the meeting first when it has no healthy
    /// owner, and once more after ROOM_NOT_ASSIGNED (module documentation). Errors of the
    /// controller come back with their code (MEETING_FULL stays MEETING_FULL); an unreachable
    /// controller is a 503.
    pub async fn call<T, F, Fut>(&self, meeting: &Meeting, call: F) -> Result<T, Error>
    where
        F: Fn(Room) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        self.call_located(meeting, None, call).await
    }

    /// [`Rooms::call`] with the meeting's assignment (or its absence) read already, as
    /// [`crate::use_cases::visible_meeting_located`] does: one query fewer. `known` is `None`
    /// when it has not been read.
    pub async fn call_located<T, F, Fut>(
        &self,
        meeting: &Meeting,
        known: Option<Option<Assignment>>,
        call: F,
    ) -> Result<T, Error>
    where
        F: Fn(Room) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let room = self.ensure(meeting, false, known).await?;
        match call(room).await {
            Ok(value) => Ok(value),
            Err(status) => {
                let error = ApiError::from(status);
                if error.code != ErrorCode::RoomNotAssigned {
                    return Err(room_error_from(error));
                }
                // Common and harmless when many join a meeting at its very first moment: they
                // reach the controller before the assignment does.
                tracing::debug!("room not held by its controller, assigning it again");
                let room = self.ensure(meeting, true, None).await?;
                call(room).await.map_err(room_error)
            }
        }
    }

    /// [`Rooms::call`] only when the meeting has been given to a controller already (whose
    /// room then holds people: an unhealthy owner's room moves to another controller first);
    /// `None` (and no call) for a meeting nobody has joined yet. For changes that a room
    /// created later picks up from PostgreSQL anyway (settings), or that need someone already
    /// in the room (leave, the lobby).
    pub async fn call_if_assigned<T, F, Fut>(
        &self,
        meeting: &Meeting,
        call: F,
    ) -> Result<Option<T>, Error>
    where
        F: Fn(Room) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let timeout = self.settings.heartbeat_timeout_secs;
        let Some(assignment) = controllers::assignment(&self.pool, meeting.id, timeout).await?
        else {
            return Ok(None);
        };
        self.call_located(meeting, Some(Some(assignment)), call)
            .await
            .map(Some)
    }

    /// The room if the meeting has a healthy owner, without assigning it: for reads.
    pub async fn current(&self, meeting: &Meeting) -> Result<Option<Room>, Error> {
        let assignment =
            controllers::assignment(&self.pool, meeting.id, self.settings.heartbeat_timeout_secs)
                .await?;
        match assignment {
            Some(a) if a.healthy => Ok(Some(self.room(meeting, &a)?)),
            _ => Ok(None),
        }
    }

    /// The meeting's room on a healthy owner, assigning (and delivering the assignment) when
    /// needed; `redeliver` sends AssignMeeting to a current owner too. `known` is the
    /// assignment as the caller read it, if it did.
    async fn ensure(
        &self,
        meeting: &Meeting,
        redeliver: bool,
        known: Option<Option<Assignment>>,
    ) -> Result<Room, Error> {
        let current = match known {
            Some(known) => known,
            None => {
                let timeout = self.settings.heartbeat_timeout_secs;
                controllers::assignment(&self.pool, meeting.id, timeout).await?
            }
        };
        match current {
            Some(a) if a.healthy && !redeliver => self.room(meeting, &a),
            _ => self.settle(meeting, redeliver).await,
        }
    }

    /// Under the meeting's stripe: gives the meeting to a healthy controller when it has
    /// none, or delivers its assignment again when `redeliver` (its owner said it does not hold
    /// the room), and delivers it. A call that waited while another did this for the same
    /// meeting takes its result instead of doing it again.
    async fn settle(&self, meeting: &Meeting, redeliver: bool) -> Result<Room, Error> {
        let timeout = self.settings.heartbeat_timeout_secs;
        let mut last = self.assigning.stripe(meeting.id).lock().await;
        if let Some(settled) = last.as_ref()
            && settled.meeting_id == meeting.id
            && settled.at.elapsed() < ASSIGNED_JUST_NOW
        {
            return self.room(meeting, &settled.assignment);
        }
        // Read again under the lock: another replica may have assigned it meanwhile.
        let (assignment, delivery) = match controllers::assignment(&self.pool, meeting.id, timeout)
            .await?
        {
            Some(a) if a.healthy => (a, redeliver.then_some("redelivered")),
            stale => {
                let assigned = controllers::assign(&self.pool, meeting.id, stale.as_ref(), timeout)
                    .await?
                    .filter(|a| a.healthy)
                    .ok_or(Error::NoControllerAvailable)?;
                (assigned, Some("assigned"))
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
            host_id: meeting.host_id.to_string(),
            max_participants: u32::try_from(meeting.max_participants).unwrap_or(2),
            settings: Some(proto_settings(&meeting.settings)),
            fencing_token: room.fencing_token,
            settings_version: u64::try_from(meeting.settings_version).unwrap_or(0),
        };
        room.client
            .clone()
            .assign_meeting(request)
            .await
            .map(|_| ())
            .map_err(room_error)
    }
}

pub fn proto_settings(s: &MeetingSettings) -> ProtoSettings {
    (*s).into()
}

/// A controller's answer as GC's error: refusals keep their code; failures on its side or
/// on the way are 503s whose cause is logged.
pub fn room_error(status: tonic::Status) -> Error {
    room_error_from(ApiError::from(status))
}

fn room_error_from(error: ApiError) -> Error {
    if error.code.http_status().is_server_error() {
        Error::unavailable("a meeting controller failed", error)
    } else {
        Error::Api(error)
    }
}
