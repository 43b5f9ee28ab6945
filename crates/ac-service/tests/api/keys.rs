use std::time::Duration;

use ac_service::config::{Config, Safeguards};
use ac_service::keys::KeyStore;
use ac_service::keys::store::KeySettings;
use ac_service::startup::Application;
use ac_service::tokens::TokenIssuer;
use common::jwt::{Role, UserClaims};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{
    ADMIN, HOST_EMAIL, PASSWORD, kid_of, seed_basics, spawn_app, spawn_app_with,
    spawn_app_with_safeguards, test_config, test_safeguards,
};

/// Safeguards whose rotations publish the next key an hour before it signs.
fn delayed_activation() -> Safeguards {
    Safeguards {
        key_activation_delay_secs: 3600,
        ..Safeguards::default()
    }
}

async fn load_store(pool: &PgPool, config: &Config, safeguards: &Safeguards) -> KeyStore {
    KeyStore::load(
        pool.clone(),
        config.master_key.clone(),
        KeySettings::from_config(config, safeguards),
    )
    .await
    .unwrap()
}

/// Moves a pending key's activation (and its predecessor's retirement) to now, instead of
/// waiting for it. `now()` is the same for both statements of the transaction.
async fn activate_now(pool: &PgPool, previous: &str, next: &str) {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query(
        "update signing_keys set retired_at = now(), publish_until = now() + interval '1 hour'
          where kid = $1",
    )
    .bind(previous)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query("update signing_keys set activates_at = now() where kid = $1")
        .bind(next)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

async fn sign_user_token(issuer: &TokenIssuer) -> String {
    issuer
        .issue_user(
            Uuid::new_v4(),
            Uuid::new_v4(),
            vec![Role::User],
            "Someone".into(),
        )
        .await
        .unwrap()
        .token
}

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
    let mut settings = KeySettings::from_config(&config, &test_safeguards());
    settings.rotation_interval = Duration::from_secs(24 * 3600);
    let store = KeyStore::load(pool.clone(), config.master_key.clone(), settings)
        .await
        .unwrap();
    let first = store.active().kid.clone();

    assert_eq!(store.rotate_if_due().await.unwrap(), None);
    sqlx::query("update signing_keys set activates_at = now() - interval '2 days'")
        .execute(&pool)
        .await
        .unwrap();
    let rotated = store.rotate_if_due().await.unwrap().unwrap();

    assert_ne!(rotated.kid, first);
    assert!(rotated.created);
    assert_eq!(store.active().kid, rotated.kid);
    assert_eq!(store.rotate_if_due().await.unwrap(), None);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_replica_picks_up_a_key_rotated_by_another(pool: PgPool) {
    let config = test_config();
    let settings = KeySettings::from_config(&config, &test_safeguards());
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

    let new_kid = a.rotate().await.unwrap().kid;
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

#[sqlx::test(migrations = "../../migrations")]
async fn with_an_activation_delay_the_jwks_shows_the_next_kid_before_any_token_carries_it(
    pool: PgPool,
) {
    seed_basics(&pool).await;
    let app = spawn_app_with_safeguards(pool, test_config(), delayed_activation()).await;
    let admin = app.service_token(ADMIN).await;
    let old_kid = kid_of(&admin);

    let response = app
        .post_json("/api/v1/admin/keys/rotate", Some(&admin), &json!({}))
        .await;

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let next_kid = body["kid"].as_str().unwrap().to_owned();
    let activates_at: chrono::DateTime<chrono::Utc> =
        body["activates_at"].as_str().unwrap().parse().unwrap();
    let in_an_hour = chrono::Utc::now() + chrono::Duration::hours(1);
    assert!(
        (activates_at - in_an_hour).num_seconds().abs() < 60,
        "{activates_at}"
    );
    let published = kids(&app.jwks().await);
    assert_eq!(published, [next_kid.clone(), old_kid.clone()]);
    let user = app.user_token(HOST_EMAIL, PASSWORD).await;
    let service = app.service_token(ADMIN).await;
    assert_eq!(kid_of(&user), old_kid);
    assert_eq!(kid_of(&service), old_kid);
    app.verifier().verify::<UserClaims>(&user).await.unwrap();
    // Rotating again while a key is pending hands back that key rather than stacking another.
    let again: Value = app
        .post_json("/api/v1/admin/keys/rotate", Some(&admin), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["kid"], next_kid.as_str());
    assert_eq!(kids(&app.jwks().await).len(), 2);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_verifier_that_fetched_the_keys_just_before_activation_accepts_the_first_new_token(
    pool: PgPool,
) {
    seed_basics(&pool).await;
    let config = test_config();
    let app = spawn_app_with_safeguards(pool.clone(), config.clone(), delayed_activation()).await;
    let store = load_store(&pool, &config, &delayed_activation()).await;
    let issuer = TokenIssuer::new(store.clone(), &config);
    let old_kid = store.active().kid.clone();
    let next = store.rotate().await.unwrap();
    // The verifier fetches the key set once, after the rotation and before the activation.
    let verifier = app.verifier();
    let before = sign_user_token(&issuer).await;
    assert_eq!(kid_of(&before), old_kid);
    verifier.verify::<UserClaims>(&before).await.unwrap();

    activate_now(&pool, &old_kid, &next.kid).await;
    store.refresh_active().await.unwrap();
    let after = sign_user_token(&issuer).await;

    assert_eq!(kid_of(&after), next.kid);
    // Within 10 s of its fetch the verifier may not refetch, so it can only accept this
    // token with the key it already has.
    verifier.verify::<UserClaims>(&after).await.unwrap();
    verifier.verify::<UserClaims>(&before).await.unwrap();
}

#[sqlx::test(migrations = "../../migrations")]
async fn tokens_keep_the_old_kid_until_the_next_key_activates(pool: PgPool) {
    let config = test_config();
    let safeguards = delayed_activation();
    let store = load_store(&pool, &config, &safeguards).await;
    let other_replica = load_store(&pool, &config, &safeguards).await;
    let old_kid = store.active().kid.clone();

    let next = store.rotate().await.unwrap();
    store.refresh_active().await.unwrap();
    other_replica.refresh_active().await.unwrap();

    assert!(next.created);
    assert_eq!(store.active().kid, old_kid);
    assert_eq!(other_replica.active().kid, old_kid);
    assert_eq!(
        store.rotate_if_due().await.unwrap(),
        None,
        "a pending key is never rotated away"
    );

    activate_now(&pool, &old_kid, &next.kid).await;
    other_replica.refresh_active().await.unwrap();

    assert_eq!(other_replica.active().kid, next.kid);
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_first_key_signs_at_once_whatever_the_activation_delay(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app_with_safeguards(pool, test_config(), delayed_activation()).await;

    let token = app.user_token(HOST_EMAIL, PASSWORD).await;

    assert_eq!(kids(&app.jwks().await), [kid_of(&token)]);
}

#[sqlx::test(migrations = "../../migrations")]
async fn maintenance_deletes_retired_keys_whose_publication_has_ended(pool: PgPool) {
    let config = test_config();
    let store = load_store(&pool, &config, &test_safeguards()).await;
    let expired = store.active().kid.clone();
    let still_published = store.rotate().await.unwrap().kid;
    let current = store.rotate().await.unwrap().kid;
    sqlx::query(
        "update signing_keys set publish_until = now() - interval '1 second' where kid = $1",
    )
    .bind(&expired)
    .execute(&pool)
    .await
    .unwrap();

    ac_service::maintenance::run_once(&store, &pool, Duration::from_secs(900)).await;

    let mut left: Vec<String> = sqlx::query_scalar("select kid from signing_keys")
        .fetch_all(&pool)
        .await
        .unwrap();
    left.sort();
    let mut expected = vec![still_published, current.clone()];
    expected.sort();
    assert_eq!(left, expected);
    assert_eq!(store.active().kid, current);
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_database_refuses_two_keys_signing_at_the_same_time(pool: PgPool) {
    let config = test_config();
    load_store(&pool, &config, &test_safeguards()).await;

    let overlapping = sqlx::query(
        "insert into signing_keys (kid, public_key, private_key_ciphertext, private_key_nonce,
                                   activates_at)
         values ('intruder', decode(repeat('00', 32), 'hex'), '\\x00',
                 decode(repeat('00', 12), 'hex'), now() + interval '1 minute')",
    )
    .execute(&pool)
    .await;

    let error = overlapping.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("signing_keys_one_signer_at_a_time"),
        "{error}"
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_signing_keys_age_and_the_rotation_interval_are_exported(pool: PgPool) {
    let config = Config {
        key_rotation_interval_secs: 7 * 24 * 3600,
        ..test_config()
    };
    let app = spawn_app_with(pool, config).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let interval =
            crate::helpers::metric(&app, "ac_signing_key_rotation_interval_seconds", &[]).await;
        if interval == (7.0 * 24.0 * 3600.0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rotation interval was never exported (saw {interval})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let age = crate::helpers::metric(&app, "ac_signing_key_age_seconds", &[]).await;
    assert!(
        (0.0..60.0).contains(&age),
        "a key created at start-up is {age} s old"
    );
}
