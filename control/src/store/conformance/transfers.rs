//! Conformance checks of resumable transfer state: the upload, its parts
//! with the scan state each carries, and the attempts of a job.

use super::*;

fn part(number: u32, scan_state: Option<Vec<u8>>) -> PartRecord {
    PartRecord {
        part_number: number,
        etag: format!("\"etag-{number}\""),
        crc32c: 0xdead_0000 + number,
        offset: u64::from(number - 1) * 5_242_880,
        len: 5_242_880,
        scan_state,
    }
}

fn attempt_start(job_id: &str, worker_id: &str, from: u64, now: Timestamp) -> AttemptStart {
    AttemptStart {
        job_id: job_id.to_string(),
        worker_id: worker_id.to_string(),
        resumed_from_bytes: from,
        note: if from == 0 {
            String::new()
        } else {
            format!("resumed after {from} bytes")
        },
        now,
    }
}

/// Parts keep their scan state byte for byte (or its absence); attempts are
/// counted only by the lease holder, each with where it started, and a
/// takeover by another worker continues the count.
pub async fn transfer_state_and_attempts(store: &dyn Store) {
    let tenant = create_tenant(store, "transfers").await;
    let t = at(3_000_000);
    let job = create_job(store, queued_job(&tenant, "transfer-1", "Resumable", t)).await;
    claim_expecting(store, "worker-1", t, &job).await;

    let first = store
        .begin_attempt(attempt_start(&job.job_id, "worker-1", 0, t))
        .await
        .expect("begin the first attempt");
    assert_eq!(first, 1);
    assert_class(
        store
            .begin_attempt(attempt_start(&job.job_id, "worker-2", 0, t))
            .await,
        ErrorClass::FailedPrecondition,
        "an attempt by a worker without the lease",
    );

    let upload = UploadRecord {
        upload_id: "upload-1".into(),
        object_key: "prefix/key.mp4".into(),
        part_size: 5_242_880,
    };
    store
        .start_upload(
            LeaseHolder {
                job_id: &job.job_id,
                worker_id: "worker-1",
            },
            upload.clone(),
        )
        .await
        .expect("start upload");
    // Stored out of order, as parallel uploads land; one without a state
    // (written before scan states were kept) and one with a state holding
    // every byte value.
    let every_byte: Vec<u8> = (0..=255).collect();
    let parts = [
        part(2, Some(every_byte)),
        part(1, Some(vec![1, 0, 0])),
        part(3, None),
    ];
    for (i, p) in parts.iter().enumerate() {
        store
            .record_part(
                LeaseHolder {
                    job_id: &job.job_id,
                    worker_id: "worker-1",
                },
                p.clone(),
                (i as u64 + 1) * 5_242_880,
            )
            .await
            .expect("record part");
    }
    assert_class(
        store
            .record_part(
                LeaseHolder {
                    job_id: &job.job_id,
                    worker_id: "worker-2",
                },
                part(4, None),
                0,
            )
            .await,
        ErrorClass::FailedPrecondition,
        "a part recorded by a worker without the lease",
    );
    let state = store
        .upload_state(&job.job_id)
        .await
        .expect("upload state")
        .expect("an upload was started");
    assert_eq!(state.upload, upload);
    let mut expected = parts.to_vec();
    expected.sort_by_key(|p| p.part_number);
    assert_eq!(state.parts, expected, "parts by number, scan states intact");
    // Recording a part again replaces it, scan state included.
    let mut replaced = part(3, Some(vec![7; 40]));
    replaced.etag = "\"etag-3-again\"".into();
    store
        .record_part(
            LeaseHolder {
                job_id: &job.job_id,
                worker_id: "worker-1",
            },
            replaced.clone(),
            15_728_640,
        )
        .await
        .expect("record again");
    let state = store.upload_state(&job.job_id).await.unwrap().unwrap();
    assert_eq!(state.parts[2], replaced);

    // The lease expires; another worker takes over and resumes.
    let later = t.saturating_add_millis(LEASE_MS + 1);
    let taken = claim_expecting(store, "worker-2", later, &job).await;
    assert_eq!(taken.attempt_count, 1, "the claim itself is not an attempt");
    assert_class(
        store
            .begin_attempt(attempt_start(&job.job_id, "worker-1", 0, later))
            .await,
        ErrorClass::FailedPrecondition,
        "an attempt by the worker that lost the lease",
    );
    let second = store
        .begin_attempt(attempt_start(&job.job_id, "worker-2", 10_485_760, later))
        .await
        .expect("begin the second attempt");
    assert_eq!(second, 2);
    let third = store
        .begin_attempt(attempt_start(
            &job.job_id,
            "worker-2",
            15_728_640,
            later.saturating_add_millis(5),
        ))
        .await
        .expect("begin the third attempt");
    assert_eq!(third, 3);
    assert_eq!(
        store
            .get_job(&tenant.institution_id, &job.job_id)
            .await
            .expect("get")
            .attempt_count,
        3
    );
    let history = store.job_attempts(&job.job_id).await.expect("attempts");
    let summary: Vec<(u32, &str, i64, u64, &str)> = history
        .iter()
        .map(|a| {
            (
                a.attempt,
                a.worker_id.as_str(),
                a.started_at.0,
                a.resumed_from_bytes,
                a.note.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, "worker-1", t.0, 0, ""),
            (
                2,
                "worker-2",
                later.0,
                10_485_760,
                "resumed after 10485760 bytes"
            ),
            (
                3,
                "worker-2",
                later.0 + 5,
                15_728_640,
                "resumed after 15728640 bytes"
            ),
        ]
    );
    assert!(
        store
            .job_attempts("job_unknown")
            .await
            .expect("attempts")
            .is_empty(),
        "an unknown job has no attempts"
    );

    store.drop_upload(&job.job_id).await.expect("drop upload");
    assert_eq!(store.upload_state(&job.job_id).await.expect("state"), None);
    cancel(store, &tenant.institution_id, &job.job_id, later).await;
}

