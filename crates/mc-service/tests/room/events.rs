//! Every change of a room publishes its events in the same step (lua/prelude.lua,
//! `publish`), numbered by the room's `seq`, on the room's channel: what the signaling sockets
//! of every MC hear. Every event the scripts publish must read as a typed
//! [`RoomMessage`] that holds all of it, and the scenario below runs every publish site of the
//! scripts (listed in [`PUBLISH_SITES`], which a test holds to the scripts' source).

use std::time::Duration;

use bytes::Bytes;
use deadpool_redis::redis;
use futures::StreamExt;
use mc_service::room::HardwareReady;
use mc_service::room::events::{Audience, RoomEvent, RoomMessage};
use mc_service::room::{LeaveOutcome, ParticipantStatus, ParticipantUpdate, Role, TransferOutcome};
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{Harness, Room, user};

/// Every `publish` call of the room scripts: the script, the audience letters and the event's
/// `type`. A publish site added to a script without a line here fails
/// `every_publish_site_of_the_scripts_is_listed`; one the scenario does not run fails it.
const PUBLISH_SITES: [(&str, &str, &str); 23] = [
    ("join.lua", "s", "admitted"),
    ("join.lua", "h", "lobby.left"),
    ("prelude.lua", "r", "participant.updated"),
    ("prelude.lua", "l", "lobby.no_host"),
    ("join.lua", "s", "lobby.no_host"),
    ("prelude.lua", "r", "participant.joined"),
    ("prelude.lua", "s", "admitted"),
    ("prelude.lua", "h", "lobby.left"),
    ("prelude.lua", "h", "lobby.joined"),
    ("reject.lua", "s", "rejected"),
    ("reject.lua", "h", "lobby.left"),
    ("leave.lua", "rs", "participant.left"),
    ("prelude.lua", "r", "active_speaker"),
    ("leave.lua", "hs", "lobby.left"),
    ("remove.lua", "s", "removed"),
    ("remove.lua", "r", "participant.left"),
    ("remove.lua", "s", "removed"),
    ("remove.lua", "h", "lobby.left"),
    ("set_participant_fields.lua", "r", "participant.updated"),
    ("set_active_speaker.lua", "r", "active_speaker"),
    ("set_active_speaker.lua", "r", "active_speaker"),
    ("update_settings.lua", "rl", "settings.updated"),
    ("end_room.lua", "rl", "meeting.ended"),
];

/// Follows one room's channel.
struct Listener {
    stream: redis::aio::PubSubStream,
    _sink: redis::aio::PubSubSink,
    /// The audience letters and `type` of every event read.
    seen: Vec<(String, String)>,
}

impl Listener {
    async fn new(h: &Harness, room: &Room<'_>) -> Self {
        let client = redis::Client::open(h.urls[0].as_str()).unwrap();
        let (mut sink, stream) = client.get_async_pubsub().await.unwrap().split();
        sink.subscribe(&room.keys().events).await.unwrap();
        Self {
            stream,
            _sink: sink,
            seen: Vec::new(),
        }
    }

    /// The next event, which must read as a typed message holding every field the script
    /// published.
    async fn next(&mut self) -> RoomEvent {
        let message = tokio::time::timeout(Duration::from_secs(5), self.stream.next())
            .await
            .expect("no event in time")
            .expect("the subscription ended");
        let event = RoomEvent::parse(Bytes::copy_from_slice(message.get_payload_bytes()))
            .unwrap_or_else(|error| {
                panic!(
                    "{error}: {:?}",
                    String::from_utf8_lossy(message.get_payload_bytes())
                )
            });
        let published: Value = serde_json::from_str(event.json.as_str()).unwrap();
        assert_eq!(
            serde_json::to_value(&event.message).unwrap(),
            published,
            "the typed event is all the script published"
        );
        self.seen.push((
            letters(event.audience),
            event.message.type_name().to_owned(),
        ));
        event
    }

