//! Webhooks (DESIGN §13) through the deployed stack, checked by the Standard Webhooks reference
//! library: an org's admin service token registers a webhook for every event type at the
//! receiver of `scripts/webhook_receiver.py`, a meeting goes through its life, and every event
//! arrives once per change with a body and headers the library (`standardwebhooks`, Python)
//! verifies unchanged, while a wrong secret never verifies.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::ac::unique;
use crate::support::{Ac, GcClient, Limits, Socket, require_meeting_controllers};

const ALL_EVENTS: [&str; 8] = [
    "meeting.created",
    "meeting.started",
    "meeting.ended",
    "participant.joined",
    "participant.left",
    "participant.removed",
    "lobby.waiting",
    "webhook.test",
];

/// The receiver's URL: `scripts/env-tests.sh` starts it with its own stack.
fn receiver() -> anyhow::Result<String> {
    std::env::var("CONVENE_WEBHOOK_RECEIVER_URL").context(
        "CONVENE_WEBHOOK_RECEIVER_URL is not set: scripts/env-tests.sh starts the receiver with \
         its own stack; with --no-stack, run scripts/webhook_receiver.py where the stack's GC can \
         reach it and name it",
    )
}

/// What the receiver recorded for `endpoint`, oldest first.
async fn received(
    http: &reqwest::Client,
    base: &str,
    endpoint: &str,
) -> anyhow::Result<Vec<Value>> {
    let answer = http
        .get(format!("{base}/endpoints/{endpoint}/received"))
        .send()
        .await
        .context("asking the webhook receiver")?;
    let body: Value = answer.json().await.context("the receiver's answer")?;
    Ok(body.as_array().cloned().unwrap_or_default())
}

#[tokio::test]
async fn every_event_arrives_once_per_change_and_the_standard_library_verifies_it()
-> anyhow::Result<()> {
    require_meeting_controllers().await?;
    let base = receiver()?;
    let http = crate::support::http::client();
    let ac = Ac::new();
    let admin = ac.admin().await?;
    let org = admin.org(Limits::default()).await?;
    let gc = GcClient::new();

    // The org's admin service token registers the webhook, naming the org.
    let endpoint = unique("hook");
    let created = gc
        .webhooks(
            Method::POST,
            &format!("?org_id={}", org.id),
            &admin.token,
            Some(
                &json!({"url": format!("{base}/hooks/{endpoint}"), "events": ALL_EVENTS,
                         "description": "env-test"}),
            ),
        )
        .await?
        .expect(201)?;
    let webhook_id = created["webhook_id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let registered = http
        .put(format!("{base}/endpoints/{endpoint}"))
        .json(&json!({"secret": secret}))
        .send()
        .await?;
    if registered.status() != 204 {
        bail!("the receiver refused the endpoint: {}", registered.status());
    }

    // A meeting's whole life: created, started, a member waits and is let in, a guest waits
    // and is removed, the member leaves, the host ends it; and a test event.
    let host = org.user("Env Hook Host").await?;
    let member = org.user("Env Hook Member").await?;
    let meeting = gc
        .create_meeting(
            &host.token,
            &json!({"display_name": "Hooked",
                    "settings": {"allow_guests": true, "require_auth": false,
                                 "waiting_room_enabled": true}}),
        )
        .await?;
    let code = meeting["meeting_code"].as_str().unwrap().to_owned();
    let host_joined = gc.joined(&host.token, &code).await?;
    let mut host_ws = Socket::open(&host_joined).await?;
    host_ws.wait_for("welcome").await?;
    let waiting = gc.join(&member.token, &code).await?.expect(200)?;
    assert_eq!(waiting["status"], "waiting", "{waiting}");
    gc.admit(&host.token, &code, &member.id)
        .await?
        .expect(200)?;
    let guest = gc.guest_join(&code, "Visiting Vera").await?.expect(200)?;
    let guest_token = guest["guest_token"].as_str().unwrap();
    let guest_id = {
        use base64::Engine;
        let payload = guest_token.split('.').nth(1).unwrap();
        let claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?,
        )?;
        claims["sub"].as_str().unwrap().to_owned()
    };
    gc.remove(&host.token, &code, &guest_id)
        .await?
        .expect(200)?;
    gc.leave(&member.token, &code).await?.expect(200)?;
    gc.end(&host.token, &code).await?.expect(200)?;
    gc.webhooks(
        Method::POST,
        &format!("/{webhook_id}/test?org_id={}", org.id),
        &admin.token,
        None,
    )
    .await?
    .expect(202)?;

    // Every delivery GC made for the webhook arrives, once: wait until GC has delivered them
    // all and the receiver holds as many.
    let mut made = 0;
    for _ in 0..300 {
        let listed = gc
            .webhooks(
                Method::GET,
                &format!("/{webhook_id}/deliveries?org_id={}", org.id),
                &admin.token,
                None,
            )
            .await?
            .expect(200)?;
        let deliveries = listed["deliveries"].as_array().cloned().unwrap_or_default();
        made = deliveries.len();
        let all_delivered = deliveries.iter().all(|d| d["status"] == "delivered");
        let arrived = received(&http, &base, &endpoint).await?;
        if made > 0 && all_delivered && arrived.len() >= made {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Anything late or repeated would show up now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let arrived = received(&http, &base, &endpoint).await?;
    assert_eq!(
        arrived.len(),
        made,
        "GC made {made} deliveries: {arrived:#?}"
    );

    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for delivery in &arrived {
        assert_eq!(
            delivery["verified"], true,
            "the Standard Webhooks library refused a delivery: {delivery}"
        );
        assert_eq!(
            delivery["verified_with_wrong_secret"], false,
            "a wrong secret verified a delivery: {delivery}"
        );
        *counts
            .entry(delivery["type"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
    }
    for event in ALL_EVENTS {
        assert!(counts.contains_key(event), "no {event} arrived: {counts:?}");
    }
    // One meeting: one create, one start, one end, one test.
    for once in [
        "meeting.created",
        "meeting.started",
        "meeting.ended",
        "webhook.test",
    ] {
        assert_eq!(counts[once], 1, "{once}: {counts:?}");
    }
    // The member's wait and the guest's.
    assert_eq!(counts["lobby.waiting"], 2, "{counts:?}");
    let ids: std::collections::HashSet<&str> = arrived
        .iter()
        .filter_map(|d| d["webhook_id"].as_str())
        .collect();
    assert_eq!(ids.len(), arrived.len(), "a webhook-id arrived twice");
    for delivery in &arrived {
        let body: Value = serde_json::from_str(delivery["body"].as_str().unwrap())?;
        assert!(!delivery["body"].as_str().unwrap().contains('@'), "{body}");
        if body["type"] != "webhook.test" {
            assert_eq!(body["data"]["meeting_code"], code.as_str(), "{body}");
            assert_eq!(body["data"]["org_id"], org.id.as_str(), "{body}");
        }
    }

    Ok(())
}
