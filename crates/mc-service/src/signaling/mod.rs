//! The signaling WebSocket, `GET /ws/v1/meetings/{code}` (DESIGN §4), and what keeps it
//! honest: authentication as the first message, the events of the room, the reconnect grace,
//! the active speaker.
//!
//! How the parts fit (docs/signaling.md tells it at length):
//! - every change of a room is a Lua script (`room/`), which publishes the room's events in
//!   the same atomic step on the room's channel; each MC's room subscriber
//!   ([`crate::room::subscriber`]) follows the channels of the rooms it has sockets in and
//!   feeds the events, typed, to the [`hub`], which queues them for the sockets they concern.
//!   So a REST admit on GC, run by the owner MC over gRPC, reaches the waiting user's socket
//!   wherever it is connected;
//! - each socket ([`socket`]) is a reader task and a writer task around a bounded queue;
//! - what the server sends is one type, [`messages::ServerMessage`]; what a client sends is
//!   [`protocol::ClientMessage`]; [`schema`] publishes both as `docs/signaling.schema.json`;
//! - `audio_level` samples of seated users feed their room's [`crate::speaker`] detector in
//!   memory; a change is written (and broadcast) by the room script;
//! - what started here and GC must record (a `leave` message, a grace that ran out) goes to
//!   GC through the [`reporter`].
//!
//! Bounds (ARCHITECTURE.md lists them with the others): open sockets
//! ([`SignalingSettings::max_connections`], beyond it the upgrade is answered 503), frame and
//! message size ([`protocol::MAX_FRAME_BYTES`], 1009), time to authenticate (4401), idle time
//! without a frame, messages per second (4429), each socket's outbound queue (a socket that
//! fills it is closed, 1008), the subscriber's command queue and the report queue.

pub mod hub;
pub mod messages;
pub mod protocol;
pub mod reporter;
pub mod schema;
pub mod socket;

use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use common::error::ApiError;
use common::jwks::JwksVerifier;
use common::meeting_code::MeetingCode;
use common::shell::ShellHandle;
use tokio::sync::Semaphore;

use self::hub::{CloseOrder, Hub};
use self::protocol::close;
use self::reporter::Reporter;
use self::socket::End;
use crate::config::SignalingSettings;
use crate::held::HeldRooms;
use crate::room::{OwnedRoom, ParticipantStatus, ParticipantUpdate, RoomError, RoomStore};

/// Everything a socket needs.
pub struct Signaling {
    pub hub: Arc<Hub>,
    pub store: RoomStore,
    pub held: HeldRooms,
    pub verifier: JwksVerifier,
    pub reporter: Reporter,
    pub settings: SignalingSettings,
    pub controller_id: String,
    pub shell: ShellHandle,
    connections: Arc<Semaphore>,
}

