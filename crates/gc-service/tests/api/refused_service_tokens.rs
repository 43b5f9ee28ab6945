//! Service tokens a peer refuses: after AC withdrew the key that signed them, or from a peer
//! that trusts another issuer. The caller drops the refused token, fetches a new one and sends
//! the call once more; a second refusal is the caller's error, and there is never a third try.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ac_service::seed::{self, SeedFile};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::grpc::client::ServiceTokenLayer;
use common::jwks::{JwksVerifier, VerifierConfig};
use common::jwt::{MeetingClaims, MeetingRole};
use common::proto::internal::v1::{HeartbeatRequest, RegisterMeetingControllerRequest};
use common::service_token::ServiceTokenClient;
use common::shell::Background;
use gc_service::clients::ac::{MeetingGrant, MeetingTokens};
use gc_service::error::Error;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{GC_CLIENT, ISSUER, MC_CLIENTS, StackOptions, TestStack, spawn_stack};
use crate::meetings::{create, join, stack_with_mc};

const ADMIN_CLIENT: (&str, &str) = ("test-admin", "test-admin-secret-0001");

/// Adds an admin credential to the test's AC (seeding adds and never removes).
async fn seed_admin(pool: &PgPool) {
    let file: SeedFile = serde_json::from_value(json!({
        "service_clients": [{"client_id": ADMIN_CLIENT.0, "client_secret": ADMIN_CLIENT.1,
                             "service_type": "admin", "scopes": ["admin"]}]
    }))
    .unwrap();
    seed::apply(pool, &file).await.unwrap();
}

