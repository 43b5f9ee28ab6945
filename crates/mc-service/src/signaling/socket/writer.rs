//! The writer task: it owns the socket's sink, greets the client by where the user stands
//! (`welcome`, `lobby.waiting`, or a refusal), then drains the socket's queue: room events,
//! filtered and acted on ([`step`]), and the socket's own messages.
//!
//! Its states: waiting in the lobby (unseated) or seated. A waiting user becomes seated on
//! their `admitted` event; both end on the events that end where they stand (rejected, left,
//! the meeting ended), on a close order from outside, or when the client is gone.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use futures::SinkExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Sink;
use super::end::{End, Waiting, closed_metric, sent};
use crate::room::Role;
use crate::room::events::{RoomEvent, RoomMessage};
use crate::room::{OwnedRoom, ParticipantStatus, RoomError, RoomState};
use crate::signaling::Signaling;
use crate::signaling::hub::{Outbound, SocketShared};
use crate::signaling::messages::{ServerMessage, Welcome};
use crate::signaling::protocol::close;

/// How long writing one message may take before the client counts as gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the close frame may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// The close reason of a socket whose user the host removed.
const REMOVED: &str = "removed from the meeting";

/// Where a socket stands, as far as the events it is sent are concerned.
#[derive(Clone, Copy, Debug)]
pub(super) struct Standing<'a> {
    pub(super) user_id: &'a str,
    pub(super) seated: bool,
    pub(super) is_host: bool,
    /// Events up to this number are already in what the client was sent.
    pub(super) min_seq: u64,
}

/// What the writer does with one room event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// Not for this client, or already in what it was sent.
    Skip,
    /// Passed on as it is.
    Forward,
    /// Passed on, then the connection ends.
    ForwardThenClose(End),
    /// The user lost their seat: the socket is no longer seated, passes the event on, and
    /// ends.
    UnseatThenClose(End),
    /// The connection ends without passing the event on.
    Close(End),
    /// The waiting user was admitted: read the room, send `admitted`, take the seat.
    TakeSeat,
}

/// Decides what a socket standing as `me` does with `event`.
pub(super) fn step(event: &RoomEvent, me: Standing<'_>) -> Step {
    if event.seq <= me.min_seq {
        return Step::Skip;
    }
    let about_me = event.subject == me.user_id;
    match &event.message {
        RoomMessage::MeetingEnded { .. } => {
            return Step::ForwardThenClose(End::settled(close::NORMAL, "the meeting has ended"));
        }
        RoomMessage::Admitted if about_me && !me.seated => return Step::TakeSeat,
        RoomMessage::Rejected { .. } if about_me && !me.seated => {
            return Step::ForwardThenClose(End::settled(close::NOT_A_MEMBER, "not admitted"));
        }
        // Taken out by the host: told, then gone, seated or waiting (never a reconnect grace).
        RoomMessage::Removed { .. } if about_me && me.seated => {
            return Step::UnseatThenClose(End::settled(close::NOT_A_MEMBER, REMOVED));
        }
        RoomMessage::Removed { .. } if about_me => {
            return Step::ForwardThenClose(End::settled(close::NOT_A_MEMBER, REMOVED));
        }
        RoomMessage::LobbyLeft { .. } if about_me && !me.seated => {
            return Step::Close(End::settled(close::NORMAL, "left the lobby"));
        }
        RoomMessage::ParticipantLeft { .. } if about_me && me.seated => {
            return Step::UnseatThenClose(End::settled(close::NORMAL, "left the meeting"));
        }
        // The client knows it is seated (its `welcome`) and what it changed itself; a new role
        // (a change of host) it hears of.
        RoomMessage::ParticipantJoined { .. }
        | RoomMessage::ParticipantUpdated { role: None, .. }
            if about_me =>
        {
            return Step::Skip;
        }
        _ => {}
    }
    let audience = event.audience;
    let mine = (audience.seated && me.seated)
        || (audience.waiting && !me.seated)
        || (audience.host && me.is_host)
        || (audience.subject && about_me);
    if mine { Step::Forward } else { Step::Skip }
}

