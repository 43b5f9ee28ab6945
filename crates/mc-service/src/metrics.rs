//! MC's counters of rare events, and its open-sockets gauge, created at 0 at start-up.
//!
//! A counter that has never been incremented does not exist for Prometheus, so a rate over it is
//! no rate at all: alerts on failures would stay silent and dashboards empty until the first
//! failure. Every other MC metric is recorded where it happens (see the catalog,
//! docs/observability/metrics/mc-service.md).

/// The room operations, the `command` label of `mc_redis_command_*`: one per Lua script run by
/// `room::RoomStore`.
pub const ROOM_OPERATIONS: [&str; 14] = [
    "assign",
    "join",
    "admit",
    "reject",
    "admit_all",
    "leave",
    "remove",
    "transfer_host",
    "update_settings",
    "end_room",
    "touch",
    "set_active_speaker",
    "set_participant_fields",
    "state",
];

/// Registers the rare-event counters at 0 for each of their label values.
pub fn register() {
    for command in ROOM_OPERATIONS {
        metrics::counter!("mc_redis_command_errors_total", "command" => command).increment(0);
    }
    for outcome in ["delivered", "failed", "dropped"] {
        metrics::counter!("mc_gc_reports_total", "outcome" => outcome).increment(0);
    }
    for reason in ["limit", "stopping"] {
        metrics::counter!("mc_ws_connections_refused_total", "reason" => reason).increment(0);
    }
    metrics::counter!("mc_ws_rate_limited_total").increment(0);
    metrics::counter!("mc_ws_slow_consumers_dropped_total").increment(0);
    // A controller that has served no socket yet has none open: 0, not an absent series.
    metrics::gauge!("mc_ws_connections_open").increment(0.0);
    metrics::gauge!("mc_lobby_waiting_sockets").increment(0.0);
}
