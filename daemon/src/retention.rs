//! The retention task: what a finished job no longer needs is not kept.
//! Every `interval` (and once at start) it asks the store to erase the
//! sealed download details of SKIPPED, FAILED and CANCELLED jobs finished
//! more than `keep_retry_details` ago (COMPLETED jobs lose theirs at
//! completion), and, when `keep_jobs` is set, to delete such jobs finished
//! longer ago than that. It works in small batches with a pause between
//! them, so webhooks queued behind a batch on the store's writer wait for
//! one batch at most. It never decides what a job needs: the store's
//! `sweep_retention` does. Each pass also forgets the web flows' expired
//! tickets (install states, pending installs, console sessions), which no
//! lookup returns once expired but which would otherwise pile up.

use std::sync::Arc;
use std::time::Duration;

use ferry_control::model::Timestamp;
use ferry_control::store::{RetentionSweep, RetentionSwept, Store};
use tokio_util::sync::CancellationToken;

/// What the retention task keeps, and how it paces itself.
#[derive(Clone, Copy, Debug)]
pub struct RetentionSettings {
    pub keep_retry_details: Duration,
    pub keep_jobs: Option<Duration>,
    /// Time between two sweeps.
    pub interval: Duration,
    /// Most jobs one store write touches.
    pub batch: u32,
    /// Pause between two batches of one sweep.
    pub pause: Duration,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            keep_retry_details: Duration::from_secs(30 * 24 * 60 * 60),
            keep_jobs: None,
            interval: Duration::from_secs(60 * 60),
            batch: 500,
            pause: Duration::from_millis(20),
        }
    }
}

fn before(now: Timestamp, keep: Duration) -> Timestamp {
    now.saturating_add_millis(-i64::try_from(keep.as_millis()).unwrap_or(i64::MAX))
}

/// Sweeps until nothing is left to erase or delete (or shutdown); returns
/// what it did.
pub async fn sweep(
    store: &dyn Store,
    settings: &RetentionSettings,
    shutdown: &CancellationToken,
) -> RetentionSwept {
    let mut total = RetentionSwept::default();
    while !shutdown.is_cancelled() {
        let now = Timestamp::now();
        let pass = RetentionSweep {
            erase_secrets_finished_before: before(now, settings.keep_retry_details),
            delete_jobs_finished_before: settings.keep_jobs.map(|keep| before(now, keep)),
            max_jobs: settings.batch,
        };
        match store.sweep_retention(pass).await {
            Ok(swept) => {
                total.secrets_erased += swept.secrets_erased;
                total.jobs_deleted += swept.jobs_deleted;
                let full = u64::from(settings.batch);
                if swept.secrets_erased < full && swept.jobs_deleted < full {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "retention sweep failed; retried at the next interval");
                break;
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(settings.pause) => {}
        }
    }
    total
}

/// Runs `sweep` now and every `interval` until `shutdown`.
pub async fn run(store: Arc<dyn Store>, settings: RetentionSettings, shutdown: CancellationToken) {
    loop {
        let swept = sweep(store.as_ref(), &settings, &shutdown).await;
        if swept != RetentionSwept::default() {
            tracing::info!(
                secrets_erased = swept.secrets_erased,
                jobs_deleted = swept.jobs_deleted,
                "retention sweep erased download details and deleted expired jobs"
            );
        }
        match store.sweep_tickets(Timestamp::now()).await {
            Ok(0) => {}
            Ok(tickets) => tracing::debug!(tickets, "expired web tickets forgotten"),
            Err(e) => {
                tracing::warn!(error = %e, "expired web tickets not swept; retried at the next interval")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(settings.interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_control::model::{JobSource, JobState, NewJob, SkipReason};
    use ferry_control::secrets::Sealed;
    use ferry_control::store::{JobStore, SqliteConfig, SqliteStore, TenantStore};

    fn skipped_job(institution_id: &str, i: u64, finished: Timestamp) -> NewJob {
        NewJob {
            institution_id: institution_id.to_string(),
            zoom_account_id: "acct".into(),
            meeting_uuid: format!("m{i}"),
            meeting_id: i,
            topic: "t".into(),
            host_email: "h@example.edu".into(),
            meeting_start: None,
            state: JobState::Skipped,
            skip_reason: Some(SkipReason::NoMatchingUser),
            message: String::new(),
            owner_user_id: None,
            recording_file: None,
            skipped_file_count: 0,
            skipped_segment_count: 0,
            sealed_download_url: Some(Sealed(vec![1])),
            sealed_download_token: None,
            sealed_recording: Some(Sealed(vec![2])),
            event_time: finished,
            now: finished,
            source: JobSource::Webhook,
        }
    }

    /// A sweep works through more jobs than one batch, erasing the old and
    /// deleting the expired, and leaves recent jobs alone.
    #[tokio::test]
    async fn a_sweep_goes_batch_by_batch_until_done() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&SqliteConfig::new(dir.path().join("ferry.db"))).unwrap();
        let institution = store.create_institution("U", Timestamp(0)).await.unwrap();
        let now = Timestamp::now();
        let day = 24 * 60 * 60 * 1000;
        for i in 0..5 {
            let finished = now.saturating_add_millis(-40 * day);
            store
                .upsert_job(skipped_job(&institution.institution_id, i, finished))
                .await
                .unwrap();
        }
        for i in 5..8 {
            let finished = now.saturating_add_millis(-100 * day);
            store
                .upsert_job(skipped_job(&institution.institution_id, i, finished))
                .await
                .unwrap();
        }
        store
            .upsert_job(skipped_job(&institution.institution_id, 9, now))
            .await
            .unwrap();
        let settings = RetentionSettings {
            keep_jobs: Some(Duration::from_secs(90 * 24 * 60 * 60)),
            batch: 2,
            pause: Duration::from_millis(1),
            ..RetentionSettings::default()
        };
        let swept = sweep(&store, &settings, &CancellationToken::new()).await;
        assert_eq!(
            swept,
            RetentionSwept {
                secrets_erased: 8,
                jobs_deleted: 3
            }
        );
        let counts = store.job_counts().await.unwrap();
        assert_eq!(counts.count(JobState::Skipped), 6);
        let again = sweep(&store, &settings, &CancellationToken::new()).await;
        assert_eq!(again, RetentionSwept::default(), "nothing left to do");
    }
}
