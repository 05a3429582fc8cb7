//! The transfer engine end to end on the S3 sink: the real daemon streams
//! the simulator's recordings into moto's S3 server (a child process on
//! 127.0.0.1), reached through a proxy that answers some UploadParts with
//! 500, 503 or 429 on purpose. Each scenario checks the job's final state
//! and what the bucket holds afterwards, read straight from moto: the
//! objects, byte for byte against a SHA-256, and the unfinished multipart
//! uploads.
//!
//! Why moto and not s3s-fs (the sink suite's server): the engine's keys are
//! long enough that s3s-fs's per-upload metadata file name passes 255 bytes,
//! and s3s-fs has no ListMultipartUploads, which start-up cleaning needs.

use std::time::Duration;

use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use ferry_control::api;
use ferry_control::secrets::Secret;
use ferry_daemon::config::Config;
use ferry_test_support::moto::MotoServer;
use ferry_test_support::s3_faults::{Fault, FaultProxy, FaultRule, S3Operation};
use ferry_zoomsim::downloads::{DownloadServer, FileBehavior, LengthHeader};
use ferry_zoomsim::tls::ServerTls;
use ferry_zoomsim::{Meeting, Mp4Layout, SyntheticMedia};
use sha2::{Digest, Sha256};

use crate::support::*;

pub(crate) const BUCKET: &str = "ferry-recordings";
pub(crate) const KEY_PREFIX: &str = "recordings";
pub(crate) const REGION: &str = "us-east-1";
pub(crate) const ACCESS_KEY_ID: &str = "ferry-test-access-key";
pub(crate) const SECRET_ACCESS_KEY: &str = "ferry-test-secret-key-0123456789";

/// moto with an empty bucket, the fault proxy the daemon reaches it
/// through, and a client straight to moto that checks what the daemon left.
pub(crate) struct Bucket {
    _moto: MotoServer,
    pub proxy: FaultProxy,
    client: aws_sdk_s3::Client,
}

impl Bucket {
    pub(crate) async fn start() -> Bucket {
        Self::start_with(None).await
    }

    /// The proxy terminates TLS with `tls`'s certificate (moto has none).
    pub(crate) async fn start_tls(tls: ServerTls) -> Bucket {
        Self::start_with(Some(tls)).await
    }

    async fn start_with(tls: Option<ServerTls>) -> Bucket {
        let moto = MotoServer::start().await;
        let proxy = match tls {
            Some(tls) => FaultProxy::start_tls(moto.addr(), tls).await.unwrap(),
            None => FaultProxy::start(moto.addr()).await.unwrap(),
        };
        let client = s3_client(&moto.endpoint());
        client.create_bucket().bucket(BUCKET).send().await.unwrap();
        Bucket {
            _moto: moto,
            proxy,
            client,
        }
    }