/// Credentials fetched after Zoom refused the webhook's are stored only by
/// the lease holder, replace the token (and the URL when one came), and are
/// not undone by a redelivered older webhook; a newer one still replaces
/// them.
pub async fn fresh_download_credentials(store: &dyn Store) {
    let tenant = create_tenant(store, "fresh-credentials").await;
    let t = at(4_000_000);
    let job = create_job(store, queued_job(&tenant, "fresh-1", "Refreshed", t)).await;
    claim_expecting(store, "worker-1", t, &job).await;
    let read = || async {
        store
            .get_job_secrets(&tenant.institution_id, &job.job_id)
            .await
            .expect("job secrets")
    };
    let fresh = FreshCredentials {
        sealed_download_token: Sealed(vec![0x70, 2]),
        sealed_download_url: None,
    };
    assert_class(
        store
            .store_fresh_download(
                LeaseHolder {
                    job_id: &job.job_id,
                    worker_id: "worker-2",
                },
                fresh.clone(),
                t,
            )
            .await,
        ErrorClass::FailedPrecondition,
        "fresh credentials stored by a worker without the lease",
    );
    assert_eq!(
        read().await.sealed_download_token,
        Some(Sealed(vec![0x70, 1]))
    );

    let fetched_at = t.saturating_add_millis(60_000);
    store
        .store_fresh_download(
            LeaseHolder {
                job_id: &job.job_id,
                worker_id: "worker-1",
            },
            fresh,
            fetched_at,
        )
        .await
        .expect("store a fresh token");
    let stored = read().await;
    assert_eq!(stored.sealed_download_token, Some(Sealed(vec![0x70, 2])));
    assert_eq!(
        stored.sealed_download_url,
        Some(Sealed(vec![0xd1, 1])),
        "no URL came with the token: the webhook's stays"
    );
    store
        .store_fresh_download(
            LeaseHolder {
                job_id: &job.job_id,
                worker_id: "worker-1",
            },
            FreshCredentials {
                sealed_download_token: Sealed(vec![0x70, 3]),
                sealed_download_url: Some(Sealed(vec![0xd1, 3])),
            },
            fetched_at,
        )
        .await
        .expect("store a fresh token and URL");
    let stored = read().await;
    assert_eq!(stored.sealed_download_token, Some(Sealed(vec![0x70, 3])));
    assert_eq!(stored.sealed_download_url, Some(Sealed(vec![0xd1, 3])));

    // Zoom re-sends the original webhook: its older token does not return.
    let (_, created) = store
        .upsert_job(queued_job(&tenant, "fresh-1", "Refreshed", t))
        .await
        .expect("redelivery");
    assert!(!created);
    assert_eq!(
        read().await.sealed_download_token,
        Some(Sealed(vec![0x70, 3]))
    );
    // A newer event's token still replaces it.
    let mut newer = queued_job(
        &tenant,
        "fresh-1",
        "Refreshed",
        fetched_at.saturating_add_millis(1),
    );
    newer.sealed_download_token = Some(Sealed(vec![0x70, 4]));
    store.upsert_job(newer).await.expect("newer event");
    assert_eq!(
        read().await.sealed_download_token,
        Some(Sealed(vec![0x70, 4]))
    );
    cancel(store, &tenant.institution_id, &job.job_id, fetched_at).await;
}
