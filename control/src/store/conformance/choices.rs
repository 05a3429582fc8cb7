//! Conformance checks for who decides what is copied and what happens in
//! Zoom afterwards: a configuration's ingest mode and after-copy action, a
//! user's ingest choice through syncs, and a completed job's move to Zoom's
//! trash (left pending by the completion, read when due, recorded once).

use crate::model::*;
use crate::store::{LeaseHolder, PageQuery, Store};

use super::{
    T0, at, claim_expecting, create_job, create_tenant, lookup, new_media, next_event_for,
    queued_job, unique_hash, user_record,
};

/// Configurations keep their ingest mode and after-copy action; users keep
/// their ingest choice, and a sync that changes only it counts as an update.
pub async fn ingest_choices_and_policy(store: &dyn Store) {
    let tenant = create_tenant(store, "choices").await;
    let a = &tenant.institution_id;
    let plain = store
        .get_configuration(a, &tenant.configuration_id)
        .await
        .expect("get configuration");
    assert_eq!(
        plain.ingest_mode,
        IngestMode::AllMatchingUsers,
        "default mode"
    );
    assert_eq!(
        plain.after_copy,
        AfterCopy::Keep,
        "default after-copy action"
    );

    let strict = store
        .create_configuration(NewConfiguration {
            institution_id: a.clone(),
            display_name: "Opt-in only".into(),
            view_priority: Vec::new(),
            policy: ConfigurationPolicy {
                ingest_mode: IngestMode::OptedInUsers,
                after_copy: AfterCopy::Trash,
            },
            token_hash: unique_hash("zcfg"),
            now: T0,
        })
        .await
        .expect("create a configuration with a policy");
    assert_eq!(strict.ingest_mode, IngestMode::OptedInUsers);
    assert_eq!(strict.after_copy, AfterCopy::Trash);
    let listed = store
        .list_configurations(a, &PageQuery::first(0))
        .await
        .expect("list configurations");
    assert!(
        listed
            .items
            .iter()
            .any(|c| c.configuration_id == strict.configuration_id
                && c.ingest_mode == IngestMode::OptedInUsers
                && c.after_copy == AfterCopy::Trash),
        "listing shows the policy"
    );
    let mode_only = store
        .update_configuration(
            a,
            &strict.configuration_id,
            ConfigurationUpdate {
                ingest_mode: Some(IngestMode::AllMatchingUsers),
                ..Default::default()
            },
        )
        .await
        .expect("change the mode only");
    assert_eq!(mode_only.ingest_mode, IngestMode::AllMatchingUsers);
    assert_eq!(mode_only.after_copy, AfterCopy::Trash, "after-copy kept");
    assert_eq!(mode_only.display_name, "Opt-in only", "name kept");
    let action_only = store
        .update_configuration(
            a,
            &strict.configuration_id,
            ConfigurationUpdate {
                after_copy: Some(AfterCopy::Keep),
                ..Default::default()
            },
        )
        .await
        .expect("change the after-copy action only");
    assert_eq!(action_only.after_copy, AfterCopy::Keep);
    assert_eq!(
        action_only.ingest_mode,
        IngestMode::AllMatchingUsers,
        "mode kept"
    );

    let sync = |record: UserRecord, now: Timestamp| UserSync {
        institution_id: a.clone(),
        mode: SyncMode::Upsert,
        records: vec![record],
        rejected_upfront: Vec::new(),
        now,
    };
    let mut out = user_record(0, "grace", "grace@example.edu", None, "Grace");
    out.ingest_choice = IngestChoice::OptedOut;
    let created = store
        .sync_users(sync(out.clone(), at(1)))
        .await
        .expect("sync an opted-out user");
    assert_eq!(created.created, 1);
    let found = lookup(store, a, "grace@example.edu")
        .await
        .expect("the opted-out user is still a user");
    assert_eq!(found.ingest_choice, IngestChoice::OptedOut);
    let again = store
        .sync_users(sync(out.clone(), at(2)))
        .await
        .expect("sync the same record");
    assert_eq!(
        (again.unchanged, again.updated),
        (1, 0),
        "same choice: unchanged"
    );
    let mut back_in = out.clone();
    back_in.ingest_choice = IngestChoice::OptedIn;
    let changed = store
        .sync_users(sync(back_in, at(3)))
        .await
        .expect("sync a changed choice");
    assert_eq!(
        (changed.unchanged, changed.updated),
        (0, 1),
        "a new choice is an update"
    );
    let user = store.get_user(a, &found.user_id).await.expect("get user");
    assert_eq!(user.ingest_choice, IngestChoice::OptedIn);
    assert_eq!(user.updated_at, at(3));
    let listed = store
        .list_users(a, false, &PageQuery::first(0))
        .await
        .expect("list users");
    assert!(
        listed
            .items
            .iter()
            .any(|u| u.user_id == user.user_id && u.ingest_choice == IngestChoice::OptedIn),
        "listing shows the choice"
    );
    assert_eq!(
        tenant.owner.ingest_choice,
        IngestChoice::Default,
        "a record without a choice is DEFAULT"
    );
}

