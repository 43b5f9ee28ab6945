//! The harness of the room tests: a store over a single Redis (the shared one of REDIS_URL,
//! under a key prefix of this test's own) or over a Redis Cluster of this test's own, and a
//! room wrapper that checks the room's invariants after every operation.

pub mod cluster;

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::meeting_code::MeetingCode;
use common::settings::MeetingSettings;
use deadpool_redis::redis::cmd;
use mc_service::room::{
    AdmitAllOutcome, AdmitOutcome, EndOutcome, FencingToken, JoinOutcome, KeyPrefix, LeaveOutcome,
    MaxGuestsWaiting, OwnedRoom, Participant, ParticipantUpdate, RedisPool, RejectOutcome,
    RemoveOutcome, Role, RoomError, RoomKeys, RoomMeta, RoomState, RoomStore, RoomStoreConfig,
    SpeakerOutcome,
};

use cluster::RedisCluster;

/// Room operations run on many connections at once in the concurrency tests.
const POOL_SIZE: usize = 64;
/// Short, so that rooms a test leaves behind on the shared Redis are gone soon after it.
pub const TTL: Duration = Duration::from_secs(10 * 60);

/// Generates one test per backend for each named scenario `async fn name(h: Harness)` of the
/// module it is called in: `single::name` and `cluster::name`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod single {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::support::Harness::single().await).await
                }
            )*
        }
        mod cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::support::Harness::cluster().await).await
                }
            )*
        }
    };
}

pub struct Harness {
    pub store: RoomStore,
    /// Where the room's events can be followed: the server, or every node of the cluster.
    pub urls: Vec<String>,
    // Shut down when the test ends, after the store's connections.
    _cluster: Option<RedisCluster>,
}

fn url_of_env() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub fn random_code() -> MeetingCode {
    MeetingCode::generate(&ring::rand::SystemRandom::new()).unwrap()
}

pub fn now() -> DateTime<Utc> {
    Utc::now()
}

/// A user id as callers pass them (a UUID in production; any distinct text here).
pub fn user(n: usize) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

pub fn settings(waiting_room_enabled: bool) -> MeetingSettings {
    MeetingSettings {
        waiting_room_enabled,
        ..MeetingSettings::default()
    }
}

impl Harness {
    pub async fn single() -> Self {
        let pool = RedisPool::single(&url_of_env(), Some(POOL_SIZE)).unwrap();
        Self::with(pool, vec![url_of_env()], None)
    }

    /// A store that reaches Redis at `url` (a fault proxy in front of REDIS_URL's server),
    /// while the harness's own checks read REDIS_URL directly.
    pub async fn single_at(url: &str) -> Self {
        let pool = RedisPool::single(url, Some(POOL_SIZE)).unwrap();
        Self::with(pool, vec![url_of_env()], None)
    }

    /// REDIS_URL, for a proxy in front of it.
    pub fn url() -> String {
        url_of_env()
    }

    pub async fn cluster() -> Self {
        let cluster = tokio::task::spawn_blocking(RedisCluster::start)
            .await
            .unwrap();
        let pool = RedisPool::cluster(cluster.urls(), Some(POOL_SIZE)).unwrap();
        let urls = cluster.urls();
        Self::with(pool, urls, Some(cluster))
    }

    fn with(pool: RedisPool, urls: Vec<String>, cluster: Option<RedisCluster>) -> Self {
        // A key space of this test's own: tests share the one Redis of REDIS_URL.
        let prefix = format!("test:{}:", random_code());
        let config = RoomStoreConfig {
            key_prefix: KeyPrefix::parse(&prefix).unwrap(),
            ttl: TTL,
        };
        Self {
            store: RoomStore::new(pool, config).unwrap(),
            urls,
            _cluster: cluster,
        }
    }

    pub fn meta(max_participants: u32, settings: MeetingSettings) -> RoomMeta {
        RoomMeta {
            settings_version: 0,
            meeting_id: "6d1f3a4e-0000-4000-8000-000000000001".into(),
            host_id: user(0),
            creator_id: String::new(),
            host_seq: 0,
            max_participants,
            settings,
        }
    }

