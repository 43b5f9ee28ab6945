//! Authenticated internal gRPC: GC and MC call each other with service tokens (DESIGN §5).
//!
//! - [`layers::apply`] wraps a whole gRPC router in the stack every service's gRPC listener
//!   wears: a span per call, call metrics and a panic catch.
//! - [`server::ServiceAuthLayer`] wraps a tonic service (a generated `*Server`, a whole
//!   [`tonic::service::Routes`], or any tower service over `http::Request`) and lets a call
//!   through only with a valid service token of the required `service_type` and scope. The
//!   method finds the caller in the request's extensions ([`server::ServiceCaller`]).
//! - [`client::ServiceTokenLayer`] wraps a [`tonic::transport::Channel`]: every call carries a
//!   fresh token from [`ServiceTokenClient`](crate::service_token::ServiceTokenClient), the
//!   caller's W3C trace context and a deadline; a call whose token the server refused goes once
//!   more with a new token.
//!
//! `UNAUTHENTICATED` means exactly "the server refused the service token, before any method
//! ran": the server layer turns a method's own `UNAUTHENTICATED` into `INTERNAL`, so that the
//! client may send a refused call again without running a method twice.
//!
//! Refusals and failures on both sides are [`ApiError`](crate::error::ApiError)s turned into
//! statuses, so they carry the error-code metadata and convert back with
//! [`ApiError::from_status`](crate::error::ApiError::from_status).
//!
//! | the call | gRPC code | error code |
//! |---|---|---|
//! | no, malformed, expired, forged token; two `authorization` values; a user or meeting token | `UNAUTHENTICATED` | `UNAUTHORIZED` |
//! | a valid service token of another `service_type`, or without the scope | `PERMISSION_DENIED` | `FORBIDDEN` |
//! | the server cannot get AC's keys; the client cannot get a token | `UNAVAILABLE` | `SERVICE_UNAVAILABLE` |
//! | no answer within the deadline | `DEADLINE_EXCEEDED` (or the server's `CANCELLED`) | `SERVICE_UNAVAILABLE` |
//!
//! Wiring GC's server (MC calls it with its `internal:gc` credential):
//!
//! ```no_run
//! use common::grpc::server::{ServiceAuthLayer, ServiceCaller};
//! use common::jwks::JwksVerifier;
//! use common::jwt::{scope, service_type};
//! use common::proto::internal::v1::global_controller_service_server::{
//!     GlobalControllerService, GlobalControllerServiceServer,
//! };
//! use tower::Layer;
//!
//! fn routes(verifier: JwksVerifier, gc: impl GlobalControllerService) -> tonic::service::Routes {
//!     let auth = ServiceAuthLayer::new(verifier, service_type::MEETING_CONTROLLER, scope::INTERNAL_GC);
//!     // Wrapping the one service keeps others (a health service) open; the result is served
//!     // by `Routes` through any accept loop, or by `Server::builder().add_routes(..)`.
//!     // `Server::builder().layer(auth)` would guard every service of the server instead.
//!     tonic::service::Routes::new(auth.layer(GlobalControllerServiceServer::new(gc)))
//! }
//!
//! // What a service serves on its gRPC listener: those routes inside the common stack.
//! fn router(routes: tonic::service::Routes) -> axum::Router {
//!     common::grpc::layers::apply(routes.into_axum_router(), "gc")
//! }
//!
//! // In a method: who called, as the token says.
//! fn check<T>(request: &tonic::Request<T>, controller_id: &str) -> Result<(), tonic::Status> {
//!     let caller = ServiceCaller::from_request(request)?;
//!     if caller.client_id != controller_id {
//!         return Err(common::error::ApiError::forbidden("not your controller id").into());
//!     }
//!     Ok(())
//! }
//! ```
//!
//! Wiring GC's client of MC (GC's credential holds `internal:mc`):
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use common::error::ApiError;
//! use common::grpc::client::ServiceTokenLayer;
//! use common::proto::internal::v1::GetRoomStateRequest;
//! use common::proto::internal::v1::meeting_controller_service_client::MeetingControllerServiceClient;
//! use common::service_token::ServiceTokenClient;
//! use tower::Layer;
//!
//! async fn room_size(tokens: Arc<ServiceTokenClient>) -> Result<u32, ApiError> {
//!     let channel = tonic::transport::Endpoint::from_static("http://mc-0:50052").connect_lazy();
//!     let mut mc = MeetingControllerServiceClient::new(ServiceTokenLayer::new(tokens).layer(channel));
//!     let request = GetRoomStateRequest { meeting_code: "Ab3dE5fG7hJ9".into() };
//!     // MC's MEETING_FULL comes back as MEETING_FULL, a timeout as SERVICE_UNAVAILABLE.
//!     let state = mc.get_room_state(request).await.map_err(ApiError::from)?;
//!     Ok(state.into_inner().participant_count)
//! }
//! ```

