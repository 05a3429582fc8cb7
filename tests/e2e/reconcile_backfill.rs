//! Backfills and reconciling at the process level: a backfill of 1,000
//! recordings over 40 pages and three months, its daemon killed with
//! `kill -9` half way and restarted, gives every eligible recording exactly
//! one job and one object in the bucket (moto) and skips the rest with
//! their reasons; and with three replicas on one PostgreSQL database, one
//! replica at a time lists an account (the others are kept off by the
//! store's lease on the account's listing duty).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use ferry_control::api;
use ferry_control::model::{Day, Timestamp};
use ferry_control::store::postgres_testing::TestCluster;
use ferry_daemon::cli::client::Clients;
use ferry_zoomsim::downloads::DownloadServer;
use ferry_zoomsim::{FileSpec, Meeting};

use crate::durability::binary;
use crate::reconcile::{
    CLIENT_ID, HOST_ID, all_jobs, cloud_recording, install_with_oauth, wait_backfill,
};
use crate::s3_engine::{Bucket, s3_sink_env};
use crate::support::*;
use crate::transfer_limits::CLIENT_SECRET;
use ferry_test_support::replicas::borrowed;

const BACKFILL_ACCOUNT: &str = "backfilled-account";
const HOST_EMAIL: &str = "host@example.edu";

/// An institution with `account` installed with Server-to-Server OAuth
/// credentials and the host as a user, through `daemon`: its admin, the
/// admin's key and the install time.
async fn install_with_credentials(
    daemon: &DaemonProcess,
    zoom: &DownloadServer,
    account: &str,
) -> (Clients, String, Timestamp) {
    let mut operator = connect(&daemon.grpc_url(), Some(OPERATOR_TOKEN))
        .await
        .unwrap();
    let institution = create_institution(&mut operator, "Backfill U")
        .await
        .unwrap();
    let mut admin = connect(&daemon.grpc_url(), Some(&institution.admin_key))
        .await
        .unwrap();
    let configuration = create_configuration(&mut admin, "Main").await;
    zoom.add_oauth_client(account, CLIENT_ID, CLIENT_SECRET);
    zoom.add_user(HOST_ID, HOST_EMAIL);
    let installed = admin
        .accounts
        .install_zoom_account(install_with_oauth(
            &configuration.configuration_token,
            account,
        ))
        .await
        .unwrap()
        .into_inner();
    sync(
        &mut admin,
        api::SyncMode::Upsert,
        vec![user("h", HOST_EMAIL, "", api::UserRole::Instructor)],
    )
    .await
    .unwrap();
    let install_time = installed.install_time.unwrap();
    (
        admin,
        institution.admin_key,
        Timestamp::from_unix_seconds(install_time.seconds),
    )
}

fn reconcile_env(zoom: &DownloadServer) -> Vec<(&'static str, String)> {
    vec![
        ("FERRY_ZOOM_API_BASE_URL", zoom.zoom_base()),
        ("FERRY_ZOOM_OAUTH_BASE_URL", zoom.zoom_base()),
        (
            "FERRY_ZOOM_DOWNLOAD_ALLOWLIST",
            "127.0.0.1,localhost".into(),
        ),
        ("FERRY_ZOOM_ALLOW_INSECURE_DOWNLOADS", "true".into()),
        ("FERRY_RECONCILE_GRACE_SECS", "0".into()),
    ]
}

