//! People without an account (DESIGN §12), with a real AC, GC, meeting controller, PostgreSQL
//! and Redis: `guest-join`, the guest token's one meeting, the lobby's cap of guests, the
//! address budget, and the settings that must agree.

use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{
    HOST, MEMBER, StackOptions, TestStack, meeting_body, spawn_stack, test_lifecycle,
};
use crate::meetings::{call, create, get, join};

/// A meeting that takes guests, created by the host.
async fn guest_meeting(stack: &TestStack, host: &str) -> String {
    let mut body = meeting_body("Open house");
    body["settings"] = json!({"allow_guests": true, "require_auth": false});
    create(stack, host, &body).await
}

async fn stack_with(
    pool: PgPool,
    tune: impl FnOnce(&mut gc_service::config::LifecycleSettings),
) -> TestStack {
    let mut lifecycle = test_lifecycle();
    tune(&mut lifecycle);
    let mut stack = spawn_stack(pool, StackOptions::default().with_lifecycle(lifecycle)).await;
    let prefix = format!("t{}:", Uuid::new_v4().simple());
    stack
        .start_mc(0, &prefix, crate::helpers::McRedis::Single)
        .await;
    stack
}

/// `POST /{code}/guest-join` with `body`, without `Authorization`.
async fn guest_join(stack: &TestStack, code: &str, body: &Value) -> (StatusCode, Value) {
    let response = stack
        .client
        .post(stack.gc_url(&format!("/api/v1/meetings/{code}/guest-join")))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The claims of a JWT, read without checking it (the services check it; the test reads it).
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

async fn audit_rows(stack: &TestStack, code: &str) -> Vec<(String, String, Option<String>)> {
    sqlx::query_as(
        "select a.action, a.actor_type, a.actor_id from audit_logs a
         join meetings m on m.id::text = a.resource_id
         where m.meeting_code = $1 order by a.id",
    )
    .bind(code)
    .fetch_all(&stack.pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_guest_joins_by_link_waits_is_admitted_and_leaves(pool: PgPool) {
    let stack = stack_with(pool, |_| {}).await;
    let host = stack.user_token(HOST).await;
    let code = guest_meeting(&stack, &host).await;
    let (status, _) = join(&stack, &code, &host).await;
    assert_eq!(status, StatusCode::OK);

    let (status, joined) =
        guest_join(&stack, &code, &json!({"display_name": "Visiting Vera"})).await;
    assert_eq!(status, StatusCode::OK, "{joined}");
    assert_eq!(joined["status"], "waiting");
    assert_eq!(joined["role"], "guest");
    assert!(
        joined["meeting"].get("lobby_count").is_none(),
        "a guest is not shown the lobby"
    );
    assert!(joined["expires_in"].as_u64().unwrap() <= 900);
    let guest_token = joined["guest_token"].as_str().unwrap().to_owned();
    let guest = claims(&guest_token);
    assert_eq!(guest["token_type"], "guest");
    assert_eq!(guest["meeting_code"], code.as_str());
    let guest_id: Uuid = guest["sub"].as_str().unwrap().parse().unwrap();
    let meeting_token = claims(joined["meeting_token"].as_str().unwrap());
    assert_eq!(meeting_token["guest"], true);
    assert_eq!(meeting_token["role"], "guest");
    assert_eq!(meeting_token["sub"], guest_id.to_string());

    // The host sees them waiting; the guest may read the meeting with their token.
    let (_, seen) = get(&stack, &code, &host).await;
    assert_eq!(seen["lobby_count"], 1);
    let (status, seen) = get(&stack, &code, &guest_token).await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert!(seen.get("lobby_count").is_none());

    // A reload: the same guest, the same place, a fresh meeting token.
    let (status, again) = join(&stack, &code, &guest_token).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["status"], "waiting");
    assert_eq!(
        claims(again["meeting_token"].as_str().unwrap())["sub"],
        guest_id.to_string()
    );
    let (_, seen) = get(&stack, &code, &host).await;
    assert_eq!(seen["lobby_count"], 1, "still one guest waiting");

    // The host lets them in: a seat and a visit under the guest id.
    let (status, admitted) = call(
        &stack,
        Method::POST,
        &format!("/api/v1/meetings/{code}/admit/{guest_id}"),
        &host,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{admitted}");
    let (status, seated) = join(&stack, &code, &guest_token).await;
    assert_eq!(
        (status, seated["status"].as_str()),
        (StatusCode::OK, Some("admitted"))
    );
    assert_eq!(seated["meeting"]["participant_count"], 2);
    let (name,): (String,) = sqlx::query_as(
        "select g.display_name from meeting_guests g join meetings m on m.id = g.meeting_id
         where m.meeting_code = $1 and g.guest_id = $2",
    )
    .bind(&code)
    .bind(guest_id)
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    assert_eq!(name, "Visiting Vera");

    // They leave with their token; the visit closes.
    let (status, _) = call(
        &stack,
        Method::POST,
        &format!("/api/v1/meetings/{code}/leave"),
        &guest_token,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (reason,): (Option<String>,) =
        sqlx::query_as("select leave_reason from participants where user_id = $1")
            .bind(guest_id)
            .fetch_one(&stack.pool)
            .await
            .unwrap();
    assert_eq!(reason.as_deref(), Some("left"));

    // The record: the guest's own changes under `guest`, the host's admission under the host.
    let rows = audit_rows(&stack, &code).await;
    let guest_rows: Vec<&str> = rows
        .iter()
        .filter(|(_, _, actor)| actor.as_deref() == Some(guest_id.to_string().as_str()))
        .map(|(action, actor_type, _)| {
            assert_eq!(actor_type, "guest", "{action}");
            action.as_str()
        })
        .collect();
    assert_eq!(guest_rows, ["guest_joined", "participant_left"]);
    assert!(rows.iter().any(|(action, actor_type, _)| action == "participant_admitted" && actor_type == "user"));
    // Every row reads back as the event it records.
    crate::helpers::recorded_events(&stack.pool, Some(&code)).await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_guest_token_is_refused_everywhere_but_its_meetings_get_join_and_leave(pool: PgPool) {
    let stack = stack_with(pool, |_| {}).await;
    let host = stack.user_token(HOST).await;
    let code = guest_meeting(&stack, &host).await;
    let other = guest_meeting(&stack, &host).await;
    let (_, joined) = guest_join(&stack, &code, &json!({"display_name": "Gus"})).await;
    let guest_token = joined["guest_token"].as_str().unwrap().to_owned();
    let someone = Uuid::new_v4();

    let refused: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/api/v1/meetings/{other}"), None),
        (Method::POST, format!("/api/v1/meetings/{other}/join"), None),
        (
            Method::POST,
            format!("/api/v1/meetings/{other}/leave"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/meetings/{code}/admit/{someone}"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/meetings/{code}/reject/{someone}"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/meetings/{code}/admit-all"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/meetings/{code}/remove/{someone}"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/meetings/{code}/host/{someone}"),
            None,
        ),
        (Method::POST, format!("/api/v1/meetings/{code}/end"), None),
        (
            Method::PATCH,
            format!("/api/v1/meetings/{code}/config"),
            Some(json!({"allow_guests": false})),
        ),
        (Method::GET, "/api/v1/meetings/history".to_owned(), None),
        (
            Method::POST,
            "/api/v1/meetings".to_owned(),
            Some(meeting_body("Mine")),
        ),
        // The code in another spelling is another meeting (codes are case-sensitive).
        (
            Method::GET,
            format!("/api/v1/meetings/{}", code.to_lowercase()),
            None,
        ),
    ];
    for (method, path, body) in refused {
        let (status, answer) =
            call(&stack, method.clone(), &path, &guest_token, body.as_ref()).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path}: {answer}"
        );
        assert_eq!(answer["error"]["code"], "UNAUTHORIZED");
    }

    // Its own meeting's three routes take it.
    let (status, _) = get(&stack, &code, &guest_token).await;
    assert_eq!(status, StatusCode::OK);
    // A forged guest token (its meeting code changed) is refused like any forgery.
    let forged = crate::helpers::tampered(&guest_token, |claims| {
        claims["meeting_code"] = json!(other);
    });
    let (status, _) = get(&stack, &other, &forged).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The meeting is still there, untouched by any of it.
    let (_, seen) = get(&stack, &code, &host).await;
    assert_eq!(seen["status"], "scheduled");
    assert_eq!(seen["settings"]["allow_guests"], true);
}

#[sqlx::test(migrations = "../../migrations")]
async fn meetings_closed_to_guests_answer_the_same_404(pool: PgPool) {
    let stack = stack_with(pool, |_| {}).await;
    let host = stack.user_token(HOST).await;
    let closed = create(&stack, &host, &meeting_body("Members only")).await;
    let mut open_body = meeting_body("Anyone");
    open_body["settings"] = json!({"require_auth": false});
    let not_invited = create(&stack, &host, &open_body).await;
    let ended = guest_meeting(&stack, &host).await;
    let (status, _) = call(
        &stack,
        Method::POST,
        &format!("/api/v1/meetings/{ended}/end"),
        &host,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let mut answers = Vec::new();
    for code in [
        closed.as_str(),
        not_invited.as_str(),
        ended.as_str(),
        "AAAAAAAAAAAA",
        "short",
        "%00",
    ] {
        let (status, body) = guest_join(&stack, code, &json!({"display_name": "Gus"})).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{code}: {body}");
        answers.push(body);
    }
    answers.dedup();
    assert_eq!(
        answers.len(),
        1,
        "one answer for every meeting a guest may not join: {answers:?}"
    );
    let guests: i64 = sqlx::query_scalar("select count(*) from meeting_guests")
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    assert_eq!(guests, 0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn guests_need_a_meeting_that_does_not_require_sign_in(pool: PgPool) {
    let stack = stack_with(pool, |_| {}).await;
    let host = stack.user_token(HOST).await;

    // On create: allow_guests alone (require_auth defaults to true) is refused.
    let mut body = meeting_body("Contradiction");
    body["settings"] = json!({"allow_guests": true});
    let response = stack.create(&host, &body).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    body["settings"] = json!({"allow_guests": true, "require_auth": true});
    assert_eq!(
        stack.create(&host, &body).await.status(),
        StatusCode::BAD_REQUEST
    );

    // On config: the merged settings must agree, whichever field the PATCH names.
    let members = create(&stack, &host, &meeting_body("Members")).await;
    let patch = |code: &str, body: Value| {
        let path = format!("/api/v1/meetings/{code}/config");
        let stack = &stack;
        let host = &host;
        async move { call(stack, Method::PATCH, &path, host, Some(&body)).await }
    };
    let (status, refused) = patch(&members, json!({"allow_guests": true})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(refused["error"]["code"], "BAD_REQUEST");
    let open = guest_meeting(&stack, &host).await;
    let (status, _) = patch(&open, json!({"require_auth": true})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, both) = patch(
        &members,
        json!({"allow_guests": true, "require_auth": false}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{both}");
    assert_eq!(both["settings"]["allow_guests"], true);

    // Nothing refused was stored, nor recorded.
    let (_, seen) = get(&stack, &open, &host).await;
    assert_eq!(seen["settings"]["require_auth"], false);
    let changes: i64 =
        sqlx::query_scalar("select count(*) from audit_logs where action = 'settings_changed'")
            .fetch_one(&stack.pool)
            .await
            .unwrap();
    assert_eq!(changes, 1);
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_lobby_takes_at_most_its_cap_of_guests(pool: PgPool) {
    let stack = stack_with(pool, |l| l.max_guests_waiting = 3).await;
    let host = stack.user_token(HOST).await;
    let code = guest_meeting(&stack, &host).await;
    join(&stack, &code, &host).await;
    for n in 0..3 {
        let (status, body) = guest_join(
            &stack,
            &code,
            &json!({"display_name": format!("Guest {n}")}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    let (status, refused) =
        guest_join(&stack, &code, &json!({"display_name": "One too many"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"]["code"], "LOBBY_FULL");

    // A member still waits (the cap is for guests), and the refused guest was never recorded.
    let member = stack.user_token(MEMBER).await;
    let (status, waiting) = join(&stack, &code, &member).await;
    assert_eq!(
        (status, waiting["status"].as_str()),
        (StatusCode::OK, Some("waiting"))
    );
    let (_, seen) = get(&stack, &code, &host).await;
    assert_eq!(seen["lobby_count"], 4);
    let guests: i64 = sqlx::query_scalar("select count(*) from meeting_guests")
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    assert_eq!(guests, 3);
    let joined_rows: i64 =
        sqlx::query_scalar("select count(*) from audit_logs where action = 'guest_joined'")
            .fetch_one(&stack.pool)
            .await
            .unwrap();
    assert_eq!(joined_rows, 3);
    assert_eq!(
        stack
            .metric("gc_guest_joins_total", &[("outcome", "lobby_full")])
            .await,
        1.0
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn one_address_gets_its_budget_of_guest_joins_and_others_are_not_affected(pool: PgPool) {
    let stack = stack_with(pool, |l| {
        l.guest_join_burst = 3;
        l.guest_join_interval_ms = 60_000;
    })
    .await;
    let host = stack.user_token(HOST).await;
    let code = guest_meeting(&stack, &host).await;
    let from = |last: u8| {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, last]))
            .build()
            .unwrap()
    };
    let ask = |client: reqwest::Client, code: String| {
        let url = stack.gc_url(&format!("/api/v1/meetings/{code}/guest-join"));
        async move {
            client
                .post(url)
                .json(&json!({"display_name": "Flood"}))
                .send()
                .await
                .unwrap()
        }
    };

    let flooder = from(2);
    for _ in 0..3 {
        assert_eq!(
            ask(flooder.clone(), code.clone()).await.status(),
            StatusCode::OK
        );
    }
    // Beyond the burst: 429 with Retry-After, for an unknown code too (no probing for free).
    for target in [code.clone(), "AAAAAAAAAAAA".to_owned()] {
        let refused = ask(flooder.clone(), target).await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        let wait: u64 = refused.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
    }
    // Another address is not affected.
    assert_eq!(ask(from(3), code.clone()).await.status(), StatusCode::OK);
    let (_, seen) = get(&stack, &code, &host).await;
    assert_eq!(seen["lobby_count"], 4);
}

#[sqlx::test(migrations = "../../migrations")]
async fn hostile_guest_join_bodies_are_refused_and_record_nothing(pool: PgPool) {
    // Every refused body spends the address's budget too (tested above); here it is large.
    let stack = stack_with(pool, |l| l.guest_join_burst = 1000).await;
    let host = stack.user_token(HOST).await;
    let code = guest_meeting(&stack, &host).await;
    let url = stack.gc_url(&format!("/api/v1/meetings/{code}/guest-join"));
    let bad_names = [
        json!(""),
        json!("   "),
        json!("Eve\u{0000}"),
        json!("\u{202E}evE"),
        json!("\u{200B}\u{200B}"),
        json!("line\nbreak"),
        json!("x".repeat(256)),
        json!(42),
        json!(null),
    ];
    for name in bad_names {
        let (status, body) = guest_join(&stack, &code, &json!({"display_name": name})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {body}");
    }
    for raw in [
        "",
        "{",
        r#"{"display_name": "Eve", "role": "host"}"#,
        r#"{"display_name": "Eve", "display_name": "Mallory"}"#,
        r#"["Eve"]"#,
    ] {
        let response = stack
            .client
            .post(&url)
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{raw}");
    }
    let response = stack
        .client
        .post(&url)
        .header("content-type", "text/plain")
        .body(r#"{"display_name": "Eve"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // A user's token changes nothing: guest-join makes a guest, never a member.
    let response = stack
        .client
        .post(&url)
        .bearer_auth(&host)
        .json(&json!({"display_name": "Not the host"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let joined: Value = response.json().await.unwrap();
    assert_eq!(joined["role"], "guest");
    assert_ne!(
        claims(joined["meeting_token"].as_str().unwrap())["sub"],
        claims(&host)["sub"]
    );
    let guests: i64 = sqlx::query_scalar("select count(*) from meeting_guests")
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    assert_eq!(guests, 1, "only the one well-formed request made a guest");
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_guest_of_a_meeting_closed_to_guests_since_may_only_leave(pool: PgPool) {
    let stack = stack_with(pool, |_| {}).await;
    let host = stack.user_token(HOST).await;
    let code = guest_meeting(&stack, &host).await;
    join(&stack, &code, &host).await;
    let (_, joined) = guest_join(&stack, &code, &json!({"display_name": "Gus"})).await;
    let guest_token = joined["guest_token"].as_str().unwrap().to_owned();
    let guest_id = claims(&guest_token)["sub"].as_str().unwrap().to_owned();
    call(
        &stack,
        Method::POST,
        &format!("/api/v1/meetings/{code}/admit/{guest_id}"),
        &host,
        None,
    )
    .await;

    let (status, _) = call(
        &stack,
        Method::PATCH,
        &format!("/api/v1/meetings/{code}/config"),
        &host,
        Some(&json!({"allow_guests": false})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let (status, _) = get(&stack, &code, &guest_token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = join(&stack, &code, &guest_token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The seat they hold they may still give up.
    let (status, _) = call(
        &stack,
        Method::POST,
        &format!("/api/v1/meetings/{code}/leave"),
        &guest_token,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let open: i64 = sqlx::query_scalar(
        "select count(*) from participants where left_at is null and user_id::text = $1",
    )
    .bind(&guest_id)
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    assert_eq!(open, 0);
    let (status, _) = guest_join(&stack, &code, &json!({"display_name": "Gus again"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_storm_of_guests_from_many_addresses_fills_the_lobby_to_its_cap_exactly(pool: PgPool) {
    let stack = stack_with(pool, |l| l.max_guests_waiting = 50).await;
    let host = stack.user_token(HOST).await;
    let code = guest_meeting(&stack, &host).await;
    join(&stack, &code, &host).await;

    // 120 guests at once, each from an address of its own (127.0.0.10 …), as a flood spread
    // over many hosts would come: the per-address budget does not stop it, the lobby's cap does.
    let asks = (0..120u8).map(|n| {
        let client = reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 1, n + 10]))
            .build()
            .unwrap();
        let url = stack.gc_url(&format!("/api/v1/meetings/{code}/guest-join"));
        async move {
            let response = client
                .post(url)
                .json(&json!({"display_name": format!("Storm {n}")}))
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body)
        }
    });
    let answers = futures::future::join_all(asks).await;
    let waiting = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    let full = answers
        .iter()
        .filter(|(s, b)| *s == StatusCode::CONFLICT && b["error"]["code"] == "LOBBY_FULL")
        .count();
    assert_eq!((waiting, full), (50, 70), "{answers:?}");

    // The room, PostgreSQL and the record agree: 50 guests, each recorded once.
    let (_, seen) = get(&stack, &code, &host).await;
    assert_eq!(seen["lobby_count"], 50);
    let guests: i64 = sqlx::query_scalar("select count(*) from meeting_guests")
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    let records: i64 =
        sqlx::query_scalar("select count(*) from audit_logs where action = 'guest_joined'")
            .fetch_one(&stack.pool)
            .await
            .unwrap();
    assert_eq!((guests, records), (50, 50));
    // Every waiting guest's id is one PostgreSQL holds.
    for (_, body) in answers.iter().filter(|(s, _)| *s == StatusCode::OK) {
        let id: Uuid = claims(body["guest_token"].as_str().unwrap())["sub"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let known: bool =
            sqlx::query_scalar("select exists (select 1 from meeting_guests where guest_id = $1)")
                .bind(id)
                .fetch_one(&stack.pool)
                .await
                .unwrap();
        assert!(known);
    }
}