    /// The next `n` events as (audience letters, subject, JSON), checking they are numbered
    /// one after another from `after`.
    async fn take(&mut self, n: usize, after: &mut u64) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        for _ in 0..n {
            let event = self.next().await;
            assert_eq!(event.seq, *after + 1, "events are numbered in order");
            *after = event.seq;
            let json: Value = serde_json::from_str(event.json.as_str()).unwrap();
            out.push((letters(event.audience), event.subject, json));
        }
        out
    }

    /// Nothing else was published (a ping on the connection comes back first).
    async fn assert_quiet(&mut self) {
        let pending = tokio::time::timeout(Duration::from_millis(100), self.stream.next()).await;
        assert!(pending.is_err(), "an unexpected event");
    }
}

fn letters(a: Audience) -> String {
    [
        (a.seated, 'r'),
        (a.waiting, 'l'),
        (a.host, 'h'),
        (a.subject, 's'),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, c)| *c)
    .collect()
}

fn e(audience: &str, subject: &str, json: Value) -> (String, String, Value) {
    (audience.to_owned(), subject.to_owned(), json)
}

async fn every_change_publishes_its_events_in_order(h: Harness) {
    let room = h.room(5, true).await;
    let mut events = Listener::new(&h, &room).await;
    let mut seq = room.state().await.seq;
    let (host, ann, bob) = (user(0), user(1), user(2));

    room.join_as(&host, Role::Host).await;
    room.join(&ann, "Ann", Role::Guest).await.unwrap();
    assert_eq!(
        events.take(2, &mut seq).await,
        vec![
            e(
                "r",
                &host,
                json!({"type": "participant.joined", "user_id": host, "display_name": "Ada Lovelace", "role": "host"})
            ),
            e(
                "h",
                &ann,
                json!({"type": "lobby.joined", "user_id": ann, "display_name": "Ann"})
            ),
        ]
    );

    room.admit(&ann).await.unwrap();
    assert_eq!(
        events.take(3, &mut seq).await,
        vec![
            e("s", &ann, json!({"type": "admitted"})),
            e(
                "h",
                &ann,
                json!({"type": "lobby.left", "user_id": ann, "reason": "admitted"})
            ),
            e(
                "r",
                &ann,
                json!({"type": "participant.joined", "user_id": ann, "display_name": "Ann", "role": "guest"})
            ),
        ]
    );
    assert!(
        room.state()
            .await
            .participants
            .iter()
            .any(|p| p.user_id == ann && p.from_lobby)
    );

    // A rejection is remembered until the user asks again.
    room.join(&bob, "Bob", Role::Guest).await.unwrap();
    room.reject(&bob).await.unwrap();
    let taken = events.take(3, &mut seq).await;
    assert_eq!(
        &taken[1..],
        &[
            e("s", &bob, json!({"type": "rejected", "reason": "rejected"})),
            e(
                "h",
                &bob,
                json!({"type": "lobby.left", "user_id": bob, "reason": "rejected"})
            ),
        ]
    );
    assert_eq!(
        room.state().await.rejected.get(&bob).map(String::as_str),
        Some("rejected")
    );
    room.join(&bob, "Bob", Role::Guest).await.unwrap();
    events.take(1, &mut seq).await;
    assert!(room.state().await.rejected.is_empty());

    // Field changes broadcast what changed, once; the connection id is nobody's business.
    let update = ParticipantUpdate {
        language: Some(Some("pt-BR".into())),
        connection: Some(Some("conn-1".into())),
        ..ParticipantUpdate::default()
    };
    room.set_fields(&ann, &update).await.unwrap().unwrap();
    room.set_fields(&ann, &update).await.unwrap().unwrap();
    assert_eq!(
        events.take(1, &mut seq).await,
        vec![e(
            "r",
            &ann,
            json!({"type": "participant.updated", "user_id": ann, "language": "pt-BR"})
        )]
    );
    events.assert_quiet().await;

    // A status, the device test and a language cleared: what changed, null for a cleared field.
    let update = ParticipantUpdate {
        status: Some(ParticipantStatus::Reconnecting),
        hardware_ready: Some(Some(HardwareReady {
            audio_ready: true,
            video_ready: false,
        })),
        ..ParticipantUpdate::default()
    };
    room.set_fields(&host, &update).await.unwrap().unwrap();
    let cleared = ParticipantUpdate {
        language: Some(None),
        ..ParticipantUpdate::default()
    };
    room.set_fields(&ann, &cleared).await.unwrap().unwrap();
    assert_eq!(
        events.take(2, &mut seq).await,
        vec![
            e(
                "r",
                &host,
                json!({"type": "participant.updated", "user_id": host, "status": "reconnecting",
                       "hardware_ready": {"audio_ready": true, "video_ready": false}})
            ),
            e(
                "r",
                &ann,
                json!({"type": "participant.updated", "user_id": ann, "language": null})
            ),
        ]
    );

    // Leaving the lobby tells the host and the user.
    let carl = user(3);
    room.join(&carl, "Carl", Role::Guest).await.unwrap();
    room.leave(&carl).await.unwrap();
    assert_eq!(
        events.take(2, &mut seq).await,
        vec![
            e(
                "h",
                &carl,
                json!({"type": "lobby.joined", "user_id": carl, "display_name": "Carl"})
            ),
            e(
                "hs",
                &carl,
                json!({"type": "lobby.left", "user_id": carl, "reason": "left"})
            ),
        ]
    );

    // The speaker set, then cleared by the detector (clearing it again publishes nothing).
    room.set_active_speaker(Some(&host)).await.unwrap();
    room.set_active_speaker(None).await.unwrap();
    room.set_active_speaker(None).await.unwrap();
    assert_eq!(
        events.take(2, &mut seq).await,
        vec![
            e(
                "r",
                "",
                json!({"type": "active_speaker", "user_id": host, "previous_user_id": null})
            ),
            e(
                "r",
                "",
                json!({"type": "active_speaker", "user_id": null, "previous_user_id": host})
            ),
        ]
    );

    room.set_active_speaker(Some(&ann)).await.unwrap();
    room.set_active_speaker(Some(&ann)).await.unwrap();
    room.leave(&ann).await.unwrap();
    assert_eq!(
        events.take(3, &mut seq).await,
        vec![
            e(
                "r",
                "",
                json!({"type": "active_speaker", "user_id": ann, "previous_user_id": null})
            ),
            e(
                "rs",
                &ann,
                json!({"type": "participant.left", "user_id": ann, "reason": "left"})
            ),
            e(
                "r",
                "",
                json!({"type": "active_speaker", "user_id": null, "previous_user_id": ann})
            ),
        ]
    );

    // Turning the waiting room off tells everyone, then seats the lobby.
    room.update_settings(false, 5).await.unwrap();
    let moved = events.take(4, &mut seq).await;
    assert_eq!(moved[0].0, "rl");
    assert_eq!(moved[0].2["type"], "settings.updated");
    assert_eq!(moved[0].2["settings"]["waiting_room_enabled"], false);
    assert_eq!(moved[0].2["max_participants"], 5);
    assert_eq!(moved[1], e("s", &bob, json!({"type": "admitted"})));
    assert!(matches!(
        RoomEvent::parse(Bytes::from(format!("1 rl 0 {}", moved[0].2))).map(|e| e.message),
        Ok(RoomMessage::SettingsUpdated {
            max_participants: 5,
            ..
        })
    ));

    // A guest (a person without an account) waits even with the waiting room off, and is
    // marked so while waiting and once seated.
    let gus = user(4);
    room.join_guest(&gus, "Gus", 50).await.unwrap();
    room.admit(&gus).await.unwrap();
    assert_eq!(
        events.take(4, &mut seq).await,
        vec![
            e(
                "h",
                &gus,
                json!({"type": "lobby.joined", "user_id": gus, "display_name": "Gus", "guest": true})
            ),
            e("s", &gus, json!({"type": "admitted"})),
            e(
                "h",
                &gus,
                json!({"type": "lobby.left", "user_id": gus, "reason": "admitted"})
            ),
            e(
                "r",
                &gus,
                json!({"type": "participant.joined", "user_id": gus, "display_name": "Gus", "role": "guest", "guest": true})
            ),
        ]
    );

    // The host removes the seated guest: they are told first, then the room hears them go.
    room.remove(&gus).await.unwrap();
    assert_eq!(
        events.take(2, &mut seq).await,
        vec![
            e(
                "s",
                &gus,
                json!({"type": "removed", "reason": "removed_by_host"})
            ),
            e(
                "r",
                &gus,
                json!({"type": "participant.left", "user_id": gus, "reason": "removed_by_host"})
            ),
        ]
    );

    // The host hands the meeting over to Bob: both seats change role, and Bob gets the lobby.
    let handed = h
        .store
        .transfer_host(&room.owned, &host, &bob)
        .await
        .unwrap();
    assert!(matches!(handed, TransferOutcome::Transferred { .. }));
    assert_eq!(
        events.take(3, &mut seq).await,
        vec![
            e(
                "r",
                &host,
                json!({"type": "participant.updated", "user_id": host, "role": "guest"})
            ),
            e(
                "r",
                &bob,
                json!({"type": "participant.updated", "user_id": bob, "role": "host"})
            ),
            e("s", &bob, json!({"type": "host.granted", "lobby": []})),
        ]
    );
    // Bob leaves: the role passes back to the member seated longest.
    room.leave(&bob).await.unwrap();
    let passed = events.take(3, &mut seq).await;
    assert_eq!(passed[0].2["type"], "participant.left");
    assert_eq!(
        &passed[1..],
        &[
            e(
                "r",
                &host,
                json!({"type": "participant.updated", "user_id": host, "role": "host"})
            ),
            e("s", &host, json!({"type": "host.granted", "lobby": []})),
        ]
    );

    // The snapshot's number is the last event's.
    assert_eq!(room.state().await.seq, seq);
    room.end().await.unwrap();
    assert_eq!(
        events.take(1, &mut seq).await,
        vec![e(
            "rl",
            "",
            json!({"type": "meeting.ended", "reason": "ended_by_host"})
        )]
    );

    // A room whose host leaves only a guest seated has no host: the lobby hears so, and so
    // does whoever comes to wait; a new host is given the lobby with its guests marked.
    let other = h.room(5, true).await;
    let mut more = Listener::new(&h, &other).await;
    let mut other_seq = other.state().await.seq;
    other.join_as(&host, Role::Host).await;
    other.join_guest(&gus, "Gus", 10).await.unwrap();
    other.admit(&gus).await.unwrap();
    other.join_guest(&user(6), "Gil", 10).await.unwrap();
    more.take(6, &mut other_seq).await;
    other.leave(&host).await.unwrap();
    let gone = more.take(2, &mut other_seq).await;
    assert_eq!(gone[1], e("l", "", json!({"type": "lobby.no_host"})));
    other.join_as(&ann, Role::Guest).await;
    let waits = more.take(2, &mut other_seq).await;
    assert_eq!(waits[1], e("s", &ann, json!({"type": "lobby.no_host"})));
    other.join_as(&host, Role::Guest).await;
    let back = more.take(1, &mut other_seq).await;
    assert_eq!(back[0].2["role"], "host", "the creator is back as the host");
    other.join_as(&user(7), Role::Guest).await;
    other.admit(&user(7)).await.unwrap();
    more.take(4, &mut other_seq).await;
    h.store
        .transfer_host(&other.owned, &host, &user(7))
        .await
        .unwrap();
    let granted = more.take(3, &mut other_seq).await;
    assert_eq!(granted[2].0, "s");
    assert_eq!(granted[2].2["type"], "host.granted");
    let lobby = granted[2].2["lobby"].as_array().unwrap();
    assert_eq!(lobby.len(), 2, "{lobby:?}");
    assert_eq!(lobby[0]["user_id"], user(6));
    assert_eq!(lobby[0]["guest"], true);
    assert_eq!(lobby[1]["user_id"], ann);
    assert!(lobby[1].get("guest").is_none());
    events.seen.append(&mut more.seen);

    // Every publish site of the scripts ran, and read as its typed message.
    for (script, audience, kind) in PUBLISH_SITES {
        assert!(
            events
                .seen
                .iter()
                .any(|(a, k)| (a.as_str(), k.as_str()) == (audience, kind)),
            "{script}'s {kind} to {audience} was not published"
        );
    }
}

