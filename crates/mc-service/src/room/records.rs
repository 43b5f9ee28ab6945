//! Decoding what the scripts read from Redis: the JSON records of seats and lobby, and the
//! `state` script's raw hashes into a [`RoomState`].

use std::collections::HashMap;

use common::settings::MeetingSettings;

use chrono::DateTime;

use super::error::RoomError;
use super::model::{FencingToken, LobbyEntry, Participant, RoomState};
use super::reply::{Reply, unexpected};

pub(crate) fn decode_state(mut reply: Reply) -> Result<RoomState, RoomError> {
    match reply.outcome() {
        "state" => {}
        "not_found" => return Err(RoomError::NotFound),
        _ => return Err(reply.unknown()),
    }
    let meta = pairs(reply.next()?);
    let participants = pairs(reply.next()?);
    let lobby: Vec<String> = reply.next()?;
    let details = pairs(reply.next()?);
    let active_speaker: Option<String> = reply.next()?;
    let rejected = pairs(reply.next()?)
        .iter()
        .map(|(user, reason)| Ok((text(user)?, text(reason)?)))
        .collect::<Result<_, RoomError>>()?;
    // Absent from the reply of a script older than the `removed` key (a rolling update).
    let removed = pairs(reply.next::<Option<_>>()?.unwrap_or_default())
        .iter()
        .map(|(user, reason)| Ok((text(user)?, text(reason)?)))
        .collect::<Result<_, RoomError>>()?;

    let mut seated = participants
        .iter()
        .map(|(user, json)| decode_participant(&text(user)?, json))
        .collect::<Result<Vec<_>, _>>()?;
    seated.sort_by(|a, b| (a.joined_at, &a.user_id).cmp(&(b.joined_at, &b.user_id)));

    let mut waiting = lobby
        .into_iter()
        .map(|user| match details.get(user.as_bytes()) {
            Some(json) => decode_lobby_entry(&user, json),
            // A member without details cannot come from the scripts, which write both in
            // one step; show it rather than hide someone who waits.
            None => Ok(LobbyEntry {
                user_id: user,
                display_name: String::new(),
                waiting_since: DateTime::UNIX_EPOCH,
                guest: false,
            }),
        })
        .collect::<Result<Vec<_>, _>>()?;
    waiting.sort_by(|a, b| (a.waiting_since, &a.user_id).cmp(&(b.waiting_since, &b.user_id)));

    Ok(RoomState {
        meeting_id: field(&meta, "meeting_id")?,
        host_id: field(&meta, "host_id")?,
        creator_id: match meta.get("creator_id".as_bytes()) {
            Some(_) => field(&meta, "creator_id")?,
            None => field(&meta, "host_id")?,
        },
        host_seq: optional_number(&meta, "host_seq")?,
        owner: field(&meta, "owner")?,
        fencing_token: FencingToken(number(&meta, "fencing_token")?),
        max_participants: number(&meta, "max_participants")?,
        settings: decode_settings(&field(&meta, "settings")?)?,
        participants: seated,
        lobby: waiting,
        active_speaker,
        rejected,
        removed,
        seq: optional_number(&meta, "seq")?,
        last_seat: optional_number(&meta, "last_seat")?,
        settings_version: optional_number(&meta, "settings_version")?,
    })
}

fn text(bytes: &[u8]) -> Result<String, RoomError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| unexpected("non-UTF-8 value", &bytes))
}

fn field(meta: &HashMap<Vec<u8>, Vec<u8>>, name: &str) -> Result<String, RoomError> {
    match meta.get(name.as_bytes()) {
        Some(value) => text(value),
        None => Err(unexpected("room meta lacks", &name)),
    }
}

fn number<T: std::str::FromStr>(
    meta: &HashMap<Vec<u8>, Vec<u8>>,
    name: &str,
) -> Result<T, RoomError> {
    let value = field(meta, name)?;
    value.parse().map_err(|_| unexpected(name, &value))
}

/// A numeric meta field that a room may not have yet (0 then).
fn optional_number(meta: &HashMap<Vec<u8>, Vec<u8>>, name: &str) -> Result<u64, RoomError> {
    match meta.get(name.as_bytes()) {
        Some(_) => number(meta, name),
        None => Ok(0),
    }
}

pub(crate) fn decode_participant(user_id: &str, json: &[u8]) -> Result<Participant, RoomError> {
    let mut participant: Participant = serde_json::from_slice(json)
        .map_err(|e| RoomError::UnexpectedReply(format!("participant record: {e}")))?;
    participant.user_id = user_id.to_owned();
    Ok(participant)
}

fn decode_lobby_entry(user_id: &str, json: &[u8]) -> Result<LobbyEntry, RoomError> {
    let mut entry: LobbyEntry = serde_json::from_slice(json)
        .map_err(|e| RoomError::UnexpectedReply(format!("lobby record: {e}")))?;
    entry.user_id = user_id.to_owned();
    Ok(entry)
}

fn decode_settings(json: &str) -> Result<MeetingSettings, RoomError> {
    serde_json::from_str(json).map_err(|e| RoomError::UnexpectedReply(format!("settings: {e}")))
}

/// Field/value pairs of a flat `HGETALL` list.
fn pairs(flat: Vec<Vec<u8>>) -> HashMap<Vec<u8>, Vec<u8>> {
    let mut map = HashMap::with_capacity(flat.len() / 2);
    let mut items = flat.into_iter();
    while let (Some(field), Some(value)) = (items.next(), items.next()) {
        map.insert(field, value);
    }
    map
}
