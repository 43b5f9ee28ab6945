use ac_service::config::Safeguards;
use common::jwt::{AUDIENCE_SERVICE, ServiceClaims, TokenType};
use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{
    ADMIN, GC, HOST_EMAIL, MC, PASSWORD, TestApp, error_code, metric, oauth_error, seed_basics,
    spawn_app, spawn_app_with, spawn_app_with_safeguards, test_config, test_safeguards,
};

const PATH: &str = "/api/v1/auth/service/token";

async fn claims_of(app: &TestApp, response: reqwest::Response) -> (Value, ServiceClaims) {
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let claims = app
        .verifier()
        .verify::<ServiceClaims>(body["access_token"].as_str().unwrap())
        .await
        .unwrap();
    (body, claims)
}

#[sqlx::test(migrations = "../../migrations")]
async fn client_credentials_in_http_basic_with_a_form_body_give_a_service_token(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;

    let response = app
        .client
        .post(app.url(PATH))
        .basic_auth(GC.0, Some(GC.1))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();

    assert_eq!(
        response.headers()[reqwest::header::CACHE_CONTROL],
        "no-store"
    );
    let (body, claims) = claims_of(&app, response).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "internal:meeting-token");
    assert_eq!(claims.token_type, TokenType::Service);
    assert_eq!(claims.aud, AUDIENCE_SERVICE);
    assert_eq!(claims.sub, GC.0);
    assert_eq!(claims.service_type, "global-controller");
    assert_eq!(claims.scope, "internal:meeting-token");
}

#[sqlx::test(migrations = "../../migrations")]
async fn client_credentials_in_a_json_body_give_a_service_token(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;

    let response = app
        .post_json(
            PATH,
            None,
            &json!({"grant_type": "client_credentials", "client_id": MC.0, "client_secret": MC.1}),
        )
        .await;

    let (body, claims) = claims_of(&app, response).await;
    // No scope granted: the field is left out (RFC 6749 has no empty scope).
    assert!(body.get("scope").is_none(), "{body}");
    assert_eq!(claims.service_type, "meeting-controller");
}

#[sqlx::test(migrations = "../../migrations")]
async fn client_credentials_in_a_form_body_give_a_service_token(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;

    let response = app
        .client
        .post(app.url(PATH))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", ADMIN.0),
            ("client_secret", ADMIN.1),
            ("audience", "ignored-as-rfc-6749-says"),
        ])
        .send()
        .await
        .unwrap();

    let (_, claims) = claims_of(&app, response).await;
    assert!(claims.has_scope("admin"));
}