pub mod client;
pub mod layers;
pub mod server;

use crate::error::GRPC_ERROR_CODE_METADATA;
use crate::proto::internal::v1::JoinRefusal;

/// A failed call's status, to be carried inside a batched call's response ([`JoinRefusal`]):
/// its gRPC code, Convene's error code (from [`GRPC_ERROR_CODE_METADATA`]) and its message.
pub fn refusal(status: &tonic::Status) -> JoinRefusal {
    JoinRefusal {
        grpc_code: status.code() as i32,
        error_code: status
            .metadata()
            .get(GRPC_ERROR_CODE_METADATA)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        message: status.message().to_owned(),
    }
}

/// The status a [`JoinRefusal`] carries, as the failed call would have returned it: read with
/// [`ApiError::from_status`](crate::error::ApiError::from_status), it gives the same error. An
/// error code that is not a valid metadata value is left out (the gRPC code then decides).
pub fn refused(refusal: JoinRefusal) -> tonic::Status {
    let mut metadata = tonic::metadata::MetadataMap::new();
    if let Ok(value) = refusal.error_code.parse() {
        metadata.insert(GRPC_ERROR_CODE_METADATA, value);
    }
    tonic::Status::with_metadata(
        tonic::Code::from_i32(refusal.grpc_code),
        refusal.message,
        metadata,
    )
}

/// Whether the response is a trailers-only `UNAUTHENTICATED`: how [`server::ServiceAuthLayer`]
/// refuses a service token (the methods behind it never answer that code).
fn is_unauthenticated<B>(response: &http::Response<B>) -> bool {
    response.headers().get("grpc-status").is_some_and(|code| {
        tonic::Code::from_bytes(code.as_bytes()) == tonic::Code::Unauthenticated
    })
}

/// The OpenTelemetry name of a call's span, `package.Service/Method` as the gRPC semantic
/// conventions have it, and the service and method apart.
fn rpc_names(path: &str) -> (&str, &str, &str) {
    let name = path.strip_prefix('/').unwrap_or(path);
    let (service, method) = name.split_once('/').unwrap_or((name, ""));
    (name, service, method)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ApiError, ErrorCode};

    #[test]
    fn a_refusal_reads_as_the_error_it_carries() {
        for error in [
            ApiError::new(ErrorCode::MeetingFull, "the meeting is full"),
            ApiError::new(ErrorCode::RoomNotAssigned, "not here"),
            ApiError::bad_request("malformed user id"),
            ApiError::unavailable(),
        ] {
            let status = tonic::Status::from(error.clone());
            let back = ApiError::from_status(&refused(refusal(&status)));
            assert_eq!(back.code, error.code);
            assert_eq!(back.message, ApiError::from_status(&status).message);
        }
    }

    #[test]
    fn a_refusal_with_a_bad_or_foreign_code_falls_back_to_its_grpc_code() {
        for (grpc_code, error_code) in [
            (tonic::Code::ResourceExhausted as i32, "bad\nvalue"),
            (tonic::Code::ResourceExhausted as i32, "NOT_A_CODE"),
            (tonic::Code::NotFound as i32, "MEETING_FULL"),
            (12345, ""),
        ] {
            let status = refused(JoinRefusal {
                grpc_code,
                error_code: error_code.to_owned(),
                message: "x".to_owned(),
            });
            let error = ApiError::from_status(&status);
            assert_eq!(error.code, ErrorCode::from_grpc_code(status.code()));
        }
    }
}
