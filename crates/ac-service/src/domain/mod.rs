//! Plain types and rules of AC: what a valid slug, e-mail or scope is, and how passwords and
//! secrets are hashed. Nothing here knows about HTTP or SQL.

pub mod password;
pub mod secret;
pub mod validation;
