use std::time::Duration;

use ac_service::keys::KeyStore;
use ac_service::keys::store::KeySettings;
use ac_service::startup::Application;
use common::jwt::UserClaims;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{
    ADMIN, HOST_EMAIL, PASSWORD, kid_of, seed_basics, spawn_app, spawn_app_with, test_config,
};

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[sqlx::test(migrations = "../../migrations")]
async fn jwks_publishes_the_active_ed25519_key(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;
    let token = app.user_token(HOST_EMAIL, PASSWORD).await;

    let response = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
    let jwks: Value = response.json().await.unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["alg"], "EdDSA");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["x"].as_str().unwrap().len(), 43);
    assert_eq!(key["kid"].as_str().unwrap(), kid_of(&token));
}

#[sqlx::test(migrations = "../../migrations")]
async fn tokens_signed_before_a_rotation_still_verify_and_new_ones_use_the_new_key(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;
    let admin = app.service_token(ADMIN).await;
    let before = app.user_token(HOST_EMAIL, PASSWORD).await;
    let verifier = app.verifier();
    verifier.verify::<UserClaims>(&before).await.unwrap();

    let response = app
        .post_json("/api/v1/admin/keys/rotate", Some(&admin), &json!({}))
        .await;

    assert_eq!(response.status(), StatusCode::OK);
    let new_kid = response.json::<Value>().await.unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_kid, kid_of(&before));
    let published = kids(&app.jwks().await);
    assert!(published.contains(&new_kid));
    assert!(published.contains(&kid_of(&before)));
    let after = app.user_token(HOST_EMAIL, PASSWORD).await;
    assert_eq!(kid_of(&after), new_kid);
    // A verifier that cached the old set picks the new kid up by refetching.
    verifier.verify::<UserClaims>(&before).await.unwrap();
    app.verifier().verify::<UserClaims>(&after).await.unwrap();
    // The admin token was signed by the old key and AC itself still accepts it.
    let again = app
        .post_json("/api/v1/admin/keys/rotate", Some(&admin), &json!({}))
        .await;
    assert_eq!(again.status(), StatusCode::OK);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_retired_key_leaves_the_jwks_when_its_publication_ends(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool.clone()).await;
    let admin = app.service_token(ADMIN).await;
    let old_kid = kid_of(&admin);
    app.post_json("/api/v1/admin/keys/rotate", Some(&admin), &json!({}))
        .await;
    let publish_until_ok: bool = sqlx::query_scalar(
        "select publish_until > now() + interval '65 minutes' from signing_keys where kid = $1",
    )
    .bind(&old_kid)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        publish_until_ok,
        "a retired key stays published for the longest token lifetime"
    );

    sqlx::query(
        "update signing_keys set publish_until = now() - interval '1 second' where kid = $1",
    )
    .bind(&old_kid)
    .execute(&pool)
    .await
    .unwrap();

    let published = kids(&app.jwks().await);
    assert_eq!(published.len(), 1);
    assert!(!published.contains(&old_kid));
    let stale = app
        .post_json("/api/v1/admin/keys/rotate", Some(&admin), &json!({}))
        .await;
    assert_eq!(stale.status(), StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrations = "../../migrations")]
async fn scheduled_rotation_happens_only_when_the_key_is_old_enough(pool: PgPool) {
    let config = test_config();
    let mut settings = KeySettings::from_config(&config);
    settings.rotation_interval = Duration::from_secs(24 * 3600);
    let store = KeyStore::load(pool.clone(), config.master_key.clone(), settings)
        .await
        .unwrap();
    let first = store.active().kid.clone();

    assert_eq!(store.rotate_if_due().await.unwrap(), None);
    sqlx::query("update signing_keys set created_at = now() - interval '2 days'")
        .execute(&pool)
        .await
        .unwrap();
    let rotated = store.rotate_if_due().await.unwrap().unwrap();

    assert_ne!(rotated, first);
    assert_eq!(store.active().kid, rotated);
    assert_eq!(store.rotate_if_due().await.unwrap(), None);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_replica_picks_up_a_key_rotated_by_another(pool: PgPool) {
    let config = test_config();
    let settings = KeySettings::from_config(&config);
    let (a, b) = tokio::join!(
        KeyStore::load(pool.clone(), config.master_key.clone(), settings.clone()),
        KeyStore::load(pool.clone(), config.master_key.clone(), settings),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let count: i64 = sqlx::query_scalar("select count(*) from signing_keys")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 1, "two replicas starting at once create one key");
    assert_eq!(a.active().kid, b.active().kid);

    let new_kid = a.rotate().await.unwrap();
    b.refresh_active().await.unwrap();

    assert_eq!(b.active().kid, new_kid);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_wrong_master_key_fails_start_up(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.stop().await;

    let error = Application::build(test_config(), pool.clone())
        .await
        .err()
        .unwrap();

    let message = format!("{error:#}");
    assert!(message.contains("AC_MASTER_KEY"), "{message}");
    let count: i64 = sqlx::query_scalar("select count(*) from signing_keys")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 1, "no replacement key is generated");
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_same_master_key_reuses_the_stored_key(pool: PgPool) {
    let config = test_config();
    let first = spawn_app_with(pool.clone(), config.clone()).await;
    let kid = kids(&first.jwks().await);
    first.stop().await;

    let second = spawn_app_with(pool, config).await;

    assert_eq!(kids(&second.jwks().await), kid);
}
