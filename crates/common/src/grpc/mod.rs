//! Authenticated internal gRPC: GC and MC call each other with service tokens (DESIGN §5).
//!
//! - [`server::ServiceAuthLayer`] wraps a tonic service (a generated `*Server`, a whole
//!   [`tonic::service::Routes`], or any tower service over `http::Request`) and lets a call
//!   through only with a valid service token of the required `service_type` and scope. The
//!   method finds the caller in the request's extensions ([`server::ServiceCaller`]).
//!
//! Refusals and failures on both sides are [`ApiError`](crate::error::ApiError)s turned into
//! statuses, so they carry the error-code metadata and convert back with
//! [`ApiError::from_status`](crate::error::ApiError::from_status).
//!
//! | the call | gRPC code | error code |
//! |---|---|---|
//! | no, malformed, expired, forged token; two `authorization` values; a user or meeting token | `UNAUTHENTICATED` | `UNAUTHORIZED` |
//! | a valid service token of another `service_type`, or without the scope | `PERMISSION_DENIED` | `FORBIDDEN` |
//! | the server cannot get AC's keys | `UNAVAILABLE` | `SERVICE_UNAVAILABLE` |
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

pub mod server;

/// The OpenTelemetry name of a call's span, `package.Service/Method` as the gRPC semantic
/// conventions have it, and the service and method apart.
fn rpc_names(path: &str) -> (&str, &str, &str) {
    let name = path.strip_prefix('/').unwrap_or(path);
    let (service, method) = name.split_once('/').unwrap_or((name, ""));
    (name, service, method)
}
