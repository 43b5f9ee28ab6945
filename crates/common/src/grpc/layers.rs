//! The middleware stack every Convene gRPC router wears: the gRPC counterpart of
//! [`crate::http::layers`], so that a call is traced, counted and kept from taking the
//! server down the way an HTTP request is.
//!
//! From the outside in, a call meets:
//! 1. a span per call, `grpc.server`, named `package.Service/Method` as the gRPC semantic
//!    conventions have it and joined to the caller's W3C trace; the service-token check records
//!    the authenticated `client_id` on it, and the call's end its status code;
//! 2. call metrics by method and status code, `{service}_grpc_requests_total` and
//!    `{service}_grpc_request_duration_seconds`, recorded when the call ends (see [`apply`]);
//! 3. a panic catch: a panicking method answers `INTERNAL` with the error-code metadata, and
//!    the connection and the server go on serving;
//!
//! then the service-token check ([`super::server::ServiceAuthLayer`], which each service puts
//! around its generated server) and the method.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::middleware::{Next, from_fn};
use axum::response::Response;
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tonic::Code;
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;
use tracing::field::Empty;

use crate::error::ApiError;

/// The `method` label of a call that reached no method: one the service-token check refused
/// (before it is known whether the method exists) or one naming no method (`UNIMPLEMENTED`).
/// Any client can send any path, and each would otherwise become a new series.
pub const UNMATCHED: &str = "unmatched";

/// Marks a response the service-token check gave before any method ran
/// ([`super::server::ServiceAuth`] puts it in the response's extensions).
#[derive(Clone, Copy, Debug)]
pub struct RefusedBeforeAnyMethod;

/// Wraps a service's gRPC router (its generated servers, each behind the service-token layer,
/// as `tonic::service::Routes::into_axum_router` gives them) in the stack. `service` prefixes
/// the metrics (`gc` gives `gc_grpc_requests_total`).
///
/// The metrics are labelled `method` (`package.Service/Method`, or [`UNMATCHED`]) and `code`
/// (the gRPC status code's name, `OK`, `INTERNAL`, …): the code the client reads, from the
/// response head when the call failed before answering (every refusal and error of a unary
/// method), else from the trailers that end the answer. A call whose answer ends without
/// trailers counts as `UNKNOWN`, and one whose client went away before the end as
/// `CANCELLED`. The duration runs from the request to that end.
pub fn apply(router: Router, service: &'static str) -> Router {
    router
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(from_fn(move |req, next| record_call(service, req, next)))
        .layer(from_fn(trace_call))
}

/// One span per call, joined to the caller's trace when it sent W3C trace context.
async fn trace_call(request: Request, next: Next) -> Response {
    let (name, service, method) = super::rpc_names(request.uri().path());
    let span = tracing::info_span!(
        "grpc.server",
        otel.name = name,
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        client_id = Empty,
        rpc.grpc.status_code = Empty,
    );
    crate::telemetry::adopt_trace_context(&span, request.headers());
    next.run(request).instrument(span).await
}

async fn record_call(service: &'static str, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let refused = response
        .extensions()
        .get::<RefusedBeforeAnyMethod>()
        .is_some();
    let mut call = Call {
        service,
        path,
        refused,
        started,
        span: tracing::Span::current(),
    };
    match header_code(response.headers()) {
        // Trailers-only: the head is the whole answer.
        Some(code) => {
            call.end(code);
            response
        }
        None => response.map(|body| {
            Body::new(EndOfCall {
                body,
                call: Some(call),
            })
        }),
    }
}

/// A call in progress, recorded once when it ends ([`Call::end`]).
struct Call {
    service: &'static str,
    path: String,
    refused: bool,
    started: Instant,
    span: tracing::Span,
}

impl Call {
    fn end(&mut self, code: Code) {
        let method = if self.refused || code == Code::Unimplemented {
            UNMATCHED.to_owned()
        } else {
            self.path.trim_start_matches('/').to_owned()
        };
        self.span.record("rpc.grpc.status_code", code as i32);
        let labels = [("method", method), ("code", code_label(code).to_owned())];
        metrics::counter!(format!("{}_grpc_requests_total", self.service), &labels).increment(1);
        metrics::histogram!(
            format!("{}_grpc_request_duration_seconds", self.service),
            &labels
        )
        .record(self.started.elapsed().as_secs_f64());
    }
}

/// An answer's body that ends its [`Call`]: at the trailers (their `grpc-status`), at an end
/// without trailers (`UNKNOWN`), at an error of the body (`INTERNAL`), or when dropped before
/// any of these (the client went away: `CANCELLED`).
struct EndOfCall {
    body: Body,
    call: Option<Call>,
}

impl EndOfCall {
    fn end(&mut self, code: Code) {
        if let Some(mut call) = self.call.take() {
            call.end(code);
        }
    }
}

impl HttpBody for EndOfCall {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    this.end(header_code(trailers).unwrap_or(Code::Unknown));
                }
            }
            Poll::Ready(Some(Err(_))) => this.end(Code::Internal),
            Poll::Ready(None) => this.end(Code::Unknown),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for EndOfCall {
    fn drop(&mut self) {
        self.end(Code::Cancelled);
    }
}

/// The `grpc-status` of a head or trailers.
fn header_code(headers: &http::HeaderMap) -> Option<Code> {
    headers
        .get("grpc-status")
        .map(|code| Code::from_bytes(code.as_bytes()))
}

/// A panic is a bug: log it and answer `INTERNAL`, as a method's own internal error would.
fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a gRPC method panicked");
    tonic::Status::from(ApiError::internal()).into_http()
}

/// The status code's name as the gRPC specification writes it: the `code` label.
fn code_label(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_specified_name() {
        for number in 0..=16 {
            let code = Code::from_i32(number);
            let name = code_label(code);
            assert!(
                name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'),
                "{name}"
            );
            // tonic's description of a code is its name in words.
            assert_eq!(
                name.replace('_', " ").to_lowercase(),
                format!("{code:?}")
                    .chars()
                    .fold(String::new(), |mut words, c| {
                        if c.is_uppercase() && !words.is_empty() {
                            words.push(' ');
                        }
                        words.push(c.to_ascii_lowercase());
                        words
                    }),
                "{number}"
            );
        }
    }
}
