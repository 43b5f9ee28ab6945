//! `PATCH /{code}/config`: the host changes settings or the number of seats.
//!
//! The change is merged into what PostgreSQL holds under the meeting row's lock: a PATCH
//! changes only the fields it names, so two PATCHes at once never lose each other's changes.
//! Each change that commits raises the meeting's `settings_version`, and is written with its
//! `settings_changed` audit row. Then the room is brought in line: it is sent the settings with
//! their version, and keeps only the newest version it was sent, so pushes that arrive out of
//! order still leave it with what PostgreSQL holds last. The push is made even when the PATCH
//! changed nothing, so repeating a PATCH after a 503 (the controller could not be reached, the
//! change stands in PostgreSQL) brings the room in line. Turning the waiting room off admits
//! the lobby up to capacity.

use common::db::Bounded;
use common::jwt::UserClaims;
use common::settings::MeetingSettings;

use crate::db;
use crate::domain::events::{Actor, Change, MeetingEvent};
use crate::domain::meeting::{
    MaxParticipants, Meeting, SettingsChange, ValidationError, check_settings,
};
use crate::error::Error;
use crate::use_cases::get::{MeetingView, live_counts};
use crate::use_cases::room::Rooms;
use crate::use_cases::{record_admissions, require_host, visible_meeting};

/// What a PATCH asks to change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConfigChange {
    pub settings: SettingsChange,
    pub max_participants: Option<MaxParticipants>,
}

/// `change` is the parsed body, or why it did not parse: the meeting and the caller's right to
/// change it are checked first, so a stranger learns nothing from a body's errors.
pub async fn update_config(
    rooms: &Rooms,
    caller: &UserClaims,
    code: &str,
    change: Result<ConfigChange, Error>,
    actor: Actor<'_>,
) -> Result<MeetingView, Error> {
    let meeting = visible_meeting(&rooms.pool, caller, code).await?;
    require_host(&meeting, caller)?;
    let change = change?;
    if let Some(requested) = change.max_participants {
        let org_max = db::meetings::org_max_participants(&rooms.pool, meeting.org_id).await?;
        if requested.get() > org_max {
            return Err(ValidationError::MaxParticipantsAboveOrgLimit { max: org_max }.into());
        }
    }
    let updated = store_change(rooms, &meeting, change, actor).await?;
    push_to_room(rooms, &updated, actor).await?;
    let counts = live_counts(rooms, &updated).await;
    let meeting = db::meetings::find_meeting(&rooms.pool, updated.id)
        .await?
        .unwrap_or(updated);
    Ok(MeetingView {
        meeting,
        counts,
        for_host: true,
    })
}

/// Merges `change` into the settings stored now, under the meeting row's lock, and stores the
/// result with a new version and its audit row; the meeting as stored after (unchanged, and
/// nothing written, when the change changes nothing).
async fn store_change(
    rooms: &Rooms,
    meeting: &Meeting,
    change: ConfigChange,
    actor: Actor<'_>,
) -> Result<Meeting, Error> {
    let mut tx = rooms.pool.begin().bounded().await?;
    let current = db::meetings::lock_live(&mut tx, meeting.id)
        .await?
        .ok_or(Error::MeetingNotFound)?;
    let settings = change.settings.apply_to(current.settings);
    // Checked on the merged settings: a PATCH that turns `require_auth` on while the meeting
    // allows guests contradicts what is stored as much as one that allows guests outright.
    // The transaction is dropped unwritten (rolled back).
    check_settings(&settings)?;
    let max = change
        .max_participants
        .map_or(current.max_participants, MaxParticipants::get);
    if settings == current.settings && max == current.max_participants {
        tx.commit().bounded().await?;
        return Ok(current);
    }
    let updated = db::meetings::update_settings(&mut tx, meeting.id, &settings, max)
        .await?
        .ok_or(Error::MeetingNotFound)?;
    let change = Change {
        org_id: meeting.org_id,
        meeting_id: meeting.id,
        actor,
        event: MeetingEvent::SettingsChanged {
            before: settings_json(&current.settings, current.max_participants),
            after: settings_json(&settings, max),
        },
    };
    db::events::record(&mut *tx, &[change]).await?;
    tx.commit().bounded().await?;
    Ok(updated)
}

/// Sends the room the settings of `meeting` with their version, and records the admissions
/// that made (waiting room off). A meeting nobody joined has no room: the room created later
/// reads its settings from PostgreSQL then.
async fn push_to_room(rooms: &Rooms, meeting: &Meeting, actor: Actor<'_>) -> Result<(), Error> {
    if let Some(seated) = rooms.placement.update_settings(meeting).await? {
        record_admissions(rooms, meeting, seated, actor).await?;
    }
    Ok(())
}

fn settings_json(s: &MeetingSettings, max_participants: i32) -> serde_json::Value {
    let mut json = serde_json::to_value(s).unwrap_or_default();
    json["max_participants"] = serde_json::json!(max_participants);
    json
}
