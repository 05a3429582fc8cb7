//! Three `ferry serve` processes on one PostgreSQL database and one S3
//! bucket (moto, reached through the fault proxy that logs every request),
//! with webhooks sent round-robin as a load balancer would: what must hold
//! across replicas. A recording delivered to two replicas at the same moment
//! is one job, one download and one object; the replica transferring a
//! large recording, killed with `-9`, has its job taken over once the lease
//! runs out and resumed with `Range`, no part sent twice; a database outage
//! in the middle of a webhook burst loses and doubles nothing once the
//! webhooks answered 503 are re-sent, as Zoom does; an admin key revoked on
//! one replica is refused by the others within 2 s; 1,000 small jobs
//! raced for by three replicas are each transferred exactly once; and with
//! `after_copy = trash`, the replica holding the trash duty killed with
//! `-9` mid-way leaves its moves to another, each meeting trashed once.
//!
//! Each test has its own database (the outage test its own cluster) and its
//! own bucket; the processes, moto and the clusters end with the test.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ferry_control::api;
use ferry_control::model::Timestamp;
use ferry_control::store::postgres_testing::TestCluster;
use ferry_daemon::cli::client::Clients;
use ferry_test_support::s3_faults::S3Operation;
use ferry_zoomsim::downloads::{DownloadServer, FileBehavior};
use ferry_zoomsim::{FileSpec, Meeting, Mp4Layout, SyntheticMedia, ZoomSimulator};
use futures::StreamExt;

use crate::durability::{binary, process_scene};
use crate::metrics::sample;
use crate::reconcile::{CLIENT_ID, install_with_oauth};
use crate::s3_engine::{BUCKET, Bucket, s3_sink_env};
use crate::support::*;
use crate::transfer_limits::CLIENT_SECRET;

/// One key for every replica: they read each other's sealed secrets.
const ENCRYPTION_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const FLEET_ACCOUNT: &str = "replicated-account";
const HOST_EMAIL: &str = "host@example.edu";
const REPLICAS: usize = 3;
const KIB: u64 = 1024;
/// The smallest part S3 allows, so that a 30 MiB recording has six.
const PART_SIZE: u64 = 5 * MIB;

/// One meeting with one MP4, registered with the download server.
struct Recording {
    meeting: Meeting,
    file_id: String,
    media: SyntheticMedia,
}

/// Three replicas on one database (and, with transfers, one bucket), an
/// institution with the installed account, and the download server.
struct Fleet {
    replicas: Vec<Option<DaemonProcess>>,
    zooms: Vec<ZoomSimulator>,
    institution: TestInstitution,
    /// Jobs are read through this replica, which is alive.
    admin_on: usize,
    admin: Clients,
    start: Timestamp,
    downloads: DownloadServer,
    bucket: Option<Bucket>,
}

impl Fleet {
    /// Starts the replicas on `database_url`; with `transfers`, their
    /// engines write to a fresh bucket with short leases.
    async fn start(database_url: &str, transfers: bool) -> Fleet {
        Fleet::start_with(database_url, transfers, &[]).await
    }

