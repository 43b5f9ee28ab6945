//! MC's place in GC's registry: it registers at start-up (retrying until GC answers), then
//! heartbeats at the interval GC gives, registering again whenever GC does not know it (GC
//! restarted its registry, or a heartbeat was missed for long). GC gives no new meetings to a
//! controller whose heartbeat is late, and moves its meetings on their next join.

use std::time::Duration;

use common::backoff::Backoff;
use common::error::{ApiError, ErrorCode};
use common::grpc::client::{ServiceTokenLayer, WithServiceToken};
use common::proto::internal::v1::global_controller_service_client::GlobalControllerServiceClient;
use common::proto::internal::v1::{HeartbeatRequest, RegisterMeetingControllerRequest};
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};
use tower::Layer;

use crate::held::HeldRooms;
use crate::signaling::hub::Hub;

pub type GcClient = GlobalControllerServiceClient<WithServiceToken<Channel>>;

/// Pause between failed registrations, doubling up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Deadline of one call to GC.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A client of GC's gRPC API at `url`, with MC's service tokens.
pub fn gc_client(url: &str, layer: ServiceTokenLayer) -> Result<GcClient, tonic::transport::Error> {
    let endpoint = Endpoint::from_shared(url.to_owned())?
        .connect_timeout(CALL_TIMEOUT)
        .timeout(CALL_TIMEOUT);
    Ok(GlobalControllerServiceClient::new(
        layer
            .with_default_timeout(CALL_TIMEOUT)
            .layer(endpoint.connect_lazy()),
    ))
}

/// What a heartbeat tells GC of this controller's load, read afresh for every heartbeat.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Load {
    /// Rooms held ([`HeldRooms::count`]).
    pub active_meetings: u32,
    /// Signaling sockets open (the hub's count).
    pub connected_participants: u32,
}

impl Load {
    /// The load of the rooms `held` and the sockets of `hub`, now.
    pub fn of(held: &HeldRooms, hub: &Hub) -> Load {
        Load {
            active_meetings: held.count(),
            connected_participants: u32::try_from(hub.counts().0).unwrap_or(u32::MAX),
        }
    }
}

/// Registers and heartbeats until `stop`; each heartbeat carries what `load` says then.
pub async fn run(
    mut gc: GcClient,
    registration: RegisterMeetingControllerRequest,
    load: impl Fn() -> Load,
    stop: CancellationToken,
) {
    loop {
        let Some(interval) = register(&mut gc, &registration, &stop).await else {
            return;
        };
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
            let Load {
                active_meetings,
                connected_participants,
            } = load();
            let beat = HeartbeatRequest {
                controller_id: registration.controller_id.clone(),
                active_meetings,
                connected_participants,
            };
            match gc.heartbeat(beat).await {
                Ok(_) => {}
                Err(status) if ApiError::from(status.clone()).code == ErrorCode::NotFound => {
                    tracing::warn!("GC does not know this controller any more; registering again");
                    break;
                }
                Err(status) => tracing::warn!(%status, "heartbeat failed"),
            }
        }
    }
}

