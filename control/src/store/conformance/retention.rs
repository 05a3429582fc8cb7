//! Conformance check for retention: a completed job's sealed download
//! details are erased at completion; the retention sweep erases those of
//! other final jobs once they are old enough, and deletes expired final jobs
//! when asked, leaving completed ones (their media names them) and recent ones.

use crate::error::ErrorClass;
use crate::model::*;
use crate::store::{LeaseHolder, RetentionSweep, Store};

use super::{
    assert_class, at, cancel, claim_expecting, create_job, create_tenant, new_media, queued_job,
};

async fn holds_secrets(store: &dyn Store, institution_id: &str, job_id: &str) -> bool {
    let secrets = store
        .get_job_secrets(institution_id, job_id)
        .await
        .expect("job secrets");
    secrets.sealed_download_url.is_some()
        || secrets.sealed_download_token.is_some()
        || secrets
            .sealed_recording
            .is_some_and(|sealed| !sealed.0.is_empty())
}

/// Erased by the sweep: no URL or token, and the empty recording that marks
/// the erasure for `RetryJob`.
async fn erased_by_sweep(store: &dyn Store, institution_id: &str, job_id: &str) -> bool {
    let secrets = store
        .get_job_secrets(institution_id, job_id)
        .await
        .expect("job secrets");
    secrets.sealed_download_url.is_none()
        && secrets.sealed_download_token.is_none()
        && secrets
            .sealed_recording
            .is_some_and(|sealed| sealed.0.is_empty())
}

pub async fn job_retention(store: &dyn Store) {
    let tenant = create_tenant(store, "retention").await;
    let a = &tenant.institution_id;
    let t = at(6_000_000);
    let holder = |job_id| LeaseHolder {
        job_id,
        worker_id: "worker-retention",
    };

    let completed = create_job(store, queued_job(&tenant, "ret-completed", "Done", t)).await;
    claim_expecting(store, "worker-retention", t, &completed).await;
    assert!(holds_secrets(store, a, &completed.job_id).await);
    store
        .complete_job(
            holder(&completed.job_id),
            new_media("retention"),
            t.saturating_add_millis(1),
        )
        .await
        .expect("complete");
    assert!(
        !holds_secrets(store, a, &completed.job_id).await,
        "completion erases the download details"
    );

    let skipped = |uuid: &str, now: Timestamp| NewJob {
        state: JobState::Skipped,
        skip_reason: Some(SkipReason::NoMatchingUser),
        owner_user_id: None,
        ..queued_job(&tenant, uuid, "Skipped", now)
    };
    let old_skipped = create_job(store, skipped("ret-skipped", t.saturating_add_millis(2))).await;
    let failed = create_job(store, queued_job(&tenant, "ret-failed", "Failed", t)).await;
    claim_expecting(
        store,
        "worker-retention",
        t.saturating_add_millis(3),
        &failed,
    )
    .await;
    store
        .finish_job(
            holder(&failed.job_id),
            JobOutcome::Failed {
                message: "broken".into(),
            },
            t.saturating_add_millis(4),
        )
        .await
        .expect("fail");
    let cancelled = create_job(store, queued_job(&tenant, "ret-cancelled", "Cancelled", t)).await;
    cancel(store, a, &cancelled.job_id, t.saturating_add_millis(5)).await;
    let recent = create_job(store, skipped("ret-recent", t.saturating_add_millis(100))).await;
    let old = [&old_skipped, &failed, &cancelled];
    for job in old.iter().chain([&&recent]) {
        assert!(
            holds_secrets(store, a, &job.job_id).await,
            "a final job keeps its details until the sweep"
        );
    }

    let cutoff = t.saturating_add_millis(50);
    let one = store
        .sweep_retention(RetentionSweep {
            erase_secrets_finished_before: cutoff,
            delete_jobs_finished_before: None,
            max_jobs: 1,
        })
        .await
        .expect("sweep one");
    assert_eq!(one.secrets_erased, 1, "a sweep erases at most max_jobs");
    let rest = store
        .sweep_retention(RetentionSweep {
            erase_secrets_finished_before: cutoff,
            delete_jobs_finished_before: None,
            max_jobs: 1000,
        })
        .await
        .expect("sweep");
    assert!(rest.secrets_erased >= 2, "{rest:?}");
    assert_eq!(rest.jobs_deleted, 0, "no job_days, no deletion");
    for job in old {
        assert!(
            erased_by_sweep(store, a, &job.job_id).await,
            "{:?} finished before the cutoff keeps no details, marked erased",
            job.meeting_uuid
        );
        store
            .get_job(a, &job.job_id)
            .await
            .expect("the job record stays");
    }
    assert!(
        holds_secrets(store, a, &recent.job_id).await,
        "a recent job keeps its details"
    );

    let before = store.job_counts().await.expect("counts");
    let deleted = store
        .sweep_retention(RetentionSweep {
            erase_secrets_finished_before: cutoff,
            delete_jobs_finished_before: Some(cutoff),
            max_jobs: 1000,
        })
        .await
        .expect("sweep with deletion");
    assert!(deleted.jobs_deleted >= 3, "{deleted:?}");
    for job in old {
        assert_class(
            store.get_job(a, &job.job_id).await,
            ErrorClass::NotFound,
            "expired job",
        );
    }
    store
        .get_job(a, &completed.job_id)
        .await
        .expect("a completed job stays");
    store
        .get_job(a, &recent.job_id)
        .await
        .expect("a recent job stays");
    let after = store.job_counts().await.expect("counts");
    assert_eq!(
        before.count(JobState::Skipped)
            + before.count(JobState::Failed)
            + before.count(JobState::Cancelled)
            - deleted.jobs_deleted,
        after.count(JobState::Skipped)
            + after.count(JobState::Failed)
            + after.count(JobState::Cancelled),
        "deleted jobs leave the counts"
    );
}
