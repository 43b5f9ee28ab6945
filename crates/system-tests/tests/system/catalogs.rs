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