pub(super) struct Writer {
    sig: Arc<Signaling>,
    owned: OwnedRoom,
    shared: Arc<SocketShared>,
    sink: Sink,
    /// Events up to this number are already in what the client was sent.
    min_seq: u64,
    /// Seated (else waiting); a seat that ends in trouble waits for a reconnect.
    pub(super) seated: bool,
    /// Whether the user hosts the room, as of the last event (or snapshot) this writer took:
    /// the room's word, not the token's (DESIGN §12).
    is_host: bool,
    waiting: Waiting,
}

impl Writer {
    pub(super) fn new(
        sig: Arc<Signaling>,
        owned: OwnedRoom,
        shared: Arc<SocketShared>,
        sink: Sink,
    ) -> Self {
        Self {
            sig,
            owned,
            shared,
            sink,
            min_seq: 0,
            seated: false,
            is_host: false,
            waiting: Waiting::default(),
        }
    }

    /// Reads the room and greets the client by where the user stands.
    pub(super) async fn start(&mut self) -> Result<(), End> {
        let state = self.snapshot().await?;
        let user = self.shared.user_id.clone();
        // Removed by the host: their meeting token opens nothing any more, at once.
        if let Some(reason) = state.removed.get(&user) {
            self.send(&ServerMessage::removed(reason)).await?;
            return Err(End::settled(close::NOT_A_MEMBER, REMOVED));
        }
        if let Some(reason) = state.rejected.get(&user) {
            self.send(&ServerMessage::rejected(reason)).await?;
            return Err(End::settled(close::NOT_A_MEMBER, "not admitted"));
        }
        if let Some(seat) = state.participants.iter().find(|p| p.user_id == user) {
            let first_after_admission =
                seat.from_lobby && seat.status == ParticipantStatus::Admitted;
            if first_after_admission {
                self.send(&ServerMessage::admitted()).await?;
            }
            return self.take_seat(state).await;
        }
        if state.lobby.iter().any(|entry| entry.user_id == user) {
            self.waiting.set(true);
            self.send(&ServerMessage::lobby_waiting()).await?;
            // Nobody hosts (DESIGN §12): nobody can let them in; said once at the start, as
            // the event said it to the lobby when it happened.
            if state.host_id.is_empty() {
                self.send(&ServerMessage::Room(RoomMessage::LobbyNoHost))
                    .await?;
            }
            return Ok(());
        }
        Err(End::settled(
            close::NOT_A_MEMBER,
            "not a participant of this meeting",
        ))
    }

    async fn snapshot(&mut self) -> Result<RoomState, End> {
        match self.sig.store.state(&self.owned.code).await {
            Ok(state) => {
                self.min_seq = state.seq;
                self.is_host = state.host_id == self.shared.user_id;
                self.shared.note_host(self.is_host, state.seq);
                Ok(state)
            }
            Err(RoomError::NotFound) => {
                Err(End::settled(close::MEETING_GONE, "the meeting has ended"))
            }
            Err(error) => Err(self.sig.room_failure(&self.owned, error)),
        }
    }

