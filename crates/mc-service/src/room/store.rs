//! [`RoomStore`]: every operation on a room's live state, each one Lua script (one atomic step,
//! one round trip) over the keys of `keys.rs`.
//!
//! Writes take an [`OwnedRoom`] and are fenced: the script compares the caller's token with the
//! room's and changes nothing when they differ. Reads take only the code.

use std::future::Future;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::meeting_code::MeetingCode;
use common::settings::MeetingSettings;
use deadpool_redis::redis::{Script, ScriptInvocation, Value};
use tracing::instrument;

use super::connection::RedisPool;
use super::error::RoomError;
use super::keys::{KeyPrefix, RoomKeys};
use super::model::{
    FencingToken, MaxGuestsWaiting, OwnedRoom, Participant, ParticipantUpdate, Role, RoomMeta,
    RoomState, format_timestamp,
};
use super::outcome::{
    Admission, AdmitAllOutcome, AdmitOutcome, AssignOutcome, EndOutcome, HostChange, JoinOutcome,
    LeaveOutcome, Presence, RejectOutcome, RemoveOutcome, SettingsOutcome, SpeakerOutcome,
    TransferOutcome,
};
use super::records::{self, decode_participant};
use super::reply::{Reply, unexpected};
use super::scripts::RoomScripts;

/// Longest user id, meeting id or owner id accepted, in bytes (ids are UUIDs in practice).
pub const MAX_ID_BYTES: usize = 128;
/// Longest display name, in bytes: 255 characters of up to 4 bytes (common::display_name).
pub const MAX_DISPLAY_NAME_BYTES: usize = 1020;
/// Longest language tag, in bytes (BCP 47 tags in use are far shorter).
pub const MAX_LANGUAGE_BYTES: usize = 64;
/// Longest reason (of a leave, a rejection, an end), in bytes.
pub const MAX_REASON_BYTES: usize = 64;
/// The default safety TTL of a room's keys.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// The longest safety TTL accepted.
pub const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);

#[derive(Clone, Debug)]
pub struct RoomStoreConfig {
    /// Put before every key; empty in production.
    pub key_prefix: KeyPrefix,
    /// How long a room's keys outlive its last write or touch.
    pub ttl: Duration,
}

impl Default for RoomStoreConfig {
    fn default() -> Self {
        Self {
            key_prefix: KeyPrefix::default(),
            ttl: DEFAULT_TTL,
        }
    }
}

#[derive(Clone)]
pub struct RoomStore {
    redis: RedisPool,
    scripts: std::sync::Arc<RoomScripts>,
    prefix: KeyPrefix,
    ttl_ms: u64,
}

impl RoomStore {
    /// This store on one connection of its pool ([`RedisPool::one_connection`]): for the
    /// operations of one batched call, run at once.
    pub async fn on_one_connection(&self) -> Result<RoomStore, RoomError> {
        Ok(RoomStore {
            redis: self.redis.one_connection().await?,
            ..self.clone()
        })
    }

    /// The TTL must be between one second (shorter, keys would vanish between two
    /// operations) and [`MAX_TTL`] (a longer one is no safety net, and past Redis' range every
    /// script would fail).
    pub fn new(redis: RedisPool, config: RoomStoreConfig) -> Result<Self, RoomError> {
        if config.ttl < Duration::from_secs(1) || config.ttl > MAX_TTL {
            return Err(RoomError::InvalidInput(
                "the room TTL must be between one second and 30 days",
            ));
        }
        let ttl_ms = u64::try_from(config.ttl.as_millis()).unwrap_or(u64::MAX);
        Ok(Self {
            redis,
            scripts: std::sync::Arc::new(RoomScripts::new()),
            prefix: config.key_prefix,
            ttl_ms,
        })
    }

    pub fn keys(&self, code: &MeetingCode) -> RoomKeys {
        RoomKeys::new(&self.prefix, code)
    }

    pub fn redis(&self) -> &RedisPool {
        &self.redis
    }

