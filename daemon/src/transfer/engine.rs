//! The transfer engine's scheduling: claim QUEUED jobs with a lease, keep
//! the lease alive, run at most `max_concurrent` transfers, retry failed
//! attempts through the shared retry helper, fetch a fresh download token
//! once when Zoom refuses the webhook's, and record how each job ends. One
//! attempt's stages live in `attempt.rs` and the modules it names; none of
//! them depends back on this one. A slot that finds no job copies a pending
//! companion file of a completed job (`companion`), so jobs go first.

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use ferry_control::model::{CompanionLease, Job, JobOutcome, JobState, Timestamp};
use ferry_control::store::Lease;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::attempt;
use super::budget::{LimitSettings, Limits};
use super::companion;
use super::context::Context;
pub use super::context::{Connections, TransferSettings};
use super::error::TransferError;
use super::retry::retry;
use super::sink::PendingUpload;
use super::token::fresh_download;
use super::zoom_api::FreshDownload;
use crate::metrics::{ACTIVE_TRANSFERS, REPLICAS_ALIVE, TRANSFER_SECONDS};

pub struct TransferEngine;

impl TransferEngine {
    /// Starts the dispatcher; it stops when `shutdown` fires, releasing the
    /// jobs it holds so another start resumes them.
    pub fn start(
        connections: Connections,
        settings: TransferSettings,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) {
        let limits = Limits::new(LimitSettings {
            byte_budget: settings.byte_budget,
            part_size: settings.part_size,
            bandwidth_bytes_per_second: settings.bandwidth_bytes_per_second,
            sink_requests_per_second: settings.sink_requests_per_second,
            download_requests_per_second: settings.download_requests_per_second,
        });
        let Connections {
            store,
            secret_box,
            sink,
            downloader,
            zoom_api,
            marketplace,
        } = connections;
        let context = Arc::new(Context {
            store,
            secret_box,
            sink,
            downloader,
            zoom_api,
            marketplace,
            settings,
            limits,
        });
        let dispatcher_tasks = tasks.clone();
        tasks.spawn(async move {
            heartbeat(&context).await;
            spawn_heartbeats(&dispatcher_tasks, context.clone(), shutdown.clone());
            clean_up_uploads(&context).await;
            dispatch(context, shutdown, dispatcher_tasks).await;
        });
    }
}

/// How long a replica that stopped heart-beating still counts as alive.
fn replica_ttl(context: &Context) -> std::time::Duration {
    context.settings.heartbeat * 3
}

/// Tells the store this replica is alive and takes its share of the limits
/// that protect Zoom from the number of replicas alive.
async fn heartbeat(context: &Context) {
    let beat = context
        .store
        .replica_heartbeat(
            &context.settings.worker_id,
            Timestamp::now(),
            replica_ttl(context),
        )
        .await;
    match beat {
        Ok(alive) => {
            context.limits.set_replicas(alive);
            metrics::gauge!(REPLICAS_ALIVE).set(f64::from(alive));
        }
        Err(e) => tracing::warn!(error = %e, "could not record this replica's heartbeat"),
    }
}

/// Heart-beats every `transfer.heartbeat_secs` until shutdown, then leaves
/// the registry so the others take its share at once.
fn spawn_heartbeats(tasks: &TaskTracker, context: Arc<Context>, shutdown: CancellationToken) {
    tasks.spawn(async move {
        let mut every = tokio::time::interval(context.settings.heartbeat);
        every.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = every.tick() => heartbeat(&context).await,
            }
        }
        if let Err(e) = context.store.replica_gone(&context.settings.worker_id).await {
            tracing::info!(error = %e, "could not leave the replica registry; others drop it after its ttl");
        }
    });
}

