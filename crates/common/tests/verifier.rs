//! The verifier against hostile tokens, and against a real JWKS endpoint over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::jwks::{JwksVerifier, VERIFIED_TOKENS_CACHED, VerifierConfig, VerifyError};
use common::jwt::{
    AUDIENCE_MEETING, AUDIENCE_USER, GuestClaims, MeetingClaims, MeetingRole, Role, TokenType,
    UserClaims,
};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use ring::signature::{Ed25519KeyPair, KeyPair};
use tokio::sync::RwLock;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

const ISSUER: &str = "convene-ac";

struct TestKey {
    kid: String,
    pkcs8: Vec<u8>,
    public: Vec<u8>,
}

impl TestKey {
    fn generate(kid: &str) -> Self {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        Self {
            kid: kid.to_owned(),
            pkcs8: pkcs8.as_ref().to_vec(),
            public: pair.public_key().as_ref().to_vec(),
        }
    }

    fn jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
            "kid": self.kid, "x": URL_SAFE_NO_PAD.encode(&self.public),
        })
    }

    fn sign<T: serde::Serialize>(&self, claims: &T) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        encode(&header, claims, &EncodingKey::from_ed_der(&self.pkcs8)).unwrap()
    }
}

fn jwks(keys: &[&TestKey]) -> JwkSet {
    serde_json::from_value(serde_json::json!({
        "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()
    }))
    .unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn user_claims() -> UserClaims {
    UserClaims {
        iss: ISSUER.into(),
        aud: AUDIENCE_USER.into(),
        token_type: TokenType::User,
        sub: Uuid::new_v4(),
        org_id: Uuid::new_v4(),
        roles: vec![Role::User],
        name: "Test User".into(),
        jti: Uuid::new_v4(),
        iat: now(),
        exp: now() + 3600,
    }
}

fn meeting_claims() -> MeetingClaims {
    MeetingClaims {
        iss: ISSUER.into(),
        aud: AUDIENCE_MEETING.into(),
        token_type: TokenType::Meeting,
        sub: Uuid::new_v4(),
        meeting_id: Uuid::new_v4(),
        meeting_code: "Ab3dE5fG7hJ9".into(),
        org_id: Uuid::new_v4(),
        role: MeetingRole::Guest,
        name: "Guest".into(),
        guest: false,
        jti: Uuid::new_v4(),
        iat: now(),
        exp: now() + 600,
    }
}

fn guest_claims() -> GuestClaims {
    GuestClaims {
        iss: ISSUER.into(),
        aud: AUDIENCE_USER.into(),
        token_type: TokenType::Guest,
        sub: Uuid::new_v4(),
        meeting_code: "Ab3dE5fG7hJ9".into(),
        org_id: Uuid::new_v4(),
        name: "Visitor".into(),
        jti: Uuid::new_v4(),
        iat: now(),
        exp: now() + 7200,
    }
}

fn b64(value: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

fn fixed_verifier(key: &TestKey) -> JwksVerifier {
    JwksVerifier::from_jwks(&jwks(&[key]), ISSUER, Duration::from_secs(60))
}

#[tokio::test]
async fn a_well_formed_user_token_verifies() {
    let key = TestKey::generate("k1");
    let claims = user_claims();
    let verified: UserClaims = fixed_verifier(&key)
        .verify(&key.sign(&claims))
        .await
        .unwrap();
    assert_eq!(verified, claims);
}

#[tokio::test]
async fn every_hostile_token_is_rejected() {
    let key = TestKey::generate("k1");
    let other = TestKey::generate("k1"); // same kid, different key: a forged signature
    let verifier = fixed_verifier(&key);
    let valid = key.sign(&user_claims());
    let parts: Vec<&str> = valid.split('.').collect();

    let alg_none = format!(
        "{}.{}.",
        b64(&serde_json::json!({"alg": "none", "typ": "JWT", "kid": "k1"})),
        parts[1]
    );
    let hs256_with_public_key = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k1".into());
        encode(
            &header,
            &user_claims(),
            &EncodingKey::from_secret(&key.public),
        )
        .unwrap()
    };
    let tampered = {
        let mut payload = serde_json::to_value(user_claims()).unwrap();
        payload["roles"] = serde_json::json!(["admin"]);
        format!("{}.{}.{}", parts[0], b64(&payload), parts[2])
    };
    let expired = key.sign(&UserClaims {
        iat: now() - 7200,
        exp: now() - 3600,
        ..user_claims()
    });
    let wrong_iss = key.sign(&UserClaims {
        iss: "someone-else".into(),
        ..user_claims()
    });
    let wrong_aud = key.sign(&UserClaims {
        aud: "convene-internal".into(),
        ..user_claims()
    });
    let wrong_type_right_aud = key.sign(&UserClaims {
        token_type: TokenType::Service,
        ..user_claims()
    });
    let meeting_token = key.sign(&meeting_claims());
    let from_the_future = key.sign(&UserClaims {
        iat: now() + 3600,
        exp: now() + 7200,
        ..user_claims()
    });
    let unknown_kid = TestKey::generate("k-unknown").sign(&user_claims());
    let forged = other.sign(&user_claims());
    let no_kid = {
        let header = Header::new(Algorithm::EdDSA);
        encode(
            &header,
            &user_claims(),
            &EncodingKey::from_ed_der(&key.pkcs8),
        )
        .unwrap()
    };
    let huge = {
        let mut claims = serde_json::to_value(user_claims()).unwrap();
        claims["pad"] = serde_json::json!("x".repeat(100 * 1024));
        key.sign(&claims)
    };

    let cases: Vec<(&str, String, VerifyError)> = vec![
        // jsonwebtoken does not even parse a header naming `none`.
        ("alg none", alg_none, VerifyError::Malformed),
        (
            "HS256 keyed with the public key",
            hs256_with_public_key,
            VerifyError::UnsupportedAlgorithm,
        ),
        ("tampered payload", tampered, VerifyError::BadSignature),
        ("signed by another key", forged, VerifyError::BadSignature),
        ("expired", expired, VerifyError::Expired),
        ("wrong issuer", wrong_iss, VerifyError::WrongIssuer),
        ("wrong audience", wrong_aud, VerifyError::WrongAudience),
        (
            "wrong token_type",
            wrong_type_right_aud,
            VerifyError::WrongTokenType,
        ),
        (
            "meeting token where a user token is expected",
            meeting_token,
            VerifyError::InvalidClaims,
        ),
        (
            "issued in the future",
            from_the_future,
            VerifyError::IssuedInFuture,
        ),
        ("unknown kid", unknown_kid, VerifyError::UnknownKid),
        ("no kid", no_kid, VerifyError::MissingKid),
        ("100 KiB token", huge, VerifyError::TooLarge),
        ("garbage", "not.a.jwt".into(), VerifyError::Malformed),
        ("empty", String::new(), VerifyError::Malformed),
        (
            "binary noise",
            "\u{0}\u{1}.\u{2}.\u{3}".into(),
            VerifyError::Malformed,
        ),
    ];
    for (name, token, expected) in cases {
        let result = verifier.verify::<UserClaims>(&token).await;
        assert_eq!(result.err(), Some(expected), "case: {name}");
    }
}

#[tokio::test]
async fn a_user_token_is_refused_where_a_meeting_token_is_expected() {
    let key = TestKey::generate("k1");
    let verifier = fixed_verifier(&key);
    let user = key.sign(&user_claims());
    // Refused for lacking the meeting claims before the audience is even compared.
    assert_eq!(
        verifier.verify::<MeetingClaims>(&user).await.err(),
        Some(VerifyError::InvalidClaims)
    );
    // Even with the meeting audience, the user token_type is refused.
    let user_with_meeting_aud = key.sign(&UserClaims {
        aud: AUDIENCE_MEETING.into(),
        ..user_claims()
    });
    assert!(
        verifier
            .verify::<MeetingClaims>(&user_with_meeting_aud)
            .await
            .is_err()
    );
    let meeting = key.sign(&meeting_claims());
    assert!(verifier.verify::<MeetingClaims>(&meeting).await.is_ok());
}

/// A guest token shares the user tokens' audience (the public API), so only its type keeps it
/// from passing as a user token, and a user token from passing as a guest's: each is refused
/// as the other, before and after it was verified (and remembered) as what it is, and with
/// the other's claims added to it.
#[tokio::test]
async fn guest_and_user_tokens_are_never_taken_for_each_other() {
    let key = TestKey::generate("k1");
    let verifier = fixed_verifier(&key);
    let guest = key.sign(&guest_claims());
    let user = key.sign(&user_claims());
    for _ in 0..2 {
        assert_eq!(
            verifier.verify::<UserClaims>(&guest).await.err(),
            Some(VerifyError::InvalidClaims),
            "a guest token has no roles"
        );
        assert_eq!(
            verifier.verify::<GuestClaims>(&user).await.err(),
            Some(VerifyError::InvalidClaims),
            "a user token has no meeting"
        );
        assert!(verifier.verify::<GuestClaims>(&guest).await.is_ok());
        assert!(verifier.verify::<UserClaims>(&user).await.is_ok());
    }
    // Each with every claim of the other: the type decides.
    let mut guest_as_user = serde_json::to_value(guest_claims()).unwrap();
    guest_as_user["roles"] = serde_json::json!(["user", "admin"]);
    assert_eq!(
        verifier
            .verify::<UserClaims>(&key.sign(&guest_as_user))
            .await
            .err(),
        Some(VerifyError::WrongTokenType)
    );
    let mut user_as_guest = serde_json::to_value(user_claims()).unwrap();
    user_as_guest["meeting_code"] = serde_json::json!("Ab3dE5fG7hJ9");
    assert_eq!(
        verifier
            .verify::<GuestClaims>(&key.sign(&user_as_guest))
            .await
            .err(),
        Some(VerifyError::WrongTokenType)
    );
    // Nor is a guest token a meeting token.
    assert!(verifier.verify::<MeetingClaims>(&guest).await.is_err());
}

/// A meeting token signed before guests existed has no `guest` claim: it is a member's.
#[tokio::test]
async fn a_meeting_token_without_the_guest_claim_is_a_members() {
    let key = TestKey::generate("k1");
    let verifier = fixed_verifier(&key);
    let mut older = serde_json::to_value(meeting_claims()).unwrap();
    assert!(older.get("guest").is_none(), "false is not written");
    older.as_object_mut().unwrap().remove("guest");
    let claims: MeetingClaims = verifier.verify(&key.sign(&older)).await.unwrap();
    assert!(!claims.guest);
    let guest = key.sign(&MeetingClaims {
        guest: true,
        ..meeting_claims()
    });
    assert!(
        verifier
            .verify::<MeetingClaims>(&guest)
            .await
            .unwrap()
            .guest
    );
}

#[tokio::test]
async fn clock_skew_within_the_bound_is_tolerated() {
    let key = TestKey::generate("k1");
    let verifier = fixed_verifier(&key);
    let slightly_ahead = key.sign(&UserClaims {
        iat: now() + 30,
        ..user_claims()
    });
    assert!(verifier.verify::<UserClaims>(&slightly_ahead).await.is_ok());
}

#[tokio::test]
async fn a_token_seen_before_is_not_checked_again_but_its_neighbours_are() {
    let key = TestKey::generate("k1");
    let verifier = fixed_verifier(&key);
    let claims = user_claims();
    let token = key.sign(&claims);
    for _ in 0..3 {
        assert_eq!(verifier.verify::<UserClaims>(&token).await.unwrap(), claims);
    }
    assert_eq!(verifier.signature_checks(), 1);
    assert_eq!(verifier.verified_tokens_cached(), 1);

    // The same header and claims with another signature are other bytes: checked, and refused.
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let mut forged_signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    forged_signature[0] ^= 1;
    let forged = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(&forged_signature));
    assert_eq!(
        verifier.verify::<UserClaims>(&forged).await,
        Err(VerifyError::BadSignature)
    );
    // A remembered user token asked for as a meeting token is checked as one, and refused.
    assert!(verifier.verify::<MeetingClaims>(&token).await.is_err());
    assert_eq!(verifier.signature_checks(), 3);
    assert_eq!(verifier.verified_tokens_cached(), 1);
}

