//! A meeting's whole life over REST: create, join, the lobby, admit, leave, end, history.

use serde_json::json;

use crate::support::{GcClient, Limits, named, org, require_meeting_controllers};

#[tokio::test]
async fn a_meeting_goes_from_create_through_the_lobby_to_the_history() -> anyhow::Result<()> {
    require_meeting_controllers().await?;
    let (_ac, org) = org(Limits::default()).await?;
    let host = org.user("Env Host").await?;
    let guest = org.user("Env Guest").await?;
    let gc = GcClient::new();

    let meeting = gc.create_meeting(&host.token, &named("Round trip")).await?;
    let code = meeting["meeting_code"].as_str().unwrap();

    // The host joins by the code: seated, and the meeting starts.
    let joined = gc.joined(&host.token, code).await?;
    assert_eq!(
        (joined.status.as_str(), joined.role.as_str()),
        ("admitted", "host")
    );
    assert!(
        joined.signaling_url.starts_with("ws")
            && joined
                .signaling_url
                .ends_with(&format!("/ws/v1/meetings/{code}")),
        "{}",
        joined.signaling_url
    );
    assert_eq!(joined.meeting["status"], "active");
    assert!(joined.meeting["started_at"].is_string());

    // The guest waits in the lobby; only the host sees that someone waits.
    let waiting = gc.joined(&guest.token, code).await?;
    assert_eq!(
        (waiting.status.as_str(), waiting.role.as_str()),
        ("waiting", "guest")
    );
    let seen_by_host = gc.get(&host.token, code).await?.expect(200)?;
    assert_eq!(
        (
            &seen_by_host["participant_count"],
            &seen_by_host["lobby_count"]
        ),
        (&json!(1), &json!(1))
    );
    let seen_by_guest = gc.get(&guest.token, code).await?.expect(200)?;
    assert!(
        seen_by_guest.get("lobby_count").is_none(),
        "{seen_by_guest}"
    );

    // Only the host admits.
    gc.admit(&guest.token, code, &guest.id)
        .await?
        .assert_error(403, "FORBIDDEN");
    let admitted = gc.admit(&host.token, code, &guest.id).await?.expect(200)?;
    assert_eq!(admitted, json!({"user_id": guest.id, "status": "admitted"}));
    let seated = gc.get(&host.token, code).await?.expect(200)?;
    assert_eq!(
        (&seated["participant_count"], &seated["lobby_count"]),
        (&json!(2), &json!(0))
    );
    // Joining again while seated changes nothing.
    assert_eq!(gc.joined(&guest.token, code).await?.status, "admitted");

    // The guest leaves, the host ends the meeting; ending again is the same answer.
    let left = gc.leave(&guest.token, code).await?.expect(200)?;
    assert_eq!(left, json!({"status": "left"}));
    assert_eq!(
        gc.get(&host.token, code).await?.expect(200)?["participant_count"],
        1
    );
    let ended = gc.end(&host.token, code).await?.expect(200)?;
    assert_eq!(ended["status"], "ended");
    assert!(ended["ended_at"].is_string(), "{ended}");
    assert_eq!(ended["participant_count"], 0);
    let again = gc.end(&host.token, code).await?.expect(200)?;
    assert_eq!(again["ended_at"], ended["ended_at"]);

    // An ended meeting is gone for everyone but the history.
    gc.get(&host.token, code)
        .await?
        .assert_error(404, "NOT_FOUND");
    gc.join(&guest.token, code)
        .await?
        .assert_error(404, "NOT_FOUND");
    let hosted = gc.history(&host.token, "").await?.expect(200)?;
    assert_eq!(hosted["total"], 1);
    assert_eq!(hosted["items"][0]["meeting_code"], code);
    assert_eq!(hosted["items"][0]["status"], "ended");
    let attended = gc.history(&guest.token, "role=guest").await?.expect(200)?;
    assert_eq!(attended["total"], 1);
    assert_eq!(attended["items"][0]["meeting_code"], code);
    assert!(attended["items"][0].get("lobby_count").is_none());
    Ok(())
}
