//! Conformance checks for jobs: upsert, scope, listing, leases, cancel and requeue.

use crate::error::ErrorClass;
use crate::model::*;
use crate::secrets::Sealed;
use crate::store::{LeaseHolder, PageQuery, Store};

use super::{
    LEASE, assert_class, assert_nothing_claimable, at, cancel, claim_expecting, create_job,
    create_tenant, create_user, install_new_account, job_ids, new_media, queued_job,
    recording_file, requeue_to,
};

/// One job per (account, meeting uuid); jobs are scoped to their institution.
pub async fn job_upsert_and_scope(store: &dyn Store) {
    let tenant = create_tenant(store, "upsert").await;
    let other = create_tenant(store, "upsert other").await;
    let before = store.job_counts().await.expect("job counts");
    let new_job = queued_job(&tenant, "meeting-uuid-1==", "Lecture 1", at(100));
    let job = create_job(store, new_job.clone()).await;
    let after = store.job_counts().await.expect("job counts");
    assert_eq!(
        after.count(JobState::Queued),
        before.count(JobState::Queued) + 1,
        "counts cover every institution"
    );
    assert!(
        after.oldest_queued.is_some_and(|t| t <= at(100)),
        "{after:?}"
    );
    assert_eq!(job.institution_id, tenant.institution_id);
    assert_eq!(job.zoom_account_id, tenant.zoom_account_id);
    assert_eq!(job.meeting_uuid, "meeting-uuid-1==");
    assert_eq!(job.meeting_id, new_job.meeting_id);
    assert_eq!(job.topic, "Lecture 1");
    assert_eq!(job.host_email, new_job.host_email);
    assert_eq!(job.meeting_start, new_job.meeting_start);
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.owner_user_id, new_job.owner_user_id);
    assert_eq!(
        job.recording_file, new_job.recording_file,
        "the recording file round-trips"
    );
    assert_eq!((job.skipped_file_count, job.skipped_segment_count), (1, 0));
    assert_eq!((job.attempt_count, job.bytes_transferred), (0, 0));
    assert_eq!((job.media_id.clone(), job.finished_at), (None, None));
    assert_eq!((job.created_at, job.updated_at), (at(100), at(100)));
    assert_eq!(
        store
            .get_job(&tenant.institution_id, &job.job_id)
            .await
            .expect("get job"),
        job
    );

    let mut newer = queued_job(&tenant, "meeting-uuid-1==", "Lecture 1 (renamed)", at(200));
    newer.sealed_download_token = Some(Sealed(vec![0x70, 2]));
    let (again, created) = store.upsert_job(newer).await.expect("upsert newer event");
    assert!(!created, "a second event for the meeting creates no job");
    assert_eq!(again.job_id, job.job_id, "the existing job is returned");
    assert_eq!(
        again.topic, "Lecture 1",
        "the existing job is returned as it is"
    );
    let mut older = queued_job(&tenant, "meeting-uuid-1==", "Lecture 1", at(150));
    older.event_time = at(50);
    let (again, created) = store.upsert_job(older).await.expect("upsert older event");
    assert!(!created);
    assert_eq!(again.job_id, job.job_id);
    // The sealed download credentials have no getter on the trait, so which
    // event's token won is not observable here.

    let same_uuid_other_account = queued_job(&other, "meeting-uuid-1==", "Elsewhere", at(300));
    let elsewhere = create_job(store, same_uuid_other_account).await;
    assert_ne!(
        elsewhere.job_id, job.job_id,
        "the key is the account and meeting uuid together"
    );

    assert_class(
        store.get_job(&other.institution_id, &job.job_id).await,
        ErrorClass::NotFound,
        "get job through another institution",
    );
    assert_class(
        store
            .get_job(&tenant.institution_id, "job_conformance_missing")
            .await,
        ErrorClass::NotFound,
        "get unknown job",
    );
    assert_class(
        store
            .cancel_job(&other.institution_id, &job.job_id, at(400))
            .await,
        ErrorClass::NotFound,
        "cancel job through another institution",
    );
    assert_eq!(
        job_ids(store, &other.institution_id, &JobFilter::default()).await,
        vec![elsewhere.job_id.clone()],
        "jobs are listed only in their institution"
    );

    let skipped = create_job(
        store,
        NewJob {
            state: JobState::Skipped,
            skip_reason: Some(SkipReason::NoMatchingUser),
            message: "no user has host email".into(),
            owner_user_id: None,
            ..queued_job(&tenant, "meeting-uuid-2==", "Unowned", at(500))
        },
    )
    .await;
    assert_eq!(skipped.state, JobState::Skipped);
    assert_eq!(skipped.skip_reason, Some(SkipReason::NoMatchingUser));
    assert_eq!(skipped.message, "no user has host email");
    assert_eq!(skipped.owner_user_id, None);

    cancel(store, &tenant.institution_id, &job.job_id, at(600)).await;
    cancel(store, &other.institution_id, &elsewhere.job_id, at(600)).await;
}

