//! Jobs and media read APIs over gRPC. The jobs are written through the
//! store exactly as the data plane writes them.

use std::time::Duration;

use ferry_control::api;
use ferry_control::model::{JobSource, JobState, NewJob, NewMedia, RecordingFile, Timestamp};
use ferry_control::store::LeaseHolder;
use tonic::Code;

use crate::support::*;

fn new_job(
    institution_id: &str,
    account: &str,
    uuid: &str,
    host: &str,
    owner: Option<&str>,
) -> NewJob {
    let now = Timestamp::now();
    NewJob {
        institution_id: institution_id.into(),
        zoom_account_id: account.into(),
        meeting_uuid: uuid.into(),
        meeting_id: 87565330005,
        topic: "Lecture 3".into(),
        host_email: host.into(),
        meeting_start: Some(now),
        state: if owner.is_some() {
            JobState::Queued
        } else {
            JobState::Skipped
        },
        skip_reason: owner
            .is_none()
            .then_some(ferry_control::model::SkipReason::NoMatchingUser),
        message: String::new(),
        owner_user_id: owner.map(str::to_string),
        recording_file: Some(RecordingFile {
            file_id: format!("file-{uuid}"),
            recording_type: "shared_screen_with_speaker_view".into(),
            file_type: "MP4".into(),
            file_extension: "MP4".into(),
            file_size: 3_400_000,
            recording_start: now,
            recording_end: now.saturating_add_millis(3_600_000),
        }),
        skipped_file_count: 0,
        skipped_segment_count: 0,
        // As the intake leaves a job: RetryJob needs its download details
        // (never opened here: a cancelled job is retried without deciding again).
        sealed_download_url: Some(ferry_control::secrets::Sealed(
            b"sealed download url".to_vec(),
        )),
        sealed_download_token: None,
        sealed_recording: None,
        event_time: now,
        now,
        source: JobSource::Webhook,
    }
}

