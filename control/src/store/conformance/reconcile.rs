//! Conformance checks for what reconciling with Zoom's recordings list
//! needs of the store: a job's source, kept from its first decision; the
//! accounts the reconciler may list; a meeting's job by its business key;
//! failing the job of a recording Zoom deleted; the reconciler's cursor;
//! and backfills as resources (scoped, resumable, cancel wins).

use crate::error::ErrorClass;
use crate::model::*;
use crate::secrets::Sealed;
use crate::store::{AccountTokens, LeaseHolder, PageQuery, Store};

use super::{
    LEASE, assert_class, at, cancel, claim_expecting, create_job, create_tenant,
    install_new_account, queued_job,
};

pub async fn job_sources(store: &dyn Store) {
    let tenant = create_tenant(store, "sources").await;
    let found = create_job(
        store,
        NewJob {
            source: JobSource::Reconcile,
            ..queued_job(&tenant, "found-by-reconcile==", "Lost webhook", at(100))
        },
    )
    .await;
    assert_eq!(found.source, JobSource::Reconcile);
    // The late webhook is a duplicate: the job keeps its source, and its
    // fresher token replaces the older one.
    let (again, created) = store
        .upsert_job(NewJob {
            source: JobSource::Webhook,
            sealed_download_token: Some(Sealed(vec![0x70, 2])),
            event_time: at(200),
            ..queued_job(&tenant, "found-by-reconcile==", "Lost webhook", at(200))
        })
        .await
        .expect("upsert duplicate");
    assert!(!created);
    assert_eq!(again.job_id, found.job_id);
    assert_eq!(again.source, JobSource::Reconcile, "the first source stays");
    let secrets = store
        .get_job_secrets(&tenant.institution_id, &found.job_id)
        .await
        .expect("secrets");
    assert_eq!(secrets.sealed_download_token, Some(Sealed(vec![0x70, 2])));

    let webhook = create_job(
        store,
        queued_job(&tenant, "by-webhook==", "Hooked", at(300)),
    )
    .await;
    assert_eq!(webhook.source, JobSource::Webhook);
    let backfilled = create_job(
        store,
        NewJob {
            source: JobSource::Backfill,
            state: JobState::Skipped,
            skip_reason: Some(SkipReason::NoMatchingUser),
            ..queued_job(&tenant, "by-backfill==", "Old", at(400))
        },
    )
    .await;
    for (source, expected) in [
        (JobSource::Reconcile, vec![found.job_id.clone()]),
        (JobSource::Webhook, vec![webhook.job_id.clone()]),
        (JobSource::Backfill, vec![backfilled.job_id.clone()]),
    ] {
        let filter = JobFilter {
            source: Some(source),
            ..JobFilter::default()
        };
        let listed: Vec<String> = store
            .list_jobs(&tenant.institution_id, &filter, &PageQuery::first(0))
            .await
            .expect("list")
            .items
            .into_iter()
            .map(|job| {
                assert_eq!(job.source, source, "listed jobs carry their source");
                job.job_id
            })
            .collect();
        assert_eq!(listed, expected, "source filter {source:?}");
    }
    for job in [&found, &webhook] {
        cancel(store, &tenant.institution_id, &job.job_id, at(500)).await;
    }
}

pub async fn gone_recordings(store: &dyn Store) {
    let tenant = create_tenant(store, "gone").await;
    let gone = |uuid: &str, now| RecordingGone {
        zoom_account_id: tenant.zoom_account_id.clone(),
        meeting_uuid: uuid.to_string(),
        message: "zoom says the recording was deleted".into(),
        now,
    };
    let mut events = store.subscribe_job_events();
    let queued = create_job(store, queued_job(&tenant, "gone-queued==", "Q", at(100))).await;
    let found = store
        .job_for_meeting(&tenant.zoom_account_id, "gone-queued==")
        .await
        .expect("job for meeting");
    assert_eq!(found.map(|j| j.job_id), Some(queued.job_id.clone()));
    assert!(
        store
            .job_for_meeting("another-account", "gone-queued==")
            .await
            .expect("job for meeting")
            .is_none(),
        "the business key includes the account"
    );
    let failed = store
        .fail_gone_recording(gone("gone-queued==", at(200)))
        .await
        .expect("fail gone")
        .expect("a queued job fails");
    assert_eq!(failed.state, JobState::Failed);
    assert_eq!(failed.message, "zoom says the recording was deleted");
    assert_eq!(failed.finished_at, Some(at(200)));
    assert_eq!(
        super::next_event_for(&mut events, &queued.job_id)
            .await
            .job
            .state,
        JobState::Queued
    );
    assert_eq!(
        super::next_event_for(&mut events, &queued.job_id)
            .await
            .job
            .state,
        JobState::Failed,
        "watchers see it fail"
    );
    // Again: it already ended, so nothing changes.
    assert!(
        store
            .fail_gone_recording(gone("gone-queued==", at(300)))
            .await
            .expect("fail gone")
            .is_none()
    );
    assert!(
        store
            .fail_gone_recording(gone("no-such-meeting==", at(300)))
            .await
            .expect("fail gone")
            .is_none()
    );

    // A transferring job fails too, and its holder loses the lease.
    let moving = create_job(store, queued_job(&tenant, "gone-moving==", "T", at(400))).await;
    claim_expecting(store, "worker-gone", at(500), &moving).await;
    let failed = store
        .fail_gone_recording(gone("gone-moving==", at(600)))
        .await
        .expect("fail gone")
        .expect("a transferring job fails");
    assert_eq!(failed.state, JobState::Failed);
    let holder = LeaseHolder {
        job_id: &moving.job_id,
        worker_id: "worker-gone",
    };
    assert!(
        !store
            .renew_lease(holder, LEASE, at(700))
            .await
            .expect("renew"),
        "the lease is gone"
    );
    // A skipped job is not touched.
    create_job(
        store,
        NewJob {
            state: JobState::Skipped,
            skip_reason: Some(SkipReason::TooLong),
            ..queued_job(&tenant, "gone-skipped==", "S", at(800))
        },
    )
    .await;
    assert!(
        store
            .fail_gone_recording(gone("gone-skipped==", at(900)))
            .await
            .expect("fail gone")
            .is_none()
    );
}

