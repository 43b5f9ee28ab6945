//! A GC for MC's unit tests: a real gRPC server of `GlobalControllerService` on an ephemeral
//! port of this process, served by the same shell as MC's own listeners, with AC's
//! client-credentials route beside it (so MC's clients get their service tokens as they do in
//! production). It answers as a test scripts it (failures first, then success) and hands the
//! test every call it receives, in order, with the moment it arrived, so a test waits for calls
//! instead of guessing how long they take.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use common::grpc::client::ServiceTokenLayer;
use common::proto::internal::v1::global_controller_service_server::{
    GlobalControllerService, GlobalControllerServiceServer,
};
use common::proto::internal::v1::{
    HeartbeatRequest, HeartbeatResponse, MeetingEmptyRequest, MeetingEmptyResponse,
    ParticipantLeftRequest, ParticipantLeftResponse, RegisterMeetingControllerRequest,
    RegisterMeetingControllerResponse,
};
use common::service_token::ServiceTokenClient;
use common::shell::{ListenerLimits, Protocol, Shell, ShutdownTimings};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::{Request, Response, Status};

use crate::registration::GcClient;

/// The heartbeat interval the test GC gives at registration (the least MC accepts).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

/// A method of the test GC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Register,
    Heartbeat,
    ParticipantLeft,
    MeetingEmpty,
}

/// A call the test GC received.
#[derive(Clone, Debug, PartialEq)]
pub enum Call {
    Register(RegisterMeetingControllerRequest),
    Heartbeat(HeartbeatRequest),
    ParticipantLeft(ParticipantLeftRequest),
    MeetingEmpty(MeetingEmptyRequest),
}

/// A call and when it arrived.
#[derive(Debug)]
pub struct Seen {
    pub at: Instant,
    pub call: Call,
}

/// What each method answers next: the queued failures first, then `always` if set, else OK.
#[derive(Default)]
struct Script {
    queued: HashMap<Method, VecDeque<Status>>,
    always: HashMap<Method, Status>,
}

#[derive(Clone)]
struct Gc {
    script: Arc<Mutex<Script>>,
    calls: mpsc::UnboundedSender<Seen>,
}

impl Gc {
    fn answer(&self, method: Method, call: Call) -> Result<(), Status> {
        let _ = self.calls.send(Seen {
            at: Instant::now(),
            call,
        });
        let mut script = self.script.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(status) = script.queued.get_mut(&method).and_then(VecDeque::pop_front) {
            return Err(status);
        }
        match script.always.get(&method) {
            Some(status) => Err(status.clone()),
            None => Ok(()),
        }
    }
}

#[tonic::async_trait]
impl GlobalControllerService for Gc {
    async fn register_meeting_controller(
        &self,
        request: Request<RegisterMeetingControllerRequest>,
    ) -> Result<Response<RegisterMeetingControllerResponse>, Status> {
        self.answer(Method::Register, Call::Register(request.into_inner()))?;
        Ok(Response::new(RegisterMeetingControllerResponse {
            heartbeat_interval_seconds: HEARTBEAT_INTERVAL.as_secs() as u32,
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        self.answer(Method::Heartbeat, Call::Heartbeat(request.into_inner()))?;
        Ok(Response::new(HeartbeatResponse {}))
    }

    async fn participant_left(
        &self,
        request: Request<ParticipantLeftRequest>,
    ) -> Result<Response<ParticipantLeftResponse>, Status> {
        self.answer(
            Method::ParticipantLeft,
            Call::ParticipantLeft(request.into_inner()),
        )?;
        Ok(Response::new(ParticipantLeftResponse {}))
    }

    async fn meeting_empty(
        &self,
        request: Request<MeetingEmptyRequest>,
    ) -> Result<Response<MeetingEmptyResponse>, Status> {
        self.answer(
            Method::MeetingEmpty,
            Call::MeetingEmpty(request.into_inner()),
        )?;
        Ok(Response::new(MeetingEmptyResponse {}))
    }
}

/// The running test GC; it stops with the test's runtime.
pub struct TestGc {
    url: String,
    script: Arc<Mutex<Script>>,
    calls: mpsc::UnboundedReceiver<Seen>,
}

impl TestGc {
    pub async fn start() -> TestGc {
        let (sender, calls) = mpsc::unbounded_channel();
        let script = Arc::new(Mutex::new(Script::default()));
        let gc = Gc {
            script: Arc::clone(&script),
            calls: sender,
        };
        let router = tonic::service::Routes::new(GlobalControllerServiceServer::new(gc))
            .into_axum_router()
            .route(
                "/api/v1/auth/service/token",
                axum::routing::post(|| async {
                    axum::Json(serde_json::json!({
                        "access_token": "test-mc-token", "token_type": "Bearer",
                        "expires_in": 3600,
                    }))
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mut shell = Shell::new("test_gc", ShutdownTimings::default());
        // HTTP/1 for the token route, HTTP/2 with prior knowledge for gRPC, on one port.
        shell.serve(
            "gc",
            listener,
            router,
            Protocol::Http,
            ListenerLimits::http(),
        );
        tokio::spawn(shell.run(std::future::pending()));
        TestGc { url, script, calls }
    }

    /// MC's client of this GC, built as MC builds it, with service tokens from this GC's
    /// token route.
    pub fn client(&self) -> GcClient {
        let tokens = ServiceTokenClient::new(
            &self.url,
            "test-mc",
            secrecy::SecretString::from("test-mc-secret"),
            None,
        )
        .unwrap();
        crate::registration::gc_client(&self.url, ServiceTokenLayer::new(Arc::new(tokens))).unwrap()
    }

    /// `method` answers these failures to its next calls, in order, before anything else.
    pub fn fail_next(&self, method: Method, failures: impl IntoIterator<Item = Status>) {
        let mut script = self.script.lock().unwrap();
        script.queued.entry(method).or_default().extend(failures);
    }

    /// `method` answers `failure` to every call after the queued ones.
    pub fn fail_always(&self, method: Method, failure: Status) {
        self.script.lock().unwrap().always.insert(method, failure);
    }

    /// The next call received; fails the test after 10 s without one.
    pub async fn next(&mut self) -> Seen {
        tokio::time::timeout(Duration::from_secs(10), self.calls.recv())
            .await
            .expect("the test GC received no call for 10 s")
            .expect("the test GC stopped")
    }

    /// The calls received so far and not yet taken.
    pub fn received(&mut self) -> Vec<Call> {
        let mut calls = Vec::new();
        while let Ok(seen) = self.calls.try_recv() {
            calls.push(seen.call);
        }
        calls
    }
}
