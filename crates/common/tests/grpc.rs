//! `common::grpc` against a real tonic server on 127.0.0.1: the service-token layers of both
//! sides, and error codes that survive the wire.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "grpc/support.rs"]
mod support;

use std::time::{Duration, Instant};

use common::error::{ApiError, ErrorCode, GRPC_ERROR_CODE_METADATA};
use common::grpc::client::ServiceTokenLayer;
use common::grpc::server::{ServiceAuthLayer, ServiceCaller};
use common::jwt::{AUDIENCE_USER, ServiceClaims, scope, service_type};
use common::proto::internal::v1::RegisterMeetingControllerRequest;
use support::{
    FakeAc, GcServer, HANG, MC_CLIENT_ID, PANIC, TestKey, Wiring, closed_url, heartbeat,
    heartbeat_with, mc_claims, meeting_claims, now, user_claims,
};
use tonic::Code;

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Asserts a refusal: the gRPC code, the error code in the metadata, and that it converts
/// back to that code.
fn assert_refused(status: &tonic::Status, grpc: Code, code: ErrorCode, case: &str) {
    assert_eq!(status.code(), grpc, "{case}: {status:?}");
    assert_eq!(
        status.metadata().get(GRPC_ERROR_CODE_METADATA).unwrap(),
        code.as_str(),
        "{case}"
    );
    assert_eq!(ApiError::from_status(status).code, code, "{case}");
}

#[tokio::test]
async fn a_valid_service_token_reaches_the_method_which_sees_the_caller() {
    let ac = FakeAc::start().await;
    let gc = GcServer::start(ac.verifier(), Wiring::PerService).await;
    let token = ac.key.sign(&mc_claims());

    // A malformed trace context is ignored, not refused.
    let mut request = heartbeat_with(&[&bearer(&token)]);
    request
        .metadata_mut()
        .insert("traceparent", "00-zz-not-a-trace-01".parse().unwrap());
    gc.raw_client().heartbeat(request).await.unwrap();

    assert_eq!(
        gc.recorder.callers(),
        vec![ServiceCaller {
            client_id: MC_CLIENT_ID.into(),
            service_type: service_type::MEETING_CONTROLLER.into(),
            scopes: vec![scope::INTERNAL_GC.into()],
        }]
    );
}

#[tokio::test]
async fn tokens_that_do_not_authenticate_get_unauthenticated_and_never_reach_the_method() {
    let ac = FakeAc::start().await;
    let gc = GcServer::start(ac.verifier(), Wiring::PerService).await;
    let good = ac.key.sign(&mc_claims());
    let sign = |claims: &ServiceClaims| ac.key.sign(claims);

    let expired = sign(&ServiceClaims {
        iat: now() - 7200,
        exp: now() - 3600,
        ..mc_claims()
    });
    let wrong_issuer = sign(&ServiceClaims {
        iss: "someone-else".into(),
        ..mc_claims()
    });
    let wrong_audience = sign(&ServiceClaims {
        aud: AUDIENCE_USER.into(),
        ..mc_claims()
    });
    let user_token = ac.key.sign(&user_claims());
    let meeting_token = ac.key.sign(&meeting_claims());
    // Same kid as AC's key, another key: a forged signature.
    let forged = TestKey::generate("k1").sign(&mc_claims());
    let unknown_kid = TestKey::generate("k-other").sign(&mc_claims());
    let over_8_kib = {
        let mut claims = serde_json::to_value(mc_claims()).unwrap();
        claims["pad"] = serde_json::json!("x".repeat(9 * 1024));
        ac.key.sign(&claims)
    };

    let cases: Vec<(&str, Vec<String>)> = vec![
        ("no authorization", vec![]),
        ("garbage", vec![bearer("not-a-token")]),
        ("three dots of garbage", vec![bearer("a.b.c")]),
        ("expired", vec![bearer(&expired)]),
        ("wrong issuer", vec![bearer(&wrong_issuer)]),
        ("wrong audience", vec![bearer(&wrong_audience)]),
        ("a user token", vec![bearer(&user_token)]),
        ("a meeting token", vec![bearer(&meeting_token)]),
        ("forged signature", vec![bearer(&forged)]),
        ("unknown kid", vec![bearer(&unknown_kid)]),
        ("a token over 8 KiB", vec![bearer(&over_8_kib)]),
        (
            "two authorization values, both valid",
            vec![bearer(&good), bearer(&good)],
        ),
        (
            "a valid value after a garbage one",
            vec![bearer("x"), bearer(&good)],
        ),
        (
            "two tokens in one value",
            vec![format!("Bearer {good}, Bearer {good}")],
        ),
        ("Basic scheme", vec![format!("Basic {good}")]),
        ("no scheme", vec![good.clone()]),
        ("scheme without a token", vec!["Bearer".into()]),
        ("scheme and a space", vec!["Bearer ".into()]),
        ("tab instead of a space", vec![format!("Bearer\t{good}")]),
        ("leading space", vec![format!(" Bearer {good}")]),
        ("doubled scheme", vec![format!("Bearer Bearer {good}")]),
        ("trailing junk", vec![format!("Bearer {good} x")]),
        ("token and a dot", vec![format!("Bearer {good}.")]),
    ];
    for (case, values) in cases {
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        let status = gc
            .raw_client()
            .heartbeat(heartbeat_with(&values))
            .await
            .unwrap_err();
        assert_refused(
            &status,
            Code::Unauthenticated,
            ErrorCode::Unauthorized,
            case,
        );
    }

    // A value that is not text (obs-text bytes HTTP allows in a header).
    let mut not_text = tonic::Request::new(heartbeat());
    not_text.metadata_mut().insert(
        "authorization",
        tonic::metadata::AsciiMetadataValue::try_from(b"Bearer \xffey.ey.sig".as_slice()).unwrap(),
    );
    let status = gc.raw_client().heartbeat(not_text).await.unwrap_err();
    assert_refused(
        &status,
        Code::Unauthenticated,
        ErrorCode::Unauthorized,
        "non-text value",
    );
    assert!(gc.recorder.callers().is_empty());
}

