//! `POST /{code}/guest-join`: a person without an account asks to join a meeting by its link
//! (DESIGN §12). The one way into GC that needs no token, so every step is bounded before the
//! next costs anything: the client address's budget first (even a request for an unknown code
//! spends it, so codes cannot be probed by the thousand), then one indexed read, then AC.
//!
//! The meeting must take guests (`allow_guests` on and `require_auth` off) and be live;
//! anything else is the 404 of an unknown meeting. AC signs a guest token with a fresh guest
//! id; the guest then joins like anyone with that id ([`super::join::join_visible`]) and waits
//! in the lobby, unless the lobby already holds `MAX_GUESTS_WAITING` guests (409
//! `LOBBY_FULL`). Once the room has put them in the lobby, the guest and their `guest_joined`
//! event are recorded; if that fails they leave the lobby again and the request fails.

use common::display_name::DisplayName;
use common::meeting_code::MeetingCode;

use uuid::Uuid;

use crate::clients::ac::MeetingTokens;
use crate::db::guests::GuestRecord;
use crate::domain::events::{Actor, Origin};
use crate::domain::meeting::admits_guests;
use crate::error::Error;
use crate::use_cases::join::{Joined, Joiner, join_visible};
use crate::use_cases::room::Rooms;

/// A guest's join, and the guest token they present from now on (on this meeting's get, join
/// and leave).
#[derive(Debug)]
pub struct GuestJoined {
    pub joined: Joined,
    pub guest_token: String,
}

pub async fn guest_join(
    rooms: &Rooms,
    meeting_tokens: &MeetingTokens,
    code: &str,
    name: Result<String, Error>,
    from: Origin<'_>,
) -> Result<GuestJoined, Error> {
    rooms.guest_join_from(from.ip)?;
    let name = DisplayName::parse(&name?)
        .map_err(|e| Error::from(crate::domain::validation::ValidationError::from(e)))?;
    let name = &name;
    let code = MeetingCode::parse(code).ok_or(Error::MeetingNotFound)?;
    let (meeting, assignment) = rooms
        .lookups
        .find(code)
        .await?
        .ok_or(Error::MeetingNotFound)?;
    if meeting.status.is_ended() || !admits_guests(&meeting.settings) {
        return Err(Error::MeetingNotFound);
    }
    // The guest's id, from the OS's CSPRNG: AC signs the guest token and the meeting token of
    // this id in one grant of a batch, while the room puts the guest in its lobby.
    let guest_id = Uuid::new_v4();
    let actor = Actor::Guest { id: guest_id, from };
    let record = GuestRecord {
        meeting_id: meeting.id,
        org_id: meeting.org_id,
        guest_id,
        display_name: name.as_str().to_owned(),
        ip: from.ip.map(|ip| ip.to_string()),
        user_agent: from.user_agent.map(str::to_owned),
    };
    let recorded =
        move |rooms: Rooms| async move { rooms.guests.record(record).await.map_err(Error::from) };
    let joiner = Joiner {
        id: guest_id,
        name: name.as_str().to_owned(),
        guest: true,
        org_id: None,
        new_guest: true,
    };
    let joined = join_visible(
        rooms,
        meeting_tokens,
        meeting,
        assignment,
        joiner,
        actor,
        recorded,
    )
    .await?;
    // An AC older than `guest_token` refuses the grant (400), so a token is always here; were
    // it not, the guest could not come back, and the join is refused rather than half done.
    let Some(guest_token) = joined.guest_token.clone() else {
        tracing::error!(guest_id = %guest_id, "AC signed no guest token");
        return Err(Error::Internal("AC signed no guest token"));
    };
    tracing::info!(guest_id = %guest_id, "guest waiting in the lobby");
    Ok(GuestJoined {
        joined,
        guest_token,
    })
}
