use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{
    ADMIN, GC, GUEST_EMAIL, HOST_EMAIL, MC, PASSWORD, TestApp, error_code, seed_basics, spawn_app,
};

async fn create_org(app: &TestApp, admin: &str, slug: &str) -> Value {
    let response = app
        .post_json(
            "/api/v1/admin/orgs",
            Some(admin),
            &json!({"slug": slug, "name": format!("Org {slug}"),
                    "max_concurrent_meetings": 3, "max_participants_per_meeting": 50}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

fn user_body(email: &str, roles: &[&str]) -> Value {
    json!({"email": email, "password": "a-good-password", "display_name": "New User", "roles": roles})
}

async fn acme_id(pool: &PgPool) -> uuid::Uuid {
    sqlx::query_scalar("select id from organizations where slug = 'acme'")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn make_org_admin(pool: &PgPool, email: &str) {
    sqlx::query("update users set roles = '{user,org_admin}' where email = $1")
        .bind(email)
        .execute(pool)
        .await
        .unwrap();
}

#[sqlx::test(migrations = "../../migrations")]
async fn an_admin_service_creates_an_org_and_a_duplicate_slug_is_409(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;
    let admin = app.service_token(ADMIN).await;

    let org = create_org(&app, &admin, "globex").await;
    let duplicate = app
        .post_json(
            "/api/v1/admin/orgs",
            Some(&admin),
            &json!({"slug": "globex", "name": "Again"}),
        )
        .await;

    let mut keys: Vec<&str> = org
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "created_at",
            "is_active",
            "max_concurrent_meetings",
            "max_participants_per_meeting",
            "name",
            "org_id",
            "slug"
        ]
    );
    assert_eq!(org["slug"], "globex");
    assert_eq!(org["max_concurrent_meetings"], 3);
    assert_eq!(org["is_active"], true);
    assert_eq!(duplicate.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(duplicate).await, "CONFLICT");
}

#[sqlx::test(migrations = "../../migrations")]
async fn org_input_out_of_bounds_is_a_bad_request(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;
    let admin = app.service_token(ADMIN).await;

    for body in [
        json!({"slug": "Bad Slug", "name": "x"}),
        json!({"slug": "ok-slug", "name": "   "}),
        json!({"slug": "ok-slug", "name": "x", "max_concurrent_meetings": 0}),
        json!({"slug": "ok-slug", "name": "x", "max_participants_per_meeting": 1}),
        json!({"slug": "ok-slug", "name": "x", "max_participants_per_meeting": 10001}),
        json!({"slug": "ok-slug", "name": "x", "color": "red"}),
    ] {
        let response = app
            .post_json("/api/v1/admin/orgs", Some(&admin), &body)
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn patch_changes_limits_and_activity_of_an_existing_org_only(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;
    let admin = app.service_token(ADMIN).await;
    let org = create_org(&app, &admin, "initech").await;
    let path = format!("/api/v1/admin/orgs/{}", org["org_id"].as_str().unwrap());

    let patched = app
        .patch_json(
            &path,
            Some(&admin),
            &json!({"max_concurrent_meetings": 20, "is_active": false}),
        )
        .await;
    let unknown = app
        .patch_json(
            &format!("/api/v1/admin/orgs/{}", uuid::Uuid::new_v4()),
            Some(&admin),
            &json!({}),
        )
        .await;
    let malformed_id = app
        .patch_json("/api/v1/admin/orgs/not-a-uuid", Some(&admin), &json!({}))
        .await;
    let invalid = app
        .patch_json(
            &path,
            Some(&admin),
            &json!({"max_participants_per_meeting": 0}),
        )
        .await;

    assert_eq!(patched.status(), StatusCode::OK);
    let patched: Value = patched.json().await.unwrap();
    assert_eq!(patched["max_concurrent_meetings"], 20);
    assert_eq!(patched["max_participants_per_meeting"], 50);
    assert_eq!(patched["is_active"], false);
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(malformed_id.status(), StatusCode::NOT_FOUND);
    assert_eq!(invalid.status(), StatusCode::BAD_REQUEST);
}

#[sqlx::test(migrations = "../../migrations")]
async fn an_admin_service_creates_a_user_who_can_sign_in(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool.clone()).await;
    let admin = app.service_token(ADMIN).await;
    let path = format!("/api/v1/admin/orgs/{}/users", acme_id(&pool).await);

    let response = app
        .post_json(
            &path,
            Some(&admin),
            &user_body("New.User@Acme.test", &["user"]),
        )
        .await;
    let duplicate = app
        .post_json(
            &path,
            Some(&admin),
            &user_body("new.user@ACME.test", &["user"]),
        )
        .await;

    assert_eq!(response.status(), StatusCode::CREATED);
    let user: Value = response.json().await.unwrap();
    let mut keys: Vec<&str> = user
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "created_at",
            "display_name",
            "email",
            "is_active",
            "org_id",
            "roles",
            "user_id"
        ]
    );
    assert!(!user.to_string().contains("argon2"));
    assert_eq!(user["roles"], json!(["user"]));
    assert_eq!(duplicate.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(duplicate).await, "CONFLICT");
    assert_eq!(
        app.login("new.user@acme.test", "a-good-password")
            .await
            .status(),
        StatusCode::OK
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn user_input_out_of_bounds_is_a_bad_request_and_an_unknown_org_is_404(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool.clone()).await;
    let admin = app.service_token(ADMIN).await;
    let path = format!("/api/v1/admin/orgs/{}/users", acme_id(&pool).await);

    for body in [
        user_body("not-an-email", &["user"]),
        user_body("x@acme.test", &["root"]),
        json!({"email": "x@acme.test", "password": "short", "display_name": "X", "roles": []}),
        json!({"email": "x@acme.test", "password": "long-enough", "display_name": "", "roles": []}),
    ] {
        let response = app.post_json(&path, Some(&admin), &body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
    }
    let unknown_org = app
        .post_json(
            &format!("/api/v1/admin/orgs/{}/users", uuid::Uuid::new_v4()),
            Some(&admin),
            &user_body("x@acme.test", &[]),
        )
        .await;
    assert_eq!(unknown_org.status(), StatusCode::NOT_FOUND);
}

#[sqlx::test(migrations = "../../migrations")]
async fn an_org_admin_creates_users_in_its_own_org_but_never_admins(pool: PgPool) {
    seed_basics(&pool).await;
    make_org_admin(&pool, HOST_EMAIL).await;
    let app = spawn_app(pool.clone()).await;
    let org_admin = app.user_token(HOST_EMAIL, PASSWORD).await;
    let path = format!("/api/v1/admin/orgs/{}/users", acme_id(&pool).await);

    let created = app
        .post_json(
            &path,
            Some(&org_admin),
            &user_body("colleague@acme.test", &["user", "org_admin"]),
        )
        .await;
    let admin_grant = app
        .post_json(
            &path,
            Some(&org_admin),
            &user_body("boss@acme.test", &["admin"]),
        )
        .await;

    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(admin_grant.status(), StatusCode::FORBIDDEN);
}

#[sqlx::test(migrations = "../../migrations")]
async fn an_org_admin_of_another_org_gets_404(pool: PgPool) {
    seed_basics(&pool).await;
    make_org_admin(&pool, HOST_EMAIL).await;
    let app = spawn_app(pool).await;
    let admin = app.service_token(ADMIN).await;
    let other = create_org(&app, &admin, "umbrella").await;
    let org_admin = app.user_token(HOST_EMAIL, PASSWORD).await;

    let response = app
        .post_json(
            &format!(
                "/api/v1/admin/orgs/{}/users",
                other["org_id"].as_str().unwrap()
            ),
            Some(&org_admin),
            &user_body("spy@umbrella.test", &["user"]),
        )
        .await;

    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_demoted_org_admin_loses_the_right_before_its_token_expires(pool: PgPool) {
    seed_basics(&pool).await;
    make_org_admin(&pool, HOST_EMAIL).await;
    let app = spawn_app(pool.clone()).await;
    let org_admin = app.user_token(HOST_EMAIL, PASSWORD).await;
    sqlx::query("update users set roles = '{user}' where email = $1")
        .bind(HOST_EMAIL)
        .execute(&pool)
        .await
        .unwrap();

    let response = app
        .post_json(
            &format!("/api/v1/admin/orgs/{}/users", acme_id(&pool).await),
            Some(&org_admin),
            &user_body("late@acme.test", &["user"]),
        )
        .await;

    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[sqlx::test(migrations = "../../migrations")]
async fn callers_without_admin_rights_are_refused(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool.clone()).await;
    let user = app.user_token(HOST_EMAIL, PASSWORD).await;
    let mc = app.service_token(MC).await;
    let gc = app.service_token(GC).await;
    let users_path = format!("/api/v1/admin/orgs/{}/users", acme_id(&pool).await);
    let org_body = json!({"slug": "nope", "name": "Nope"});

    let plain_user = app
        .post_json(&users_path, Some(&user), &user_body("a@acme.test", &[]))
        .await;
    let user_on_orgs = app
        .post_json("/api/v1/admin/orgs", Some(&user), &org_body)
        .await;
    let no_scope = app
        .post_json("/api/v1/admin/orgs", Some(&mc), &org_body)
        .await;
    let wrong_scope = app
        .post_json(&users_path, Some(&gc), &user_body("b@acme.test", &[]))
        .await;
    let no_token = app.post_json("/api/v1/admin/orgs", None, &org_body).await;
    let rotate = app
        .post_json("/api/v1/admin/keys/rotate", Some(&mc), &json!({}))
        .await;

    assert_eq!(plain_user.status(), StatusCode::FORBIDDEN);
    assert_eq!(user_on_orgs.status(), StatusCode::FORBIDDEN);
    assert_eq!(no_scope.status(), StatusCode::FORBIDDEN);
    assert_eq!(wrong_scope.status(), StatusCode::FORBIDDEN);
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(rotate.status(), StatusCode::FORBIDDEN);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_new_service_client_secret_is_shown_once_and_works(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool.clone()).await;
    let admin = app.service_token(ADMIN).await;
    let body = json!({"client_id": "reporting", "service_type": "admin", "scopes": ["admin"]});

    let response = app
        .post_json("/api/v1/admin/service-clients", Some(&admin), &body)
        .await;
    let duplicate = app
        .post_json("/api/v1/admin/service-clients", Some(&admin), &body)
        .await;
    let bad_scope = app
        .post_json(
            "/api/v1/admin/service-clients",
            Some(&admin),
            &json!({"client_id": "other", "service_type": "admin", "scopes": ["root"]}),
        )
        .await;

    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    let secret = created["client_secret"].as_str().unwrap();
    assert!(secret.len() >= 43);
    assert_eq!(created["scopes"], json!(["admin"]));
    let stored: String = sqlx::query_scalar(
        "select secret_hash from service_credentials where client_id = 'reporting'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(!stored.contains(secret));
    let token = app.service_token(("reporting", secret)).await;
    assert!(!token.is_empty());
    assert_eq!(duplicate.status(), StatusCode::CONFLICT);
    assert_eq!(bad_scope.status(), StatusCode::BAD_REQUEST);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_user_whose_address_lowercases_differently_in_rust_and_postgres_can_sign_in(
    pool: PgPool,
) {
    seed_basics(&pool).await;
    let app = spawn_app(pool.clone()).await;
    let admin = app.service_token(ADMIN).await;
    let path = format!("/api/v1/admin/orgs/{}/users", acme_id(&pool).await);
    // Rust lowercases `İ` to `i̇` (two code points); PostgreSQL's `lower()` does not.
    assert_ne!(
        "İnci@Acme.test".to_lowercase(),
        sqlx::query_scalar::<_, String>("select lower('İnci@Acme.test')")
            .fetch_one(&pool)
            .await
            .unwrap()
    );

    let created = app
        .post_json(&path, Some(&admin), &user_body("İnci@Acme.test", &["user"]))
        .await;
    let duplicate = app
        .post_json(&path, Some(&admin), &user_body("İNCI@ACME.TEST", &["user"]))
        .await;

    assert_eq!(created.status(), StatusCode::CREATED);
    let user: Value = created.json().await.unwrap();
    assert_eq!(user["email"], "İnci@Acme.test");
    assert_eq!(duplicate.status(), StatusCode::CONFLICT);
    for typed in ["İnci@Acme.test", "İnci@acme.test", "İNCI@ACME.TEST"] {
        let response = app.login(typed, "a-good-password").await;
        assert_eq!(response.status(), StatusCode::OK, "{typed}");
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn callers_without_rights_get_401_or_403_before_their_body_is_read(pool: PgPool) {
    seed_basics(&pool).await;
    make_org_admin(&pool, HOST_EMAIL).await;
    let app = spawn_app(pool.clone()).await;
    let admin = app.service_token(ADMIN).await;
    let mc = app.service_token(MC).await;
    let user = app.user_token(GUEST_EMAIL, PASSWORD).await;
    let org_admin = app.user_token(HOST_EMAIL, PASSWORD).await;
    let other_org = create_org(&app, &admin, "elsewhere").await;
    let acme_users = format!("/api/v1/admin/orgs/{}/users", acme_id(&pool).await);
    let other_users = format!(
        "/api/v1/admin/orgs/{}/users",
        other_org["org_id"].as_str().unwrap()
    );
    let acme_org = format!("/api/v1/admin/orgs/{}", acme_id(&pool).await);
    let send_garbage =
        |method: reqwest::Method, path: String, token: Option<String>, json: bool| {
            let mut request = app.client.request(method, app.url(&path)).body("{not json");
            request = request.header(
                "content-type",
                if json {
                    "application/json"
                } else {
                    "text/plain"
                },
            );
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            async move { request.send().await.unwrap().status() }
        };
    let routes = [
        (reqwest::Method::POST, "/api/v1/admin/orgs".to_owned()),
        (reqwest::Method::PATCH, acme_org.clone()),
        (reqwest::Method::POST, acme_users.clone()),
        (
            reqwest::Method::POST,
            "/api/v1/admin/service-clients".to_owned(),
        ),
    ];

    for (method, path) in routes {
        for json in [true, false] {
            let none = send_garbage(method.clone(), path.clone(), None, json).await;
            let bad = send_garbage(method.clone(), path.clone(), Some("x.y.z".into()), json).await;
            let no_scope = send_garbage(method.clone(), path.clone(), Some(mc.clone()), json).await;
            let plain_user =
                send_garbage(method.clone(), path.clone(), Some(user.clone()), json).await;
            let allowed =
                send_garbage(method.clone(), path.clone(), Some(admin.clone()), json).await;

            assert_eq!(none, StatusCode::UNAUTHORIZED, "{method} {path}");
            assert_eq!(bad, StatusCode::UNAUTHORIZED, "{method} {path}");
            assert_eq!(no_scope, StatusCode::FORBIDDEN, "{method} {path}");
            assert_eq!(plain_user, StatusCode::FORBIDDEN, "{method} {path}");
            assert_eq!(allowed, StatusCode::BAD_REQUEST, "{method} {path}");
        }
    }
    // An org_admin of another org learns nothing either, not even that the body is bad.
    let foreign = send_garbage(
        reqwest::Method::POST,
        other_users,
        Some(org_admin.clone()),
        true,
    )
    .await;
    let own = send_garbage(reqwest::Method::POST, acme_users, Some(org_admin), true).await;
    assert_eq!(foreign, StatusCode::NOT_FOUND);
    assert_eq!(own, StatusCode::BAD_REQUEST);
}