#[tokio::test]
async fn a_remembered_token_stops_verifying_when_its_key_is_withdrawn() {
    let withdrawn = TestKey::generate("k1");
    let other = TestKey::generate("k2");
    let verifier = JwksVerifier::from_jwks(
        &jwks(&[&withdrawn, &other]),
        ISSUER,
        Duration::from_secs(60),
    );
    let token = withdrawn.sign(&user_claims());
    assert!(verifier.verify::<UserClaims>(&token).await.is_ok());

    verifier.set_keys(&jwks(&[&other])).await;
    assert_eq!(verifier.verified_tokens_cached(), 0);
    assert_eq!(
        verifier.verify::<UserClaims>(&token).await,
        Err(VerifyError::UnknownKid)
    );

    // Published again (as a test can, AC cannot): its tokens are checked afresh.
    verifier.set_keys(&jwks(&[&withdrawn, &other])).await;
    assert!(verifier.verify::<UserClaims>(&token).await.is_ok());
    assert_eq!(verifier.signature_checks(), 2);
}

#[tokio::test]
async fn a_refresh_that_changes_no_key_keeps_what_was_verified() {
    let key = TestKey::generate("k1");
    let verifier = fixed_verifier(&key);
    let token = key.sign(&user_claims());
    assert!(verifier.verify::<UserClaims>(&token).await.is_ok());
    verifier.set_keys(&jwks(&[&key])).await;
    assert!(verifier.verify::<UserClaims>(&token).await.is_ok());
    assert_eq!(verifier.signature_checks(), 1);
}

