//! The webhook intake end to end: the Zoom simulator sends real signed HTTP
//! requests to the running daemon, and the outcome is read back over gRPC.

use std::time::Duration;

use ferry_control::api;
use ferry_control::model::Timestamp;
use ferry_test_support::scene::HOST;
use ferry_zoomsim::{FileSpec, Meeting, sign, unix_now};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

fn state(job: &api::Job) -> (api::JobState, api::SkipReason) {
    (
        api::JobState::try_from(job.state).unwrap(),
        api::SkipReason::try_from(job.skip_reason).unwrap(),
    )
}

/// Webhook requests with this outcome, over every event type.
fn counter(metrics: &str, outcome: &str) -> u64 {
    metrics
        .lines()
        .filter(|line| {
            line.starts_with("ferry_webhook_requests_total")
                && line.contains(&format!("outcome=\"{outcome}\""))
        })
        .filter_map(|line| line.rsplit(' ').next())
        .filter_map(|value| value.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn url_validation_answers_the_challenge_and_creates_nothing() {
    let mut scene = Scene::new().await;
    let delivery = scene
        .zoom
        .validate_endpoint("qgg8vlvZRS6UYooatFL8Aw")
        .await
        .unwrap();
    assert_eq!(delivery.status, 200);
    assert_eq!(delivery.body["plainToken"], "qgg8vlvZRS6UYooatFL8Aw");
    let expected = sign(WEBHOOK_SECRET, 0, b"").len(); // "v0=" + 64 hex
    assert_eq!(
        delivery.body["encryptedToken"].as_str().unwrap().len(),
        expected - 3
    );
    // HMAC-SHA256(secret, plainToken) as lowercase hex, computed independently.
    use sha2::Digest;
    let mut key = [0u8; 64];
    key[..WEBHOOK_SECRET.len()].copy_from_slice(WEBHOOK_SECRET.as_bytes());
    let inner: Vec<u8> = key
        .iter()
        .map(|b| b ^ 0x36)
        .chain(*b"qgg8vlvZRS6UYooatFL8Aw")
        .collect();
    let inner_hash = sha2::Sha256::digest(&inner);
    let outer: Vec<u8> = key.iter().map(|b| b ^ 0x5c).chain(inner_hash).collect();
    assert_eq!(
        delivery.body["encryptedToken"],
        hex::encode(sha2::Sha256::digest(&outer))
    );
    assert!(scene.jobs().await.is_empty());
    let _ = scene.daemon.stop().await;
}

#[tokio::test]
async fn bad_signatures_get_401_and_leave_only_a_counter() {
    let mut scene = Scene::new().await;
    let meeting = scene.lecture(60);
    let body = meeting.recording_completed_body();
    let now = unix_now();
    let good = sign(WEBHOOK_SECRET, now, &body);
    let cases: Vec<(Vec<u8>, Option<String>, Option<String>)> = vec![
        (
            body.clone(),
            Some(now.to_string()),
            Some(sign("not-the-secret", now, &body)),
        ),
        (body.clone(), None, Some(good.clone())),
        (body.clone(), Some(now.to_string()), None),
        (body.clone(), Some("yesterday".into()), Some(good.clone())),
        (
            body.clone(),
            Some(now.to_string()),
            Some("v0=nothex".into()),
        ),
        // Stale: signed correctly, but 301 s ago.
        (
            body.clone(),
            Some((now - 301).to_string()),
            Some(sign(WEBHOOK_SECRET, now - 301, &body)),
        ),
        // Re-serialised: same JSON, different bytes, original signature.
        (
            serde_json::to_vec_pretty(&meeting.recording_completed()).unwrap(),
            Some(now.to_string()),
            Some(good.clone()),
        ),
    ];
    let before = counter(&scene.metrics().await, "rejected_signature");
    for (i, (body, timestamp, signature)) in cases.iter().enumerate() {
        let delivery = scene
            .zoom
            .deliver_with(body, timestamp.as_deref(), signature.as_deref())
            .await
            .unwrap();
        assert_eq!(delivery.status, 401, "case {i}: {delivery:?}");
    }
    assert!(
        scene.jobs().await.is_empty(),
        "a refused webhook leaves no job"
    );
    assert_eq!(
        counter(&scene.metrics().await, "rejected_signature"),
        before + cases.len() as u64
    );
    // The very same bytes, correctly signed, are accepted.
    let delivery = scene
        .zoom
        .deliver_with(&body, Some(&now.to_string()), Some(&good))
        .await
        .unwrap();
    assert_eq!(delivery.status, 200);
    let _ = scene.daemon.stop().await;
}

#[tokio::test]
async fn malformed_and_irrelevant_events() {
    let mut scene = Scene::new().await;
    let delivery = scene.zoom.deliver(b"{not json").await.unwrap();
    assert_eq!(delivery.status, 400);
    assert!(
        delivery.body["error"]
            .as_str()
            .unwrap()
            .contains("malformed JSON")
    );

    let mut value = scene.lecture(60).recording_completed();
    value["payload"]["object"]
        .as_object_mut()
        .unwrap()
        .remove("host_email");
    let delivery = scene
        .zoom
        .deliver(value.to_string().as_bytes())
        .await
        .unwrap();
    assert_eq!(delivery.status, 400);
    assert_eq!(delivery.body["error"], "payload.object.host_email: missing");

    let mut value = scene.lecture(60).recording_completed();
    value["payload"]["object"]["recording_files"][0]
        .as_object_mut()
        .unwrap()
        .remove("recording_start");
    let delivery = scene
        .zoom
        .deliver(value.to_string().as_bytes())
        .await
        .unwrap();
    assert_eq!(delivery.status, 400);
    assert_eq!(
        delivery.body["error"],
        "payload.object.recording_files[0].recording_start: missing"
    );

    let before = counter(&scene.metrics().await, "ignored");
    // (`recording.transcript_completed` is handled now: see `companions`.)
    let irrelevant =
        serde_json::json!({"event": "meeting.started", "payload": {"account_id": ACCOUNT}});
    let delivery = scene
        .zoom
        .deliver(irrelevant.to_string().as_bytes())
        .await
        .unwrap();
    assert_eq!(
        (delivery.status, delivery.body["status"].as_str()),
        (200, Some("ignored"))
    );
    assert_eq!(counter(&scene.metrics().await, "ignored"), before + 1);
    assert!(scene.jobs().await.is_empty());

    // An account that is not installed: 200, no job, counted.
    let mut stranger = scene.lecture(60);
    stranger.account_id = "not-installed".into();
    let before = counter(&scene.metrics().await, "not_installed");
    let delivery = scene.zoom.recording_completed(&stranger).await.unwrap();
    assert_eq!(delivery.status, 200);
    assert!(delivery.job_id().is_none());
    assert_eq!(counter(&scene.metrics().await, "not_installed"), before + 1);
    assert!(scene.jobs().await.is_empty());
    let _ = scene.daemon.stop().await;
}

#[tokio::test]
async fn oversized_bodies_get_413_with_or_without_content_length() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.http.max_body_bytes = 64 * 1024;
    let mut scene = Scene::with_daemon(TestDaemon::start_with(config).await.unwrap()).await;
    let big = vec![b' '; 64 * 1024 + 1];
    let delivery = scene.zoom.deliver(&big).await.unwrap();
    assert_eq!(delivery.status, 413);

    // Chunked, no Content-Length, never-ending: cut off at the limit.
    let mut stream = tokio::net::TcpStream::connect(scene.daemon.app.http_addr)
        .await
        .unwrap();
    stream
        .write_all(
            b"POST /zoom/webhook HTTP/1.1\r\nHost: ferry\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .await
        .unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 8192, " ".repeat(8192));
    let mut answer = Vec::new();
    for _ in 0..64 {
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // Exactly at the limit is fine (it is then refused for its content, not its size).
    let at_limit = vec![b' '; 64 * 1024];
    assert_eq!(scene.zoom.deliver(&at_limit).await.unwrap().status, 400);
    assert!(scene.jobs().await.is_empty());
    let _ = scene.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_senders_time_out_without_holding_up_others() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.http.read_timeout_secs = 1;
    let mut scene = Scene::with_daemon(TestDaemon::start_with(config).await.unwrap()).await;
    // One sender dribbles a head, another a body.
    let mut slow_head = tokio::net::TcpStream::connect(scene.daemon.app.http_addr)
        .await
        .unwrap();
    slow_head
        .write_all(b"POST /zoom/webhook HTTP/1.1\r\nHost: fer")
        .await
        .unwrap();
    let mut slow_body = tokio::net::TcpStream::connect(scene.daemon.app.http_addr)
        .await
        .unwrap();
    slow_body
        .write_all(
            b"POST /zoom/webhook HTTP/1.1\r\nHost: ferry\r\nContent-Length: 1000\r\n\r\n{\"event\"",
        )
        .await
        .unwrap();
    // Meanwhile a real delivery goes straight through.
    let started = std::time::Instant::now();
    let job = scene.ingest(&scene.lecture(60)).await;
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "not held up: {:?}",
        started.elapsed()
    );
    assert_eq!(state(&job).0, api::JobState::Queued);
    // Both slow senders are cut off after the read timeout.
    for mut stream in [slow_head, slow_body] {
        let mut answer = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
        assert!(read.is_ok(), "the daemon closed the connection");
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{answer}"
        );
    }
    assert_eq!(scene.jobs().await.len(), 1);
    let _ = scene.daemon.stop().await;
}

