//! Hostile text in every field of every AC endpoint: NUL (which PostgreSQL refuses in text),
//! other control characters, lone surrogates (a JSON `\ud800` escape, which serde_json refuses
//! to turn into a Rust string), bytes that are not UTF-8, and values longer than any documented
//! bound, up to bodies far past the 64 KiB limit. Every one is answered 400 (413 past the body
//! limit) with the error envelope, or on the OAuth token endpoint with an RFC 6749 error body;
//! never 500.

use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{ADMIN, GC, HOST_EMAIL, PASSWORD, TestApp, seed_basics, spawn_app};

/// Stands for a lone surrogate: replaced by the JSON escape `\ud800` in the body text.
const LONE: &str = "@LONE-SURROGATE@";

/// Texts that are no valid value of any identifier-like field.
fn hostile_texts() -> Vec<(&'static str, String)> {
    vec![
        ("NUL", "a\u{0}b".to_owned()),
        ("a C0 control", "a\u{1}b".to_owned()),
        ("an escape", "a\u{1b}[2Jb".to_owned()),
        ("DEL", "a\u{7f}b".to_owned()),
        ("a C1 control", "a\u{85}b".to_owned()),
        ("a lone surrogate", format!("a{LONE}b")),
        ("256 characters", "a".repeat(256)),
        ("60 KiB", "a".repeat(60 * 1024)),
    ]
}

/// The JSON text of `body`, with every [`LONE`] turned into a lone-surrogate escape.
fn json_text(body: &Value) -> String {
    serde_json::to_string(body)
        .unwrap()
        .replace(LONE, "\\ud800")
}

fn with_field(base: &Value, field: &str, value: Value) -> Value {
    let mut body = base.clone();
    body[field] = value;
    body
}

async fn send(request: RequestBuilder, body: String) -> Response {
    request
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Asserts a 400 (or `status`) with the Convene envelope, naming the case on failure.
async fn assert_envelope(case: &str, response: Response, status: StatusCode) {
    assert_eq!(response.status(), status, "{case}");
    let body: Value = response.json().await.unwrap();
    let code = body["error"]["code"].as_str().unwrap_or_default();
    let expected = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "PAYLOAD_TOO_LARGE"
    } else {
        "BAD_REQUEST"
    };
    assert_eq!(code, expected, "{case}: {body}");
    assert!(body["error"]["message"].is_string(), "{case}: {body}");
}

/// Asserts an RFC 6749 error body with one of `errors`, naming the case on failure.
async fn assert_oauth(case: &str, response: Response, status: StatusCode, errors: &[&str]) {
    assert_eq!(response.status(), status, "{case}");
    let body: Value = response.json().await.unwrap();
    let error = body["error"].as_str().unwrap_or_default();
    assert!(errors.contains(&error), "{case}: {body}");
    assert!(body["error_description"].is_string(), "{case}: {body}");
}

