//! GC's business metrics (DESIGN §8).
//!
//! `gc_meetings_created_total{status, error_type}` and
//! `gc_meeting_creation_duration_seconds{status}` are recorded by one middleware around the whole
//! create route — authentication, body parsing and the handler — so every failed attempt is
//! counted, including a 401 that never reaches the handler. The HTTP metrics
//! (`gc_http_requests_total`, `gc_http_request_duration_seconds`) come from the common
//! middleware stack.

use std::time::Instant;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use common::metrics::HistogramBuckets;
use metrics_exporter_prometheus::{BuildError, PrometheusHandle};

use crate::error::Failure;

pub const MEETINGS_CREATED_TOTAL: &str = "gc_meetings_created_total";
pub const MEETING_ASSIGNMENTS_TOTAL: &str = "gc_meeting_assignments_total";
pub const MEETING_CREATION_DURATION_SECONDS: &str = "gc_meeting_creation_duration_seconds";
pub const DB_BATCH_ITEMS: &str = "gc_db_batch_items";
pub const MC_JOIN_BATCH_ITEMS: &str = "gc_mc_join_batch_items";
pub const MC_BREAKER_OPENED_TOTAL: &str = "gc_mc_breaker_opened_total";
pub const JOIN_LEAVE_LIMITED_TOTAL: &str = "gc_join_leave_limited_total";
pub const GUEST_JOINS_TOTAL: &str = "gc_guest_joins_total";
pub const AC_MEETING_TOKEN_BATCHES_TOTAL: &str = "gc_ac_meeting_token_batches_total";
pub const LOST_SEATS_TOTAL: &str = "gc_lost_seats_total";

/// What became of a seat the room lost while PostgreSQL held its visit open
/// (`use_cases::join`): given back, or its visit closed (the room was full).
pub mod lost_seat {
    pub const RESTORED: &str = "restored";
    pub const CLOSED: &str = "closed";
}

/// The values of `gc_ac_meeting_token_batches_total`'s `outcome` label.
pub const AC_OUTCOMES: [&str; 3] = ["issued", "unreachable", "refused"];

/// Buckets of `gc_db_batch_items`: powers of two up to the largest batch (256).
pub const DB_BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// The queues that share statements (`db::creates`, `db::admissions`, `db::lookups`), the values
/// of `gc_db_batch_items`'s `queue` label.
pub mod queue {
    pub const CREATES: &str = "creates";
    pub const ADMISSIONS: &str = "admissions";
    pub const LOOKUPS: &str = "lookups";
    pub const GUESTS: &str = "guests";
    pub const WEBHOOK_OUTCOMES: &str = "webhook_outcomes";
}

/// Buckets of `gc_meeting_creation_duration_seconds` (DESIGN §8).
pub const MEETING_CREATION_BUCKETS: &[f64] =
    &[0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0];

/// Installs the process's Prometheus recorder with GC's buckets (see `common::metrics`) and
/// describes GC's metrics.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    let handle = common::metrics::install_recorder(&[
        HistogramBuckets {
            metric: MEETING_CREATION_DURATION_SECONDS,
            buckets: MEETING_CREATION_BUCKETS,
        },
        HistogramBuckets {
            metric: DB_BATCH_ITEMS,
            buckets: DB_BATCH_BUCKETS,
        },
        HistogramBuckets {
            metric: MC_JOIN_BATCH_ITEMS,
            buckets: DB_BATCH_BUCKETS,
        },
        HistogramBuckets {
            metric: WEBHOOK_DELIVERY_LATENCY_SECONDS,
            buckets: WEBHOOK_LATENCY_BUCKETS,
        },
        HistogramBuckets {
            metric: WEBHOOK_REQUEST_DURATION_SECONDS,
            buckets: WEBHOOK_REQUEST_BUCKETS,
        },
    ])?;
    register();
    Ok(handle)
}

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

/// The `error_type` of a failed create: from the status, and for our own failures from the
/// [`Failure`] GC's error attached (a 500 may be `db_error`, `code_collision` or `internal`).
pub fn error_type(status: StatusCode, failure: Option<Failure>) -> &'static str {
    match (status, failure) {
        (StatusCode::UNAUTHORIZED, _) => error_type::UNAUTHORIZED,
        (StatusCode::FORBIDDEN, _) => error_type::FORBIDDEN,
        (s, _) if s.is_client_error() => error_type::BAD_REQUEST,
        (_, Some(Failure::Database)) => error_type::DB_ERROR,
        (_, Some(Failure::CodeCollision)) => error_type::CODE_COLLISION,
        _ => error_type::INTERNAL,
    }
}