    /// `start` with more settings for every replica.
    async fn start_with(database_url: &str, transfers: bool, extra: &[(&str, &str)]) -> Fleet {
        let downloads = DownloadServer::start().await.unwrap();
        let bucket = if transfers {
            Some(Bucket::start().await)
        } else {
            None
        };
        let mut env: Vec<(&str, String)> = vec![
            ("FERRY_STORE_BACKEND", "postgres".into()),
            ("FERRY_STORE_POSTGRES_URL", database_url.into()),
            ("FERRY_STORE_POSTGRES_CONNECT_TIMEOUT_SECS", "1".into()),
            ("FERRY_ENCRYPTION_KEY", ENCRYPTION_KEY.into()),
            (
                "FERRY_ZOOM_DOWNLOAD_ALLOWLIST",
                "127.0.0.1,localhost".into(),
            ),
            ("FERRY_ZOOM_ALLOW_INSECURE_DOWNLOADS", "true".into()),
            // Zoom's API (account tokens, the trash) is the download
            // server's; only an account with API credentials calls it.
            ("FERRY_ZOOM_API_BASE_URL", downloads.zoom_base()),
            ("FERRY_ZOOM_OAUTH_BASE_URL", downloads.zoom_base()),
        ];
        if let Some(bucket) = &bucket {
            env.extend(s3_sink_env(bucket, PART_SIZE));
        }
        env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let replicas: Vec<DaemonProcess> = (0..REPLICAS)
            .map(|_| DaemonProcess::start(binary(), &env).expect("start a replica"))
            .collect();
        let (institution, start) = process_scene(&replicas[0], FLEET_ACCOUNT).await;
        let admin = connect(&replicas[0].grpc_url(), Some(&institution.admin_key))
            .await
            .unwrap();
        Fleet {
            zooms: replicas
                .iter()
                .map(|replica| ZoomSimulator::new(replica.http_addr, WEBHOOK_SECRET))
                .collect(),
            replicas: replicas.into_iter().map(Some).collect(),
            institution,
            admin_on: 0,
            admin,
            start,
            downloads,
            bucket,
        }
    }

    fn replica(&self, index: usize) -> &DaemonProcess {
        self.replicas[index].as_ref().expect("a live replica")
    }

    /// The Zoom simulator posting to replica `index % REPLICAS`.
    fn zoom(&self, index: usize) -> ZoomSimulator {
        self.zooms[index % REPLICAS].clone()
    }

    fn bucket(&self) -> &Bucket {
        self.bucket.as_ref().expect("a fleet with transfers")
    }

    /// A meeting whose one MP4 of `size` bytes the download server serves
    /// per `behave`. Sizes tell recordings' bytes apart.
    fn recording_with(&self, size: u64, behave: impl FnOnce(&mut FileBehavior)) -> Recording {
        let media = SyntheticMedia::mp4(size, Duration::from_secs(600), Mp4Layout::FastStart, 0);
        let mut meeting = Meeting::lecture(FLEET_ACCOUNT, HOST_EMAIL, self.start)
            .with_files(vec![FileSpec::mp4("speaker_view", 0, 600, media.len())]);
        meeting.download_base = self.downloads.zoom_base();
        let mut behavior = FileBehavior::new(media.clone(), &meeting.download_token);
        behave(&mut behavior);
        let file_id = meeting.files[0].id.clone();
        self.downloads.add(&file_id, behavior);
        Recording {
            meeting,
            file_id,
            media,
        }
    }

    fn recording(&self, size: u64) -> Recording {
        self.recording_with(size, |_| {})
    }

    /// `kill -9` of replica `index`; jobs are read through another from now on.
    fn kill9(&mut self, index: usize) {
        let replica = self.replicas[index].take().expect("a live replica");
        replica.kill9().unwrap();
        if self.admin_on == index {
            self.admin_on = (0..REPLICAS)
                .find(|&i| self.replicas[i].is_some())
                .expect("a replica left");
        }
    }

    async fn reconnect_admin(&mut self) {
        self.admin = connect(
            &self.replica(self.admin_on).grpc_url(),
            Some(&self.institution.admin_key),
        )
        .await
        .unwrap();
    }

