//! GC's gRPC surface: `GlobalControllerService`, called by meeting controllers. Thin
//! adapters over `use_cases::controllers`, behind the service-token layer of `common` (caller
//! of type `meeting-controller` with scope `internal:gc`); errors go back as statuses carrying
//! their `common` error code.

use axum::Router;
use chrono::{DateTime, Utc};
use common::error::{ApiError, ServiceError};
use common::grpc::server::{ServiceAuthLayer, ServiceCaller};
use common::jwks::JwksVerifier;
use common::jwt::{scope, service_type};
use common::proto::internal::v1::global_controller_service_server::{
    GlobalControllerService, GlobalControllerServiceServer,
};
use common::proto::internal::v1::{
    HeartbeatRequest, HeartbeatResponse, MeetingEmptyRequest, MeetingEmptyResponse,
    ParticipantLeftRequest, ParticipantLeftResponse, RegisterMeetingControllerRequest,
    RegisterMeetingControllerResponse,
};
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use tower::Layer;

use crate::error::Error;
use crate::use_cases::controllers::{self, Registration};

/// The router of GC's gRPC listener.
pub fn router(pool: PgPool, verifier: JwksVerifier, heartbeat_interval_secs: u32) -> Router {
    let auth = ServiceAuthLayer::new(
        verifier,
        service_type::MEETING_CONTROLLER,
        scope::INTERNAL_GC,
    );
    let service = GlobalControllerServiceServer::new(GlobalController {
        pool,
        heartbeat_interval_secs,
    });
    tonic::service::Routes::new(auth.layer(service)).into_axum_router()
}

struct GlobalController {
    pool: PgPool,
    heartbeat_interval_secs: u32,
}

fn status(error: Error) -> Status {
    let api: ApiError = error.api_error();
    // A dependency away (503) is a warning, as on the HTTP side; anything else is an error.
    if api.code == common::error::ErrorCode::ServiceUnavailable {
        tracing::warn!(error = %error, cause = %common::error::cause_chain(&error), "gRPC call failed");
    } else if api.code.http_status().is_server_error() {
        tracing::error!(error = %error, cause = %common::error::cause_chain(&error), "gRPC call failed");
    }
    api.into()
}

fn time(t: Option<prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    t.as_ref().and_then(crate::clients::mc::timestamp)
}

#[tonic::async_trait]
impl GlobalControllerService for GlobalController {
    async fn register_meeting_controller(
        &self,
        request: Request<RegisterMeetingControllerRequest>,
    ) -> Result<Response<RegisterMeetingControllerResponse>, Status> {
        let caller = ServiceCaller::from_request(&request)?.client_id.clone();
        let r = request.into_inner();
        controllers::register(
            &self.pool,
            &caller,
            &Registration {
                controller_id: &r.controller_id,
                websocket_url: &r.websocket_url,
                grpc_address: &r.grpc_address,
                capacity: r.capacity,
            },
        )
        .await
        .map_err(status)?;
        Ok(Response::new(RegisterMeetingControllerResponse {
            heartbeat_interval_seconds: self.heartbeat_interval_secs,
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let caller = ServiceCaller::from_request(&request)?.client_id.clone();
        let r = request.into_inner();
        controllers::heartbeat(&self.pool, &caller, &r.controller_id, r.active_meetings)
            .await
            .map_err(status)?;
        Ok(Response::new(HeartbeatResponse {}))
    }

    async fn participant_left(
        &self,
        request: Request<ParticipantLeftRequest>,
    ) -> Result<Response<ParticipantLeftResponse>, Status> {
        let caller = ServiceCaller::from_request(&request)?.client_id.clone();
        let r = request.into_inner();
        controllers::participant_left(
            &self.pool,
            &caller,
            &controllers::LeftReport {
                controller_id: &r.controller_id,
                code: &r.meeting_code,
                user_id: &r.user_id,
                reason: &r.reason,
                left_at: time(r.left_at),
                joined_at: time(r.joined_at),
                role: crate::clients::mc::role_from_proto(r.role),
                seat: r.seat,
                last_seat: r.last_seat,
                host_change: r
                    .host_change
                    .as_ref()
                    .map(crate::clients::mc::host_change)
                    .transpose()
                    .map_err(status)?,
            },
        )
        .await
        .map_err(status)?;
        Ok(Response::new(ParticipantLeftResponse {}))
    }

    async fn meeting_empty(
        &self,
        request: Request<MeetingEmptyRequest>,
    ) -> Result<Response<MeetingEmptyResponse>, Status> {
        let caller = ServiceCaller::from_request(&request)?.client_id.clone();
        let r = request.into_inner();
        controllers::meeting_empty(
            &self.pool,
            &caller,
            &r.controller_id,
            &r.meeting_code,
            time(r.empty_since),
            r.last_seat,
        )
        .await
        .map_err(status)?;
        Ok(Response::new(MeetingEmptyResponse {}))
    }
}
