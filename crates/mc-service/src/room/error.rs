//! What can go wrong with a room operation besides its ordinary outcomes.

use deadpool_redis::redis::RedisError;

use super::model::FencingToken;

#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    /// No such room in Redis: never assigned, ended, or expired.
    #[error("room not found")]
    NotFound,
    /// The room is owned under another fencing token: this MC lost it, or was never given it.
    #[error("fenced: the room is owned under token {}", current.0)]
    Fenced { current: FencingToken },
    /// An argument the store refuses before sending anything (see the limits in `store.rs`).
    #[error("invalid input: {0}")]
    InvalidInput(&'static str),
    /// No connection could be taken from the pool.
    #[error("no redis connection")]
    Pool(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("redis command failed")]
    Redis(#[from] RedisError),
    /// Redis did not answer within the deadline (`connection::COMMAND_DEADLINE`).
    #[error("redis did not answer within {} ms", .0.as_millis())]
    Timeout(std::time::Duration),
    /// A script answered something this build does not understand (a newer or damaged value).
    #[error("unexpected reply from redis: {0}")]
    UnexpectedReply(String),
}