#[tokio::test]
async fn a_token_far_over_the_limit_never_reaches_the_method() {
    let ac = FakeAc::start().await;
    let gc = GcServer::start(ac.verifier(), Wiring::PerService).await;
    let mut claims = serde_json::to_value(mc_claims()).unwrap();
    claims["pad"] = serde_json::json!("x".repeat(64 * 1024));
    let huge = ac.key.sign(&claims);

    let status = gc
        .raw_client()
        .heartbeat(heartbeat_with(&[&bearer(&huge)]))
        .await
        .unwrap_err();

    // HTTP/2 itself refuses it (hyper's header-list limit: GOAWAY, which tonic reports as
    // RESOURCE_EXHAUSTED); the 9 KiB token above is the one the verifier's size check meets.
    assert_ne!(status.code(), Code::Ok);
    assert!(gc.recorder.callers().is_empty());
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive_and_may_be_followed_by_several_spaces() {
    // As RFC 7235 §2.1 and RFC 6750 §2.1 allow, and as common::http::bearer_token reads it.
    let ac = FakeAc::start().await;
    let gc = GcServer::start(ac.verifier(), Wiring::PerService).await;
    let token = ac.key.sign(&mc_claims());
    for value in [
        format!("bearer {token}"),
        format!("BEARER {token}"),
        format!("Bearer   {token}"),
    ] {
        gc.raw_client()
            .heartbeat(heartbeat_with(&[&value]))
            .await
            .unwrap();
    }
    assert_eq!(gc.recorder.callers().len(), 3);
}

#[tokio::test]
async fn valid_tokens_of_another_service_type_or_without_the_scope_get_permission_denied() {
    let ac = FakeAc::start().await;
    let gc = GcServer::start(ac.verifier(), Wiring::PerService).await;
    let cases = [
        (
            "GC's own credential",
            ServiceClaims {
                sub: "convene-gc".into(),
                service_type: service_type::GLOBAL_CONTROLLER.into(),
                scope: scope::INTERNAL_MC.into(),
                ..mc_claims()
            },
        ),
        (
            "GC's service type holding internal:gc",
            ServiceClaims {
                service_type: service_type::GLOBAL_CONTROLLER.into(),
                ..mc_claims()
            },
        ),
        (
            "an admin credential with every scope",
            ServiceClaims {
                service_type: service_type::ADMIN.into(),
                scope: "admin internal:gc internal:mc".into(),
                ..mc_claims()
            },
        ),
        (
            "no scope",
            ServiceClaims {
                scope: String::new(),
                ..mc_claims()
            },
        ),
        (
            "another scope",
            ServiceClaims {
                scope: scope::INTERNAL_MC.into(),
                ..mc_claims()
            },
        ),
        (
            "a scope the required one is a prefix of",
            ServiceClaims {
                scope: "internal:gcx".into(),
                ..mc_claims()
            },
        ),
        (
            "the scope in capitals",
            ServiceClaims {
                scope: "INTERNAL:GC".into(),
                ..mc_claims()
            },
        ),
        (
            "the service type in capitals",
            ServiceClaims {
                service_type: "MEETING-CONTROLLER".into(),
                ..mc_claims()
            },
        ),
    ];
    for (case, claims) in cases {
        let token = ac.key.sign(&claims);
        let status = gc
            .raw_client()
            .heartbeat(heartbeat_with(&[&bearer(&token)]))
            .await
            .unwrap_err();
        assert_refused(&status, Code::PermissionDenied, ErrorCode::Forbidden, case);
    }
    assert!(gc.recorder.callers().is_empty());
}

#[tokio::test]
async fn a_server_that_cannot_get_the_signing_keys_answers_unavailable() {
    let ac = FakeAc::start().await;
    let token = ac.key.sign(&mc_claims());
    let keyless = common::jwks::JwksVerifier::new(common::jwks::VerifierConfig::new(
        &closed_url().await,
        support::ISSUER,
    ))
    .unwrap();
    let gc = GcServer::start(keyless, Wiring::PerService).await;

    let status = gc
        .raw_client()
        .heartbeat(heartbeat_with(&[&bearer(&token)]))
        .await
        .unwrap_err();

    assert_refused(
        &status,
        Code::Unavailable,
        ErrorCode::ServiceUnavailable,
        "no keys",
    );
    assert!(gc.recorder.callers().is_empty());
}

#[tokio::test]
async fn server_builder_layer_guards_every_service_of_the_server() {
    let ac = FakeAc::start().await;
    let gc = GcServer::start(ac.verifier(), Wiring::WholeServer).await;
    let token = ac.key.sign(&mc_claims());

    let status = gc
        .raw_client()
        .heartbeat(heartbeat_with(&[]))
        .await
        .unwrap_err();
    assert_refused(
        &status,
        Code::Unauthenticated,
        ErrorCode::Unauthorized,
        "no token",
    );
    gc.raw_client()
        .heartbeat(heartbeat_with(&[&bearer(&token)]))
        .await
        .unwrap();
    assert_eq!(gc.recorder.callers()[0].client_id, MC_CLIENT_ID);
}

#[tokio::test]
async fn the_layer_is_a_plain_tower_service_over_routes_for_any_request_body() {
    use common::proto::internal::v1::global_controller_service_server::GlobalControllerServiceServer;
    use prost::Message;
    use tower::{Layer, ServiceExt};

    let ac = FakeAc::start().await;
    let recorder = support::Recorder::default();
    let routes = tonic::service::Routes::new(GlobalControllerServiceServer::new(support::TestGc {
        recorder: recorder.clone(),
    }));
    let guarded = ServiceAuthLayer::new(
        ac.verifier(),
        service_type::MEETING_CONTROLLER,
        scope::INTERNAL_GC,
    )
    .layer(routes);
    // One gRPC frame: no compression, big-endian length, the message.
    let message = heartbeat().encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(&message);
    let request = |authorization: Option<String>| {
        let mut builder =
            http::Request::post("http://gc/convene.internal.v1.GlobalControllerService/Heartbeat")
                .version(http::Version::HTTP_2)
                .header("content-type", "application/grpc")
                .header("te", "trailers");
        if let Some(value) = authorization {
            builder = builder.header("authorization", value);
        }
        // Bodies other than tonic's (hyper's `Incoming` in an accept loop) do as well.
        builder.body(axum::body::Body::from(frame.clone())).unwrap()
    };

    let refused = guarded.clone().oneshot(request(None)).await.unwrap();
    assert_eq!(refused.headers()["grpc-status"], "16");
    assert_eq!(refused.headers()[GRPC_ERROR_CODE_METADATA], "UNAUTHORIZED");
    assert!(recorder.callers().is_empty());

    let token = ac.key.sign(&mc_claims());
    let admitted = guarded
        .oneshot(request(Some(bearer(&token))))
        .await
        .unwrap();
    assert_eq!(admitted.status(), http::StatusCode::OK);
    assert!(admitted.headers().get("grpc-status").is_none());
    assert_eq!(recorder.callers()[0].client_id, MC_CLIENT_ID);
}

#[tokio::test]
async fn every_error_code_comes_back_over_the_wire_as_it_was_sent() {
    let ac = FakeAc::start().await;
    let gc = GcServer::start(ac.verifier(), Wiring::PerService).await;
    let mut client = gc.client(ServiceTokenLayer::new(ac.token_client()));
    // UNAUTHORIZED is the token check's alone (see the next test).
    let codes: Vec<ErrorCode> = ErrorCode::ALL
        .into_iter()
        .filter(|code| *code != ErrorCode::Unauthorized)
        .collect();

    for code in codes.iter().copied() {
        let message = format!("{} happened — «détail» 100%", code.as_str());
        let retry_after = u32::from(code == ErrorCode::RateLimited) * 42;
        let status = client
            .register_meeting_controller(RegisterMeetingControllerRequest {
                controller_id: code.as_str().into(),
                websocket_url: message.clone(),
                grpc_address: String::new(),
                capacity: retry_after,
            })
            .await
            .unwrap_err();

        assert_eq!(status.code(), code.grpc_code(), "{code:?}");
        let received = ApiError::from(status);
        assert_eq!(received.code, code);
        assert_eq!(received.code.http_status(), code.http_status());
        if code.http_status().is_server_error() {
            assert!(!received.message.contains("happened"), "{code:?}");
        } else {
            assert_eq!(received.message, message, "{code:?}");
        }
        let expected_retry = (code == ErrorCode::RateLimited).then_some(42);
        assert_eq!(received.retry_after_secs, expected_retry, "{code:?}");
    }
    assert_eq!(gc.recorder.callers().len(), codes.len());
}

#[tokio::test]
async fn a_method_answering_unauthenticated_answers_internal_and_runs_once() {
    let ac = FakeAc::start().await;
    let gc = GcServer::start(ac.verifier(), Wiring::PerService).await;
    let mut client = gc.client(ServiceTokenLayer::new(ac.token_client()));

    // The test GC's method answers UNAUTHORIZED when asked to.
    let status = client
        .register_meeting_controller(RegisterMeetingControllerRequest {
            controller_id: ErrorCode::Unauthorized.as_str().into(),
            websocket_url: "refused by the method".into(),
            grpc_address: String::new(),
            capacity: 0,
        })
        .await
        .unwrap_err();

    // Clients send a call refused UNAUTHENTICATED once more: a method must not answer it.
    assert_refused(&status, Code::Internal, ErrorCode::Internal, "method");
    assert_eq!(gc.recorder.callers().len(), 1);
    assert_eq!(ac.issued(), 1);
}

#[tokio::test]
async fn the_client_layer_attaches_one_cached_token_to_every_call() {
    let ac = FakeAc::start().await;
    let gc = GcServer::start(ac.verifier(), Wiring::PerService).await;
    let mut client = gc.client(ServiceTokenLayer::new(ac.token_client()));

    for _ in 0..3 {
        client.heartbeat(heartbeat()).await.unwrap();
    }

    assert_eq!(ac.issued(), 1);
    assert_eq!(gc.recorder.callers().len(), 3);
    let authorization = gc.recorder.last_metadata();
    let authorization = authorization
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(authorization.starts_with("Bearer ey"), "{authorization}");
}

#[tokio::test]
async fn a_refused_token_is_replaced_and_the_call_sent_once_more() {
    let ac = FakeAc::start().await;
    let gc = GcServer::start(ac.verifier(), Wiring::PerService).await;
    // AC's first token is signed by a key GC does not know (AC withdrew it, say).
    ac.queue_token(TestKey::generate("k-gone").sign(&mc_claims()));
    let mut client = gc.client(ServiceTokenLayer::new(ac.token_client()));

    client.heartbeat(heartbeat()).await.unwrap();

    assert_eq!(ac.issued(), 2);
    assert_eq!(gc.recorder.requests(), 2);
    assert_eq!(gc.recorder.callers().len(), 1);
    client.heartbeat(heartbeat()).await.unwrap();
    assert_eq!((ac.issued(), gc.recorder.requests()), (2, 3));
}

#[tokio::test]
async fn a_peer_refusing_every_token_gets_one_retry_and_costs_ac_one_refetch_per_interval() {
    let ac = FakeAc::start().await;
    let gc = GcServer::start(ac.verifier(), Wiring::PerService).await;
    for _ in 0..5 {
        ac.queue_token(TestKey::generate("k-gone").sign(&mc_claims()));
    }
    let mut client = gc.client(ServiceTokenLayer::new(ac.token_client()));

    let status = client.heartbeat(heartbeat()).await.unwrap_err();

    // Refused, a new token, refused again: an error, after exactly one retry.
    assert_refused(
        &status,
        Code::Unauthenticated,
        ErrorCode::Unauthorized,
        "first",
    );
    assert_eq!((ac.issued(), gc.recorder.requests()), (2, 2));

    for _ in 0..4 {
        let status = client.heartbeat(heartbeat()).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
    }
    // Within the interval the replacement's refusals are final: one request each, and no
    // token fetched for them.
    assert_eq!((ac.issued(), gc.recorder.requests()), (2, 6));
}

#[tokio::test]
async fn without_a_refetch_bound_every_refused_call_is_sent_exactly_twice() {
    let ac = FakeAc::start().await;
    let gc = GcServer::start(ac.verifier(), Wiring::PerService).await;
    for _ in 0..4 {
        ac.queue_token(TestKey::generate("k-gone").sign(&mc_claims()));
    }
    let tokens = std::sync::Arc::new(
        common::service_token::ServiceTokenClient::new(
            &ac.url,
            MC_CLIENT_ID,
            "convene-mc-test-secret".into(),
            None,
        )
        .unwrap()
        .with_min_refetch_interval(Duration::ZERO),
    );
    let mut client = gc.client(ServiceTokenLayer::new(tokens));

    for _ in 0..3 {
        let status = client.heartbeat(heartbeat()).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
    }

    assert_eq!(gc.recorder.requests(), 6);
    assert_eq!(ac.issued(), 4);
}

#[tokio::test]
async fn a_call_without_a_deadline_gets_the_default_one_and_a_set_deadline_is_kept() {
    let ac = FakeAc::start().await;
    let gc = GcServer::start(ac.verifier(), Wiring::PerService).await;
    let layer =
        ServiceTokenLayer::new(ac.token_client()).with_default_timeout(Duration::from_secs(3));
    let mut client = gc.client(layer);

    client.heartbeat(heartbeat()).await.unwrap();
    let sent = gc.recorder.last_metadata();
    let sent = sent.get("grpc-timeout").unwrap().to_str().unwrap();
    let millis: u64 = sent.strip_suffix('m').unwrap().parse().unwrap();
    assert!((1..=3000).contains(&millis), "{sent}");

    let mut request = tonic::Request::new(heartbeat());
    request.set_timeout(Duration::from_secs(42));
    client.heartbeat(request).await.unwrap();
    let sent = gc.recorder.last_metadata();
    let sent = sent.get("grpc-timeout").unwrap().to_str().unwrap();
    assert!(sent.starts_with("42"), "{sent}");
}

#[tokio::test]
async fn a_method_that_never_answers_ends_at_the_deadline_as_service_unavailable() {
    let ac = FakeAc::start().await;
    let gc = GcServer::start(ac.verifier(), Wiring::PerService).await;
    let layer =
        ServiceTokenLayer::new(ac.token_client()).with_default_timeout(Duration::from_millis(300));
    let mut client = gc.client(layer);
    let started = Instant::now();

    let mut request = heartbeat();
    request.active_meetings = HANG;
    let status = client.heartbeat(request).await.unwrap_err();

    // Whichever side gives up first: the client (DEADLINE_EXCEEDED) or tonic's server, which
    // reads grpc-timeout (CANCELLED).
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );
    assert_eq!(ApiError::from(status), ApiError::unavailable());
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(gc.recorder.callers().len(), 1);
}

