//! The metric catalogs (`docs/observability/metrics/<service>-service.md`) against what the
//! three services export after a whole session: a metric exported but not catalogued, or
//! catalogued but never exported, fails the test.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::HOST;
use crate::signaling::{meeting, member, quick, rest, seated, stack};

/// Metric names in a Prometheus text exposition, `_bucket`, `_sum` and `_count` folded into
/// their histogram.
fn exported_names(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(|name| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name)
                .to_owned()
        })
        .collect()
}

/// The metric names a catalog lists (the first cell of its table rows).
fn catalogued(service: &str) -> std::collections::BTreeSet<String> {
    let path = format!(
        "{}/../../docs/observability/metrics/{service}-service.md",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .filter(|name| name.starts_with(&format!("{service}_")))
        .map(str::to_owned)
        .collect()
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_metric_catalogs_list_exactly_what_the_services_export(pool: PgPool) {
    let (stack, _prefix, people) = stack(pool, quick()).await;
    // Exercise the three services: sign-ins and tokens (AC), create, join, lobby, end (GC),
    // sockets, events, the active speaker, a rate limit and a leave (MC).
    let (code, host, mut host_ws) = meeting(&stack, &people).await;
    let (_guest, mut guest_ws) = seated(&stack, &people, &code, &host, "Metered").await;
    let waiting = member(&stack, &people, &code, "Waiting").await;
    let mut waiting_ws = waiting.socket().await;
    waiting_ws.expect_next("lobby.waiting").await;
    for _ in 0..20 {
        guest_ws
            .send(json!({"type": "audio_level", "level_dbfs": -10}))
            .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    host_ws.expect("active_speaker").await;
    guest_ws.send_text("not json").await;
    guest_ws.expect("error").await;
    let _ = stack.user_token(HOST).await;
    rest(
        &stack,
        Method::POST,
        &format!("/api/v1/meetings/{code}/end"),
        &host.token,
    )
    .await;
    host_ws.expect_close().await;

    // One webhook delivery (GC's webhook metrics appear with the first attempt): an org admin
    // subscribes a receiver on loopback and sends it a test event.
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver_url = format!("http://{}/hook", receiver.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(|| async { axum::http::StatusCode::NO_CONTENT }),
    );
    tokio::spawn(async move { axum::serve(receiver, app).await });
    let admin = stack.user_token(crate::helpers::ORG_ADMIN).await;
    let created: serde_json::Value = stack
        .client
        .post(stack.gc_url("/api/v1/webhooks"))
        .bearer_auth(&admin)
        .json(&json!({"url": receiver_url, "events": ["webhook.test"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let webhook = created["webhook_id"].as_str().unwrap().to_owned();
    let sent = stack
        .client
        .post(stack.gc_url(&format!("/api/v1/webhooks/{webhook}/test")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 202);
    let mut delivered = false;
    for _ in 0..200 {
        let listed: serde_json::Value = stack
            .client
            .get(stack.gc_url(&format!(
                "/api/v1/webhooks/{webhook}/deliveries?status=delivered"
            )))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if listed["deliveries"]
            .as_array()
            .is_some_and(|d| !d.is_empty())
        {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(delivered, "the test event was never delivered");

    // In-process services share one metrics registry: GC's /metrics shows all three.
    let exported = exported_names(&stack.metrics_text().await);
    assert!(
        exported.contains("mc_ws_messages_received_total"),
        "{exported:?}"
    );
    let mut unexported = Vec::new();
    for service in ["ac", "gc", "mc"] {
        let catalog = catalogued(service);
        let missing: Vec<_> = exported
            .iter()
            .filter(|name| name.starts_with(&format!("{service}_")) && !catalog.contains(*name))
            .collect();
        assert!(
            missing.is_empty(),
            "exported but not in docs/observability/metrics/{service}-service.md: {missing:?}"
        );
        unexported.extend(catalog.into_iter().filter(|name| !exported.contains(name)));
    }
    assert!(
        unexported.is_empty(),
        "catalogued but not exported after a whole session: {unexported:?}"
    );
}