/// The `publish` calls of the scripts, read from their source: (script, audience, `type`).
fn publish_sites_in_the_scripts() -> Vec<(String, String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/room/lua");
    let mut sites = Vec::new();
    let mut scripts: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    scripts.sort();
    for path in scripts {
        let script = path.file_name().unwrap().to_string_lossy().into_owned();
        let source = std::fs::read_to_string(&path).unwrap();
        for (at, _) in source.match_indices("publish('") {
            let call = &source[at + "publish('".len()..];
            let audience = &call[..call.find('\'').unwrap()];
            // The event is a table literal in the call, or a local table named there.
            let statement = &call[..call.find('\n').unwrap()];
            let kind = match statement.find("type = '") {
                Some(start) => quoted(&statement[start + "type = '".len()..]),
                None => {
                    let name = statement
                        .rsplit(", ")
                        .next()
                        .unwrap()
                        .trim_end_matches(')')
                        .trim();
                    let local = source
                        .find(&format!("local {name}"))
                        .unwrap_or_else(|| panic!("{script}: no local {name}"));
                    let start = source[local..].find("type = '").unwrap() + local;
                    quoted(&source[start + "type = '".len()..])
                }
            };
            sites.push((script.clone(), audience.to_owned(), kind));
        }
    }
    sites
}