/// `list_jobs` applies every set filter, and pages.
pub async fn job_list_filters(store: &dyn Store) {
    let tenant = create_tenant(store, "filters").await;
    let other = create_tenant(store, "filters other").await;
    let a = &tenant.institution_id;
    let second_account = install_new_account(store, &tenant.configuration_id).await;
    let make = |uuid: &str, account: &str, host: &str, state, reason, created| NewJob {
        zoom_account_id: account.to_string(),
        host_email: host.to_string(),
        state,
        skip_reason: reason,
        ..queued_job(&tenant, uuid, uuid, at(created))
    };
    let first_account = tenant.zoom_account_id.as_str();
    let j1 = create_job(
        store,
        make(
            "m1",
            first_account,
            "Host.One@Example.EDU",
            JobState::Queued,
            None,
            10,
        ),
    )
    .await;
    let j2 = create_job(
        store,
        make(
            "m2",
            first_account,
            "host.two@example.edu",
            JobState::Skipped,
            Some(SkipReason::NoMatchingUser),
            20,
        ),
    )
    .await;
    let j3 = create_job(
        store,
        make(
            "m3",
            &second_account,
            "host.one@example.edu",
            JobState::Skipped,
            Some(SkipReason::TooLong),
            30,
        ),
    )
    .await;
    let j4 = create_job(
        store,
        make(
            "m4",
            &second_account,
            "host.two@example.edu",
            JobState::Queued,
            None,
            40,
        ),
    )
    .await;
    let j5 = create_job(
        store,
        make(
            "m5",
            first_account,
            "host.two@example.edu",
            JobState::Queued,
            None,
            50,
        ),
    )
    .await;
    let foreign = create_job(store, queued_job(&other, "m1", "foreign", at(10))).await;
    let ids = |jobs: &[&Job]| jobs.iter().map(|j| j.job_id.clone()).collect::<Vec<_>>();

    let cases: Vec<(&str, JobFilter, Vec<String>)> = vec![
        (
            "no filter",
            JobFilter::default(),
            ids(&[&j1, &j2, &j3, &j4, &j5]),
        ),
        (
            "queued",
            JobFilter {
                states: vec![JobState::Queued],
                ..JobFilter::default()
            },
            ids(&[&j1, &j4, &j5]),
        ),
        (
            "queued or skipped",
            JobFilter {
                states: vec![JobState::Queued, JobState::Skipped],
                ..JobFilter::default()
            },
            ids(&[&j1, &j2, &j3, &j4, &j5]),
        ),
        (
            "completed",
            JobFilter {
                states: vec![JobState::Completed],
                ..JobFilter::default()
            },
            Vec::new(),
        ),
        (
            "skip reason",
            JobFilter {
                skip_reason: Some(SkipReason::NoMatchingUser),
                ..JobFilter::default()
            },
            ids(&[&j2]),
        ),
        (
            "skipped and too long",
            JobFilter {
                states: vec![JobState::Skipped],
                skip_reason: Some(SkipReason::TooLong),
                ..JobFilter::default()
            },
            ids(&[&j3]),
        ),
        (
            "account",
            JobFilter {
                zoom_account_id: Some(second_account.clone()),
                ..JobFilter::default()
            },
            ids(&[&j3, &j4]),
        ),
        (
            "host email, stored in mixed case",
            JobFilter {
                host_email: Some("host.one@example.edu".into()),
                ..JobFilter::default()
            },
            ids(&[&j1, &j3]),
        ),
        (
            "created in [20, 40)",
            JobFilter {
                created_from: Some(at(20)),
                created_before: Some(at(40)),
                ..JobFilter::default()
            },
            ids(&[&j2, &j3]),
        ),
        (
            "account and host",
            JobFilter {
                zoom_account_id: Some(first_account.to_string()),
                host_email: Some("host.two@example.edu".into()),
                ..JobFilter::default()
            },
            ids(&[&j2, &j5]),
        ),
    ];
    for (name, filter, expected) in cases {
        assert_eq!(job_ids(store, a, &filter).await, expected, "filter: {name}");
    }

    let queued = JobFilter {
        states: vec![JobState::Queued],
        ..JobFilter::default()
    };
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_jobs(a, &queued, &PageQuery { after, size: 2 })
            .await
            .expect("list jobs");
        pages.push(
            page.items
                .iter()
                .map(|j| j.job_id.clone())
                .collect::<Vec<_>>(),
        );
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
        assert!(pages.len() <= 3, "paging does not terminate");
    }
    assert_eq!(
        pages,
        vec![ids(&[&j1, &j4]), ids(&[&j5])],
        "filtered pages of 2"
    );

    for job in [&j1, &j4, &j5] {
        cancel(store, a, &job.job_id, at(60)).await;
    }
    cancel(store, &other.institution_id, &foreign.job_id, at(60)).await;
}

