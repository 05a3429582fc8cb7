//! The reconciler and backfills against the real daemon and the simulated
//! Zoom: recordings whose webhook Zoom "lost" are found by one pass (and a
//! second pass changes nothing); a 429 with `Retry-After` on the recordings
//! list is waited out and Zoom's per-account limit is never exceeded;
//! recordings made before the install are skipped for webhooks and the
//! reconciler and ingested by an explicit backfill; an account installed
//! through the Marketplace is reconciled with its OAuth tokens.
//!
//! Passes run every second (`reconcile.interval_secs = 1`) with no grace
//! period, and a test waits for the pass counters of `/metrics`, never a
//! fixed sleep.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use ferry_control::api;
use ferry_control::model::Timestamp;
use ferry_daemon::cli::client::Clients;
use ferry_daemon::config::Config;
use ferry_zoomsim::downloads::{DownloadServer, FileBehavior};
use ferry_zoomsim::{FileSpec, Meeting, Mp4Layout, SyntheticMedia};

use crate::metrics::sample;
use crate::support::*;
use crate::transfer_limits::CLIENT_SECRET;

pub(crate) const CLIENT_ID: &str = "sim-s2s-client";
/// The Zoom user id of the scene's host, whose email the list may omit.
pub(crate) const HOST_ID: &str = "host-elisa";
const HOST_EMAIL: &str = "Elisa@Example.edu";

/// Points `config` at the simulator's Zoom API and makes passes fast.
pub(crate) fn reconcile_config(config: &mut Config, zoom: &DownloadServer) {
    config.zoom.download_allowlist = vec!["127.0.0.1".into(), "localhost".into()];
    config.zoom.allow_insecure_downloads = true;
    config.zoom.api_base_url = zoom.zoom_base();
    config.zoom.oauth_base_url = zoom.zoom_base();
    config.reconcile.enabled = true;
    config.reconcile.interval_secs = 1;
    config.reconcile.grace_secs = 0;
    config.reconcile.lease_secs = 3;
}

/// A scene whose daemon reconciles against `zoom`.
pub(crate) async fn scene(zoom: &DownloadServer, adjust: impl FnOnce(&mut Config)) -> Scene {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    reconcile_config(&mut config, zoom);
    adjust(&mut config);
    let mut daemon = TestDaemon::start_with(config).await.unwrap();
    daemon.keep_dir(dir);
    zoom.add_user(HOST_ID, HOST_EMAIL);
    Scene::with_daemon(daemon).await
}

/// Installs `account` with the simulator's Server-to-Server OAuth app.
pub(crate) fn install_with_oauth(
    configuration_token: &str,
    account: &str,
) -> api::InstallZoomAccountRequest {
    api::InstallZoomAccountRequest {
        configuration_token: configuration_token.into(),
        zoom_account_id: account.into(),
        plan: api::ZoomPlan::Education as i32,
        oauth_credentials: Some(api::ZoomOAuthCredentials {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
        }),
    }
}

/// Gives the scene's account Server-to-Server OAuth credentials (a
/// reinstall with the same configuration updates it in place): from now
/// on the reconciler lists it.
pub(crate) async fn add_credentials(admin: &mut Clients, token: &str, zoom: &DownloadServer) {
    zoom.add_oauth_client(ACCOUNT, CLIENT_ID, CLIENT_SECRET);
    let account = admin
        .accounts
        .install_zoom_account(install_with_oauth(token, ACCOUNT))
        .await
        .unwrap()
        .into_inner();
    assert!(account.has_oauth_credentials);
}

/// A short recording of `account` starting at `start` with one small MP4
/// served by `zoom`, in the account's cloud (Zoom's recordings list, with
/// or without the host's email). Whether its webhook is sent is the
/// test's business.
pub(crate) fn cloud_recording(
    zoom: &DownloadServer,
    account: &str,
    host_email: &str,
    start: Timestamp,
    listed_with_email: bool,
) -> Meeting {
    let media = SyntheticMedia::mp4(64 * 1024, Duration::from_secs(1), Mp4Layout::FastStart, 0);
    let mut meeting = Meeting::lecture(account, host_email, start).with_files(vec![FileSpec::mp4(
        "shared_screen_with_speaker_view",
        0,
        1,
        media.len(),
    )]);
    meeting.download_base = zoom.zoom_base();
    zoom.add(
        &meeting.files[0].id,
        FileBehavior::new(media, &meeting.download_token),
    );
    zoom.add_cloud_recording(&meeting, meeting.listed(HOST_ID, listed_with_email));
    meeting
}

