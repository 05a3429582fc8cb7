//! Every metric Ferry exports, named once here and described by
//! [`describe`] at start-up. Prometheus naming. Labels are low-cardinality
//! enums, never ids, emails, uuids or tokens. The daemon installs the
//! exporter; the store and the services record through the `metrics` facade.

/// Webhook requests, by `event` (`recording.completed`,
/// `endpoint.url_validation`, `app_deauthorized`, `recording.deleted`,
/// `recording.trashed`, `other`, `unknown` when unreadable) and `outcome`
/// (`accepted`, `duplicate`, `not_installed`, `ignored`, `url_validation`,
/// `deauthorized`, `job_failed` (a deleted recording's job), `rejected_signature`,
/// `rejected_body`, `too_large`, `timeout`, `store_unavailable` (503, Zoom
/// retries), `store_failed` (500: a stored record is corrupt),
/// `not_configured`).
pub const WEBHOOK_REQUESTS_TOTAL: &str = "ferry_webhook_requests_total";
/// Time from a webhook's arrival to its answer, the durable commit included.
pub const WEBHOOK_ACK_SECONDS: &str = "ferry_webhook_ack_seconds";
/// Jobs created, by `state`, skip `reason` and `source` (`webhook`,
/// `reconcile`, `backfill`).
pub const JOBS_CREATED_TOTAL: &str = "ferry_jobs_created_total";
/// Jobs that reached a final state, by `state` and skip `reason`.
pub const JOBS_FINISHED_TOTAL: &str = "ferry_jobs_finished_total";
/// Jobs in each `state` now, read from the store at every scrape.
pub const JOBS: &str = "ferry_jobs";
/// Age of the oldest QUEUED job (0 when none), read at every scrape.
pub const OLDEST_QUEUED_JOB_AGE_SECONDS: &str = "ferry_oldest_queued_job_age_seconds";
/// Bytes received from Zoom.
pub const DOWNLOADED_BYTES_TOTAL: &str = "ferry_downloaded_bytes_total";
/// Bytes the sink acknowledged (parts uploaded).
pub const UPLOADED_BYTES_TOTAL: &str = "ferry_uploaded_bytes_total";
/// Transfers running now.
pub const ACTIVE_TRANSFERS: &str = "ferry_active_transfers";
/// Daemons sharing the store that this one saw alive at its last heartbeat
/// (itself included); the per-account download rate is split between them.
pub const REPLICAS_ALIVE: &str = "ferry_replicas_alive";
/// Time from claiming a job to its end, by `outcome` (`completed`,
/// `failed`, `skipped`, `released` at shutdown, `stopped` when cancelled or
/// taken over).
pub const TRANSFER_SECONDS: &str = "ferry_transfer_duration_seconds";
/// Time of one UploadPart call (each attempt).
pub const PART_UPLOAD_SECONDS: &str = "ferry_part_upload_seconds";
/// Retries, by `stage` (`download`, `start_upload`, `upload_part`,
/// `complete`, `store`).
pub const RETRIES_TOTAL: &str = "ferry_retries_total";
/// Transfers that continued an upload from a byte past 0.
pub const RESUMED_TRANSFERS_TOTAL: &str = "ferry_resumed_transfers_total";
/// Transfers stopped mid-stream by a cap, by `cap` (`size`, `duration`).
pub const CAP_ABORTS_TOTAL: &str = "ferry_cap_aborts_total";
/// Fresh download tokens fetched through OAuth, by `outcome` (`fetched`,
/// `no_credentials`, `refused`, `unavailable`).
pub const TOKEN_REFRESHES_TOTAL: &str = "ferry_download_token_refreshes_total";
/// Waits a rate limiter imposed, by `limiter` (`account_downloads`,
/// `bandwidth`, `sink_requests`): `_count` is the number of waits, `_sum`
/// the seconds waited.
pub const RATE_LIMIT_WAIT_SECONDS: &str = "ferry_rate_limit_wait_seconds";
/// Time of one group commit of the store (BEGIN to COMMIT, fsync included).
pub const STORE_COMMIT_SECONDS: &str = "ferry_store_commit_seconds";
/// Size of the store's write-ahead log at the last checkpoint tick.
pub const STORE_WAL_BYTES: &str = "ferry_store_wal_bytes";
/// Checkpoints that reset the write-ahead log after it passed its limit.
pub const STORE_WAL_RESETS_TOTAL: &str = "ferry_store_wal_resets_total";
/// Meetings the reconciler and backfills found in Zoom's recordings list,
/// by `source` (`reconcile`, `backfill`) and `outcome` (`created`: no job
/// had it, so its webhook never arrived or came before the install;
/// `duplicate`: a job had it; `requeued`: a backfill took over a job
/// skipped as recorded before the install; `not_ready`: still processing
/// or inside the grace period; `invalid`: Zoom's entry lacked a field).
pub const RECORDINGS_FOUND_TOTAL: &str = "ferry_recordings_found_total";
/// Reconcile passes over an account, by `outcome` (`completed`, `failed`).
pub const RECONCILE_PASSES_TOTAL: &str = "ferry_reconcile_passes_total";
/// Calls to Zoom's trash endpoint after a copy, by `outcome`: `trashed`,
/// `gone` (Zoom no longer had the recordings), `retry` (failed, tried again
/// later) and `failed` (given up; the job says why).
pub const ZOOM_TRASH_TOTAL: &str = "ferry_zoom_trash_total";
/// Companion files (transcript, captions, chat) whose copy ended, by `kind`
/// and `state` (`copied`, `missing`, `refused`, `failed`; `pending` when
/// released at shutdown).
pub const COMPANIONS_TOTAL: &str = "ferry_companions_total";
/// Time of one reconcile pass over an account.
pub const RECONCILE_PASS_SECONDS: &str = "ferry_reconcile_pass_seconds";
/// Backfills this daemon is running now.
pub const BACKFILLS_RUNNING: &str = "ferry_backfills_running";
/// Days of the range still to list, summed over the backfills this daemon
/// is running now (it lists them a month-long chunk at a time).
pub const BACKFILL_DAYS_LEFT: &str = "ferry_backfill_days_left";
/// Backfills that ended, by `state` (`completed`, `failed`, `cancelled`).
pub const BACKFILLS_FINISHED_TOTAL: &str = "ferry_backfills_finished_total";
/// Always 1, labelled with the `version`.
pub const BUILD_INFO: &str = "ferry_build_info";

