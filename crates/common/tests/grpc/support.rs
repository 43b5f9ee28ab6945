//! What the gRPC tests stand on: Ed25519 test keys, a stand-in for AC (JWKS and the
//! client-credentials endpoint), and a real tonic server of `GlobalControllerService`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::error::{ApiError, ErrorCode};
use common::grpc::client::{ServiceTokenLayer, WithServiceToken};
use common::grpc::server::{ServiceAuthLayer, ServiceCaller};
use common::jwks::{JwksVerifier, VerifierConfig};
use common::jwt::{
    AUDIENCE_MEETING, AUDIENCE_SERVICE, AUDIENCE_USER, MeetingClaims, MeetingRole, Role,
    ServiceClaims, TokenType, UserClaims, scope, service_type,
};
use common::proto::internal::v1::global_controller_service_client::GlobalControllerServiceClient;
use common::proto::internal::v1::global_controller_service_server::{
    GlobalControllerService, GlobalControllerServiceServer,
};
use common::proto::internal::v1::{
    HeartbeatRequest, HeartbeatResponse, MeetingEmptyRequest, MeetingEmptyResponse,
    ParticipantLeftRequest, ParticipantLeftResponse, RegisterMeetingControllerRequest,
    RegisterMeetingControllerResponse,
};
use common::service_token::ServiceTokenClient;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use ring::signature::{Ed25519KeyPair, KeyPair};
use secrecy::SecretString;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use tower::Layer;
use uuid::Uuid;

pub const ISSUER: &str = "convene-ac";
pub const MC_CLIENT_ID: &str = "convene-mc";

pub struct TestKey {
    kid: String,
    pkcs8: Vec<u8>,
    public: Vec<u8>,
}