/// A completion under `Trash` leaves the move pending, due at once; each
/// recorded call counts, a pending failure is due again when it says, and a
/// move that ended is never recorded over. A completion under `Keep` has
/// no move at all.
pub async fn zoom_trash_after_completion(store: &dyn Store) {
    let tenant = create_tenant(store, "trash").await;
    let a = &tenant.institution_id;
    let t = at(9_000_000);
    let kept = create_job(store, queued_job(&tenant, "trash-keep", "Kept", t)).await;
    claim_expecting(store, "worker-1", t, &kept).await;
    let (kept, _) = store
        .complete_job(
            LeaseHolder {
                job_id: &kept.job_id,
                worker_id: "worker-1",
            },
            new_media("kept"),
            t,
        )
        .await
        .expect("complete under keep");
    assert_eq!(kept.zoom_trash, None, "keep: nothing to move");

    let job = create_job(store, queued_job(&tenant, "trash-move", "Moved", t)).await;
    claim_expecting(store, "worker-1", t, &job).await;
    let done = t.saturating_add_millis(10);
    let (job, _) = store
        .complete_job(
            LeaseHolder {
                job_id: &job.job_id,
                worker_id: "worker-1",
            },
            NewMedia {
                after_copy: AfterCopy::Trash,
                ..new_media("moved")
            },
            done,
        )
        .await
        .expect("complete under trash");
    assert_eq!(
        job.zoom_trash,
        Some(ZoomTrash {
            state: ZoomTrashState::Pending,
            message: ZoomTrash::QUEUED_MESSAGE.into(),
            attempts: 0,
            next_attempt_at: Some(done),
        }),
        "trash: the move is pending, due at completion"
    );
    let due_ids = |jobs: Vec<Job>| -> Vec<String> {
        jobs.into_iter()
            .filter(|j| j.institution_id == *a)
            .map(|j| j.job_id)
            .collect()
    };
    let due = |now| async move { store.due_zoom_trash(now, 10).await.expect("due moves") };
    assert!(
        due_ids(due(t).await).is_empty(),
        "not due before completion"
    );
    assert_eq!(due_ids(due(done).await), vec![job.job_id.clone()]);

    let mut events = store.subscribe_job_events();
    let retry_at = done.saturating_add_millis(1_000);
    let failed_once = store
        .record_zoom_trash(ZoomTrashUpdate {
            job_id: job.job_id.clone(),
            state: ZoomTrashState::Pending,
            message: "zoom answered HTTP 503; trying again".into(),
            next_attempt_at: Some(retry_at),
            now: done.saturating_add_millis(1),
        })
        .await
        .expect("record a failed call");
    let trash = failed_once.zoom_trash.clone().expect("still a move");
    assert_eq!(trash.state, ZoomTrashState::Pending);
    assert_eq!(trash.attempts, 1, "the call counts");
    assert_eq!(trash.message, "zoom answered HTTP 503; trying again");
    assert_eq!(
        failed_once.state,
        JobState::Completed,
        "the job stays completed"
    );
    let event = next_event_for(&mut events, &job.job_id).await;
    assert_eq!(event.job.zoom_trash, failed_once.zoom_trash, "announced");
    assert!(
        due_ids(due(retry_at.saturating_add_millis(-1)).await).is_empty(),
        "not due before the retry time"
    );
    assert_eq!(due_ids(due(retry_at).await), vec![job.job_id.clone()]);

    let trashed = store
        .record_zoom_trash(ZoomTrashUpdate {
            job_id: job.job_id.clone(),
            state: ZoomTrashState::Trashed,
            message: "moved to zoom's trash".into(),
            next_attempt_at: None,
            now: retry_at,
        })
        .await
        .expect("record the move");
    let trash = trashed.zoom_trash.clone().expect("a move");
    assert_eq!(
        (trash.state, trash.attempts, trash.next_attempt_at),
        (ZoomTrashState::Trashed, 2, None)
    );
    assert!(
        due_ids(due(at(i64::MAX / 4)).await).is_empty(),
        "an ended move is never due"
    );
    let late = store
        .record_zoom_trash(ZoomTrashUpdate {
            job_id: job.job_id.clone(),
            state: ZoomTrashState::Failed,
            message: "a stale result".into(),
            next_attempt_at: None,
            now: retry_at.saturating_add_millis(5),
        })
        .await
        .expect("record over an ended move");
    assert_eq!(late.zoom_trash, trashed.zoom_trash, "an ended move is kept");
    let kept_again = store.get_job(a, &kept.job_id).await.expect("get kept job");
    assert_eq!(kept_again.zoom_trash, None);
}
