//! One signaling connection, from its first frame to its close: authentication, the welcome,
//! then a task pair (mini-redis / axum chat style): the reader handles what the client sends,
//! the writer owns the socket's sink and drains its bounded queue, so a slow client only ever
//! fills its own queue (and is dropped, 1008) and never slows its room.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use common::jwt::MeetingClaims;
use common::meeting_code::MeetingCode;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Signaling;
use super::events::{Kind, RoomEvent};
use super::hub::{CloseOrder, LocalRoom, Outbound, SocketShared};
use super::protocol::{self, ClientMessage, close};
use super::reporter::Report;
use crate::room::{
    LeaveOutcome, OwnedRoom, Participant, ParticipantStatus, ParticipantUpdate, Presence, Role,
    RoomError, RoomState,
};

type Sink = SplitSink<WebSocket, Message>;
type Stream = SplitStream<WebSocket>;

/// How long writing one message may take before the client counts as gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the close frame may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// How a connection ended, which decides what happens to the user's seat.
#[derive(Clone, Copy, Debug)]
pub(crate) struct End {
    /// The close frame to send; `None` when the client is gone already.
    code: Option<u16>,
    reason: &'static str,
    /// The user keeps their seat for the reconnect grace (a connection problem), rather than
    /// the close settling where they stand (they left, were rejected, the meeting ended).
    grace: bool,
}

impl End {
    pub(crate) fn settled(code: u16, reason: &'static str) -> Self {
        End {
            code: Some(code),
            reason,
            grace: false,
        }
    }

    /// Closed by the server for a problem of the connection: the seat waits for a reconnect.
    pub(crate) fn troubled(code: u16, reason: &'static str) -> Self {
        End {
            code: Some(code),
            reason,
            grace: true,
        }
    }

    fn dropped() -> Self {
        End {
            code: None,
            reason: "",
            grace: true,
        }
    }

    fn ordered(order: CloseOrder) -> Self {
        End {
            code: Some(order.code),
            reason: order.reason,
            grace: order.grace,
        }
    }
}

/// Counts the socket as open while it lives.
struct OpenGauge;

impl OpenGauge {
    fn new() -> Self {
        metrics::gauge!("mc_ws_connections_open").increment(1.0);
        Self
    }
}

impl Drop for OpenGauge {
    fn drop(&mut self) {
        metrics::gauge!("mc_ws_connections_open").decrement(1.0);
    }
}

/// Counts the socket as waiting in a lobby while it does.
struct Waiting(bool);