impl Signaling {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        hub: Arc<Hub>,
        store: RoomStore,
        held: HeldRooms,
        verifier: JwksVerifier,
        reporter: Reporter,
        settings: SignalingSettings,
        controller_id: String,
        shell: ShellHandle,
    ) -> Self {
        let connections = Arc::new(Semaphore::new(settings.max_connections));
        Self {
            hub,
            store,
            held,
            verifier,
            reporter,
            settings,
            controller_id,
            shell,
            connections,
        }
    }

    /// The room as this MC owns it, or the close for a socket of a room it does not own: 4404
    /// when there is no room, 1001 when another MC owns it (the client joins again through GC
    /// and is sent there). A room this controller owns in Redis but does not hold in memory
    /// (it restarted) is held again.
    async fn owned_room(&self, code: &MeetingCode) -> Result<OwnedRoom, (u16, &'static str)> {
        if let Some(token) = self.held.token(code) {
            return Ok(OwnedRoom::new(code.clone(), token));
        }
        match self.store.state(code).await {
            Ok(state) if state.owner == self.controller_id => {
                self.held.hold(code, state.fencing_token);
                Ok(OwnedRoom::new(code.clone(), state.fencing_token))
            }
            Ok(_) => Err((close::GOING_AWAY, "the meeting moved: join again")),
            Err(RoomError::NotFound) => Err((close::MEETING_GONE, "the meeting has ended")),
            Err(error) => {
                tracing::warn!(meeting_code = %code, %error, "cannot read a room for a socket");
                Err((close::TRY_AGAIN_LATER, "try again later"))
            }
        }
    }

    /// What a failed room write means for the socket that made it: the room ended (4404),
    /// moved to another MC (1001 for every socket of the room here), or Redis failed (1013).
    fn room_failure(&self, owned: &OwnedRoom, error: RoomError) -> End {
        match error {
            RoomError::NotFound => End::settled(close::MEETING_GONE, "the meeting has ended"),
            RoomError::Fenced { current } => {
                tracing::info!(meeting_code = %owned.code, current = current.0, "room moved to another controller; closing its sockets");
                self.held.forget(&owned.code);
                let order = CloseOrder {
                    code: close::GOING_AWAY,
                    reason: "the meeting moved: join again",
                    grace: false,
                };
                self.hub.close_room(&owned.code, order);
                End::settled(order.code, order.reason)
            }
            error => {
                tracing::warn!(meeting_code = %owned.code, %error, "room write failed for a socket");
                End::troubled(close::TRY_AGAIN_LATER, "try again later")
            }
        }
    }

    /// Keeps `user_id`'s seat for the reconnect grace: marks it `reconnecting` (if the seat is
    /// still `connection`'s), then, unless another connection claimed it by then, unseats the
    /// user with reason `connection_lost` and tells GC. Abandoned when MC stops (the next owner
    /// runs the graces of the seats it finds).
    pub async fn start_grace(
        self: &Arc<Self>,
        owned: OwnedRoom,
        user_id: String,
        connection: String,
    ) {
        let update = ParticipantUpdate {
            status: Some(ParticipantStatus::Reconnecting),
            ..ParticipantUpdate::default()
        };
        match self
            .store
            .set_participant_fields(&owned, &user_id, &update, Some(&connection))
            .await
        {
            Ok(Some(_)) => {}
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(meeting_code = %owned.code, %error, "cannot mark a seat reconnecting");
                return;
            }
        }
        let sig = Arc::clone(self);
        let stopping = self.shell.stopping().clone();
        self.shell.tracker().spawn(async move {
            tokio::select! {
                () = stopping.cancelled() => return,
                () = tokio::time::sleep(sig.settings.reconnect_grace) => {}
            }
            sig.end_grace(&owned, &user_id, &connection).await;
        });
    }

    async fn end_grace(&self, owned: &OwnedRoom, user_id: &str, connection: &str) {
        match self
            .store
            .leave_if_connection(owned, user_id, "connection_lost", connection)
            .await
        {
            Ok(
                outcome @ crate::room::LeaveOutcome::Left {
                    was: crate::room::Presence::Participant,
                    ..
                },
            ) => {
                tracing::info!(meeting_code = %owned.code, "a seat's reconnect grace ran out");
                self.report_left(&owned.code, user_id, "connection_lost", &outcome);
            }
            Ok(_) | Err(RoomError::NotFound) => {}
            Err(error) => {
                tracing::warn!(meeting_code = %owned.code, %error, "cannot end a reconnect grace");
            }
        }
    }

    /// A room this MC just took over from another: every seat that had a socket there waits
    /// for its user to reconnect here, for the reconnect grace.
    pub async fn took_over(self: &Arc<Self>, owned: OwnedRoom) {
        let state = match self.store.state(&owned.code).await {
            Ok(state) => state,
            Err(error) => {
                tracing::warn!(meeting_code = %owned.code, %error, "cannot read a room taken over");
                return;
            }
        };
        for seat in state.participants {
            if let Some(connection) = seat.connection.clone() {
                let user_id = seat.user_id.clone();
                self.start_grace(owned.clone(), user_id, connection).await;
            }
        }
    }
}

/// `GET /ws/v1/meetings/{code}`: the upgrade, refused with an envelope when the code is
/// malformed (404), MC is stopping or at its socket limit (503).
pub async fn upgrade(
    State(sig): State<Arc<Signaling>>,
    Path(raw_code): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    let Some(code) = MeetingCode::parse(&raw_code) else {
        return ApiError::not_found().into_response();
    };
    if sig.shell.stopping().is_cancelled() {
        metrics::counter!("mc_ws_connections_refused_total", "reason" => "stopping").increment(1);
        return ApiError::unavailable().into_response();
    }
    let Ok(permit) = Arc::clone(&sig.connections).try_acquire_owned() else {
        metrics::counter!("mc_ws_connections_refused_total", "reason" => "limit").increment(1);
        return ApiError::unavailable().into_response();
    };
    let tracker = sig.shell.tracker().clone();
    ws.max_message_size(protocol::MAX_FRAME_BYTES)
        .max_frame_size(protocol::MAX_FRAME_BYTES)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(protocol::MAX_WRITE_BYTES)
        .on_upgrade(move |socket| {
            tracker.track_future(async move {
                socket::serve(socket, code, sig).await;
                drop(permit);
            })
        })
}
