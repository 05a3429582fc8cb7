//! The transfer engine's scheduling: claim QUEUED jobs with a lease, keep
//! the lease alive, run at most `max_concurrent` transfers, retry transient
//! failures with backoff, and record how each job ends. One transfer's
//! streaming lives in `stream.rs`.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_control::model::{Job, JobOutcome, JobState, Timestamp};
use ferry_control::rules::CapsPolicy;
use ferry_control::secrets::SecretBox;
use ferry_control::store::{Lease, Store};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::download::Downloader;
use super::sink::ObjectSink;
use super::stream::{self, Stage, TransferError};
use super::zoom_api::{ApiError, Credentials, FreshDownload, ZoomApi};
use crate::metrics::{
    ACTIVE_TRANSFERS, RATE_LIMIT_WAIT_SECONDS, RETRIES_TOTAL, TOKEN_REFRESHES_TOTAL,
    TRANSFER_SECONDS,
};

/// How the engine runs; see the README's `[transfer]` settings.
#[derive(Clone, Debug)]
pub struct TransferSettings {
    pub worker_id: String,
    pub max_concurrent: usize,
    /// Bytes of downloaded data all transfers together may hold.
    pub byte_budget: u64,
    pub part_size: u64,
    pub parts_in_flight: usize,
    pub lease: Duration,
    pub heartbeat: Duration,
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub stall_timeout: Duration,
    /// Download requests per second per Zoom account.
    pub download_requests_per_second: u32,
    /// Global download bandwidth; None is unlimited.
    pub bandwidth_bytes_per_second: Option<u64>,
    /// Requests per second to the sink; None is unlimited.
    pub sink_requests_per_second: Option<u32>,
    pub key_prefix: String,
    pub caps: CapsPolicy,
    /// How often an idle engine looks for work it was not told about.
    pub poll_interval: Duration,
}

/// What the engine talks to.
pub struct Connections {
    pub store: Arc<dyn Store>,
    pub secret_box: SecretBox,
    pub sink: Arc<dyn ObjectSink>,
    pub downloader: Downloader,
    pub zoom_api: ZoomApi,
}

/// What every transfer shares.
pub(super) struct Shared {
    pub store: Arc<dyn Store>,
    pub secret_box: SecretBox,
    pub sink: Arc<dyn ObjectSink>,
    pub downloader: Downloader,
    pub zoom_api: ZoomApi,
    pub settings: TransferSettings,
    /// The byte budget, in KiB permits.
    pub budget: Arc<Semaphore>,
    pub bandwidth: Option<DefaultDirectRateLimiter>,
    pub sink_limiter: Option<DefaultDirectRateLimiter>,
    account_limiters: Mutex<HashMap<String, Arc<DefaultDirectRateLimiter>>>,
}

impl Shared {
    pub fn account_limiter(&self, account: &str) -> Arc<DefaultDirectRateLimiter> {
        let mut limiters = self.account_limiters.lock().expect("limiter map lock");
        limiters
            .entry(account.to_string())
            .or_insert_with(|| {
                let rate = NonZeroU32::new(self.settings.download_requests_per_second.max(1))
                    .expect("non-zero");
                Arc::new(RateLimiter::direct(Quota::per_second(rate)))
            })
            .clone()
    }
}

pub struct TransferEngine;

/// KiB permits for `bytes` (rounded up), as the budget semaphore counts.
pub(super) fn kib(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX)
}

impl TransferEngine {
    /// Starts the dispatcher; it stops when `shutdown` fires, releasing the
    /// jobs it holds so another start resumes them.
    pub fn start(
        connections: Connections,
        settings: TransferSettings,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) {
        let per_second =
            |n: u64| NonZeroU32::new(u32::try_from(n.min(u64::from(u32::MAX))).unwrap_or(u32::MAX));
        // Bandwidth is metered in KiB so that one part fits in a burst.
        let bandwidth = settings.bandwidth_bytes_per_second.and_then(|rate| {
            let rate = per_second(rate.div_ceil(1024))?;
            let burst = NonZeroU32::new(kib(settings.part_size).max(rate.get())).expect("non-zero");
            Some(RateLimiter::direct(
                Quota::per_second(rate).allow_burst(burst),
            ))
        });
        let sink_limiter = settings
            .sink_requests_per_second
            .and_then(|rate| per_second(u64::from(rate)))
            .map(|rate| RateLimiter::direct(Quota::per_second(rate)));
        let budget_permits = usize::try_from(settings.byte_budget.div_ceil(1024))
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        let Connections {
            store,
            secret_box,
            sink,
            downloader,
            zoom_api,
        } = connections;
        let shared = Arc::new(Shared {
            store,
            secret_box,
            sink,
            downloader,
            zoom_api,
            budget: Arc::new(Semaphore::new(budget_permits)),
            bandwidth,
            sink_limiter,
            account_limiters: Mutex::new(HashMap::new()),
            settings,
        });
        let dispatcher_tasks = tasks.clone();
        tasks.spawn(async move {
            clean_up_uploads(&shared).await;
            dispatch(shared, shutdown, dispatcher_tasks).await;
        });
    }
}