/// Describes the metrics and creates the success series at zero, so that a rate over it (and
/// the `GCMeetingCreationStopped` alert) sees a series from the first scrape.
fn register() {
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
    metrics::describe_counter!(
        MEETING_ASSIGNMENTS_TOTAL,
        "Assignments GC delivered to meeting controllers: new owners, and deliveries again"
    );
    metrics::describe_histogram!(
        DB_BATCH_ITEMS,
        "Items (creates, admissions, meeting codes) per statement of GC's queues that share statements"
    );
    metrics::describe_histogram!(
        MC_JOIN_BATCH_ITEMS,
        "Joins per call to a meeting controller (JoinParticipant for one, JoinParticipants for more)"
    );
    for delivery in ["assigned", "redelivered"] {
        metrics::counter!(MEETING_ASSIGNMENTS_TOTAL, "delivery" => delivery).increment(0);
    }
    metrics::describe_counter!(
        MC_BREAKER_OPENED_TOTAL,
        "Times a meeting controller's circuit breaker opened: calls to it failed at once for a while"
    );
    metrics::counter!(MC_BREAKER_OPENED_TOTAL).increment(0);
    metrics::describe_counter!(
        JOIN_LEAVE_LIMITED_TOTAL,
        "Joins and leaves refused (429) because one user spent their budget for one meeting"
    );
    metrics::counter!(JOIN_LEAVE_LIMITED_TOTAL).increment(0);
    metrics::describe_counter!(
        GUEST_JOINS_TOTAL,
        "guest-join requests (people without an account), by outcome"
    );
    for outcome in guest_join::ALL {
        metrics::counter!(GUEST_JOINS_TOTAL, "outcome" => outcome).increment(0);
    }
    metrics::describe_counter!(
        AC_MEETING_TOKEN_BATCHES_TOTAL,
        "Requests to AC for meeting tokens (one per batch of joins), by outcome"
    );
    for outcome in AC_OUTCOMES {
        metrics::counter!(AC_MEETING_TOKEN_BATCHES_TOTAL, "outcome" => outcome).increment(0);
    }
    metrics::describe_counter!(
        LOST_SEATS_TOTAL,
        "Seats a room had lost (Redis lost them) found when their person joined again, by outcome"
    );
    for outcome in [lost_seat::RESTORED, lost_seat::CLOSED] {
        metrics::counter!(LOST_SEATS_TOTAL, "outcome" => outcome).increment(0);
    }
    register_webhooks();
}

/// A seat the room had lost, found at its person's join: given back or closed.
pub fn lost_seat(outcome: &'static str) {
    metrics::counter!(LOST_SEATS_TOTAL, "outcome" => outcome).increment(1);
}

/// A request for meeting tokens answered (`issued`), not answered (`unreachable`: no
/// connection, no answer within the call timeout) or refused (`refused`: an error status, a
/// malformed answer, no service token to send).
pub fn ac_meeting_token_batch(outcome: &'static str) {
    metrics::counter!(AC_MEETING_TOKEN_BATCHES_TOTAL, "outcome" => outcome).increment(1);
}

/// The outcomes of `guest-join` in `gc_guest_joins_total`.
pub mod guest_join {
    /// The guest waits in the lobby.
    pub const WAITING: &str = "waiting";
    /// 429: the client address spent its budget.
    pub const LIMITED: &str = "limited";
    /// 409 `LOBBY_FULL`.
    pub const LOBBY_FULL: &str = "lobby_full";
    /// 404: unknown, ended, or closed to guests.
    pub const NOT_FOUND: &str = "not_found";
    /// Anything else (a bad name, a dependency down).
    pub const FAILED: &str = "failed";
    pub const ALL: [&str; 5] = [WAITING, LIMITED, LOBBY_FULL, NOT_FOUND, FAILED];
}

/// One `guest-join` answered, with `outcome` one of [`guest_join::ALL`].
pub fn guest_join(outcome: &'static str) {
    metrics::counter!(GUEST_JOINS_TOTAL, "outcome" => outcome).increment(1);
}

/// A join or leave refused: the user spent their budget for the meeting.
pub fn join_leave_limited() {
    metrics::counter!(JOIN_LEAVE_LIMITED_TOTAL).increment(1);
}

/// One statement of a queue that shares statements, holding `items` (creates, admissions or
/// codes).
pub fn db_batch(queue: &'static str, items: usize) {
    metrics::histogram!(DB_BATCH_ITEMS, "queue" => queue).record(items as f64);
}

/// One call to a meeting controller carrying `joins` joins (`clients::mc`).
pub fn mc_join_batch(joins: usize) {
    metrics::histogram!(MC_JOIN_BATCH_ITEMS).record(joins as f64);
}

/// A meeting controller's breaker opened (`clients::mc::breaker`).
pub fn mc_breaker_opened() {
    metrics::counter!(MC_BREAKER_OPENED_TOTAL).increment(1);
}

/// An assignment delivered to its controller: `assigned` when this call chose the owner (a
/// first join, or a move away from a silent owner), `redelivered` when the owner answered
/// ROOM_NOT_ASSIGNED and got it again.
pub fn meeting_assignment_delivered(delivery: &'static str) {
    metrics::counter!(MEETING_ASSIGNMENTS_TOTAL, "delivery" => delivery).increment(1);
}

