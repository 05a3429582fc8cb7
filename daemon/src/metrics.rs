//! Every metric Ferry exports, named once here and described at start-up.
//! Prometheus naming; labels are low-cardinality enums, never ids or emails.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Webhook requests by outcome (`job_created`, `duplicate`, `not_installed`,
/// `ignored`, `url_validation`, `deauthorized`, `unauthorized`,
/// `bad_request`, `too_large`, `timeout`, `unavailable`, `not_configured`).
pub const WEBHOOK_REQUESTS_TOTAL: &str = "ferry_webhook_requests_total";
/// Time from the request's arrival to its answer, committed work included.
pub const WEBHOOK_ACK_SECONDS: &str = "ferry_webhook_ack_seconds";
/// Jobs created by the intake, by `state` and skip `reason`.
pub const JOBS_CREATED_TOTAL: &str = "ferry_jobs_created_total";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder (once) and returns the handle that
/// renders the exposition text for `GET /metrics`.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(WEBHOOK_ACK_SECONDS.into()),
                    &[
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 3.0,
                    ],
                )
                .expect("static bucket list")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (a test harness): then
            // metrics go there and this handle renders an empty page.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(WEBHOOK_REQUESTS_TOTAL, "Zoom webhook requests, by outcome");
    metrics::describe_histogram!(
        WEBHOOK_ACK_SECONDS,
        metrics::Unit::Seconds,
        "Time to acknowledge a Zoom webhook, durable commit included"
    );
    metrics::describe_counter!(
        JOBS_CREATED_TOTAL,
        "Ingest jobs created, by state and skip reason"
    );
}
