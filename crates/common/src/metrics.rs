//! The Prometheus recorder every service installs.
//!
//! Latency histograms (`*_seconds`) share [`LATENCY_BUCKETS`]; a service passes the few
//! histograms that need other buckets to [`install_recorder`]. A process has one global
//! recorder and the first install decides its buckets: in production that is the service's
//! own; a test that runs several services in one process installs the recorder of the service
//! under test first.

use std::sync::Mutex;

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// Buckets of every `*_http_request_duration_seconds` and other latency histograms.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

/// A histogram whose buckets differ from [`LATENCY_BUCKETS`].
#[derive(Clone, Copy, Debug)]
pub struct HistogramBuckets {
    pub metric: &'static str,
    pub buckets: &'static [f64],
}

/// Installs the global recorder once and returns a handle that renders `/metrics`. Later calls
/// return the same handle; their `buckets` are ignored.
pub fn install_recorder(buckets: &[HistogramBuckets]) -> Result<PrometheusHandle, BuildError> {
    let mut installed = HANDLE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(handle) = installed.as_ref() {
        return Ok(handle.clone());
    }
    let mut builder = PrometheusBuilder::new();
    for histogram in buckets {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(histogram.metric.into()), histogram.buckets)?;
    }
    let recorder = builder
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(BuildError::FailedToSetGlobalRecorder)?;
    *installed = Some(handle.clone());
    Ok(handle)
}