pub async fn reconcile_cursors_and_accounts(store: &dyn Store) {
    let tenant = create_tenant(store, "cursors").await;
    let with_oauth = new_id_account();
    store
        .install_account(AccountInstall {
            configuration_id: tenant.configuration_id.clone(),
            zoom_account_id: with_oauth.clone(),
            plan: ZoomPlan::Business,
            oauth: Some(SealedOAuthCredentials {
                client_id: "client".into(),
                sealed_client_secret: Sealed(vec![1, 2, 3]),
            }),
            now: at(0),
        })
        .await
        .expect("install with oauth");
    // Installed through the web flow: no Server-to-Server credentials, the
    // Marketplace app's tokens instead.
    let with_tokens = install_new_account(store, &tenant.configuration_id).await;
    store
        .put_account_tokens(AccountTokens {
            zoom_account_id: with_tokens.clone(),
            client_id: "marketplace-app".into(),
            sealed_access_token: Sealed(vec![4, 5, 6]),
            access_expires_at: at(3_600_000),
            sealed_refresh_token: Sealed(vec![7, 8, 9]),
            refresh_token_hash: crate::secrets::TokenHash::of("refresh"),
            updated_at: at(0),
        })
        .await
        .expect("marketplace tokens");
    let listed = store
        .accounts_with_api_access()
        .await
        .expect("accounts with api access");
    assert!(listed.iter().any(|a| a.zoom_account_id == with_oauth));
    assert!(
        listed.iter().any(|a| a.zoom_account_id == with_tokens),
        "an account installed through the Marketplace is reconciled too"
    );
    assert!(
        !listed
            .iter()
            .any(|a| a.zoom_account_id == tenant.zoom_account_id),
        "an account without credentials cannot be listed"
    );
    assert!(
        listed
            .windows(2)
            .all(|w| w[0].zoom_account_id < w[1].zoom_account_id)
    );
    store
        .uninstall_account(AccountUninstall {
            institution_id: None,
            zoom_account_id: with_oauth.clone(),
            now: at(10),
        })
        .await
        .expect("uninstall");
    assert!(
        !store
            .accounts_with_api_access()
            .await
            .expect("accounts")
            .iter()
            .any(|a| a.zoom_account_id == with_oauth),
        "an uninstalled account is not reconciled"
    );

    assert_eq!(
        store.reconcile_cursor(&with_oauth).await.expect("cursor"),
        None
    );
    let day = |text| Day::parse(text).expect("day");
    let mut cursor = ReconcileCursor {
        zoom_account_id: with_oauth.clone(),
        cursor: ListingCursor::start(day("2026-10-28"), day("2026-11-30")),
        pass_started: at(100),
        finished_at: None,
    };
    store
        .save_reconcile_cursor(cursor.clone())
        .await
        .expect("save");
    assert_eq!(
        store.reconcile_cursor(&with_oauth).await.expect("cursor"),
        Some(cursor.clone())
    );
    cursor.cursor.chunk_from = day("2026-11-28");
    cursor.cursor.next_page_token = "page-3-token".into();
    cursor.finished_at = Some(at(200));
    store
        .save_reconcile_cursor(cursor.clone())
        .await
        .expect("save again");
    assert_eq!(
        store.reconcile_cursor(&with_oauth).await.expect("cursor"),
        Some(cursor),
        "saving replaces"
    );
}

fn new_id_account() -> String {
    crate::store::new_id("zacct")
}

