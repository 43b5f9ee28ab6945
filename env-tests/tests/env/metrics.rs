//! Every service's `/metrics`, as Prometheus would read it, and GC's create counter counting
//! exactly what happened.

use serde_json::json;

use crate::support::config::stack;
use crate::support::http::client;
use crate::support::metrics::{has_family, promtool_check, sample, scrape};
use crate::support::{GcClient, Limits, named, org};

#[tokio::test]
async fn every_service_serves_metrics_that_promtool_accepts() -> anyhow::Result<()> {
    let stack = stack();
    let http = client();
    let mut services = vec![
        (stack.ac.clone(), "ac_http_requests_total"),
        (stack.gc.clone(), "gc_meetings_created_total"),
    ];
    services.extend(
        stack
            .mcs
            .iter()
            .map(|mc| (mc.clone(), "mc_ws_connections_open")),
    );
    for (service, family) in services {
        let text = scrape(&http, &service).await?;
        promtool_check(&format!("the /metrics of {}", service.describe()), &text).await?;
        assert!(
            has_family(&text, family),
            "{} serves no {family}",
            service.describe()
        );
    }
    Ok(())
}

/// Counts `gc_meetings_created_total` exactly, so nothing else may create meanwhile: nextest
/// runs this test alone (the profile `env-tests` of `.config/nextest.toml` gives it every test
/// thread). One HTTP client,
/// hence one kept-alive connection, does the scrapes and the creates, so behind a load
/// balancer that balances connections (a Kubernetes Service) they all reach one GC replica.
#[tokio::test]
async fn gc_meetings_created_total_moves_by_exactly_the_number_of_creates() -> anyhow::Result<()> {
    anyhow::ensure!(
        std::env::var_os("NEXTEST").is_some(),
        "this test counts every create the stack sees, so it must run alone: run the \
         env-tests with `cargo nextest run --profile env-tests` (scripts/env-tests.sh), which \
         does so"
    );
    let (_ac, org) = org(Limits::default()).await?;
    let host = org.user("Env Host").await?;
    let nobody = org.user_with_roles("No Role", &[]).await?;
    let http = client();
    let gc_service = stack().gc.clone();
    let gc = GcClient::with_client(http.clone());
    let series = [
        ("success", "none"),
        ("error", "unauthorized"),
        ("error", "forbidden"),
        ("error", "bad_request"),
    ];
    let counts = |text: &str| {
        series.map(|(status, error_type)| {
            sample(
                text,
                "gc_meetings_created_total",
                &[("status", status), ("error_type", error_type)],
            )
            .unwrap_or(0.0)
        })
    };
    let successes = |text: &str| {
        sample(
            text,
            "gc_meeting_creation_duration_seconds_count",
            &[("status", "success")],
        )
        .unwrap_or(0.0)
    };

    let before = scrape(&http, &gc_service).await?;
    let mut codes = Vec::new();
    for i in 0..7 {
        let meeting = gc
            .create_meeting(&host.token, &named(&format!("Counted {i}")))
            .await?;
        codes.push(
            meeting["meeting_code"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    for _ in 0..2 {
        gc.raw_create_meeting(None, Some("application/json"), r#"{"display_name": "x"}"#)
            .await?
            .assert_error(401, "UNAUTHORIZED");
    }
    gc.try_create_meeting(&nobody.token, &named("x"))
        .await?
        .assert_error(403, "FORBIDDEN");
    for body in [
        json!({}),
        json!({"display_name": 1}),
        json!({"display_name": "x", "colour": 1}),
    ] {
        gc.try_create_meeting(&host.token, &body)
            .await?
            .assert_error(400, "BAD_REQUEST");
    }
    let after = scrape(&http, &gc_service).await?;

    let moved: Vec<f64> = counts(&after)
        .iter()
        .zip(counts(&before))
        .map(|(after, before)| after - before)
        .collect();
    assert_eq!(
        moved,
        vec![7.0, 2.0, 1.0, 3.0],
        "gc_meetings_created_total{{status, error_type}} moved by {:?} for {series:?}",
        moved
    );
    assert_eq!(successes(&after) - successes(&before), 7.0);

    for code in codes {
        gc.end(&host.token, &code).await?.expect(200)?;
    }
    Ok(())
}
