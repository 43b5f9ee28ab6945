//! The live state of MC's rooms in Redis: seats, lobby, active speaker and the room's meta
//! (owner, fencing token, settings, capacity). docs/redis.md is the reference for the keys,
//! their JSON fields, the TTL policy, the scripts and their outcomes.
//!
//! This module is storage only: it never sends events to sockets and never decides who may
//! call an operation (the gRPC and WebSocket layers do both). Its scripts publish each change
//! as a [`events::RoomMessage`] on the room's channel, and its [`subscriber`] reads them back
//! into typed [`events::RoomEvent`]s for whoever runs it (signaling fans them out). What it guarantees, under any
//! number of concurrent callers and on a single Redis or a Redis Cluster alike:
//! - a room never holds more than `max_participants` seats, except that lowering the capacity
//!   unseats nobody;
//! - a user is never both waiting and seated;
//! - a write carrying another fencing token than the room's changes nothing;
//! - every key of a room carries a TTL, and ending a room leaves none of its keys.

mod connection;
mod error;
pub mod events;
mod keys;
mod model;
pub(crate) use model::format_timestamp;
mod outcome;
mod records;
mod reply;
mod scripts;
mod store;
pub mod subscriber;

pub use connection::{COMMAND_DEADLINE, PoolConfigError, RedisPool};
pub use error::RoomError;
pub use keys::{KeyPrefix, KeyPrefixError, RoomKeys};
pub use model::{
    FencingToken, HardwareReady, LobbyEntry, MaxGuestsWaiting, OwnedRoom, Participant,
    ParticipantStatus, ParticipantUpdate, Role, RoomMeta, RoomState,
};
pub use outcome::{
    Admission, AdmitAllOutcome, AdmitOutcome, AssignOutcome, EndOutcome, HostChange, JoinOutcome,
    LeaveOutcome, Presence, RejectOutcome, RemoveOutcome, SettingsOutcome, SpeakerOutcome,
    TransferOutcome,
};
pub use store::{
    DEFAULT_TTL, MAX_DISPLAY_NAME_BYTES, MAX_ID_BYTES, MAX_LANGUAGE_BYTES, MAX_REASON_BYTES,
    MAX_TTL, RoomStore, RoomStoreConfig,
};