    /// Every job of the institution, page by page.
    async fn jobs(&mut self) -> Vec<api::Job> {
        let mut jobs = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .admin
                .jobs
                .list_jobs(api::ListJobsRequest {
                    page: Some(api::PageRequest {
                        page_size: 1000,
                        page_token,
                    }),
                    ..api::ListJobsRequest::default()
                })
                .await
                .unwrap()
                .into_inner();
            jobs.extend(page.jobs);
            page_token = page.page.unwrap_or_default().next_page_token;
            if page_token.is_empty() {
                return jobs;
            }
        }
    }

    /// One job with its attempts (which only GetJob carries).
    async fn job(&mut self, job_id: &str) -> api::Job {
        self.admin
            .jobs
            .get_job(api::GetJobRequest {
                job_id: job_id.into(),
                institution_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
    }

    /// Waits until the institution has `expected` jobs, none of them queued
    /// or transferring; returns them with their attempts.
    async fn wait_all_final(&mut self, expected: usize, within: Duration) -> Vec<api::Job> {
        let deadline = Instant::now() + within;
        loop {
            let jobs = self.jobs().await;
            let unfinished = jobs.iter().filter(|job| !is_final(job)).count();
            if jobs.len() == expected && unfinished == 0 {
                let admin = self.admin.jobs.clone();
                return futures::stream::iter(jobs)
                    .map(|job| {
                        let mut jobs = admin.clone();
                        async move {
                            jobs.get_job(api::GetJobRequest {
                                job_id: job.job_id,
                                institution_id: String::new(),
                            })
                            .await
                            .unwrap()
                            .into_inner()
                        }
                    })
                    .buffer_unordered(16)
                    .collect()
                    .await;
            }
            assert!(
                Instant::now() < deadline,
                "{} jobs ({expected} expected), {unfinished} unfinished after {within:?}",
                jobs.len()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn wait_final(&mut self, job_id: &str, within: Duration) -> api::Job {
        let deadline = Instant::now() + within;
        loop {
            let job = self.job(job_id).await;
            if is_final(&job) {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "job {job_id} did not finish within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Checks that the bucket holds exactly one object per recording, with
    /// its bytes when `check_bytes`, that every part of each reached S3
    /// successfully exactly once (at least once for the files in
    /// `interrupted`), and that no multipart upload is left.
    async fn assert_one_object_each(
        &self,
        recordings: &[Recording],
        check_bytes: bool,
        interrupted: &HashSet<String>,
    ) {
        let bucket = self.bucket();
        let keys = bucket.object_keys().await;
        let mut key_by_file: HashMap<&str, &str> = HashMap::new();
        for key in &keys {
            let file_id = key
                .rsplit('/')
                .next()
                .and_then(|name| name.strip_suffix(".mp4"))
                .unwrap_or_else(|| panic!("an object key not made by Ferry: {key}"));
            assert!(
                key_by_file.insert(file_id, key).is_none(),
                "two objects for file {file_id}"
            );
        }
        assert_eq!(keys.len(), recordings.len(), "one object per recording");

        // Successful UploadParts per object path and part number.
        let mut uploaded: HashMap<(String, u32), usize> = HashMap::new();
        for request in bucket.proxy.seen() {
            if request.operation == S3Operation::UploadPart && (200..300).contains(&request.status)
            {
                let part = request.part_number.expect("an UploadPart names its part");
                *uploaded.entry((request.path, part)).or_default() += 1;
            }
        }
        for recording in recordings {
            let key = key_by_file
                .get(recording.file_id.as_str())
                .unwrap_or_else(|| panic!("no object for file {}", recording.file_id));
            let path = format!("/{BUCKET}/{key}");
            let parts = recording.media.len().div_ceil(PART_SIZE).max(1) as u32;
            for part in 1..=parts {
                let times = uploaded.remove(&(path.clone(), part)).unwrap_or(0);
                if interrupted.contains(&recording.file_id) {
                    assert!(times >= 1, "part {part} of {key} never reached S3");
                } else {
                    assert_eq!(times, 1, "part {part} of {key} reached S3 once");
                }
            }
        }
        assert!(
            uploaded.is_empty(),
            "parts uploaded beyond the recordings' own: {uploaded:?}"
        );

        if check_bytes {
            let key_by_file = &key_by_file;
            let mismatched: Vec<&str> = futures::stream::iter(recordings)
                .map(|recording| async move {
                    let key = key_by_file[recording.file_id.as_str()];
                    (bucket.object_sha256(key).await != recording.media.sha256()).then_some(key)
                })
                .buffer_unordered(8)
                .filter_map(|mismatch| async move { mismatch })
                .collect()
                .await;
            assert!(
                mismatched.is_empty(),
                "objects whose bytes differ from their recording: {mismatched:?}"
            );
        }
        assert_eq!(bucket.wait_no_unfinished_uploads().await, vec![]);
    }

    /// Checks that the simulator served each recording's content once.
    fn assert_downloaded_once(&self, recordings: &[Recording]) {
        for recording in recordings {
            // A request to the Zoom host that redirects to the CDN is not a
            // content request; the CDN's answer is.
            let stats = self.downloads.stats(&recording.file_id);
            assert_eq!(
                stats.content_requests, 1,
                "file {} downloaded more than once: {stats:?}",
                recording.file_id
            );
        }
    }
}

fn is_final(job: &api::Job) -> bool {
    !matches!(
        api::JobState::try_from(job.state),
        Ok(api::JobState::Queued | api::JobState::Transferring)
    )
}

#[track_caller]
fn assert_completed(job: &api::Job) {
    assert_eq!(
        api::JobState::try_from(job.state),
        Ok(api::JobState::Completed),
        "job {}: {}",
        job.job_id,
        job.message
    );
}

/// The process id in a worker id, `ferry-<pid>-<id>`.
fn worker_pid(worker_id: &str) -> u32 {
    ferry_test_support::replicas::worker_pid(worker_id)
        .unwrap_or_else(|| panic!("a worker id not of the form ferry-<pid>-…: {worker_id}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_delivered_to_two_replicas_at_once_is_one_job_one_download_one_object() {
    const RECORDINGS: u64 = 200;
    let url = TestCluster::shared().fresh_database().await;
    let mut fleet = Fleet::start(&url, true).await;
    let recordings: Vec<Recording> = (0..RECORDINGS)
        .map(|i| fleet.recording(64 * KIB + i * 4099))
        .collect();

    // Each recording reaches two different replicas at the same moment.
    let answers: Vec<_> = futures::stream::iter(recordings.iter().enumerate())
        .map(|(i, recording)| {
            let (first, second) = (fleet.zoom(i), fleet.zoom(i + 1));
            async move {
                let (a, b) = tokio::join!(
                    first.recording_completed(&recording.meeting),
                    second.recording_completed(&recording.meeting)
                );
                (a.unwrap(), b.unwrap())
            }
        })
        .buffered(8)
        .collect()
        .await;
    let mut job_ids = HashSet::new();
    for (a, b) in &answers {
        assert_eq!((a.status, b.status), (200, 200), "{a:?} {b:?}");
        assert!(a.job_id().is_some(), "{a:?}");
        assert_eq!(a.job_id(), b.job_id(), "both deliveries name one job");
        let mut duplicates = [a.duplicate(), b.duplicate()];
        duplicates.sort();
        assert_eq!(
            duplicates,
            [Some(false), Some(true)],
            "exactly one delivery made the job: {a:?} {b:?}"
        );
        job_ids.insert(a.job_id().unwrap().to_string());
    }
    assert_eq!(job_ids.len(), RECORDINGS as usize);

    let jobs = fleet
        .wait_all_final(RECORDINGS as usize, Duration::from_secs(90))
        .await;
    assert_eq!(
        jobs.iter()
            .map(|job| job.job_id.clone())
            .collect::<HashSet<_>>(),
        job_ids,
        "the jobs are the ones the webhooks named, and only those"
    );
    jobs.iter().for_each(assert_completed);
    fleet
        .assert_one_object_each(&recordings, true, &HashSet::new())
        .await;
    fleet.assert_downloaded_once(&recordings);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_transfer_has_its_job_taken_over_and_resumed_with_range() {
    let url = TestCluster::shared().fresh_database().await;
    let mut fleet = Fleet::start(&url, true).await;
    // Six parts, served slowly enough that the kill lands mid-transfer.
    let recording = fleet.recording_with(30 * MIB, |behavior| {
        behavior.throttle_bytes_per_sec = Some(5 * MIB);
    });
    let delivery = fleet
        .zoom(0)
        .recording_completed(&recording.meeting)
        .await
        .unwrap();
    assert_eq!(delivery.status, 200, "{delivery:?}");
    let job_id = delivery.job_id().unwrap().to_string();

    // The signal: two parts are in, by whichever replica holds the job.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (holder, transferred_before_kill) = loop {
        let job = fleet.job(&job_id).await;
        if job.bytes_transferred >= 2 * PART_SIZE {
            let attempt = job.attempts.last().expect("a running job has an attempt");
            break (attempt.worker_id.clone(), job.bytes_transferred);
        }
        assert!(!is_final(&job), "finished before the kill: {job:?}");
        assert!(
            Instant::now() < deadline,
            "two parts not in within 30 s: {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(transferred_before_kill < recording.media.len());
    let victim_pid = worker_pid(&holder);
    let victim = (0..REPLICAS)
        .find(|&i| fleet.replica(i).pid() == victim_pid)
        .unwrap_or_else(|| panic!("worker {holder} is none of the replicas"));
    fleet.kill9(victim);
    fleet.reconnect_admin().await;
    fleet.downloads.update(&recording.file_id, |behavior| {
        behavior.throttle_bytes_per_sec = None
    });

    // Lease 3 s: another replica takes over.
    let done = fleet.wait_final(&job_id, Duration::from_secs(60)).await;
    assert_completed(&done);
    assert_eq!(done.bytes_transferred, recording.media.len());
    assert_eq!(done.attempts.len(), 2, "{:?}", done.attempts);
    let (first, second) = (&done.attempts[0], &done.attempts[1]);
    assert_eq!(first.worker_id, holder);
    assert_ne!(
        worker_pid(&second.worker_id),
        victim_pid,
        "a surviving replica took the job over"
    );
    let resumed_from = second.resumed_from_bytes;
    assert!(
        resumed_from > 0 && resumed_from % PART_SIZE == 0,
        "the takeover resumed at a part boundary, not {resumed_from}"
    );
    assert!(resumed_from >= transferred_before_kill.min(2 * PART_SIZE));
    let stats = fleet.downloads.stats(&recording.file_id);
    assert_eq!(
        stats.range_starts,
        vec![0, resumed_from],
        "one download from the start, one resumed with Range: {stats:?}"
    );
    fleet
        .assert_one_object_each(&[recording], true, &HashSet::new())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_in_a_webhook_burst_loses_and_doubles_nothing() {
    const BURST: usize = 240;
    /// Webhooks arrive every 50 ms: the burst lasts 12 s.
    const SPACING: Duration = Duration::from_millis(50);
    const OUTAGE: Duration = Duration::from_secs(10);
    let cluster = TestCluster::start();
    let url = cluster.fresh_database().await;
    let mut fleet = Fleet::start(&url, true).await;
    let recordings: Vec<Recording> = (0..BURST as u64)
        .map(|i| fleet.recording(64 * KIB + i * 4099))
        .collect();

    let acknowledged = Arc::new(AtomicUsize::new(0));
    let burst = {
        let deliveries: Vec<(ZoomSimulator, Meeting)> = recordings
            .iter()
            .enumerate()
            .map(|(i, recording)| (fleet.zoom(i), recording.meeting.clone()))
            .collect();
        let acknowledged = acknowledged.clone();
        tokio::spawn(async move {
            let mut sending = Vec::new();
            for (zoom, meeting) in deliveries {
                let acknowledged = acknowledged.clone();
                sending.push(tokio::spawn(async move {
                    let answer = zoom.recording_completed(&meeting).await;
                    if matches!(&answer, Ok(delivery) if delivery.status == 200) {
                        acknowledged.fetch_add(1, Ordering::SeqCst);
                    }
                    (meeting, answer)
                }));
                tokio::time::sleep(SPACING).await;
            }
            let mut answers = Vec::new();
            for sent in sending {
                answers.push(sent.await.unwrap());
            }
            answers
        })
    };

    // The outage begins once a quarter of the burst is in.
    let deadline = Instant::now() + Duration::from_secs(30);
    while acknowledged.load(Ordering::SeqCst) < BURST / 4 {
        assert!(Instant::now() < deadline, "the burst did not get going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::task::block_in_place(|| cluster.stop());
    tokio::time::sleep(OUTAGE).await;
    tokio::task::block_in_place(|| cluster.restart());
    let answers = burst.await.unwrap();

    // 200: the job is committed. 503 or no answer: Zoom tries again later.
    let mut committed: HashMap<String, String> = HashMap::new();
    let mut to_resend = Vec::new();
    for (meeting, answer) in answers {
        match answer {
            Ok(delivery) if delivery.status == 200 => {
                let job_id = delivery.job_id().expect("a 200 names its job");
                committed.insert(meeting.uuid.clone(), job_id.to_string());
            }
            Ok(delivery) if delivery.status == 503 => to_resend.push(meeting),
            Ok(delivery) => panic!("a webhook answered {}: {}", delivery.status, delivery.body),
            Err(_) => to_resend.push(meeting),
        }
    }
    assert!(
        !to_resend.is_empty() && !committed.is_empty(),
        "the outage fell in the middle of the burst"
    );
    let acknowledged_before_resend = committed.clone();
    for (i, meeting) in to_resend.iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match fleet.zoom(i).recording_completed(meeting).await {
                Ok(delivery) if delivery.status == 200 => {
                    let job_id = delivery.job_id().expect("a 200 names its job");
                    committed.insert(meeting.uuid.clone(), job_id.to_string());
                    break;
                }
                Ok(delivery) if delivery.status == 503 => {}
                Ok(delivery) => {
                    panic!(
                        "a re-sent webhook answered {}: {}",
                        delivery.status, delivery.body
                    )
                }
                Err(_) => {}
            }
            assert!(
                Instant::now() < deadline,
                "a re-sent webhook still refused 30 s after the restart"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert_eq!(committed.len(), BURST);

    let jobs = fleet.wait_all_final(BURST, Duration::from_secs(90)).await;
    let mut jobs_by_uuid: HashMap<&str, Vec<&str>> = HashMap::new();
    for job in &jobs {
        jobs_by_uuid
            .entry(job.meeting_uuid.as_str())
            .or_default()
            .push(job.job_id.as_str());
    }
    for (uuid, job_id) in &committed {
        assert_eq!(
            jobs_by_uuid.get(uuid.as_str()),
            Some(&vec![job_id.as_str()]),
            "meeting {uuid}: one job, the one its 200 named (answered before the re-sends: {})",
            acknowledged_before_resend.contains_key(uuid)
        );
    }
    jobs.iter().for_each(assert_completed);
    // A part whose upload the store could not record (the database was down)
    // is sent again by the attempt that resumes: only the parts the store
    // and the bucket agree on are kept, since the store holds the MP4 scan
    // state a resume restores. Jobs no outage interrupted sent each part once.
    let interrupted: HashSet<String> = jobs
        .iter()
        .filter(|job| job.attempts.len() > 1)
        .filter_map(|job| job.recording_file.as_ref().map(|f| f.file_id.clone()))
        .collect();
    fleet
        .assert_one_object_each(&recordings, true, &interrupted)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_key_revoked_on_one_replica_is_refused_by_the_others_within_2_s() {
    const WITHIN: Duration = Duration::from_secs(2);
    /// What one poll may add to the measurement.
    const POLL_SLACK: Duration = Duration::from_millis(300);
    let url = TestCluster::shared().fresh_database().await;
    let fleet = Fleet::start(&url, false).await;
    let mut operator = connect(&fleet.replica(0).grpc_url(), Some(OPERATOR_TOKEN))
        .await
        .unwrap();
    let created = operator
        .institutions
        .create_admin_key(api::CreateAdminKeyRequest {
            institution_id: fleet.institution.institution_id.clone(),
            name: "to revoke".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let key_id = created.key.expect("the new key").key_id;

    let mut holders = Vec::new();
    for index in 0..REPLICAS {
        let mut clients = connect(&fleet.replica(index).grpc_url(), Some(&created.secret))
            .await
            .unwrap();
        clients
            .institutions
            .get_institution(api::GetInstitutionRequest::default())
            .await
            .unwrap_or_else(|e| panic!("the new key works on replica {index}: {e:?}"));
        holders.push(clients);
    }

    operator
        .institutions
        .revoke_admin_key(api::RevokeAdminKeyRequest { key_id })
        .await
        .unwrap();
    let revoked_at = Instant::now();
    for (index, clients) in holders.iter_mut().enumerate() {
        loop {
            match clients
                .institutions
                .get_institution(api::GetInstitutionRequest::default())
                .await
            {
                Err(status) if status.code() == tonic::Code::Unauthenticated => break,
                Err(status) => panic!("replica {index} answered {status:?}"),
                Ok(_) => {
                    assert!(
                        revoked_at.elapsed() < WITHIN + POLL_SLACK,
                        "replica {index} still accepts the key {:?} after its revocation",
                        revoked_at.elapsed()
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_small_jobs_raced_for_by_three_replicas_are_each_transferred_once() {
    const JOBS: u64 = 1000;
    let url = TestCluster::shared().fresh_database().await;
    let mut fleet = Fleet::start(&url, true).await;
    let recordings: Vec<Recording> = (0..JOBS)
        .map(|i| fleet.recording(16 * KIB + i * 17))
        .collect();

    let answers: Vec<_> = futures::stream::iter(recordings.iter().enumerate())
        .map(|(i, recording)| {
            let zoom = fleet.zoom(i);
            async move { zoom.recording_completed(&recording.meeting).await.unwrap() }
        })
        .buffered(24)
        .collect()
        .await;
    for delivery in &answers {
        assert_eq!(delivery.status, 200, "{delivery:?}");
        assert_eq!(delivery.duplicate(), Some(false), "{delivery:?}");
    }

    let jobs = fleet
        .wait_all_final(JOBS as usize, Duration::from_secs(150))
        .await;
    let mut workers = HashSet::new();
    for job in &jobs {
        assert_completed(job);
        assert_eq!(
            job.attempts.len(),
            1,
            "job {} was attempted more than once: {:?}",
            job.job_id,
            job.attempts
        );
        workers.insert(worker_pid(&job.attempts[0].worker_id));
    }
    let pids: HashSet<u32> = (0..REPLICAS).map(|i| fleet.replica(i).pid()).collect();
    assert_eq!(workers, pids, "all three replicas claimed jobs");
    fleet.assert_downloaded_once(&recordings);
    fleet
        .assert_one_object_each(&recordings, false, &HashSet::new())
        .await;
}

/// `ferry_zoom_trash_total{outcome="trashed"}` of replica `index`.
async fn trashed_by(fleet: &Fleet, index: usize) -> f64 {
    let page = ferry_test_support::scene::metrics_at(fleet.replica(index).http_addr).await;
    sample(&page, "ferry_zoom_trash_total{outcome=\"trashed\"}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trash_duty_outlives_its_replica_and_each_meeting_is_trashed_once() {
    const MEETINGS: usize = 12;
    let url = TestCluster::shared().fresh_database().await;
    // Four API calls a second per replica and account: the twelve moves take
    // the holder about three seconds, so the kill lands mid-way.
    let mut fleet = Fleet::start_with(
        &url,
        true,
        &[
            ("FERRY_AFTER_COPY_POLL_MILLIS", "100"),
            ("FERRY_AFTER_COPY_RETRY_BASE_MILLIS", "200"),
            ("FERRY_AFTER_COPY_LEASE_SECS", "3"),
            ("FERRY_RECONCILE_API_REQUESTS_PER_SECOND", "4"),
        ],
    )
    .await;
    // The account gets API credentials (a reinstall with a fresh token
    // updates it in place) and its configuration trashes after the copy.
    let configuration = fleet
        .admin
        .configurations
        .list_zoom_configurations(api::ListZoomConfigurationsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .configurations
        .remove(0);
    let rotated = fleet
        .admin
        .configurations
        .rotate_zoom_configuration_token(api::RotateZoomConfigurationTokenRequest {
            configuration_id: configuration.configuration_id.clone(),
            institution_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    fleet
        .downloads
        .add_oauth_client(FLEET_ACCOUNT, CLIENT_ID, CLIENT_SECRET);
    let account = fleet
        .admin
        .accounts
        .install_zoom_account(install_with_oauth(
            &rotated.configuration_token,
            FLEET_ACCOUNT,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(account.has_oauth_credentials);
    fleet
        .admin
        .configurations
        .update_zoom_configuration(api::UpdateZoomConfigurationRequest {
            configuration_id: configuration.configuration_id,
            after_copy: api::AfterCopy::Trash as i32,
            ..Default::default()
        })
        .await
        .unwrap();

    // Twelve recordings in Zoom's cloud, delivered round robin.
    let recordings: Vec<Recording> = (0..MEETINGS)
        .map(|i| fleet.recording(64 * KIB + i as u64))
        .collect();
    for (i, recording) in recordings.iter().enumerate() {
        fleet.downloads.add_meeting(
            FLEET_ACCOUNT,
            &recording.meeting.uuid,
            &[recording.file_id.as_str()],
        );
        ferry_test_support::scene::queue_to(&fleet.zoom(i), &recording.meeting)
            .await
            .unwrap();
    }

    // Once the first meeting is in the trash, the replica that moved it
    // (it holds the duty) dies.
    let deadline = Instant::now() + Duration::from_secs(60);
    while fleet.downloads.trashed().is_empty() {
        assert!(Instant::now() < deadline, "nothing trashed within 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut holder = None;
    for index in 0..REPLICAS {
        if trashed_by(&fleet, index).await > 0.0 {
            holder = Some(index);
        }
    }
    let holder = holder.expect("the replica that trashed counted it");
    fleet.kill9(holder);
    fleet.reconnect_admin().await;
    let trashed_before_kill = fleet.downloads.trashed().len();
    assert!(
        trashed_before_kill < MEETINGS,
        "every move was done before the kill; the test needs a slower pace"
    );

    // Another replica takes the duty once the lease lapses and finishes.
    let jobs = fleet
        .wait_all_final(MEETINGS, Duration::from_secs(60))
        .await;
    jobs.iter().for_each(assert_completed);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut pending = Vec::new();
        for job in &jobs {
            let job = fleet.job(&job.job_id).await;
            let state = job.zoom_trash.as_ref().map(|t| t.state);
            if state != Some(api::ZoomTrashState::Trashed as i32) {
                pending.push((job.job_id, job.zoom_trash));
            }
        }
        if pending.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "moves not done 60 s after the kill: {pending:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut trashed: Vec<String> = fleet
        .downloads
        .trashed()
        .into_iter()
        .map(|t| t.meeting_uuid)
        .collect();
    trashed.sort();
    let mut expected: Vec<String> = recordings.iter().map(|r| r.meeting.uuid.clone()).collect();
    expected.sort();
    assert_eq!(trashed, expected, "each meeting trashed once, nothing else");
    // A call the dead replica made but could not record is made again (Zoom
    // answers 404: already trashed, which counts as done): at most one.
    let calls = fleet.downloads.trash_calls() as usize;
    assert!(
        (MEETINGS..=MEETINGS + 1).contains(&calls),
        "{calls} trash calls for {MEETINGS} meetings"
    );
    let mut survivors_trashed = 0.0;
    for index in (0..REPLICAS).filter(|&i| i != holder) {
        survivors_trashed += trashed_by(&fleet, index).await;
    }
    assert!(
        survivors_trashed >= (MEETINGS - trashed_before_kill - 1) as f64,
        "the surviving replicas moved the rest ({survivors_trashed} of {})",
        MEETINGS - trashed_before_kill
    );
}
