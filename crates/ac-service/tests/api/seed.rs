use ac_service::seed::{self, SeedFile};
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use sqlx::PgPool;

use crate::helpers::{error_code, spawn_app};

/// The development seed's shape, as `scripts/dev-seed.json` has it.
const DEV_SEED: &str = r#"{"service_clients":[{"client_id":"convene-admin","client_secret":"convene-admin-dev-secret","service_type":"admin","scopes":["admin"]},{"client_id":"convene-gc","client_secret":"convene-gc-dev-secret","service_type":"global-controller","scopes":["internal:meeting-token"]},{"client_id":"convene-mc","client_secret":"convene-mc-dev-secret","service_type":"meeting-controller","scopes":[]}],
 "orgs":[{"slug":"demo","name":"Demo Org","max_concurrent_meetings":10,"max_participants_per_meeting":100,"users":[{"email":"host@demo.test","password":"demo-password","display_name":"Demo Host","roles":["user"]},{"email":"guest@demo.test","password":"demo-password","display_name":"Demo Guest","roles":["user"]}]}]}"#;

async fn snapshot(pool: &PgPool) -> Vec<(String, DateTime<Utc>)> {
    sqlx::query_as(
        "select 'user:' || email || password_hash, updated_at from users
         union all select 'org:' || slug, updated_at from organizations
         union all select 'client:' || client_id || secret_hash, created_at from service_credentials
         order by 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = "../../migrations")]
async fn applying_the_seed_twice_changes_nothing(pool: PgPool) {
    let file: SeedFile = serde_json::from_str(DEV_SEED).unwrap();
    seed::apply(&pool, &file).await.unwrap();
    let first = snapshot(&pool).await;

    seed::apply(&pool, &file).await.unwrap();

    assert_eq!(first.len(), 6);
    assert_eq!(snapshot(&pool).await, first);
}

#[sqlx::test(migrations = "../../migrations")]
async fn seeded_users_and_clients_can_sign_in(pool: PgPool) {
    let file: SeedFile = serde_json::from_str(DEV_SEED).unwrap();
    seed::apply(&pool, &file).await.unwrap();
    let app = spawn_app(pool).await;

    assert_eq!(
        app.login("host@demo.test", "demo-password").await.status(),
        StatusCode::OK
    );
    let token = app
        .service_token(("convene-gc", "convene-gc-dev-secret"))
        .await;
    assert!(!token.is_empty());
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_changed_password_in_the_seed_is_applied(pool: PgPool) {
    let file: SeedFile = serde_json::from_str(DEV_SEED).unwrap();
    seed::apply(&pool, &file).await.unwrap();
    let changed: SeedFile =
        serde_json::from_str(&DEV_SEED.replace("\"demo-password\"", "\"other-password\"")).unwrap();

    seed::apply(&pool, &changed).await.unwrap();

    let app = spawn_app(pool).await;
    assert_eq!(
        app.login("host@demo.test", "other-password").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.login("guest@demo.test", "demo-password").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[test]
fn a_seed_file_with_unknown_fields_is_refused() {
    let result = serde_json::from_str::<SeedFile>(r#"{"orgs": [], "tenants": []}"#);
    assert!(result.is_err());
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_seed_reactivates_the_org_user_and_client_it_names(pool: PgPool) {
    let file: SeedFile = serde_json::from_str(DEV_SEED).unwrap();
    seed::apply(&pool, &file).await.unwrap();
    for statement in [
        "update organizations set is_active = false where slug = 'demo'",
        "update users set is_active = false where email = 'host@demo.test'",
        "update service_credentials set is_active = false where client_id = 'convene-gc'",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    let app = spawn_app(pool.clone()).await;
    let refused = app.login("guest@demo.test", "demo-password").await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(refused).await, "UNAUTHORIZED");

    seed::apply(&pool, &file).await.unwrap();

    let inactive: i64 = sqlx::query_scalar(
        "select (select count(*) from organizations where not is_active)
              + (select count(*) from users where not is_active)
              + (select count(*) from service_credentials where not is_active)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(inactive, 0);
    for email in ["host@demo.test", "guest@demo.test"] {
        assert_eq!(
            app.login(email, "demo-password").await.status(),
            StatusCode::OK,
            "{email}"
        );
    }
    app.service_token(("convene-gc", "convene-gc-dev-secret"))
        .await;
}