/// Leases: oldest first, renewable by their holder, taken over once expired.
pub async fn job_leases(store: &dyn Store) {
    let tenant = create_tenant(store, "leases").await;
    let a = &tenant.institution_id;
    let t = at(1_000_000);
    let first = create_job(store, queued_job(&tenant, "lease-1", "First", t)).await;
    let second = create_job(
        store,
        queued_job(&tenant, "lease-2", "Second", t.saturating_add_millis(1)),
    )
    .await;

    let claimed = claim_expecting(store, "worker-1", t, &first).await;
    assert_eq!(
        claimed.attempt_count, 0,
        "a claim is not an attempt until the holder begins one"
    );
    assert_eq!(
        store.get_job(a, &first.job_id).await.expect("get").state,
        JobState::Transferring
    );
    claim_expecting(store, "worker-2", t, &second).await;
    assert_nothing_claimable(store, t, "both jobs are leased").await;

    let renewed = store
        .renew_lease(
            LeaseHolder {
                job_id: &first.job_id,
                worker_id: "worker-1",
            },
            LEASE,
            t.saturating_add_millis(10_000),
        )
        .await
        .expect("renew");
    assert!(renewed, "the holder renews its lease");
    let stolen = store
        .renew_lease(
            LeaseHolder {
                job_id: &first.job_id,
                worker_id: "worker-2",
            },
            LEASE,
            t.saturating_add_millis(10_000),
        )
        .await
        .expect("renew");
    assert!(
        !stolen,
        "another worker cannot renew a lease it does not hold"
    );

    // At t+35s the second job's lease (until t+30s) has expired; the first
    // was renewed until t+40s and must not be taken.
    let later = t.saturating_add_millis(35_000);
    let taken_over = claim_expecting(store, "worker-3", later, &second).await;
    assert_eq!(taken_over.attempt_count, 0, "nobody began an attempt");
    let lost = store
        .renew_lease(
            LeaseHolder {
                job_id: &second.job_id,
                worker_id: "worker-2",
            },
            LEASE,
            later,
        )
        .await
        .expect("renew");
    assert!(!lost, "the previous holder's lease is lost");
    assert!(
        store
            .renew_lease(
                LeaseHolder {
                    job_id: &first.job_id,
                    worker_id: "worker-1"
                },
                LEASE,
                later
            )
            .await
            .expect("renew"),
        "an unexpired renewed lease is still held"
    );
    assert_nothing_claimable(store, later, "both leases are valid").await;

    cancel(store, a, &first.job_id, later).await;
    cancel(store, a, &second.job_id, later).await;
}

