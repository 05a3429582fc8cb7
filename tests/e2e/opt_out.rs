//! Opt-out and opt-in end to end: the real daemon decides signed webhooks
//! from the simulator by the host's ingest choice (synced through
//! `SyncUsers`, and through `ferry users sync`'s CSV column) under the
//! configuration's ingest mode, skips with `USER_OPTED_OUT` and a message
//! that says how to change it, and `RetryJob` decides again once the
//! choice changed.

use ferry_control::api;
use tonic::Code;

use crate::support::*;

/// The scene's host as a directory record with `choice`.
fn host(choice: api::IngestChoice) -> api::SyncUsersRequest {
    api::SyncUsersRequest {
        item: Some(api::sync_users_request::Item::User(api::UserRecord {
            external_id: "e1".into(),
            email: "elisa@example.edu".into(),
            display_name: "Elisa".into(),
            role: api::UserRole::Instructor as i32,
            ingest_choice: choice as i32,
            ..Default::default()
        })),
    }
}

/// Syncs the scene's host with `choice` (an update of her record).
pub(crate) async fn choose(
    admin: &mut ferry_daemon::cli::client::Clients,
    choice: api::IngestChoice,
) {
    sync(admin, api::SyncMode::Upsert, vec![host(choice)])
        .await
        .unwrap();
}

fn skip(job: &api::Job) -> (api::JobState, api::SkipReason) {
    (
        api::JobState::try_from(job.state).unwrap(),
        api::SkipReason::try_from(job.skip_reason).unwrap(),
    )
}

async fn retry(scene: &mut Scene, job_id: &str) -> Result<api::Job, tonic::Status> {
    scene
        .admin
        .jobs
        .retry_job(api::RetryJobRequest {
            job_id: job_id.into(),
            institution_id: String::new(),
        })
        .await
        .map(|r| r.into_inner())
}