    /// A fresh room owned by "mc-a" under token 1.
    pub async fn room(&self, max_participants: u32, waiting_room_enabled: bool) -> Room<'_> {
        let code = random_code();
        let meta = Self::meta(max_participants, settings(waiting_room_enabled));
        self.store
            .assign(&code, &meta, FencingToken(1), "mc-a")
            .await
            .unwrap();
        let room = self.room_handle(OwnedRoom::new(code, FencingToken(1)));
        room.check().await;
        room
    }

    pub fn room_handle(&self, owned: OwnedRoom) -> Room<'_> {
        Room { h: self, owned }
    }

    pub async fn members(&self, keys: &RoomKeys) -> (HashSet<String>, HashSet<String>) {
        let seated: Vec<String> = self
            .store
            .redis()
            .query(cmd("HKEYS").arg(&keys.participants))
            .await
            .unwrap();
        let waiting: Vec<String> = self
            .store
            .redis()
            .query(cmd("SMEMBERS").arg(&keys.lobby))
            .await
            .unwrap();
        (seated.into_iter().collect(), waiting.into_iter().collect())
    }

    /// PTTL of each key: -2 missing, -1 no TTL, else milliseconds left.
    pub async fn pttls(&self, keys: &RoomKeys) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        for key in keys.all() {
            let pttl: i64 = self
                .store
                .redis()
                .query(cmd("PTTL").arg(key))
                .await
                .unwrap();
            out.push((key.to_owned(), pttl));
        }
        out
    }

    /// Every key of the room that exists expires within the configured TTL.
    pub async fn assert_every_key_has_a_ttl(&self, code: &MeetingCode) {
        let limit = i64::try_from(TTL.as_millis()).unwrap();
        for (key, pttl) in self.pttls(&self.store.keys(code)).await {
            assert!(
                pttl == -2 || (pttl > 0 && pttl <= limit),
                "{key} has PTTL {pttl}"
            );
        }
    }

    pub async fn assert_no_key_left(&self, code: &MeetingCode) {
        for (key, pttl) in self.pttls(&self.store.keys(code)).await {
            assert_eq!(pttl, -2, "{key} still exists");
        }
    }
}

/// A room as its owner sees it; every operation is followed by [`Room::check`].
pub struct Room<'a> {
    pub h: &'a Harness,
    pub owned: OwnedRoom,
}