#[tokio::test]
async fn a_remembered_token_still_expires() {
    let key = TestKey::generate("k1");
    let verifier = JwksVerifier::from_jwks(&jwks(&[&key]), ISSUER, Duration::ZERO);
    let exp = now() + 1;
    let token = key.sign(&UserClaims {
        iat: now() - 10,
        exp,
        ..user_claims()
    });
    assert!(verifier.verify::<UserClaims>(&token).await.is_ok());
    while now() <= exp {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        verifier.verify::<UserClaims>(&token).await,
        Err(VerifyError::Expired)
    );
    assert_eq!(verifier.verified_tokens_cached(), 0);
}

#[tokio::test]
async fn the_memory_of_verified_tokens_is_bounded() {
    let key = TestKey::generate("k1");
    let verifier = fixed_verifier(&key);
    for _ in 0..VERIFIED_TOKENS_CACHED + 10 {
        let token = key.sign(&user_claims());
        assert!(verifier.verify::<UserClaims>(&token).await.is_ok());
        assert!(verifier.verified_tokens_cached() <= VERIFIED_TOKENS_CACHED);
    }
    assert!(verifier.verified_tokens_cached() > 0);
}

/// A JWKS endpoint whose key set the test can change, counting the requests it serves.
struct JwksServer {
    url: String,
    keys: Arc<RwLock<serde_json::Value>>,
    hits: Arc<AtomicUsize>,
}