/// Histogram buckets, in seconds, for the latencies above.
/// Up to 30 s: a webhook acknowledged or a commit made while the database
/// struggles still lands in a bucket rather than only in `+Inf`.
pub const FAST_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 3.0, 10.0, 30.0,
];
/// Up to 10 minutes: a part to a slow S3 endpoint, or a wait for a rate
/// limit, can take minutes.
pub const PART_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];
/// Up to 8 hours: a 5 GiB file from a slow source.
pub const TRANSFER_BUCKETS: &[f64] = &[
    0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0,
    28800.0,
];

/// Which buckets each histogram uses.
pub const HISTOGRAMS: &[(&str, &[f64])] = &[
    (WEBHOOK_ACK_SECONDS, FAST_BUCKETS),
    (STORE_COMMIT_SECONDS, FAST_BUCKETS),
    (PART_UPLOAD_SECONDS, PART_BUCKETS),
    (TRANSFER_SECONDS, TRANSFER_BUCKETS),
    (RATE_LIMIT_WAIT_SECONDS, PART_BUCKETS),
    (RECONCILE_PASS_SECONDS, TRANSFER_BUCKETS),
];

/// Counts a job that reached a final state.
pub fn count_finished(job: &crate::model::Job) {
    if job.state.is_final() {
        let reason = job.skip_reason.map_or("", |r| r.as_str());
        metrics::counter!(JOBS_FINISHED_TOTAL, "state" => job.state.as_str(), "reason" => reason)
            .increment(1);
    }
}

/// Registers the counters alerts and dashboards watch at 0, so that their
/// first increment after a start shows in `rate()` and `increase()`.
pub fn register_zeros() {
    use crate::model::{JobState, SkipReason};
    use metrics::counter;
    for (event, outcome) in [
        ("recording.completed", "accepted"),
        ("recording.completed", "duplicate"),
        ("recording.completed", "not_installed"),
        ("recording.completed", "rejected_body"),
        ("recording.completed", "store_unavailable"),
        ("unknown", "rejected_signature"),
        ("unknown", "rejected_body"),
        ("unknown", "too_large"),
        ("unknown", "timeout"),
        ("unknown", "not_configured"),
    ] {
        counter!(WEBHOOK_REQUESTS_TOTAL, "event" => event, "outcome" => outcome).increment(0);
    }
    for state in [JobState::Completed, JobState::Failed, JobState::Cancelled] {
        counter!(JOBS_FINISHED_TOTAL, "state" => state.as_str(), "reason" => "").increment(0);
    }
    for reason in SkipReason::ALL {
        counter!(JOBS_FINISHED_TOTAL, "state" => "skipped", "reason" => reason.as_str())
            .increment(0);
    }
    for stage in [
        "download",
        "start_upload",
        "upload_part",
        "complete",
        "store",
    ] {
        counter!(RETRIES_TOTAL, "stage" => stage).increment(0);
    }
    for cap in ["size", "duration"] {
        counter!(CAP_ABORTS_TOTAL, "cap" => cap).increment(0);
    }
    for source in ["reconcile", "backfill"] {
        for outcome in ["created", "duplicate", "requeued", "not_ready", "invalid"] {
            counter!(RECORDINGS_FOUND_TOTAL, "source" => source, "outcome" => outcome).increment(0);
        }
    }
    for outcome in ["completed", "failed"] {
        counter!(RECONCILE_PASSES_TOTAL, "outcome" => outcome).increment(0);
    }
    for outcome in ["trashed", "gone", "retry", "failed"] {
        counter!(ZOOM_TRASH_TOTAL, "outcome" => outcome).increment(0);
    }
    for kind in crate::model::CompanionKind::ALL {
        for state in ["copied", "missing", "refused", "failed"] {
            counter!(COMPANIONS_TOTAL, "kind" => kind.as_str(), "state" => state).increment(0);
        }
    }
    for state in ["completed", "failed", "cancelled"] {
        counter!(BACKFILLS_FINISHED_TOTAL, "state" => state).increment(0);
    }
    for outcome in ["fetched", "no_credentials", "refused", "unavailable"] {
        counter!(TOKEN_REFRESHES_TOTAL, "outcome" => outcome).increment(0);
    }
    for name in [
        DOWNLOADED_BYTES_TOTAL,
        UPLOADED_BYTES_TOTAL,
        RESUMED_TRANSFERS_TOTAL,
        STORE_WAL_RESETS_TOTAL,
    ] {
        counter!(name).increment(0);
    }
}