/// Cancel drops the job (and its lease) from the queue; requeue brings back
/// only final, non-completed jobs.
pub async fn job_cancel_and_requeue(store: &dyn Store) {
    let tenant = create_tenant(store, "cancel").await;
    let a = &tenant.institution_id;
    let replacement_owner = create_user(store, a, "second-owner", "second.owner@example.edu").await;
    let t = at(2_000_000);
    let before = store.job_counts().await.expect("job counts");
    let queued = create_job(store, queued_job(&tenant, "cancel-1", "Queued", t)).await;
    let transferring = create_job(store, queued_job(&tenant, "cancel-2", "Transferring", t)).await;

    let cancelled = cancel(store, a, &queued.job_id, t.saturating_add_millis(1)).await;
    assert_eq!(
        cancelled.state,
        JobState::Cancelled,
        "a queued job can be cancelled"
    );
    claim_expecting(store, "worker-1", t.saturating_add_millis(2), &transferring).await;
    let cancelled_while_held =
        cancel(store, a, &transferring.job_id, t.saturating_add_millis(3)).await;
    assert_eq!(
        cancelled_while_held.state,
        JobState::Cancelled,
        "a transferring job can be cancelled"
    );
    let after = store.job_counts().await.expect("job counts");
    for (state, change) in [
        (JobState::Queued, 0),
        (JobState::Transferring, 0),
        (JobState::Cancelled, 2),
    ] {
        assert_eq!(
            after.count(state),
            before.count(state) + change,
            "{state:?}: {before:?} -> {after:?}"
        );
    }
    assert!(
        !store
            .renew_lease(
                LeaseHolder {
                    job_id: &transferring.job_id,
                    worker_id: "worker-1"
                },
                LEASE,
                t.saturating_add_millis(4)
            )
            .await
            .expect("renew"),
        "cancelling drops the lease"
    );
    assert_class(
        store
            .complete_job(
                LeaseHolder {
                    job_id: &transferring.job_id,
                    worker_id: "worker-1",
                },
                new_media("cancelled"),
                t.saturating_add_millis(4),
            )
            .await,
        ErrorClass::FailedPrecondition,
        "complete a cancelled job",
    );
    assert_nothing_claimable(
        store,
        t.saturating_add_millis(100_000),
        "cancelled jobs are not claimable",
    )
    .await;
    assert_class(
        store
            .cancel_job(a, &queued.job_id, t.saturating_add_millis(5))
            .await,
        ErrorClass::FailedPrecondition,
        "cancel a final job",
    );

    let new_file = recording_file("file-2", t);
    let requeued = store
        .requeue_job(JobRequeue {
            institution_id: a.to_string(),
            job_id: queued.job_id.to_string(),
            now: t.saturating_add_millis(6),
            ..requeue_to(&replacement_owner.user_id, Some(new_file.clone()))
        })
        .await
        .expect("requeue a cancelled job");
    assert_eq!(requeued.state, JobState::Queued);
    assert_eq!(
        requeued.owner_user_id,
        Some(replacement_owner.user_id.clone()),
        "requeue sets the owner"
    );
    assert_eq!(
        requeued.recording_file,
        Some(new_file),
        "requeue sets the file when given"
    );
    let requeue_again = requeue_to(&tenant.owner.user_id, None);
    assert_class(
        store
            .requeue_job(JobRequeue {
                institution_id: a.to_string(),
                job_id: queued.job_id.to_string(),
                now: t.saturating_add_millis(7),
                ..requeue_again.clone()
            })
            .await,
        ErrorClass::FailedPrecondition,
        "requeue a queued job",
    );
    let other = create_tenant(store, "cancel other").await;
    assert_class(
        store
            .requeue_job(JobRequeue {
                institution_id: other.institution_id.to_string(),
                job_id: transferring.job_id.to_string(),
                now: t.saturating_add_millis(7),
                ..requeue_again.clone()
            })
            .await,
        ErrorClass::NotFound,
        "requeue through another institution",
    );

    let skipped = create_job(
        store,
        NewJob {
            state: JobState::Skipped,
            skip_reason: Some(SkipReason::NoMatchingUser),
            owner_user_id: None,
            ..queued_job(&tenant, "cancel-3", "Skipped", t.saturating_add_millis(8))
        },
    )
    .await;
    let requeued_skip = store
        .requeue_job(JobRequeue {
            institution_id: a.to_string(),
            job_id: skipped.job_id.to_string(),
            now: t.saturating_add_millis(9),
            ..requeue_again
        })
        .await
        .expect("requeue a skipped job");
    assert_eq!(requeued_skip.state, JobState::Queued);
    assert_eq!(
        requeued_skip.owner_user_id,
        Some(tenant.owner.user_id.clone())
    );
    assert_eq!(
        requeued_skip.recording_file, skipped.recording_file,
        "requeue without a file keeps it"
    );

    let reclaimed = claim_expecting(store, "worker-2", t.saturating_add_millis(10), &queued).await;
    assert_eq!(
        reclaimed.owner_user_id,
        Some(replacement_owner.user_id),
        "the requeued job is claimable"
    );
    assert_class(
        store
            .requeue_job(JobRequeue {
                institution_id: a.to_string(),
                job_id: queued.job_id.to_string(),
                now: t.saturating_add_millis(11),
                ..requeue_to(&tenant.owner.user_id, None)
            })
            .await,
        ErrorClass::FailedPrecondition,
        "requeue a transferring job",
    );
    cancel(store, a, &queued.job_id, t.saturating_add_millis(12)).await;
    cancel(store, a, &skipped.job_id, t.saturating_add_millis(12)).await;
}