    /// Makes `owner` the owner of the room under `token`: creates the room, takes it over from
    /// a lower token (keeping seats and lobby), or refreshes settings and capacity under the
    /// same token. A higher stored token, or the same token held by another owner, is
    /// [`RoomError::Fenced`].
    #[instrument(name = "mc.room.assign", skip_all, fields(meeting_code = %code, token = token.0))]
    pub async fn assign(
        &self,
        code: &MeetingCode,
        meta: &RoomMeta,
        token: FencingToken,
        owner: &str,
    ) -> Result<AssignOutcome, RoomError> {
        check_id(owner, "owner id must be 1 to 128 bytes")?;
        check_id(&meta.meeting_id, "meeting id must be 1 to 128 bytes")?;
        if !meta.host_id.is_empty() {
            check_id(&meta.host_id, "host id must be 1 to 128 bytes")?;
        }
        if !meta.creator_id.is_empty() {
            check_id(&meta.creator_id, "creator id must be 1 to 128 bytes")?;
        }
        if meta.host_id.is_empty() && meta.creator_id.is_empty() {
            return Err(RoomError::InvalidInput("a room needs a host or a creator"));
        }
        check_capacity(meta.max_participants)?;
        let settings = encode_settings(&meta.settings)?;
        let mut call = self.call(&self.scripts.assign, code, Some(token));
        call.arg(owner)
            .arg(&meta.meeting_id)
            .arg(&meta.host_id)
            .arg(meta.max_participants)
            .arg(settings);
        if meta.settings_version > 0 {
            call.arg(meta.settings_version.to_string());
        } else {
            call.arg("");
        }
        call.arg(&meta.creator_id).arg(meta.host_seq.to_string());
        let mut reply = self.run_guarded("assign", &call).await?;
        match reply.outcome() {
            "created" => Ok(AssignOutcome::Created),
            "refreshed" => Ok(AssignOutcome::Refreshed),
            "took_over" => {
                let previous_owner = reply.next()?;
                let previous: String = reply.next()?;
                let previous_token = previous
                    .parse()
                    .map_err(|_| unexpected("fencing token", &previous))?;
                Ok(AssignOutcome::TookOver {
                    previous_owner,
                    previous_token: FencingToken(previous_token),
                })
            }
            _ => Err(reply.unknown()),
        }
    }

    /// Seats the user (a host, or anyone when the waiting room is off) if a seat is free, else
    /// answers Full; otherwise puts the user in the lobby. Someone already seated or waiting
    /// stays as they are. The outcome counts the seats and the lobby as the join left them.
    ///
    /// `guest`: a person without an account (DESIGN §12), who always waits, unless the lobby
    /// already holds this many guests (LobbyFull). `member`: a member of the meeting's org,
    /// who may be made the host.
    ///
    /// `role` is what the caller saw; the room decides: the user its host names is seated as
    /// the host, anyone else as a guest, and the meeting's creator takes the role back while
    /// nobody hosts ([`JoinOutcome::host_change`]).
    #[instrument(name = "mc.room.join", skip_all, fields(meeting_code = %room.code))]
    #[allow(clippy::too_many_arguments)]
    pub async fn join(
        &self,
        room: &OwnedRoom,
        user_id: &str,
        display_name: &str,
        role: Role,
        guest: Option<MaxGuestsWaiting>,
        member: bool,
        now: DateTime<Utc>,
    ) -> Result<JoinOutcome, RoomError> {
        check_id(user_id, "user id must be 1 to 128 bytes")?;
        check_display_name(display_name)?;
        let mut call = self.call(&self.scripts.join, &room.code, Some(room.token));
        call.arg(user_id)
            .arg(display_name)
            .arg(role.as_str())
            .arg(format_timestamp(now));
        match guest {
            Some(MaxGuestsWaiting(max)) => call.arg(max),
            None => call.arg(""),
        };
        call.arg(if member { "1" } else { "0" });
        let mut reply = self.run_guarded("join", &call).await?;
        let admission = match reply.outcome() {
            "admitted" => Admission::Admitted,
            "waiting" => Admission::Waiting,
            "full" => Admission::Full,
            "lobby_full" => Admission::LobbyFull,
            "removed" => Admission::Removed,
            _ => return Err(reply.unknown()),
        };
        Ok(JoinOutcome {
            admission,
            participant_count: reply.next()?,
            already_present: reply.next_flag()?,
            seat: reply.next::<Option<u64>>()?.unwrap_or(0),
            lobby_count: reply.next()?,
            role: match reply.next::<String>()?.as_str() {
                "host" => Role::Host,
                "guest" => Role::Guest,
                other => return Err(unexpected("role", &other)),
            },
            host_change: match reply.next::<Option<u64>>()?.unwrap_or(0) {
                0 => None,
                seq => Some(HostChange {
                    host: Some(user_id.to_owned()),
                    seq,
                }),
            },
            host: {
                let seq = reply.next::<Option<u64>>()?.unwrap_or(0);
                let host = reply.next::<Option<String>>()?.unwrap_or_default();
                HostChange {
                    host: (!host.is_empty()).then_some(host),
                    seq,
                }
            },
        })
    }

