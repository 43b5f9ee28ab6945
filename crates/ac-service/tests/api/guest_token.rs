//! `POST /api/v1/auth/internal/guest-token` (DESIGN §12): GC's request for a guest's token.

use common::jwt::{AUDIENCE_USER, GuestClaims, MeetingClaims, MeetingRole, TokenType, UserClaims};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{
    ADMIN, GC, HOST_EMAIL, MC, PASSWORD, TestApp, error_code, seed_basics, spawn_app,
};

const PATH: &str = "/api/v1/auth/internal/guest-token";

fn request(ttl_secs: Option<i64>) -> Value {
    let mut body = json!({
        "meeting_code": "Ab3dE5fG7hJ9", "org_id": Uuid::new_v4(), "name": "Visiting Vera"
    });
    if let Some(ttl) = ttl_secs {
        body["ttl_secs"] = json!(ttl);
    }
    body
}

async fn guest_token(app: &TestApp, gc: &str, body: &Value) -> Value {
    let response = app.post_json(PATH, Some(gc), body).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

#[sqlx::test(migrations = "../../migrations")]
async fn gc_gets_a_guest_token_for_a_new_guest_id_each_time(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;
    let gc = app.service_token(GC).await;
    let body = request(None);

    let first = guest_token(&app, &gc, &body).await;
    let second = guest_token(&app, &gc, &body).await;

    assert_eq!(first["expires_in"], 7200);
    let claims: GuestClaims = app
        .verifier()
        .verify(first["token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(claims.token_type, TokenType::Guest);
    assert_eq!(claims.aud, AUDIENCE_USER);
    assert_eq!(claims.sub.to_string(), first["guest_id"].as_str().unwrap());
    assert_eq!(claims.meeting_code, "Ab3dE5fG7hJ9");
    assert_eq!(claims.org_id.to_string(), body["org_id"].as_str().unwrap());
    assert_eq!(claims.name, "Visiting Vera");
    assert_eq!(claims.exp - claims.iat, 7200);
    assert_ne!(first["guest_id"], second["guest_id"], "a fresh guest id");
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_lifetime_is_capped_at_two_hours_and_zero_is_refused(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;
    let gc = app.service_token(GC).await;

    let long = guest_token(&app, &gc, &request(Some(86_400))).await;
    let short = guest_token(&app, &gc, &request(Some(60))).await;
    let zero = app.post_json(PATH, Some(&gc), &request(Some(0))).await;
    let negative = app.post_json(PATH, Some(&gc), &request(Some(-5))).await;

    assert_eq!(long["expires_in"], 7200);
    let claims: GuestClaims = app
        .verifier()
        .verify(long["token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(claims.exp - claims.iat, 7200);
    assert_eq!(short["expires_in"], 60);
    assert_eq!(zero.status(), StatusCode::BAD_REQUEST);
    assert_eq!(negative.status(), StatusCode::BAD_REQUEST);
}

/// Only GC's scope may ask; a guest token is no key to AC either, nor a user token where a
/// guest's is expected.
#[sqlx::test(migrations = "../../migrations")]
async fn callers_without_the_scope_and_guest_tokens_are_refused(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;
    let gc = app.service_token(GC).await;
    let mc = app.service_token(MC).await;
    let admin = app.service_token(ADMIN).await;
    let user = app.user_token(HOST_EMAIL, PASSWORD).await;
    let guest = guest_token(&app, &gc, &request(None)).await["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let no_scope = app.post_json(PATH, Some(&mc), &request(None)).await;
    let other_scope = app.post_json(PATH, Some(&admin), &request(None)).await;
    let user_token = app.post_json(PATH, Some(&user), &request(None)).await;
    let guest_token = app.post_json(PATH, Some(&guest), &request(None)).await;
    let no_token = app.post_json(PATH, None, &request(None)).await;

    assert_eq!(no_scope.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(no_scope).await, "FORBIDDEN");
    assert_eq!(other_scope.status(), StatusCode::FORBIDDEN);
    assert_eq!(user_token.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(guest_token.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);

    // A guest token where AC takes a user's (an org admin's creation of users) or a service's.
    let org_users = format!("/api/v1/admin/orgs/{}/users", Uuid::new_v4());
    let body = json!({"email": "x@acme.test", "password": "correct-horse-battery-2",
                      "display_name": "X", "roles": ["user"]});
    for (path, body) in [
        (org_users.as_str(), &body),
        ("/api/v1/auth/internal/meeting-token", &request(None)),
        ("/api/v1/admin/orgs", &json!({})),
    ] {
        let refused = app.post_json(path, Some(&guest), body).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    assert!(
        app.verifier().verify::<UserClaims>(&guest).await.is_err(),
        "not a user token"
    );
    assert!(
        app.verifier().verify::<GuestClaims>(&user).await.is_err(),
        "not a guest token"
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn malformed_requests_are_refused(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;
    let gc = app.service_token(GC).await;
    let with = |field: &str, value: Value| {
        let mut body = request(None);
        body[field] = value;
        body
    };

    for (case, body) in [
        ("a short code", with("meeting_code", json!("Ab3dE5fG7hJ"))),
        (
            "a code with a NUL",
            with("meeting_code", json!("Ab3dE5fG7h\u{0}9")),
        ),
        ("a blank name", with("name", json!("   "))),
        (
            "a name of 256 characters",
            with("name", json!("a".repeat(256))),
        ),
        ("a name with a NUL", with("name", json!("Vera\u{0}"))),
        (
            "a name that turns the text around",
            with("name", json!("\u{202e}areV")),
        ),
        ("an invisible name", with("name", json!("\u{200b}\u{200b}"))),
        ("an org that is no id", with("org_id", json!("acme"))),
        ("an unknown field", with("guest_id", json!(Uuid::new_v4()))),
        ("no name", {
            let mut body = request(None);
            body.as_object_mut().unwrap().remove("name");
            body
        }),
    ] {
        let response = app.post_json(PATH, Some(&gc), &body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{case}");
    }
}

/// A guest's meeting token says so; a guest is never signed as a meeting's host.
#[sqlx::test(migrations = "../../migrations")]
async fn a_guests_meeting_token_says_guest(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;
    let gc = app.service_token(GC).await;
    let grant = |role: &str, guest: Option<bool>| {
        let mut body = json!({
            "user_id": Uuid::new_v4(), "meeting_id": Uuid::new_v4(),
            "meeting_code": "Ab3dE5fG7hJ9", "org_id": Uuid::new_v4(), "role": role,
            "name": "Visiting Vera"
        });
        if let Some(guest) = guest {
            body["guest"] = json!(guest);
        }
        body
    };
    let path = "/api/v1/auth/internal/meeting-token";

    let guest: Value = app
        .post_json(path, Some(&gc), &grant("guest", Some(true)))
        .await
        .json()
        .await
        .unwrap();
    let member: Value = app
        .post_json(path, Some(&gc), &grant("guest", None))
        .await
        .json()
        .await
        .unwrap();
    let guest_as_host = app
        .post_json(path, Some(&gc), &grant("host", Some(true)))
        .await;

    let verifier = app.verifier();
    let claims: MeetingClaims = verifier
        .verify(guest["token"].as_str().unwrap())
        .await
        .unwrap();
    assert!(claims.guest);
    assert_eq!(claims.role, MeetingRole::Guest);
    let claims: MeetingClaims = verifier
        .verify(member["token"].as_str().unwrap())
        .await
        .unwrap();
    assert!(!claims.guest);
    assert_eq!(guest_as_host.status(), StatusCode::BAD_REQUEST);
}

/// A new guest's two tokens in one grant of the meeting-token batch (GC's guest-join): the
/// meeting token and the guest token both name the guest id GC chose; a guest token is
/// refused for anyone but a guest, and a member's grant carries none.
#[sqlx::test(migrations = "../../migrations")]
async fn a_guest_grant_of_the_batch_signs_the_guest_token_too(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool).await;
    let gc = app.service_token(GC).await;
    let guest_id = Uuid::new_v4();
    let org_id = Uuid::new_v4();
    let grant = |user: Uuid, role: &str, guest: bool, guest_token: bool| {
        json!({"user_id": user, "meeting_id": Uuid::new_v4(), "meeting_code": "Ab3dE5fG7hJ9",
               "org_id": org_id, "role": role, "name": "Visiting Vera", "guest": guest,
               "guest_token": guest_token})
    };
    let batch = json!({"grants": [
        grant(guest_id, "guest", true, true),
        grant(Uuid::new_v4(), "guest", false, false),
    ]});

    let response = app
        .post_json("/api/v1/auth/internal/meeting-tokens", Some(&gc), &batch)
        .await;

    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.unwrap();
    let verifier = app.verifier();
    let guest: GuestClaims = verifier
        .verify(tokens["tokens"][0]["guest_token"].as_str().unwrap())
        .await
        .unwrap();
    let meeting: MeetingClaims = verifier
        .verify(tokens["tokens"][0]["token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!((guest.sub, meeting.sub), (guest_id, guest_id));
    assert_eq!(guest.token_type, TokenType::Guest);
    assert_eq!(guest.meeting_code, meeting.meeting_code);
    assert_eq!(guest.org_id, org_id);
    assert_eq!(guest.exp - guest.iat, 7200);
    assert!(meeting.guest);
    assert_eq!(meeting.role, MeetingRole::Guest);
    assert!(tokens["tokens"][1].get("guest_token").is_none(), "{tokens}");

    // Only for a guest: a member's grant asking for one is refused, the whole batch with it.
    let refused = app
        .post_json(
            "/api/v1/auth/internal/meeting-tokens",
            Some(&gc),
            &json!({"grants": [grant(Uuid::new_v4(), "guest", false, true)]}),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let single = app
        .post_json(
            "/api/v1/auth/internal/meeting-token",
            Some(&gc),
            &grant(Uuid::new_v4(), "host", false, true),
        )
        .await;
    assert_eq!(single.status(), StatusCode::BAD_REQUEST);
}