    /// Marks the seat as this connection's (with what was set while waiting) and sends
    /// `welcome`.
    async fn take_seat(&mut self, state: RoomState) -> Result<(), End> {
        self.seated = true;
        self.shared.seated.store(true, Ordering::Release);
        self.waiting.set(false);
        let mut update = std::mem::take(
            &mut *self
                .shared
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        update.status = Some(ParticipantStatus::Connected);
        update.connection = Some(Some(self.shared.connection.clone()));
        let seat = match self
            .sig
            .store
            .set_participant_fields(&self.owned, &self.shared.user_id, &update, None)
            .await
        {
            Ok(Some(seat)) => seat,
            Ok(None) => {
                return Err(End::settled(
                    close::NOT_A_MEMBER,
                    "not a participant of this meeting",
                ));
            }
            Err(error) => return Err(self.sig.room_failure(&self.owned, error)),
        };
        let welcome = Welcome::new(&self.owned.code, &state, &seat, self.is_host);
        self.send(&ServerMessage::welcome(welcome)).await
    }

    /// Writes one message of this socket's own.
    async fn send(&mut self, message: &ServerMessage) -> Result<(), End> {
        sent(message.type_name());
        self.write_text(message.to_text()).await
    }

    /// Passes one room event on, as the script encoded it.
    async fn forward(&mut self, event: &RoomEvent) -> Result<(), End> {
        sent(event.message.type_name());
        self.write_text(event.json.clone()).await
    }

    async fn write_text(&mut self, text: Utf8Bytes) -> Result<(), End> {
        if write(&mut self.sink, Message::Text(text), self.shared.closed()).await {
            Ok(())
        } else {
            Err(self.ordered_or_dropped())
        }
    }

    fn ordered_or_dropped(&self) -> End {
        self.shared
            .close_order()
            .map_or_else(End::dropped, End::ordered)
    }

    /// Drains the queue until the connection ends, and says how.
    pub(super) async fn run(
        &mut self,
        mut queue: mpsc::Receiver<Outbound>,
        reader_done: &CancellationToken,
        stopping: &CancellationToken,
    ) -> End {
        loop {
            let item = tokio::select! {
                biased;
                () = self.shared.closed().cancelled() => return self.ordered_or_dropped(),
                () = reader_done.cancelled() => return End::dropped(),
                () = stopping.cancelled() => return End::settled(close::GOING_AWAY, "server stopping"),
                item = queue.recv() => item,
            };
            let result = match item {
                None => return End::dropped(),
                // Counted when queued (`SocketShared::send`).
                Some(Outbound::Text(text)) => self.write_text(text).await,
                Some(Outbound::Event(event)) => self.event(&event).await,
            };
            if let Err(end) = result {
                return end;
            }
        }
    }

    /// Passes on (or acts on) one room event.
    async fn event(&mut self, event: &RoomEvent) -> Result<(), End> {
        if event.seq > self.min_seq {
            match &event.message {
                RoomMessage::ParticipantUpdated {
                    user_id,
                    role: Some(role),
                    ..
                } if *user_id == self.shared.user_id => self.is_host = *role == Role::Host,
                RoomMessage::HostGranted { .. } if event.subject == self.shared.user_id => {
                    self.is_host = true;
                }
                _ => {}
            }
        }
        let me = Standing {
            user_id: &self.shared.user_id,
            seated: self.seated,
            is_host: self.is_host,
            min_seq: self.min_seq,
        };
        match step(event, me) {
            Step::Skip => Ok(()),
            Step::Forward => self.forward(event).await,
            Step::ForwardThenClose(end) => {
                self.forward(event).await?;
                Err(end)
            }
            Step::UnseatThenClose(end) => {
                self.seated = false;
                self.forward(event).await?;
                Err(end)
            }
            Step::Close(end) => Err(end),
            Step::TakeSeat => {
                let state = self.snapshot().await?;
                self.send(&ServerMessage::admitted()).await?;
                self.take_seat(state).await
            }
        }
    }

    /// Sends the close frame of `end` (or, when the client closed first, flushes the reply to
    /// its close frame).
    pub(super) async fn close(&mut self, end: End) {
        match end.code {
            Some(code) => write_close(&mut self.sink, code, end.reason).await,
            None => {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.sink.close()).await;
            }
        }
    }
}

async fn write(sink: &mut Sink, message: Message, abort: &CancellationToken) -> bool {
    tokio::select! {
        biased;
        () = abort.cancelled() => false,
        result = tokio::time::timeout(WRITE_TIMEOUT, sink.send(message)) => matches!(result, Ok(Ok(()))),
    }
}

/// Sends a close frame with `code` and `reason`, then closes the sink.
pub(super) async fn write_close(sink: &mut Sink, code: u16, reason: &'static str) {
    closed_metric(code);
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
}

#[cfg(test)]
mod tests {
    use common::settings::MeetingSettings;

    use super::*;
    use crate::room::Role;
    use crate::room::events::Audience;

    const ME: &str = "me";

    fn event(seq: u64, audience: &str, subject: &str, message: RoomMessage) -> RoomEvent {
        RoomEvent {
            seq,
            audience: Audience {
                seated: audience.contains('r'),
                waiting: audience.contains('l'),
                host: audience.contains('h'),
                subject: audience.contains('s'),
            },
            subject: subject.to_owned(),
            json: serde_json::to_string(&message).unwrap().into(),
            message,
        }
    }

