//! Conformance check for `job_counts`: the counts per state and the oldest
//! queued job follow every change a job goes through (creates, duplicate
//! deliveries, claims, completions, skips, failures, releases, cancels and
//! requeues) and agree with a recount of the jobs themselves.

use std::collections::HashMap;

use crate::model::*;
use crate::store::{LeaseHolder, PageQuery, Store};

use super::{LEASE, at, cancel, create_job, create_tenant, new_media, queued_job, requeue_to};

/// Every job of the institution, by state, read page by page.
async fn recount(store: &dyn Store, institution_id: &str) -> (HashMap<JobState, u64>, Vec<Job>) {
    let mut by_state = HashMap::new();
    let mut queued = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_jobs(
                institution_id,
                &JobFilter::default(),
                &PageQuery { after, size: 3 },
            )
            .await
            .expect("list jobs");
        for job in page.items {
            *by_state.entry(job.state).or_insert(0) += 1;
            if job.state == JobState::Queued {
                queued.push(job);
            }
        }
        match page.next_after {
            Some(next) => after = Some(next),
            None => return (by_state, queued),
        }
    }
}

/// The counts moved from `before` exactly by this institution's recount, and
/// the oldest queued job is the recount's (no other check leaves one queued).
async fn assert_counts_match(
    store: &dyn Store,
    institution_id: &str,
    before: &JobCounts,
    when: &str,
) {
    let after = store.job_counts().await.expect("job counts");
    let (recounted, queued) = recount(store, institution_id).await;
    for state in JobState::ALL {
        assert_eq!(
            after.count(state),
            before.count(state) + recounted.get(&state).copied().unwrap_or(0),
            "{when}: {state:?} count; before {before:?}, after {after:?}, recount {recounted:?}"
        );
    }
    assert_eq!(
        after.oldest_queued,
        queued.iter().map(|job| job.updated_at).min(),
        "{when}: oldest queued job"
    );
}

pub async fn job_counts_follow_every_change(store: &dyn Store) {
    let tenant = create_tenant(store, "counts").await;
    let a = &tenant.institution_id;
    let before = store.job_counts().await.expect("job counts");
    assert_eq!(
        before.oldest_queued, None,
        "another check left a queued job"
    );
    let t = at(5_000_000);
    for i in 0..6 {
        let job = queued_job(
            &tenant,
            &format!("counts-{i}"),
            "Counted",
            t.saturating_add_millis(i),
        );
        create_job(store, job).await;
    }
    let skipped_at_intake = create_job(
        store,
        NewJob {
            state: JobState::Skipped,
            skip_reason: Some(SkipReason::NoMatchingUser),
            owner_user_id: None,
            ..queued_job(
                &tenant,
                "counts-skipped",
                "Skipped",
                t.saturating_add_millis(10),
            )
        },
    )
    .await;
    // A duplicate delivery changes no count.
    let (_, created) = store
        .upsert_job(queued_job(
            &tenant,
            "counts-0",
            "Counted",
            t.saturating_add_millis(20),
        ))
        .await
        .expect("upsert duplicate");
    assert!(!created);
    assert_counts_match(store, a, &before, "after creates and a duplicate").await;

    // Claims, in creation order, each ending differently.
    let claim = async |offset: i64| {
        let lease = store
            .claim_job("worker-counts", LEASE, t.saturating_add_millis(offset))
            .await
            .expect("claim")
            .expect("a queued job to claim");
        lease.job.job_id
    };
    let completed = claim(100).await;
    let skipped = claim(101).await;
    let failed = claim(102).await;
    let released = claim(103).await;
    let held = claim(104).await;
    assert_counts_match(store, a, &before, "after claims").await;
    let holder = |job_id| LeaseHolder {
        job_id,
        worker_id: "worker-counts",
    };
    store
        .complete_job(
            holder(&completed),
            new_media("counts"),
            t.saturating_add_millis(200),
        )
        .await
        .expect("complete");
    for (job_id, outcome) in [
        (
            &skipped,
            JobOutcome::Skipped {
                reason: SkipReason::TooLarge,
                message: "too large".into(),
            },
        ),
        (
            &failed,
            JobOutcome::Failed {
                message: "broken".into(),
            },
        ),
        (&released, JobOutcome::Released),
    ] {
        store
            .finish_job(holder(job_id), outcome, t.saturating_add_millis(201))
            .await
            .expect("finish");
    }
    assert_counts_match(
        store,
        a,
        &before,
        "after completion, skip, failure, release",
    )
    .await;

    let cancelled = cancel(store, a, &held, t.saturating_add_millis(300)).await;
    for job_id in [
        &skipped,
        &failed,
        &cancelled.job_id,
        &skipped_at_intake.job_id,
    ] {
        store
            .requeue_job(JobRequeue {
                institution_id: a.clone(),
                job_id: job_id.clone(),
                now: t.saturating_add_millis(400),
                ..requeue_to(&tenant.owner.user_id, None)
            })
            .await
            .expect("requeue");
    }
    assert_counts_match(store, a, &before, "after cancel and requeues").await;

    // Leave nothing claimable for the checks that follow.
    let (_, queued) = recount(store, a).await;
    for job in queued {
        cancel(store, a, &job.job_id, t.saturating_add_millis(500)).await;
    }
    assert_counts_match(store, a, &before, "after cancelling the rest").await;
}