/// How many of the institution's jobs are in `state`.
fn count(jobs: &[api::Job], state: api::JobState) -> usize {
    jobs.iter().filter(|j| j.state == state as i32).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_killed_mid_way_gives_each_eligible_recording_one_job_and_one_object() {
    let bucket = Bucket::start().await;
    let zoom = DownloadServer::start().await.unwrap();
    zoom.set_max_page_size(25);
    let dir = tempfile::tempdir().unwrap();
    let mut env = reconcile_env(&zoom);
    env.extend([
        ("FERRY_OPERATOR_TOKEN", OPERATOR_TOKEN.into()),
        ("FERRY_ZOOM_WEBHOOK_SECRET", WEBHOOK_SECRET.into()),
        // Slow enough that the kill lands half way through the listing.
        ("FERRY_RECONCILE_API_REQUESTS_PER_SECOND", "100".into()),
        ("FERRY_RECONCILE_LEASE_SECS", "3".into()),
    ]);
    env.extend(s3_sink_env(&bucket, 5 * MIB));
    let env = borrowed(&env);
    let daemon = DaemonProcess::spawn(binary(), dir.path(), &env).unwrap();
    let (mut admin, admin_key, installed_at) =
        install_with_credentials(&daemon, &zoom, BACKFILL_ACCOUNT).await;

    // Three month-long chunks ending before the install: 350 + 350 + 300
    // recordings, 25 a page, so 14 + 14 + 12 = 40 pages. One in ten is
    // hosted by someone the directory lacks, one in ten has no video or
    // audio (a chat file only): 800 are eligible.
    let from = Day::of(installed_at).minus_days(100);
    let chunks = [
        from,
        from.plus_one_month(),
        from.plus_one_month().plus_one_month(),
    ];
    let to = chunks[2].plus_one_month().minus_days(1);
    let mut meetings: Vec<(Meeting, Option<api::SkipReason>)> = Vec::new();
    for (chunk, count) in chunks.iter().zip([350u32, 350, 300]) {
        let days = chunk.days_until(chunk.plus_one_month());
        for i in 0..count {
            let day = Day(chunk.0 + time::Duration::days(i64::from(i % days)));
            let start = Timestamp::parse_rfc3339(&format!("{day}T08:00:00Z"))
                .unwrap()
                .saturating_add_millis(i64::from(i) * 60_000);
            let n = meetings.len();
            let meeting = match n % 10 {
                0 => (
                    cloud_recording(&zoom, BACKFILL_ACCOUNT, "stranger@example.edu", start, true),
                    Some(api::SkipReason::NoMatchingUser),
                ),
                1 => {
                    let mut meeting = Meeting::lecture(BACKFILL_ACCOUNT, HOST_EMAIL, start)
                        .with_files(vec![FileSpec::chat(0)]);
                    meeting.download_base = zoom.zoom_base();
                    zoom.add_cloud_recording(&meeting, meeting.listed(HOST_ID, true));
                    (meeting, Some(api::SkipReason::NoDownloadableFile))
                }
                _ => (
                    cloud_recording(
                        &zoom,
                        BACKFILL_ACCOUNT,
                        HOST_EMAIL,
                        start,
                        n.is_multiple_of(3),
                    ),
                    None,
                ),
            };
            meetings.push(meeting);
        }
    }
    assert_eq!(meetings.len(), 1000);

    let backfill = admin
        .accounts
        .backfill_account(api::BackfillAccountRequest {
            institution_id: String::new(),
            zoom_account_id: BACKFILL_ACCOUNT.into(),
            from: from.to_string(),
            to: to.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(backfill.total_days, from.days_until(to) + 1);
    // Half way through the listing: kill -9.
    let deadline = Instant::now() + Duration::from_secs(60);
    let at_kill = loop {
        let seen = admin
            .accounts
            .get_backfill(api::GetBackfillRequest {
                institution_id: String::new(),
                backfill_id: backfill.backfill_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        if seen.meetings_seen >= 400 {
            break seen;
        }
        assert!(
            Instant::now() < deadline,
            "the backfill does not move: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    daemon.kill9().unwrap();
    assert_eq!(
        at_kill.state,
        api::BackfillState::Running as i32,
        "{at_kill:?}"
    );
    assert!(at_kill.meetings_seen < 1000, "{at_kill:?}");

    let restarted = DaemonProcess::spawn(binary(), dir.path(), &env).unwrap();
    let mut admin = connect(&restarted.grpc_url(), Some(&admin_key))
        .await
        .unwrap();
    let done = wait_backfill(&mut admin, &backfill.backfill_id, Duration::from_secs(90)).await;
    assert_eq!(
        done.state,
        api::BackfillState::Completed as i32,
        "{}",
        done.message
    );
    assert_eq!(done.days_done, done.total_days);
    // Counts and cursor are saved together after each page: the page the
    // kill interrupted is listed again in full, its jobs made before the
    // kill now duplicates.
    assert_eq!(done.meetings_seen, 1000, "{done:?}");
    assert_eq!(done.jobs_created + done.duplicates, 1000, "{done:?}");
    assert!(
        done.duplicates <= 25,
        "at most the interrupted page: {done:?}"
    );

    // Every eligible recording transferred once; wait for the queue to drain.
    let deadline = Instant::now() + Duration::from_secs(120);
    let jobs = loop {
        let jobs = all_jobs(&mut admin).await;
        let open = count(&jobs, api::JobState::Queued) + count(&jobs, api::JobState::Transferring);
        if open == 0 {
            break jobs;
        }
        assert!(Instant::now() < deadline, "{open} jobs still open");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(jobs.len(), 1000, "one job per recording");
    let uuids: HashSet<&str> = jobs.iter().map(|j| j.meeting_uuid.as_str()).collect();
    assert_eq!(uuids.len(), 1000);
    for (meeting, skip) in &meetings {
        let job = jobs
            .iter()
            .find(|j| j.meeting_uuid == meeting.uuid)
            .unwrap();
        match skip {
            None => assert_eq!(
                job.state,
                api::JobState::Completed as i32,
                "{}",
                job.message
            ),
            Some(reason) => {
                assert_eq!(job.state, api::JobState::Skipped as i32, "{}", job.message);
                assert_eq!(job.skip_reason, *reason as i32);
            }
        }
        assert_eq!(job.source, api::JobSource::Backfill as i32);
    }
    let keys = bucket.object_keys().await;
    assert_eq!(keys.len(), 800, "one object per eligible recording");
    assert_eq!(keys.iter().collect::<HashSet<_>>().len(), 800);
    drop(restarted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_three_replicas_on_postgresql_one_lists_an_account_at_a_time() {
    let url = TestCluster::shared().fresh_database().await;
    let zoom = DownloadServer::start().await.unwrap();
    let mut env = reconcile_env(&zoom);
    env.extend([
        ("FERRY_STORE_BACKEND", "postgres".into()),
        ("FERRY_STORE_POSTGRES_URL", url),
        (
            "FERRY_ENCRYPTION_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into(),
        ),
        ("FERRY_RECONCILE_ENABLED", "true".into()),
        ("FERRY_RECONCILE_INTERVAL_SECS", "1".into()),
        // Far longer than a pass: a takeover here would be a failure, not
        // a slow machine's stall.
        ("FERRY_RECONCILE_LEASE_SECS", "15".into()),
    ]);
    let env = borrowed(&env);
    let replicas: Vec<DaemonProcess> = (0..3)
        .map(|_| DaemonProcess::start(binary(), &env).expect("start a replica"))
        .collect();
    let (mut admin, _, installed_at) =
        install_with_credentials(&replicas[0], &zoom, BACKFILL_ACCOUNT).await;
    let lost: HashSet<String> = (0..20)
        .map(|_| {
            cloud_recording(
                &zoom,
                BACKFILL_ACCOUNT,
                HOST_EMAIL,
                installed_at.saturating_add_millis(2_000),
                false,
            )
            .uuid
        })
        .collect();

    // Every replica tries the account every second; wait until the
    // recordings are found and ten more list requests went out.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let jobs = all_jobs(&mut admin).await;
        let found = jobs
            .iter()
            .filter(|j| lost.contains(&j.meeting_uuid))
            .count();
        if found == lost.len() {
            break;
        }
        assert!(Instant::now() < deadline, "{found} of 20 found");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let listed = zoom.api_stats().list_requests_at.len();
    while zoom.api_stats().list_requests_at.len() < listed + 10 {
        assert!(Instant::now() < deadline, "passes stopped");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let api_stats = zoom.api_stats();
    let callers: HashSet<&String> = api_stats.list_bearers.iter().collect();
    assert_eq!(
        callers.len(),
        1,
        "one replica listed the account: {callers:?}"
    );
    assert_eq!(
        api_stats.tokens_issued, 1,
        "the other replicas never needed an account token"
    );
    let jobs = all_jobs(&mut admin).await;
    assert_eq!(jobs.len(), 20);
    assert!(
        jobs.iter()
            .all(|j| j.source == api::JobSource::Reconcile as i32)
    );
    drop(replicas);
}