impl TestKey {
    pub fn generate(kid: &str) -> Self {
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

    pub fn sign<T: serde::Serialize>(&self, claims: &T) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        encode(&header, claims, &EncodingKey::from_ed_der(&self.pkcs8)).unwrap()
    }
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// What MC's credential gets from AC: the token GC's server admits.
pub fn mc_claims() -> ServiceClaims {
    ServiceClaims {
        iss: ISSUER.into(),
        aud: AUDIENCE_SERVICE.into(),
        token_type: TokenType::Service,
        sub: MC_CLIENT_ID.into(),
        scope: scope::INTERNAL_GC.into(),
        service_type: service_type::MEETING_CONTROLLER.into(),
        jti: Uuid::new_v4(),
        iat: now(),
        exp: now() + 3600,
    }
}

pub fn user_claims() -> UserClaims {
    UserClaims {
        iss: ISSUER.into(),
        aud: AUDIENCE_USER.into(),
        token_type: TokenType::User,
        sub: Uuid::new_v4(),
        org_id: Uuid::new_v4(),
        roles: vec![Role::Admin],
        name: "Someone".into(),
        jti: Uuid::new_v4(),
        iat: now(),
        exp: now() + 3600,
    }
}

pub fn meeting_claims() -> MeetingClaims {
    MeetingClaims {
        iss: ISSUER.into(),
        aud: AUDIENCE_MEETING.into(),
        token_type: TokenType::Meeting,
        sub: Uuid::new_v4(),
        meeting_id: Uuid::new_v4(),
        meeting_code: "Ab3dE5fG7hJ9".into(),
        org_id: Uuid::new_v4(),
        role: MeetingRole::Host,
        name: "Host".into(),
        guest: false,
        jti: Uuid::new_v4(),
        iat: now(),
        exp: now() + 600,
    }
}

/// A stand-in for AC: its JWKS, and a client-credentials endpoint that counts the tokens it
/// issues and hands out queued tokens before well-formed ones of `mc_claims()`.
pub struct FakeAc {
    pub url: String,
    pub key: Arc<TestKey>,
    issued: Arc<AtomicUsize>,
    queued: Arc<Mutex<VecDeque<String>>>,
}

impl FakeAc {
    pub async fn start() -> Self {
        let key = Arc::new(TestKey::generate("k1"));
        let issued = Arc::new(AtomicUsize::new(0));
        let queued = Arc::new(Mutex::new(VecDeque::<String>::new()));
        let jwks = serde_json::json!({ "keys": [key.jwk()] });
        let app = axum::Router::new()
            .route(
                "/.well-known/jwks.json",
                axum::routing::get(move || async move { axum::Json(jwks) }),
            )
            .route(
                "/api/v1/auth/service/token",
                axum::routing::post({
                    let (key, issued, queued) = (key.clone(), issued.clone(), queued.clone());
                    move || async move {
                        issued.fetch_add(1, Ordering::SeqCst);
                        let next = queued.lock().unwrap().pop_front();
                        let token = next.unwrap_or_else(|| key.sign(&mc_claims()));
                        axum::Json(serde_json::json!({
                            "access_token": token, "token_type": "Bearer",
                            "expires_in": 3600, "scope": scope::INTERNAL_GC,
                        }))
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            url: format!("http://{addr}"),
            key,
            issued,
            queued,
        }
    }

    /// How many tokens the endpoint has issued.
    pub fn issued(&self) -> usize {
        self.issued.load(Ordering::SeqCst)
    }

    /// The next token the endpoint hands out, instead of a good one.
    pub fn queue_token(&self, token: String) {
        self.queued.lock().unwrap().push_back(token);
    }

    pub fn verifier(&self) -> JwksVerifier {
        JwksVerifier::new(VerifierConfig::new(&self.url, ISSUER)).unwrap()
    }

    pub fn token_client(&self) -> Arc<ServiceTokenClient> {
        token_client(&self.url)
    }
}

pub fn token_client(ac_url: &str) -> Arc<ServiceTokenClient> {
    Arc::new(
        ServiceTokenClient::new(
            ac_url,
            MC_CLIENT_ID,
            SecretString::from("convene-mc-test-secret"),
            None,
        )
        .unwrap(),
    )
}

/// A base URL where nothing listens any more.
pub async fn closed_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

/// `Heartbeat` with this many active meetings never answers.
pub const HANG: u32 = 999_999;

/// `MeetingEmpty` for this meeting code panics.
pub const PANIC: &str = "panic";

/// What the test GC saw.
#[derive(Clone, Default)]
pub struct Recorder {
    callers: Arc<Mutex<Vec<ServiceCaller>>>,
    metadata: Arc<Mutex<Vec<tonic::metadata::MetadataMap>>>,
    trace_ids: Arc<Mutex<Vec<opentelemetry::trace::TraceId>>>,
    requests: Arc<AtomicUsize>,
}

impl Recorder {
    /// The callers methods saw, in order.
    pub fn callers(&self) -> Vec<ServiceCaller> {
        self.callers.lock().unwrap().clone()
    }

    /// The metadata of the last call a method saw.
    pub fn last_metadata(&self) -> tonic::metadata::MetadataMap {
        self.metadata.lock().unwrap().last().cloned().unwrap()
    }

    /// The trace id current in the last `Heartbeat`.
    pub fn last_trace_id(&self) -> opentelemetry::trace::TraceId {
        *self.trace_ids.lock().unwrap().last().unwrap()
    }

    /// Requests that reached the server at all, before any authentication.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    fn record<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let caller = ServiceCaller::from_request(request)?.clone();
        self.callers.lock().unwrap().push(caller);
        self.metadata
            .lock()
            .unwrap()
            .push(request.metadata().clone());
        Ok(())
    }
}

/// `GlobalControllerService` for tests: `Heartbeat` answers OK (or hangs, see [`HANG`]);
/// `RegisterMeetingController` fails with the [`ApiError`] its request describes
/// (`controller_id` the code, `websocket_url` the message, `capacity` the retry-after).
#[derive(Clone)]
pub struct TestGc {
    pub recorder: Recorder,
}

#[tonic::async_trait]
impl GlobalControllerService for TestGc {
    async fn register_meeting_controller(
        &self,
        request: Request<RegisterMeetingControllerRequest>,
    ) -> Result<Response<RegisterMeetingControllerResponse>, Status> {
        self.recorder.record(&request)?;
        let request = request.into_inner();
        let Some(code) = ErrorCode::parse(&request.controller_id) else {
            return Ok(Response::new(RegisterMeetingControllerResponse {
                heartbeat_interval_seconds: 10,
            }));
        };
        let mut error = ApiError::new(code, request.websocket_url);
        error.retry_after_secs = (request.capacity > 0).then_some(u64::from(request.capacity));
        Err(error.into())
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;

        self.recorder.record(&request)?;
        let trace_id = tracing::Span::current()
            .context()
            .span()
            .span_context()
            .trace_id();
        self.recorder.trace_ids.lock().unwrap().push(trace_id);
        if request.get_ref().active_meetings == HANG {
            std::future::pending::<()>().await;
        }
        Ok(Response::new(HeartbeatResponse {}))
    }

    async fn participant_left(
        &self,
        request: Request<ParticipantLeftRequest>,
    ) -> Result<Response<ParticipantLeftResponse>, Status> {
        self.recorder.record(&request)?;
        Ok(Response::new(ParticipantLeftResponse {}))
    }

    async fn meeting_empty(
        &self,
        request: Request<MeetingEmptyRequest>,
    ) -> Result<Response<MeetingEmptyResponse>, Status> {
        self.recorder.record(&request)?;
        if request.get_ref().meeting_code == PANIC {
            panic!("a bug in a gRPC method");
        }
        Ok(Response::new(MeetingEmptyResponse {}))
    }
}

/// How the test server applies [`ServiceAuthLayer`].
#[derive(Clone, Copy)]
pub enum Wiring {
    /// Around the generated `GlobalControllerServiceServer` only, inside the stack of
    /// `common::grpc::layers` (metrics prefix `test`), as the services serve it.
    PerService,
    /// As `PerService`, with this metrics prefix: a test that reads the metrics gives its
    /// server a prefix of its own, so that other tests of the process do not add to them.
    PerServiceAs(&'static str),
    /// Around the whole server, with `Server::builder().layer(..)`.
    WholeServer,
}

pub struct GcServer {
    pub addr: SocketAddr,
    pub recorder: Recorder,
}

impl GcServer {
    /// GC's server as DESIGN §5 has it: MC's service type with the `internal:gc` scope.
    pub async fn start(verifier: JwksVerifier, wiring: Wiring) -> Self {
        let recorder = Recorder::default();
        let gc = GlobalControllerServiceServer::new(TestGc {
            recorder: recorder.clone(),
        });
        let auth = ServiceAuthLayer::new(
            verifier,
            service_type::MEETING_CONTROLLER,
            scope::INTERNAL_GC,
        );
        let count = tower::util::MapRequestLayer::new({
            let requests = recorder.requests.clone();
            move |request: http::Request<tonic::body::Body>| {
                requests.fetch_add(1, Ordering::SeqCst);
                request
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let mut builder = tonic::transport::Server::builder().layer(count);
        match wiring {
            Wiring::PerService | Wiring::PerServiceAs(_) => {
                let prefix = match wiring {
                    Wiring::PerServiceAs(prefix) => prefix,
                    _ => "test",
                };
                let routes = tonic::service::Routes::new(auth.layer(gc)).into_axum_router();
                let stack = common::grpc::layers::apply(routes, prefix);
                let router = builder.add_routes(tonic::service::Routes::from(stack));
                tokio::spawn(async move { router.serve_with_incoming(incoming).await.unwrap() });
            }
            Wiring::WholeServer => {
                let router = builder.layer(auth).add_service(gc);
                tokio::spawn(async move { router.serve_with_incoming(incoming).await.unwrap() });
            }
        }
        Self { addr, recorder }
    }

    pub fn channel(&self) -> Channel {
        tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .connect_lazy()
    }

    /// A client with no token layer, for requests that set their own metadata.
    pub fn raw_client(&self) -> GlobalControllerServiceClient<Channel> {
        GlobalControllerServiceClient::new(self.channel())
    }

    /// A client as MC would build it.
    pub fn client(
        &self,
        layer: ServiceTokenLayer,
    ) -> GlobalControllerServiceClient<WithServiceToken<Channel>> {
        GlobalControllerServiceClient::new(layer.layer(self.channel()))
    }
}

pub fn heartbeat() -> HeartbeatRequest {
    HeartbeatRequest {
        controller_id: MC_CLIENT_ID.into(),
        active_meetings: 1,
        connected_participants: 2,
    }
}

/// A heartbeat carrying `authorization` values exactly as given.
pub fn heartbeat_with(authorization: &[&str]) -> Request<HeartbeatRequest> {
    let mut request = Request::new(heartbeat());
    for value in authorization {
        request
            .metadata_mut()
            .append("authorization", value.parse().unwrap());
    }
    request
}
