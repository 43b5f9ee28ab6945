//! `common::service_token::ServiceTokenClient` (what GC and MC use to call each other) against
//! the real AC: it caches a token while it has long to live, fetches a new one before expiry,
//! and replaces a token a peer refused, at most once per refetch interval.

use std::time::Duration;

use common::jwt::ServiceClaims;
use common::service_token::{ServiceTokenClient, ServiceTokenError};
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;

use crate::helpers::{GC, metric, seed_basics, spawn_app, spawn_app_with, test_config};

fn client_for(base: &str, credentials: (&str, &str), scope: Option<&str>) -> ServiceTokenClient {
    ServiceTokenClient::new(
        base,
        credentials.0,
        SecretString::from(credentials.1),
        scope.map(str::to_owned),
    )
    .unwrap()
}

async fn issued(app: &crate::helpers::TestApp) -> f64 {
    metric(app, "ac_tokens_issued_total", &[("token_type", "service")]).await
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_token_with_long_to_live_is_reused_instead_of_fetched_again(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await; // service tokens live an hour
    let client = client_for(&app.base, GC, Some("internal:meeting-token"));

    let first = client.token().await.unwrap();
    let second = client.token().await.unwrap();

    assert_eq!(first.expose_secret(), second.expose_secret());
    assert_eq!(issued(&app).await, 1.0);
    let claims: ServiceClaims = app.verifier().verify(first.expose_secret()).await.unwrap();
    assert_eq!(claims.sub, GC.0);
    assert_eq!(claims.scope, "internal:meeting-token");
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_token_close_to_expiry_is_replaced_before_it_expires(pool: PgPool) {
    seed_basics(&pool).await;
    // A 60 s lifetime is inside the client's refresh margin (at least 60 s), so every call
    // must fetch a fresh token rather than hand out one about to expire.
    let mut config = test_config();
    config.service_token_ttl_secs = 60;
    let app = spawn_app_with(pool, config).await;
    let client = client_for(&app.base, GC, None);

    client.token().await.unwrap();
    client.token().await.unwrap();

    assert_eq!(issued(&app).await, 2.0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_refused_token_is_replaced_once_for_every_caller_that_saw_it_refused(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;
    let client = client_for(&app.base, GC, None);
    let refused = client.token().await.unwrap();

    let fresh = client.replace_refused(&refused).await.unwrap().unwrap();
    // A call that was refused the same token meanwhile gets the same replacement.
    let shared = client.replace_refused(&refused).await.unwrap().unwrap();
    // The replacement refused too, so soon: the peer refuses fresh tokens, AC is not asked.
    let none = client.replace_refused(&fresh).await.unwrap();

    assert_ne!(fresh.expose_secret(), refused.expose_secret());
    assert_eq!(shared.expose_secret(), fresh.expose_secret());
    assert!(none.is_none());
    assert_eq!(
        client.token().await.unwrap().expose_secret(),
        fresh.expose_secret()
    );
    assert_eq!(issued(&app).await, 2.0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn without_a_refetch_bound_every_refused_token_is_replaced(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;
    let client = client_for(&app.base, GC, None).with_min_refetch_interval(Duration::ZERO);
    let first = client.token().await.unwrap();

    let second = client.replace_refused(&first).await.unwrap().unwrap();
    let third = client.replace_refused(&second).await.unwrap().unwrap();

    assert_ne!(third.expose_secret(), second.expose_secret());
    assert_eq!(issued(&app).await, 3.0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn wrong_credentials_surface_as_a_refusal_with_the_status(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;
    let client = client_for(&app.base, (GC.0, "not-the-secret-000"), None);

    let error = client.token().await.unwrap_err();

    assert!(matches!(error, ServiceTokenError::Refused(401)), "{error}");
}