/// Every hostile text in every field of `base`, sent by `request`, must get 400 and the
/// envelope; and a body past the limit 413.
async fn every_field_is_refused(
    endpoint: &str,
    request: impl Fn() -> RequestBuilder,
    base: &Value,
    fields: &[&str],
) {
    for field in fields {
        for (what, text) in hostile_texts() {
            let body = json_text(&with_field(base, field, Value::String(text)));
            let case = format!("{endpoint}: {what} in {field}");
            assert_envelope(&case, send(request(), body).await, StatusCode::BAD_REQUEST).await;
        }
        let huge = json_text(&with_field(base, field, json!("a".repeat(3 << 20))));
        let case = format!("{endpoint}: 3 MiB in {field}");
        let response = send(request(), huge).await;
        assert_envelope(&case, response, StatusCode::PAYLOAD_TOO_LARGE).await;
    }
    let not_utf8 = json_text(base).into_bytes();
    let mut broken = not_utf8.clone();
    broken.splice(1..1, *b"\"\xff\xfe\":1,");
    let response = request()
        .header("content-type", "application/json")
        .body(broken)
        .send()
        .await
        .unwrap();
    let case = format!("{endpoint}: bytes that are not UTF-8");
    assert_envelope(&case, response, StatusCode::BAD_REQUEST).await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn sign_in_refuses_hostile_text_in_the_email_with_400(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool.clone()).await;
    let path = app.url("/api/v1/auth/user/token");
    let base = json!({"email": HOST_EMAIL, "password": PASSWORD});

    every_field_is_refused("sign-in", || app.client.post(&path), &base, &["email"]).await;

    // Nothing of it was counted: no failure, no counter for any of those e-mails.
    let counted: i64 = sqlx::query_scalar("select count(*) from login_failures")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(counted, 0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn sign_in_checks_any_password_within_its_bound_and_refuses_longer_or_broken_ones(
    pool: PgPool,
) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;
    let path = app.url("/api/v1/auth/user/token");
    let password = |value: String| json_text(&json!({"email": HOST_EMAIL, "password": value}));

    // A password never reaches the database: any character may be in one, it is just wrong.
    for odd in [
        "a\u{0}b",
        "a\u{85}b",
        "\u{202e}evil",
        "\u{fffe}",
        "🦀🦀🦀🦀",
    ] {
        let response = send(app.client.post(&path), password(odd.to_owned())).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{odd:?}");
    }
    for (what, text) in [
        ("1025 characters", "é".repeat(1025)),
        ("60 KiB", "a".repeat(60 * 1024)),
        ("a lone surrogate", format!("a{LONE}b")),
    ] {
        let response = send(app.client.post(&path), password(text)).await;
        let case = format!("sign-in: {what} in password");
        assert_envelope(&case, response, StatusCode::BAD_REQUEST).await;
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_token_endpoint_refuses_hostile_text_in_a_json_body_with_invalid_request(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool.clone()).await;
    let path = app.url("/api/v1/auth/service/token");
    let base = json!({"grant_type": "client_credentials", "client_id": GC.0,
                      "client_secret": GC.1, "scope": "internal:meeting-token"});

    for field in ["client_id", "client_secret", "scope", "grant_type"] {
        let allowed: &[&str] = if field == "grant_type" {
            &["unsupported_grant_type", "invalid_request"]
        } else {
            &["invalid_request"]
        };
        for (what, text) in hostile_texts() {
            if matches!(field, "client_secret" | "scope") && what == "256 characters" {
                continue; // within the bound of 1024: a wrong secret, an unknown scope
            }
            let body = json_text(&with_field(&base, field, Value::String(text)));
            let case = format!("service token (JSON): {what} in {field}");
            let response = send(app.client.post(&path), body).await;
            assert_oauth(&case, response, StatusCode::BAD_REQUEST, allowed).await;
        }
    }
    let huge = json_text(&with_field(&base, "client_id", json!("a".repeat(3 << 20))));
    let response = send(app.client.post(&path), huge).await;
    let case = "service token (JSON): 3 MiB body";
    assert_oauth(
        case,
        response,
        StatusCode::PAYLOAD_TOO_LARGE,
        &["invalid_request"],
    )
    .await;
    let counted: i64 = sqlx::query_scalar("select count(*) from login_failures")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(counted, 0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_token_endpoint_refuses_hostile_text_in_a_form_body_with_invalid_request(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;
    let path = app.url("/api/v1/auth/service/token");
    let form = |body: String| {
        app.client
            .post(&path)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let long = "a".repeat(60 * 1024);
    let cases = [
        (
            "NUL in client_id",
            "client_id=gc%00x&client_secret=s".to_owned(),
        ),
        (
            "C1 in client_id",
            "client_id=gc%C2%85x&client_secret=s".to_owned(),
        ),
        (
            "NUL in client_secret",
            "client_id=test-gc&client_secret=a%00b".to_owned(),
        ),
        (
            "NUL in scope",
            format!("client_id={}&client_secret={}&scope=a%00", GC.0, GC.1),
        ),
        (
            "60 KiB client_id",
            format!("client_id={long}&client_secret=s"),
        ),
        (
            "60 KiB scope",
            format!("client_id={}&client_secret={}&scope={long}", GC.0, GC.1),
        ),
        (
            "a surrogate's bytes",
            "client_id=%ED%A0%80&client_secret=s".to_owned(),
        ),
        (
            "bytes that are not UTF-8",
            "client_id=%FF%FE&client_secret=s".to_owned(),
        ),
        // RFC 6749 §3.2: a repeated parameter makes the request invalid.
        (
            "a repeated client_id",
            format!(
                "client_id={}&client_id=test-mc&client_secret={}",
                GC.0, GC.1
            ),
        ),
    ];

    for (what, fields) in cases {
        let response = form(format!("grant_type=client_credentials&{fields}"))
            .await
            .unwrap();
        let case = format!("service token (form): {what}");
        assert_oauth(
            &case,
            response,
            StatusCode::BAD_REQUEST,
            &["invalid_request"],
        )
        .await;
    }
    let grant = form("grant_type=client_%00credentials".to_owned())
        .await
        .unwrap();
    assert_oauth(
        "service token (form): NUL in grant_type",
        grant,
        StatusCode::BAD_REQUEST,
        &["unsupported_grant_type"],
    )
    .await;
    let huge = form(format!(
        "grant_type=client_credentials&client_id={}",
        "a".repeat(3 << 20)
    ))
    .await
    .unwrap();
    let case = "service token (form): 3 MiB body";
    assert_oauth(
        case,
        huge,
        StatusCode::PAYLOAD_TOO_LARGE,
        &["invalid_request"],
    )
    .await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_token_endpoint_refuses_hostile_http_basic_credentials_with_invalid_request(
    pool: PgPool,
) {
    use base64::Engine;
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;
    let basic = |credentials: &[u8]| {
        let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
        app.client
            .post(app.url("/api/v1/auth/service/token"))
            .header("authorization", format!("Basic {encoded}"))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    let long_id = format!("{}:secret", "a".repeat(10 * 1024));
    let long_secret = format!("{}:{}", GC.0, "a".repeat(1025));
    let cases: [(&str, &[u8]); 6] = [
        ("NUL in the id", b"test-gc\0x:secret"),
        ("DEL in the id", b"test-gc\x7f:secret"),
        ("NUL in the secret", b"test-gc:sec\0ret"),
        ("bytes that are not UTF-8", b"\xff\xfe:secret"),
        ("a 10 KiB id", long_id.as_bytes()),
        ("a 1025-byte secret", long_secret.as_bytes()),
    ];

    for (what, credentials) in cases {
        let response = basic(credentials).await.unwrap();
        let case = format!("service token (Basic): {what}");
        assert_oauth(
            &case,
            response,
            StatusCode::BAD_REQUEST,
            &["invalid_request"],
        )
        .await;
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_meeting_token_endpoint_refuses_hostile_text_in_every_field_with_400(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;
    let gc = app.service_token(GC).await;
    let path = app.url("/api/v1/auth/internal/meeting-token");
    let base = json!({"user_id": uuid::Uuid::new_v4(), "meeting_id": uuid::Uuid::new_v4(),
                      "meeting_code": "Ab3dE5fG7hJ9", "org_id": uuid::Uuid::new_v4(),
                      "role": "host", "name": "Ada", "ttl_secs": 60});

    every_field_is_refused(
        "meeting token",
        || app.client.post(&path).bearer_auth(&gc),
        &base,
        &[
            "user_id",
            "meeting_id",
            "meeting_code",
            "org_id",
            "role",
            "name",
        ],
    )
    .await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_admin_api_refuses_hostile_text_in_every_field_with_400(pool: PgPool) {
    seed_basics(&pool).await;
    let acme: uuid::Uuid = sqlx::query_scalar("select id from organizations where slug = 'acme'")
        .fetch_one(&pool)
        .await
        .unwrap();
    let app = spawn_app(pool).await;
    let admin = app.service_token(ADMIN).await;
    let (app, admin) = (&app, &admin);
    let post = |path: String| move || app.client.post(app.url(&path)).bearer_auth(admin);

    every_field_is_refused(
        "create org",
        post("/api/v1/admin/orgs".into()),
        &json!({"slug": "new-org", "name": "New Org"}),
        &["slug", "name"],
    )
    .await;
    every_field_is_refused(
        "update org",
        || {
            app.client
                .patch(app.url(&format!("/api/v1/admin/orgs/{acme}")))
                .bearer_auth(admin)
        },
        &json!({"name": "Acme"}),
        &["name"],
    )
    .await;
    every_field_is_refused(
        "create user",
        post(format!("/api/v1/admin/orgs/{acme}/users")),
        &json!({"email": "new@acme.test", "password": "a-good-password",
                "display_name": "New", "roles": ["user"]}),
        &["email", "display_name"],
    )
    .await;
    every_field_is_refused(
        "create service client",
        post("/api/v1/admin/service-clients".into()),
        &json!({"client_id": "new-client", "service_type": "admin", "scopes": ["admin"]}),
        &["client_id", "service_type"],
    )
    .await;
    for (path, base, field) in [
        (
            format!("/api/v1/admin/orgs/{acme}/users"),
            json!({"email": "new@acme.test", "password": "a-good-password",
                   "display_name": "New"}),
            "roles",
        ),
        (
            "/api/v1/admin/service-clients".to_owned(),
            json!({"client_id": "new-client", "service_type": "admin"}),
            "scopes",
        ),
    ] {
        for (what, text) in hostile_texts() {
            let body = json_text(&with_field(&base, field, json!([text])));
            let case = format!("{path}: {what} in {field}");
            assert_envelope(
                &case,
                send(post(path.clone())(), body).await,
                StatusCode::BAD_REQUEST,
            )
            .await;
        }
    }
    // A new password may hold any character, but not more than 1024 of them.
    for (what, text) in [
        ("1025 characters", "p".repeat(1025)),
        ("a lone surrogate", format!("password{LONE}")),
    ] {
        let body = json_text(&json!({"email": "new@acme.test", "password": text,
                                     "display_name": "New"}));
        let case = format!("create user: {what} in password");
        let response = send(post(format!("/api/v1/admin/orgs/{acme}/users"))(), body).await;
        assert_envelope(&case, response, StatusCode::BAD_REQUEST).await;
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn hostile_path_ids_name_nothing_and_get_404(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;
    let admin = app.service_token(ADMIN).await;
    // Far past a UUID, and under the 8 KiB the service shell allows a request target (longer
    // ones are a 414, which is not what this test is about).
    let long = "a".repeat(4 * 1024);

    for id in ["%00", "a%00b", "%C2%85", "%ED%A0%80", "%FF", long.as_str()] {
        let update = app
            .client
            .patch(app.url(&format!("/api/v1/admin/orgs/{id}")))
            .bearer_auth(&admin)
            .json(&json!({"name": "X"}))
            .send()
            .await
            .unwrap();
        let users = app
            .client
            .post(app.url(&format!("/api/v1/admin/orgs/{id}/users")))
            .bearer_auth(&admin)
            .json(
                &json!({"email": "x@acme.test", "password": "a-good-password",
                          "display_name": "X"}),
            )
            .send()
            .await
            .unwrap();

        for response in [update, users] {
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{id:.20}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "NOT_FOUND", "{id:.20}");
        }
    }
}

/// The app's own helpers, for a test that wants to be sure hostile input left AC serving.
#[sqlx::test(migrations = "../../migrations")]
async fn ac_still_signs_in_after_a_barrage_of_hostile_input(pool: PgPool) {
    seed_basics(&pool).await;
    let app: TestApp = spawn_app(pool).await;
    for (_, text) in hostile_texts() {
        let body = json_text(&json!({"email": text, "password": text}));
        send(app.client.post(app.url("/api/v1/auth/user/token")), body).await;
    }

    assert_eq!(
        app.login(HOST_EMAIL, PASSWORD).await.status(),
        StatusCode::OK
    );
}
