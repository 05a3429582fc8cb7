//! The transfer engine against Zoom's limits: expired download tokens (with
//! and without Server-to-Server OAuth credentials), 429 answers, and
//! Ferry's own rate limiters. Timing checks are lower bounds only: a slow
//! machine makes them pass more easily, never fail.

use std::time::{Duration, Instant};

use ferry_control::api;
use ferry_zoomsim::{Mp4Layout, SyntheticMedia};

use crate::support::{ACCOUNT, MIB, TestDaemon};
use crate::transfer::{Transfers, sha256_file, state, transfers};

const CLIENT_ID: &str = "sim-s2s-client";
pub(crate) const CLIENT_SECRET: &str = "sim-s2s-client-secret";

/// Reinstalls the scene's account with OAuth credentials (the same
/// configuration, so the install is updated in place).
pub(crate) async fn add_oauth(t: &mut Transfers, client_secret: &str) {
    let account = t
        .scene
        .admin
        .accounts
        .install_zoom_account(api::InstallZoomAccountRequest {
            configuration_token: t.scene.configuration_token.clone(),
            zoom_account_id: ACCOUNT.into(),
            plan: api::ZoomPlan::Education as i32,
            oauth_credentials: Some(api::ZoomOAuthCredentials {
                client_id: CLIENT_ID.into(),
                client_secret: client_secret.into(),
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(account.has_oauth_credentials);
    t.server.add_oauth_client(ACCOUNT, CLIENT_ID, CLIENT_SECRET);
}

fn small_media() -> SyntheticMedia {
    SyntheticMedia::mp4(7 * MIB, Duration::from_secs(600), Mp4Layout::FastStart, 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_replaced_through_the_accounts_oauth_app() {
    let mut t = transfers(|_| {}).await;
    add_oauth(&mut t, CLIENT_SECRET).await;
    let media = small_media();
    // The webhook's token is stale: Zoom now wants another one. The uuid
    // starts with '/', so the API path must encode it twice.
    let mut meeting = t.meeting(&media, media.len(), |b| {
        b.token = "a-newer-token-zoom-knows".into()
    });
    meeting.uuid = "/ajXp112QmuoKj4854875==".into();
    t.server
        .add_meeting(ACCOUNT, &meeting.uuid, &[meeting.files[0].id.as_str()]);

    let job = t.scene.ingest(&meeting).await;
    let done = t.wait_final(&job.job_id).await;
    assert_eq!(state(&done).0, api::JobState::Completed, "{}", done.message);
    let objects = t.objects();
    assert_eq!(objects.len(), 1);
    assert_eq!(sha256_file(&objects[0]), media.sha256());

    let api_stats = t.server.api_stats();
    assert_eq!(api_stats.tokens_issued, 1, "{api_stats:?}");
    assert_eq!(api_stats.recordings_served, 1, "{api_stats:?}");
    assert_eq!(api_stats.recordings_refused, 0, "{api_stats:?}");
    let file = t.server.stats(&meeting.files[0].id);
    assert_eq!(file.unauthorized, 1, "one refusal, then the fresh token");
    assert!(!file.cdn_saw_authorization);

    // A second expired recording reuses the cached account token.
    let mut second = t.meeting(&media, media.len(), |b| {
        b.token = "another-fresh-one".into()
    });
    second.uuid = "plainUuid+With/slash==".into();
    t.server
        .add_meeting(ACCOUNT, &second.uuid, &[second.files[0].id.as_str()]);
    let job = t.scene.ingest(&second).await;
    let done = t.wait_final(&job.job_id).await;
    assert_eq!(state(&done).0, api::JobState::Completed, "{}", done.message);
    let api_stats = t.server.api_stats();
    assert_eq!(api_stats.tokens_issued, 1, "cached: {api_stats:?}");
    assert_eq!(api_stats.recordings_served, 2, "{api_stats:?}");
    assert!(
        t.scene
            .metrics()
            .await
            .contains("ferry_download_token_refreshes_total{outcome=\"fetched\"} 2"),
        "counted"
    );
    let _ = t.scene.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetched_download_token_is_kept_across_a_restart() {
    // Test daemons run without the reconciler (`test_config`), whose own
    // listing would take an API token too: this test counts the download
    // token's alone.
    let mut t = transfers(|_| {}).await;
    add_oauth(&mut t, CLIENT_SECRET).await;
    // 20 MiB at 2 MiB/s: the daemon stops well before the end.
    let media = SyntheticMedia::mp4(20 * MIB, Duration::from_secs(600), Mp4Layout::FastStart, 0);
    let meeting = t.meeting(&media, media.len(), |b| {
        b.token = "a-newer-token-zoom-knows".into();
        b.throttle_bytes_per_sec = Some(2 * MIB);
    });
    t.server
        .add_meeting(ACCOUNT, &meeting.uuid, &[meeting.files[0].id.as_str()]);
    let job = t.scene.ingest(&meeting).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while t.scene.job(&job.job_id).await.bytes_transferred < 5 * MIB {
        assert!(Instant::now() < deadline, "the transfer never got going");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(t.server.api_stats().recordings_served, 1);

    // A clean stop releases the job; the restarted daemon takes it up with
    // the token it kept, not the webhook's expired one.
    let Transfers {
        mut scene,
        server,
        config,
        media_dir: _,
        dir,
    } = t;
    let institution_id = scene.job(&job.job_id).await.institution_id;
    let _ = scene.daemon.stop().await;
    server.update(&meeting.files[0].id, |b| b.throttle_bytes_per_sec = None);
    let daemon = TestDaemon::start_with(config).await.unwrap();
    let mut operator = daemon.operator().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let job = operator
            .jobs
            .get_job(api::GetJobRequest {
                job_id: job.job_id.clone(),
                institution_id: institution_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        if job.state != api::JobState::Queued as i32
            && job.state != api::JobState::Transferring as i32
        {
            break job;
        }
        assert!(Instant::now() < deadline, "never finished: {job:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(state(&done).0, api::JobState::Completed, "{}", done.message);
    let file = server.stats(&meeting.files[0].id);
    assert_eq!(file.unauthorized, 1, "only the webhook's token was refused");
    assert!(
        file.range_starts.len() >= 2 && file.range_starts.last() > Some(&0),
        "resumed: {file:?}"
    );
    let api_stats = server.api_stats();
    assert_eq!(
        api_stats.recordings_served, 1,
        "fetched once: {api_stats:?}"
    );
    assert_eq!(api_stats.tokens_issued, 1, "{api_stats:?}");
    let _ = daemon.stop().await;
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_fails_clearly_without_usable_credentials() {
    let mut t = transfers(|_| {}).await;
    let media = small_media();

    // No OAuth credentials: FAILED, saying the token expired.
    let expired = t.meeting(&media, media.len(), |b| {
        b.token = "a-newer-token-zoom-knows".into()
    });
    let job = t.scene.ingest(&expired).await;
    let done = t.wait_final(&job.job_id).await;
    assert_eq!(state(&done).0, api::JobState::Failed);
    assert!(
        done.message.contains("expired") && done.message.contains("OAuth"),
        "{}",
        done.message
    );
    assert_eq!(t.server.api_stats().tokens_issued, 0);

    // Credentials Zoom refuses: FAILED, naming them; the secret is not shown.
    add_oauth(&mut t, "a-wrong-secret").await;
    let refused = t.meeting(&media, media.len(), |b| {
        b.token = "a-newer-token-zoom-knows".into()
    });
    t.server
        .add_meeting(ACCOUNT, &refused.uuid, &[refused.files[0].id.as_str()]);
    let job = t.scene.ingest(&refused).await;
    let done = t.wait_final(&job.job_id).await;
    assert_eq!(state(&done).0, api::JobState::Failed);
    assert!(
        done.message.contains("expired")
            && done
                .message
                .contains("refused the account's Server-to-Server OAuth credentials"),
        "{}",
        done.message
    );
    assert!(!done.message.contains("a-wrong-secret"));
    assert_eq!(t.server.api_stats().tokens_refused, 1);
    let page = t.scene.metrics().await;
    for outcome in ["no_credentials", "refused"] {
        let series = format!("ferry_download_token_refreshes_total{{outcome=\"{outcome}\"}} 1");
        assert!(page.contains(&series), "{series}");
    }

    assert!(t.objects().is_empty());
    assert_eq!(t.unfinished_uploads(), 0);
    let _ = t.scene.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_from_zoom_waits_for_retry_after_then_completes() {
    let mut t = transfers(|_| {}).await;
    let media = small_media();
    let meeting = t.meeting(&media, media.len(), |b| {
        b.too_many_requests = Some((2, Some(1)))
    });
    let job = t.scene.ingest(&meeting).await;
    let done = t.wait_final(&job.job_id).await;
    assert_eq!(state(&done).0, api::JobState::Completed, "{}", done.message);
    let stats = t.server.stats(&meeting.files[0].id);
    assert_eq!(stats.too_many, 2);
    assert_eq!(stats.requests_at.len(), 3, "two 429s, then the download");
    for pair in stats.requests_at.windows(2) {
        let gap = pair[1] - pair[0];
        // The backoff base is 20 ms here, so only Retry-After explains 1 s.
        assert!(
            gap >= Duration::from_millis(990),
            "Retry-After honoured: {gap:?}"
        );
    }
    assert_eq!(sha256_file(&t.objects()[0]), media.sha256());

    // Without Retry-After, backoff: still completes.
    let meeting = t.meeting(&media, media.len(), |b| {
        b.too_many_requests = Some((1, None))
    });
    let job = t.scene.ingest(&meeting).await;
    let done = t.wait_final(&job.job_id).await;
    assert_eq!(state(&done).0, api::JobState::Completed, "{}", done.message);
    let _ = t.scene.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_requests_per_account_are_rate_limited() {
    let mut t = transfers(|c| {
        c.transfer.download_requests_per_second = 2;
        c.transfer.max_concurrent = 8;
    })
    .await;
    let media = SyntheticMedia::mp4(64 * 1024, Duration::from_secs(60), Mp4Layout::FastStart, 0);
    let mut jobs = Vec::new();
    let mut files = Vec::new();
    for _ in 0..5 {
        let meeting = t.meeting(&media, media.len(), |_| {});
        files.push(meeting.files[0].id.clone());
        jobs.push(t.scene.ingest(&meeting).await.job_id);
    }
    for job in &jobs {
        let done = t.wait_final(job).await;
        assert_eq!(state(&done).0, api::JobState::Completed, "{}", done.message);
    }
    let mut starts: Vec<Instant> = files
        .iter()
        .flat_map(|f| t.server.stats(f).requests_at)
        .collect();
    starts.sort();
    assert_eq!(starts.len(), 5);
    // 2 per second with a burst of 2: the fifth request comes at least 1.5 s
    // after the first.
    let span = starts[4] - starts[0];
    assert!(span >= Duration::from_millis(1400), "{span:?}");
    let _ = t.scene.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_bandwidth_is_rate_limited() {
    let mut t = transfers(|c| c.transfer.bandwidth_bytes_per_second = 4 * MIB).await;
    let media = SyntheticMedia::mp4(14 * MIB, Duration::from_secs(600), Mp4Layout::FastStart, 0);
    let meeting = t.meeting(&media, media.len(), |_| {});
    let started = Instant::now();
    let job = t.scene.ingest(&meeting).await;
    let done = t.wait_final(&job.job_id).await;
    let took = started.elapsed();
    assert_eq!(state(&done).0, api::JobState::Completed, "{}", done.message);
    // Three 5 MiB parts at 4 MiB/s, the first from the burst: at least 2.5 s.
    assert!(took >= Duration::from_millis(2400), "{took:?}");
    assert_eq!(sha256_file(&t.objects()[0]), media.sha256());
    let _ = t.scene.daemon.stop().await;
}
