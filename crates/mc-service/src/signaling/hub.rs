//! The sockets this MC serves, by room: registration (one socket per user, the newer
//! replacing the older), the fan-out of the typed room events the subscriber feeds
//! (`room::subscriber`) to each socket's bounded queue, and each room's active-speaker
//! detector.
//!
//! Locks here are plain mutexes held for a map operation or one detector step, never across
//! an `.await`; the one async lock (`speaker_write`) only orders a room's speaker writes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::extract::ws::Utf8Bytes;
use common::meeting_code::MeetingCode;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::messages::ServerMessage;
use super::protocol::close;
use crate::room::events::{RoomEvent, RoomMessage};
use crate::room::subscriber::{Feed, Subscriber, Subscription};
use crate::room::{OwnedRoom, ParticipantUpdate, Role, RoomError, RoomStore, SpeakerOutcome};
use crate::speaker::{ActiveSpeakerDetector, SpeakerSettings};

/// What a socket's writer task is given to send.
#[derive(Debug)]
pub enum Outbound {
    /// A room event, filtered and acted on by the writer.
    Event(Arc<RoomEvent>),
    /// A message of this socket alone (`pong`, `error`), serialized.
    Text(Utf8Bytes),
}

/// Why a socket is being closed from outside its own tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseOrder {
    pub code: u16,
    pub reason: &'static str,
    /// Whether the user keeps their seat for the reconnect grace (a connection problem), or
    /// the close settles their presence (replaced by a newer socket, MC stopping).
    pub grace: bool,
}

/// The part of a socket other tasks see.
#[derive(Debug)]
pub struct SocketShared {
    pub id: u64,
    /// The connection id stored in the participant record (`connection`).
    pub connection: String,
    pub user_id: String,
    /// Whether the user may host the room, as of which room event: host-only events are
    /// queued for a socket that may (the writer then decides exactly, in event order).
    host: Mutex<HostHint>,
    /// Seated (else waiting), as the writer last decided.
    pub seated: AtomicBool,
    /// `hardware` and `set_language` received while waiting, stored when the user is seated.
    pub pending: Mutex<ParticipantUpdate>,
    queue: mpsc::Sender<Outbound>,
    close: Mutex<Option<CloseOrder>>,
    closed: CancellationToken,
}

/// What the hub knows of a socket's user hosting: `may_host` as of the room event `as_of`
/// (0: not known yet, so host-only events are queued for the writer to sort out).
#[derive(Clone, Copy, Debug)]
struct HostHint {
    may_host: bool,
    as_of: u64,
}

impl SocketShared {
    /// Whether host-only events should be queued for this socket.
    pub fn may_host(&self) -> bool {
        self.host
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .may_host
    }

    /// Records that the user hosts (or not) as of room event `seq`; an older word than the
    /// one held changes nothing, so a snapshot read before a change of host and applied
    /// after it cannot undo it.
    pub fn note_host(&self, hosts: bool, seq: u64) {
        let mut hint = self.host.lock().unwrap_or_else(PoisonError::into_inner);
        if seq >= hint.as_of {
            *hint = HostHint {
                may_host: hosts,
                as_of: seq,
            };
        }
    }