    /// Hands the host role from `from` (the host the caller saw) to `to`, a seated member of
    /// the meeting's org (DESIGN §12), in one step: a compare-and-set on the room's host, so
    /// two hand-overs, or a hand-over and the host's leave, never leave two hosts.
    #[instrument(name = "mc.room.transfer_host", skip_all, fields(meeting_code = %room.code))]
    pub async fn transfer_host(
        &self,
        room: &OwnedRoom,
        from: &str,
        to: &str,
    ) -> Result<TransferOutcome, RoomError> {
        check_id(from, "user id must be 1 to 128 bytes")?;
        check_id(to, "user id must be 1 to 128 bytes")?;
        let mut call = self.call(&self.scripts.transfer_host, &room.code, Some(room.token));
        call.arg(from).arg(to);
        let mut reply = self.run_guarded("transfer_host", &call).await?;
        match reply.outcome() {
            "transferred" => Ok(TransferOutcome::Transferred { seq: reply.next()? }),
            "not_host" => {
                let host: String = reply.next()?;
                Ok(TransferOutcome::NotHost {
                    host: HostChange {
                        host: (!host.is_empty()).then_some(host),
                        seq: reply.next::<Option<u64>>()?.unwrap_or(0),
                    },
                })
            }
            "not_seated" => Ok(TransferOutcome::NotSeated),
            "not_member" => Ok(TransferOutcome::NotMember),
            _ => Err(reply.unknown()),
        }
    }