impl Waiting {
    fn set(&mut self, waiting: bool) {
        if waiting != self.0 {
            let gauge = metrics::gauge!("mc_lobby_waiting_sockets");
            if waiting {
                gauge.increment(1.0);
            } else {
                gauge.decrement(1.0);
            }
            self.0 = waiting;
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.set(false);
    }
}

fn closed_metric(code: u16) {
    metrics::counter!("mc_ws_closes_total", "code" => code.to_string()).increment(1);
}

fn sent(kind: &'static str) {
    metrics::counter!("mc_ws_messages_sent_total", "type" => kind).increment(1);
}

async fn write(sink: &mut Sink, message: Message, abort: &CancellationToken) -> bool {
    tokio::select! {
        biased;
        () = abort.cancelled() => false,
        result = tokio::time::timeout(WRITE_TIMEOUT, sink.send(message)) => matches!(result, Ok(Ok(()))),
    }
}

async fn write_text(
    sink: &mut Sink,
    text: impl Into<Utf8Bytes>,
    kind: &'static str,
    abort: &CancellationToken,
) -> bool {
    sent(kind);
    write(sink, Message::Text(text.into()), abort).await
}

async fn write_close(sink: &mut Sink, code: u16, reason: &'static str) {
    closed_metric(code);
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
}

/// Serves one upgraded socket of `code` until it closes.
pub async fn serve(socket: WebSocket, code: MeetingCode, sig: Arc<Signaling>) {
    let _open = OpenGauge::new();
    let (mut sink, mut stream) = socket.split();
    let stopping = sig.shell.stopping().clone();

    let claims = match authenticate(&mut stream, &sig, &code, &stopping).await {
        Ok(claims) => claims,
        Err(Some((code, reason))) => return write_close(&mut sink, code, reason).await,
        Err(None) => return,
    };
    let user_id = claims.sub.to_string();
    let is_host = claims.role == common::jwt::MeetingRole::Host;

    let owned = match sig.owned_room(&code).await {
        Ok(owned) => owned,
        Err((code, reason)) => return write_close(&mut sink, code, reason).await,
    };
    let registration = match sig.hub.register(&code, &user_id, is_host).await {
        Ok(registration) => registration,
        Err(error) => {
            tracing::warn!(meeting_code = %code, %error, "cannot follow the room's events");
            return write_close(&mut sink, close::TRY_AGAIN_LATER, "try again later").await;
        }
    };
    let shared = Arc::clone(&registration.shared);
    let room = Arc::clone(&registration.room);

    let mut writer = Writer {
        sig: Arc::clone(&sig),
        owned: owned.clone(),
        shared: Arc::clone(&shared),
        sink,
        min_seq: 0,
        seated: false,
        waiting: Waiting(false),
        seat: None,
    };
    let reader_done = CancellationToken::new();
    let end = match writer.start().await {
        Err(end) => end,
        Ok(()) => {
            let reader = tokio::spawn(read(
                stream,
                Arc::clone(&sig),
                Arc::clone(&room),
                owned.clone(),
                Arc::clone(&shared),
                reader_done.clone(),
            ));
            let writer_end = writer
                .run(registration.queue, &reader_done, &stopping)
                .await;
            // The writer stopped (or saw the reader stop): the reader stops too.
            shared.closed().cancel();
            let reader_end = reader.await.ok().flatten();
            reader_end.unwrap_or(writer_end)
        }
    };
    if let Some(close_code) = end.code {
        write_close(&mut writer.sink, close_code, end.reason).await;
    } else {
        // Flushes the reply to a client's close frame, if it sent one.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, writer.sink.close()).await;
    }
    sig.hub.unregister(&room, &shared).await;
    if end.grace && writer.seated && !stopping.is_cancelled() {
        sig.start_grace(owned, user_id, shared.connection.clone())
            .await;
    }
}

/// Waits for `auth` within the configured time; the close to send when it fails (`None`: the
/// client is gone already).
async fn authenticate(
    stream: &mut Stream,
    sig: &Signaling,
    code: &MeetingCode,
    stopping: &CancellationToken,
) -> Result<MeetingClaims, Option<(u16, &'static str)>> {
    let deadline = tokio::time::Instant::now() + sig.settings.auth_timeout;
    loop {
        let frame = tokio::select! {
            () = stopping.cancelled() => return Err(Some((close::GOING_AWAY, "server stopping"))),
            frame = tokio::time::timeout_at(deadline, stream.next()) => frame,
        };
        let text = match frame {
            Err(_) => return Err(Some((close::AUTH_FAILED, "authentication timed out"))),
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return Err(None),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(Message::Binary(_)))) => {
                return Err(Some((close::AUTH_FAILED, "authenticate first")));
            }
            Ok(Some(Ok(Message::Text(text)))) => text,
        };
        metrics::counter!("mc_ws_messages_received_total", "type" => "auth").increment(1);
        let Ok(ClientMessage::Auth { token }) = ClientMessage::parse(&text) else {
            return Err(Some((close::AUTH_FAILED, "authenticate first")));
        };
        let claims = match sig.verifier.verify::<MeetingClaims>(&token).await {
            Ok(claims) => claims,
            Err(error) => {
                tracing::info!(meeting_code = %code, reason = error.kind(), "signaling token refused");
                return Err(Some((close::AUTH_FAILED, "invalid meeting token")));
            }
        };
        if claims.meeting_code != code.as_str() {
            return Err(Some((
                close::NOT_A_MEMBER,
                "the token is for another meeting",
            )));
        }
        return Ok(claims);
    }
}

struct Writer {
    sig: Arc<Signaling>,
    owned: OwnedRoom,
    shared: Arc<SocketShared>,
    sink: Sink,
    /// Events up to this number are already in what the client was sent.
    min_seq: u64,
    seated: bool,
    waiting: Waiting,
    /// The user's seat as of the last snapshot (for GC's report if it ends in a grace).
    seat: Option<Participant>,
}

