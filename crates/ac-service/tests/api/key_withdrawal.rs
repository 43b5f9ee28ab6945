//! Emergency withdrawal of a compromised signing key: `POST /api/v1/admin/keys/{kid}/withdraw`.

use std::time::{Duration, Instant};

use ac_service::config::Safeguards;
use common::jwks::{JwksVerifier, VerifierConfig, VerifyError};
use common::jwt::UserClaims;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{
    ADMIN, GC, HOST_EMAIL, PASSWORD, TestApp, error_code, kid_of, metric, seed_basics, spawn_app,
    spawn_app_with_safeguards, test_config, test_safeguards,
};

async fn withdraw(app: &TestApp, token: &str, kid: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/v1/admin/keys/{kid}/withdraw")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

async fn signer_rows(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "select count(*) from signing_keys
          where activates_at <= now() and (retired_at is null or retired_at > now())",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = "../../migrations")]
async fn withdrawing_the_signing_key_refuses_its_tokens_and_a_new_key_signs_at_once(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool.clone()).await;
    let admin = app.service_token(ADMIN).await;
    let before = app.user_token(HOST_EMAIL, PASSWORD).await;
    let compromised = kid_of(&before);
    // A verifier like GC's, with the key set cached before the withdrawal.
    let cached = JwksVerifier::new(VerifierConfig {
        refresh_interval: Duration::ZERO,
        min_refetch_interval: Duration::ZERO,
        ..VerifierConfig::new(&app.base, "convene-ac")
    })
    .unwrap();
    cached.verify::<UserClaims>(&before).await.unwrap();

    let response = withdraw(&app, &admin, &compromised).await;

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["withdrawn_kid"], compromised.as_str());
    let signing = body["signing_kid"].as_str().unwrap().to_owned();
    assert_ne!(signing, compromised);
    assert_eq!(kids(&app.jwks().await), vec![signing.clone()]);
    assert_eq!(signer_rows(&pool).await, 1);
    // The private half is gone with the row.
    let left: i64 = sqlx::query_scalar("select count(*) from signing_keys where kid = $1")
        .bind(&compromised)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0);

    // New tokens carry the new key, with no activation delay, and verify everywhere.
    let after = app.user_token(HOST_EMAIL, PASSWORD).await;
    assert_eq!(kid_of(&after), signing);
    app.verifier().verify::<UserClaims>(&after).await.unwrap();
    cached.verify::<UserClaims>(&after).await.unwrap();

    // Old tokens: a fresh verifier does not know the key; AC itself refuses the admin token
    // the compromised key signed; the verifier that had it cached drops it at its next refresh.
    assert_eq!(
        app.verifier()
            .verify::<UserClaims>(&before)
            .await
            .unwrap_err(),
        VerifyError::UnknownKid
    );
    assert_eq!(
        withdraw(&app, &admin, &signing).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while cached.verify::<UserClaims>(&before).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the cached verifier kept the key"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        metric(&app, "ac_key_rotations_total", &[("trigger", "emergency")]).await,
        1.0
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_compromised_pending_key_is_replaced_and_the_current_keys_tokens_stay_valid(
    pool: PgPool,
) {
    seed_basics(&pool).await;
    let delayed = Safeguards {
        key_activation_delay_secs: 3600,
        ..test_safeguards()
    };
    let app = spawn_app_with_safeguards(pool.clone(), test_config(), delayed).await;
    let admin = app.service_token(ADMIN).await;
    let current = app.user_token(HOST_EMAIL, PASSWORD).await;
    let rotation: Value = app
        .post_json("/api/v1/admin/keys/rotate", Some(&admin), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    let pending = rotation["kid"].as_str().unwrap().to_owned();

    let response = withdraw(&app, &admin, &pending).await;

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let signing = body["signing_kid"].as_str().unwrap().to_owned();
    assert!(signing != pending && signing != kid_of(&current));
    let published = kids(&app.jwks().await);
    assert!(!published.contains(&pending));
    assert!(published.contains(&signing));
    // The key that was signing retired at this instant but stays published for its tokens.
    assert!(published.contains(&kid_of(&current)));
    app.verifier().verify::<UserClaims>(&current).await.unwrap();
    assert_eq!(kid_of(&app.user_token(HOST_EMAIL, PASSWORD).await), signing);
    assert_eq!(signer_rows(&pool).await, 1);
    // The admin token was signed by the key that is still published: it still works.
    let again = app
        .post_json("/api/v1/admin/keys/rotate", Some(&admin), &json!({}))
        .await;
    assert_eq!(again.status(), StatusCode::OK);
}

#[sqlx::test(migrations = "../../migrations")]
async fn withdrawing_a_retired_key_leaves_the_signer_alone(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool.clone()).await;
    let old_token = app.user_token(HOST_EMAIL, PASSWORD).await;
    let admin_before = app.service_token(ADMIN).await;
    let rotation: Value = app
        .post_json("/api/v1/admin/keys/rotate", Some(&admin_before), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    let signing = rotation["kid"].as_str().unwrap().to_owned();
    let admin = app.service_token(ADMIN).await;
    assert_eq!(kid_of(&admin), signing);

    let response = withdraw(&app, &admin, &kid_of(&old_token)).await;

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["signing_kid"], signing.as_str());
    assert_eq!(kids(&app.jwks().await), vec![signing.clone()]);
    assert_eq!(
        app.verifier()
            .verify::<UserClaims>(&old_token)
            .await
            .unwrap_err(),
        VerifyError::UnknownKid
    );
    assert_eq!(kid_of(&app.user_token(HOST_EMAIL, PASSWORD).await), signing);
}

/// Two AC replicas on one database: the one that did not withdraw the key stops signing with it
/// within its JWKS cache time, not at its next maintenance tick.
#[sqlx::test(migrations = "../../migrations")]
async fn another_replica_stops_signing_with_a_withdrawn_key(pool: PgPool) {
    seed_basics(&pool).await;
    let config = test_config();
    let first = spawn_app_with_safeguards(pool.clone(), config.clone(), test_safeguards()).await;
    let second = spawn_app_with_safeguards(pool.clone(), config, test_safeguards()).await;
    let admin = first.service_token(ADMIN).await;
    let compromised = kid_of(&second.user_token(HOST_EMAIL, PASSWORD).await);

    let body: Value = withdraw(&first, &admin, &compromised)
        .await
        .json()
        .await
        .unwrap();

    let signing = body["signing_kid"].as_str().unwrap();
    // The test configuration has no JWKS cache: the very next token is signed by the new key.
    let token = second.user_token(HOST_EMAIL, PASSWORD).await;
    assert_eq!(kid_of(&token), signing);
    second
        .verifier()
        .verify::<UserClaims>(&token)
        .await
        .unwrap();
}

#[sqlx::test(migrations = "../../migrations")]
async fn only_admins_withdraw_and_unknown_or_hostile_kids_are_not_found(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool.clone()).await;
    let admin = app.service_token(ADMIN).await;
    let gc = app.service_token(GC).await;
    let user = app.user_token(HOST_EMAIL, PASSWORD).await;
    let kid = kid_of(&user);

    let anonymous = app
        .client
        .post(app.url(&format!("/api/v1/admin/keys/{kid}/withdraw")))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    for token in [&gc, &user] {
        let response = withdraw(&app, token, &kid).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }

    let long = "k".repeat(65);
    for hostile in [
        "k20261201-unknown00000",
        "%00",
        "k%00x",
        "%E2%80%AE",
        "%F0%9F%94%91",
        "..%2F..%2Fetc",
        "kid%20with%20space",
        long.as_str(),
    ] {
        let response = withdraw(&app, &admin, hostile).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{hostile}");
        assert_eq!(error_code(response).await, "NOT_FOUND");
    }
    // Nothing was withdrawn by any of that.
    assert_eq!(kids(&app.jwks().await), vec![kid.clone()]);
    app.verifier().verify::<UserClaims>(&user).await.unwrap();
    // Concurrent withdrawals of the same key: one wins, the other finds nothing.
    let (a, b) = tokio::join!(withdraw(&app, &admin, &kid), withdraw(&app, &admin, &kid));
    let mut statuses = [a.status(), b.status()];
    statuses.sort();
    assert!(
        statuses == [StatusCode::OK, StatusCode::NOT_FOUND]
            || statuses == [StatusCode::OK, StatusCode::UNAUTHORIZED],
        "{statuses:?}"
    );
    assert_eq!(signer_rows(&pool).await, 1);
}
