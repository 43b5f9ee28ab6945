//! MC's signaling WebSocket, reached at the `signaling_url` of a join: the lobby and its
//! outcomes, the end, the active speaker, and which tokens it takes.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{
    GcClient, Joined, Limits, Org, Socket, User, named, org, require_meeting_controllers,
};

/// A meeting of `org` whose host has joined and holds an open socket (greeted).
struct Room {
    gc: GcClient,
    code: String,
    host: User,
    /// The host's join: the room's signaling URL.
    host_joined: Joined,
    host_ws: Socket,
}

async fn room(org: &Org, settings: Value) -> anyhow::Result<Room> {
    require_meeting_controllers().await?;
    let gc = GcClient::new();
    let host = org.user("Env Host").await?;
    let meeting = gc
        .create_meeting(
            &host.token,
            &json!({"display_name": "Signaling", "settings": settings}),
        )
        .await?;
    let code = meeting["meeting_code"].as_str().unwrap().to_owned();
    let joined = gc.joined(&host.token, &code).await?;
    let mut host_ws = Socket::open(&joined).await?;
    let welcome = host_ws.wait_for("welcome").await?;
    assert_eq!(welcome["you"]["role"], "host");
    Ok(Room {
        gc,
        code,
        host,
        host_joined: joined,
        host_ws,
    })
}

impl Room {
    /// A new user of `org` joins; their join answer and their open socket.
    async fn join(&self, org: &Org, name: &str) -> anyhow::Result<(User, Joined, Socket)> {
        let user = org.user(name).await?;
        let joined = self.gc.joined(&user.token, &self.code).await?;
        let ws = Socket::open(&joined).await?;
        Ok((user, joined, ws))
    }
}

#[tokio::test]
async fn a_waiting_guest_hears_on_the_socket_that_the_host_admitted_them() -> anyhow::Result<()> {
    let (_ac, org) = org(Limits::default()).await?;
    let mut room = room(&org, json!({})).await?;

    let (guest, joined, mut guest_ws) = room.join(&org, "Grace Hopper").await?;
    assert_eq!(joined.status, "waiting");
    guest_ws.wait_for("lobby.waiting").await?;
    let knocked = room.host_ws.wait_for("lobby.joined").await?;
    assert_eq!(
        (&knocked["user_id"], &knocked["display_name"]),
        (&json!(guest.id), &json!("Grace Hopper"))
    );

    room.gc
        .admit(&room.host.token, &room.code, &guest.id)
        .await?
        .expect(200)?;
    guest_ws.wait_for("admitted").await?;
    let welcome = guest_ws.wait_for("welcome").await?;
    assert_eq!(welcome["you"]["user_id"], guest.id);
    assert_eq!(welcome["you"]["role"], "guest");
    assert_eq!(welcome["meeting"]["meeting_code"], room.code);
    assert!(
        welcome.get("lobby").is_none(),
        "only the host sees the lobby"
    );
    assert_eq!(welcome["participants"].as_array().map(Vec::len), Some(2));

    let entered = room.host_ws.wait_for("participant.joined").await?;
    assert_eq!(
        (&entered["user_id"], &entered["role"]),
        (&json!(guest.id), &json!("guest"))
    );
    Ok(())
}

#[tokio::test]
async fn a_rejected_guest_is_told_and_disconnected() -> anyhow::Result<()> {
    let (_ac, org) = org(Limits::default()).await?;
    let mut room = room(&org, json!({})).await?;
    let (guest, joined, mut guest_ws) = room.join(&org, "Turned Away").await?;
    guest_ws.wait_for("lobby.waiting").await?;

    let answer = room
        .gc
        .reject(&room.host.token, &room.code, &guest.id)
        .await?
        .expect(200)?;
    assert_eq!(answer, json!({"user_id": guest.id, "status": "rejected"}));

    let rejected = guest_ws.wait_for("rejected").await?;
    assert!(rejected["reason"].is_string(), "{rejected}");
    assert_eq!(guest_ws.closed().await?.0, 4403);
    let left = room
        .host_ws
        .wait_for_where(
            "lobby.left",
            |e| e["user_id"] == guest.id.as_str(),
            Duration::from_secs(10),
        )
        .await?;
    assert_eq!(left["reason"], "rejected");

    // Not admitted: the same token is turned away again, and rejecting again finds nobody.
    let mut again = Socket::open(&joined).await?;
    again.wait_for("rejected").await?;
    assert_eq!(again.closed().await?.0, 4403);
    room.gc
        .reject(&room.host.token, &room.code, &guest.id)
        .await?
        .assert_error(404, "NOT_FOUND");
    Ok(())
}

