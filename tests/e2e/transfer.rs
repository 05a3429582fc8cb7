//! The transfer engine end to end on the local-folder sink: the simulator's
//! download hosts serve synthetic recordings (and misbehave on purpose), the
//! real daemon streams them, and each scenario checks the job's final state
//! and the exact set of objects, byte for byte against a SHA-256.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_control::api;
use ferry_zoomsim::downloads::{DownloadServer, FileBehavior, LengthHeader};
use ferry_zoomsim::{Meeting, Mp4Layout, SyntheticMedia};
use sha2::{Digest, Sha256};

use crate::support::*;

pub(crate) struct Transfers {
    pub scene: Scene,
    pub server: DownloadServer,
    /// What the daemon was started with, for a restart on the same files.
    pub config: ferry_daemon::config::Config,
    pub media_dir: PathBuf,
    pub dir: tempfile::TempDir,
}

pub(crate) async fn transfers(adjust: impl FnOnce(&mut ferry_daemon::config::Config)) -> Transfers {
    transfers_from(DownloadServer::start().await.unwrap(), adjust).await
}

/// As [`transfers`], downloading from `server` (which may speak HTTPS).
pub(crate) async fn transfers_from(
    server: DownloadServer,
    adjust: impl FnOnce(&mut ferry_daemon::config::Config),
) -> Transfers {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.transfer.enabled = true;
    config.transfer.part_size_bytes = 5 * MIB;
    config.transfer.byte_budget_bytes = 64 * MIB;
    config.transfer.heartbeat_secs = 1;
    config.transfer.lease_secs = 5;
    config.transfer.backoff_base_ms = 20;
    config.transfer.stall_timeout_secs = 2;
    config.zoom.download_allowlist = vec!["127.0.0.1".into(), "localhost".into()];
    config.zoom.allow_insecure_downloads = true;
    config.zoom.api_base_url = server.zoom_base();
    config.zoom.oauth_base_url = server.zoom_base();
    adjust(&mut config);
    let media_dir = config.media_dir();
    let daemon = TestDaemon::start_with(config.clone()).await.unwrap();
    Transfers {
        scene: Scene::with_daemon(daemon).await,
        server,
        config,
        media_dir,
        dir,
    }
}

impl Transfers {
    /// A meeting whose one MP4 is `media`, served per `behave`.
    pub fn meeting(
        &self,
        media: &SyntheticMedia,
        announced_size: u64,
        behave: impl FnOnce(&mut FileBehavior),
    ) -> Meeting {
        self.scene
            .served_meeting(&self.server, media, announced_size, behave)
    }

    pub async fn wait_final(&mut self, job_id: &str) -> api::Job {
        self.scene.wait_final(job_id).await
    }

    /// Every object file under the media folder, uploads in progress excluded.
    pub fn objects(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.file_name().is_some_and(|n| n == ".uploads") {
                    continue;
                }
                if path.is_dir() {
                    walk(&path, found);
                } else {
                    found.push(path);
                }
            }
        }
        let mut found = Vec::new();
        walk(&self.media_dir, &mut found);
        found
    }

    pub fn unfinished_uploads(&self) -> usize {
        std::fs::read_dir(self.media_dir.join(".uploads")).map_or(0, |d| d.count())
    }
}

pub(crate) fn sha256_file(path: &Path) -> [u8; 32] {
    let mut hasher = Sha256::new();
    let mut file = std::fs::File::open(path).unwrap();
    std::io::copy(&mut file, &mut hasher).unwrap();
    hasher.finalize().into()
}