fn kid_of(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

/// Withdraws the key AC signs with now, the one behind every service token issued so far, as
/// an operator does when it is compromised.
async fn withdraw_the_signing_key(stack: &TestStack) {
    seed_admin(&stack.pool).await;
    let admin = stack.service_token(ADMIN_CLIENT).await;
    let response = stack
        .client
        .post(format!(
            "{}/api/v1/admin/keys/{}/withdraw",
            stack.ac.base,
            kid_of(&admin)
        ))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_join_after_the_signing_key_was_withdrawn_succeeds_on_the_first_try(pool: PgPool) {
    let (stack, _prefix, people) = stack_with_mc(pool).await;
    // The people's tokens are signed by a test key that stays published.
    let (_, host) = people.user(&stack, stack.org_id, "Host").await;
    let (member_id, member) = people.user(&stack, stack.org_id, "Member").await;
    let body = json!({"display_name": "Standup", "settings": {"waiting_room_enabled": false}});
    let code = create(&stack, &host, &body).await;
    // The first join has GC fetch its service token, which AC signs with its current key.
    assert_eq!(join(&stack, &code, &host).await.0, StatusCode::OK);

    withdraw_the_signing_key(&stack).await;
    let (status, body) = join(&stack, &code, &member).await;

    // AC refused GC's cached token for the meeting token; GC fetched a new one and asked again.
    assert_eq!(status, StatusCode::OK, "{body}");
    let verifier = JwksVerifier::new(VerifierConfig::new(&stack.ac.base, ISSUER)).unwrap();
    let claims: MeetingClaims = verifier
        .verify(body["meeting_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(claims.sub, member_id);
}

fn registration(id: &str) -> RegisterMeetingControllerRequest {
    RegisterMeetingControllerRequest {
        controller_id: id.into(),
        websocket_url: "ws://127.0.0.1:9".into(),
        grpc_address: "http://127.0.0.1:9".into(),
        capacity: 10,
    }
}

/// MC's token client for controller 0, with a token fetched now.
async fn controller_tokens(stack: &TestStack) -> Arc<ServiceTokenClient> {
    let (id, secret) = MC_CLIENTS[0];
    let tokens =
        Arc::new(ServiceTokenClient::new(&stack.ac.base, id, secret.into(), None).unwrap());
    tokens.token().await.unwrap();
    tokens
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_controller_registers_and_heartbeats_on_the_first_try_after_its_key_was_withdrawn(
    pool: PgPool,
) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    // Two clients as MC builds them (a replica restarting, say), each holding a token signed
    // by the key about to be withdrawn.
    let layer = ServiceTokenLayer::new(controller_tokens(&stack).await);
    let mut registering = mc_service::registration::gc_client(&stack.gc_grpc, layer).unwrap();
    let layer = ServiceTokenLayer::new(controller_tokens(&stack).await);
    let mut heartbeating = mc_service::registration::gc_client(&stack.gc_grpc, layer).unwrap();

    withdraw_the_signing_key(&stack).await;

    // GC fetches AC's keys at its first call, after the withdrawal: it knows only the new key
    // and refuses both cached tokens.
    registering
        .register_meeting_controller(registration(MC_CLIENTS[0].0))
        .await
        .unwrap();
    heartbeating
        .heartbeat(HeartbeatRequest {
            controller_id: MC_CLIENTS[0].0.into(),
            active_meetings: 0,
            connected_participants: 0,
        })
        .await
        .unwrap();
}

/// Forwards every request to `target` and counts them.
#[derive(Clone)]
struct CountingFront {
    target: String,
    http: reqwest::Client,
    requests: Arc<AtomicUsize>,
}

async fn forward(
    State(front): State<CountingFront>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Bytes) {
    front.requests.fetch_add(1, Ordering::SeqCst);
    let mut request = front
        .http
        .post(format!("{}{}", front.target, uri.path()))
        .header("content-type", "application/json")
        .body(body);
    if let Some(authorization) = headers.get("authorization") {
        request = request.header("authorization", authorization);
    }
    let response = request.send().await.unwrap();
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    (status, response.bytes().await.unwrap())
}

/// A second, real AC on the test's database that expects another issuer, so it refuses every
/// token of the stack's AC with 401; behind a front that counts what reaches it.
async fn refusing_ac(stack: &TestStack) -> (String, Arc<AtomicUsize>) {
    let mut config = stack.ac_config.clone();
    config.jwt_issuer = "another-issuer".into();
    let app = ac_service::startup::Application::build(config, stack.pool.clone())
        .await
        .unwrap();
    let target = format!("http://{}", app.http_addr());
    tokio::spawn(app.run_until_stopped(std::future::pending::<()>()));
    let front = CountingFront {
        target,
        http: common::http_client(Duration::from_secs(10)).unwrap(),
        requests: Arc::new(AtomicUsize::new(0)),
    };
    let requests = Arc::clone(&front.requests);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = Router::new().fallback(forward).with_state(front);
    tokio::spawn(async move { axum::serve(listener, router).await });
    (base, requests)
}

fn grant() -> MeetingGrant {
    MeetingGrant {
        user_id: Uuid::new_v4(),
        meeting_id: Uuid::new_v4(),
        meeting_code: "Ab3dE5fG7hJ9".into(),
        org_id: Uuid::new_v4(),
        role: MeetingRole::Guest,
        name: "Someone".into(),
        guest: false,
        guest_token: false,
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn an_ac_that_keeps_refusing_is_asked_once_more_and_no_more(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let (refusing, requests) = refusing_ac(&stack).await;
    let tokens = Arc::new(
        ServiceTokenClient::new(
            &stack.ac.base,
            GC_CLIENT.0,
            SecretString::from(GC_CLIENT.1),
            None,
        )
        .unwrap(),
    );
    let first = tokens.token().await.unwrap();
    let meeting_tokens = MeetingTokens::new(
        &refusing,
        Arc::clone(&tokens),
        Duration::from_secs(10),
        &Background::default(),
    )
    .unwrap();

    let answer = meeting_tokens.issue(grant()).await;

    assert!(
        matches!(answer, Err(Error::Unavailable { .. })),
        "{answer:?}"
    );
    assert_eq!(requests.load(Ordering::SeqCst), 2);
    let replaced = tokens.token().await.unwrap();
    assert_ne!(replaced.expose_secret(), first.expose_secret());

    // The replacement is refused as well; another one so soon would cost AC a client-secret
    // check per call for nothing, so the next grant is refused at its first answer.
    let answer = meeting_tokens.issue(grant()).await;

    assert!(
        matches!(answer, Err(Error::Unavailable { .. })),
        "{answer:?}"
    );
    assert_eq!(requests.load(Ordering::SeqCst), 3);
    assert_eq!(
        tokens.token().await.unwrap().expose_secret(),
        replaced.expose_secret()
    );
}