/// Registers, retrying with backoff; the heartbeat interval GC asks for, or `None` on stop.
async fn register(
    gc: &mut GcClient,
    registration: &RegisterMeetingControllerRequest,
    stop: &CancellationToken,
) -> Option<Duration> {
    let mut backoff = Backoff::new(FIRST_BACKOFF, MAX_BACKOFF);
    loop {
        let wait = backoff.next_wait();
        match gc.register_meeting_controller(registration.clone()).await {
            Ok(response) => {
                let secs = response
                    .into_inner()
                    .heartbeat_interval_seconds
                    .clamp(1, 300);
                tracing::info!(
                    controller_id = %registration.controller_id,
                    heartbeat_interval_secs = secs,
                    "registered with GC"
                );
                return Some(Duration::from_secs(u64::from(secs)));
            }
            Err(status) => {
                tracing::warn!(%status, retry_in_ms = wait.as_millis() as u64, "registration with GC failed");
            }
        }
        tokio::select! {
            () = stop.cancelled() => return None,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use tokio::task::JoinHandle;
    use tonic::Status;

    use super::*;
    use crate::test_gc::{Call, HEARTBEAT_INTERVAL, Method, TestGc};

    fn registration() -> RegisterMeetingControllerRequest {
        RegisterMeetingControllerRequest {
            controller_id: "test-mc".into(),
            websocket_url: "ws://127.0.0.1:1".into(),
            grpc_address: "http://127.0.0.1:2".into(),
            capacity: 7,
        }
    }

    fn heartbeat(active_meetings: u32, connected_participants: u32) -> Call {
        Call::Heartbeat(HeartbeatRequest {
            controller_id: "test-mc".into(),
            active_meetings,
            connected_participants,
        })
    }

    fn unavailable() -> Status {
        Status::unavailable("GC is restarting")
    }

    /// The registration job against `gc`: its stop token and its task.
    fn start(
        gc: &TestGc,
        load: impl Fn() -> Load + Send + 'static,
    ) -> (CancellationToken, JoinHandle<()>) {
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(gc.client(), registration(), load, stop.clone()));
        (stop, task)
    }

    /// Cancels the job and checks that it returns within `bound`.
    async fn stop_within(stop: CancellationToken, task: JoinHandle<()>, bound: Duration) {
        stop.cancel();
        tokio::time::timeout(bound, task)
            .await
            .expect("the job did not return after its stop")
            .unwrap();
    }

    #[tokio::test]
    async fn a_refused_registration_is_sent_again_after_growing_waits_until_gc_takes_it() {
        let mut gc = TestGc::start().await;
        gc.fail_next(
            Method::Register,
            [unavailable(), unavailable(), unavailable()],
        );
        let (stop, task) = start(&gc, Load::default);

        let mut attempts = Vec::new();
        for _ in 0..4 {
            let seen = gc.next().await;
            assert_eq!(
                seen.call,
                Call::Register(registration()),
                "the same request"
            );
            attempts.push(seen.at);
        }
        let first_beat = gc.next().await;

        // The steps double from 200 ms; each wait is drawn between half and all of its step,
        // and none is anywhere near the 10 s cap.
        let steps = [200, 400, 800].map(Duration::from_millis);
        for (pair, step) in attempts.windows(2).zip(steps) {
            let waited = pair[1] - pair[0];
            assert!(
                waited >= step / 2,
                "waited {waited:?} after a step of {step:?}"
            );
            assert!(
                waited < step + Duration::from_millis(1500),
                "waited {waited:?} after a step of {step:?}"
            );
        }
        assert_eq!(first_beat.call, heartbeat(0, 0));
        assert!(first_beat.at - attempts[3] >= HEARTBEAT_INTERVAL);
        stop_within(stop, task, Duration::from_secs(1)).await;
    }

    #[tokio::test]
    async fn each_heartbeat_carries_the_load_of_its_moment_at_the_interval_gc_gave() {
        let mut gc = TestGc::start().await;
        let sockets = Arc::new(AtomicU32::new(3));
        let load = {
            let sockets = Arc::clone(&sockets);
            move || Load {
                active_meetings: 2,
                connected_participants: sockets.load(Ordering::SeqCst),
            }
        };
        let (stop, task) = start(&gc, load);

        assert_eq!(gc.next().await.call, Call::Register(registration()));
        let first = gc.next().await;
        sockets.store(5, Ordering::SeqCst);
        let second = gc.next().await;

        assert_eq!(first.call, heartbeat(2, 3));
        assert_eq!(second.call, heartbeat(2, 5));
        assert!(second.at - first.at >= HEARTBEAT_INTERVAL);
        stop_within(stop, task, Duration::from_secs(1)).await;
    }

    /// GC forgets a controller when its registry restarts or its heartbeat was late for long:
    /// it answers NOT_FOUND, and only that makes MC register again. A heartbeat that merely
    /// failed is followed by the next heartbeat.
    #[tokio::test]
    async fn only_a_heartbeat_gc_does_not_know_makes_it_register_again() {
        let mut gc = TestGc::start().await;
        gc.fail_next(
            Method::Heartbeat,
            [unavailable(), Status::from(ApiError::not_found())],
        );
        let (stop, task) = start(&gc, Load::default);

        let mut calls = Vec::new();
        for _ in 0..5 {
            calls.push(gc.next().await.call);
        }

        assert_eq!(
            calls,
            [
                Call::Register(registration()),
                heartbeat(0, 0),
                heartbeat(0, 0),
                Call::Register(registration()),
                heartbeat(0, 0),
            ]
        );
        stop_within(stop, task, Duration::from_secs(1)).await;
    }

    #[tokio::test]
    async fn a_stop_ends_the_job_during_a_wait_between_registrations() {
        let mut gc = TestGc::start().await;
        gc.fail_always(Method::Register, unavailable());
        let (stop, task) = start(&gc, Load::default);
        for _ in 0..4 {
            gc.next().await;
        }

        // The wait after a fourth refusal is 800 ms at least: the stop must cut it short.
        stop_within(stop, task, Duration::from_millis(500)).await;
        assert_eq!(gc.received(), [], "no registration after the stop");
    }

    #[tokio::test]
    async fn a_stop_ends_the_job_between_heartbeats() {
        let mut gc = TestGc::start().await;
        let (stop, task) = start(&gc, Load::default);
        assert_eq!(gc.next().await.call, Call::Register(registration()));
        assert_eq!(gc.next().await.call, heartbeat(0, 0));

        // The next heartbeat is a second away: the stop must not wait for it.
        stop_within(stop, task, Duration::from_millis(500)).await;
        assert_eq!(gc.received(), [], "no heartbeat after the stop");
    }
}