#[tokio::test]
async fn the_client_keeps_the_deadline_itself_when_the_peer_ignores_it() {
    use common::proto::internal::v1::global_controller_service_client::GlobalControllerServiceClient;
    use tower::Layer;

    let ac = FakeAc::start().await;
    // A peer that takes the call and never answers, grpc-timeout or not.
    let silent_peer = tower::service_fn(|_request: http::Request<tonic::body::Body>| {
        std::future::pending::<Result<http::Response<tonic::body::Body>, std::convert::Infallible>>(
        )
    });
    let layer =
        ServiceTokenLayer::new(ac.token_client()).with_default_timeout(Duration::from_millis(200));
    let mut client = GlobalControllerServiceClient::new(layer.layer(silent_peer));

    let status = client.heartbeat(heartbeat()).await.unwrap_err();

    assert_eq!(status.code(), Code::DeadlineExceeded);
    assert_eq!(ApiError::from(status), ApiError::unavailable());
}

#[tokio::test]
async fn with_ac_unreachable_a_call_fails_unavailable_without_reaching_the_server() {
    let ac = FakeAc::start().await;
    let gc = GcServer::start(ac.verifier(), Wiring::PerService).await;
    let tokens = support::token_client(&closed_url().await);
    let mut client = gc.client(ServiceTokenLayer::new(tokens));

    let status = client.heartbeat(heartbeat()).await.unwrap_err();

    assert_refused(
        &status,
        Code::Unavailable,
        ErrorCode::ServiceUnavailable,
        "no token",
    );
    assert_eq!(gc.recorder.requests(), 0);
}

