use common::jwt::{AUDIENCE_USER, Role, TokenType, UserClaims};
use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{
    GUEST_EMAIL, HOST_EMAIL, PASSWORD, error_code, seed_basics, spawn_app, spawn_app_with,
    test_config,
};

#[sqlx::test(migrations = "../../migrations")]
async fn login_returns_a_user_token_with_the_users_claims(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;

    let response = app.login("Host@Acme.test", PASSWORD).await;

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    let token = body["access_token"].as_str().unwrap();
    let claims: UserClaims = app.verifier().verify(token).await.unwrap();
    assert_eq!(claims.token_type, TokenType::User);
    assert_eq!(claims.aud, AUDIENCE_USER);
    assert_eq!(claims.iss, "convene-ac");
    assert_eq!(claims.roles, vec![Role::User]);
    assert_eq!(claims.name, "Acme Host");
    assert_eq!(claims.exp - claims.iat, 3600);
    assert!(!token.contains("acme.test"));
    let payload = token.split('.').nth(1).unwrap();
    let decoded = base64_decode(payload);
    assert!(
        !decoded.contains("@"),
        "the token must not carry the e-mail address"
    );
}

fn base64_decode(part: &str) -> String {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

#[sqlx::test(migrations = "../../migrations")]
async fn unknown_email_and_wrong_password_get_byte_identical_answers(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;

    let unknown = app.login("nobody@acme.test", PASSWORD).await;
    let wrong = app.login(HOST_EMAIL, "wrong-password").await;

    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let unknown_body = unknown.bytes().await.unwrap();
    let wrong_body = wrong.bytes().await.unwrap();
    assert_eq!(unknown_body, wrong_body);
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_sixth_failure_is_rate_limited_even_with_the_right_password(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;

    for _ in 0..5 {
        let response = app.login(HOST_EMAIL, "wrong-password").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let sixth = app.login(HOST_EMAIL, "wrong-password").await;
    let right = app.login(&HOST_EMAIL.to_uppercase(), PASSWORD).await;

    assert_eq!(sixth.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = sixth.headers()[RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    assert_eq!(error_code(sixth).await, "RATE_LIMITED");
    assert_eq!(right.status(), StatusCode::TOO_MANY_REQUESTS);
    // Other accounts are not affected.
    assert_eq!(
        app.login(GUEST_EMAIL, PASSWORD).await.status(),
        StatusCode::OK
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn unknown_emails_are_locked_out_like_real_ones(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;

    for _ in 0..5 {
        assert_eq!(
            app.login("ghost@acme.test", "whatever-pw").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }

    let sixth = app.login("ghost@acme.test", "whatever-pw").await;
    assert_eq!(sixth.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_lock_lifts_when_the_window_ends(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool.clone()).await;
    for _ in 0..6 {
        app.login(HOST_EMAIL, "wrong-password").await;
    }
    assert_eq!(
        app.login(HOST_EMAIL, PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );

    // Move the window into the past instead of waiting 15 minutes.
    sqlx::query("update login_failures set window_start = now() - interval '16 minutes'")
        .execute(&pool)
        .await
        .unwrap();

    assert_eq!(
        app.login(HOST_EMAIL, PASSWORD).await.status(),
        StatusCode::OK
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_successful_login_resets_the_account_counter(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;
    for _ in 0..4 {
        app.login(HOST_EMAIL, "wrong-password").await;
    }

    assert_eq!(
        app.login(HOST_EMAIL, PASSWORD).await.status(),
        StatusCode::OK
    );

    for _ in 0..5 {
        assert_eq!(
            app.login(HOST_EMAIL, "wrong-password").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        app.login(HOST_EMAIL, "wrong-password").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn one_client_address_has_a_failure_budget_across_accounts(pool: PgPool) {
    seed_basics(&pool).await;
    let mut config = test_config();
    config.login_max_failures_per_ip = 3;
    let app = spawn_app_with(pool, config).await;

    for n in 0..3 {
        let response = app
            .login(&format!("user{n}@acme.test"), "wrong-password")
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let fourth = app.login("user9@acme.test", "wrong-password").await;
    let right = app.login(HOST_EMAIL, PASSWORD).await;

    assert_eq!(fourth.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(fourth.headers().contains_key(RETRY_AFTER));
    assert_eq!(right.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[sqlx::test(migrations = "../../migrations")]
async fn forwarded_addresses_count_only_when_trusted(pool: PgPool) {
    seed_basics(&pool).await;
    let mut config = test_config();
    config.login_max_failures_per_ip = 1;
    config.trust_forwarded_for = true;
    let app = spawn_app_with(pool, config).await;
    let login_from = |ip: &'static str, email: &'static str| {
        app.client
            .post(app.url("/api/v1/auth/user/token"))
            .header("x-forwarded-for", format!("198.51.100.7, {ip}"))
            .json(&json!({"email": email, "password": "wrong-password"}))
            .send()
    };

    assert_eq!(
        login_from("203.0.113.1", "a@acme.test")
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login_from("203.0.113.1", "b@acme.test")
            .await
            .unwrap()
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        login_from("203.0.113.2", "c@acme.test")
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn an_inactive_user_or_org_gets_the_same_401_as_a_wrong_password(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool.clone()).await;
    let wrong = app
        .login(GUEST_EMAIL, "wrong-password")
        .await
        .bytes()
        .await
        .unwrap();

    sqlx::query("update users set is_active = false where email = $1")
        .bind(HOST_EMAIL)
        .execute(&pool)
        .await
        .unwrap();
    let inactive_user = app.login(HOST_EMAIL, PASSWORD).await;
    assert_eq!(inactive_user.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(inactive_user.bytes().await.unwrap(), wrong);

    sqlx::query("update organizations set is_active = false where slug = 'acme'")
        .execute(&pool)
        .await
        .unwrap();
    let inactive_org = app.login(GUEST_EMAIL, PASSWORD).await;
    assert_eq!(inactive_org.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(inactive_org.bytes().await.unwrap(), wrong);
}

#[sqlx::test(migrations = "../../migrations")]
async fn login_bodies_are_parsed_strictly(pool: PgPool) {
    let app = spawn_app(pool).await;

    let extra = app
        .post_json(
            "/api/v1/auth/user/token",
            None,
            &json!({"email": HOST_EMAIL, "password": PASSWORD, "remember": true}),
        )
        .await;
    let missing = app
        .post_json(
            "/api/v1/auth/user/token",
            None,
            &json!({"email": HOST_EMAIL}),
        )
        .await;

    assert_eq!(extra.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(extra).await, "BAD_REQUEST");
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
}

#[sqlx::test(migrations = "../../migrations")]
async fn concurrent_guesses_cannot_exceed_the_account_limit(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;

    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let request = app
            .client
            .post(app.url("/api/v1/auth/user/token"))
            .json(&json!({"email": HOST_EMAIL, "password": "wrong-password"}));
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
async fn ipv6_clients_share_the_budget_of_their_64_bit_prefix(pool: PgPool) {
    seed_basics(&pool).await;
    let mut config = test_config();
    config.login_max_failures_per_ip = 1;
    config.trust_forwarded_for = true;
    let app = spawn_app_with(pool, config).await;
    let login_from = |ip: &'static str, email: &'static str| {
        app.client
            .post(app.url("/api/v1/auth/user/token"))
            .header("x-forwarded-for", ip)
            .json(&json!({"email": email, "password": "wrong-password"}))
            .send()
    };

    let first = login_from("2001:db8:1:2::1", "a@acme.test").await.unwrap();
    let same_prefix = login_from("2001:db8:1:2:ffff:ffff:ffff:fffe", "b@acme.test")
        .await
        .unwrap();
    let other_prefix = login_from("2001:db8:1:3::1", "c@acme.test").await.unwrap();
    let v4 = login_from("203.0.113.9", "d@acme.test").await.unwrap();
    let v4_mapped = login_from("::ffff:203.0.113.9", "e@acme.test")
        .await
        .unwrap();

    assert_eq!(first.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(same_prefix.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(other_prefix.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(v4.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(v4_mapped.status(), StatusCode::TOO_MANY_REQUESTS);
}
