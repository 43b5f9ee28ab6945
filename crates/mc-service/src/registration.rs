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

/// Registers and heartbeats until `stop`.
pub async fn run(
    mut gc: GcClient,
    registration: RegisterMeetingControllerRequest,
    held: HeldRooms,
    hub: std::sync::Arc<Hub>,
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
            let beat = HeartbeatRequest {
                controller_id: registration.controller_id.clone(),
                active_meetings: held.count(),
                connected_participants: u32::try_from(hub.counts().0).unwrap_or(u32::MAX),
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
