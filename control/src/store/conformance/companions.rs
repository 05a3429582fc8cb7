//! Conformance: companion files. Planned only by the holder of the job's
//! lease, one row per kind whatever is planned again; claimable only once
//! the job has completed, under a lease of their own that fences the
//! finish and expires; a copied companion keeps its object and forgets its
//! credentials; a retry sends back only missing and failed ones; a late
//! companion attaches to the meeting's job once, whatever its redeliveries.
//!
//! `claim_companion` takes the oldest claimable companion of any
//! institution, so this check finishes every companion it makes claimable.

use super::*;
use crate::store::CompanionHolder;

fn new_companion(kind: CompanionKind, file_id: &str, url: u8) -> NewCompanion {
    NewCompanion {
        kind,
        file_id: file_id.to_string(),
        file_size: 1_000,
        sealed_download_url: Sealed(vec![0xc0, url]),
        sealed_download_token: Some(Sealed(vec![0x70, url])),
    }
}

fn holder<'a>(job_id: &'a str, kind: CompanionKind, worker_id: &'a str) -> CompanionHolder<'a> {
    CompanionHolder {
        job_id,
        kind,
        worker_id,
    }
}

async fn states(store: &dyn Store, job_id: &str) -> Vec<(CompanionKind, CompanionState)> {
    store
        .list_companions(job_id)
        .await
        .expect("list companions")
        .into_iter()
        .map(|c| (c.kind, c.state))
        .collect()
}