const PASSES_COMPLETED: &str = "ferry_reconcile_passes_total{outcome=\"completed\"}";

fn found(outcome: &str) -> String {
    format!("ferry_recordings_found_total{{source=\"reconcile\",outcome=\"{outcome}\"}}")
}

/// Waits (at most 30 s) until `/metrics` counts `passes` completed passes;
/// returns the page.
async fn wait_passes(scene: &Scene, passes: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page = scene.metrics().await;
        if sample(&page, PASSES_COMPLETED) >= passes {
            return page;
        }
        assert!(
            Instant::now() < deadline,
            "no {passes} completed reconcile passes in 30 s: {}",
            page.lines()
                .filter(|l| l.contains("reconcile") || l.contains("recordings_found"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every job of the institution, all pages.
pub(crate) async fn all_jobs(admin: &mut Clients) -> Vec<api::Job> {
    let mut jobs = Vec::new();
    let mut token = String::new();
    loop {
        let page = admin
            .jobs
            .list_jobs(api::ListJobsRequest {
                page: Some(api::PageRequest {
                    page_size: 500,
                    page_token: token.clone(),
                }),
                ..api::ListJobsRequest::default()
            })
            .await
            .unwrap()
            .into_inner();
        jobs.extend(page.jobs);
        match page
            .page
            .map(|p| p.next_page_token)
            .filter(|t| !t.is_empty())
        {
            Some(next) => token = next,
            None => return jobs,
        }
    }
}

fn source(job: &api::Job) -> api::JobSource {
    api::JobSource::try_from(job.source).unwrap()
}

/// Waits until the wall clock is past `at` (recordings must have ended).
async fn wait_until(at: Timestamp) {
    while Timestamp::now() <= at {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_webhooks_are_found_by_one_pass_and_a_second_pass_changes_nothing() {
    let zoom = DownloadServer::start().await.unwrap();
    let mut scene = scene(&zoom, |_| {}).await;
    let recordings: Vec<Meeting> = (0..50)
        .map(|i| {
            cloud_recording(
                &zoom,
                ACCOUNT,
                HOST_EMAIL,
                scene.after_install(0),
                i % 2 == 0,
            )
        })
        .collect();
    let lost: HashSet<String> = recordings[40..].iter().map(|m| m.uuid.clone()).collect();
    for meeting in &recordings[..40] {
        let delivery = scene.zoom.recording_completed(meeting).await.unwrap();
        assert_eq!(delivery.state(), Some("queued"), "{delivery:?}");
    }
    // The recordings have ended (no grace period) before the account can
    // be listed at all: the first pass sees all 50 ready.
    wait_until(scene.after_install(2)).await;
    let before: Vec<api::Job> = all_jobs(&mut scene.admin).await;
    assert_eq!(before.len(), 40);
    let token = scene.configuration_token.clone();
    add_credentials(&mut scene.admin, &token, &zoom).await;

    let page = wait_passes(&scene, 1.0).await;
    let jobs = all_jobs(&mut scene.admin).await;
    assert_eq!(jobs.len(), 50);
    let found_by_reconcile: HashSet<String> = jobs
        .iter()
        .filter(|j| source(j) == api::JobSource::Reconcile)
        .map(|j| j.meeting_uuid.clone())
        .collect();
    assert_eq!(found_by_reconcile, lost, "exactly the lost ones");
    for job in jobs.iter().filter(|j| lost.contains(&j.meeting_uuid)) {
        assert_eq!(job.state, api::JobState::Queued as i32, "{}", job.message);
        assert_eq!(
            job.host_email, HOST_EMAIL,
            "resolved through /v2/users when listed without it"
        );
    }
    // The 40 delivered by webhook are as they were.
    for job in &before {
        let now = jobs.iter().find(|j| j.job_id == job.job_id).unwrap();
        assert_eq!(now, job, "a job the webhook made is untouched");
    }
    assert_eq!(sample(&page, &found("created")), 10.0);
    assert_eq!(sample(&page, &found("duplicate")), 40.0);
    let api_stats = zoom.api_stats();
    assert!(api_stats.list_pages_served >= 1, "{api_stats:?}");
    assert_eq!(
        api_stats.users_served, 1,
        "the host's email is cached for the pass"
    );
    assert_eq!(
        api_stats.recordings_served, 10,
        "a download token per new job"
    );

    // A second pass lists the same 50 and changes nothing.
    let page = wait_passes(&scene, 2.0).await;
    let again = all_jobs(&mut scene.admin).await;
    assert_eq!(again, jobs);
    assert_eq!(sample(&page, &found("created")), 10.0);
    assert!(sample(&page, &found("duplicate")) >= 90.0);
    let _ = scene.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_on_the_list_is_waited_out_and_zooms_limit_is_never_exceeded() {
    let zoom = DownloadServer::start().await.unwrap();
    // Zoom allows 10 requests a second for the account; Ferry paces itself
    // below that, and the first list request gets 429 with Retry-After: 2.
    zoom.set_rate_limit(10);
    zoom.fail_list_with_429(1, Some(2));
    let mut scene = scene(&zoom, |c| c.reconcile.api_requests_per_second = 8).await;
    let recordings: Vec<Meeting> = (0..30)
        .map(|_| cloud_recording(&zoom, ACCOUNT, HOST_EMAIL, scene.after_install(0), true))
        .collect();
    wait_until(scene.after_install(2)).await;
    let token = scene.configuration_token.clone();
    add_credentials(&mut scene.admin, &token, &zoom).await;

    wait_passes(&scene, 1.0).await;
    let jobs = all_jobs(&mut scene.admin).await;
    assert_eq!(jobs.len(), recordings.len());
    let api_stats = zoom.api_stats();
    assert_eq!(api_stats.injected_too_many, 1, "{api_stats:?}");
    assert!(api_stats.list_requests_at.len() >= 2, "{api_stats:?}");
    let waited = api_stats.list_requests_at[1] - api_stats.list_requests_at[0];
    assert!(
        waited >= Duration::from_secs(2),
        "asked again after {waited:?}, before Retry-After ran out"
    );
    assert_eq!(api_stats.recordings_served, 30, "{api_stats:?}");
    assert_eq!(
        api_stats.rate_limited, 0,
        "31 requests paced at 8 a second never passed Zoom's 10"
    );
    let _ = scene.daemon.stop().await;
}

/// Waits (at most 30 s) until the backfill is no longer running.
pub(crate) async fn wait_backfill(
    admin: &mut Clients,
    backfill_id: &str,
    limit: Duration,
) -> api::Backfill {
    let deadline = Instant::now() + limit;
    loop {
        let backfill = admin
            .accounts
            .get_backfill(api::GetBackfillRequest {
                institution_id: String::new(),
                backfill_id: backfill_id.into(),
            })
            .await
            .unwrap()
            .into_inner();
        if backfill.state != api::BackfillState::Running as i32 {
            return backfill;
        }
        assert!(
            Instant::now() < deadline,
            "backfill still running: {backfill:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_install_recordings_are_skipped_by_webhook_and_reconcile_and_ingested_by_a_backfill()
{
    let zoom = DownloadServer::start().await.unwrap();
    let mut scene = scene(&zoom, |_| {}).await;
    let day = 86_400_000;
    // Two days before the install (inside the reconciler's three days):
    // one delivered by webhook, one only in Zoom's list; and one ten days
    // before, which only a backfill lists.
    let by_webhook = cloud_recording(
        &zoom,
        ACCOUNT,
        HOST_EMAIL,
        Timestamp(scene.installed_at.0 - 2 * day),
        true,
    );
    let only_listed = cloud_recording(
        &zoom,
        ACCOUNT,
        HOST_EMAIL,
        Timestamp(scene.installed_at.0 - 2 * day + 60_000),
        false,
    );
    let older = cloud_recording(
        &zoom,
        ACCOUNT,
        HOST_EMAIL,
        Timestamp(scene.installed_at.0 - 10 * day),
        true,
    );
    let delivery = scene.zoom.recording_completed(&by_webhook).await.unwrap();
    assert_eq!(delivery.state(), Some("skipped"), "{delivery:?}");
    let token = scene.configuration_token.clone();
    add_credentials(&mut scene.admin, &token, &zoom).await;
    wait_passes(&scene, 1.0).await;

    let jobs = all_jobs(&mut scene.admin).await;
    assert_eq!(
        jobs.len(),
        2,
        "the older one is outside the reconciler's days"
    );
    let skip = api::SkipReason::RecordedBeforeInstall as i32;
    let job_of = |jobs: &[api::Job], meeting: &Meeting| {
        jobs.iter()
            .find(|j| j.meeting_uuid == meeting.uuid)
            .cloned()
            .unwrap()
    };
    for (meeting, from) in [
        (&by_webhook, api::JobSource::Webhook),
        (&only_listed, api::JobSource::Reconcile),
    ] {
        let job = job_of(&jobs, meeting);
        assert_eq!(
            (job.state, job.skip_reason, source(&job)),
            (api::JobState::Skipped as i32, skip, from)
        );
    }

    // The admin asks for the days from the oldest to the install.
    let from = ferry_control::model::Day::of(older.start).to_string();
    let to = ferry_control::model::Day::of(scene.installed_at).to_string();
    let backfill = scene
        .admin
        .accounts
        .backfill_account(api::BackfillAccountRequest {
            institution_id: String::new(),
            zoom_account_id: ACCOUNT.into(),
            from: from.clone(),
            to: to.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let done = wait_backfill(
        &mut scene.admin,
        &backfill.backfill_id,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        done.state,
        api::BackfillState::Completed as i32,
        "{}",
        done.message
    );
    assert_eq!(
        (done.meetings_seen, done.jobs_created, done.duplicates),
        (3, 3, 0),
        "{done:?}"
    );
    assert_eq!(done.days_done, done.total_days);
    let jobs = all_jobs(&mut scene.admin).await;
    assert_eq!(jobs.len(), 3);
    for meeting in [&by_webhook, &only_listed, &older] {
        let job = job_of(&jobs, meeting);
        assert_eq!(job.state, api::JobState::Queued as i32, "{job:?}");
        assert!(
            job.message.contains(&backfill.backfill_id),
            "the job says which backfill waived the rule: {}",
            job.message
        );
    }
    assert_eq!(source(&job_of(&jobs, &older)), api::JobSource::Backfill);

    // The same backfill again creates nothing.
    let second = scene
        .admin
        .accounts
        .backfill_account(api::BackfillAccountRequest {
            institution_id: String::new(),
            zoom_account_id: ACCOUNT.into(),
            from,
            to,
        })
        .await
        .unwrap()
        .into_inner();
    let again = wait_backfill(
        &mut scene.admin,
        &second.backfill_id,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        (again.meetings_seen, again.jobs_created, again.duplicates),
        (3, 0, 3),
        "{again:?}"
    );
    assert_eq!(all_jobs(&mut scene.admin).await, jobs);
    let _ = scene.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_without_api_credentials_is_refused_with_what_is_missing() {
    let zoom = DownloadServer::start().await.unwrap();
    let mut scene = scene(&zoom, |_| {}).await;
    let refused = scene
        .admin
        .accounts
        .backfill_account(api::BackfillAccountRequest {
            institution_id: String::new(),
            zoom_account_id: ACCOUNT.into(),
            from: "2026-01-01".into(),
            to: "2026-01-31".into(),
        })
        .await;
    assert_status(
        refused,
        tonic::Code::FailedPrecondition,
        "has no API credentials",
    );
    let _ = scene.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_installed_through_the_marketplace_is_reconciled_with_its_oauth_tokens() {
    use ferry_test_support::web::{WebScene, licensed_user};
    let mut scene = WebScene::start(|c| {
        c.reconcile.enabled = true;
        c.reconcile.interval_secs = 1;
        c.reconcile.grace_secs = 0;
        c.reconcile.lease_secs = 3;
    })
    .await;
    let account = "MARKETPLACE-ACCOUNT";
    let token = scene.configuration_token.clone();
    let done = scene
        .install(&scene.browser(), licensed_user(account), &token)
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    sync(
        &mut scene.admin,
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
    scene.zoom_host.add_user(HOST_ID, HOST_EMAIL);
    // Made after the install, its webhook lost; no Server-to-Server
    // credentials anywhere: only the Marketplace tokens can list it.
    let meeting = cloud_recording(
        &scene.zoom_host,
        account,
        HOST_EMAIL,
        Timestamp::from_unix_seconds(Timestamp::now().0 / 1000 + 1),
        false,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let job = loop {
        let jobs = all_jobs(&mut scene.admin).await;
        if let Some(job) = jobs.into_iter().find(|j| j.meeting_uuid == meeting.uuid) {
            break job;
        }
        assert!(
            Instant::now() < deadline,
            "the reconciler never found the recording"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(source(&job), api::JobSource::Reconcile);
    assert_eq!(job.state, api::JobState::Queued as i32, "{}", job.message);
    assert_eq!(job.host_email, HOST_EMAIL);
    let api_stats = scene.zoom_host.api_stats();
    assert_eq!(
        api_stats.tokens_issued, 0,
        "no Server-to-Server token was asked for"
    );
    assert!(
        api_stats.list_pages_served >= 1 && api_stats.recordings_served >= 1,
        "{api_stats:?}"
    );
    let _ = scene.daemon.stop().await;
}
