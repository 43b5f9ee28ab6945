//! Creating meetings: the answer, strict bodies, unique codes, and the org's limit under
//! parallel creates.

use std::collections::HashSet;

use futures::{StreamExt, stream};
use serde_json::json;

use crate::support::{GcClient, Limits, named, org};

fn is_meeting_code(code: &str) -> bool {
    code.len() == 12 && code.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[tokio::test]
async fn an_authenticated_create_answers_the_meeting_with_secure_defaults() -> anyhow::Result<()> {
    let (_ac, org) = org(Limits::default()).await?;
    let host = org.user("Env Host").await?;
    let gc = GcClient::new();

    let meeting = gc
        .create_meeting(&host.token, &named("  Weekly sync  "))
        .await?;

    let code = meeting["meeting_code"].as_str().unwrap();
    assert!(is_meeting_code(code), "{meeting}");
    assert_eq!(meeting["display_name"], "Weekly sync");
    assert_eq!(meeting["status"], "scheduled");
    assert_eq!(meeting["host_id"], host.id);
    assert_eq!(meeting["max_participants"], 100);
    assert_eq!(
        meeting["settings"],
        json!({
            "waiting_room_enabled": true,
            "enable_transcription": false,
            "enable_e2e_encryption": true,
            "require_auth": true,
            "recording_enabled": false,
            "allow_guests": false,
            "allow_external_participants": false,
        })
    );
    assert!(
        meeting["join_url"]
            .as_str()
            .is_some_and(|url| url.ends_with(&format!("/m/{code}"))),
        "{meeting}"
    );
    assert_eq!(
        (&meeting["participant_count"], &meeting["lobby_count"]),
        (&json!(0), &json!(0))
    );
    assert_eq!(meeting["started_at"], json!(null));
    for secret in ["join_token_secret", "org_id"] {
        assert!(meeting.get(secret).is_none(), "{secret} leaked: {meeting}");
    }
    // And it can be read back by its code.
    let read = gc.get(&host.token, code).await?.expect(200)?;
    assert_eq!(read["meeting_id"], meeting["meeting_id"]);
    Ok(())
}

#[tokio::test]
async fn malformed_create_bodies_are_refused_with_the_error_envelope() -> anyhow::Result<()> {
    let (_ac, org) = org(Limits::default()).await?;
    let host = org.user("Env Host").await?;
    let gc = GcClient::new();
    let json = Some("application/json");

    let bad_requests: [(&str, Option<&str>, String); 11] = [
        ("malformed JSON", json, r#"{"display_name": "x""#.into()),
        ("not an object", json, r#"["x"]"#.into()),
        ("null", json, "null".into()),
        (
            "unknown field",
            json,
            r#"{"display_name": "x", "colour": "red"}"#.into(),
        ),
        (
            "server-owned field",
            json,
            r#"{"display_name": "x", "meeting_code": "AAAAAAAAAAAA"}"#.into(),
        ),
        ("wrong type", json, r#"{"display_name": 42}"#.into()),
        ("missing display_name", json, "{}".into()),
        (
            "blank display_name",
            json,
            r#"{"display_name": "   "}"#.into(),
        ),
        (
            "max_participants below 2",
            json,
            r#"{"display_name": "x", "max_participants": 1}"#.into(),
        ),
        (
            "max_participants above the org's limit",
            json,
            r#"{"display_name": "x", "max_participants": 101}"#.into(),
        ),
        (
            "a string for a setting",
            json,
            r#"{"display_name": "x", "settings": {"lock_room": "yes"}}"#.into(),
        ),
    ];
    for (what, content_type, body) in bad_requests {
        let reply = gc
            .raw_create_meeting(Some(&host.token), content_type, body)
            .await?;
        assert_eq!(reply.status, 400, "{what}: {}", reply.text);
        reply.assert_error(400, "BAD_REQUEST");
    }
    for (what, content_type) in [("no Content-Type", None), ("a form", Some("text/plain"))] {
        let reply = gc
            .raw_create_meeting(Some(&host.token), content_type, r#"{"display_name": "x"}"#)
            .await?;
        assert_eq!(reply.status, 400, "{what}: {}", reply.text);
        reply.assert_error(400, "UNSUPPORTED_MEDIA_TYPE");
    }
    let huge = format!(r#"{{"display_name": "{}"}}"#, "x".repeat(70_000));
    gc.raw_create_meeting(Some(&host.token), json, huge)
        .await?
        .assert_error(413, "PAYLOAD_TOO_LARGE");

    // Nothing of it was created: the org's history and limit are untouched, and a valid body
    // still goes through.
    gc.create_meeting(&host.token, &named("After the refusals"))
        .await?;
    Ok(())
}

#[tokio::test]
async fn two_hundred_creates_give_two_hundred_distinct_codes() -> anyhow::Result<()> {
    const CREATES: usize = 200;
    let (_ac, org) = org(Limits {
        max_concurrent_meetings: CREATES as i64,
        ..Limits::default()
    })
    .await?;
    let host = org.user("Env Host").await?;
    let gc = GcClient::new();

    let codes: Vec<String> = stream::iter(0..CREATES)
        .map(|i| {
            let (gc, token) = (gc.clone(), host.token.clone());
            async move {
                let meeting = gc
                    .create_meeting(&token, &named(&format!("Meeting {i}")))
                    .await?;
                anyhow::Ok(
                    meeting["meeting_code"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;

    let distinct: HashSet<&str> = codes.iter().map(String::as_str).collect();
    assert_eq!(distinct.len(), CREATES, "a code was given twice");
    assert!(codes.iter().all(|code| is_meeting_code(code)), "{codes:?}");

    // Give the places back: the stack keeps no live meeting of this test.
    stream::iter(codes)
        .map(|code| {
            let (gc, token) = (gc.clone(), host.token.clone());
            async move { gc.end(&token, &code).await?.expect(200) }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    Ok(())
}

#[tokio::test]
async fn parallel_creates_stop_exactly_at_the_org_limit() -> anyhow::Result<()> {
    const LIMIT: usize = 5;
    const ATTEMPTS: usize = 40;
    let (_ac, org) = org(Limits {
        max_concurrent_meetings: LIMIT as i64,
        ..Limits::default()
    })
    .await?;
    let users = [org.user("Ada").await?, org.user("Grace").await?];
    let gc = GcClient::new();

    // Every create at once, from two users of the org.
    let replies = futures::future::join_all((0..ATTEMPTS).map(|i| {
        let (gc, token) = (gc.clone(), users[i % 2].token.clone());
        async move {
            gc.try_create_meeting(&token, &named(&format!("Race {i}")))
                .await
        }
    }))
    .await
    .into_iter()
    .collect::<Result<Vec<_>, _>>()?;

    let created: Vec<_> = replies.iter().filter(|r| r.status == 201).collect();
    assert_eq!(created.len(), LIMIT, "exactly the limit is created");
    for refused in replies.iter().filter(|r| r.status != 201) {
        refused.assert_error(403, "ORG_MEETING_LIMIT_REACHED");
    }

    // Ending one gives its place back, to exactly one more create.
    let first = &created[0].body;
    let host = users
        .iter()
        .find(|u| first["host_id"] == u.id.as_str())
        .unwrap();
    gc.end(&host.token, first["meeting_code"].as_str().unwrap())
        .await?
        .expect(200)?;
    gc.create_meeting(&users[0].token, &named("In the freed place"))
        .await?;
    gc.try_create_meeting(&users[1].token, &named("One too many"))
        .await?
        .assert_error(403, "ORG_MEETING_LIMIT_REACHED");
    Ok(())
}