    /// Keys of the finished objects in the whole bucket, every page of them.
    pub(crate) async fn object_keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        let mut continuation: Option<String> = None;
        loop {
            let listed = self
                .client
                .list_objects_v2()
                .bucket(BUCKET)
                .set_continuation_token(continuation.take())
                .send()
                .await
                .unwrap();
            keys.extend(
                listed
                    .contents()
                    .iter()
                    .filter_map(|object| object.key().map(str::to_string)),
            );
            match listed.next_continuation_token() {
                Some(token) if listed.is_truncated() == Some(true) => {
                    continuation = Some(token.to_string());
                }
                _ => return keys,
            }
        }
    }

    /// Unfinished multipart uploads in the whole bucket, as (key, upload id).
    pub(crate) async fn unfinished_uploads(&self) -> Vec<(String, String)> {
        let listed = self
            .client
            .list_multipart_uploads()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        assert_ne!(listed.is_truncated(), Some(true), "a test bucket is small");
        listed
            .uploads()
            .iter()
            .map(|upload| {
                (
                    upload.key().unwrap_or_default().to_string(),
                    upload.upload_id().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// Waits until no multipart upload is left (aborts run after the job's
    /// state is recorded); returns what is left when time runs out.
    pub(crate) async fn wait_no_unfinished_uploads(&self) -> Vec<(String, String)> {
        for _ in 0..100 {
            let left = self.unfinished_uploads().await;
            if left.is_empty() {
                return left;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.unfinished_uploads().await
    }

    pub(crate) async fn object_sha256(&self, key: &str) -> [u8; 32] {
        let object = self
            .client
            .get_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap();
        let bytes = object.body.collect().await.unwrap().into_bytes();
        Sha256::digest(&bytes).into()
    }

    async fn create_upload(&self, key: &str) -> String {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap();
        created.upload_id().unwrap().to_string()
    }
}

fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .build_https();
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
            None,
            None,
            "tests",
        ))
        .http_client(http_client)
        .endpoint_url(endpoint)
        .force_path_style(true)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// The `FERRY_*` settings of a `ferry serve` process whose engine writes to
/// `bucket` through its proxy, with short leases and no per-account
/// download limit (the tests that use it do not test that rate).
pub(crate) fn s3_sink_env(bucket: &Bucket, part_size: u64) -> Vec<(&'static str, String)> {
    vec![
        ("FERRY_TRANSFER_ENABLED", "true".into()),
        ("FERRY_TRANSFER_SINK", "s3".into()),
        ("FERRY_TRANSFER_KEY_PREFIX", KEY_PREFIX.into()),
        ("FERRY_TRANSFER_PART_SIZE_BYTES", part_size.to_string()),
        ("FERRY_TRANSFER_MAX_CONCURRENT", "16".into()),
        ("FERRY_TRANSFER_LEASE_SECS", "3".into()),
        ("FERRY_TRANSFER_HEARTBEAT_SECS", "1".into()),
        ("FERRY_TRANSFER_BACKOFF_BASE_MS", "50".into()),
        ("FERRY_TRANSFER_STALL_TIMEOUT_SECS", "5".into()),
        (
            "FERRY_TRANSFER_DOWNLOAD_REQUESTS_PER_SECOND",
            "100000".into(),
        ),
        ("FERRY_S3_ENDPOINT", bucket.proxy.endpoint()),
        ("FERRY_S3_REGION", REGION.into()),
        ("FERRY_S3_BUCKET", BUCKET.into()),
        ("FERRY_S3_PATH_STYLE", "true".into()),
        ("FERRY_S3_ACCESS_KEY_ID", ACCESS_KEY_ID.into()),
        ("FERRY_S3_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.into()),
        ("FERRY_S3_CHECKSUMS", "true".into()),
    ]
}

/// A daemon whose engine writes to `bucket` through its proxy.
pub(crate) struct S3Transfers {
    pub scene: Scene,
    pub downloads: DownloadServer,
    pub bucket: Bucket,
    /// The daemon's settings, for a restart on the same folder.
    config: Config,
    _dir: tempfile::TempDir,
}

/// An `S3Transfers` whose daemon was stopped and started again on the same
/// data folder, settings, bucket and simulator.
pub(crate) struct Restarted {
    pub daemon: TestDaemon,
    /// The institution admin's clients on the new daemon.
    pub admin: ferry_daemon::cli::client::Clients,
    pub downloads: DownloadServer,
    pub bucket: Bucket,
    _dir: tempfile::TempDir,
}

pub(crate) async fn s3_transfers(bucket: Bucket, adjust: impl FnOnce(&mut Config)) -> S3Transfers {
    s3_transfers_from(bucket, DownloadServer::start().await.unwrap(), adjust).await
}

/// `s3_transfers` with the simulator's hosts already started, so that
/// `adjust` may point the daemon at its API.
pub(crate) async fn s3_transfers_from(
    bucket: Bucket,
    downloads: DownloadServer,
    adjust: impl FnOnce(&mut Config),
) -> S3Transfers {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.transfer.enabled = true;
    config.transfer.sink = ferry_daemon::config::SinkKind::S3;
    config.transfer.key_prefix = KEY_PREFIX.into();
    config.transfer.part_size_bytes = 5 * MIB;
    config.transfer.byte_budget_bytes = 64 * MIB;
    config.transfer.heartbeat_secs = 1;
    config.transfer.lease_secs = 5;
    config.transfer.backoff_base_ms = 20;
    config.transfer.stall_timeout_secs = 2;
    config.zoom.download_allowlist = vec!["127.0.0.1".into(), "localhost".into()];
    config.zoom.allow_insecure_downloads = true;
    config.s3.endpoint = Some(bucket.proxy.endpoint());
    config.s3.region = REGION.into();
    config.s3.bucket = BUCKET.into();
    config.s3.path_style = true;
    config.s3.access_key_id = ACCESS_KEY_ID.into();
    config.s3.secret_access_key = Some(Secret::new(SECRET_ACCESS_KEY));
    // On, as in production. moto accepts the per-part CRC32C headers but
    // does not verify them (the sink suite's server does).
    config.s3.checksums = true;
    adjust(&mut config);
    let daemon = TestDaemon::start_with(config.clone()).await.unwrap();
    S3Transfers {
        scene: Scene::with_daemon(daemon).await,
        downloads,
        bucket,
        config,
        _dir: dir,
    }
}

impl S3Transfers {
    /// Stops the daemon (a clean shutdown) and starts another on the same
    /// folder and settings.
    pub(crate) async fn restart(self) -> Restarted {
        let S3Transfers {
            scene,
            downloads,
            bucket,
            config,
            _dir,
        } = self;
        let Scene {
            daemon, admin_key, ..
        } = scene;
        let _ = daemon.stop().await;
        let daemon = TestDaemon::start_with(config).await.unwrap();
        let admin = connect(&daemon.grpc_url(), Some(&admin_key)).await.unwrap();
        Restarted {
            daemon,
            admin,
            downloads,
            bucket,
            _dir,
        }
    }

    pub(crate) async fn start(adjust: impl FnOnce(&mut Config)) -> S3Transfers {
        s3_transfers(Bucket::start().await, adjust).await
    }

    /// A meeting whose one MP4 is `media`, served per `behave`.
    pub(crate) fn meeting(
        &self,
        media: &SyntheticMedia,
        announced_size: u64,
        behave: impl FnOnce(&mut FileBehavior),
    ) -> Meeting {
        self.scene
            .served_meeting(&self.downloads, media, announced_size, behave)
    }

    pub(crate) async fn wait_final(&mut self, job_id: &str) -> api::Job {
        self.scene.wait_final(job_id).await
    }

    async fn media(&mut self) -> Vec<api::Media> {
        self.scene
            .admin
            .media
            .list_media(api::ListMediaRequest::default())
            .await
            .unwrap()
            .into_inner()
            .media
    }

    /// Checks the job completed into exactly one object holding `media`'s
    /// bytes, with no upload left over; returns the object's key.
    async fn assert_one_verified_object(&self, done: &api::Job, media: &SyntheticMedia) -> String {
        assert_eq!(state(done).0, api::JobState::Completed, "{}", done.message);
        assert_eq!(done.bytes_transferred, media.len());
        let keys = self.bucket.object_keys().await;
        assert_eq!(keys.len(), 1, "{keys:?}");
        assert!(keys[0].starts_with(&format!("{KEY_PREFIX}/")), "{keys:?}");
        assert!(
            self.bucket.object_sha256(&keys[0]).await == media.sha256(),
            "the object's bytes differ from the recording"
        );
        assert_eq!(self.bucket.unfinished_uploads().await, vec![]);
        keys[0].clone()
    }

    /// Status codes the proxy answered to each UploadPart of `part_number`.
    fn part_statuses(&self, part_number: u32) -> Vec<u16> {
        let requests = self.bucket.proxy.upload_parts(part_number);
        requests.iter().map(|request| request.status).collect()
    }
}

fn state(job: &api::Job) -> (api::JobState, api::SkipReason) {
    (
        api::JobState::try_from(job.state).unwrap(),
        api::SkipReason::try_from(job.skip_reason).unwrap(),
    )
}

/// Three full 5 MiB parts and a short fourth.
fn four_part_recording() -> SyntheticMedia {
    SyntheticMedia::mp4(
        15 * MIB + 12_345,
        Duration::from_secs(3600),
        Mp4Layout::MoovAtEnd,
        1,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_lands_as_one_verified_s3_object_and_a_duplicate_webhook_adds_nothing() {
    let mut t = S3Transfers::start(|_| {}).await;
    let media = four_part_recording();
    let meeting = t.meeting(&media, media.len(), |_| {});
    let job = t.scene.ingest(&meeting).await;
    let done = t.wait_final(&job.job_id).await;
    let key = t.assert_one_verified_object(&done, &media).await;
    for part_number in 1..=4 {
        assert_eq!(
            t.part_statuses(part_number),
            vec![200],
            "part {part_number}"
        );
    }

    let listed = t.media().await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].media_id, done.media_id);
    assert_eq!(listed[0].object_key, key);
    assert_eq!(listed[0].size_bytes, media.len());
    assert_eq!(listed[0].duration_ms, 3_600_000);

    // The same webhook again, after completion: same job, nothing uploaded.
    let again = t.scene.zoom.recording_completed(&meeting).await.unwrap();
    assert_eq!(again.job_id(), Some(done.job_id.as_str()));
    // The answer comes after the decision is committed: a duplicate of a
    // COMPLETED job, which no worker claims again, so nothing can follow.
    assert_eq!(
        (again.duplicate(), again.state()),
        (Some(true), Some("completed")),
        "{again:?}"
    );
    assert_eq!(t.bucket.object_keys().await, vec![key]);
    assert_eq!(t.media().await.len(), 1);
    assert_eq!(
        t.bucket.proxy.count(S3Operation::CreateMultipartUpload),
        1,
        "the duplicate started no upload"
    );
    assert_eq!(t.bucket.unfinished_uploads().await, vec![]);
    let _ = t.scene.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_answered_500_and_503_are_sent_again_and_the_transfer_completes() {
    let mut t = S3Transfers::start(|_| {}).await;
    t.bucket.proxy.inject(FaultRule {
        part_number: Some(2),
        times: 1,
        fault: Fault::InternalError,
    });
    t.bucket.proxy.inject(FaultRule {
        part_number: Some(3),
        times: 2,
        fault: Fault::SlowDown,
    });
    let media = four_part_recording();
    let meeting = t.meeting(&media, media.len(), |_| {});
    let job = t.scene.ingest(&meeting).await;
    let done = t.wait_final(&job.job_id).await;
    t.assert_one_verified_object(&done, &media).await;
    assert_eq!(t.part_statuses(2), vec![500, 200]);
    assert_eq!(t.part_statuses(3), vec![503, 503, 200]);
    // Only the refused parts went again.
    assert_eq!(t.part_statuses(1), vec![200]);
    assert_eq!(t.part_statuses(4), vec![200]);
    assert_eq!(t.media().await.len(), 1);
    let _ = t.scene.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_complete_answer_is_recognised_without_sending_anything_again() {
    let mut t = S3Transfers::start(|_| {}).await;
    // Every answer is lost, so the SDK's own retries of the request fail too.
    t.bucket.proxy.lose_completions(u32::MAX);
    let media = four_part_recording();
    let meeting = t.meeting(&media, media.len(), |_| {});
    let job = t.scene.ingest(&meeting).await;
    let done = t.wait_final(&job.job_id).await;
    t.assert_one_verified_object(&done, &media).await;
    for part in 1..=4 {
        assert_eq!(t.part_statuses(part), vec![200], "part {part} went once");
    }
    let completes: Vec<u16> = t
        .bucket
        .proxy
        .seen()
        .iter()
        .filter(|r| r.operation == S3Operation::CompleteMultipartUpload)
        .map(|r| r.status)
        .collect();
    assert_eq!(
        completes.first(),
        Some(&500),
        "the answer was lost: {completes:?}"
    );
    assert_eq!(t.bucket.proxy.count(S3Operation::CreateMultipartUpload), 1);
    assert_eq!(t.downloads.stats(&meeting.files[0].id).content_requests, 1);
    assert_eq!(t.media().await.len(), 1);
    let _ = t.scene.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_retry_after_is_waited_out_before_the_part_goes_again() {
    let retry_after = Duration::from_secs(2);
    let mut t = S3Transfers::start(|_| {}).await;
    t.bucket.proxy.inject(FaultRule {
        part_number: Some(2),
        times: 1,
        fault: Fault::TooManyRequests { retry_after },
    });
    let media = four_part_recording();
    let meeting = t.meeting(&media, media.len(), |_| {});
    let job = t.scene.ingest(&meeting).await;
    let done = t.wait_final(&job.job_id).await;
    t.assert_one_verified_object(&done, &media).await;

    let part_2 = t.bucket.proxy.upload_parts(2);
    let statuses: Vec<u16> = part_2.iter().map(|request| request.status).collect();
    assert_eq!(statuses, vec![429, 200]);
    // Without Retry-After the engine's own backoff here is 20–40 ms.
    let waited = part_2[1].received_at - part_2[0].answered_at;
    assert!(
        waited >= retry_after,
        "part 2 went again {waited:?} after the 429, before its Retry-After of {retry_after:?}"
    );
    let _ = t.scene.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_transfer_aborts_its_multipart_upload() {
    let mut t = S3Transfers::start(|_| {}).await;
    let media = SyntheticMedia::mp4(30 * MIB, Duration::from_secs(600), Mp4Layout::FastStart, 0);
    let meeting = t.meeting(&media, media.len(), |b| {
        b.throttle_bytes_per_sec = Some(8 * MIB)
    });
    let job = t.scene.ingest(&meeting).await;
    for _ in 0..100 {
        if t.scene.job(&job.job_id).await.bytes_transferred >= 10 * MIB {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        t.bucket.unfinished_uploads().await.len(),
        1,
        "an upload is in progress"
    );
    assert!(t.bucket.proxy.count(S3Operation::UploadPart) >= 1);
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

    assert_eq!(
        t.bucket.wait_no_unfinished_uploads().await,
        vec![],
        "the multipart upload was aborted"
    );
    assert_eq!(t.bucket.object_keys().await, Vec::<String>::new());
    assert_eq!(
        t.bucket.proxy.count(S3Operation::CompleteMultipartUpload),
        0
    );
    assert_eq!(
        state(&t.scene.job(&job.job_id).await).0,
        api::JobState::Cancelled
    );
    assert!(t.media().await.is_empty());
    let _ = t.scene.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_aborts_untracked_uploads_under_the_prefix_and_only_those() {
    const LEASE: Duration = Duration::from_secs(2);
    let bucket = Bucket::start().await;
    let orphan_key = format!("{KEY_PREFIX}/ins_gone/acct/bWVldGluZw/file.mp4");
    let orphan = bucket.create_upload(&orphan_key).await;
    let foreign_key = "other-app/uploads/video.mp4";
    let foreign = bucket.create_upload(foreign_key).await;
    // Shares the prefix's letters but is not under "{KEY_PREFIX}/".
    let neighbour_key = format!("{KEY_PREFIX}-archive/video.mp4");
    let neighbour = bucket.create_upload(&neighbour_key).await;
    // moto 5.2.1 reports every upload as initiated in 2010, so "younger than
    // a lease is kept" cannot be shown against it; `engine::is_orphan`'s unit
    // test and the sink suite (which checks each sink reports real start
    // times) cover that rule.
    let t = s3_transfers(bucket, |c| c.transfer.lease_secs = LEASE.as_secs()).await;
    let mut left = t.bucket.unfinished_uploads().await;
    for _ in 0..100 {
        if !left.iter().any(|(_, id)| *id == orphan) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = t.bucket.unfinished_uploads().await;
    }
    left.sort();
    let mut kept = vec![
        (foreign_key.to_string(), foreign),
        (neighbour_key, neighbour),
    ];
    kept.sort();
    assert_eq!(
        left, kept,
        "the orphan under {KEY_PREFIX}/ was aborted; the uploads outside the prefix kept"
    );
    assert_eq!(t.bucket.proxy.count(S3Operation::AbortMultipartUpload), 1);
    assert_eq!(t.bucket.object_keys().await, Vec::<String>::new());
    let _ = t.scene.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_stream_is_skipped_and_its_upload_aborted() {
    let mut t = S3Transfers::start(|c| c.caps.max_file_bytes = 12 * MIB).await;
    let media = SyntheticMedia::mp4(20 * MIB, Duration::from_secs(600), Mp4Layout::MoovAtEnd, 0);
    for length in [LengthHeader::Exact, LengthHeader::Absent] {
        // Zoom understates the size, so the intake lets it through.
        let meeting = t.meeting(&media, 8 * MIB, |b| b.length_header = length);
        let job = t.scene.ingest(&meeting).await;
        let done = t.wait_final(&job.job_id).await;
        assert_eq!(
            state(&done),
            (api::JobState::Skipped, api::SkipReason::TooLarge),
            "{length:?}: {}",
            done.message
        );
        assert!(done.detected_mid_stream);
        assert!(
            t.downloads.stats(&meeting.files[0].id).bytes_served < media.len(),
            "{length:?}: the download was stopped early"
        );
        assert_eq!(
            t.bucket.wait_no_unfinished_uploads().await,
            vec![],
            "{length:?}: the multipart upload was aborted"
        );
    }
    assert_eq!(t.bucket.proxy.count(S3Operation::CreateMultipartUpload), 2);
    assert_eq!(t.bucket.object_keys().await, Vec::<String>::new());
    assert!(t.media().await.is_empty());
    let _ = t.scene.daemon.stop().await;
}