fn quoted(rest: &str) -> String {
    rest[..rest.find('\'').unwrap()].to_owned()
}

#[test]
fn every_publish_site_of_the_scripts_is_listed() {
    let mut found = publish_sites_in_the_scripts();
    let mut listed: Vec<(String, String, String)> = PUBLISH_SITES
        .iter()
        .map(|(s, a, k)| ((*s).to_owned(), (*a).to_owned(), (*k).to_owned()))
        .collect();
    found.sort();
    listed.sort();
    assert_eq!(found, listed);
}

async fn a_seat_claimed_by_a_newer_connection_is_not_unseated_by_an_older_grace(h: Harness) {
    let room = h.room(5, false).await;
    room.join_as(&user(1), Role::Guest).await;
    let claim = |id: &str| ParticipantUpdate {
        status: Some(ParticipantStatus::Connected),
        connection: Some(Some(id.to_owned())),
        ..ParticipantUpdate::default()
    };
    room.set_fields(&user(1), &claim("old"))
        .await
        .unwrap()
        .unwrap();
    room.set_fields(&user(1), &claim("new"))
        .await
        .unwrap()
        .unwrap();
    let owned =
        mc_service::room::OwnedRoom::new(room.code().clone(), mc_service::room::FencingToken(1));

    // The old connection can neither mark the seat nor end it.
    let reconnecting = ParticipantUpdate {
        status: Some(ParticipantStatus::Reconnecting),
        ..ParticipantUpdate::default()
    };
    let marked = h
        .store
        .set_participant_fields(&owned, &user(1), &reconnecting, Some("old"))
        .await
        .unwrap();
    assert_eq!(marked, None);
    let left = h
        .store
        .leave_if_connection(&owned, &user(1), "connection_lost", "old")
        .await
        .unwrap();
    assert!(matches!(left, LeaveOutcome::NotPresent { .. }));
    let seat = room
        .state()
        .await
        .participants
        .into_iter()
        .find(|p| p.user_id == user(1))
        .unwrap();
    assert_eq!(
        (seat.status, seat.connection.as_deref()),
        (ParticipantStatus::Connected, Some("new"))
    );

    // The current one can.
    let left = h
        .store
        .leave_if_connection(&owned, &user(1), "connection_lost", "new")
        .await
        .unwrap();
    assert!(matches!(left, LeaveOutcome::Left { .. }));
    // A conditional leave never touches the lobby.
    let room2 = h.room(5, true).await;
    room2.join_as(&user(2), Role::Guest).await;
    let owned2 =
        mc_service::room::OwnedRoom::new(room2.code().clone(), mc_service::room::FencingToken(1));
    let out = h
        .store
        .leave_if_connection(&owned2, &user(2), "connection_lost", "")
        .await
        .unwrap();
    assert!(matches!(out, LeaveOutcome::NotPresent { .. }));
}

on_both_backends!(
    every_change_publishes_its_events_in_order,
    a_seat_claimed_by_a_newer_connection_is_not_unseated_by_an_older_grace
);
