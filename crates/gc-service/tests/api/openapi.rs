//! GC's OpenAPI document against GC: the served document is the checked-in one and what
//! `gc-service openapi` prints, it documents exactly the routes of the API, its examples match
//! its schemas, and GC's real answers along a meeting's life match it.

#[path = "../../../common/tests/support/openapi.rs"]
mod checks;

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{HOST, MEMBER, NO_ROLE, StackOptions, TestStack, meeting_body, spawn_stack};
use crate::meetings::stack_with_mc;

const SERVICE: &str = "gc-service";
const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// Routes GC serves that the document names in another operation's description instead of
/// as operations of their own: the create route's trailing-slash spelling (two paths that
/// differ only by a slash are one operation to clients and viewers).
const ALIASES: [(&str, &str, &str); 1] = [("POST", "/api/v1/meetings/", "/api/v1/meetings")];

/// A change to a handler, a type or an annotation without `scripts/openapi.sh` fails here.
#[sqlx::test(migrations = "../../migrations")]
async fn the_served_document_is_the_checked_in_one_and_what_the_subcommand_prints(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;

    let response = stack
        .client
        .get(stack.gc_url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    let printed = tokio::process::Command::new(env!("CARGO_BIN_EXE_gc-service"))
        .arg("openapi")
        .env_clear()
        .output()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["cache-control"], "public, max-age=300");
    let text = response.text().await.unwrap();
    assert!(printed.status.success());
    assert_eq!(String::from_utf8(printed.stdout).unwrap(), text);
    let document: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    checks::assert_same_document(
        &document,
        &checks::checked_in(MANIFEST_DIR, SERVICE),
        SERVICE,
    );
    let counted = [
        ("method", "GET"),
        ("route", "/api/v1/openapi.json"),
        ("status", "200"),
    ];
    assert!(stack.metric("gc_http_requests_total", &counted).await >= 1.0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn every_api_route_gc_serves_is_documented_and_every_documented_route_is_served(
    pool: PgPool,
) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let document = checks::checked_in(MANIFEST_DIR, SERVICE);

    // The web client's pages (`routes::web`) are HTML for browsers, not part of the API.
    let mut declared = checks::routes_in_source(MANIFEST_DIR, "web");
    for (method, alias, documented_as) in ALIASES {
        assert!(
            declared.remove(&(method.to_owned(), alias.to_owned())),
            "{alias}"
        );
        let description = document["paths"][documented_as][method.to_lowercase()]["description"]
            .as_str()
            .unwrap_or_default();
        assert!(description.contains(alias), "{documented_as} names {alias}");
    }
    let documented = checks::documented_routes(&document);

    assert_eq!(
        declared, documented,
        "routes declared in src/routes vs documented"
    );
    let probes: BTreeSet<(String, String)> = documented
        .iter()
        .cloned()
        .chain(ALIASES.map(|(m, alias, _)| (m.to_owned(), alias.to_owned())))
        .collect();
    checks::assert_served_as_documented(&stack.client, &stack.gc.base, &document, &probes).await;
}

#[test]
fn every_example_in_the_document_matches_its_schema() {
    let document = checks::checked_in(MANIFEST_DIR, SERVICE);
    let problems = checks::example_problems(&document);
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Sends `method path` as `token` (with a JSON body when given), checks the answer against
/// the document's operation `template`, and returns the body.
async fn answer(
    stack: &TestStack,
    document: &Value,
    (method, path, template): (Method, &str, &str),
    token: Option<&str>,
    body: Option<&Value>,
    expected: StatusCode,
) -> Value {
    let mut request = stack.client.request(method.clone(), stack.gc_url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), expected, "{method} {path}");
    let body: Value = response.json().await.unwrap();
    checks::assert_answer_matches(
        document,
        method.as_str(),
        template,
        expected.as_u16(),
        &body,
    );
    body
}

#[sqlx::test(migrations = "../../migrations")]
async fn gc_s_answers_along_a_meeting_s_life_match_the_document(pool: PgPool) {
    let (stack, _prefix, _people) = stack_with_mc(pool).await;
    let doc = checks::checked_in(MANIFEST_DIR, SERVICE);
    let host = stack.user_token(HOST).await;
    let guest = stack.user_token(MEMBER).await;
    let no_role = stack.user_token(NO_ROLE).await;
    let guest_id = stack.user_id(MEMBER).await.to_string();
    let (post, get, patch) = (Method::POST, Method::GET, Method::PATCH);
    let create = "/api/v1/meetings";
    let ok = StatusCode::OK;

    let full = json!({"display_name": "Weekly sync", "max_participants": 25,
                      "scheduled_start_time": chrono::Utc::now().to_rfc3339(),
                      "settings": {"lock_room": true, "enable_transcription": true}});
    let meeting = answer(
        &stack,
        &doc,
        (post.clone(), create, create),
        Some(&host),
        Some(&full),
        StatusCode::CREATED,
    )
    .await;
    let code = meeting["meeting_code"].as_str().unwrap().to_owned();
    answer(
        &stack,
        &doc,
        (post.clone(), create, create),
        None,
        Some(&full),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    answer(
        &stack,
        &doc,
        (post.clone(), create, create),
        Some(&no_role),
        Some(&full),
        StatusCode::FORBIDDEN,
    )
    .await;
    let blank = json!({"display_name": "  "});
    answer(
        &stack,
        &doc,
        (post.clone(), create, create),
        Some(&host),
        Some(&blank),
        StatusCode::BAD_REQUEST,
    )
    .await;
    let slash = "/api/v1/meetings/";
    answer(
        &stack,
        &doc,
        (post.clone(), slash, create),
        Some(&host),
        Some(&meeting_body("Other")),
        StatusCode::CREATED,
    )
    .await;

    let at = |suffix: &str| format!("/api/v1/meetings/{code}{suffix}");
    let one = "/api/v1/meetings/{code}";
    answer(
        &stack,
        &doc,
        (get.clone(), &at(""), one),
        Some(&host),
        None,
        ok,
    )
    .await;
    answer(
        &stack,
        &doc,
        (get.clone(), &at(""), one),
        Some(&guest),
        None,
        ok,
    )
    .await;
    let unknown = checks::sample_path(one);
    answer(
        &stack,
        &doc,
        (get.clone(), &unknown, one),
        Some(&host),
        None,
        StatusCode::NOT_FOUND,
    )
    .await;

    let join = "/api/v1/meetings/{code}/join";
    let joined = answer(
        &stack,
        &doc,
        (post.clone(), &at("/join"), join),
        Some(&host),
        None,
        ok,
    )
    .await;
    assert_eq!(joined["status"], "admitted");
    let waiting = answer(
        &stack,
        &doc,
        (post.clone(), &at("/join"), join),
        Some(&guest),
        None,
        ok,
    )
    .await;
    assert_eq!(waiting["status"], "waiting");

    let admit = "/api/v1/meetings/{code}/admit/{user_id}";
    let admit_guest = at(&format!("/admit/{guest_id}"));
    answer(
        &stack,
        &doc,
        (post.clone(), &admit_guest, admit),
        Some(&guest),
        None,
        StatusCode::FORBIDDEN,
    )
    .await;
    answer(
        &stack,
        &doc,
        (post.clone(), &admit_guest, admit),
        Some(&host),
        None,
        ok,
    )
    .await;
    let reject = "/api/v1/meetings/{code}/reject/{user_id}";
    let reject_guest = at(&format!("/reject/{guest_id}"));
    answer(
        &stack,
        &doc,
        (post.clone(), &reject_guest, reject),
        Some(&host),
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    let admit_all = "/api/v1/meetings/{code}/admit-all";
    answer(
        &stack,
        &doc,
        (post.clone(), &at("/admit-all"), admit_all),
        Some(&host),
        None,
        ok,
    )
    .await;

    let config = "/api/v1/meetings/{code}/config";
    let change = json!({"lock_room": false, "max_participants": 10});
    answer(
        &stack,
        &doc,
        (patch.clone(), &at("/config"), config),
        Some(&host),
        Some(&change),
        ok,
    )
    .await;
    let too_few = json!({"max_participants": 1});
    answer(
        &stack,
        &doc,
        (patch.clone(), &at("/config"), config),
        Some(&host),
        Some(&too_few),
        StatusCode::BAD_REQUEST,
    )
    .await;

    let leave = "/api/v1/meetings/{code}/leave";
    answer(
        &stack,
        &doc,
        (post.clone(), &at("/leave"), leave),
        Some(&guest),
        None,
        ok,
    )
    .await;
    let end = "/api/v1/meetings/{code}/end";
    answer(
        &stack,
        &doc,
        (post.clone(), &at("/end"), end),
        Some(&guest),
        None,
        StatusCode::FORBIDDEN,
    )
    .await;
    answer(
        &stack,
        &doc,
        (post.clone(), &at("/end"), end),
        Some(&host),
        None,
        ok,
    )
    .await;
    answer(
        &stack,
        &doc,
        (post.clone(), &at("/join"), join),
        Some(&guest),
        None,
        StatusCode::NOT_FOUND,
    )
    .await;

    let history = "/api/v1/meetings/history";
    let page = answer(
        &stack,
        &doc,
        (get.clone(), history, history),
        Some(&host),
        None,
        ok,
    )
    .await;
    assert_eq!(page["total"], 1);
    let attended = "/api/v1/meetings/history?role=any&page_size=5";
    answer(
        &stack,
        &doc,
        (get.clone(), attended, history),
        Some(&guest),
        None,
        ok,
    )
    .await;
    let sorted = "/api/v1/meetings/history?sort=asc";
    answer(
        &stack,
        &doc,
        (get.clone(), sorted, history),
        Some(&host),
        None,
        StatusCode::BAD_REQUEST,
    )
    .await;

    for probe in ["/health/live", "/health/ready"] {
        answer(&stack, &doc, (get.clone(), probe, probe), None, None, ok).await;
    }
}
