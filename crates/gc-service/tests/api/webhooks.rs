//! Webhooks (DESIGN §13) with a real AC, GC, meeting controller, PostgreSQL and Redis, and a
//! real receiver (an HTTP server in this process): who may manage them, what a request may
//! hold, every event type delivered once per change with a signature that verifies, retries,
//! 410, a hanging endpoint beside a healthy one, rotation, tests and retries by hand.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{
    ADMIN_CLIENT, GC_CLIENT, HOST, MEMBER, ORG_ADMIN, StackOptions, TestStack, meeting_body,
    spawn_stack, user_claims,
};
use crate::meetings::{call, create, end, join};

/// One request a receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }

    pub fn event_type(&self) -> String {
        self.json()["type"].as_str().unwrap().to_owned()
    }
}

/// What a receiver answers.
#[derive(Clone, Copy, Debug)]
pub enum Answer {
    Status(u16),
    /// Never answers (until the test ends).
    Hang,
}

/// A webhook receiver: records every request, answers as told.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
    answer: Arc<Mutex<Answer>>,
}

impl Receiver {
    pub async fn start(answer: Answer) -> Receiver {
        let received = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(Mutex::new(answer));
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state((received.clone(), answer.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            url: format!("http://{addr}/hook"),
            received,
            answer,
        }
    }

    pub fn answer(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits (at most 20 s) until `done` holds for what was received.
    pub async fn until(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        for _ in 0..400 {
            let received = self.received();
            if done(&received) {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the receiver never got {what}: {:#?}", self.received());
    }
}

type ReceiverState = (Arc<Mutex<Vec<Received>>>, Arc<Mutex<Answer>>);

async fn receive(
    State((received, answer)): State<ReceiverState>,
    headers: HeaderMap,
    body: Bytes,
) -> AxumStatus {
    let header = |name: &str| {
        headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    received.lock().unwrap().push(Received {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body: String::from_utf8(body.to_vec()).unwrap(),
    });
    let answer = *answer.lock().unwrap();
    match answer {
        Answer::Status(status) => AxumStatus::from_u16(status).unwrap(),
        Answer::Hang => {
            std::future::pending::<()>().await;
            AxumStatus::OK
        }
    }
}

/// Whether `received` carries a `v1` signature by `secret` (`whsec_...`), as the Standard
/// Webhooks specification computes it.
pub fn signed_by(received: &Received, secret: &str) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let signed = format!("{}.{}.{}", received.id, received.timestamp, received.body);
    let expected = format!(
        "v1,{}",
        STANDARD.encode(ring::hmac::sign(&key, signed.as_bytes()).as_ref())
    );
    received.signature.split(' ').any(|s| s == expected)
}

async fn stack(pool: PgPool) -> TestStack {
    let mut stack = spawn_stack(pool, StackOptions::default()).await;
    let prefix = format!("t{}:", Uuid::new_v4().simple());
    stack
        .start_mc(0, &prefix, crate::helpers::McRedis::Single)
        .await;
    stack
}

pub async fn webhooks_call(
    stack: &TestStack,
    method: Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    call(
        stack,
        method,
        &format!("/api/v1/webhooks{path}"),
        token,
        body,
    )
    .await
}

/// Creates a webhook to `url` for `events` as `token`; its answer.
pub async fn subscribe(stack: &TestStack, token: &str, url: &str, events: &[&str]) -> Value {
    let (status, body) = webhooks_call(
        stack,
        Method::POST,
        "",
        token,
        Some(&json!({"url": url, "events": events, "description": "test"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

const ALL_EVENTS: [&str; 8] = [
    "meeting.created",
    "meeting.started",
    "meeting.ended",
    "participant.joined",
    "participant.left",
    "participant.removed",
    "lobby.waiting",
    "webhook.test",
];

#[sqlx::test(migrations = "../../migrations")]
async fn only_an_org_admin_or_an_admin_service_token_manages_the_orgs_webhooks(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    // Published before GC first reads AC's keys.
    let signer = stack.published_test_signer().await;
    let receiver = Receiver::start(Answer::Status(200)).await;
    let admin = stack.user_token(ORG_ADMIN).await;
    let member = stack.user_token(MEMBER).await;
    let created = subscribe(&stack, &admin, &receiver.url, &["meeting.created"]).await;
    let id = created["webhook_id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{created}");
    assert_eq!(
        STANDARD.decode(&secret["whsec_".len()..]).unwrap().len(),
        32
    );
    assert_eq!(created["enabled"], true);
    assert_eq!(created["events"], json!(["meeting.created"]));

    // The secret is never shown again, and never stored in the clear.
    let (status, listed) = webhooks_call(&stack, Method::GET, "", &admin, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["webhooks"].as_array().unwrap().len(), 1);
    assert!(listed["webhooks"][0].get("secret").is_none(), "{listed}");
    let (_, one) = webhooks_call(&stack, Method::GET, &format!("/{id}"), &admin, None).await;
    assert!(one.get("secret").is_none());
    let stored: Vec<u8> = sqlx::query_scalar("select secret_sealed from webhooks where id = $1")
        .bind(Uuid::parse_str(&id).unwrap())
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    let raw = STANDARD.decode(&secret["whsec_".len()..]).unwrap();
    assert!(!stored.windows(raw.len()).any(|w| w == raw.as_slice()));

    // A member without the role, no token, a forged one, GC's own service token: refused.
    for (token, expected) in [
        (member.as_str(), StatusCode::FORBIDDEN),
        ("", StatusCode::UNAUTHORIZED),
        ("not-a-token", StatusCode::UNAUTHORIZED),
    ] {
        for (method, path) in [
            (Method::GET, String::new()),
            (Method::GET, format!("/{id}")),
            (Method::DELETE, format!("/{id}")),
            (Method::POST, format!("/{id}/rotate-secret")),
            (Method::POST, format!("/{id}/test")),
            (Method::GET, format!("/{id}/deliveries")),
        ] {
            let (status, body) = webhooks_call(&stack, method.clone(), &path, token, None).await;
            assert_eq!(status, expected, "{method} {path} with {token:?}: {body}");
        }
    }
    let gc = stack.service_token(GC_CLIENT).await;
    let (status, _) = webhooks_call(
        &stack,
        Method::GET,
        &format!("?org_id={}", stack.org_id),
        &gc,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // An admin service token names the org; without it, 400.
    let service = stack.service_token(ADMIN_CLIENT).await;
    let (status, _) = webhooks_call(&stack, Method::GET, "", &service, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = webhooks_call(&stack, Method::GET, "?org_id=nope", &service, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, listed) = webhooks_call(
        &stack,
        Method::GET,
        &format!("?org_id={}", stack.org_id),
        &service,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["webhooks"][0]["webhook_id"], id.as_str());
    let (status, _) = webhooks_call(
        &stack,
        Method::GET,
        &format!("?org_id={}&org_id={}", stack.org_id, Uuid::new_v4()),
        &service,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // An org_admin of another org sees nothing of it, and changes nothing.
    let other_org = Uuid::new_v4();
    let stranger = signer.sign(&user_claims(Uuid::new_v4(), other_org, &["org_admin"]));
    let (status, listed) = webhooks_call(&stack, Method::GET, "", &stranger, None).await;
    assert_eq!((status, listed), (StatusCode::OK, json!({"webhooks": []})));
    for (method, path) in [
        (Method::GET, format!("/{id}")),
        (Method::PATCH, format!("/{id}")),
        (Method::DELETE, format!("/{id}")),
        (Method::POST, format!("/{id}/rotate-secret")),
        (Method::POST, format!("/{id}/test")),
        (Method::GET, format!("/{id}/deliveries")),
        (
            Method::POST,
            format!("/{id}/deliveries/{}/retry", Uuid::new_v4()),
        ),
    ] {
        let body = (method == Method::PATCH).then(|| json!({"enabled": false}));
        let (status, answer) =
            webhooks_call(&stack, method.clone(), &path, &stranger, body.as_ref()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {answer}");
    }
    // A user naming another org than theirs.
    let (status, _) = webhooks_call(
        &stack,
        Method::GET,
        &format!("?org_id={other_org}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Creating for an org that does not exist.
    let (status, _) = webhooks_call(
        &stack,
        Method::POST,
        "",
        &stranger,
        Some(&json!({"url": receiver.url, "events": ["meeting.created"]})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let still: (bool,) = sqlx::query_as("select enabled from webhooks where id = $1")
        .bind(Uuid::parse_str(&id).unwrap())
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    assert!(still.0);

    // The org admin changes and deletes it.
    let (status, changed) = webhooks_call(
        &stack,
        Method::PATCH,
        &format!("/{id}"),
        &admin,
        Some(&json!({"events": ["meeting.ended", "meeting.created", "meeting.ended"], "enabled": false})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(
        changed["events"],
        json!(["meeting.created", "meeting.ended"])
    );
    assert_eq!(changed["enabled"], false);
    let (status, _) = webhooks_call(&stack, Method::DELETE, &format!("/{id}"), &admin, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = webhooks_call(&stack, Method::GET, &format!("/{id}"), &admin, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = webhooks_call(&stack, Method::GET, "/not-a-uuid", &admin, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrations = "../../migrations")]
async fn bad_webhook_requests_are_refused_with_clear_errors(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let admin = stack.user_token(ORG_ADMIN).await;
    let long = "d".repeat(501);
    for body in [
        json!({"url": "ftp://hooks.example.com/", "events": ["meeting.created"]}),
        json!({"url": "https://user:pw@hooks.example.com/", "events": ["meeting.created"]}),
        json!({"url": "https://hooks.example.com/#frag", "events": ["meeting.created"]}),
        json!({"url": "not a url", "events": ["meeting.created"]}),
        json!({"url": format!("https://h.example.com/{}", "a".repeat(2100)), "events": ["meeting.created"]}),
        json!({"url": "https://hooks.example.com/\u{0000}", "events": ["meeting.created"]}),
        json!({"url": "https://hooks.example.com/", "events": []}),
        json!({"url": "https://hooks.example.com/", "events": ["meeting.exploded"]}),
        json!({"url": "https://hooks.example.com/", "events": "meeting.created"}),
        json!({"url": "https://hooks.example.com/", "events": ["meeting.created"], "description": long}),
        json!({"url": "https://hooks.example.com/", "events": ["meeting.created"], "description": "a\u{0000}b"}),
        json!({"url": "https://hooks.example.com/", "events": ["meeting.created"], "secret": "mine"}),
        json!({"events": ["meeting.created"]}),
    ] {
        let (status, answer) = webhooks_call(&stack, Method::POST, "", &admin, Some(&body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "BAD_REQUEST", "{answer}");
    }
    let count: i64 = sqlx::query_scalar("select count(*) from webhooks")
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    assert_eq!(count, 0);

    // At most 20 per org, even when asked for at once.
    let creates = (0..25).map(|i| {
        let admin = admin.clone();
        let stack = &stack;
        async move {
            webhooks_call(
                stack,
                Method::POST,
                "",
                &admin,
                Some(&json!({"url": format!("https://h{i}.example.com/"), "events": ["meeting.created"]})),
            )
            .await
            .0
        }
    });
    let statuses = futures::future::join_all(creates).await;
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        20
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CONFLICT)
            .count(),
        5
    );
    let (status, answer) = webhooks_call(
        &stack,
        Method::GET,
        &format!("/{}/deliveries?status=lost", Uuid::new_v4()),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
}

#[sqlx::test(migrations = "../../migrations")]
async fn every_event_type_is_delivered_once_per_change_and_verifies(pool: PgPool) {
    let stack = stack(pool).await;
    let receiver = Receiver::start(Answer::Status(204)).await;
    let admin = stack.user_token(ORG_ADMIN).await;
    let created = subscribe(&stack, &admin, &receiver.url, &ALL_EVENTS).await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    let webhook_id = created["webhook_id"].as_str().unwrap().to_owned();

    let host = stack.user_token(HOST).await;
    let member = stack.user_token(MEMBER).await;
    let member_id = stack.user_id(MEMBER).await;
    let mut body = meeting_body("Hooked");
    body["settings"] =
        json!({"waiting_room_enabled": true, "allow_guests": true, "require_auth": false});
    let code = create(&stack, &host, &body).await;
    join(&stack, &code, &host).await;
    let (status, waiting) = join(&stack, &code, &member).await;
    assert_eq!(waiting["status"], "waiting", "{status} {waiting}");
    let (status, _) = call(
        &stack,
        Method::POST,
        &format!("/api/v1/meetings/{code}/admit/{member_id}"),
        &host,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, guest) = call(
        &stack,
        Method::POST,
        &format!("/api/v1/meetings/{code}/guest-join"),
        "",
        Some(&json!({"display_name": "Visiting Vera"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{guest}");
    let guest_id: Uuid = sqlx::query_scalar(
        "select guest_id from meeting_guests g join meetings m on m.id = g.meeting_id
         where m.meeting_code = $1",
    )
    .bind(&code)
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    let guest_id = guest_id.to_string();
    let (status, _) = call(
        &stack,
        Method::POST,
        &format!("/api/v1/meetings/{code}/remove/{guest_id}"),
        &host,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(
        &stack,
        Method::POST,
        &format!("/api/v1/meetings/{code}/leave"),
        &member,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = end(&stack, &code, &host).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = webhooks_call(
        &stack,
        Method::POST,
        &format!("/{webhook_id}/test"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // What PostgreSQL recorded, as webhook types: exactly one delivery each.
    let expected: Vec<String> = sqlx::query_scalar(
        "select webhook_event_type(action) from audit_logs
         where resource_id = (select id::text from meetings where meeting_code = $1)
           and webhook_event_type(action) is not null
         order by id",
    )
    .bind(&code)
    .fetch_all(&stack.pool)
    .await
    .unwrap();
    let wanted = expected.len() + 1;
    let received = receiver.until("every event", |r| r.len() >= wanted).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let received = {
        let again = receiver.received();
        assert_eq!(again.len(), received.len().max(wanted), "{again:#?}");
        again
    };
    let mut types: Vec<String> = received.iter().map(Received::event_type).collect();
    types.sort();
    let mut expected_all = expected.clone();
    expected_all.push("webhook.test".into());
    expected_all.sort();
    assert_eq!(types, expected_all);
    for needed in ALL_EVENTS {
        assert!(
            types.iter().any(|t| t == needed),
            "no {needed} in {types:?}"
        );
    }
    let ids: std::collections::HashSet<&str> = received.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), received.len(), "one webhook-id per event");

    for r in &received {
        assert!(signed_by(r, &secret), "{r:?}");
        let body = r.json();
        assert!(body["timestamp"].as_str().unwrap().ends_with('Z'), "{body}");
        let data = &body["data"];
        let kind = r.event_type();
        if kind != "webhook.test" {
            assert_eq!(data["meeting_code"], code.as_str(), "{body}");
            assert_eq!(data["org_id"], stack.org_id.to_string(), "{body}");
        }
        // Never an e-mail address, a token or a secret.
        assert!(!r.body.contains("@acme.test"), "{body}");
        assert!(!r.body.contains("whsec_"), "{body}");
        assert!(!r.body.contains("eyJ"), "{body}");
        match kind.as_str() {
            "meeting.ended" => assert_eq!(data["reason"], "host", "{body}"),
            "lobby.waiting" if data["guest"] == true => {
                assert_eq!(data["display_name"], "Visiting Vera", "{body}");
                assert_eq!(data["participant_id"], guest_id.as_str());
            }
            "participant.removed" => {
                assert_eq!(data["participant_id"], guest_id.as_str(), "{body}");
                assert_eq!(data["guest"], true);
            }
            "participant.joined" => {
                assert!(data["display_name"].is_string(), "{body}");
                assert!(data["role"].is_string(), "{body}");
            }
            "meeting.created" | "meeting.started" | "participant.left" | "lobby.waiting"
            | "webhook.test" => {}
            other => panic!("unexpected event type {other}"),
        }
        // A different secret does not verify it.
        assert!(!signed_by(
            r,
            &format!("whsec_{}", STANDARD.encode([9u8; 32]))
        ));
    }

    // The deliveries list shows them delivered.
    let (status, listed) = webhooks_call(
        &stack,
        Method::GET,
        &format!("/{webhook_id}/deliveries?status=delivered"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        listed["deliveries"].as_array().unwrap().len(),
        received.len()
    );
    assert_eq!(listed["deliveries"][0]["last_status"], 204);
    let delivered = stack
        .metric(
            "gc_webhook_deliveries_total",
            &[("event_type", "meeting.created"), ("result", "delivered")],
        )
        .await;
    assert!(delivered >= 1.0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_failing_endpoint_is_retried_until_it_answers_and_410_disables(pool: PgPool) {
    let stack = stack(pool).await;
    let receiver = Receiver::start(Answer::Status(500)).await;
    let admin = stack.user_token(ORG_ADMIN).await;
    let created = subscribe(&stack, &admin, &receiver.url, &["webhook.test"]).await;
    let id = created["webhook_id"].as_str().unwrap().to_owned();
    let (_, queued) =
        webhooks_call(&stack, Method::POST, &format!("/{id}/test"), &admin, None).await;
    let delivery_id = queued["delivery_id"].as_str().unwrap().to_owned();

    receiver.until("three attempts", |r| r.len() >= 3).await;
    receiver.answer(Answer::Status(200));
    let received = receiver.until("the delivery", |r| r.len() >= 4).await;
    // Every attempt is the same message: one id, the same body.
    assert!(
        received
            .iter()
            .all(|r| r.id == delivery_id && r.body == received[0].body)
    );
    let delivery = until_status(&stack, &admin, &id, &delivery_id, "delivered").await;
    assert!(delivery["attempts"].as_i64().unwrap() >= 4, "{delivery}");
    assert_eq!(delivery["last_status"], 200);

    // A delivered delivery is not sent again by hand.
    let (status, _) = webhooks_call(
        &stack,
        Method::POST,
        &format!("/{id}/deliveries/{delivery_id}/retry"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // 410: the delivery fails and the webhook is disabled; nothing more is sent to it.
    receiver.answer(Answer::Status(410));
    let (_, queued) =
        webhooks_call(&stack, Method::POST, &format!("/{id}/test"), &admin, None).await;
    let gone_id = queued["delivery_id"].as_str().unwrap().to_owned();
    let failed = until_status(&stack, &admin, &id, &gone_id, "failed").await;
    assert_eq!(failed["last_status"], 410);
    let (_, webhook) = webhooks_call(&stack, Method::GET, &format!("/{id}"), &admin, None).await;
    assert_eq!(webhook["enabled"], false, "{webhook}");
    assert_eq!(webhook["disabled_reason"], "gone");
    let before = receiver.received().len();
    let (_, queued) =
        webhooks_call(&stack, Method::POST, &format!("/{id}/test"), &admin, None).await;
    let waiting_id = queued["delivery_id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), before);

    // Enabled again, what waited is sent; a failed delivery is retried by hand.
    receiver.answer(Answer::Status(200));
    let (status, webhook) = webhooks_call(
        &stack,
        Method::PATCH,
        &format!("/{id}"),
        &admin,
        Some(&json!({"enabled": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(webhook["disabled_reason"], Value::Null);
    until_status(&stack, &admin, &id, &waiting_id, "delivered").await;
    let (status, retried) = webhooks_call(
        &stack,
        Method::POST,
        &format!("/{id}/deliveries/{gone_id}/retry"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{retried}");
    until_status(&stack, &admin, &id, &gone_id, "delivered").await;
}

async fn until_status(
    stack: &TestStack,
    token: &str,
    webhook: &str,
    delivery: &str,
    status: &str,
) -> Value {
    for _ in 0..400 {
        let (_, listed) = webhooks_call(
            stack,
            Method::GET,
            &format!("/{webhook}/deliveries"),
            token,
            None,
        )
        .await;
        if let Some(found) = listed["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["delivery_id"] == delivery)
            && found["status"] == status
        {
            return found.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("delivery {delivery} never became {status}");
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_hanging_endpoint_never_delays_another_endpoints_events(pool: PgPool) {
    let stack = stack(pool).await;
    let hanging = Receiver::start(Answer::Hang).await;
    let healthy = Receiver::start(Answer::Status(200)).await;
    let admin = stack.user_token(ORG_ADMIN).await;
    subscribe(&stack, &admin, &hanging.url, &["meeting.created"]).await;
    subscribe(&stack, &admin, &healthy.url, &["meeting.created"]).await;
    let host = stack.user_token(HOST).await;
    stack.set_org_limits(100, 100).await;
    // More events than the hanging endpoint's share of requests, and than all requests in
    // flight together would be if it could take them all.
    for i in 0..40 {
        create(&stack, &host, &meeting_body(&format!("Busy {i}"))).await;
    }
    healthy.until("all 40 events", |r| r.len() >= 40).await;
    // The hanging endpoint holds at most its own share (8 per replica), and answered nothing.
    let hung = hanging.received().len();
    assert!(
        (1..=8).contains(&hung),
        "{hung} requests in flight to the hanging endpoint"
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_rotated_secret_signs_beside_the_new_one(pool: PgPool) {
    let stack = stack(pool).await;
    let receiver = Receiver::start(Answer::Status(200)).await;
    let admin = stack.user_token(ORG_ADMIN).await;
    let created = subscribe(&stack, &admin, &receiver.url, &["webhook.test"]).await;
    let id = created["webhook_id"].as_str().unwrap();
    let old = created["secret"].as_str().unwrap().to_owned();
    let (status, rotated) = webhooks_call(
        &stack,
        Method::POST,
        &format!("/{id}/rotate-secret"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(old, new);
    assert!(
        rotated["previous_secret_expires_at"].is_string(),
        "{rotated}"
    );
    webhooks_call(&stack, Method::POST, &format!("/{id}/test"), &admin, None).await;
    let received = receiver.until("the test event", |r| !r.is_empty()).await;
    assert_eq!(
        received[0].signature.split(' ').count(),
        2,
        "{:?}",
        received[0]
    );
    assert!(signed_by(&received[0], &old));
    assert!(signed_by(&received[0], &new));

    // Once the overlap is over, only the new secret signs.
    sqlx::query("update webhooks set previous_secret_expires_at = now() - interval '1 second'")
        .execute(&stack.pool)
        .await
        .unwrap();
    webhooks_call(&stack, Method::POST, &format!("/{id}/test"), &admin, None).await;
    let received = receiver
        .until("the second test event", |r| r.len() >= 2)
        .await;
    assert_eq!(received[1].signature.split(' ').count(), 1);
    assert!(signed_by(&received[1], &new));
    assert!(!signed_by(&received[1], &old));
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_redirect_is_not_followed_and_a_huge_answer_is_not_read(pool: PgPool) {
    let stack = stack(pool).await;
    let target = Receiver::start(Answer::Status(200)).await;
    // An endpoint that redirects to the receiver, and one that answers 200 with an endless body.
    let redirect_to = target.url.clone();
    let app = Router::new()
        .route(
            "/redirect",
            post(move || {
                let to = redirect_to.clone();
                async move { (AxumStatus::TEMPORARY_REDIRECT, [("location", to)]) }
            }),
        )
        .route(
            "/endless",
            post(|| async {
                let chunks = futures::stream::repeat_with(|| {
                    Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 16 * 1024]))
                });
                axum::body::Body::from_stream(chunks)
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let admin = stack.user_token(ORG_ADMIN).await;
    let redirecting = subscribe(
        &stack,
        &admin,
        &format!("http://{addr}/redirect"),
        &["webhook.test"],
    )
    .await;
    let endless = subscribe(
        &stack,
        &admin,
        &format!("http://{addr}/endless"),
        &["webhook.test"],
    )
    .await;
    let redirecting = redirecting["webhook_id"].as_str().unwrap();
    let endless = endless["webhook_id"].as_str().unwrap();
    let (_, one) = webhooks_call(
        &stack,
        Method::POST,
        &format!("/{redirecting}/test"),
        &admin,
        None,
    )
    .await;
    let (_, two) = webhooks_call(
        &stack,
        Method::POST,
        &format!("/{endless}/test"),
        &admin,
        None,
    )
    .await;

    let delivered = until_status(
        &stack,
        &admin,
        endless,
        two["delivery_id"].as_str().unwrap(),
        "delivered",
    )
    .await;
    assert_eq!(delivered["attempts"], 1, "{delivered}");
    let mut redirected = Value::Null;
    for _ in 0..200 {
        let (_, listed) = webhooks_call(
            &stack,
            Method::GET,
            &format!("/{redirecting}/deliveries"),
            &admin,
            None,
        )
        .await;
        redirected = listed["deliveries"][0].clone();
        if redirected["last_status"] == 307 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(redirected["delivery_id"], one["delivery_id"]);
    assert_eq!(redirected["last_status"], 307, "{redirected}");
    assert_eq!(redirected["status"], "pending");
    assert!(target.received().is_empty(), "the redirect was followed");
}