/// Aborts multipart uploads of jobs that ended, and uploads under our prefix
/// that the store does not know (left by a crash between create and record).
async fn clean_up_uploads(shared: &Shared) {
    match shared.store.abandoned_uploads().await {
        Ok(uploads) => {
            for (job_id, upload) in uploads {
                if shared
                    .sink
                    .abort_upload(&upload.object_key, &upload.upload_id)
                    .await
                    .is_ok()
                {
                    let _ = shared.store.drop_upload(&job_id).await;
                    tracing::info!(job = %job_id, "aborted the upload of a job that ended");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not list abandoned uploads"),
    }
    // Only keys under "{prefix}/" are ours; with no prefix, nothing in the
    // bucket can be told apart from another application's, so no sweep.
    let prefix = shared.settings.key_prefix.trim_matches('/');
    if prefix.is_empty() {
        tracing::info!(
            "transfer.key_prefix is empty: unfinished uploads Ferry no longer tracks are not swept"
        );
        return;
    }
    let (tracked, listed) = (
        shared.store.tracked_upload_ids().await,
        shared.sink.list_uploads(&format!("{prefix}/")).await,
    );
    match (tracked, listed) {
        (Ok(tracked), Ok(listed)) => {
            for (key, upload_id) in listed {
                if !tracked.contains(&upload_id) {
                    let _ = shared.sink.abort_upload(&key, &upload_id).await;
                    tracing::info!(upload = %upload_id, "aborted an orphaned multipart upload");
                }
            }
        }
        (Err(e), _) => tracing::warn!(error = %e, "could not list tracked uploads"),
        (_, Err(e)) => tracing::warn!(error = %e, "could not list the sink's unfinished uploads"),
    }
}

async fn dispatch(shared: Arc<Shared>, shutdown: CancellationToken, tasks: TaskTracker) {
    let slots = Arc::new(Semaphore::new(shared.settings.max_concurrent.max(1)));
    let mut events = shared.store.subscribe_job_events();
    loop {
        let slot = tokio::select! {
            _ = shutdown.cancelled() => return,
            slot = slots.clone().acquire_owned() => slot.expect("slots are never closed"),
        };
        let claimed = shared
            .store
            .claim_job(
                &shared.settings.worker_id,
                shared.settings.lease,
                Timestamp::now(),
            )
            .await;
        match claimed {
            Ok(Some(lease)) => {
                let (shared, shutdown) = (shared.clone(), shutdown.clone());
                tasks.spawn(async move {
                    run_job(&shared, lease, &shutdown).await;
                    drop(slot);
                });
            }
            Ok(None) => {
                drop(slot);
                // Sleep until a job is queued (or the poll interval passes:
                // leases of crashed workers expire without an event).
                let wait = async {
                    loop {
                        match events.recv().await {
                            Ok(event) if event.job.state == JobState::Queued => return,
                            Ok(_) => {}
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                                std::future::pending::<()>().await
                            }
                        }
                    }
                };
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = wait => {}
                    _ = tokio::time::sleep(shared.settings.poll_interval) => {}
                }
            }
            Err(e) => {
                drop(slot);
                tracing::warn!(error = %e, "could not claim a job");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(shared.settings.poll_interval) => {}
                }
            }
        }
    }
}

/// Keeps the lease alive and stops the transfer when it is lost or the job
/// is cancelled.
fn watch_lease(
    shared: &Arc<Shared>,
    job_id: &str,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let (shared, job_id) = (shared.clone(), job_id.to_string());
    let mut events = shared.store.subscribe_job_events();
    tokio::spawn(async move {
        let mut heartbeat = tokio::time::interval(shared.settings.heartbeat);
        heartbeat.tick().await;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = heartbeat.tick() => {
                    let renewed = shared
                        .store
                        .renew_lease(&job_id, &shared.settings.worker_id, shared.settings.lease, Timestamp::now())
                        .await;
                    if matches!(renewed, Ok(false)) {
                        tracing::info!(job = %job_id, "lease lost; stopping the transfer");
                        stop.cancel();
                        return;
                    }
                }
                event = events.recv() => {
                    if let Ok(event) = event
                        && event.job.job_id == job_id
                        && event.job.state == JobState::Cancelled
                    {
                        stop.cancel();
                        return;
                    }
                }
            }
        }
    })
}

