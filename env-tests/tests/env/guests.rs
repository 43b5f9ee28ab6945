//! People without an account (DESIGN §12), through the deployed stack: a guest joins by the
//! meeting's link, waits, is let in, speaks, leaves; their tokens open nothing else.

use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use crate::support::{GcClient, Joined, Limits, Socket, org, require_meeting_controllers};

/// The claims of a token, read as a client reads its own token (the services check them).
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url claims");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

#[tokio::test]
async fn a_guest_without_an_account_joins_waits_is_let_in_speaks_and_leaves() -> anyhow::Result<()>
{
    require_meeting_controllers().await?;
    let (_ac, org) = org(Limits::default()).await?;
    let gc = GcClient::new();
    let host = org.user("Env Host").await?;
    let meeting = gc
        .create_meeting(
            &host.token,
            &json!({"display_name": "Open house",
                    "settings": {"allow_guests": true, "require_auth": false,
                                 "waiting_room_enabled": false}}),
        )
        .await?;
    let code = meeting["meeting_code"].as_str().unwrap().to_owned();
    let host_joined = gc.joined(&host.token, &code).await?;
    let mut host_ws = Socket::open(&host_joined).await?;
    host_ws.wait_for("welcome").await?;

    // The guest asks by the link, with a name and no token, and waits although the waiting
    // room is off: only the host lets a guest in.
    let answer = gc.guest_join(&code, "Visiting Vera").await?.expect(200)?;
    assert_eq!(answer["status"], "waiting");
    let guest_token = answer["guest_token"].as_str().unwrap().to_owned();
    let guest_id = claims(&guest_token)["sub"].as_str().unwrap().to_owned();
    let joined = Joined::parse(answer)?;
    assert_eq!(claims(&joined.meeting_token)["guest"], true);
    let mut guest_ws = Socket::open(&joined).await?;
    guest_ws.wait_for("lobby.waiting").await?;
    let knocked = host_ws.wait_for("lobby.joined").await?;
    assert_eq!(
        (&knocked["user_id"], &knocked["guest"]),
        (&json!(guest_id), &json!(true))
    );

    // Let in: the guest's socket is greeted, and the room sees a guest.
    gc.admit(&host.token, &code, &guest_id).await?.expect(200)?;
    guest_ws.wait_for("admitted").await?;
    let welcome = guest_ws.wait_for("welcome").await?;
    assert_eq!(welcome["you"]["role"], "guest");
    let me = welcome["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["user_id"] == guest_id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(
        (&me["guest"], &me["display_name"]),
        (&json!(true), &json!("Visiting Vera"))
    );
    let entered = host_ws.wait_for("participant.joined").await?;
    assert_eq!(entered["guest"], true);

    // The guest speaks, and becomes the active speaker for everyone.
    for _ in 0..20 {
        guest_ws.audio_level(-20.0).await?;
        host_ws.audio_level(-70.0).await?;
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let speaker = host_ws.wait_for("active_speaker").await?;
    assert_eq!(speaker["user_id"], guest_id.as_str());

    // A reload (a join with the guest token) keeps the seat.
    let again = gc.joined(&guest_token, &code).await?;
    assert_eq!(again.status, "admitted");

    // The guest leaves with their token: the room hears it, their socket closes.
    gc.leave(&guest_token, &code).await?.expect(200)?;
    let left = host_ws
        .wait_for_where(
            "participant.left",
            |e| e["user_id"] == guest_id.as_str(),
            Duration::from_secs(10),
        )
        .await?;
    assert_eq!(left["reason"], "left");
    assert_eq!(guest_ws.closed().await?.0, 1000);
    Ok(())
}

#[tokio::test]
async fn a_guests_tokens_open_nothing_but_their_meeting() -> anyhow::Result<()> {
    require_meeting_controllers().await?;
    let (ac, org) = org(Limits::default()).await?;
    let gc = GcClient::new();
    let host = org.user("Env Host").await?;
    let open =
        json!({"display_name": "Open", "settings": {"allow_guests": true, "require_auth": false}});
    let code = gc.create_meeting(&host.token, &open).await?["meeting_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = gc.create_meeting(&host.token, &open).await?["meeting_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let other_joined = gc.joined(&host.token, &other).await?;
    let answer = gc.guest_join(&code, "Gus").await?.expect(200)?;
    let guest_token = answer["guest_token"].as_str().unwrap().to_owned();
    let joined = Joined::parse(answer)?;

    // GC: another meeting, and the host's routes of their own.
    gc.get(&guest_token, &other)
        .await?
        .assert_error(401, "UNAUTHORIZED");
    gc.join(&guest_token, &other)
        .await?
        .assert_error(401, "UNAUTHORIZED");
    gc.end(&guest_token, &code)
        .await?
        .assert_error(401, "UNAUTHORIZED");
    gc.admit_all(&guest_token, &code)
        .await?
        .assert_error(401, "UNAUTHORIZED");
    gc.history(&guest_token, "")
        .await?
        .assert_error(401, "UNAUTHORIZED");
    // AC: its admin routes and the user routes.
    let attempts = [
        (
            "/api/v1/admin/orgs",
            json!({"slug": "guests-org", "name": "Guests"}),
        ),
        (
            "/api/v1/auth/internal/meeting-token",
            json!({"user_id": org.id, "meeting_id": org.id, "meeting_code": code,
                   "org_id": org.id, "role": "host", "name": "Gus"}),
        ),
    ];
    for (path, body) in attempts {
        let reply = ac
            .call(reqwest::Method::POST, path, Some(&guest_token), Some(&body))
            .await?;
        assert_eq!(reply.status, 401, "{path}: {}", reply.body);
    }
    // MC: the guest token is not a meeting token; the guest's meeting token is for its meeting.
    let mut ws = Socket::connect(&joined.signaling_url, &guest_token).await?;
    assert_eq!(ws.closed().await?.0, 4401);
    let mut ws = Socket::connect(&other_joined.signaling_url, &joined.meeting_token).await?;
    assert_eq!(ws.closed().await?.0, 4403);
    Ok(())
}