pub(crate) fn state(job: &api::Job) -> (api::JobState, api::SkipReason) {
    (
        api::JobState::try_from(job.state).unwrap(),
        api::SkipReason::try_from(job.skip_reason).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_streams_into_exactly_one_verified_object_and_media() {
    let mut t = transfers(|_| {}).await;
    let media = SyntheticMedia::mp4(
        320 * MIB + 12_345,
        Duration::from_secs(3600),
        Mp4Layout::MoovAtEnd,
        1,
    );
    let meeting = t.meeting(&media, media.len(), |_| {});
    let job = t.scene.ingest(&meeting).await;
    let done = t.wait_final(&job.job_id).await;
    assert_eq!(state(&done).0, api::JobState::Completed, "{}", done.message);
    assert_eq!(done.bytes_transferred, media.len());

    let objects = t.objects();
    assert_eq!(objects.len(), 1, "{objects:?}");
    assert_eq!(sha256_file(&objects[0]), media.sha256());
    let key = objects[0]
        .strip_prefix(&t.media_dir)
        .unwrap()
        .to_string_lossy()
        .to_string();
    assert!(
        !key.contains(&meeting.topic) && !key.contains('+'),
        "ids only: {key}"
    );
    assert_eq!(t.unfinished_uploads(), 0);
    let stats = t.server.stats(&meeting.files[0].id);
    assert!(
        !stats.cdn_saw_authorization,
        "the token never goes to the CDN host"
    );

    let owner = done.owner_user_id.clone();
    let mine = t
        .scene
        .admin
        .media
        .list_media(api::ListMediaRequest {
            owner_user_id: owner.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .media;
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].media_id, done.media_id);
    assert_eq!(mine[0].size_bytes, media.len());
    assert_eq!(mine[0].duration_ms, 3_600_000);
    assert_eq!(mine[0].title, meeting.topic);

    // The same webhook again, after completion: still one job, one object, one media.
    let again = t.scene.zoom.recording_completed(&meeting).await.unwrap();
    assert_eq!(again.job_id(), Some(done.job_id.as_str()));
    // The answer comes after the decision is committed: a duplicate of a
    // COMPLETED job, which no worker claims again, so nothing can follow.
    assert_eq!(
        (again.duplicate(), again.state()),
        (Some(true), Some("completed")),
        "{again:?}"
    );
    assert_eq!(t.objects().len(), 1);
    assert_eq!(
        t.scene
            .admin
            .media
            .list_media(api::ListMediaRequest::default())
            .await
            .unwrap()
            .into_inner()
            .media
            .len(),
        1
    );
    let _ = t.scene.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_half_way_resumes_from_the_first_missing_byte() {
    let mut t = transfers(|_| {}).await;
    let media = SyntheticMedia::mp4(40 * MIB, Duration::from_secs(1800), Mp4Layout::FastStart, 0);
    let meeting = t.meeting(&media, media.len(), |b| {
        b.reset_after = Some((20 * MIB + 777, 1))
    });
    let job = t.scene.ingest(&meeting).await;
    let done = t.wait_final(&job.job_id).await;
    assert_eq!(state(&done).0, api::JobState::Completed, "{}", done.message);
    let stats = t.server.stats(&meeting.files[0].id);
    assert_eq!(stats.range_starts.len(), 2, "{stats:?}");
    assert_eq!(stats.range_starts[0], 0);
    let resumed_at = stats.range_starts[1];
    assert!(
        resumed_at > 0 && resumed_at % (5 * MIB) == 0,
        "resumed at a part boundary: {resumed_at}"
    );
    assert_eq!(
        stats.bytes_served,
        20 * MIB + 777 + (media.len() - resumed_at),
        "parts already uploaded were not downloaded again"
    );
    assert!(done.attempt_count >= 1);
    let objects = t.objects();
    assert_eq!(objects.len(), 1);
    assert_eq!(sha256_file(&objects[0]), media.sha256());
    let _ = t.scene.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_ignores_range_starts_over_cleanly() {
    let mut t = transfers(|_| {}).await;
    let media = SyntheticMedia::mp4(24 * MIB, Duration::from_secs(600), Mp4Layout::FastStart, 0);
    let meeting = t.meeting(&media, media.len(), |b| {
        b.reset_after = Some((12 * MIB, 1));
        b.honor_range = false;
    });
    let job = t.scene.ingest(&meeting).await;
    let done = t.wait_final(&job.job_id).await;
    assert_eq!(state(&done).0, api::JobState::Completed, "{}", done.message);
    let objects = t.objects();
    assert_eq!(objects.len(), 1);
    assert_eq!(sha256_file(&objects[0]), media.sha256());
    assert_eq!(t.unfinished_uploads(), 0);
    let _ = t.scene.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_stream_is_skipped_mid_stream_even_when_zoom_understated_it() {
    // A lower cap for this one account; the default stays 5 GiB.
    let mut t = transfers(|c| {
        c.caps.accounts.insert(
            ACCOUNT.into(),
            ferry_daemon::config::AccountCapsConfig {
                max_file_bytes: Some(20 * MIB),
                max_duration_secs: None,
            },
        );
    })
    .await;
    let media = SyntheticMedia::mp4(30 * MIB, Duration::from_secs(600), Mp4Layout::MoovAtEnd, 0);
    for length in [LengthHeader::Exact, LengthHeader::Absent] {
        let meeting = t.meeting(&media, 10 * MIB, |b| b.length_header = length);
        let job = t.scene.ingest(&meeting).await;
        let done = t.wait_final(&job.job_id).await;
        assert_eq!(
            state(&done),
            (api::JobState::Skipped, api::SkipReason::TooLarge),
            "{}",
            done.message
        );
        assert!(done.detected_mid_stream);
        let served = t.server.stats(&meeting.files[0].id).bytes_served;
        if length == LengthHeader::Exact {
            // A truthful Content-Length ends the job before its body is
            // read: what was served is only what the sockets buffered, less
            // than the 20 MiB the streamed check would have had to see.
            assert!(
                done.message.contains("Content-Length") && done.message.contains("nothing"),
                "{}",
                done.message
            );
            assert!(
                served < 20 * MIB,
                "the body was not read: {served} bytes served"
            );
        } else {
            assert!(done.message.contains("while streaming"), "{}", done.message);
            assert!(served < 30 * MIB, "the download was stopped early");
        }
    }
    assert!(t.objects().is_empty());
    assert_eq!(
        t.unfinished_uploads(),
        0,
        "the multipart upload was aborted"
    );
    let _ = t.scene.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nine_hour_mp4_is_skipped_mid_stream_in_both_layouts() {
    let mut t = transfers(|_| {}).await;
    for (layout, version) in [(Mp4Layout::FastStart, 0), (Mp4Layout::MoovAtEnd, 1)] {
        let media = SyntheticMedia::mp4(12 * MIB, Duration::from_secs(9 * 3600), layout, version);
        // Zoom's metadata says one hour: only the MP4 itself tells the truth.
        let meeting = t.meeting(&media, media.len(), |_| {});
        let job = t.scene.ingest(&meeting).await;
        let done = t.wait_final(&job.job_id).await;
        assert_eq!(
            state(&done),
            (api::JobState::Skipped, api::SkipReason::TooLong),
            "{layout:?}: {}",
            done.message
        );
        assert!(done.detected_mid_stream);
        if layout == Mp4Layout::FastStart {
            assert!(
                t.server.stats(&meeting.files[0].id).bytes_served < media.len(),
                "stopped at the start"
            );
        }
    }
    assert!(t.objects().is_empty());
    assert_eq!(t.unfinished_uploads(), 0);
    let _ = t.scene.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_fail_with_a_message_a_person_can_act_on() {
    let mut t = transfers(|_| {}).await;
    let media = SyntheticMedia::mp4(6 * MIB, Duration::from_secs(600), Mp4Layout::FastStart, 0);

    let html = t.meeting(&media, media.len(), |b| b.html_page = true);
    let job = t.scene.ingest(&html).await;
    let done = t.wait_final(&job.job_id).await;
    assert_eq!(state(&done).0, api::JobState::Failed);
    for needle in [
        "Allow Downloads",
        "Only the host can download cloud recordings",
        "cloud",
    ] {
        assert!(done.message.contains(needle), "{}", done.message);
    }

    let elsewhere = t.meeting(&media, media.len(), |b| {
        b.redirect_to_cdn = false;
        b.redirect_elsewhere = Some("http://127.0.0.2:9/stolen".into());
    });
    let job = t.scene.ingest(&elsewhere).await;
    let done = t.wait_final(&job.job_id).await;
    assert_eq!(state(&done).0, api::JobState::Failed);
    assert!(
        done.message
            .contains("127.0.0.2 is not an allowed download host"),
        "{}",
        done.message
    );

    let liar = t.meeting(&media, media.len() + 1, |_| {});
    let job = t.scene.ingest(&liar).await;
    let done = t.wait_final(&job.job_id).await;
    assert_eq!(state(&done).0, api::JobState::Failed);
    assert!(done.message.contains("announced"), "{}", done.message);

    assert!(t.objects().is_empty());
    assert_eq!(t.unfinished_uploads(), 0);
    let _ = t.scene.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_transfer_aborts_its_upload() {
    let mut t = transfers(|_| {}).await;
    let media = SyntheticMedia::mp4(40 * MIB, Duration::from_secs(600), Mp4Layout::FastStart, 0);
    let meeting = t.meeting(&media, media.len(), |b| {
        b.throttle_bytes_per_sec = Some(8 * MIB)
    });
    let job = t.scene.ingest(&meeting).await;
    // Wait until some parts are in.
    for _ in 0..100 {
        if t.scene.job(&job.job_id).await.bytes_transferred >= 10 * MIB {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(t.unfinished_uploads() > 0, "an upload is in progress");
    let cancelled = t
        .scene
        .admin
        .jobs
        .cancel_job(api::CancelJobRequest {
            job_id: job.job_id.clone(),
            institution_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&cancelled).0, api::JobState::Cancelled);
    for _ in 0..50 {
        if t.unfinished_uploads() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        t.unfinished_uploads(),
        0,
        "the multipart upload was aborted"
    );
    assert!(t.objects().is_empty());
    assert_eq!(
        state(&t.scene.job(&job.job_id).await).0,
        api::JobState::Cancelled
    );
    let _ = t.scene.daemon.stop().await;
}