/// Aborts multipart uploads of jobs that ended, and uploads under our prefix
/// that the store does not know (left by a crash between create and record).
async fn clean_up_uploads(context: &Context) {
    match context.store.abandoned_uploads().await {
        Ok(uploads) => {
            for (job_id, upload) in uploads {
                if context
                    .sink
                    .abort_upload(&upload.object_key, &upload.upload_id)
                    .await
                    .is_ok()
                {
                    let _ = context.store.drop_upload(&job_id).await;
                    tracing::info!(job = %job_id, "aborted the upload of a job that ended");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not list abandoned uploads"),
    }
    // Only keys under "{prefix}/" are ours; with no prefix, nothing in the
    // bucket can be told apart from another application's, so no sweep.
    let prefix = context.settings.key_prefix.trim_matches('/');
    if prefix.is_empty() {
        tracing::info!(
            "transfer.key_prefix is empty: unfinished uploads Ferry no longer tracks are not swept"
        );
        return;
    }
    // One replica sweeps at a time (the sweep is safe twice over, since only
    // old untracked uploads go and aborting one again is no error, but it
    // lists the whole prefix).
    let duty = context
        .store
        .take_duty(
            "sweep_orphaned_uploads",
            &context.settings.worker_id,
            Timestamp::now(),
            context.settings.lease,
        )
        .await;
    match duty {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!("another replica is sweeping unfinished uploads");
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not take the sweep of unfinished uploads");
            return;
        }
    }
    let (tracked, listed) = (
        context.store.tracked_upload_ids().await,
        context.sink.list_uploads(&format!("{prefix}/")).await,
    );
    // An upload younger than a lease may belong to a worker (on any replica)
    // that created it and has not recorded it yet: never touch it.
    let settled_before = std::time::SystemTime::now() - context.settings.lease;
    match (tracked, listed) {
        (Ok(tracked), Ok(listed)) => {
            for upload in listed {
                if is_orphan(&upload, &tracked, settled_before) {
                    let _ = context
                        .sink
                        .abort_upload(&upload.key, &upload.upload_id)
                        .await;
                    tracing::info!(upload = %upload.upload_id, "aborted an orphaned multipart upload");
                }
            }
        }
        (Err(e), _) => tracing::warn!(error = %e, "could not list tracked uploads"),
        (_, Err(e)) => tracing::warn!(error = %e, "could not list the sink's unfinished uploads"),
    }
}

/// An unfinished upload is an orphan when the store does not track it and
/// it was started before `settled_before` (one lease ago); an upload whose
/// start the sink does not tell is left alone.
fn is_orphan(upload: &PendingUpload, tracked: &[String], settled_before: SystemTime) -> bool {
    !tracked.contains(&upload.upload_id)
        && upload
            .initiated
            .is_some_and(|initiated| initiated < settled_before)
}

async fn dispatch(context: Arc<Context>, shutdown: CancellationToken, tasks: TaskTracker) {
    let slots = Arc::new(Semaphore::new(context.settings.max_concurrent.max(1)));
    let mut events = context.store.subscribe_job_events();
    loop {
        let slot = tokio::select! {
            _ = shutdown.cancelled() => return,
            slot = slots.clone().acquire_owned() => slot.expect("slots are never closed"),
        };
        let claimed = context
            .store
            .claim_job(
                &context.settings.worker_id,
                context.settings.lease,
                Timestamp::now(),
            )
            .await;
        match claimed {
            Ok(Some(lease)) => {
                let (context, shutdown) = (context.clone(), shutdown.clone());
                tasks.spawn(async move {
                    run_job(&context, lease, &shutdown).await;
                    drop(slot);
                });
            }
            Ok(None) => {
                // No job waits: a slot left over copies a pending companion
                // file of a completed job.
                if let Some(claimed) = claim_companion(&context).await {
                    let (context, shutdown) = (context.clone(), shutdown.clone());
                    tasks.spawn(async move {
                        companion::run(&context, claimed, &shutdown).await;
                        drop(slot);
                    });
                    continue;
                }
                drop(slot);
                // Sleep until a job is queued or completes (its companions
                // become claimable), or the poll interval passes: leases of
                // crashed workers expire, and retried or late companions
                // come, without an event.
                let wait = async {
                    loop {
                        match events.recv().await {
                            Ok(event)
                                if event.job.state == JobState::Queued
                                    || (event.job.state == JobState::Completed
                                        && !event.progress_only) =>
                            {
                                return;
                            }
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
                    _ = tokio::time::sleep(context.settings.poll_interval) => {}
                }
            }
            Err(e) => {
                drop(slot);
                tracing::warn!(error = %e, "could not claim a job");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(context.settings.poll_interval) => {}
                }
            }
        }
    }
}

/// A pending companion of a completed job for this worker, when companions
/// are copied; a store failure is logged and waits for the next look.
async fn claim_companion(context: &Context) -> Option<CompanionLease> {
    if !context.settings.companions.enabled {
        return None;
    }
    let claimed = context
        .store
        .claim_companion(
            &context.settings.worker_id,
            context.settings.lease,
            Timestamp::now(),
        )
        .await;
    claimed
        .inspect_err(|e| tracing::warn!(error = %e, "could not claim a companion file"))
        .ok()
        .flatten()
}

/// Keeps the lease alive and stops the transfer when it is lost or the job
/// is cancelled.
fn watch_lease(
    context: &Arc<Context>,
    job_id: &str,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let (context, job_id) = (context.clone(), job_id.to_string());
    let mut events = context.store.subscribe_job_events();
    tokio::spawn(async move {
        let mut heartbeat = tokio::time::interval(context.settings.heartbeat);
        heartbeat.tick().await;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = heartbeat.tick() => {
                    let renewed = context
                        .store
                        .renew_lease(context.holder(&job_id), context.settings.lease, Timestamp::now())
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

async fn run_job(context: &Arc<Context>, lease: Lease, shutdown: &CancellationToken) {
    let _active = ActiveTransfer::start();
    let started = std::time::Instant::now();
    let job = lease.job;
    let stop = shutdown.child_token();
    let watcher = watch_lease(context, &job.job_id, stop.clone());
    // A fresh download token, fetched once when Zoom refuses the webhook's.
    let fresh = OnceLock::new();
    let policy = context.settings.retry_policy();
    let result = retry(policy, "transfer", &stop, |_| {
        attempt_with_fresh_token(context, &job, &stop, &fresh)
    })
    .await;
    let outcome = match result {
        Ok(()) => None,
        Err(TransferError::Transient { message, .. }) => Some(Stop::Record(JobOutcome::Failed {
            message: format!("gave up after {} attempts: {message}", policy.max_attempts),
        })),
        Err(TransferError::Permanent(message)) => {
            Some(Stop::Record(JobOutcome::Failed { message }))
        }
        Err(TransferError::Cap { reason, message }) => {
            Some(Stop::Record(JobOutcome::Skipped { reason, message }))
        }
        Err(TransferError::Stopped) => Some(stopped(shutdown)),
        // Turned into a refresh or a failure below; kept exhaustive.
        Err(TransferError::TokenRejected { status }) => Some(Stop::Record(JobOutcome::Failed {
            message: format!("zoom refused the download token (HTTP {status})"),
        })),
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
            if let Ok(current) = context
                .store
                .get_job(&job.institution_id, &job.job_id)
                .await
                && current.state == JobState::Cancelled
            {
                abort_upload(context, &job).await;
                tracing::info!(job = %job.job_id, "transfer cancelled; upload aborted");
            }
            return;
        }
        Some(Stop::Record(outcome)) => outcome,
    };
    if outcome != JobOutcome::Released {
        abort_upload(context, &job).await;
    }
    match context
        .store
        .finish_job(context.holder(&job.job_id), outcome, Timestamp::now())
        .await
    {
        Ok(finished) => {
            ferry_control::metrics::count_finished(&finished);
            log_outcome(&finished)
        }
        Err(e) => tracing::info!(job = %job.job_id, error = %e, "transfer ended without the lease"),
    }
}

/// One attempt; when Zoom refuses the webhook's download token, a fresh one
/// is fetched (once per job run) and the attempt runs again at once.
async fn attempt_with_fresh_token(
    context: &Arc<Context>,
    job: &Job,
    stop: &CancellationToken,
    fresh: &OnceLock<FreshDownload>,
) -> Result<(), TransferError> {
    let refused_even_fresh = |status: u16| {
        TransferError::Permanent(format!(
            "zoom refused the download (HTTP {status}) even with a freshly fetched download token; check \
             the account's cloud recording settings and the OAuth app's scopes"
        ))
    };
    match attempt::run(context, job, stop, fresh.get()).await {
        Err(TransferError::TokenRejected { status }) if fresh.get().is_none() => {
            let download = fresh_download(context, job, status).await?;
            tracing::info!(job = %job.job_id, "fetched a fresh download token; retrying");
            let fresh = fresh.get_or_init(|| download);
            match attempt::run(context, job, stop, Some(fresh)).await {
                Err(TransferError::TokenRejected { status }) => Err(refused_even_fresh(status)),
                other => other,
            }
        }
        Err(TransferError::TokenRejected { status }) => Err(refused_even_fresh(status)),
        other => other,
    }
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

async fn abort_upload(context: &Context, job: &Job) {
    if let Ok(Some(state)) = context.store.upload_state(&job.job_id).await {
        match context
            .sink
            .abort_upload(&state.upload.object_key, &state.upload.upload_id)
            .await
        {
            Ok(()) => {
                let _ = context.store.drop_upload(&job.job_id).await;
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn only_untracked_uploads_older_than_a_lease_are_orphans() {
        let now = SystemTime::now();
        let lease = Duration::from_secs(60);
        let upload = |id: &str, age: Option<Duration>| PendingUpload {
            key: format!("recordings/{id}.mp4"),
            upload_id: id.to_string(),
            initiated: age.map(|age| now - age),
        };
        let tracked = vec!["tracked".to_string()];
        let settled_before = now - lease;
        let old = Some(Duration::from_secs(61));
        let young = Some(Duration::from_secs(59));
        assert!(is_orphan(&upload("old", old), &tracked, settled_before));
        assert!(!is_orphan(
            &upload("tracked", old),
            &tracked,
            settled_before
        ));
        assert!(
            !is_orphan(&upload("young", young), &tracked, settled_before),
            "another replica may have just started it"
        );
        assert!(
            !is_orphan(&upload("unknown-age", None), &tracked, settled_before),
            "an upload of unknown age is left alone"
        );
    }
}