pub async fn backfills(store: &dyn Store) {
    let tenant = create_tenant(store, "backfills").await;
    let other = create_tenant(store, "backfills-other").await;
    let second_account = install_new_account(store, &tenant.configuration_id).await;
    let day = |text| Day::parse(text).expect("day");
    let new = |account: &str, now| NewBackfill {
        institution_id: tenant.institution_id.clone(),
        zoom_account_id: account.to_string(),
        from: day("2026-08-15"),
        to: day("2026-11-01"),
        now,
    };
    let first = store
        .create_backfill(new(&tenant.zoom_account_id, at(100)))
        .await
        .expect("create backfill");
    assert!(first.backfill_id.starts_with("bf_"));
    assert_eq!(first.state, BackfillState::Running);
    assert_eq!(first.counts, BackfillCounts::default());
    assert_eq!(
        first.cursor,
        ListingCursor::start(day("2026-08-15"), day("2026-11-01"))
    );
    assert_eq!((first.created_at, first.finished_at), (at(100), None));
    assert_eq!(
        store
            .get_backfill(&tenant.institution_id, &first.backfill_id)
            .await
            .expect("get"),
        first
    );
    assert_class(
        store
            .get_backfill(&other.institution_id, &first.backfill_id)
            .await,
        ErrorClass::NotFound,
        "another institution's backfill",
    );

    // Progress is saved with its cursor; the counts come back as given.
    let mut counts = BackfillCounts {
        meetings_seen: 300,
        jobs_created: 250,
        duplicates: 40,
        not_ready: 2,
        skipped: Vec::new(),
    };
    counts.add_skipped(SkipReason::NoMatchingUser);
    counts.add_skipped(SkipReason::NoMatchingUser);
    counts.add_skipped(SkipReason::TooLong);
    let cursor = ListingCursor {
        chunk_from: day("2026-09-15"),
        next_page_token: "token-2".into(),
        ..first.cursor.clone()
    };
    let saved = store
        .record_backfill_progress(BackfillProgress {
            backfill_id: first.backfill_id.clone(),
            counts: counts.clone(),
            cursor: cursor.clone(),
            end: None,
            now: at(200),
        })
        .await
        .expect("progress");
    assert_eq!(saved.counts, counts);
    assert_eq!(saved.counts.skipped(SkipReason::NoMatchingUser), 2);
    assert_eq!(saved.cursor, cursor);
    assert_eq!(saved.updated_at, at(200));
    assert_eq!(saved.state, BackfillState::Running);

    let second = store
        .create_backfill(new(&second_account, at(300)))
        .await
        .expect("second");
    let running: Vec<String> = store
        .running_backfills()
        .await
        .expect("running")
        .into_iter()
        .map(|b| b.backfill_id)
        .filter(|id| *id == first.backfill_id || *id == second.backfill_id)
        .collect();
    assert_eq!(
        running,
        vec![first.backfill_id.clone(), second.backfill_id.clone()]
    );
    let page = store
        .list_backfills(&tenant.institution_id, None, &PageQuery::first(1))
        .await
        .expect("list");
    assert_eq!(page.items.len(), 1);
    let rest = store
        .list_backfills(
            &tenant.institution_id,
            None,
            &PageQuery {
                after: page.next_after.clone(),
                size: 10,
            },
        )
        .await
        .expect("list rest");
    assert_eq!(
        [page.items, rest.items]
            .concat()
            .into_iter()
            .map(|b| b.backfill_id)
            .collect::<Vec<_>>(),
        vec![first.backfill_id.clone(), second.backfill_id.clone()]
    );
    let of_second = store
        .list_backfills(
            &tenant.institution_id,
            Some(second_account.as_str()),
            &PageQuery::first(0),
        )
        .await
        .expect("list by account");
    assert_eq!(of_second.items.len(), 1);
    assert_eq!(of_second.items[0].backfill_id, second.backfill_id);
    assert!(
        store
            .list_backfills(&other.institution_id, None, &PageQuery::first(0))
            .await
            .expect("other's list")
            .items
            .is_empty()
    );

    // The end is recorded once; later progress does not undo it.
    let done = store
        .record_backfill_progress(BackfillProgress {
            backfill_id: first.backfill_id.clone(),
            counts: counts.clone(),
            cursor: cursor.clone(),
            end: Some((BackfillState::Completed, String::new())),
            now: at(400),
        })
        .await
        .expect("complete");
    assert_eq!(done.state, BackfillState::Completed);
    assert_eq!(done.finished_at, Some(at(400)));
    assert_class(
        store
            .cancel_backfill(&tenant.institution_id, &first.backfill_id, at(450))
            .await,
        ErrorClass::FailedPrecondition,
        "cancel a completed backfill",
    );

    // A cancel wins over a runner's later progress.
    let cancelled = store
        .cancel_backfill(&tenant.institution_id, &second.backfill_id, at(500))
        .await
        .expect("cancel");
    assert_eq!(cancelled.state, BackfillState::Cancelled);
    assert_eq!(cancelled.finished_at, Some(at(500)));
    let after = store
        .record_backfill_progress(BackfillProgress {
            backfill_id: second.backfill_id.clone(),
            counts,
            cursor,
            end: None,
            now: at(600),
        })
        .await
        .expect("late progress");
    assert_eq!(after, cancelled, "progress after a cancel changes nothing");
    assert_class(
        store
            .cancel_backfill(&other.institution_id, &second.backfill_id, at(700))
            .await,
        ErrorClass::NotFound,
        "another institution cancels",
    );
    assert!(
        !store
            .running_backfills()
            .await
            .expect("running")
            .iter()
            .any(|b| b.backfill_id == first.backfill_id || b.backfill_id == second.backfill_id)
    );
}
