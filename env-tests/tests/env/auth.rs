//! Who may call what: user tokens only at GC's user endpoints, and the meetings of an org
//! invisible to everyone else, with the same 404 as a code that does not exist.

use reqwest::Method;
use serde_json::json;

use crate::support::{Ac, GcClient, Limits, named, org, require_meeting_controllers};

/// Twelve characters of base62 that no meeting has (the odds of a hit are 2^-71).
fn unknown_code() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

#[tokio::test]
async fn gc_refuses_a_missing_or_malformed_token_with_401() -> anyhow::Result<()> {
    let (_ac, org) = org(Limits::default()).await?;
    let host = org.user("Env Host").await?;
    let gc = GcClient::new();
    let body = r#"{"display_name": "x"}"#;

    for token in [None, Some("not-a-jwt"), Some(&*format!("{}x", host.token))] {
        let reply = gc
            .raw_create_meeting(token, Some("application/json"), body)
            .await?;
        reply.assert_error(401, "UNAUTHORIZED");
        assert_eq!(
            reply.headers["www-authenticate"], r#"Bearer realm="convene""#,
            "{token:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn service_and_meeting_tokens_are_refused_where_a_user_token_is_expected()
-> anyhow::Result<()> {
    require_meeting_controllers().await?;
    let (ac, org) = org(Limits::default()).await?;
    let host = org.user("Env Host").await?;
    let gc = GcClient::new();
    let admin = ac.admin().await?;
    let client = admin.service_client("admin", &[]).await?;
    let service_token = ac.service_token(&client.client_id, &client.secret).await?;
    let meeting = gc
        .create_meeting(&host.token, &named("Typed tokens"))
        .await?;
    let code = meeting["meeting_code"].as_str().unwrap();
    let meeting_token = gc.joined(&host.token, code).await?.meeting_token;

    for (what, token) in [
        ("a service token", service_token.as_str()),
        ("the admin's service token", admin.token.as_str()),
        ("a meeting token", meeting_token.as_str()),
    ] {
        for reply in [
            gc.try_create_meeting(token, &named("x")).await?,
            gc.get(token, code).await?,
            gc.join(token, code).await?,
            gc.history(token, "").await?,
        ] {
            assert_eq!(
                reply.status, 401,
                "{what}: {} -> {}",
                reply.request, reply.text
            );
            reply.assert_error(401, "UNAUTHORIZED");
        }
    }
    // At AC: a meeting token is no caller at all (401); a user token, or a service token
    // without the `admin` scope, is a known caller without the right (403) on the admin API;
    // and only a service token may ask for meeting tokens.
    let org_body = json!({"slug": "never-made", "name": "Never"});
    for (token, status, code) in [
        (&meeting_token, 401, "UNAUTHORIZED"),
        (&host.token, 403, "FORBIDDEN"),
        (&service_token, 403, "FORBIDDEN"),
    ] {
        ac.call(
            Method::POST,
            "/api/v1/admin/orgs",
            Some(token),
            Some(&org_body),
        )
        .await?
        .assert_error(status, code);
    }
    for token in [&host.token, &meeting_token] {
        ac.call(
            Method::POST,
            "/api/v1/auth/internal/meeting-token",
            Some(token),
            Some(&json!({})),
        )
        .await?
        .assert_error(401, "UNAUTHORIZED");
    }
    // The user token itself still works.
    gc.get(&host.token, code).await?.expect(200)?;
    Ok(())
}

#[tokio::test]
async fn a_user_without_a_role_may_not_create_but_may_read_history() -> anyhow::Result<()> {
    let (_ac, org) = org(Limits::default()).await?;
    let nobody = org.user_with_roles("No Role", &[]).await?;
    let gc = GcClient::new();

    gc.try_create_meeting(&nobody.token, &named("x"))
        .await?
        .assert_error(403, "FORBIDDEN");
    let history = gc.history(&nobody.token, "").await?.expect(200)?;
    assert_eq!(history["total"], 0);
    Ok(())
}

#[tokio::test]
async fn a_user_of_another_org_gets_the_same_404_as_for_an_unknown_code() -> anyhow::Result<()> {
    let ac = Ac::new();
    let admin = ac.admin().await?;
    let (ours, theirs) = (
        admin.org(Limits::default()).await?,
        admin.org(Limits::default()).await?,
    );
    let host = ours.user("Env Host").await?;
    let stranger = theirs.user("Stranger").await?;
    let gc = GcClient::new();
    let meeting = gc.create_meeting(&host.token, &named("Internal")).await?;
    let code = meeting["meeting_code"].as_str().unwrap();

    let unknown = gc.get(&stranger.token, &unknown_code()).await?;
    unknown.assert_error(404, "NOT_FOUND");
    for reply in [
        gc.get(&stranger.token, code).await?,
        gc.join(&stranger.token, code).await?,
        gc.leave(&stranger.token, code).await?,
        gc.admit(&stranger.token, code, &stranger.id).await?,
        gc.admit_all(&stranger.token, code).await?,
        gc.end(&stranger.token, code).await?,
        gc.config(&stranger.token, code, &json!({"lock_room": false}))
            .await?,
    ] {
        assert_eq!(
            (reply.status, &reply.text),
            (unknown.status, &unknown.text),
            "{} must answer as for an unknown code",
            reply.request
        );
    }
    // The meeting is untouched, and opening it to other orgs makes it visible.
    let meeting = gc.get(&host.token, code).await?.expect(200)?;
    assert_eq!(meeting["status"], "scheduled");
    gc.config(
        &host.token,
        code,
        &json!({"allow_external_participants": true}),
    )
    .await?
    .expect(200)?;
    gc.get(&stranger.token, code).await?.expect(200)?;
    Ok(())
}
