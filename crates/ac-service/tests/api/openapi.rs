//! AC's OpenAPI document against AC: the served document is the checked-in one and what
//! `ac-service openapi` prints, it documents exactly the routes AC serves, its examples match
//! its schemas, and AC's real answers match it.

#[path = "../../../common/tests/support/openapi.rs"]
mod checks;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{ADMIN, GC, HOST_EMAIL, PASSWORD, TestApp, metric, seed_basics, spawn_app};

const SERVICE: &str = "ac-service";
const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

async fn served(app: &TestApp) -> (reqwest::header::HeaderMap, String) {
    let response = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    (headers, response.text().await.unwrap())
}

/// A change to a handler, a type or an annotation without `scripts/openapi.sh` fails here.
#[sqlx::test(migrations = "../../migrations")]
async fn the_served_document_is_the_checked_in_one_and_what_the_subcommand_prints(pool: PgPool) {
    let app = spawn_app(pool).await;

    let (headers, text) = served(&app).await;
    let printed = tokio::process::Command::new(env!("CARGO_BIN_EXE_ac-service"))
        .arg("openapi")
        .env_clear()
        .output()
        .await
        .unwrap();

    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["cache-control"], "public, max-age=300");
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
    assert!(metric(&app, "ac_http_requests_total", &counted).await >= 1.0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn every_route_ac_serves_is_documented_and_every_documented_route_is_served(pool: PgPool) {
    let app = spawn_app(pool).await;
    let document = checks::checked_in(MANIFEST_DIR, SERVICE);

    let declared = checks::routes_in_source(MANIFEST_DIR, "no_excluded_module");
    let documented = checks::documented_routes(&document);

    assert_eq!(
        declared, documented,
        "routes declared in src/routes vs documented"
    );
    checks::assert_served_as_documented(&app.client, &app.base, &document, &documented).await;
}

#[test]
fn every_example_in_the_document_matches_its_schema() {
    let document = checks::checked_in(MANIFEST_DIR, SERVICE);
    let problems = checks::example_problems(&document);
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Sends a request and checks the answer against the document; returns the body.
async fn answer(
    app: &TestApp,
    document: &Value,
    request: reqwest::RequestBuilder,
    template: &str,
    expected: StatusCode,
) -> Value {
    let request = request.build().unwrap();
    let method = request.method().to_string();
    let response = app.client.execute(request).await.unwrap();
    assert_eq!(response.status(), expected, "{method} {template}");
    let body: Value = response.json().await.unwrap();
    checks::assert_answer_matches(document, &method, template, expected.as_u16(), &body);
    body
}

#[sqlx::test(migrations = "../../migrations")]
async fn ac_s_answers_match_the_document(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;
    let doc = checks::checked_in(MANIFEST_DIR, SERVICE);
    let c = &app.client;
    let token_path = "/api/v1/auth/user/token";
    let service_path = "/api/v1/auth/service/token";

    let login = json!({"email": HOST_EMAIL, "password": PASSWORD});
    answer(
        &app,
        &doc,
        c.post(app.url(token_path)).json(&login),
        token_path,
        StatusCode::OK,
    )
    .await;
    let wrong = json!({"email": HOST_EMAIL, "password": "wrong-password"});
    answer(
        &app,
        &doc,
        c.post(app.url(token_path)).json(&wrong),
        token_path,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let empty = json!({"email": " ", "password": "x"});
    answer(
        &app,
        &doc,
        c.post(app.url(token_path)).json(&empty),
        token_path,
        StatusCode::BAD_REQUEST,
    )
    .await;
    let unknown = json!({"email": HOST_EMAIL, "password": "x", "remember": true});
    answer(
        &app,
        &doc,
        c.post(app.url(token_path)).json(&unknown),
        token_path,
        StatusCode::BAD_REQUEST,
    )
    .await;

    let form = [("grant_type", "client_credentials")];
    let basic = c
        .post(app.url(service_path))
        .basic_auth(ADMIN.0, Some(ADMIN.1));
    answer(&app, &doc, basic.form(&form), service_path, StatusCode::OK).await;
    let bad_secret = c
        .post(app.url(service_path))
        .basic_auth(ADMIN.0, Some("wrong-secret-000"));
    answer(
        &app,
        &doc,
        bad_secret.form(&form),
        service_path,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let grant = json!({"grant_type": "password", "client_id": GC.0, "client_secret": GC.1});
    answer(
        &app,
        &doc,
        c.post(app.url(service_path)).json(&grant),
        service_path,
        StatusCode::BAD_REQUEST,
    )
    .await;

    let admin = app.service_token(ADMIN).await;
    let gc = app.service_token(GC).await;
    let grant = json!({
        "user_id": "6f1c2e9a-0b1d-4c55-9a43-2f8e1d7b3c10",
        "meeting_id": "0b6f3c1e-7d1a-4a8e-9c55-2f1f0a9d6b11",
        "meeting_code": "Ab3dE5gH9jK1",
        "org_id": "9f2773c6-a4b1-4f91-a244-c60b6347fee0",
        "role": "guest",
        "name": "Ada"
    });
    let meeting_path = "/api/v1/auth/internal/meeting-token";
    let as_gc = c.post(app.url(meeting_path)).bearer_auth(&gc).json(&grant);
    answer(&app, &doc, as_gc, meeting_path, StatusCode::OK).await;
    let as_admin = c
        .post(app.url(meeting_path))
        .bearer_auth(&admin)
        .json(&grant);
    answer(&app, &doc, as_admin, meeting_path, StatusCode::FORBIDDEN).await;
    let anonymous = c.post(app.url(meeting_path)).json(&grant);
    answer(
        &app,
        &doc,
        anonymous,
        meeting_path,
        StatusCode::UNAUTHORIZED,
    )
    .await;

    let jwks = "/.well-known/jwks.json";
    answer(&app, &doc, c.get(app.url(jwks)), jwks, StatusCode::OK).await;

    let orgs = "/api/v1/admin/orgs";
    let new_org = json!({"slug": "globex", "name": "Globex"});
    let org = answer(
        &app,
        &doc,
        c.post(app.url(orgs)).bearer_auth(&admin).json(&new_org),
        orgs,
        StatusCode::CREATED,
    )
    .await;
    answer(
        &app,
        &doc,
        c.post(app.url(orgs)).bearer_auth(&admin).json(&new_org),
        orgs,
        StatusCode::CONFLICT,
    )
    .await;
    let org_path = format!("/api/v1/admin/orgs/{}", org["org_id"].as_str().unwrap());
    let one_org = "/api/v1/admin/orgs/{org_id}";
    let change = json!({"max_concurrent_meetings": 20});
    answer(
        &app,
        &doc,
        c.patch(app.url(&org_path))
            .bearer_auth(&admin)
            .json(&change),
        one_org,
        StatusCode::OK,
    )
    .await;
    let unknown_org = checks::sample_path(one_org);
    answer(
        &app,
        &doc,
        c.patch(app.url(&unknown_org))
            .bearer_auth(&admin)
            .json(&change),
        one_org,
        StatusCode::NOT_FOUND,
    )
    .await;

    let users = "/api/v1/admin/orgs/{org_id}/users";
    let new_user = json!({"email": "ada@globex.test", "password": "correct-horse", "display_name": "Ada", "roles": ["user"]});
    answer(
        &app,
        &doc,
        c.post(app.url(&format!("{org_path}/users")))
            .bearer_auth(&admin)
            .json(&new_user),
        users,
        StatusCode::CREATED,
    )
    .await;

    let clients = "/api/v1/admin/service-clients";
    let new_client =
        json!({"client_id": "reporting-job", "service_type": "admin", "scopes": ["admin"]});
    answer(
        &app,
        &doc,
        c.post(app.url(clients))
            .bearer_auth(&admin)
            .json(&new_client),
        clients,
        StatusCode::CREATED,
    )
    .await;

    let rotate = "/api/v1/admin/keys/rotate";
    let next = answer(
        &app,
        &doc,
        c.post(app.url(rotate)).bearer_auth(&admin),
        rotate,
        StatusCode::OK,
    )
    .await;
    let withdraw = "/api/v1/admin/keys/{kid}/withdraw";
    let unknown_kid = checks::sample_path(withdraw);
    answer(
        &app,
        &doc,
        c.post(app.url(&unknown_kid)).bearer_auth(&admin),
        withdraw,
        StatusCode::NOT_FOUND,
    )
    .await;
    let kid_path = format!(
        "/api/v1/admin/keys/{}/withdraw",
        next["kid"].as_str().unwrap()
    );
    answer(
        &app,
        &doc,
        c.post(app.url(&kid_path)).bearer_auth(&admin),
        withdraw,
        StatusCode::OK,
    )
    .await;

    for probe in ["/health/live", "/health/ready"] {
        answer(&app, &doc, c.get(app.url(probe)), probe, StatusCode::OK).await;
    }
}