impl Room<'_> {
    pub fn code(&self) -> &MeetingCode {
        &self.owned.code
    }

    pub fn keys(&self) -> RoomKeys {
        self.h.store.keys(self.code())
    }

    /// The invariants that hold after any operation: every key has a TTL, nobody is both
    /// seated and waiting, and the lobby set and its details name the same people.
    pub async fn check(&self) {
        self.h.assert_every_key_has_a_ttl(self.code()).await;
        let keys = self.keys();
        let (seated, waiting) = self.h.members(&keys).await;
        let both: Vec<_> = seated.intersection(&waiting).collect();
        assert!(both.is_empty(), "seated and waiting at once: {both:?}");
        let details: Vec<String> = self
            .h
            .store
            .redis()
            .query(cmd("HKEYS").arg(&keys.lobby_details))
            .await
            .unwrap();
        assert_eq!(
            details.into_iter().collect::<HashSet<_>>(),
            waiting,
            "lobby and lobby_details disagree"
        );
        // The count of guests waiting the scripts keep is the lobby's (when the room keeps one).
        let kept: Option<u64> = self
            .h
            .store
            .redis()
            .query(cmd("HGET").arg(&keys.meta).arg("guests_waiting"))
            .await
            .unwrap();
        if let Some(kept) = kept {
            let details: Vec<String> = self
                .h
                .store
                .redis()
                .query(cmd("HVALS").arg(&keys.lobby_details))
                .await
                .unwrap();
            let guests = details
                .iter()
                .filter(|d| {
                    serde_json::from_str::<serde_json::Value>(d)
                        .is_ok_and(|v| v["guest"] == serde_json::Value::Bool(true))
                })
                .count() as u64;
            assert_eq!(
                kept, guests,
                "the count of guests waiting is not the lobby's"
            );
        }
        // At most one seat holds the host's role, and it is the room's host (DESIGN §12).
        if let Ok(state) = self.h.store.state(self.code()).await {
            let hosts: Vec<&str> = state
                .participants
                .iter()
                .filter(|p| p.role == Role::Host)
                .map(|p| p.user_id.as_str())
                .collect();
            assert!(hosts.len() <= 1, "two hosts: {hosts:?}");
            if let Some(host) = hosts.first() {
                assert_eq!(*host, state.host_id, "a host's seat the room does not name");
            }
        }
    }

    /// Seats never exceed `max` (for tests that never lower the capacity).
    pub async fn assert_at_most(&self, max: usize) {
        let (seated, _) = self.h.members(&self.keys()).await;
        assert!(seated.len() <= max, "{} seats > {max}", seated.len());
    }

    pub async fn join(
        &self,
        user_id: &str,
        name: &str,
        role: Role,
    ) -> Result<JoinOutcome, RoomError> {
        let out = self
            .h
            .store
            .join(&self.owned, user_id, name, role, None, true, now())
            .await;
        self.check().await;
        out
    }

    /// A guest's join (a person without an account), with the lobby's cap of guests.
    pub async fn join_guest(
        &self,
        user_id: &str,
        name: &str,
        max_guests: u32,
    ) -> Result<JoinOutcome, RoomError> {
        let out = self
            .h
            .store
            .join(
                &self.owned,
                user_id,
                name,
                Role::Guest,
                Some(MaxGuestsWaiting(max_guests)),
                false,
                now(),
            )
            .await;
        self.check().await;
        out
    }

    pub async fn join_as(&self, user_id: &str, role: Role) -> JoinOutcome {
        self.join(user_id, "Ada Lovelace", role).await.unwrap()
    }

    pub async fn admit(&self, user_id: &str) -> Result<AdmitOutcome, RoomError> {
        let out = self.h.store.admit(&self.owned, user_id, now()).await;
        self.check().await;
        out
    }

    pub async fn reject(&self, user_id: &str) -> Result<RejectOutcome, RoomError> {
        let out = self.h.store.reject(&self.owned, user_id, "rejected").await;
        self.check().await;
        out
    }

    /// The host's removal of someone who is not the host.
    pub async fn remove(&self, user_id: &str) -> Result<LeaveOutcome, RoomError> {
        match self.remove_outcome(user_id).await? {
            RemoveOutcome::Removed(outcome) => Ok(outcome),
            RemoveOutcome::IsHost => panic!("{user_id} is the room's host"),
        }
    }

    pub async fn remove_outcome(&self, user_id: &str) -> Result<RemoveOutcome, RoomError> {
        let out = self
            .h
            .store
            .remove(&self.owned, user_id, "removed_by_host")
            .await;
        self.check().await;
        out
    }

    pub async fn admit_all(&self) -> Result<AdmitAllOutcome, RoomError> {
        let out = self.h.store.admit_all(&self.owned, now()).await;
        self.check().await;
        out
    }

    pub async fn leave(&self, user_id: &str) -> Result<LeaveOutcome, RoomError> {
        let out = self.h.store.leave(&self.owned, user_id, "left").await;
        self.check().await;
        out
    }

    pub async fn update_settings(
        &self,
        waiting_room_enabled: bool,
        max: u32,
    ) -> Result<AdmitAllOutcome, RoomError> {
        let out = self
            .h
            .store
            .update_settings(&self.owned, &settings(waiting_room_enabled), max, 0, now())
            .await;
        self.check().await;
        out.map(|out| out.moves)
    }

    pub async fn end(&self) -> Result<EndOutcome, RoomError> {
        let out = self.h.store.end_room(&self.owned, "ended_by_host").await;
        self.check().await;
        out
    }

    pub async fn touch(&self) -> Result<(), RoomError> {
        let out = self.h.store.touch(&self.owned).await;
        self.check().await;
        out
    }

    pub async fn set_active_speaker(
        &self,
        user_id: Option<&str>,
    ) -> Result<SpeakerOutcome, RoomError> {
        let out = self.h.store.set_active_speaker(&self.owned, user_id).await;
        self.check().await;
        out
    }

    pub async fn set_fields(
        &self,
        user_id: &str,
        update: &ParticipantUpdate,
    ) -> Result<Option<Participant>, RoomError> {
        let out = self
            .h
            .store
            .set_participant_fields(&self.owned, user_id, update, None)
            .await;
        self.check().await;
        out
    }

    pub async fn state(&self) -> RoomState {
        self.h.store.state(self.code()).await.unwrap()
    }
}