#[tokio::test]
async fn the_first_segment_and_one_view_are_chosen() {
    let mut scene = Scene::new().await;
    let meeting = scene.lecture(60).with_files(vec![
        FileSpec::mp4("shared_screen_with_speaker_view", 30, 600, 1000).processing(),
        FileSpec::mp4("gallery_view", 30, 600, 2000),
        FileSpec::mp4("speaker_view(CC)", 30, 600, 3000),
        FileSpec::audio(30, 600, 400),
        FileSpec::chat(30),
        // Stop, then start again twice: later segments.
        FileSpec::mp4("shared_screen_with_speaker_view", 900, 600, 5000),
        FileSpec::audio(900, 600, 500),
        FileSpec::mp4("shared_screen_with_speaker_view", 1800, 600, 6000),
    ]);
    assert!(meeting.uuid.contains('/') && meeting.uuid.contains('+'));
    let job = scene.ingest(&meeting).await;
    assert_eq!(
        state(&job),
        (api::JobState::Queued, api::SkipReason::Unspecified)
    );
    let file = job.recording_file.clone().unwrap();
    assert_eq!(
        file.file_id, meeting.files[2].id,
        "speaker_view(CC) outranks gallery_view; processing is never chosen"
    );
    assert_eq!(file.file_size, 3000);
    assert_eq!((job.skipped_file_count, job.skipped_segment_count), (3, 2));
    assert_eq!(job.meeting_uuid, meeting.uuid);
    assert_eq!(job.topic, meeting.topic);
    assert!(job.message.contains("2 later segment"), "{}", job.message);
    let users = scene
        .admin
        .users
        .list_users(api::ListUsersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .users;
    assert_eq!(job.owner_user_id, users[0].user_id);

    // The configuration's own view priority wins over the default.
    scene
        .admin
        .configurations
        .update_zoom_configuration(api::UpdateZoomConfigurationRequest {
            configuration_id: scene.configuration_id.clone(),
            display_name: None,
            view_priority: Some(api::ViewPriority {
                recording_types: vec!["gallery_view".into()],
            }),
            institution_id: String::new(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut again = meeting.clone();
    again.uuid = ferry_zoomsim::random_meeting_uuid();
    let job = scene.ingest(&again).await;
    assert_eq!(job.recording_file.unwrap().file_id, meeting.files[1].id);

    // Audio only is the fallback; nothing copyable is a visible skip.
    let audio = scene.lecture(60).with_files(vec![
        FileSpec::mp4("speaker_view", 0, 600, 1000).processing(),
        FileSpec::audio(0, 600, 400),
    ]);
    let job = scene.ingest(&audio).await;
    assert_eq!(job.recording_file.unwrap().file_type, "M4A");
    let nothing = scene
        .lecture(60)
        .with_files(vec![FileSpec::chat(0), FileSpec::transcript(0, 60)]);
    let job = scene.ingest(&nothing).await;
    assert_eq!(
        state(&job),
        (api::JobState::Skipped, api::SkipReason::NoDownloadableFile)
    );
    let _ = scene.daemon.stop().await;
}

#[tokio::test]
async fn recordings_from_before_the_install_are_skipped() {
    let mut scene = Scene::new().await;
    let install_second = scene.installed_at.0.div_euclid(1000);
    let mut before = Meeting::lecture(
        ACCOUNT,
        HOST,
        Timestamp::from_unix_seconds(install_second - 10),
    );
    before.files = vec![FileSpec::mp4("speaker_view", 9, 600, 1000)]; // starts 1 s before the install second
    let job = scene.ingest(&before).await;
    assert_eq!(
        state(&job),
        (
            api::JobState::Skipped,
            api::SkipReason::RecordedBeforeInstall
        )
    );
    assert!(
        job.message.contains("before zoom account"),
        "{}",
        job.message
    );
    let mut after = Meeting::lecture(
        ACCOUNT,
        HOST,
        Timestamp::from_unix_seconds(install_second + 1),
    );
    after.files = vec![FileSpec::mp4("speaker_view", 0, 600, 1000)];
    let job = scene.ingest(&after).await;
    assert_eq!(state(&job).0, api::JobState::Queued);
    let _ = scene.daemon.stop().await;
}

#[tokio::test]
async fn caps_hold_exactly_at_their_boundaries() {
    let mut scene = Scene::new().await;
    let eight_hours = 8 * 3600;
    let five_gib = 5 * GIB;
    let cases = [
        (
            eight_hours,
            0,
            1000,
            api::JobState::Queued,
            api::SkipReason::Unspecified,
        ),
        (
            eight_hours + 1,
            0,
            1000,
            api::JobState::Skipped,
            api::SkipReason::TooLong,
        ),
        (
            60,
            480,
            1000,
            api::JobState::Queued,
            api::SkipReason::Unspecified,
        ),
        (
            60,
            481,
            1000,
            api::JobState::Skipped,
            api::SkipReason::TooLong,
        ),
        (
            60,
            0,
            five_gib,
            api::JobState::Queued,
            api::SkipReason::Unspecified,
        ),
        (
            60,
            0,
            five_gib + 1,
            api::JobState::Skipped,
            api::SkipReason::TooLarge,
        ),
    ];
    for (length, minutes, size, want_state, want_reason) in cases {
        let mut meeting =
            scene
                .lecture(60)
                .with_files(vec![FileSpec::mp4("speaker_view", 0, length, size)]);
        meeting.duration_minutes = minutes;
        let job = scene.ingest(&meeting).await;
        assert_eq!(
            state(&job),
            (want_state, want_reason),
            "length {length}s, duration {minutes}min, size {size}"
        );
    }
    let _ = scene.daemon.stop().await;
}

#[tokio::test]
async fn unmatched_hosts_are_skipped_visibly_and_can_be_retried() {
    let mut scene = Scene::new().await;
    let mut meeting = scene.lecture(60);
    meeting.host_email = "  Newcomer@Example.EDU ".into();
    let job = scene.ingest(&meeting).await;
    assert_eq!(
        state(&job),
        (api::JobState::Skipped, api::SkipReason::NoMatchingUser)
    );
    assert!(
        job.message.contains("newcomer@example.edu"),
        "{}",
        job.message
    );
    let listed = scene
        .admin
        .jobs
        .list_jobs(api::ListJobsRequest {
            skip_reason: api::SkipReason::NoMatchingUser as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .jobs;
    assert_eq!(listed.len(), 1);
    // Retrying before the user exists changes nothing and says why.
    let retry = api::RetryJobRequest {
        job_id: job.job_id.clone(),
        institution_id: String::new(),
    };
    assert_status(
        scene.admin.jobs.retry_job(retry.clone()).await,
        tonic::Code::FailedPrecondition,
        "no_matching_user",
    );
    sync(
        &mut scene.admin,
        api::SyncMode::Upsert,
        vec![user(
            "n1",
            "x@example.edu",
            "newcomer@example.edu",
            api::UserRole::Instructor,
        )],
    )
    .await
    .unwrap();
    let retried = scene
        .admin
        .jobs
        .retry_job(retry)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        state(&retried),
        (api::JobState::Queued, api::SkipReason::Unspecified)
    );
    assert_eq!(retried.recording_file.unwrap().file_id, meeting.files[0].id);
    assert!(!retried.owner_user_id.is_empty());
    let _ = scene.daemon.stop().await;
}

#[tokio::test]
async fn duplicates_never_make_a_second_job_and_fresher_tokens_win() {
    let mut scene = Scene::new().await;
    let meeting = scene.lecture(60);
    let first = scene.ingest(&meeting).await;
    let again = scene.zoom.recording_completed(&meeting).await.unwrap();
    assert_eq!(
        (again.job_id(), again.body["duplicate"].as_bool()),
        (Some(first.job_id.as_str()), Some(true))
    );

    // A later event for the same meeting with a new token and URL.
    let mut fresher = meeting.clone();
    fresher.download_token = "fresh-download-token".into();
    fresher.download_base = "https://us07web.zoom.us".into();
    fresher.event_ts += 60_000;
    assert_eq!(
        scene
            .zoom
            .recording_completed(&fresher)
            .await
            .unwrap()
            .job_id(),
        Some(first.job_id.as_str())
    );
    // An older redelivery does not win back.
    let mut stale = meeting.clone();
    stale.download_token = "stale-download-token".into();
    stale.event_ts -= 60_000;
    scene.zoom.recording_completed(&stale).await.unwrap();

    let secrets = scene
        .daemon
        .app
        .store
        .get_job_secrets(&first.institution_id, &first.job_id)
        .await
        .unwrap();
    let secret_box = scene.daemon.secret_box().unwrap();
    let token = secret_box
        .open_secret(secrets.sealed_download_token.as_ref().unwrap())
        .unwrap();
    assert_eq!(token.expose(), "fresh-download-token");
    let url = secret_box
        .open_secret(secrets.sealed_download_url.as_ref().unwrap())
        .unwrap();
    assert!(
        url.expose().starts_with("https://us07web.zoom.us/"),
        "the newer URL is kept"
    );

    // 50 concurrent deliveries of one new event: exactly one job.
    let burst = scene.lecture(120);
    let mut deliveries = Vec::new();
    for _ in 0..50 {
        let (zoom, burst) = (scene.zoom.clone(), burst.clone());
        deliveries.push(tokio::spawn(async move {
            zoom.recording_completed(&burst).await.unwrap()
        }));
    }
    let mut job_ids = std::collections::HashSet::new();
    for delivery in deliveries {
        let delivery = delivery.await.unwrap();
        assert_eq!(delivery.status, 200);
        job_ids.insert(delivery.job_id().unwrap().to_string());
    }
    assert_eq!(job_ids.len(), 1, "every delivery names the same job");
    let jobs = scene.jobs().await;
    assert_eq!(
        jobs.iter().filter(|j| j.meeting_uuid == burst.uuid).count(),
        1
    );
    assert_eq!(jobs.len(), 2);

    // Neither the API nor the job's debug form carries the secrets.
    let shown = format!("{jobs:?}");
    assert!(!shown.contains("fresh-download-token") && !shown.contains("webhook_download"));
    let _ = scene.daemon.stop().await;
}

#[tokio::test]
async fn app_deauthorized_stops_ingesting_the_account() {
    let mut scene = Scene::new().await;
    let delivery = scene.zoom.deauthorize(ACCOUNT).await.unwrap();
    assert_eq!(delivery.status, 200);
    let account = scene
        .admin
        .accounts
        .get_zoom_account(api::GetZoomAccountRequest {
            zoom_account_id: ACCOUNT.into(),
            institution_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(account.uninstall_time.is_some());
    let later = scene
        .zoom
        .recording_completed(&scene.lecture(60))
        .await
        .unwrap();
    assert_eq!(later.status, 200);
    assert!(later.job_id().is_none());
    assert!(scene.jobs().await.is_empty());
    // Deauthorizing an unknown account is acknowledged (Zoom must not retry).
    assert_eq!(
        scene
            .zoom
            .deauthorize("never-installed")
            .await
            .unwrap()
            .status,
        200
    );
    let _ = scene.daemon.stop().await;
}