/// Waits until `limiter` allows `n` cells, counting the wait when there is one.
pub(super) async fn wait_on(
    limiter: &DefaultDirectRateLimiter,
    n: NonZeroU32,
    label: &'static str,
) {
    if matches!(limiter.check_n(n), Ok(Ok(()))) {
        return;
    }
    let started = std::time::Instant::now();
    // More than the burst can never be granted: `n` is capped by the caller.
    let _ = limiter.until_n_ready(n).await;
    metrics::histogram!(RATE_LIMIT_WAIT_SECONDS, "limiter" => label)
        .record(started.elapsed().as_secs_f64());
}

/// Counts a running transfer for as long as it lives.
struct ActiveTransfer;

impl ActiveTransfer {
    fn start() -> Self {
        metrics::gauge!(ACTIVE_TRANSFERS).increment(1.0);
        ActiveTransfer
    }
}

impl Drop for ActiveTransfer {
    fn drop(&mut self) {
        metrics::gauge!(ACTIVE_TRANSFERS).decrement(1.0);
    }
}

async fn run_job(shared: &Arc<Shared>, lease: Lease, shutdown: &CancellationToken) {
    let _active = ActiveTransfer::start();
    let started = std::time::Instant::now();
    let job = lease.job;
    let stop = shutdown.child_token();
    let watcher = watch_lease(shared, &job.job_id, stop.clone());
    let mut attempt = 0u32;
    // A fresh download token, fetched once when Zoom refuses the webhook's.
    let mut fresh: Option<FreshDownload> = None;
    let outcome = loop {
        let result = match stream::transfer(shared, &job, &stop, fresh.as_ref()).await {
            Err(TransferError::TokenRejected { status }) if fresh.is_none() => {
                match fresh_download(shared, &job, status).await {
                    Ok(download) => {
                        tracing::info!(job = %job.job_id, "fetched a fresh download token; retrying");
                        fresh = Some(download);
                        continue;
                    }
                    Err(e) => Err(e),
                }
            }
            Err(TransferError::TokenRejected { status }) => Err(TransferError::Permanent(format!(
                "zoom refused the download (HTTP {status}) even with a freshly fetched download token; check \
                 the account's cloud recording settings and the OAuth app's scopes"
            ))),
            other => other,
        };
        attempt += 1;
        match result {
            Ok(()) => break None,
            Err(TransferError::Transient {
                message,
                retry_after,
                stage,
            }) if attempt < shared.settings.max_attempts => {
                metrics::counter!(RETRIES_TOTAL, "stage" => stage.as_str()).increment(1);
                let delay =
                    retry_after.unwrap_or_else(|| backoff(shared.settings.backoff_base, attempt));
                tracing::warn!(job = %job.job_id, attempt, delay_ms = delay.as_millis() as u64, error = %message,
                    "transfer failed; retrying");
                tokio::select! {
                    _ = stop.cancelled() => break Some(stopped(shutdown)),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            Err(TransferError::Transient { message, .. }) => {
                break Some(Stop::Record(JobOutcome::Failed {
                    message: format!("gave up after {attempt} attempts: {message}"),
                }));
            }
            Err(TransferError::Permanent(message)) => {
                break Some(Stop::Record(JobOutcome::Failed { message }));
            }
            Err(TransferError::Cap { reason, message }) => {
                break Some(Stop::Record(JobOutcome::Skipped { reason, message }));
            }
            Err(TransferError::Stopped) => break Some(stopped(shutdown)),
            // Turned into a refresh or a failure above; kept exhaustive.
            Err(TransferError::TokenRejected { status }) => {
                break Some(Stop::Record(JobOutcome::Failed {
                    message: format!("zoom refused the download token (HTTP {status})"),
                }));
            }
        }
    };
    stop.cancel();
    let _ = watcher.await;
    let label = match &outcome {
        None => "completed",
        Some(Stop::NotOurs) => "stopped",
        Some(Stop::Record(JobOutcome::Failed { .. })) => "failed",
        Some(Stop::Record(JobOutcome::Skipped { .. })) => "skipped",
        Some(Stop::Record(JobOutcome::Released)) => "released",
    };
    metrics::histogram!(TRANSFER_SECONDS, "outcome" => label)
        .record(started.elapsed().as_secs_f64());
    let outcome = match outcome {
        None => return,
        Some(Stop::NotOurs) => {
            // Cancelled: its upload goes. Taken over by another worker after
            // our lease expired: the upload is theirs now, leave it.
            if let Ok(current) = shared.store.get_job(&job.institution_id, &job.job_id).await
                && current.state == JobState::Cancelled
            {
                abort_upload(shared, &job).await;
                tracing::info!(job = %job.job_id, "transfer cancelled; upload aborted");
            }
            return;
        }
        Some(Stop::Record(outcome)) => outcome,
    };
    if outcome != JobOutcome::Released {
        abort_upload(shared, &job).await;
    }
    match shared
        .store
        .finish_job(
            &job.job_id,
            &shared.settings.worker_id,
            outcome,
            Timestamp::now(),
        )
        .await
    {
        Ok(finished) => {
            ferry_control::metrics::count_finished(&finished);
            log_outcome(&finished)
        }
        Err(e) => tracing::info!(job = %job.job_id, error = %e, "transfer ended without the lease"),
    }
}

/// Zoom refused the webhook's download token (HTTP `status`): with the
/// account's Server-to-Server OAuth credentials, ask the API for a fresh one.
async fn fresh_download(
    shared: &Shared,
    job: &Job,
    status: u16,
) -> Result<FreshDownload, TransferError> {
    let account = shared
        .store
        .installed_account(&job.zoom_account_id)
        .await
        .map_err(|e| TransferError::Transient {
            message: format!("store: {e}"),
            retry_after: None,
            stage: Stage::Store,
        })?;
    let Some(oauth) = account.and_then(|a| a.oauth) else {
        metrics::counter!(TOKEN_REFRESHES_TOTAL, "outcome" => "no_credentials").increment(1);
        return Err(TransferError::Permanent(format!(
            "zoom refused the download token (HTTP {status}): it has probably expired (tokens last 24 hours) \
             and the zoom account has no Server-to-Server OAuth credentials to fetch a fresh one; reinstall \
             the account with OAuth credentials, then retry the job"
        )));
    };
    let client_secret = shared
        .secret_box
        .open_secret(&oauth.sealed_client_secret)
        .map_err(|_| {
            TransferError::Permanent(
                "the account's OAuth client secret cannot be read with this daemon's encryption key".into(),
            )
        })?;
    let credentials = Credentials {
        client_id: oauth.client_id,
        client_secret,
    };
    let file_id = job
        .recording_file
        .as_ref()
        .map_or("", |f| f.file_id.as_str());
    let fetched = shared
        .zoom_api
        .fresh_download(
            &job.zoom_account_id,
            &credentials,
            &job.meeting_uuid,
            file_id,
        )
        .await;
    let label = match &fetched {
        Ok(_) => "fetched",
        Err(ApiError::Refused(_)) => "refused",
        Err(ApiError::Unavailable { .. }) => "unavailable",
    };
    metrics::counter!(TOKEN_REFRESHES_TOTAL, "outcome" => label).increment(1);
    fetched.map_err(|e| match e {
        ApiError::Refused(message) => TransferError::Permanent(format!(
            "the download token expired and no fresh one could be fetched: {message}"
        )),
        ApiError::Unavailable {
            message,
            retry_after,
        } => TransferError::Transient {
            message: format!("fetching a fresh download token: {message}"),
            retry_after,
            stage: Stage::Download,
        },
    })
}

/// How a transfer that did not complete is recorded.
enum Stop {
    Record(JobOutcome),
    /// Cancelled, or the lease was lost: not ours to record.
    NotOurs,
}

/// Shutdown releases the job so a restart resumes it.
fn stopped(shutdown: &CancellationToken) -> Stop {
    if shutdown.is_cancelled() {
        Stop::Record(JobOutcome::Released)
    } else {
        Stop::NotOurs
    }
}

async fn abort_upload(shared: &Shared, job: &Job) {
    if let Ok(Some(state)) = shared.store.upload_state(&job.job_id).await {
        match shared
            .sink
            .abort_upload(&state.upload.object_key, &state.upload.upload_id)
            .await
        {
            Ok(()) => {
                let _ = shared.store.drop_upload(&job.job_id).await;
            }
            Err(e) => {
                tracing::warn!(job = %job.job_id, error = %e, "could not abort the upload; retried at start-up")
            }
        }
    }
}

fn log_outcome(job: &Job) {
    tracing::info!(job = %job.job_id, state = job.state.as_str(),
        reason = job.skip_reason.map_or("", |r| r.as_str()), message = %job.message, "transfer ended");
}

/// Exponential backoff with full jitter: a random delay in [base, base × 2^attempt].
pub(super) fn backoff(base: Duration, attempt: u32) -> Duration {
    use rand::Rng;
    let ceiling = base.saturating_mul(1u32 << attempt.min(10));
    let millis = rand::rng()
        .random_range(base.as_millis() as u64..=ceiling.as_millis().max(base.as_millis()) as u64);
    Duration::from_millis(millis)
}