/// Wraps the create route: times the attempt and counts it by outcome.
pub async fn record_create_outcome(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let response = next.run(req).await;
    let elapsed = started.elapsed().as_secs_f64();

    let status = response.status();
    let (outcome, error_type) = if status.is_success() {
        ("success", error_type::NONE)
    } else {
        let failure = response.extensions().get::<Failure>().copied();
        ("error", error_type(status, failure))
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
        tracing::warn!(
            http_status = status.as_u16(),
            error_type,
            error_code,
            "meeting creation failed"
        );
    }
    response
}

/// Webhook delivery attempts, by `event_type` and `result` (DESIGN §13).
pub const WEBHOOK_DELIVERIES_TOTAL: &str = "gc_webhook_deliveries_total";
/// Time from an event's change to an attempt's end, by `result`.
pub const WEBHOOK_DELIVERY_LATENCY_SECONDS: &str = "gc_webhook_delivery_latency_seconds";
/// Time one attempt's request took.
pub const WEBHOOK_REQUEST_DURATION_SECONDS: &str = "gc_webhook_request_duration_seconds";
/// Seconds since the oldest due delivery became due (0: none due).
pub const WEBHOOK_OLDEST_DUE_SECONDS: &str = "gc_webhook_oldest_due_seconds";

pub const WEBHOOK_LATENCY_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0, 86_400.0,
];
pub const WEBHOOK_REQUEST_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn register_webhooks() {
    metrics::describe_counter!(
        WEBHOOK_DELIVERIES_TOTAL,
        "Webhook delivery attempts, by event type and result (delivered, failed, refused, gone)"
    );
    for event_type in crate::domain::webhooks::EventType::ALL {
        metrics::counter!(WEBHOOK_DELIVERIES_TOTAL,
            "event_type" => event_type.as_str(), "result" => "delivered")
        .increment(0);
    }
    metrics::describe_histogram!(
        WEBHOOK_DELIVERY_LATENCY_SECONDS,
        metrics::Unit::Seconds,
        "Time from a webhook event's change to the end of a delivery attempt, by result"
    );
    metrics::describe_histogram!(
        WEBHOOK_REQUEST_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Time one webhook delivery request took, by result"
    );
    metrics::describe_gauge!(
        WEBHOOK_OLDEST_DUE_SECONDS,
        metrics::Unit::Seconds,
        "Seconds since the oldest due webhook delivery of an enabled webhook became due"
    );
    metrics::gauge!(WEBHOOK_OLDEST_DUE_SECONDS).set(0.0);
}

/// One delivery attempt ended.
pub fn webhook_delivery(
    event_type: &str,
    outcome: &crate::domain::webhooks::Outcome,
    request: std::time::Duration,
    latency: std::time::Duration,
) {
    let event_type = crate::domain::webhooks::EventType::parse(event_type)
        .map_or("other", crate::domain::webhooks::EventType::as_str);
    let result = outcome.label();
    metrics::counter!(WEBHOOK_DELIVERIES_TOTAL, "event_type" => event_type, "result" => result)
        .increment(1);
    metrics::histogram!(WEBHOOK_REQUEST_DURATION_SECONDS, "result" => result)
        .record(request.as_secs_f64());
    metrics::histogram!(WEBHOOK_DELIVERY_LATENCY_SECONDS, "result" => result)
        .record(latency.as_secs_f64());
}

/// The outbox's oldest due delivery, as the workers last read it.
pub fn webhook_oldest_due(seconds: f64) {
    metrics::gauge!(WEBHOOK_OLDEST_DUE_SECONDS).set(seconds);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_failures_map_to_the_bounded_error_types() {
        let refused = Some(Failure::Refused);
        assert_eq!(error_type(StatusCode::BAD_REQUEST, None), "bad_request");
        assert_eq!(
            error_type(StatusCode::PAYLOAD_TOO_LARGE, None),
            "bad_request"
        );
        assert_eq!(error_type(StatusCode::CONFLICT, refused), "bad_request");
        assert_eq!(error_type(StatusCode::UNAUTHORIZED, None), "unauthorized");
        assert_eq!(error_type(StatusCode::FORBIDDEN, refused), "forbidden");
        assert_eq!(
            error_type(StatusCode::INTERNAL_SERVER_ERROR, None),
            "internal"
        );
        assert_eq!(
            error_type(StatusCode::INTERNAL_SERVER_ERROR, Some(Failure::Database)),
            "db_error"
        );
        assert_eq!(
            error_type(StatusCode::SERVICE_UNAVAILABLE, Some(Failure::Database)),
            "db_error"
        );
        assert_eq!(
            error_type(
                StatusCode::INTERNAL_SERVER_ERROR,
                Some(Failure::CodeCollision)
            ),
            "code_collision"
        );
        for status in [400, 401, 403, 404, 409, 413, 500, 502, 503] {
            let label = error_type(StatusCode::from_u16(status).unwrap(), None);
            assert!(error_type::ALL.contains(&label));
        }
    }
}
