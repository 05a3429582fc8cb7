//! The Prometheus exporter. Metric names live in one module,
//! `ferry_control::metrics` (re-exported here), because the store and the
//! services record some of them too.

use std::sync::OnceLock;

pub use ferry_control::metrics::*;
use ferry_control::model::{JobState, Timestamp};
use ferry_control::store::Store;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder (once) and returns the handle that
/// renders the exposition text for `GET /metrics`.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let mut builder = PrometheusBuilder::new();
            for (name, buckets) in HISTOGRAMS {
                builder = builder
                    .set_buckets_for_metric(Matcher::Full((*name).into()), buckets)
                    .expect("static bucket lists are not empty");
            }
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (a test harness): then
            // metrics go there and this handle renders an empty page.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            register_zeros();
            metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            handle
        })
        .clone()
}

/// Reads the job gauges from the store, so they are right after a restart
/// and whatever changed the jobs; called before every scrape.
pub async fn refresh_job_gauges(store: &dyn Store) {
    match store.job_counts().await {
        Ok(counts) => {
            for state in JobState::ALL {
                metrics::gauge!(JOBS, "state" => state.as_str()).set(counts.count(state) as f64);
            }
            let age_ms = counts
                .oldest_queued
                .map_or(0, |t| (Timestamp::now().0 - t.0).max(0));
            metrics::gauge!(OLDEST_QUEUED_JOB_AGE_SECONDS).set(age_ms as f64 / 1000.0);
        }
        Err(e) => tracing::warn!(error = %e, "could not count jobs for the metrics"),
    }
}