impl Writer {
    /// Reads the room and greets the client by where the user stands.
    async fn start(&mut self) -> Result<(), End> {
        let state = self.snapshot().await?;
        let user = self.shared.user_id.clone();
        if let Some(reason) = state.rejected.get(&user) {
            self.send(protocol::rejected(reason), "rejected").await?;
            return Err(End::settled(close::NOT_A_MEMBER, "not admitted"));
        }
        if let Some(seat) = state.participants.iter().find(|p| p.user_id == user) {
            let first_after_admission =
                seat.from_lobby && seat.status == ParticipantStatus::Admitted;
            if first_after_admission {
                self.send(protocol::admitted(), "admitted").await?;
            }
            return self.take_seat(state).await;
        }
        if state.lobby.iter().any(|entry| entry.user_id == user) {
            self.waiting.set(true);
            return self.send(protocol::lobby_waiting(), "lobby.waiting").await;
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
        let welcome = welcome(&self.owned.code, &state, &seat, self.shared.is_host);
        self.seat = Some(seat);
        self.send(welcome, "welcome").await
    }

    async fn send(&mut self, text: impl Into<Utf8Bytes>, kind: &'static str) -> Result<(), End> {
        if write_text(&mut self.sink, text, kind, self.shared.closed()).await {
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

    async fn run(
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
                Some(Outbound::Text(text)) => {
                    let ok = write(&mut self.sink, Message::Text(text), self.shared.closed()).await;
                    if ok {
                        Ok(())
                    } else {
                        Err(self.ordered_or_dropped())
                    }
                }
                Some(Outbound::Event(event)) => self.event(&event).await,
            };
            if let Err(end) = result {
                return end;
            }
        }
    }

    /// Passes on (or acts on) one room event.
    async fn event(&mut self, event: &RoomEvent) -> Result<(), End> {
        if event.seq <= self.min_seq {
            return Ok(());
        }
        let about_me = event.subject == self.shared.user_id;
        match event.kind {
            Kind::MeetingEnded => {
                self.send(event.json.clone(), event.type_label).await?;
                return Err(End::settled(close::NORMAL, "the meeting has ended"));
            }
            Kind::Admitted if about_me && !self.seated => {
                let state = self.snapshot().await?;
                self.send(protocol::admitted(), "admitted").await?;
                return self.take_seat(state).await;
            }
            Kind::Rejected if about_me && !self.seated => {
                self.send(event.json.clone(), event.type_label).await?;
                return Err(End::settled(close::NOT_A_MEMBER, "not admitted"));
            }
            Kind::LobbyLeft if about_me && !self.seated => {
                return Err(End::settled(close::NORMAL, "left the lobby"));
            }
            Kind::ParticipantLeft if about_me && self.seated => {
                self.seated = false;
                self.send(event.json.clone(), event.type_label).await?;
                return Err(End::settled(close::NORMAL, "left the meeting"));
            }
            // The client knows it is seated (its `welcome`) and what it changed itself.
            Kind::ParticipantJoined | Kind::ParticipantUpdated if about_me => return Ok(()),
            _ => {}
        }
        let audience = event.audience;
        let mine = (audience.seated && self.seated)
            || (audience.waiting && !self.seated)
            || (audience.host && self.shared.is_host)
            || (audience.subject && about_me);
        if mine {
            self.send(event.json.clone(), event.type_label).await?;
        }
        Ok(())
    }
}

/// The `welcome` of a seated user: the room as of `state`, with the user's own seat as it is
/// now (connected).
fn welcome(code: &MeetingCode, state: &RoomState, me: &Participant, is_host: bool) -> String {
    let participants: Vec<Value> = state
        .participants
        .iter()
        .map(|p| {
            if p.user_id == me.user_id {
                participant(me)
            } else {
                participant(p)
            }
        })
        .collect();
    let mut message = json!({
        "type": "welcome",
        "you": {
            "user_id": me.user_id,
            "role": me.role.as_str(),
            "status": "connected",
        },
        "meeting": {
            "meeting_code": code.as_str(),
            "settings": state.settings,
            "max_participants": state.max_participants,
        },
        "participants": participants,
        "active_speaker": state.active_speaker,
    });
    if is_host || me.role == Role::Host {
        message["lobby"] = state
            .lobby
            .iter()
            .map(|entry| {
                json!({
                    "user_id": entry.user_id,
                    "display_name": entry.display_name,
                    "waiting_since": crate::room::format_timestamp(entry.waiting_since),
                })
            })
            .collect();
    }
    message.to_string()
}

fn participant(p: &Participant) -> Value {
    json!({
        "user_id": p.user_id,
        "display_name": p.display_name,
        "role": p.role.as_str(),
        "status": p.status,
        "language": p.language,
        "hardware_ready": p.hardware_ready,
        "joined_at": crate::room::format_timestamp(p.joined_at),
    })
}

/// A token bucket: `rate` messages a second on average, `burst` at once.
struct RateLimit {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
}

impl RateLimit {
    fn new(rate: u32, burst: u32) -> Self {
        Self {
            tokens: f64::from(burst),
            rate: f64::from(rate),
            burst: f64::from(burst),
            last: Instant::now(),
        }
    }

    fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The reader: what the client sends, until it closes, misbehaves, or the socket is closed.
/// Returns how the connection ended when the reader decided it.
async fn read(
    mut stream: Stream,
    sig: Arc<Signaling>,
    room: Arc<LocalRoom>,
    owned: OwnedRoom,
    shared: Arc<SocketShared>,
    done: CancellationToken,
) -> Option<End> {
    let _done = done.drop_guard();
    let settings = &sig.settings;
    let mut limit = RateLimit::new(settings.messages_per_second, settings.message_burst);
    // Made once, not per frame: at 20 samples a second per socket, a new cancellation future
    // and a timer armed and disarmed per frame were a visible share of MC's CPU. The idle timer
    // is moved on lazily, when it fires, to the last frame's time plus the idle time.
    let closed = shared.closed().cancelled();
    tokio::pin!(closed);
    let idle = tokio::time::sleep(settings.idle_timeout);
    tokio::pin!(idle);
    let mut last_frame = tokio::time::Instant::now();
    loop {
        let frame = tokio::select! {
            () = &mut closed => return None,
            () = &mut idle => {
                let due = last_frame + settings.idle_timeout;
                if due > tokio::time::Instant::now() {
                    idle.as_mut().reset(due);
                    continue;
                }
                return Some(End::troubled(close::GOING_AWAY, "idle"));
            }
            frame = stream.next() => frame,
        };
        last_frame = tokio::time::Instant::now();
        let received = last_frame.into_std();
        let text = match frame {
            None | Some(Ok(Message::Close(_))) => return Some(End::dropped()),
            Some(Err(error)) => {
                return Some(if is_too_big(error) {
                    End::troubled(close::TOO_BIG, "frame too large")
                } else {
                    End::dropped()
                });
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Binary(_))) => {
                metrics::counter!("mc_ws_messages_received_total", "type" => "binary").increment(1);
                return Some(End::troubled(close::UNSUPPORTED_DATA, "text frames only"));
            }
            Some(Ok(Message::Text(text))) => text,
        };
        if !limit.allow(received) {
            metrics::counter!("mc_ws_rate_limited_total").increment(1);
            return Some(End::troubled(close::RATE_LIMITED, "too many messages"));
        }
        let message = match ClientMessage::parse(&text) {
            Ok(message) => message,
            Err(error) => {
                metrics::counter!("mc_ws_messages_received_total", "type" => "invalid")
                    .increment(1);
                let (code, text) = error.code_and_message();
                sent("error");
                shared.send_text(protocol::error_event(code, text));
                continue;
            }
        };
        metrics::counter!("mc_ws_messages_received_total", "type" => message.kind()).increment(1);
        if let Some(end) = handle(message, received, &sig, &room, &owned, &shared).await {
            return Some(end);
        }
    }
}

/// Whether reading failed on a frame or message over the size limit.
fn is_too_big(error: axum::Error) -> bool {
    use tokio_tungstenite::tungstenite::Error;
    matches!(
        error.into_inner().downcast::<Error>().map(|e| *e),
        Ok(Error::Capacity(_))
    )
}

/// One well-formed client message; `Some` when it ends the connection.
async fn handle(
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
            sent("pong");
            shared.send_text(protocol::pong());
            Ok(())
        }
        ClientMessage::Auth { .. } => {
            sent("error");
            shared.send_text(protocol::error_event(
                "BAD_REQUEST",
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
                hardware_ready: Some(Some(crate::room::HardwareReady {
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

async fn update_fields(
    sig: &Signaling,
    owned: &OwnedRoom,
    shared: &SocketShared,
    update: ParticipantUpdate,
    seated: bool,
) -> Result<(), RoomError> {
    if !seated {
        let mut pending = shared
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if update.language.is_some() {
            pending.language = update.language;
        }
        if update.hardware_ready.is_some() {
            pending.hardware_ready = update.hardware_ready;
        }
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