#[tokio::test]
async fn ending_the_meeting_tells_every_socket_and_closes_it() -> anyhow::Result<()> {
    let (_ac, org) = org(Limits::default()).await?;
    let mut room = room(&org, json!({})).await?;
    let (seated, _, mut seated_ws) = room.join(&org, "Seated").await?;
    seated_ws.wait_for("lobby.waiting").await?;
    room.gc
        .admit(&room.host.token, &room.code, &seated.id)
        .await?
        .expect(200)?;
    seated_ws.wait_for("welcome").await?;
    let (_, waiting_joined, mut waiting_ws) = room.join(&org, "Waiting").await?;
    waiting_ws.wait_for("lobby.waiting").await?;

    room.gc
        .end(&room.host.token, &room.code)
        .await?
        .expect(200)?;

    for (who, ws) in [
        ("host", &mut room.host_ws),
        ("seated guest", &mut seated_ws),
        ("waiting guest", &mut waiting_ws),
    ] {
        let ended = ws.wait_for("meeting.ended").await?;
        assert!(ended["reason"].is_string(), "{who}: {ended}");
        assert_eq!(ws.closed().await?.0, 1000, "{who}");
    }
    // A socket opened afterwards hears that the meeting is gone.
    let mut late = Socket::open(&waiting_joined).await?;
    assert_eq!(late.closed().await?.0, 4404);
    Ok(())
}

