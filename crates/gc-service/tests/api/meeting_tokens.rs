//! GC's meeting-token client against a real AC: grants queued together are signed in batches,
//! each caller gets the token of its own grant, an AC without the batch route (an older one,
//! mid-deploy) is asked grant by grant, and an unreachable AC is a 503 for every caller.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::jwks::{JwksVerifier, VerifierConfig};
use common::jwt::{MeetingClaims, MeetingRole};
use common::service_token::ServiceTokenClient;
use common::shell::Background;
use gc_service::clients::ac::{MeetingGrant, MeetingTokens};
use gc_service::error::Error;
use secrecy::SecretString;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{GC_CLIENT, ISSUER, StackOptions, TestStack, spawn_stack};

fn client(ac_base: &str, stack: &TestStack) -> MeetingTokens {
    client_with_timeout(ac_base, stack, Duration::from_secs(10))
}

fn client_with_timeout(ac_base: &str, stack: &TestStack, timeout: Duration) -> MeetingTokens {
    let tokens = ServiceTokenClient::new(
        &stack.ac.base,
        GC_CLIENT.0,
        SecretString::from(GC_CLIENT.1),
        None,
    )
    .unwrap();
    MeetingTokens::new(ac_base, Arc::new(tokens), timeout, &Background::default()).unwrap()
}

fn grant(i: usize) -> MeetingGrant {
    MeetingGrant {
        user_id: Uuid::new_v4(),
        meeting_id: Uuid::new_v4(),
        meeting_code: "Ab3dE5fG7hJ9".into(),
        org_id: Uuid::new_v4(),
        role: if i.is_multiple_of(2) {
            MeetingRole::Host
        } else {
            MeetingRole::Guest
        },
        name: format!("Person {i}"),
        guest: false,
        guest_token: false,
    }
}

/// Issues `n` grants at once and checks that every token verifies and says what its own grant
/// said.
async fn issue_many(stack: &TestStack, tokens: &MeetingTokens, n: usize) {
    let grants: Vec<MeetingGrant> = (0..n).map(grant).collect();
    let issued = futures::future::join_all(grants.iter().map(|g| tokens.issue(g.clone()))).await;
    let verifier = JwksVerifier::new(VerifierConfig::new(&stack.ac.base, ISSUER)).unwrap();
    for (grant, issued) in grants.iter().zip(issued) {
        let issued = issued.unwrap();
        assert_eq!(issued.expires_in, 900);
        let claims: MeetingClaims = verifier.verify(&issued.token).await.unwrap();
        assert_eq!(
            (claims.sub, claims.meeting_id, claims.org_id),
            (grant.user_id, grant.meeting_id, grant.org_id)
        );
        assert_eq!((claims.role, &claims.name), (grant.role, &grant.name));
    }
}

/// AC's requests answered 200 on `route` (AC runs in the test's process: GC's `/metrics`
/// shows its series too).
async fn ac_requests(stack: &TestStack, route: &str) -> f64 {
    stack
        .metric(
            "ac_http_requests_total",
            &[("route", route), ("status", "200")],
        )
        .await
}

#[sqlx::test(migrations = "../../migrations")]
async fn simultaneous_grants_are_signed_in_batches_each_token_its_own(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let tokens = client(&stack.ac.base, &stack);

    issue_many(&stack, &tokens, 150).await;

    // 150 grants in batches of at most 64: fewer requests than grants, and never the single
    // route.
    let batches = ac_requests(&stack, "/api/v1/auth/internal/meeting-tokens").await;
    assert!((3.0..150.0).contains(&batches), "{batches} batch requests");
    assert_eq!(
        ac_requests(&stack, "/api/v1/auth/internal/meeting-token").await,
        0.0
    );
}

/// An AC from before the batch route: forwards the single route to the real AC, and answers
/// 404 to the batch route as such an AC does.
#[derive(Clone)]
struct OlderAc {
    real: String,
    http: reqwest::Client,
    singles: Arc<AtomicUsize>,
}

async fn forward_single(
    State(older): State<OlderAc>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Bytes) {
    older.singles.fetch_add(1, Ordering::SeqCst);
    let response = older
        .http
        .post(format!("{}/api/v1/auth/internal/meeting-token", older.real))
        .header("authorization", headers.get("authorization").unwrap())
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    (status, response.bytes().await.unwrap())
}

#[sqlx::test(migrations = "../../migrations")]
async fn an_ac_without_the_batch_route_is_asked_grant_by_grant(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let older = OlderAc {
        real: stack.ac.base.clone(),
        http: common::http_client(Duration::from_secs(10)).unwrap(),
        singles: Arc::new(AtomicUsize::new(0)),
    };
    let singles = Arc::clone(&older.singles);
    let app = Router::new()
        .route("/api/v1/auth/internal/meeting-token", post(forward_single))
        .with_state(older);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let older_base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let tokens = client(&older_base, &stack);

    issue_many(&stack, &tokens, 12).await;

    assert_eq!(singles.load(Ordering::SeqCst), 12);
}

#[sqlx::test(migrations = "../../migrations")]
async fn an_unreachable_ac_is_a_503_for_every_caller(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    // A port that was free a moment ago: nothing listens there now.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_base = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let tokens = client(&closed_base, &stack);

    let answers = futures::future::join_all((0..10).map(|i| tokens.issue(grant(i)))).await;

    for answer in answers {
        assert!(
            matches!(answer, Err(Error::Unavailable { .. })),
            "{answer:?}"
        );
    }
}

/// AC hangs (every byte to it held). A grant queued while the batch before it waits out its
/// timeout is refused when its own timeout passes, counted from when it was queued: not after
/// that batch and then its own (two timeouts, which the fault suite's `hung` scenario met as a
/// join refused after 5.2 s).
#[sqlx::test(migrations = "../../migrations")]
async fn a_grant_queued_behind_a_hung_batch_waits_one_timeout_not_two(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let ac_addr: std::net::SocketAddr =
        stack.ac.base.trim_start_matches("http://").parse().unwrap();
    let proxy = fault_proxy::FaultProxy::start(ac_addr).await.unwrap();
    let timeout = Duration::from_secs(2);
    let tokens = client_with_timeout(&format!("http://{}", proxy.addr()), &stack, timeout);
    // The service token is fetched (straight from AC) before AC hangs, so only the batch hangs.
    issue_many(&stack, &tokens, 1).await;
    proxy.set(fault_proxy::Fault::Stall);

    let first = {
        let tokens = tokens.clone();
        tokio::spawn(async move { tokens.issue(grant(0)).await })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let queued_at = tokio::time::Instant::now();
    let second = tokens.issue(grant(1)).await;
    let waited = queued_at.elapsed();

    assert!(
        matches!(second, Err(Error::Unavailable { .. })),
        "{second:?}"
    );
    assert!(
        matches!(first.await.unwrap(), Err(Error::Unavailable { .. })),
        "the hung batch fails at its timeout"
    );
    // One timeout (2 s) and slack; two would be 3 s here (1 s behind the first, then its own).
    assert!(
        waited < timeout + Duration::from_millis(600),
        "the queued grant waited {waited:?}"
    );
    proxy.set(fault_proxy::Fault::Pass);
    issue_many(&stack, &tokens, 3).await;
}