    /// Moves a waiting user to a guest seat if one is free.
    #[instrument(name = "mc.room.admit", skip_all, fields(meeting_code = %room.code))]
    pub async fn admit(
        &self,
        room: &OwnedRoom,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<AdmitOutcome, RoomError> {
        check_id(user_id, "user id must be 1 to 128 bytes")?;
        let mut call = self.call(&self.scripts.admit, &room.code, Some(room.token));
        call.arg(user_id).arg(format_timestamp(now));
        let mut reply = self.run_guarded("admit", &call).await?;
        match reply.outcome() {
            "admitted" => Ok(AdmitOutcome::Admitted {
                participant_count: reply.next()?,
                already_admitted: reply.next_flag()?,
                seat: reply.next::<Option<u64>>()?.unwrap_or(0),
            }),
            "full" => Ok(AdmitOutcome::Full),
            "not_in_lobby" => Ok(AdmitOutcome::NotInLobby),
            _ => Err(reply.unknown()),
        }
    }

    /// Removes a waiting user from the lobby, telling them `reason` (and remembering it until
    /// they join again, for a socket they open later).
    #[instrument(name = "mc.room.reject", skip_all, fields(meeting_code = %room.code))]
    pub async fn reject(
        &self,
        room: &OwnedRoom,
        user_id: &str,
        reason: &str,
    ) -> Result<RejectOutcome, RoomError> {
        check_id(user_id, "user id must be 1 to 128 bytes")?;
        check_reason(reason)?;
        let mut call = self.call(&self.scripts.reject, &room.code, Some(room.token));
        call.arg(user_id).arg(reason);
        let reply = self.run_guarded("reject", &call).await?;
        match reply.outcome() {
            "rejected" => Ok(RejectOutcome::Rejected),
            "not_in_lobby" => Ok(RejectOutcome::NotInLobby),
            _ => Err(reply.unknown()),
        }
    }

    /// Admits the lobby oldest `waiting_since` first (ties by user id) while seats remain.
    #[instrument(name = "mc.room.admit_all", skip_all, fields(meeting_code = %room.code))]
    pub async fn admit_all(
        &self,
        room: &OwnedRoom,
        now: DateTime<Utc>,
    ) -> Result<AdmitAllOutcome, RoomError> {
        let mut call = self.call(&self.scripts.admit_all, &room.code, Some(room.token));
        call.arg(format_timestamp(now));
        let reply = self.run_guarded("admit_all", &call).await?;
        lobby_moves(reply, "admitted")
    }

    /// Removes the user from the seats or the lobby, telling the room `reason`; clears the
    /// active speaker if it was them.
    pub async fn leave(
        &self,
        room: &OwnedRoom,
        user_id: &str,
        reason: &str,
    ) -> Result<LeaveOutcome, RoomError> {
        self.leave_checked(room, user_id, reason, None).await
    }

    /// [`RoomStore::leave`] for a seat only, and only if its `connection` is still
    /// `connection` (`""`: none): the end of a reconnect grace, which must not unseat a user
    /// who reconnected meanwhile. Otherwise [`LeaveOutcome::NotPresent`].
    pub async fn leave_if_connection(
        &self,
        room: &OwnedRoom,
        user_id: &str,
        reason: &str,
        connection: &str,
    ) -> Result<LeaveOutcome, RoomError> {
        self.leave_checked(room, user_id, reason, Some(connection))
            .await
    }

    /// Takes the user out on the host's order, seated or waiting (DESIGN §12): they are told
    /// `removed`, the room or the host hears them go with `reason`, and they are remembered
    /// until the meeting ends: their joins are refused ([`Admission::Removed`]), and so are
    /// sockets they open later. Answers as [`RoomStore::leave`] (NotPresent when they were
    /// neither seated nor waiting; they are remembered all the same).
    #[instrument(name = "mc.room.remove", skip_all, fields(meeting_code = %room.code))]
    pub async fn remove(
        &self,
        room: &OwnedRoom,
        user_id: &str,
        reason: &str,
    ) -> Result<RemoveOutcome, RoomError> {
        check_id(user_id, "user id must be 1 to 128 bytes")?;
        check_reason(reason)?;
        let mut call = self.call(&self.scripts.remove, &room.code, Some(room.token));
        call.arg(user_id).arg(reason);
        let reply = self.run_guarded("remove", &call).await?;
        if reply.outcome() == "is_host" {
            return Ok(RemoveOutcome::IsHost);
        }
        leave_outcome(reply, user_id).map(RemoveOutcome::Removed)
    }

    #[instrument(name = "mc.room.leave", skip_all, fields(meeting_code = %room.code))]
    async fn leave_checked(
        &self,
        room: &OwnedRoom,
        user_id: &str,
        reason: &str,
        connection: Option<&str>,
    ) -> Result<LeaveOutcome, RoomError> {
        check_id(user_id, "user id must be 1 to 128 bytes")?;
        check_reason(reason)?;
        let mut call = self.call(&self.scripts.leave, &room.code, Some(room.token));
        call.arg(user_id).arg(reason);
        if let Some(connection) = connection {
            call.arg(connection);
        }
        let reply = self.run_guarded("leave", &call).await?;
        leave_outcome(reply, user_id)
    }

    /// Stores new settings and capacity of `version` (0: unversioned, always stored) unless
    /// the room holds a newer version. When the waiting room is off afterwards, the lobby is
    /// admitted as by [`RoomStore::admit_all`]. A capacity below the current count unseats
    /// nobody; it only stops admissions until enough people left.
    #[instrument(name = "mc.room.update_settings", skip_all, fields(meeting_code = %room.code))]
    pub async fn update_settings(
        &self,
        room: &OwnedRoom,
        settings: &MeetingSettings,
        max_participants: u32,
        version: u64,
        now: DateTime<Utc>,
    ) -> Result<SettingsOutcome, RoomError> {
        check_capacity(max_participants)?;
        let mut call = self.call(&self.scripts.update_settings, &room.code, Some(room.token));
        call.arg(encode_settings(settings)?)
            .arg(max_participants)
            .arg(format_timestamp(now));
        if version > 0 {
            call.arg(version.to_string());
        }
        let mut reply = self.run_guarded("update_settings", &call).await?;
        let stale = match reply.outcome() {
            "updated" => false,
            "stale" => true,
            _ => return Err(reply.unknown()),
        };
        let moves = AdmitAllOutcome {
            admitted: reply.next()?,
            still_waiting: reply.next()?,
            participant_count: reply.next()?,
            seats: reply.next()?,
        };
        let held: Option<String> = reply.next()?;
        let settings_version = match held.as_deref() {
            None | Some("") => 0,
            Some(text) => text
                .parse()
                .map_err(|_| unexpected("settings version", &text))?,
        };
        Ok(SettingsOutcome {
            moves,
            stale,
            settings_version,
        })
    }

    /// Tells everyone in the room and the lobby `meeting.ended` with `reason`, then deletes
    /// every key of the room. Ending a room that is gone already is not an error.
    #[instrument(name = "mc.room.end", skip_all, fields(meeting_code = %room.code))]
    pub async fn end_room(&self, room: &OwnedRoom, reason: &str) -> Result<EndOutcome, RoomError> {
        check_reason(reason)?;
        let mut call = self.call(&self.scripts.end_room, &room.code, Some(room.token));
        call.arg(reason);
        let reply = self.run_guarded("end_room", &call).await?;
        match reply.outcome() {
            "ended" => Ok(EndOutcome::Ended),
            "already_gone" => Ok(EndOutcome::AlreadyGone),
            _ => Err(reply.unknown()),
        }
    }

    /// Gives every key of a live room the full TTL again.
    #[instrument(name = "mc.room.touch", skip_all, fields(meeting_code = %room.code))]
    pub async fn touch(&self, room: &OwnedRoom) -> Result<(), RoomError> {
        let call = self.call(&self.scripts.touch, &room.code, Some(room.token));
        let reply = self.run_guarded("touch", &call).await?;
        match reply.outcome() {
            "touched" => Ok(()),
            _ => Err(reply.unknown()),
        }
    }

    /// Makes a seated participant the active speaker, or clears it with `None`.
    #[instrument(name = "mc.room.set_active_speaker", skip_all, fields(meeting_code = %room.code))]
    pub async fn set_active_speaker(
        &self,
        room: &OwnedRoom,
        user_id: Option<&str>,
    ) -> Result<SpeakerOutcome, RoomError> {
        let mut call = self.call(
            &self.scripts.set_active_speaker,
            &room.code,
            Some(room.token),
        );
        if let Some(user_id) = user_id {
            check_id(user_id, "user id must be 1 to 128 bytes")?;
            call.arg(user_id);
        }
        let mut reply = self.run_guarded("set_active_speaker", &call).await?;
        match reply.outcome() {
            "changed" => Ok(SpeakerOutcome::Changed {
                previous: reply.next()?,
            }),
            "unchanged" => Ok(SpeakerOutcome::Unchanged),
            "not_a_participant" => Ok(SpeakerOutcome::NotAParticipant),
            _ => Err(reply.unknown()),
        }
    }

    /// Changes a seated participant's status, language, hardware result or connection;
    /// `None` when the user has no seat, or, with `if_connection`, when the seat's connection
    /// is no longer that one (`""`: none). Changes clients see are broadcast as
    /// `participant.updated`.
    #[instrument(name = "mc.room.set_participant_fields", skip_all, fields(meeting_code = %room.code))]
    pub async fn set_participant_fields(
        &self,
        room: &OwnedRoom,
        user_id: &str,
        update: &ParticipantUpdate,
        if_connection: Option<&str>,
    ) -> Result<Option<Participant>, RoomError> {
        check_id(user_id, "user id must be 1 to 128 bytes")?;
        if let Some(Some(language)) = &update.language
            && language.len() > MAX_LANGUAGE_BYTES
        {
            return Err(RoomError::InvalidInput("language tag too long"));
        }
        if let Some(Some(connection)) = &update.connection {
            check_id(connection, "connection id must be 1 to 128 bytes")?;
        }
        let patch = serde_json::to_string(update)
            .map_err(|_| RoomError::InvalidInput("unencodable update"))?;
        let mut call = self.call(
            &self.scripts.set_participant_fields,
            &room.code,
            Some(room.token),
        );
        call.arg(user_id).arg(patch);
        if let Some(connection) = if_connection {
            call.arg(connection);
        }
        let mut reply = self.run_guarded("set_participant_fields", &call).await?;
        match reply.outcome() {
            "updated" => {
                let json: Vec<u8> = reply.next()?;
                Ok(Some(decode_participant(user_id, &json)?))
            }
            "not_a_participant" => Ok(None),
            _ => Err(reply.unknown()),
        }
    }

    /// A consistent snapshot of the room, read in one script.
    #[instrument(name = "mc.room.state", skip_all, fields(meeting_code = %code))]
    pub async fn state(&self, code: &MeetingCode) -> Result<RoomState, RoomError> {
        let call = self.call(&self.scripts.state, code, None);
        let reply = self.run("state", &call).await?;
        records::decode_state(Reply::parse(reply)?)
    }

    /// The script with the room's six keys and the two common arguments.
    fn call<'a>(
        &self,
        script: &'a Script,
        code: &MeetingCode,
        token: Option<FencingToken>,
    ) -> ScriptInvocation<'a> {
        let mut call = script.prepare_invoke();
        for key in self.keys(code).all() {
            call.key(key);
        }
        call.arg(token.map(|t| t.0.to_string()).unwrap_or_default())
            .arg(self.ttl_ms);
        call
    }

    async fn run_guarded(
        &self,
        command: &'static str,
        call: &ScriptInvocation<'_>,
    ) -> Result<Reply, RoomError> {
        Reply::guarded(self.run(command, call).await?)
    }

    /// Runs a script, timing it (pool wait included) under `command`, one of the operation
    /// names above, so the label stays bounded.
    async fn run(
        &self,
        command: &'static str,
        call: &ScriptInvocation<'_>,
    ) -> Result<Value, RoomError> {
        timed(command, self.redis.invoke(call)).await
    }
}