#[tokio::test]
async fn a_steady_voice_becomes_the_active_speaker_and_a_cough_does_not() -> anyhow::Result<()> {
    let (_ac, org) = org(Limits::default()).await?;
    // No waiting room: everyone is seated by their join.
    let mut room = room(&org, json!({"waiting_room_enabled": false})).await?;
    let (speaker, _, mut speaker_ws) = room.join(&org, "Speaker").await?;
    let (_, _, mut cougher_ws) = room.join(&org, "Cougher").await?;
    speaker_ws.wait_for("welcome").await?;
    cougher_ws.wait_for("welcome").await?;

    // DESIGN §4: a run starts at -40 dBFS or louder and breaks at a quieter sample or a gap of
    // 150 ms; 300 ms of run make a speaker. A cough: 80 ms loud, then quiet.
    for level in [-10.0, -10.0, -10.0, -70.0] {
        cougher_ws.audio_level(level).await?;
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    // A voice: 1.2 s loud, a sample every 40 ms (clients send every 20-100 ms), while the
    // cougher stays quiet and the host murmurs below the threshold.
    for _ in 0..30 {
        speaker_ws.audio_level(-20.0).await?;
        cougher_ws.audio_level(-70.0).await?;
        room.host_ws.audio_level(-45.0).await?;
        tokio::time::sleep(Duration::from_millis(40)).await;
    }

    for (who, ws) in [
        ("host", &mut room.host_ws),
        ("speaker", &mut speaker_ws),
        ("cougher", &mut cougher_ws),
    ] {
        let change = ws.wait_for("active_speaker").await?;
        assert_eq!(
            (&change["user_id"], &change["previous_user_id"]),
            (&json!(speaker.id), &Value::Null),
            "{who}: the first change names the steady speaker"
        );
    }
    // The speaker leaves: the room's speaker is cleared.
    speaker_ws.send(json!({"type": "leave"})).await?;
    let cleared = room
        .host_ws
        .wait_for_where(
            "active_speaker",
            |e| e["user_id"].is_null(),
            Duration::from_secs(10),
        )
        .await?;
    assert_eq!(cleared["previous_user_id"], speaker.id);
    Ok(())
}

#[tokio::test]
async fn the_socket_takes_only_a_meeting_token_of_its_own_meeting() -> anyhow::Result<()> {
    let (ac, org) = org(Limits::default()).await?;
    let room = room(&org, json!({})).await?;
    let other = room_of_its_own(&org).await?;
    let service_token = {
        let admin = ac.admin().await?;
        let client = admin.service_client("admin", &[]).await?;
        ac.service_token(&client.client_id, &client.secret).await?
    };
    let url = &room.host_joined.signaling_url;

    for (what, token, code) in [
        ("a user token", room.host.token.as_str(), 4401),
        ("a service token", service_token.as_str(), 4401),
        ("not a token", "not-a-jwt", 4401),
        (
            "a meeting token of another meeting",
            other.meeting_token.as_str(),
            4403,
        ),
    ] {
        let mut ws = Socket::connect(url, token).await?;
        assert_eq!(ws.closed().await?.0, code, "{what}");
    }
    Ok(())
}

/// A second meeting of `org`, joined by its host: its join answer.
async fn room_of_its_own(org: &Org) -> anyhow::Result<Joined> {
    let gc = GcClient::new();
    let host = org.user("Other Host").await?;
    let meeting = gc.create_meeting(&host.token, &named("Elsewhere")).await?;
    gc.joined(&host.token, meeting["meeting_code"].as_str().unwrap())
        .await
}

#[tokio::test]
async fn a_removed_participant_is_told_disconnected_and_refused_at_once() -> anyhow::Result<()> {
    let (_ac, org) = org(Limits::default()).await?;
    let mut room = room(&org, json!({"waiting_room_enabled": false})).await?;
    let (seated, joined, mut seated_ws) = room.join(&org, "Disruptive").await?;
    seated_ws.wait_for("welcome").await?;
    room.host_ws.wait_for("participant.joined").await?;

    let answer = room
        .gc
        .remove(&room.host.token, &room.code, &seated.id)
        .await?
        .expect(200)?;
    assert_eq!(answer, json!({"user_id": seated.id, "status": "removed"}));

    let removed = seated_ws.wait_for("removed").await?;
    assert_eq!(removed["reason"], "removed_by_host");
    assert_eq!(seated_ws.closed().await?.0, 4403);
    let left = room
        .host_ws
        .wait_for_where(
            "participant.left",
            |e| e["user_id"] == seated.id.as_str(),
            Duration::from_secs(10),
        )
        .await?;
    assert_eq!(left["reason"], "removed_by_host");

    // Their meeting token, still unexpired, opens nothing any more; nor does a new join.
    let mut again = Socket::open(&joined).await?;
    again.wait_for("removed").await?;
    assert_eq!(again.closed().await?.0, 4403);
    room.gc
        .join(&seated.token, &room.code)
        .await?
        .assert_error(403, "REMOVED_FROM_MEETING");
    Ok(())
}

/// The host hands the meeting over, then the new host's connection is lost beyond the
/// reconnect grace (DESIGN §12): each time both hear `participant.updated` with their new
/// role, the new host gets the lobby (`host.granted`), and GC's `host_id` follows.
#[tokio::test]
async fn the_host_role_is_handed_over_and_passes_on_when_the_hosts_connection_is_lost()
-> anyhow::Result<()> {
    let (_ac, org) = org(Limits::default()).await?;
    let mut room = room(&org, json!({"waiting_room_enabled": false})).await?;
    let (first, _, mut first_ws) = room.join(&org, "First Member").await?;
    first_ws.wait_for("welcome").await?;
    let (second, _, mut second_ws) = room.join(&org, "Second Member").await?;
    second_ws.wait_for("welcome").await?;

    let meeting = room
        .gc
        .hand_over(&room.host.token, &room.code, &second.id)
        .await?
        .expect(200)?;
    assert_eq!(meeting["host_id"], second.id.as_str());
    let granted = second_ws.wait_for("host.granted").await?;
    assert_eq!(granted["lobby"], json!([]));
    let demoted = room
        .host_ws
        .wait_for_where(
            "participant.updated",
            |e| e["user_id"] == room.host.id.as_str() && e.get("role").is_some(),
            Duration::from_secs(10),
        )
        .await?;
    assert_eq!(demoted["role"], "guest");

    // The new host's socket goes without a word; after the grace the role passes to the
    // member seated longest: the former host.
    drop(second_ws);
    let promoted = room
        .host_ws
        .wait_for_where(
            "participant.updated",
            |e| e["user_id"] == room.host.id.as_str() && e["role"] == "host",
            Duration::from_secs(60),
        )
        .await?;
    assert_eq!(promoted["role"], "host");
    room.host_ws.wait_for("host.granted").await?;
    let left = first_ws
        .wait_for_where(
            "participant.left",
            |e| e["user_id"] == second.id.as_str(),
            Duration::from_secs(10),
        )
        .await?;
    assert_eq!(left["reason"], "connection_lost");
    // GC hears of it from the controller's report.
    let mut seen = Value::Null;
    for _ in 0..50 {
        seen = room.gc.get(&first.token, &room.code).await?.expect(200)?;
        if seen["host_id"] == room.host.id.as_str() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen["host_id"], room.host.id.as_str());
    Ok(())
}