    fn waiting() -> Standing<'static> {
        Standing {
            user_id: ME,
            seated: false,
            is_host: false,
            min_seq: 10,
        }
    }

    fn seated() -> Standing<'static> {
        Standing {
            seated: true,
            ..waiting()
        }
    }

    fn host() -> Standing<'static> {
        Standing {
            is_host: true,
            ..seated()
        }
    }

    fn left(user: &str) -> RoomMessage {
        RoomMessage::ParticipantLeft {
            user_id: user.into(),
            reason: "left".into(),
        }
    }

    fn lobby_left(user: &str) -> RoomMessage {
        RoomMessage::LobbyLeft {
            user_id: user.into(),
            reason: "admitted".into(),
        }
    }

    fn joined(user: &str) -> RoomMessage {
        RoomMessage::ParticipantJoined {
            user_id: user.into(),
            display_name: "x".into(),
            role: Role::Guest,
            guest: false,
        }
    }

    #[test]
    fn events_already_in_the_snapshot_are_skipped() {
        let ended = RoomMessage::MeetingEnded {
            reason: "ended".into(),
        };
        assert_eq!(
            step(&event(10, "rl", "", ended.clone()), seated()),
            Step::Skip
        );
        assert_eq!(
            step(&event(11, "rl", "", ended), seated()),
            Step::ForwardThenClose(End::settled(close::NORMAL, "the meeting has ended"))
        );
    }

    #[test]
    fn a_waiting_user_is_seated_rejected_or_let_go_by_their_own_events() {
        assert_eq!(
            step(&event(11, "s", ME, RoomMessage::Admitted), waiting()),
            Step::TakeSeat
        );
        let rejected = RoomMessage::Rejected {
            reason: "rejected".into(),
        };
        assert_eq!(
            step(&event(11, "s", ME, rejected), waiting()),
            Step::ForwardThenClose(End::settled(close::NOT_A_MEMBER, "not admitted"))
        );
        assert_eq!(
            step(&event(11, "hs", ME, lobby_left(ME)), waiting()),
            Step::Close(End::settled(close::NORMAL, "left the lobby"))
        );
        // Someone else's are not theirs to act on, nor to see.
        assert_eq!(
            step(&event(11, "s", "other", RoomMessage::Admitted), waiting()),
            Step::Skip
        );
        assert_eq!(
            step(&event(11, "h", "other", lobby_left("other")), waiting()),
            Step::Skip
        );
    }

    #[test]
    fn a_seated_user_ends_on_losing_their_seat_and_skips_news_of_themselves() {
        assert_eq!(
            step(&event(11, "rs", ME, left(ME)), seated()),
            Step::UnseatThenClose(End::settled(close::NORMAL, "left the meeting"))
        );
        assert_eq!(step(&event(11, "r", ME, joined(ME)), seated()), Step::Skip);
        let updated = RoomMessage::ParticipantUpdated {
            user_id: ME.into(),
            status: Some(ParticipantStatus::Connected),
            language: None,
            hardware_ready: None,
            role: None,
        };
        assert_eq!(step(&event(11, "r", ME, updated), seated()), Step::Skip);
        // An `admitted` of a seated user (a second socket) changes nothing.
        assert_eq!(
            step(&event(11, "s", ME, RoomMessage::Admitted), seated()),
            Step::Forward
        );
    }

    #[test]
    fn room_events_go_by_audience() {
        let speaker = RoomMessage::ActiveSpeaker {
            user_id: Some("other".into()),
            previous_user_id: None,
        };
        assert_eq!(
            step(&event(11, "r", "", speaker.clone()), seated()),
            Step::Forward
        );
        assert_eq!(step(&event(11, "r", "", speaker), waiting()), Step::Skip);
        let settings = RoomMessage::SettingsUpdated {
            settings: MeetingSettings::default(),
            max_participants: 3,
        };
        assert_eq!(
            step(&event(11, "rl", "", settings.clone()), waiting()),
            Step::Forward
        );
        assert_eq!(
            step(&event(11, "rl", "", settings), seated()),
            Step::Forward
        );
        let waits = RoomMessage::LobbyJoined {
            user_id: "other".into(),
            display_name: "O".into(),
            guest: false,
        };
        assert_eq!(
            step(&event(11, "h", "other", waits.clone()), host()),
            Step::Forward
        );
        assert_eq!(step(&event(11, "h", "other", waits), seated()), Step::Skip);
        assert_eq!(
            step(&event(11, "rs", "other", left("other")), seated()),
            Step::Forward
        );
        assert_eq!(
            step(&event(11, "r", "other", joined("other")), seated()),
            Step::Forward
        );
    }
}