async fn set_mode(scene: &mut Scene, mode: api::IngestMode) -> api::ZoomConfiguration {
    let configuration_id = scene.configuration_id.clone();
    scene
        .admin
        .configurations
        .update_zoom_configuration(api::UpdateZoomConfigurationRequest {
            configuration_id,
            ingest_mode: mode as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn an_opted_out_host_is_skipped_until_the_choice_changes() {
    let mut scene = Scene::new().await;
    let summary = sync(
        &mut scene.admin,
        api::SyncMode::Upsert,
        vec![host(api::IngestChoice::OptedOut)],
    )
    .await
    .unwrap();
    assert_eq!(summary.updated, 1, "{summary:?}");
    let lecture = scene.lecture(60);
    let job = scene.ingest(&lecture).await;
    assert_eq!(
        skip(&job),
        (api::JobState::Skipped, api::SkipReason::UserOptedOut),
        "{}",
        job.message
    );
    assert!(
        job.message.contains("elisa@example.edu opted out")
            && job.message.contains("ingest_choice to default or opted_in"),
        "the message says how to change it: {}",
        job.message
    );
    assert_eq!(job.owner_user_id, "", "a skipped job has no owner");

    // Still opted out: the rules still skip it.
    assert_status(
        retry(&mut scene, &job.job_id).await,
        Code::FailedPrecondition,
        "user_opted_out",
    );
    let listed = scene
        .admin
        .jobs
        .list_jobs(api::ListJobsRequest {
            skip_reason: api::SkipReason::UserOptedOut as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .jobs;
    assert_eq!(listed.len(), 1, "the skip reason filters");

    // The user's say changes: the same job is queued on retry.
    choose(&mut scene.admin, api::IngestChoice::Default).await;
    let queued = retry(&mut scene, &job.job_id).await.unwrap();
    assert_eq!(
        api::JobState::try_from(queued.state).unwrap(),
        api::JobState::Queued,
        "{}",
        queued.message
    );
    assert!(!queued.owner_user_id.is_empty(), "owned by the host now");
}

#[tokio::test]
async fn under_opted_in_users_only_hosts_who_opted_in_are_ingested() {
    let mut scene = Scene::new().await;
    let configuration = set_mode(&mut scene, api::IngestMode::OptedInUsers).await;
    assert_eq!(
        configuration.ingest_mode,
        api::IngestMode::OptedInUsers as i32
    );
    assert_eq!(
        configuration.after_copy,
        api::AfterCopy::Keep as i32,
        "an update of the mode keeps the after-copy action"
    );

    // The scene's host said nothing: skipped, with how to change it.
    let first = scene.ingest(&scene.lecture(60)).await;
    assert_eq!(
        skip(&first),
        (api::JobState::Skipped, api::SkipReason::UserOptedOut)
    );
    assert!(
        first.message.contains("ingests only users who opted in")
            && first.message.contains("ingest_choice to opted_in"),
        "{}",
        first.message
    );
    let user = scene
        .admin
        .users
        .lookup_user_by_email(api::LookupUserByEmailRequest {
            institution_id: String::new(),
            email: "elisa@example.edu".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(user.ingest_choice, api::IngestChoice::Default as i32);

    // She opts in: retry queues the skipped job, and a new one is queued.
    choose(&mut scene.admin, api::IngestChoice::OptedIn).await;
    let retried = retry(&mut scene, &first.job_id).await.unwrap();
    assert_eq!(
        api::JobState::try_from(retried.state).unwrap(),
        api::JobState::Queued
    );
    let second = scene.ingest(&scene.lecture(7200)).await;
    assert_eq!(
        api::JobState::try_from(second.state).unwrap(),
        api::JobState::Queued,
        "{}",
        second.message
    );

    // Back to every matching user: opting out still wins.
    set_mode(&mut scene, api::IngestMode::AllMatchingUsers).await;
    choose(&mut scene.admin, api::IngestChoice::OptedOut).await;
    let third = scene.ingest(&scene.lecture(14_400)).await;
    assert_eq!(
        skip(&third),
        (api::JobState::Skipped, api::SkipReason::UserOptedOut)
    );
}

#[tokio::test]
async fn a_bad_ingest_choice_is_rejected_for_its_record_alone() {
    let mut scene = Scene::new().await;
    let mut bad = host(api::IngestChoice::OptedIn);
    if let Some(api::sync_users_request::Item::User(record)) = &mut bad.item {
        record.ingest_choice = 42;
    }
    let summary = sync(
        &mut scene.admin,
        api::SyncMode::Upsert,
        vec![
            bad,
            user("e2", "second@example.edu", "", api::UserRole::Instructor),
        ],
    )
    .await
    .unwrap();
    assert_eq!(summary.rejected.len(), 1, "{summary:?}");
    assert!(
        summary.rejected[0].reason.contains("ingest_choice"),
        "{:?}",
        summary.rejected[0]
    );
    assert_eq!(summary.created, 1, "the other record applies");
}

#[tokio::test]
async fn the_reconciler_skips_an_opted_out_hosts_recording_too() {
    use crate::reconcile::{add_credentials, all_jobs, cloud_recording, scene};
    let zoom = ferry_zoomsim::downloads::DownloadServer::start()
        .await
        .unwrap();
    let mut scene = scene(&zoom, |_| {}).await;
    choose(&mut scene.admin, api::IngestChoice::OptedOut).await;
    // A recording whose webhook never came: only the reconciler finds it.
    let lost = cloud_recording(
        &zoom,
        ACCOUNT,
        "Elisa@Example.edu",
        scene.after_install(0),
        true,
    );
    let token = scene.configuration_token.clone();
    add_credentials(&mut scene.admin, &token, &zoom).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let job = loop {
        let jobs = all_jobs(&mut scene.admin).await;
        if let Some(job) = jobs.into_iter().find(|j| j.meeting_uuid == lost.uuid) {
            break job;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the reconciler made no job"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(job.source, api::JobSource::Reconcile as i32);
    assert_eq!(
        skip(&job),
        (api::JobState::Skipped, api::SkipReason::UserOptedOut),
        "{}",
        job.message
    );
}
