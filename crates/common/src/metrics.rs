//! The Prometheus recorder every service installs.
//!
//! A process has one global recorder, so the histogram buckets of every service are declared
//! here: a test that runs GC and AC in one process then still gets GC's buckets.

use std::sync::Mutex;

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// Buckets of `gc_meeting_creation_duration_seconds` (DESIGN §8).
pub const MEETING_CREATION_BUCKETS: &[f64] =
    &[0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0];

/// Buckets of every `*_http_request_duration_seconds` and other latency histograms.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

/// Installs the global recorder once and returns a handle that renders `/metrics`.
pub fn install_recorder() -> Result<PrometheusHandle, BuildError> {
    let mut installed = HANDLE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(handle) = installed.as_ref() {
        return Ok(handle.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("gc_meeting_creation_duration_seconds".into()),
            MEETING_CREATION_BUCKETS,
        )?
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(BuildError::FailedToSetGlobalRecorder)?;
    *installed = Some(handle.clone());
    Ok(handle)
}
