//! The after-copy action end to end: the real daemon copies the simulator's
//! recordings into moto's S3 (through the fault proxy) and, for a
//! configuration with `after_copy = trash`, moves the meeting's recordings
//! to Zoom's trash through the simulator's
//! `DELETE /v2/meetings/{uuid}/recordings?action=trash`, whose record of
//! what it trashed is the evidence. Only after the object is verified and
//! the media recorded; never for a failed, skipped or kept job; a 5xx is
//! retried until it goes through, once.
//!
//! A test that checks that something was not trashed waits for a later
//! meeting to be trashed first: the duty looks at moves in order, so by
//! then it would have trashed the earlier one.

use std::time::{Duration, Instant};

use ferry_control::api;
use ferry_test_support::s3_faults::{Fault, S3Operation};
use ferry_zoomsim::downloads::DownloadServer;
use ferry_zoomsim::{Meeting, Mp4Layout, SyntheticMedia};

use crate::metrics::sample;
use crate::opt_out::choose;
use crate::reconcile::add_credentials;
use crate::s3_engine::{Bucket, S3Transfers, s3_transfers_from};
use crate::support::*;

/// Two full 5 MiB parts and a short third.
fn recording() -> SyntheticMedia {
    SyntheticMedia::mp4(
        10 * MIB + 4321,
        Duration::from_secs(1800),
        Mp4Layout::MoovAtEnd,
        0,
    )
}

/// A daemon copying to S3 whose account has API credentials with the
/// simulator, which the trash duty polls every 100 ms.
async fn start(adjust: impl FnOnce(&mut ferry_daemon::config::Config)) -> S3Transfers {
    let downloads = DownloadServer::start().await.unwrap();
    let zoom_base = downloads.zoom_base();
    let mut rig = s3_transfers_from(Bucket::start().await, downloads, |config| {
        config.zoom.api_base_url = zoom_base.clone();
        config.zoom.oauth_base_url = zoom_base;
        config.after_copy.poll_millis = 100;
        config.after_copy.retry_base_millis = 200;
        adjust(config);
    })
    .await;
    let token = rig.scene.configuration_token.clone();
    add_credentials(&mut rig.scene.admin, &token, &rig.downloads).await;
    rig
}

