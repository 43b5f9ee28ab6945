//! `PATCH /{code}/config`: the host changes settings or the number of seats. PostgreSQL is
//! changed first (with the `settings_changed` audit row), then the room; turning the waiting
//! room off admits the lobby up to capacity. If the controller cannot be reached the answer is
//! 503 and the change stands in PostgreSQL: the same PATCH again (it is idempotent) brings the
//! room in line.

use common::jwt::UserClaims;
use common::proto::internal::v1::UpdateSettingsRequest;
use common::settings::MeetingSettings;

use crate::db;
use crate::db::audit::Actor;
use crate::domain::meeting::{MaxParticipants, SettingsChange, ValidationError};
use crate::error::Error;
use crate::use_cases::get::{MeetingView, live_counts};
use crate::use_cases::lobby::parse_ids;
use crate::use_cases::room::{Rooms, proto_settings};
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
    let max = match change.max_participants {
        Some(requested) => {
            let org_max = db::meetings::org_max_participants(&rooms.pool, meeting.org_id).await?;
            if requested.get() > org_max {
                return Err(ValidationError::MaxParticipantsAboveOrgLimit { max: org_max }.into());
            }
            requested.get()
        }
        None => meeting.max_participants,
    };
    let settings = change.settings.apply_to(meeting.settings);
    if settings == meeting.settings && max == meeting.max_participants {
        // Nothing changes: nothing to write, audit or tell the room.
        let counts = live_counts(rooms, &meeting).await;
        return Ok(MeetingView {
            meeting,
            counts,
            for_host: true,
        });
    }

    let mut tx = rooms.pool.begin().await?;
    let updated = db::meetings::update_settings(&mut tx, meeting.id, &settings, max)
        .await?
        .ok_or(Error::MeetingNotFound)?;
    db::audit::record(
        &mut tx,
        meeting.org_id,
        actor,
        "settings_changed",
        meeting.id,
        serde_json::json!({
            "before": settings_json(&meeting.settings, meeting.max_participants),
            "after": settings_json(&settings, max),
        }),
    )
    .await?;
    tx.commit().await?;

    let response = rooms
        .call_if_assigned(&updated, |room| async move {
            room.client
                .clone()
                .update_settings(UpdateSettingsRequest {
                    meeting_code: room.code.clone(),
                    settings: Some(proto_settings(&settings)),
                    max_participants: u32::try_from(max).unwrap_or(2),
                    fencing_token: room.fencing_token,
                })
                .await
                .map(tonic::Response::into_inner)
        })
        .await?;
    let admitted = parse_ids(&response.map(|r| r.admitted).unwrap_or_default())?;
    let rows = admitted.iter().map(|id| (*id, "guest")).collect();
    record_admissions(rooms, &updated, rows, actor).await?;
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

fn settings_json(s: &MeetingSettings, max_participants: i32) -> serde_json::Value {
    let mut json = serde_json::to_value(s).unwrap_or_default();
    json["max_participants"] = serde_json::json!(max_participants);
    json
}