/// The states of the jobs a seeding test stores, straight into a database
/// the migrations before the kept counts made, the first two queued (their
/// `created_ms` is 1,000 plus their position, so the oldest queued is
/// 1,000, then 1,001 once the first is cancelled).
pub const PRE_COUNTS_JOB_STATES: [&str; 6] = [
    "queued",
    "queued",
    "completed",
    "skipped",
    "completed",
    "failed",
];

/// The insert of one such job, its parameters (job id, state, created_ms)
/// written by `placeholder(1..=3)` in the backend's own syntax.
pub fn pre_counts_job_insert(placeholder: fn(usize) -> String) -> String {
    let (id, state, created) = (placeholder(1), placeholder(2), placeholder(3));
    format!(
        "INSERT INTO jobs (job_id, institution_id, zoom_account_id, meeting_uuid, meeting_id, topic,
            host_email, host_email_key, state, message, skipped_file_count, skipped_segment_count,
            created_ms, updated_ms)
         VALUES ({id}, 'inst_old', 'acct', {id}, 1, 't', 'h@x.edu', 'h@x.edu', {state}, '', 0, 0, {created}, {created})"
    )
}

/// What a store first opened on the `PRE_COUNTS_JOB_STATES` jobs reports:
/// counts equal to `recounted` (the backend's own count of the table, in
/// state-name order) and the oldest queued job. Then cancels that job, for
/// `pre_counts_after_cancel` on a reopened store.
pub async fn pre_counts_seeded(store: &dyn Store, recounted: Vec<(JobState, u64)>) {
    let mut seeded = store.job_counts().await.expect("counts");
    seeded.by_state.sort_by_key(|(state, _)| state.as_str());
    assert_eq!(seeded.by_state, recounted);
    assert_eq!(seeded.oldest_queued, Some(Timestamp(1_000)));
    store
        .cancel_job("inst_old", &format!("job_{:032}", 0), Timestamp(9_000))
        .await
        .expect("cancel");
}

/// The counts after `pre_counts_seeded`'s cancel, read by a reopened store.
pub async fn pre_counts_after_cancel(store: &dyn Store, recounted: Vec<(JobState, u64)>) {
    let mut counts = store.job_counts().await.expect("counts");
    counts.by_state.sort_by_key(|(state, _)| state.as_str());
    assert_eq!(counts.by_state, recounted);
    assert_eq!(counts.oldest_queued, Some(Timestamp(1_001)));
}