async fn timed<T>(
    command: &'static str,
    operation: impl Future<Output = Result<T, RoomError>>,
) -> Result<T, RoomError> {
    debug_assert!(
        command == "ping" || crate::metrics::ROOM_OPERATIONS.contains(&command),
        "{command} is missing from metrics::ROOM_OPERATIONS"
    );
    let started = Instant::now();
    let result = operation.await;
    metrics::histogram!("mc_redis_command_duration_seconds", "command" => command)
        .record(started.elapsed().as_secs_f64());
    if let Err(error) = &result {
        metrics::counter!("mc_redis_command_errors_total", "command" => command).increment(1);
        tracing::warn!(command, error = ?error, "room script failed");
    }
    result
}

fn lobby_moves(mut reply: Reply, expected: &str) -> Result<AdmitAllOutcome, RoomError> {
    if reply.outcome() != expected {
        return Err(reply.unknown());
    }
    Ok(AdmitAllOutcome {
        admitted: reply.next()?,
        still_waiting: reply.next()?,
        participant_count: reply.next()?,
        seats: reply.next()?,
    })
}

fn encode_settings(settings: &MeetingSettings) -> Result<String, RoomError> {
    serde_json::to_string(settings).map_err(|_| RoomError::InvalidInput("unencodable settings"))
}