#[sqlx::test(migrations = "../../migrations")]
async fn http_basic_with_a_json_body_works_too(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;

    let response = app
        .client
        .post(app.url(PATH))
        .basic_auth(ADMIN.0, Some(ADMIN.1))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();

    claims_of(&app, response).await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_requested_subset_narrows_the_scope_and_an_ungranted_scope_is_refused(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;
    let admin = app.service_token(ADMIN).await;
    let created: Value = app
        .post_json(
            "/api/v1/admin/service-clients",
            Some(&admin),
            &json!({"client_id": "both-scopes", "service_type": "global-controller",
                    "scopes": ["admin", "internal:meeting-token"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let secret = created["client_secret"].as_str().unwrap();
    let request = |scope: &'static str| {
        app.client
            .post(app.url(PATH))
            .basic_auth("both-scopes", Some(secret))
            .form(&[("grant_type", "client_credentials"), ("scope", scope)])
            .send()
    };

    let (body, claims) = claims_of(&app, request("internal:meeting-token").await.unwrap()).await;
    let ungranted = request("admin internal:everything").await.unwrap();

    assert_eq!(body["scope"], "internal:meeting-token");
    assert!(!claims.has_scope("admin"));
    assert_eq!(ungranted.status(), StatusCode::BAD_REQUEST);
    assert_eq!(oauth_error(ungranted).await, "invalid_scope");
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_wrong_secret_an_unknown_client_or_no_credentials_get_401(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;
    let form = [("grant_type", "client_credentials")];

    let wrong = app
        .client
        .post(app.url(PATH))
        .basic_auth(GC.0, Some("nope-nope-nope"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let unknown = app
        .client
        .post(app.url(PATH))
        .basic_auth("who-knows", Some(GC.1))
        .form(&form)
        .send()
        .await
        .unwrap();
    let none = app
        .client
        .post(app.url(PATH))
        .form(&form)
        .send()
        .await
        .unwrap();

    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        none.headers()[reqwest::header::WWW_AUTHENTICATE],
        "Basic realm=\"convene\""
    );
    assert_eq!(oauth_error(none).await, "invalid_client");
    assert_eq!(wrong.bytes().await.unwrap(), unknown.bytes().await.unwrap());
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_deactivated_client_gets_401(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool.clone()).await;
    sqlx::query("update service_credentials set is_active = false where client_id = $1")
        .bind(GC.0)
        .execute(&pool)
        .await
        .unwrap();

    let response = app
        .post_json(
            PATH,
            None,
            &json!({"grant_type": "client_credentials", "client_id": GC.0, "client_secret": GC.1}),
        )
        .await;

    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrations = "../../migrations")]
async fn other_grant_types_and_two_authentication_methods_are_bad_requests(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;

    let password_grant = app
        .post_json(
            PATH,
            None,
            &json!({"grant_type": "password", "client_id": GC.0, "client_secret": GC.1}),
        )
        .await;
    let both = app
        .client
        .post(app.url(PATH))
        .basic_auth(GC.0, Some(GC.1))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_secret", GC.1),
        ])
        .send()
        .await
        .unwrap();
    let unknown_json_field = app
        .post_json(
            PATH,
            None,
            &json!({"grant_type": "client_credentials", "client_id": GC.0,
                                       "client_secret": GC.1, "extra": 1}),
        )
        .await;

    assert_eq!(password_grant.status(), StatusCode::BAD_REQUEST);
    assert_eq!(oauth_error(password_grant).await, "unsupported_grant_type");
    assert_eq!(both.status(), StatusCode::BAD_REQUEST);
    assert_eq!(oauth_error(both).await, "invalid_request");
    assert_eq!(unknown_json_field.status(), StatusCode::BAD_REQUEST);
    assert_eq!(oauth_error(unknown_json_field).await, "invalid_request");
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_sixth_failed_client_authentication_is_rate_limited_even_with_the_right_secret(
    pool: PgPool,
) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;

    for _ in 0..5 {
        let response = app.request_service_token((GC.0, "wrong-secret-0000")).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let sixth = app.request_service_token((GC.0, "wrong-secret-0000")).await;
    let right = app.request_service_token(GC).await;

    assert_eq!(sixth.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = sixth.headers()[RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    assert_eq!(oauth_error(sixth).await, "slow_down");
    assert_eq!(right.status(), StatusCode::TOO_MANY_REQUESTS);
    // Other clients are not affected.
    assert_eq!(app.request_service_token(MC).await.status(), StatusCode::OK);
    assert_eq!(
        metric(
            &app,
            "ac_client_auth_failures_total",
            &[("reason", "rate_limited")]
        )
        .await,
        2.0
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn unknown_client_ids_are_locked_out_like_real_ones(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;

    for _ in 0..5 {
        let response = app
            .request_service_token(("nobody", "some-secret-000"))
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }

    let sixth = app
        .request_service_token(("nobody", "some-secret-000"))
        .await;
    assert_eq!(sixth.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_successful_client_authentication_resets_the_client_counter(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;
    for _ in 0..4 {
        app.request_service_token((GC.0, "wrong-secret-0000")).await;
    }

    assert_eq!(app.request_service_token(GC).await.status(), StatusCode::OK);

    for _ in 0..5 {
        let response = app.request_service_token((GC.0, "wrong-secret-0000")).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let sixth = app.request_service_token((GC.0, "wrong-secret-0000")).await;
    assert_eq!(sixth.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[sqlx::test(migrations = "../../migrations")]
async fn one_address_has_one_failure_budget_for_sign_ins_and_client_authentications(pool: PgPool) {
    seed_basics(&pool).await;
    let mut config = test_config();
    config.login_max_failures_per_ip = 3;
    let app = spawn_app_with(pool, config).await;

    assert_eq!(
        app.login("a@acme.test", "wrong-password").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login("b@acme.test", "wrong-password").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.request_service_token(("client-a", "wrong-secret-0000"))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let fourth = app
        .request_service_token(("client-b", "wrong-secret-0000"))
        .await;

    assert_eq!(fourth.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(fourth.headers().contains_key(RETRY_AFTER));
    assert_eq!(
        app.request_service_token(GC).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        app.login(HOST_EMAIL, PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn concurrent_secret_guesses_cannot_exceed_the_client_limit(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;

    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let request = app
            .client
            .post(app.url(PATH))
            .basic_auth(GC.0, Some("wrong-secret-0000"))
            .form(&[("grant_type", "client_credentials")]);
        attempts.spawn(async move { request.send().await.unwrap().status() });
    }
    let statuses = attempts.join_all().await;

    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((refused, limited), (5, 15));
}

#[sqlx::test(migrations = "../../migrations")]
async fn requests_get_503_with_retry_after_when_no_hashing_slot_frees_up(pool: PgPool) {
    seed_basics(&pool).await;
    let safeguards = Safeguards {
        max_concurrent_hashes: 1,
        hash_wait_ms: 100,
        ..test_safeguards()
    };
    let acme: uuid::Uuid = sqlx::query_scalar("select id from organizations where slug = 'acme'")
        .fetch_one(&pool)
        .await
        .unwrap();
    let app = spawn_app_with_safeguards(pool, test_config(), safeguards).await;
    let admin = app.service_token(ADMIN).await;
    let users_path = format!("/api/v1/admin/orgs/{acme}/users");
    let slot = app.hasher.reserve().await.unwrap();

    let service = app.request_service_token(GC).await;
    let login = app.login(HOST_EMAIL, PASSWORD).await;
    let new_user = app
        .post_json(
            &users_path,
            Some(&admin),
            &json!({"email": "late@acme.test", "password": "a-good-password",
                    "display_name": "Late", "roles": []}),
        )
        .await;
    let new_client = app
        .post_json(
            "/api/v1/admin/service-clients",
            Some(&admin),
            &json!({"client_id": "later", "service_type": "admin", "scopes": []}),
        )
        .await;

    assert_eq!(service.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(service.headers()[RETRY_AFTER], "1");
    assert_eq!(oauth_error(service).await, "temporarily_unavailable");
    for response in [login, new_user, new_client] {
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[RETRY_AFTER], "1");
        assert_eq!(error_code(response).await, "SERVICE_UNAVAILABLE");
    }
    assert_eq!(metric(&app, "ac_hash_busy_total", &[]).await, 4.0);
    // Turned-away attempts were never checked, so they do not count as failures.
    for _ in 0..10 {
        let response = app.request_service_token((GC.0, "wrong-secret-0000")).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    drop(slot);
    assert_eq!(app.request_service_token(GC).await.status(), StatusCode::OK);
    assert_eq!(
        app.login(HOST_EMAIL, PASSWORD).await.status(),
        StatusCode::OK
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn missing_and_malformed_client_credentials_are_counted_as_failures(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;
    let form = [("grant_type", "client_credentials")];

    let missing = app
        .client
        .post(app.url(PATH))
        .form(&form)
        .send()
        .await
        .unwrap();
    let not_base64 = app
        .client
        .post(app.url(PATH))
        .header("authorization", "Basic !!!not-base64")
        .form(&form)
        .send()
        .await
        .unwrap();
    let other_scheme = app
        .client
        .post(app.url(PATH))
        .header("authorization", "Bearer abc")
        .form(&form)
        .send()
        .await
        .unwrap();
    let wrong = app.request_service_token((GC.0, "wrong-secret-0000")).await;

    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(not_base64.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(other_scheme.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    for (reason, expected) in [
        ("missing_credentials", 1.0),
        ("malformed_credentials", 2.0),
        ("invalid_credentials", 1.0),
    ] {
        let counted = metric(&app, "ac_client_auth_failures_total", &[("reason", reason)]).await;
        assert_eq!(counted, expected, "{reason}");
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn by_default_failures_for_a_client_id_do_not_lock_that_client_out(pool: PgPool) {
    // Client ids are not secret: a per-id lock-out would let anyone lock GC out.
    seed_basics(&pool).await;
    let safeguards = Safeguards {
        client_max_failures_per_client: None,
        ..test_safeguards()
    };
    let app = spawn_app_with_safeguards(pool, test_config(), safeguards).await;

    for _ in 0..10 {
        let response = app.request_service_token((GC.0, "wrong-secret-0000")).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.request_service_token(GC).await.status(), StatusCode::OK);
}