    /// Asks the socket to close; the first order wins.
    pub fn order_close(&self, order: CloseOrder) {
        let mut slot = self.close.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(order);
        }
        drop(slot);
        self.closed.cancel();
    }

    pub fn close_order(&self) -> Option<CloseOrder> {
        *self.close.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn closed(&self) -> &CancellationToken {
        &self.closed
    }

    /// Queues a message of this socket alone; a full queue means the client stopped reading.
    pub fn send(&self, message: &ServerMessage) {
        metrics::counter!("mc_ws_messages_sent_total", "type" => message.type_name()).increment(1);
        self.enqueue(Outbound::Text(message.to_text()));
    }

    fn enqueue(&self, item: Outbound) {
        match self.queue.try_send(item) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!("mc_ws_slow_consumers_dropped_total").increment(1);
                self.order_close(CloseOrder {
                    code: close::POLICY_VIOLATION,
                    reason: "too slow: messages were not read",
                    grace: true,
                });
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// The sockets and the detector of one room on this MC.
pub struct LocalRoom {
    pub code: MeetingCode,
    sockets: Mutex<HashMap<String, Arc<SocketShared>>>,
    detector: Mutex<ActiveSpeakerDetector<String>>,
    /// Orders this room's speaker writes, so the last write is the detector's latest state.
    speaker_write: tokio::sync::Mutex<()>,
    /// Set once the room's channel is subscribed: the first socket asks, the others that come
    /// meanwhile wait for the same answer (one subscription per room, not per socket). The
    /// subscription ends when the room is dropped.
    subscribed: tokio::sync::OnceCell<Subscription>,
}

impl LocalRoom {
    fn note_host(&self, user_id: &str, hosts: bool, seq: u64) {
        let socket = self
            .sockets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(user_id)
            .cloned();
        if let Some(socket) = socket {
            socket.note_host(hosts, seq);
        }
    }

    fn sockets(&self) -> Vec<Arc<SocketShared>> {
        self.sockets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }
}

/// A socket's place in the hub, returned by [`Hub::register`].
pub struct Registration {
    pub shared: Arc<SocketShared>,
    pub room: Arc<LocalRoom>,
    pub queue: mpsc::Receiver<Outbound>,
}

pub struct Hub {
    store: RoomStore,
    subscriber: Subscriber,
    speaker: SpeakerSettings,
    queue_capacity: usize,
    rooms: Mutex<HashMap<MeetingCode, Arc<LocalRoom>>>,
    next_id: AtomicU64,
}

impl Hub {
    pub fn new(
        store: RoomStore,
        subscriber: Subscriber,
        speaker: SpeakerSettings,
        queue_capacity: usize,
    ) -> Self {
        Self {
            store,
            subscriber,
            speaker,
            queue_capacity: queue_capacity.max(1),
            rooms: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        }
    }

    pub fn store(&self) -> &RoomStore {
        &self.store
    }

    /// Adds a socket of `user_id` to `code`'s room, closing an older socket of the same user
    /// (4409), and waits until the room's events reach this MC. Events published from then on
    /// are queued for the socket.
    pub async fn register(
        &self,
        code: &MeetingCode,
        user_id: &str,
    ) -> Result<Registration, RoomError> {
        let (queue_tx, queue) = mpsc::channel(self.queue_capacity);
        let shared = Arc::new(SocketShared {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            connection: uuid::Uuid::new_v4().to_string(),
            user_id: user_id.to_owned(),
            host: Mutex::new(HostHint {
                may_host: true,
                as_of: 0,
            }),
            seated: AtomicBool::new(false),
            pending: Mutex::new(ParticipantUpdate::default()),
            queue: queue_tx,
            close: Mutex::new(None),
            closed: CancellationToken::new(),
        });
        let (room, replaced) = {
            let mut rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
            let room = rooms
                .entry(code.clone())
                .or_insert_with(|| {
                    Arc::new(LocalRoom {
                        code: code.clone(),
                        sockets: Mutex::new(HashMap::new()),
                        detector: Mutex::new(ActiveSpeakerDetector::new(self.speaker)),
                        speaker_write: tokio::sync::Mutex::new(()),
                        subscribed: tokio::sync::OnceCell::new(),
                    })
                })
                .clone();
            let replaced = room
                .sockets
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(user_id.to_owned(), Arc::clone(&shared));
            (room, replaced)
        };
        if let Some(older) = replaced {
            older.order_close(CloseOrder {
                code: close::REPLACED,
                reason: "replaced by a newer connection",
                grace: false,
            });
        }
        let subscribed = room
            .subscribed
            .get_or_try_init(|| self.subscriber.subscribe(code))
            .await;
        if let Err(error) = subscribed {
            self.unregister(&room, &shared).await;
            return Err(error);
        }
        Ok(Registration {
            shared,
            room,
            queue,
        })
    }

    /// Removes a socket (unless a newer one of the same user took its place); the last socket
    /// of a room drops the room, and with it (once its last socket task is done with it) its
    /// subscription.
    pub async fn unregister(&self, room: &Arc<LocalRoom>, shared: &Arc<SocketShared>) {
        {
            let mut rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
            let mut sockets = room.sockets.lock().unwrap_or_else(PoisonError::into_inner);
            if sockets
                .get(&shared.user_id)
                .is_some_and(|s| s.id == shared.id)
            {
                sockets.remove(&shared.user_id);
            }
            let gone = sockets.is_empty()
                && rooms
                    .get(&room.code)
                    .is_some_and(|current| Arc::ptr_eq(current, room));
            drop(sockets);
            if gone {
                rooms.remove(&room.code);
            }
        }
    }

    /// Takes what the room subscriber feeds: an event for the sockets of its room, or an
    /// interruption after which every socket starts again from a fresh `welcome`.
    pub fn receive(&self, feed: Feed) {
        match feed {
            Feed::Event { code, event } => self.dispatch(&code, event),
            Feed::Interrupted => self.close_all(CloseOrder {
                code: close::TRY_AGAIN_LATER,
                reason: "events were interrupted; reconnect",
                grace: true,
            }),
        }
    }

    /// Passes one event to the sockets of its room it may concern; each socket's writer does
    /// the exact filtering (it alone knows whether it is seated yet).
    pub fn dispatch(&self, code: &MeetingCode, event: RoomEvent) {
        let Some(room) = self
            .rooms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(code)
            .cloned()
        else {
            return;
        };
        match &event.message {
            RoomMessage::ParticipantLeft { user_id, .. } => {
                room.detector
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(user_id.as_str());
            }
            // A change of host routes the host-only events that follow it (DESIGN §12).
            RoomMessage::ParticipantUpdated {
                user_id,
                role: Some(role),
                ..
            } => room.note_host(user_id, *role == Role::Host, event.seq),
            RoomMessage::HostGranted { .. } => room.note_host(&event.subject, true, event.seq),
            _ => {}
        }
        metrics::counter!("mc_room_events_received_total", "type" => event.message.type_name())
            .increment(1);
        let event = Arc::new(event);
        let audience = event.audience;
        for socket in room.sockets() {
            let concerned = audience.seated
                || audience.waiting
                || (audience.host && socket.may_host())
                || (audience.subject && socket.user_id == event.subject);
            if concerned {
                socket.enqueue(Outbound::Event(Arc::clone(&event)));
            }
        }
    }

    /// Closes every socket of `code` (the room ended or moved to another MC).
    pub fn close_room(&self, code: &MeetingCode, order: CloseOrder) {
        let room = self
            .rooms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(code)
            .cloned();
        if let Some(room) = room {
            for socket in room.sockets() {
                socket.order_close(order);
            }
        }
    }

    /// Closes every socket (events may have been lost: clients reconnect and get a fresh
    /// `welcome`).
    pub fn close_all(&self, order: CloseOrder) {
        let rooms: Vec<_> = self
            .rooms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        for room in rooms {
            for socket in room.sockets() {
                socket.order_close(order);
            }
        }
    }

    /// Sockets open now, and rooms with at least one.
    pub fn counts(&self) -> (usize, usize) {
        let rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        let sockets = rooms
            .values()
            .map(|room| {
                room.sockets
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .len()
            })
            .sum();
        (sockets, rooms.len())
    }

    /// One `audio_level` sample of a seated participant, received at `at`. When it changes the
    /// speaker, the detector's current speaker is written (and broadcast by the script).
    pub async fn observe_level(
        &self,
        room: &LocalRoom,
        owned: &OwnedRoom,
        user_id: &str,
        level_dbfs: f64,
        at: Instant,
    ) -> Result<(), RoomError> {
        let changed = room
            .detector
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .observe(user_id, level_dbfs, at)
            .is_some();
        if changed {
            self.write_speaker(room, owned).await?;
        }
        Ok(())
    }

    async fn write_speaker(&self, room: &LocalRoom, owned: &OwnedRoom) -> Result<(), RoomError> {
        let _ordered = room.speaker_write.lock().await;
        let speaker = room
            .detector
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .speaker()
            .cloned();
        match self
            .store
            .set_active_speaker(owned, speaker.as_deref())
            .await?
        {
            SpeakerOutcome::Changed { .. } => {
                metrics::counter!("mc_active_speaker_changes_total").increment(1);
            }
            SpeakerOutcome::Unchanged => {}
            SpeakerOutcome::NotAParticipant => {
                // Left between the sample and the write: the detector forgets them.
                if let Some(user) = speaker {
                    room.detector
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(user.as_str());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socket(user: &str, capacity: usize) -> (Arc<SocketShared>, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(capacity);
        let shared = Arc::new(SocketShared {
            id: 1,
            connection: "c".into(),
            user_id: user.into(),
            host: Mutex::new(HostHint {
                may_host: false,
                as_of: 0,
            }),
            seated: AtomicBool::new(true),
            pending: Mutex::new(ParticipantUpdate::default()),
            queue: tx,
            close: Mutex::new(None),
            closed: CancellationToken::new(),
        });
        (shared, rx)
    }

    #[test]
    fn a_full_queue_closes_the_socket_as_a_slow_consumer() {
        let (shared, _rx) = socket("u", 2);
        shared.send(&ServerMessage::pong());
        shared.send(&ServerMessage::pong());
        assert!(!shared.closed().is_cancelled());
        shared.send(&ServerMessage::pong());
        assert!(shared.closed().is_cancelled());
        let order = shared.close_order().unwrap();
        assert_eq!(order.code, close::POLICY_VIOLATION);
        assert!(order.grace);
    }

    #[test]
    fn the_first_close_order_wins() {
        let (shared, _rx) = socket("u", 2);
        let first = CloseOrder {
            code: 4409,
            reason: "replaced",
            grace: false,
        };
        shared.order_close(first);
        shared.order_close(CloseOrder {
            code: 1001,
            reason: "later",
            grace: true,
        });
        assert_eq!(shared.close_order(), Some(first));
    }
}
