//! GC's business metrics (DESIGN §8) and the span of a create.
//!
//! `gc_meetings_created_total{status, error_type}` and
//! `gc_meeting_creation_duration_seconds{status}` are recorded by one middleware around the whole
//! create route — authentication, body parsing and the handler — so every failed attempt is
//! counted, including a 401 that never reaches the handler. The HTTP metrics
//! (`gc_http_requests_total`, `gc_http_request_duration_seconds`) come from
//! `common::http::track_metrics`.

use std::time::Instant;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use tracing::field::Empty;

pub const MEETINGS_CREATED_TOTAL: &str = "gc_meetings_created_total";
pub const MEETING_CREATION_DURATION_SECONDS: &str = "gc_meeting_creation_duration_seconds";

/// The bounded values of the `error_type` label.
pub mod error_type {
    pub const NONE: &str = "none";
    pub const BAD_REQUEST: &str = "bad_request";
    pub const UNAUTHORIZED: &str = "unauthorized";
    pub const FORBIDDEN: &str = "forbidden";
    pub const DB_ERROR: &str = "db_error";
    pub const CODE_COLLISION: &str = "code_collision";
    pub const INTERNAL: &str = "internal";

    pub const ALL: [&str; 7] = [
        NONE,
        BAD_REQUEST,
        UNAUTHORIZED,
        FORBIDDEN,
        DB_ERROR,
        CODE_COLLISION,
        INTERNAL,
    ];
}

/// Set on an error response by [`crate::error::Error`] so the metric knows the precise cause
/// (a 500 may be `db_error`, `code_collision` or `internal`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorTypeLabel(pub &'static str);

/// The label of an error response that did not come from [`crate::error::Error`] (the strict
/// JSON extractor's 400s, for instance).
pub fn error_type_for_status(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED => error_type::UNAUTHORIZED,
        StatusCode::FORBIDDEN => error_type::FORBIDDEN,
        s if s.is_client_error() => error_type::BAD_REQUEST,
        _ => error_type::INTERNAL,
    }
}

/// Describes the metrics and creates the success series at zero, so that a rate over it (and
/// the `GCMeetingCreationStopped` alert) sees a series from the first scrape.
pub fn register() {
    metrics::describe_counter!(
        MEETINGS_CREATED_TOTAL,
        "Meeting create attempts by outcome (status) and failure class (error_type)"
    );
    metrics::describe_histogram!(
        MEETING_CREATION_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Time to answer a meeting create, authentication included"
    );
    metrics::counter!(MEETINGS_CREATED_TOTAL, "status" => "success", "error_type" => error_type::NONE)
        .increment(0);
}

/// Wraps the create route: opens the `gc.meeting.create` span, times the attempt, and counts it.
pub async fn record_create_outcome(req: Request, next: Next) -> Response {
    let span = tracing::info_span!(
        "gc.meeting.create",
        user_id = Empty,
        org_id = Empty,
        meeting_id = Empty,
        meeting_code = Empty,
        idempotency_key = Empty,
        replayed = Empty,
    );
    // A caller that sent a W3C `traceparent` sees this create as part of its trace.
    common::telemetry::adopt_trace_context(&span, req.headers());
    let started = Instant::now();
    let response = next.run(req).instrument(span.clone()).await;
    let elapsed = started.elapsed().as_secs_f64();

    let status = response.status();
    let (outcome, error_type) = if status.is_success() {
        ("success", error_type::NONE)
    } else {
        let label = response
            .extensions()
            .get::<ErrorTypeLabel>()
            .map_or_else(|| error_type_for_status(status), |label| label.0);
        ("error", label)
    };
    metrics::counter!(MEETINGS_CREATED_TOTAL, "status" => outcome, "error_type" => error_type)
        .increment(1);
    metrics::histogram!(MEETING_CREATION_DURATION_SECONDS, "status" => outcome).record(elapsed);
    if !status.is_success() {
        // error_type is the bounded metric label; the code tells apart refusals that share one
        // (ORG_MEETING_LIMIT_REACHED and a missing role are both `forbidden`).
        let error_code = response
            .extensions()
            .get::<common::error::ErrorCode>()
            .map_or("", |code| code.as_str());
        span.in_scope(|| {
            tracing::warn!(
                http_status = status.as_u16(),
                error_type,
                error_code,
                "meeting creation failed"
            );
        });
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_without_a_label_map_to_the_bounded_error_types() {
        assert_eq!(
            error_type_for_status(StatusCode::BAD_REQUEST),
            "bad_request"
        );
        assert_eq!(
            error_type_for_status(StatusCode::PAYLOAD_TOO_LARGE),
            "bad_request"
        );
        assert_eq!(
            error_type_for_status(StatusCode::UNAUTHORIZED),
            "unauthorized"
        );
        assert_eq!(error_type_for_status(StatusCode::FORBIDDEN), "forbidden");
        assert_eq!(
            error_type_for_status(StatusCode::INTERNAL_SERVER_ERROR),
            "internal"
        );
        for status in [400, 401, 403, 404, 409, 413, 500, 502, 503] {
            let label = error_type_for_status(StatusCode::from_u16(status).unwrap());
            assert!(error_type::ALL.contains(&label));
        }
    }
}
