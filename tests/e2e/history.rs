//! What a year of recordings must not cost: a clean shutdown leaves the
//! store's WAL checkpointed and empty, and a job whose download details the
//! retention policy erased says so when retried.

use ferry_control::api;
use ferry_control::model::{JobSource, JobState, NewJob, SkipReason, Timestamp};
use ferry_control::secrets::Sealed;
use ferry_control::store::RetentionSweep;
use tonic::Code;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_shutdown_checkpoints_and_truncates_the_wal() {
    let daemon = TestDaemon::start().await.unwrap();
    let mut operator = daemon.operator().await.unwrap();
    for i in 0..20 {
        create_institution(&mut operator, &format!("Shutdown U {i}"))
            .await
            .unwrap();
    }
    let wal = daemon.data_dir.join("ferry.db-wal");
    assert!(
        std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0),
        "the writes went through the WAL"
    );
    drop(operator);
    let data_dir = daemon.data_dir.clone();
    let _guard = daemon.stop().await;
    assert_eq!(
        std::fs::metadata(data_dir.join("ferry.db-wal")).map_or(0, |m| m.len()),
        0,
        "the WAL is empty or gone after a clean shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrying_a_job_whose_details_were_erased_says_so() {
    let daemon = TestDaemon::start().await.unwrap();
    let mut operator = daemon.operator().await.unwrap();
    let institution = create_institution(&mut operator, "Retention U")
        .await
        .unwrap();
    let finished = Timestamp(1_600_000_000_000);
    let (job, _) = daemon
        .app
        .store
        .upsert_job(NewJob {
            institution_id: institution.institution_id.clone(),
            zoom_account_id: "acct-retention".into(),
            meeting_uuid: "old-meeting==".into(),
            meeting_id: 1,
            topic: "An old lecture".into(),
            host_email: "nobody@example.edu".into(),
            meeting_start: None,
            state: JobState::Skipped,
            skip_reason: Some(SkipReason::NoMatchingUser),
            message: "no user".into(),
            owner_user_id: None,
            recording_file: None,
            skipped_file_count: 0,
            skipped_segment_count: 0,
            sealed_download_url: Some(Sealed(vec![1; 32])),
            sealed_download_token: Some(Sealed(vec![2; 32])),
            sealed_recording: Some(Sealed(vec![3; 32])),
            event_time: finished,
            now: finished,
            source: JobSource::Webhook,
        })
        .await
        .unwrap();
    let swept = daemon
        .app
        .store
        .sweep_retention(RetentionSweep {
            erase_secrets_finished_before: Timestamp::now(),
            delete_jobs_finished_before: None,
            max_jobs: 100,
        })
        .await
        .unwrap();
    assert_eq!(swept.secrets_erased, 1);
    let mut admin = daemon.clients(Some(&institution.admin_key)).await.unwrap();
    assert_status(
        admin
            .jobs
            .retry_job(api::RetryJobRequest {
                job_id: job.job_id.clone(),
                ..Default::default()
            })
            .await,
        Code::FailedPrecondition,
        "erased by the retention policy",
    );
    let _ = daemon.stop().await;
}