#[tokio::test]
async fn a_generated_mc_client_is_built_over_the_layered_channel() {
    use common::proto::internal::v1::GetRoomStateRequest;
    use common::proto::internal::v1::meeting_controller_service_client::MeetingControllerServiceClient;
    use tower::Layer;

    let ac = FakeAc::start().await;
    // The GC test server does not serve MC's service: the call arrives, with a token, and
    // is answered UNIMPLEMENTED.
    let gc = GcServer::start(ac.verifier(), Wiring::PerService).await;
    let layer = ServiceTokenLayer::new(ac.token_client());
    let mut mc = MeetingControllerServiceClient::new(layer.layer(gc.channel()));

    let status = mc
        .get_room_state(GetRoomStateRequest {
            meeting_code: "Ab3dE5fG7hJ9".into(),
        })
        .await
        .unwrap_err();

    assert_eq!(status.code(), Code::Unimplemented);
    assert_eq!(ac.issued(), 1);
    assert_eq!(gc.recorder.requests(), 1);
}

#[tokio::test]
async fn the_trace_of_the_caller_continues_in_the_method() {
    use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
    use tracing::Instrument;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    use tracing_subscriber::layer::SubscriberExt;

    // Spans with real trace ids, as in a service with telemetry on (no exporter needed).
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    tracing::subscriber::set_global_default(subscriber).unwrap();
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );

    let ac = FakeAc::start().await;
    let gc = GcServer::start(ac.verifier(), Wiring::PerService).await;
    let mut client = gc.client(ServiceTokenLayer::new(ac.token_client()));
    let span = tracing::info_span!("test.caller");
    let trace_id = span.context().span().span_context().trace_id();

    client
        .heartbeat(heartbeat())
        .instrument(span)
        .await
        .unwrap();

    assert_ne!(trace_id, opentelemetry::trace::TraceId::INVALID);
    let traceparent = gc.recorder.last_metadata();
    let traceparent = traceparent.get("traceparent").unwrap().to_str().unwrap();
    assert!(traceparent.contains(&trace_id.to_string()), "{traceparent}");
    assert_eq!(gc.recorder.last_trace_id(), trace_id);
}