async fn set_after_copy(rig: &mut S3Transfers, action: api::AfterCopy) {
    let configuration_id = rig.scene.configuration_id.clone();
    let updated = rig
        .scene
        .admin
        .configurations
        .update_zoom_configuration(api::UpdateZoomConfigurationRequest {
            configuration_id,
            after_copy: action as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.after_copy, action as i32);
}

/// A meeting of the scene's account whose one MP4 the simulator serves
/// and whose recordings its API knows (so that it can trash them).
fn meeting(rig: &S3Transfers, uuid: Option<&str>) -> Meeting {
    let mut meeting = rig.meeting(&recording(), recording().len(), |_| {});
    if let Some(uuid) = uuid {
        meeting.uuid = uuid.to_string();
    }
    let file_ids: Vec<&str> = meeting.files.iter().map(|f| f.id.as_str()).collect();
    rig.downloads.add_meeting(ACCOUNT, &meeting.uuid, &file_ids);
    meeting
}

async fn copy(rig: &mut S3Transfers, meeting: &Meeting) -> api::Job {
    let job = rig.scene.ingest(meeting).await;
    rig.wait_final(&job.job_id).await
}

/// `copy`, which must complete.
async fn copy_completed(rig: &mut S3Transfers, meeting: &Meeting) -> api::Job {
    let done = copy(rig, meeting).await;
    assert_eq!(
        job_state(&done),
        api::JobState::Completed,
        "{}",
        done.message
    );
    done
}

fn job_state(job: &api::Job) -> api::JobState {
    api::JobState::try_from(job.state).unwrap()
}

fn trash_state(job: &api::Job) -> Option<api::ZoomTrashState> {
    job.zoom_trash
        .as_ref()
        .map(|t| api::ZoomTrashState::try_from(t.state).unwrap())
}

/// Waits (at most 30 s) until the job's move left PENDING; returns the job.
async fn wait_moved(rig: &mut S3Transfers, job_id: &str) -> api::Job {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let job = rig.scene.job(job_id).await;
        if trash_state(&job).is_some_and(|s| s != api::ZoomTrashState::Pending) {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "job {job_id}'s move to zoom's trash did not end: {:?}",
            job.zoom_trash
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What `ferry_zoom_trash_total` counted, by outcome.
async fn assert_trash_calls(rig: &S3Transfers, trashed: f64, retry: f64) {
    let page = rig.scene.metrics().await;
    let count = |outcome: &str| {
        sample(
            &page,
            &format!("ferry_zoom_trash_total{{outcome=\"{outcome}\"}}"),
        )
    };
    assert_eq!((count("trashed"), count("retry")), (trashed, retry));
}

fn trashed_uuids(rig: &S3Transfers) -> Vec<String> {
    rig.downloads
        .trashed()
        .into_iter()
        .map(|t| t.meeting_uuid)
        .collect()
}

#[tokio::test]
async fn the_zoom_copy_is_trashed_once_the_copy_is_verified() {
    let mut rig = start(|_| {}).await;
    set_after_copy(&mut rig, api::AfterCopy::Trash).await;
    // A uuid Zoom wants encoded twice in the path.
    let meeting = meeting(&rig, Some("/ajXp112QmuoKj4854875//x+y=="));
    let done = copy_completed(&mut rig, &meeting).await;
    let moved = wait_moved(&mut rig, &done.job_id).await;
    let trash = moved.zoom_trash.clone().unwrap();
    assert_eq!(trash_state(&moved), Some(api::ZoomTrashState::Trashed));
    assert_eq!(trash.attempts, 1, "{trash:?}");
    assert!(
        trash
            .message
            .contains("moved the meeting's recordings to zoom's trash")
    );
    assert_eq!(
        job_state(&moved),
        api::JobState::Completed,
        "the job stays completed"
    );

    let trashed = rig.downloads.trashed();
    assert_eq!(trashed.len(), 1, "{trashed:?}");
    assert_eq!(trashed[0].meeting_uuid, meeting.uuid);
    assert_eq!(trashed[0].account_id, ACCOUNT);
    let completed_at = rig
        .bucket
        .proxy
        .seen()
        .into_iter()
        .filter(|r| r.operation == S3Operation::CompleteMultipartUpload && r.status == 200)
        .map(|r| r.answered_at)
        .max()
        .expect("the upload was completed");
    assert!(
        trashed[0].at > completed_at,
        "trashed before S3 had the object"
    );
    assert_trash_calls(&rig, 1.0, 0.0).await;
}

#[tokio::test]
async fn a_copy_whose_completion_fails_trashes_nothing() {
    let mut rig = start(|config| config.transfer.max_attempts = 2).await;
    set_after_copy(&mut rig, api::AfterCopy::Trash).await;
    rig.bucket
        .proxy
        .fail_completions(1000, Fault::InternalError);
    let failed_meeting = meeting(&rig, None);
    let failed = copy(&mut rig, &failed_meeting).await;
    assert_eq!(
        job_state(&failed),
        api::JobState::Failed,
        "{}",
        failed.message
    );
    assert_eq!(failed.zoom_trash, None, "a failed job has no move");
    assert!(rig.bucket.proxy.count(S3Operation::CompleteMultipartUpload) > 0);

    // The signal: a later copy that completes is trashed; the failed one
    // never was.
    rig.bucket.proxy.fail_completions(0, Fault::InternalError);
    let good = meeting(&rig, None);
    let done = copy_completed(&mut rig, &good).await;
    wait_moved(&mut rig, &done.job_id).await;
    assert_eq!(trashed_uuids(&rig), vec![good.uuid.clone()]);
    assert_eq!(rig.downloads.trash_calls(), 1);
}

#[tokio::test]
async fn kept_and_skipped_recordings_are_never_trashed() {
    let mut rig = start(|_| {}).await;
    // Keep (the default): completed, and nothing to move.
    let kept_meeting = meeting(&rig, None);
    let kept = copy_completed(&mut rig, &kept_meeting).await;
    assert_eq!(kept.zoom_trash, None);

    // Trash from now on; an opted-out host's recording is skipped.
    set_after_copy(&mut rig, api::AfterCopy::Trash).await;
    choose(&mut rig.scene.admin, api::IngestChoice::OptedOut).await;
    let skipped_meeting = meeting(&rig, None);
    let skipped = rig.scene.ingest(&skipped_meeting).await;
    assert_eq!(job_state(&skipped), api::JobState::Skipped);
    assert_eq!(skipped.zoom_trash, None);

    // The signal: the next completed copy is trashed, and only it.
    choose(&mut rig.scene.admin, api::IngestChoice::Default).await;
    let moved_meeting = meeting(&rig, None);
    let moved = copy_completed(&mut rig, &moved_meeting).await;
    wait_moved(&mut rig, &moved.job_id).await;
    assert_eq!(trashed_uuids(&rig), vec![moved_meeting.uuid.clone()]);
    assert_eq!(rig.downloads.trash_calls(), 1, "keep never called zoom");
    assert_eq!(rig.scene.job(&kept.job_id).await.zoom_trash, None);
    assert_eq!(rig.scene.job(&skipped.job_id).await.zoom_trash, None);
}

#[tokio::test]
async fn a_failed_trash_call_is_retried_and_the_job_says_so() {
    let mut rig = start(|_| {}).await;
    set_after_copy(&mut rig, api::AfterCopy::Trash).await;
    rig.downloads.fail_trash_with(&[503, 500]);
    let meeting = meeting(&rig, None);
    let done = copy_completed(&mut rig, &meeting).await;
    let moved = wait_moved(&mut rig, &done.job_id).await;
    let trash = moved.zoom_trash.clone().unwrap();
    assert_eq!(
        trash_state(&moved),
        Some(api::ZoomTrashState::Trashed),
        "{trash:?}"
    );
    assert_eq!(trash.attempts, 3, "two failures, then the move: {trash:?}");
    assert_eq!(
        job_state(&moved),
        api::JobState::Completed,
        "never failed the job"
    );
    assert_eq!(
        trashed_uuids(&rig),
        vec![meeting.uuid.clone()],
        "trashed once"
    );
    assert_eq!(rig.downloads.trash_calls(), 3);
    assert_trash_calls(&rig, 1.0, 2.0).await;
}

#[tokio::test]
async fn a_move_that_keeps_failing_is_given_up_with_a_reason() {
    let mut rig = start(|config| config.after_copy.max_attempts = 2).await;
    set_after_copy(&mut rig, api::AfterCopy::Trash).await;
    rig.downloads.fail_trash_with(&[503, 503, 503]);
    let meeting = meeting(&rig, None);
    let done = copy(&mut rig, &meeting).await;
    let given_up = wait_moved(&mut rig, &done.job_id).await;
    let trash = given_up.zoom_trash.clone().unwrap();
    assert_eq!(
        trash_state(&given_up),
        Some(api::ZoomTrashState::Failed),
        "{trash:?}"
    );
    assert_eq!(trash.attempts, 2);
    assert!(
        trash.message.contains("gave up") && trash.message.contains("HTTP 503"),
        "{}",
        trash.message
    );
    assert_eq!(job_state(&given_up), api::JobState::Completed);
    assert!(rig.downloads.trashed().is_empty());
    assert_eq!(rig.downloads.trash_calls(), 2, "no call after giving up");
}

#[tokio::test]
async fn a_pending_move_survives_a_restart_and_is_done_once() {
    // The stopped daemon's duty lapses after the lease (3 s) and the new
    // daemon takes it over.
    let mut rig = start(|config| {
        config.after_copy.retry_base_millis = 1500;
        config.after_copy.lease_secs = 3;
    })
    .await;
    set_after_copy(&mut rig, api::AfterCopy::Trash).await;
    rig.downloads.fail_trash_with(&[503]);
    let meeting = meeting(&rig, None);
    let done = copy_completed(&mut rig, &meeting).await;
    // The first call failed and the move waits for its retry ...
    let deadline = Instant::now() + Duration::from_secs(30);
    while rig
        .scene
        .job(&done.job_id)
        .await
        .zoom_trash
        .is_none_or(|t| t.attempts == 0)
    {
        assert!(Instant::now() < deadline, "zoom's trash was never called");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ... when the daemon stops; the next one finds it in the store.
    let mut restarted = rig.restart().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let moved = loop {
        let job = restarted
            .admin
            .jobs
            .get_job(api::GetJobRequest {
                job_id: done.job_id.clone(),
                institution_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        if trash_state(&job) == Some(api::ZoomTrashState::Trashed) {
            break job;
        }
        assert!(
            Instant::now() < deadline,
            "not moved after the restart: {:?}",
            job.zoom_trash
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        moved.zoom_trash.unwrap().attempts,
        2,
        "one failure, then the move"
    );
    let trashed: Vec<String> = restarted
        .downloads
        .trashed()
        .into_iter()
        .map(|t| t.meeting_uuid)
        .collect();
    assert_eq!(trashed, vec![meeting.uuid.clone()]);
    assert_eq!(restarted.downloads.trash_calls(), 2);
    let _ = restarted.daemon.stop().await;
    drop(restarted.bucket);
}