pub async fn job_companions(store: &dyn Store) {
    use CompanionKind::*;
    let tenant = create_tenant(store, "companions").await;
    let t = at(11_000_000);
    let job = create_job(
        store,
        queued_job(&tenant, "companions-1", "With captions", t),
    )
    .await;
    let lease = |worker_id| LeaseHolder {
        job_id: &job.job_id,
        worker_id,
    };
    let planned = vec![
        new_companion(Transcript, "tr-1", 1),
        new_companion(Chat, "chat-1", 2),
        new_companion(ClosedCaptions, "cc-1", 3),
    ];
    assert_class(
        store
            .plan_companions(lease("worker-1"), planned.clone(), t)
            .await,
        ErrorClass::FailedPrecondition,
        "planning without the job's lease",
    );
    claim_expecting(store, "worker-1", t, &job).await;
    store
        .plan_companions(lease("worker-1"), planned.clone(), t)
        .await
        .expect("plan companions");
    // An attempt that runs again plans the same kinds: nothing changes.
    store
        .plan_companions(
            lease("worker-1"),
            vec![new_companion(Chat, "chat-other", 9)],
            t,
        )
        .await
        .expect("plan again");
    let listed = store.list_companions(&job.job_id).await.expect("list");
    assert_eq!(
        listed
            .iter()
            .map(|c| (c.kind, c.file_id.as_str(), c.state))
            .collect::<Vec<_>>(),
        vec![
            (Transcript, "tr-1", CompanionState::Pending),
            (ClosedCaptions, "cc-1", CompanionState::Pending),
            (Chat, "chat-1", CompanionState::Pending),
        ],
        "one row per kind, in kind order, the first plan kept"
    );
    assert!(
        store
            .claim_companion("worker-2", LEASE, t)
            .await
            .expect("claim")
            .is_none(),
        "a job still transferring has no claimable companion"
    );

    store
        .complete_job(lease("worker-1"), new_media("companions"), t)
        .await
        .expect("complete the job");
    let claimed = store
        .claim_companion("worker-2", LEASE, t)
        .await
        .expect("claim")
        .expect("a completed job's companion is claimable");
    assert_eq!(claimed.job.job_id, job.job_id);
    let first = claimed.companion.kind;
    let planned_first = planned.iter().find(|c| c.kind == first).expect("planned");
    assert_eq!(
        claimed.sealed_download_url,
        Some(planned_first.sealed_download_url.clone())
    );
    assert_eq!(
        claimed.sealed_download_token,
        planned_first.sealed_download_token.clone()
    );
    assert!(
        store
            .renew_companion_lease(holder(&job.job_id, first, "worker-2"), LEASE, t)
            .await
            .expect("renew")
    );
    assert!(
        !store
            .renew_companion_lease(holder(&job.job_id, first, "worker-3"), LEASE, t)
            .await
            .expect("renew by another"),
        "only the holder renews"
    );
    // The lease expires: another worker takes the companion over, and the
    // first one's finish is refused.
    let later = t.saturating_add_millis(LEASE_MS + 1);
    let mut taken = Vec::new();
    while let Some(next) = store
        .claim_companion("worker-3", LEASE, later)
        .await
        .expect("claim")
    {
        taken.push(next.companion.kind);
    }
    assert_eq!(taken.len(), 3, "every companion claimed once: {taken:?}");
    assert!(taken.contains(&first), "the expired lease was taken over");
    assert_class(
        store
            .finish_companion(
                holder(&job.job_id, first, "worker-2"),
                CompanionOutcome::Failed("late".into()),
                later,
            )
            .await,
        ErrorClass::FailedPrecondition,
        "finishing a lost lease",
    );

    let done = later.saturating_add_millis(5);
    let copied = store
        .finish_companion(
            holder(&job.job_id, Transcript, "worker-3"),
            CompanionOutcome::Copied {
                object_key: "recordings/a/tr.transcript.vtt".into(),
                size_bytes: 987,
                checksum: "crc32c:0badf00d".into(),
            },
            done,
        )
        .await
        .expect("finish copied");
    assert_eq!(copied.state, CompanionState::Copied);
    assert_eq!(copied.object_key, "recordings/a/tr.transcript.vtt");
    assert_eq!(
        (copied.size_bytes, copied.checksum.as_str()),
        (987, "crc32c:0badf00d")
    );
    assert_eq!(copied.updated_at, done);
    store
        .finish_companion(
            holder(&job.job_id, ClosedCaptions, "worker-3"),
            CompanionOutcome::Refused("not text".into()),
            done,
        )
        .await
        .expect("finish refused");
    let failed = store
        .finish_companion(
            holder(&job.job_id, Chat, "worker-3"),
            CompanionOutcome::Missing("zoom answered 404".into()),
            done,
        )
        .await
        .expect("finish missing");
    assert_eq!(failed.reason, "zoom answered 404");
    assert_eq!(
        states(store, &job.job_id).await,
        vec![
            (Transcript, CompanionState::Copied),
            (ClosedCaptions, CompanionState::Refused),
            (Chat, CompanionState::Missing),
        ]
    );
    assert!(
        store
            .claim_companion("worker-3", LEASE, done)
            .await
            .expect("claim")
            .is_none(),
        "finished companions are not claimable"
    );

    // A retry sends back only the missing one.
    assert_eq!(
        store
            .retry_companions(&job.job_id, done)
            .await
            .expect("retry"),
        1
    );
    let again = store
        .claim_companion("worker-4", LEASE, done)
        .await
        .expect("claim")
        .expect("the retried companion");
    assert_eq!(again.companion.kind, Chat);
    assert_eq!(again.companion.reason, "", "a retry clears the reason");
    assert_eq!(
        again.sealed_download_url,
        Some(Sealed(vec![0xc0, 2])),
        "a failed companion keeps its credentials for a retry"
    );
    store
        .finish_companion(
            holder(&job.job_id, Chat, "worker-4"),
            CompanionOutcome::Released,
            done,
        )
        .await
        .expect("release");
    let released = store
        .claim_companion("worker-5", LEASE, done)
        .await
        .expect("claim")
        .expect("a released companion is claimable at once");
    assert_eq!(released.companion.kind, Chat);
    store
        .finish_companion(
            holder(&job.job_id, Chat, "worker-5"),
            CompanionOutcome::Copied {
                object_key: "recordings/a/chat.chat.txt".into(),
                size_bytes: 10,
                checksum: "crc32c:00000001".into(),
            },
            done,
        )
        .await
        .expect("copied");

    // A late transcript: a copied one is never attached twice; a missing one
    // is; no job, no attachment.
    let late = new_companion(Transcript, "tr-late", 7);
    let attached = store
        .attach_companion(&tenant.zoom_account_id, "companions-1", late.clone(), done)
        .await
        .expect("attach");
    assert_eq!(
        attached,
        Some(CompanionAttached {
            job_id: job.job_id.clone(),
            attached: false
        }),
        "a copied transcript is not attached again"
    );
    assert_eq!(
        store
            .attach_companion(
                &tenant.zoom_account_id,
                "no-such-meeting",
                late.clone(),
                done
            )
            .await
            .expect("attach to nothing"),
        None
    );

    // A job still queued gets the late transcript, copied once it completes;
    // a redelivery attaches nothing more but brings fresher credentials.
    let running = create_job(store, queued_job(&tenant, "companions-2", "Running", t)).await;
    let first_delivery = store
        .attach_companion(&tenant.zoom_account_id, "companions-2", late.clone(), done)
        .await
        .expect("attach");
    assert_eq!(
        first_delivery,
        Some(CompanionAttached {
            job_id: running.job_id.clone(),
            attached: true
        })
    );
    let redelivery = store
        .attach_companion(
            &tenant.zoom_account_id,
            "companions-2",
            new_companion(Transcript, "tr-late", 8),
            done,
        )
        .await
        .expect("attach again");
    assert_eq!(redelivery.map(|a| a.attached), Some(false));
    assert_eq!(
        states(store, &running.job_id).await,
        vec![(Transcript, CompanionState::Pending)]
    );
    claim_expecting(store, "worker-1", done, &running).await;
    store
        .plan_companions(
            LeaseHolder {
                job_id: &running.job_id,
                worker_id: "worker-1",
            },
            vec![new_companion(Transcript, "tr-from-recording", 1)],
            done,
        )
        .await
        .expect("plan");
    store
        .complete_job(
            LeaseHolder {
                job_id: &running.job_id,
                worker_id: "worker-1",
            },
            new_media("companions-2"),
            done,
        )
        .await
        .expect("complete");
    let late_claim = store
        .claim_companion("worker-6", LEASE, done)
        .await
        .expect("claim")
        .expect("the late transcript");
    assert_eq!(
        late_claim.companion.file_id, "tr-late",
        "the attached one is kept"
    );
    assert_eq!(
        late_claim.sealed_download_token,
        Some(Sealed(vec![0x70, 8])),
        "the redelivery's fresher token"
    );
    let copied = store
        .finish_companion(
            holder(&running.job_id, Transcript, "worker-6"),
            CompanionOutcome::Copied {
                object_key: "recordings/b/tr.transcript.vtt".into(),
                size_bytes: 5,
                checksum: "crc32c:00000002".into(),
            },
            done,
        )
        .await
        .expect("copied");
    assert_eq!(copied.file_id, "tr-late");
    assert!(
        store
            .claim_companion("worker-6", LEASE, done)
            .await
            .expect("claim")
            .is_none(),
        "nothing left behind"
    );
}