/// The spans named `grpc.server` and the fields recorded on them, as a test subscriber sees
/// them.
#[derive(Clone, Default)]
struct ServerSpans(
    std::sync::Arc<std::sync::Mutex<Vec<std::collections::BTreeMap<String, String>>>>,
);

impl ServerSpans {
    fn all(&self) -> Vec<std::collections::BTreeMap<String, String>> {
        self.0.lock().unwrap().clone()
    }
}

struct Fields<'a>(&'a mut std::collections::BTreeMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

/// Which span of [`ServerSpans`] a span id is.
struct Index(usize);

impl<S> tracing_subscriber::Layer<S> for ServerSpans
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if attrs.metadata().name() != "grpc.server" {
            return;
        }
        let mut fields = std::collections::BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let mut spans = self.0.lock().unwrap();
        spans.push(fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Index(spans.len() - 1));
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let Some(span) = ctx.span(id) else { return };
        let Some(Index(index)) = span.extensions().get::<Index>().map(|i| Index(i.0)) else {
            return;
        };
        values.record(&mut Fields(&mut self.0.lock().unwrap()[index]));
    }
}

/// The value of the series of `metric` with exactly these labels in the Prometheus text.
fn series(text: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| line.starts_with(&format!("{metric}{{")))
        .find(|line| {
            let inside = line.split_once('{').unwrap().1.rsplit_once('}').unwrap().0;
            let mut found: Vec<&str> = inside.split(',').collect();
            let mut wanted: Vec<String> = labels
                .iter()
                .map(|(name, value)| format!("{name}=\"{value}\""))
                .collect();
            found.sort_unstable();
            wanted.sort_unstable();
            found == wanted
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// The stack of `common::grpc::layers`: a method that panics answers `INTERNAL` with the
/// error code, the connection serves the next call, and every call gets its span (with the
/// caller and the status code) and its metrics, with a bounded `method` label.
#[tokio::test]
async fn a_panicking_method_answers_internal_and_calls_are_traced_and_counted() {
    use tracing_subscriber::layer::SubscriberExt;

    let metrics = common::metrics::install_recorder(&[]).unwrap();
    let spans = ServerSpans::default();
    // Current-thread runtime: the server's tasks run on this thread, under this subscriber.
    let _subscriber =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
    let ac = FakeAc::start().await;
    let gc = GcServer::start(ac.verifier(), Wiring::PerServiceAs("stack")).await;
    let mut client = gc.client(ServiceTokenLayer::new(ac.token_client()));
    // Another test's thread, with no subscriber, may have registered the span's callsite as
    // of no interest just as this subscriber was set (`cargo test` runs tests as threads of
    // one process): ask every callsite again now that this one exists.
    tracing::callsite::rebuild_interest_cache();

    let panicked = client
        .meeting_empty(common::proto::internal::v1::MeetingEmptyRequest {
            controller_id: MC_CLIENT_ID.into(),
            meeting_code: PANIC.into(),
            empty_since: None,
            last_seat: 0,
        })
        .await
        .unwrap_err();
    assert_refused(&panicked, Code::Internal, ErrorCode::Internal, "a panic");
    // The same channel, the same connection: still served.
    client.heartbeat(heartbeat()).await.unwrap();
    client.heartbeat(heartbeat()).await.unwrap();
    // Refused before any method, on a path that names none: no series of its own.
    let refused = gc
        .raw_client()
        .heartbeat(heartbeat_with(&["Bearer not-a-token"]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);

    let text = metrics.render();
    let count = |method: &str, code: &str| {
        series(
            &text,
            "stack_grpc_requests_total",
            &[("method", method), ("code", code)],
        )
    };
    let service = "convene.internal.v1.GlobalControllerService";
    assert_eq!(
        count(&format!("{service}/MeetingEmpty"), "INTERNAL"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        count(&format!("{service}/Heartbeat"), "OK"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(count("unmatched", "UNAUTHENTICATED"), Some(1.0), "{text}");
    assert_eq!(
        series(
            &text,
            "stack_grpc_request_duration_seconds_count",
            &[("method", &format!("{service}/Heartbeat")), ("code", "OK")],
        ),
        Some(2.0),
        "{text}"
    );

    let spans = spans.all();
    let names: Vec<&str> = spans.iter().map(|s| s["otel.name"].as_str()).collect();
    assert_eq!(
        names,
        [
            format!("{service}/MeetingEmpty"),
            format!("{service}/Heartbeat"),
            format!("{service}/Heartbeat"),
            format!("{service}/Heartbeat"),
        ]
    );
    assert_eq!(spans[0]["client_id"], MC_CLIENT_ID);
    assert_eq!(
        spans[0]["rpc.grpc.status_code"],
        (Code::Internal as i32).to_string()
    );
    assert_eq!(spans[1]["rpc.grpc.status_code"], "0");
    assert!(!spans[3].contains_key("client_id"), "{:?}", spans[3]);
    assert_eq!(
        spans[3]["rpc.grpc.status_code"],
        (Code::Unauthenticated as i32).to_string()
    );
}