/// `what` is the whole message, e.g. "user id must be 1 to 128 bytes".
fn check_id(id: &str, what: &'static str) -> Result<(), RoomError> {
    if id.is_empty() || id.len() > MAX_ID_BYTES {
        return Err(RoomError::InvalidInput(what));
    }
    Ok(())
}

/// Reasons are short identifiers (`left`, `connection_lost`, `ended_by_host`).
fn check_reason(reason: &str) -> Result<(), RoomError> {
    if reason.is_empty() || reason.len() > MAX_REASON_BYTES {
        return Err(RoomError::InvalidInput("reason must be 1 to 64 bytes"));
    }
    Ok(())
}

fn check_display_name(name: &str) -> Result<(), RoomError> {
    if name.len() > MAX_DISPLAY_NAME_BYTES {
        return Err(RoomError::InvalidInput("display name too long"));
    }
    Ok(())
}

fn check_capacity(max_participants: u32) -> Result<(), RoomError> {
    if max_participants == 0 {
        return Err(RoomError::InvalidInput(
            "max_participants must be at least 1",
        ));
    }
    Ok(())
}

/// The reply of `leave.lua` or `remove.lua`.
fn leave_outcome(mut reply: Reply, user_id: &str) -> Result<LeaveOutcome, RoomError> {
    match reply.outcome() {
        "left" => {
            let was = match reply.next::<String>()?.as_str() {
                "participant" => Presence::Participant,
                "lobby" => Presence::Lobby,
                other => return Err(unexpected("presence", &other)),
            };
            let remaining_participants = reply.next()?;
            let cleared_active_speaker = reply.next_flag()?;
            let last_seat = reply.next::<Option<u64>>()?.unwrap_or(0);
            let seat = match reply.next::<Option<Vec<u8>>>()? {
                Some(json) => Some(Box::new(decode_participant(user_id, &json)?)),
                None => None,
            };
            let host_change = match reply.next::<Option<u64>>()?.unwrap_or(0) {
                0 => None,
                seq => {
                    let host: String = reply.next()?;
                    Some(HostChange {
                        host: (!host.is_empty()).then_some(host),
                        seq,
                    })
                }
            };
            Ok(LeaveOutcome::Left {
                was,
                remaining_participants,
                cleared_active_speaker,
                seat,
                last_seat,
                host_change,
            })
        }
        "not_present" => Ok(LeaveOutcome::NotPresent {
            participant_count: reply.next()?,
            last_seat: reply.next::<Option<u64>>()?.unwrap_or(0),
        }),
        _ => Err(reply.unknown()),
    }
}
