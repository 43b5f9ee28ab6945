use common::jwt::{AUDIENCE_SERVICE, ServiceClaims, TokenType};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{ADMIN, GC, MC, TestApp, error_code, seed_basics, spawn_app};

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
    assert_eq!(body["scope"], "");
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
    let envelope: Value = ungranted.json().await.unwrap();
    assert_eq!(envelope["error"]["code"], "BAD_REQUEST");
    assert!(
        envelope["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid_scope")
    );
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
    assert_eq!(both.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(unknown_json_field).await, "BAD_REQUEST");
}
