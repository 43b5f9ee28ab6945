//! Meetings as plain data and rules: what a valid request is, how secrets are drawn,
//! what makes two create requests "the same". Nothing here knows about HTTP or SQL, so every
//! rule is unit-tested without a server or a database.

pub mod budget;
pub mod events;
pub mod idempotency;
pub mod meeting;
pub mod room;
pub mod secret;
pub mod validation;
pub mod webhooks;