async fn jwks_server(initial: &[&TestKey]) -> JwksServer {
    let keys = Arc::new(RwLock::new(serde_json::to_value(jwks(initial)).unwrap()));
    let hits = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get({
            let keys = keys.clone();
            let hits = hits.clone();
            move || async move {
                hits.fetch_add(1, Ordering::SeqCst);
                axum::Json(keys.read().await.clone())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    JwksServer {
        url: format!("http://{addr}"),
        keys,
        hits,
    }
}

fn remote_config(url: &str, min_refetch: Duration) -> VerifierConfig {
    VerifierConfig {
        min_refetch_interval: min_refetch,
        ..VerifierConfig::new(url, ISSUER)
    }
}

#[tokio::test]
async fn a_key_published_after_start_is_found_by_one_refetch() {
    let old = TestKey::generate("old");
    let new = TestKey::generate("new");
    let server = jwks_server(&[&old]).await;
    let verifier = JwksVerifier::new(remote_config(&server.url, Duration::ZERO)).unwrap();

    assert!(
        verifier
            .verify::<UserClaims>(&old.sign(&user_claims()))
            .await
            .is_ok()
    );
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);

    *server.keys.write().await = serde_json::to_value(jwks(&[&old, &new])).unwrap();
    assert!(
        verifier
            .verify::<UserClaims>(&new.sign(&user_claims()))
            .await
            .is_ok()
    );
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);
    // The old key is still cached and still published: no further fetch.
    assert!(
        verifier
            .verify::<UserClaims>(&old.sign(&user_claims()))
            .await
            .is_ok()
    );
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_flood_of_unknown_kids_causes_at_most_one_refetch_per_interval() {
    let known = TestKey::generate("known");
    let server = jwks_server(&[&known]).await;
    let verifier =
        JwksVerifier::new(remote_config(&server.url, Duration::from_secs(3600))).unwrap();
    assert!(verifier.ensure_keys().await);
    let before = server.hits.load(Ordering::SeqCst);

    for i in 0..50 {
        let stranger = TestKey::generate(&format!("made-up-{i}"));
        assert_eq!(
            verifier
                .verify::<UserClaims>(&stranger.sign(&user_claims()))
                .await
                .err(),
            Some(VerifyError::UnknownKid)
        );
    }
    assert!(server.hits.load(Ordering::SeqCst) - before <= 1);
}

#[tokio::test]
async fn an_unreachable_jwks_makes_tokens_fail_closed() {
    let key = TestKey::generate("k1");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener); // nothing listens there any more
    let verifier =
        JwksVerifier::new(remote_config(&format!("http://{addr}"), Duration::ZERO)).unwrap();
    assert!(!verifier.ensure_keys().await);
    assert_eq!(
        verifier
            .verify::<UserClaims>(&key.sign(&user_claims()))
            .await
            .err(),
        Some(VerifyError::KeysUnavailable)
    );
}

#[tokio::test]
async fn a_stale_key_set_is_refreshed_in_the_background_while_known_keys_keep_working() {
    let key = TestKey::generate("k1");
    let body = serde_json::to_value(jwks(&[&key])).unwrap();
    // The first request is answered; every later one is reported and then never answered, as
    // from an AC that has become unresponsive.
    let (arrived, mut requests) = tokio::sync::mpsc::unbounded_channel::<()>();
    let served = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            let body = body.clone();
            let arrived = arrived.clone();
            let served = served.clone();
            async move {
                if served.fetch_add(1, Ordering::SeqCst) > 0 {
                    let _ = arrived.send(());
                    std::future::pending::<()>().await;
                }
                axum::Json(body)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let tasks = TaskTracker::new();
    let config = VerifierConfig {
        refresh_interval: Duration::ZERO, // always stale after the first fetch
        min_refetch_interval: Duration::ZERO,
        http_timeout: Duration::from_secs(3600),
        tasks: tasks.clone(),
        ..VerifierConfig::new(&format!("http://{addr}"), ISSUER)
    };
    let verifier = JwksVerifier::new(config).unwrap();
    assert!(verifier.ensure_keys().await);

    // The set is stale and AC hangs, yet a token with a known kid verifies without waiting.
    let verified = tokio::time::timeout(
        Duration::from_secs(30),
        verifier.verify::<UserClaims>(&key.sign(&user_claims())),
    )
    .await
    .expect("verification waited for the refresh");
    assert!(verified.is_ok());
    // And the refresh did start, on the tracker the service gave (its shell's, which a stop
    // waits for), where it still waits for AC.
    tokio::time::timeout(Duration::from_secs(30), requests.recv())
        .await
        .expect("no background refresh")
        .unwrap();
    assert_eq!(
        tasks.len(),
        1,
        "the refresh runs on the tracker of the config"
    );
}
