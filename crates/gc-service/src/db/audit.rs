//! `audit_logs`: one row per change, written in the transaction of the change it records.

use std::net::IpAddr;

use sqlx::PgConnection;
use uuid::Uuid;

/// Who acted and from where.
#[derive(Clone, Copy, Debug)]
pub enum Actor<'a> {
    /// A user, with the client address and user agent of their request.
    User {
        id: Uuid,
        ip: Option<IpAddr>,
        user_agent: Option<&'a str>,
    },
    /// A meeting controller (by its client id), reporting for a room it owns.
    Service { id: &'a str },
    /// GC itself: timeouts, expiry.
    System,
}

impl Actor<'_> {
    /// `actor_id`, `actor_type`, `ip` and `user_agent` of an audit row.
    pub fn columns(&self) -> (Option<String>, &'static str, Option<IpAddr>, Option<&str>) {
        match *self {
            Actor::User { id, ip, user_agent } => (Some(id.to_string()), "user", ip, user_agent),
            Actor::Service { id } => (Some(id.to_owned()), "service", None, None),
            Actor::System => (None, "system", None, None),
        }
    }
}

/// One audit row about a meeting. `details` never holds names, e-mails or secrets.
pub async fn record(
    conn: &mut PgConnection,
    org_id: Uuid,
    actor: Actor<'_>,
    action: &str,
    meeting_id: Uuid,
    details: serde_json::Value,
) -> Result<(), sqlx::Error> {
    let (actor_id, actor_type, ip, user_agent) = match actor {
        Actor::User { id, ip, user_agent } => (Some(id.to_string()), "user", ip, user_agent),
        Actor::Service { id } => (Some(id.to_owned()), "service", None, None),
        Actor::System => (None, "system", None, None),
    };
    sqlx::query(
        "insert into audit_logs (org_id, actor_id, actor_type, action, resource_type,
                                 resource_id, details, ip, user_agent)
         values ($1, $2, $3, $4, 'meeting', $5, $6, $7::inet, $8)",
    )
    .bind(org_id)
    .bind(actor_id)
    .bind(actor_type)
    .bind(action)
    .bind(meeting_id.to_string())
    .bind(details)
    .bind(ip.map(|ip| ip.to_string()))
    .bind(user_agent)
    .execute(conn)
    .await?;
    Ok(())
}

/// An [`Actor`], owned: for work that outlives the request (a queued admission, a join's
/// seat).
#[derive(Clone, Debug)]
pub enum OwnedActor {
    User {
        id: Uuid,
        ip: Option<IpAddr>,
        user_agent: Option<String>,
    },
    Service {
        id: String,
    },
    System,
}

impl From<Actor<'_>> for OwnedActor {
    fn from(actor: Actor<'_>) -> Self {
        match actor {
            Actor::User { id, ip, user_agent } => OwnedActor::User {
                id,
                ip,
                user_agent: user_agent.map(str::to_owned),
            },
            Actor::Service { id } => OwnedActor::Service { id: id.to_owned() },
            Actor::System => OwnedActor::System,
        }
    }
}

impl OwnedActor {
    pub fn as_actor(&self) -> Actor<'_> {
        match self {
            OwnedActor::User { id, ip, user_agent } => Actor::User {
                id: *id,
                ip: *ip,
                user_agent: user_agent.as_deref(),
            },
            OwnedActor::Service { id } => Actor::Service { id },
            OwnedActor::System => Actor::System,
        }
    }
}
