//! Reading the arrays the room scripts answer with: the outcome's name first, then its values.

use std::collections::VecDeque;

use deadpool_redis::redis::{FromRedisValue, Value};

use super::error::RoomError;
use super::model::FencingToken;

pub(crate) struct Reply {
    outcome: String,
    values: VecDeque<Value>,
}

impl Reply {
    /// Splits off the outcome and turns the guard's refusals into errors, so that callers match
    /// only the outcomes of their own script.
    pub(crate) fn guarded(value: Value) -> Result<Self, RoomError> {
        let mut reply = Self::parse(value)?;
        match reply.outcome.as_str() {
            "not_found" => Err(RoomError::NotFound),
            "fenced" => {
                let stored: String = reply.next()?;
                let current = stored
                    .parse()
                    .map_err(|_| unexpected("fencing token", &stored))?;
                Err(RoomError::Fenced {
                    current: FencingToken(current),
                })
            }
            _ => Ok(reply),
        }
    }

    pub(crate) fn parse(value: Value) -> Result<Self, RoomError> {
        let Value::Array(items) = value else {
            return Err(unexpected("reply", &value));
        };
        let mut values = VecDeque::from(items);
        let outcome = match values.pop_front() {
            Some(first) => String::from_redis_value(first)
                .map_err(|e| RoomError::UnexpectedReply(e.to_string()))?,
            None => return Err(RoomError::UnexpectedReply("empty reply".into())),
        };
        Ok(Self { outcome, values })
    }

    pub(crate) fn outcome(&self) -> &str {
        &self.outcome
    }

    /// The next value; a missing one reads as nil (so `Option` fields may be left off).
    pub(crate) fn next<T: FromRedisValue>(&mut self) -> Result<T, RoomError> {
        let value = self.values.pop_front().unwrap_or(Value::Nil);
        T::from_redis_value(value).map_err(|e| RoomError::UnexpectedReply(e.to_string()))
    }

    pub(crate) fn next_flag(&mut self) -> Result<bool, RoomError> {
        Ok(self.next::<i64>()? == 1)
    }

    /// An outcome name this build does not know.
    pub(crate) fn unknown(&self) -> RoomError {
        RoomError::UnexpectedReply(format!("unknown outcome {:?}", self.outcome))
    }
}

pub(crate) fn unexpected(what: &str, value: &dyn std::fmt::Debug) -> RoomError {
    RoomError::UnexpectedReply(format!("{what}: {value:?}"))
}