/// Registers every metric's help text and unit with the installed recorder.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        RECORDINGS_FOUND_TOTAL,
        "Meetings found in Zoom's recordings list, by source and outcome"
    );
    describe_counter!(
        COMPANIONS_TOTAL,
        "Companion files whose copy ended, by kind and state"
    );
    describe_counter!(
        ZOOM_TRASH_TOTAL,
        "Calls to Zoom's trash endpoint after a copy, by outcome"
    );
    describe_counter!(
        RECONCILE_PASSES_TOTAL,
        "Reconcile passes over an account, by outcome"
    );
    describe_histogram!(
        RECONCILE_PASS_SECONDS,
        Unit::Seconds,
        "Time of one reconcile pass over an account"
    );
    describe_gauge!(BACKFILLS_RUNNING, "Backfills this daemon is running now");
    describe_gauge!(
        BACKFILL_DAYS_LEFT,
        "Days still to list of the backfills this daemon is running now"
    );
    describe_counter!(BACKFILLS_FINISHED_TOTAL, "Backfills that ended, by state");
    describe_counter!(
        WEBHOOK_REQUESTS_TOTAL,
        "Zoom webhook requests, by event and outcome"
    );
    describe_histogram!(
        WEBHOOK_ACK_SECONDS,
        Unit::Seconds,
        "Time to acknowledge a Zoom webhook, durable commit included"
    );
    describe_counter!(
        JOBS_CREATED_TOTAL,
        "Jobs the intake created, by state and skip reason"
    );
    describe_counter!(
        JOBS_FINISHED_TOTAL,
        "Jobs that reached a final state, by state and skip reason"
    );
    describe_gauge!(JOBS, "Jobs in each state now");
    describe_gauge!(
        OLDEST_QUEUED_JOB_AGE_SECONDS,
        Unit::Seconds,
        "Age of the oldest queued job, 0 when none"
    );
    describe_counter!(
        DOWNLOADED_BYTES_TOTAL,
        Unit::Bytes,
        "Bytes received from Zoom"
    );
    describe_counter!(
        UPLOADED_BYTES_TOTAL,
        Unit::Bytes,
        "Bytes the object store acknowledged"
    );
    describe_gauge!(ACTIVE_TRANSFERS, "Transfers running now");
    describe_gauge!(
        REPLICAS_ALIVE,
        "Daemons sharing the store seen alive at the last heartbeat, this one included"
    );
    describe_histogram!(
        TRANSFER_SECONDS,
        Unit::Seconds,
        "Time from claiming a job to the end of its transfer, by outcome"
    );
    describe_histogram!(
        PART_UPLOAD_SECONDS,
        Unit::Seconds,
        "Time of one part upload attempt"
    );
    describe_counter!(RETRIES_TOTAL, "Retries, by stage");
    describe_counter!(
        RESUMED_TRANSFERS_TOTAL,
        "Transfers that resumed an upload past byte 0"
    );
    describe_counter!(
        CAP_ABORTS_TOTAL,
        "Transfers stopped mid-stream by a cap, by cap"
    );
    describe_counter!(
        TOKEN_REFRESHES_TOTAL,
        "Fresh download tokens asked of Zoom's API, by outcome"
    );
    describe_histogram!(
        RATE_LIMIT_WAIT_SECONDS,
        Unit::Seconds,
        "Waits imposed by rate limiters, by limiter"
    );
    describe_histogram!(
        STORE_COMMIT_SECONDS,
        Unit::Seconds,
        "Time of one store group commit, fsync included"
    );
    describe_gauge!(
        STORE_WAL_BYTES,
        Unit::Bytes,
        "Size of the store's write-ahead log (SQLite)"
    );
    describe_counter!(
        STORE_WAL_RESETS_TOTAL,
        "Checkpoints that reset the store's write-ahead log after it passed its limit"
    );
    describe_gauge!(BUILD_INFO, "Build information; always 1");
}