#[tokio::test]
async fn jobs_are_listed_filtered_watched_cancelled_and_retried() {
    let daemon = TestDaemon::start().await.unwrap();
    let mut operator = daemon.operator().await.unwrap();
    let a = create_institution(&mut operator, "A").await.unwrap();
    let b = create_institution(&mut operator, "B").await.unwrap();
    let mut admin_a = daemon.clients(Some(&a.admin_key)).await.unwrap();
    let mut admin_b = daemon.clients(Some(&b.admin_key)).await.unwrap();
    sync(
        &mut admin_a,
        api::SyncMode::Upsert,
        vec![user(
            "e1",
            "elisa@example.edu",
            "",
            api::UserRole::Instructor,
        )],
    )
    .await
    .unwrap();
    let elisa = admin_a
        .users
        .lookup_user_by_email(api::LookupUserByEmailRequest {
            institution_id: String::new(),
            email: "elisa@example.edu".into(),
        })
        .await
        .unwrap()
        .into_inner();

    let mut watch = admin_a
        .jobs
        .watch_jobs(api::WatchJobsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let store = daemon.app.store.clone();
    let (queued, _) = store
        .upsert_job(new_job(
            &a.institution_id,
            "acct-1",
            "uuid/1+a==",
            "Elisa@Example.edu",
            Some(&elisa.user_id),
        ))
        .await
        .unwrap();
    let (skipped, _) = store
        .upsert_job(new_job(
            &a.institution_id,
            "acct-2",
            "uuid-2",
            "stranger@example.edu",
            None,
        ))
        .await
        .unwrap();
    store
        .upsert_job(new_job(
            &b.institution_id,
            "acct-b",
            "uuid-b",
            "b@example.edu",
            None,
        ))
        .await
        .unwrap();

    let event = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .expect("watch event in time")
        .unwrap()
        .unwrap();
    assert_eq!(event.job.unwrap().job_id, queued.job_id);

    let list = |request: api::ListJobsRequest| {
        let mut jobs = admin_a.jobs.clone();
        async move { jobs.list_jobs(request).await.unwrap().into_inner().jobs }
    };
    assert_eq!(
        list(api::ListJobsRequest::default()).await.len(),
        2,
        "B's job is not listed"
    );
    let by_state = list(api::ListJobsRequest {
        states: vec![api::JobState::Skipped as i32],
        ..Default::default()
    })
    .await;
    assert_eq!(
        by_state.iter().map(|j| &j.job_id).collect::<Vec<_>>(),
        vec![&skipped.job_id]
    );
    let by_reason = list(api::ListJobsRequest {
        skip_reason: api::SkipReason::NoMatchingUser as i32,
        ..Default::default()
    })
    .await;
    assert_eq!(by_reason.len(), 1);
    assert_eq!(
        by_reason[0].skip_reason,
        api::SkipReason::NoMatchingUser as i32
    );
    let by_host = list(api::ListJobsRequest {
        host_email: "ELISA@example.edu ".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(by_host.len(), 1);
    assert_eq!(by_host[0].meeting_uuid, "uuid/1+a==");
    let by_account = list(api::ListJobsRequest {
        zoom_account_id: "acct-2".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(by_account.len(), 1);
    let future = list(api::ListJobsRequest {
        create_time: Some(api::TimeRange {
            start_time: Some(prost_types::Timestamp {
                seconds: Timestamp::now().0 / 1000 + 3600,
                nanos: 0,
            }),
            end_time: None,
        }),
        ..Default::default()
    })
    .await;
    assert!(future.is_empty());
    let first_page = admin_a
        .jobs
        .list_jobs(api::ListJobsRequest {
            page: Some(api::PageRequest {
                page_size: 1,
                page_token: String::new(),
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first_page.jobs.len(), 1);
    let second_page = admin_a
        .jobs
        .list_jobs(api::ListJobsRequest {
            page: Some(api::PageRequest {
                page_size: 1,
                page_token: first_page.page.unwrap().next_page_token,
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second_page.jobs.len(), 1);
    assert_ne!(second_page.jobs[0].job_id, first_page.jobs[0].job_id);
    assert!(second_page.page.unwrap().next_page_token.is_empty());

    assert_status(
        admin_b
            .jobs
            .get_job(api::GetJobRequest {
                job_id: queued.job_id.clone(),
                institution_id: String::new(),
            })
            .await,
        Code::NotFound,
        "job",
    );
    assert_status(
        admin_b
            .jobs
            .cancel_job(api::CancelJobRequest {
                job_id: queued.job_id.clone(),
                institution_id: String::new(),
            })
            .await,
        Code::NotFound,
        "job",
    );

    let cancelled = admin_a
        .jobs
        .cancel_job(api::CancelJobRequest {
            job_id: queued.job_id.clone(),
            institution_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.state, api::JobState::Cancelled as i32);
    // The watcher saw, in order: the skipped job's creation (A's), then the
    // cancellation; never B's job.
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let job = tokio::time::timeout(Duration::from_secs(5), watch.message())
            .await
            .expect("watch event in time")
            .unwrap()
            .unwrap()
            .job
            .unwrap();
        assert_eq!(
            job.institution_id, a.institution_id,
            "a watcher sees only its institution"
        );
        seen.push((job.job_id, job.state));
    }
    assert_eq!(
        seen,
        vec![
            (skipped.job_id.clone(), api::JobState::Skipped as i32),
            (queued.job_id.clone(), api::JobState::Cancelled as i32)
        ]
    );
    assert_status(
        admin_a
            .jobs
            .cancel_job(api::CancelJobRequest {
                job_id: queued.job_id.clone(),
                institution_id: String::new(),
            })
            .await,
        Code::FailedPrecondition,
        "only queued or transferring",
    );
    let retried = admin_a
        .jobs
        .retry_job(api::RetryJobRequest {
            job_id: queued.job_id.clone(),
            institution_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retried.state, api::JobState::Queued as i32);
    assert_status(
        admin_a
            .jobs
            .retry_job(api::RetryJobRequest {
                job_id: queued.job_id.clone(),
                institution_id: String::new(),
            })
            .await,
        Code::FailedPrecondition,
        "queued",
    );
    let _ = daemon.stop().await;
}

#[tokio::test]
async fn completed_jobs_show_up_as_the_owners_media() {
    let daemon = TestDaemon::start().await.unwrap();
    let mut operator = daemon.operator().await.unwrap();
    let a = create_institution(&mut operator, "A").await.unwrap();
    let b = create_institution(&mut operator, "B").await.unwrap();
    let mut admin_a = daemon.clients(Some(&a.admin_key)).await.unwrap();
    let mut admin_b = daemon.clients(Some(&b.admin_key)).await.unwrap();
    sync(
        &mut admin_a,
        api::SyncMode::Upsert,
        vec![
            user("e1", "elisa@example.edu", "", api::UserRole::Instructor),
            user("e2", "ta@example.edu", "", api::UserRole::Student),
        ],
    )
    .await
    .unwrap();
    sync(
        &mut admin_b,
        api::SyncMode::Upsert,
        vec![user("b1", "b@example.edu", "", api::UserRole::Instructor)],
    )
    .await
    .unwrap();
    let users = admin_a
        .users
        .list_users(api::ListUsersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .users;
    let elisa = users
        .iter()
        .find(|u| u.external_id == "e1")
        .unwrap()
        .user_id
        .clone();
    let ta = users
        .iter()
        .find(|u| u.external_id == "e2")
        .unwrap()
        .user_id
        .clone();
    let b_user = admin_b
        .users
        .list_users(api::ListUsersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .users[0]
        .user_id
        .clone();

    let store = daemon.app.store.clone();
    let (job, _) = store
        .upsert_job(new_job(
            &a.institution_id,
            "acct",
            "uuid-1",
            "elisa@example.edu",
            Some(&elisa),
        ))
        .await
        .unwrap();
    let lease = store
        .claim_job("worker-1", Duration::from_secs(30), Timestamp::now())
        .await
        .unwrap()
        .expect("a queued job to claim");
    assert_eq!(lease.job.job_id, job.job_id);
    let (_, media) = store
        .complete_job(
            LeaseHolder {
                job_id: &job.job_id,
                worker_id: "worker-1",
            },
            NewMedia {
                object_key: "media/inst/acct/uuid-1/file.mp4".into(),
                checksum: "crc32c:00000000".into(),
                duration_ms: 3_600_000,
                size_bytes: 3_400_000,
                content_type: "video/mp4".into(),
                job_note: String::new(),
                after_copy: Default::default(),
            },
            Timestamp::now(),
        )
        .await
        .unwrap();

    let mine = admin_a
        .media
        .list_media(api::ListMediaRequest {
            owner_user_id: elisa.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .media;
    assert_eq!(mine.len(), 1);
    assert_eq!(
        (mine[0].title.as_str(), mine[0].owner_user_id.as_str()),
        ("Lecture 3", elisa.as_str())
    );
    let theirs = admin_a
        .media
        .list_media(api::ListMediaRequest {
            owner_user_id: ta.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .media;
    assert!(theirs.is_empty());
    let job_after = admin_a
        .jobs
        .get_job(api::GetJobRequest {
            job_id: job.job_id.clone(),
            institution_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(job_after.state, api::JobState::Completed as i32);
    assert_eq!(job_after.media_id, media.media_id);

    assert_status(
        admin_b
            .media
            .get_media(api::GetMediaRequest {
                media_id: media.media_id.clone(),
                institution_id: String::new(),
            })
            .await,
        Code::NotFound,
        "media",
    );
    assert!(
        admin_b
            .media
            .list_media(api::ListMediaRequest::default())
            .await
            .unwrap()
            .into_inner()
            .media
            .is_empty()
    );
    // Ownership moves within the institution only.
    assert_status(
        admin_a
            .media
            .transfer_media_ownership(api::TransferMediaOwnershipRequest {
                media_id: media.media_id.clone(),
                new_owner_user_id: b_user,
                institution_id: String::new(),
            })
            .await,
        Code::NotFound,
        "user",
    );
    let moved = admin_a
        .media
        .transfer_media_ownership(api::TransferMediaOwnershipRequest {
            media_id: media.media_id.clone(),
            new_owner_user_id: ta.clone(),
            institution_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(moved.owner_user_id, ta);
    let all = admin_a
        .media
        .list_media(api::ListMediaRequest::default())
        .await
        .unwrap()
        .into_inner()
        .media;
    assert_eq!(all.len(), 1, "an admin sees the whole institution");
    let _ = daemon.stop().await;
}
