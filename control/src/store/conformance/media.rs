//! Conformance checks for job completion, media records and job events.

use crate::error::ErrorClass;
use crate::model::*;
use crate::store::{LeaseHolder, Page, PageQuery, Store};

use super::{
    assert_class, at, cancel, claim_expecting, create_job, create_tenant, create_user, new_media,
    next_event_for, queued_job, requeue_to,
};

/// Only the lease holder completes; completion creates the media record.
pub async fn job_completion_and_media(store: &dyn Store) {
    let tenant = create_tenant(store, "complete").await;
    let other = create_tenant(store, "complete other").await;
    let a = &tenant.institution_id;
    let second_owner = create_user(store, a, "second", "second@example.edu").await;
    let t = at(3_000_000);
    let job = create_job(
        store,
        queued_job(&tenant, "complete-1", "Thermodynamics 101", t),
    )
    .await;
    claim_expecting(store, "worker-1", t, &job).await;

    assert_class(
        store
            .complete_job(
                LeaseHolder {
                    job_id: &job.job_id,
                    worker_id: "worker-2",
                },
                new_media("wrong"),
                t.saturating_add_millis(1),
            )
            .await,
        ErrorClass::FailedPrecondition,
        "complete by a worker that does not hold the lease",
    );
    let media_in = new_media("thermo");
    let (completed, media) = store
        .complete_job(
            LeaseHolder {
                job_id: &job.job_id,
                worker_id: "worker-1",
            },
            media_in.clone(),
            t.saturating_add_millis(2),
        )
        .await
        .expect("complete by the holder");
    assert_eq!(completed.state, JobState::Completed);
    assert_eq!(completed.media_id.as_deref(), Some(media.media_id.as_str()));
    assert_eq!(completed.finished_at, Some(t.saturating_add_millis(2)));
    assert_eq!(media.institution_id, *a);
    assert_eq!(
        media.owner_user_id, tenant.owner.user_id,
        "media owner is the job owner"
    );
    assert_eq!(
        media.title, "Thermodynamics 101",
        "media title is the topic"
    );
    assert_eq!(
        (media.meeting_id, media.meeting_uuid.as_str()),
        (job.meeting_id, "complete-1")
    );
    assert_eq!(media.job_id, job.job_id);
    assert_eq!(media.created_at, t.saturating_add_millis(2));
    assert_eq!(
        (
            media.object_key.as_str(),
            media.checksum.as_str(),
            media.duration_ms,
            media.size_bytes,
            media.content_type.as_str()
        ),
        (
            media_in.object_key.as_str(),
            media_in.checksum.as_str(),
            media_in.duration_ms,
            media_in.size_bytes,
            media_in.content_type.as_str()
        ),
        "media keeps what the transfer reported"
    );
    assert_eq!(
        store.get_job(a, &job.job_id).await.expect("get job"),
        completed
    );
    assert_eq!(
        store
            .get_media(a, &media.media_id)
            .await
            .expect("get media"),
        media
    );
    assert_class(
        store
            .get_media(&other.institution_id, &media.media_id)
            .await,
        ErrorClass::NotFound,
        "get media through another institution",
    );

    assert_class(
        store
            .complete_job(
                LeaseHolder {
                    job_id: &job.job_id,
                    worker_id: "worker-1",
                },
                new_media("twice"),
                t.saturating_add_millis(3),
            )
            .await,
        ErrorClass::FailedPrecondition,
        "complete twice",
    );
    assert_class(
        store
            .cancel_job(a, &job.job_id, t.saturating_add_millis(3))
            .await,
        ErrorClass::FailedPrecondition,
        "cancel a completed job",
    );
    let requeue = requeue_to(&tenant.owner.user_id, None);
    assert_class(
        store
            .requeue_job(JobRequeue {
                institution_id: a.to_string(),
                job_id: job.job_id.to_string(),
                now: t.saturating_add_millis(3),
                ..requeue
            })
            .await,
        ErrorClass::FailedPrecondition,
        "requeue a completed job",
    );
    let (redelivered, created) = store
        .upsert_job(queued_job(
            &tenant,
            "complete-1",
            "Thermodynamics 101",
            t.saturating_add_millis(4),
        ))
        .await
        .expect("redeliver after completion");
    assert!(!created);
    assert_eq!(
        redelivered.state,
        JobState::Completed,
        "a redelivery does not reopen a completed job"
    );

    let job_2 = create_job(
        store,
        NewJob {
            owner_user_id: Some(second_owner.user_id.clone()),
            ..queued_job(&tenant, "complete-2", "Statics", t.saturating_add_millis(5))
        },
    )
    .await;
    claim_expecting(store, "worker-1", t.saturating_add_millis(5), &job_2).await;
    let (_, media_2) = store
        .complete_job(
            LeaseHolder {
                job_id: &job_2.job_id,
                worker_id: "worker-1",
            },
            new_media("statics"),
            t.saturating_add_millis(6),
        )
        .await
        .expect("complete second job");
    assert_eq!(media_2.owner_user_id, second_owner.user_id);

    let media_ids = |page: Page<Media>| {
        page.items
            .into_iter()
            .map(|m| m.media_id)
            .collect::<Vec<_>>()
    };
    let all = store
        .list_media(a, None, &PageQuery::first(0))
        .await
        .expect("list media");
    assert_eq!(
        media_ids(all),
        vec![media.media_id.clone(), media_2.media_id.clone()]
    );
    let first_page = store
        .list_media(a, None, &PageQuery::first(1))
        .await
        .expect("list media");
    assert_eq!(
        first_page.next_after.as_deref(),
        Some(media.media_id.as_str()),
        "media pages"
    );
    let owned = store
        .list_media(a, Some(&tenant.owner.user_id), &PageQuery::first(0))
        .await
        .expect("list owned media");
    assert_eq!(
        media_ids(owned),
        vec![media.media_id.clone()],
        "the owner filter"
    );
    assert!(
        store
            .list_media(&other.institution_id, None, &PageQuery::first(0))
            .await
            .expect("list")
            .items
            .is_empty(),
        "media is listed only in its institution"
    );

    let transferred = store
        .transfer_media_ownership(OwnershipTransfer {
            institution_id: a.to_string(),
            media_id: media.media_id.to_string(),
            new_owner_user_id: second_owner.user_id.to_string(),
        })
        .await
        .expect("transfer ownership");
    assert_eq!(transferred.owner_user_id, second_owner.user_id);
    assert_eq!(
        store
            .get_media(a, &media.media_id)
            .await
            .expect("get media")
            .owner_user_id,
        second_owner.user_id
    );
    let owned = store
        .list_media(a, Some(&second_owner.user_id), &PageQuery::first(0))
        .await
        .expect("list owned media");
    assert_eq!(
        media_ids(owned),
        vec![media.media_id.clone(), media_2.media_id.clone()]
    );
    assert_class(
        store
            .transfer_media_ownership(OwnershipTransfer {
                institution_id: a.to_string(),
                media_id: media.media_id.to_string(),
                new_owner_user_id: other.owner.user_id.to_string(),
            })
            .await,
        ErrorClass::NotFound,
        "transfer to a user of another institution",
    );
    assert_class(
        store
            .transfer_media_ownership(OwnershipTransfer {
                institution_id: other.institution_id.to_string(),
                media_id: media.media_id.to_string(),
                new_owner_user_id: other.owner.user_id.to_string(),
            })
            .await,
        ErrorClass::NotFound,
        "transfer through another institution",
    );
    assert_class(
        store
            .transfer_media_ownership(OwnershipTransfer {
                institution_id: a.to_string(),
                media_id: "med_conformance_missing".to_string(),
                new_owner_user_id: tenant.owner.user_id.to_string(),
            })
            .await,
        ErrorClass::NotFound,
        "transfer unknown media",
    );
    assert_eq!(
        store
            .get_media(a, &media.media_id)
            .await
            .expect("get media")
            .owner_user_id,
        second_owner.user_id,
        "refused transfers change nothing"
    );
}

/// Subscribers see job creation, claims and cancellation.
pub async fn job_events(store: &dyn Store) {
    let tenant = create_tenant(store, "events").await;
    let mut events = store.subscribe_job_events();
    let t = at(4_000_000);
    let job = create_job(store, queued_job(&tenant, "events-1", "Watched", t)).await;
    let event = next_event_for(&mut events, &job.job_id).await;
    assert_eq!(
        event.job.state,
        JobState::Queued,
        "an event for the created job"
    );
    assert!(!event.progress_only);
    claim_expecting(store, "worker-1", t, &job).await;
    let event = next_event_for(&mut events, &job.job_id).await;
    assert_eq!(
        event.job.state,
        JobState::Transferring,
        "an event for the claim"
    );
    assert_eq!(event.job.attempt_count, 0);
    cancel(
        store,
        &tenant.institution_id,
        &job.job_id,
        t.saturating_add_millis(1),
    )
    .await;
    let event = next_event_for(&mut events, &job.job_id).await;
    assert_eq!(
        event.job.state,
        JobState::Cancelled,
        "an event for the cancellation"
    );
}
