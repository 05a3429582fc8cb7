//! What the transfer benches share: the real daemon as a process (or several
//! replicas of it on one PostgreSQL database, webhooks sent to them in turn
//! as a load balancer would) with its S3 sink pointed at a [`DiscardS3`]
//! endpoint, the simulator's download hosts serving synthetic recordings,
//! and a way to wait for jobs to end. Everything listens on 127.0.0.1;
//! nothing leaves the machine.
//!
//! [`TransferRig::start_tls`] serves both hops over HTTPS instead: the
//! download hosts and the endpoint present a certificate of a CA made at
//! run time, and the daemon trusts that CA through
//! `transfer.extra_ca_file`, as an operator would configure a private CA.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use ferry_control::api;
use ferry_test_support::MIB;
use ferry_test_support::daemon::{DaemonProcess, WEBHOOK_SECRET};
use ferry_test_support::discard_s3::DiscardS3;
use ferry_test_support::replicas::{borrowed, start_replicas, worker_pid};
use ferry_test_support::scene::{Scene, queue_to};
use ferry_test_support::test_ca::{Alpn, TestCa};
use ferry_zoomsim::downloads::{DownloadServer, FileBehavior};
use ferry_zoomsim::{FileSpec, Meeting, Mp4Layout, SyntheticMedia, ZoomSimulator};

pub const BUCKET: &str = "ferry-bench";
/// Credentials of the discarding endpoint, which checks no signature.
pub const ACCESS_KEY_ID: &str = "FERRYBENCHACCESSKEY";
pub const SECRET_ACCESS_KEY: &str = "ferry-bench-secret-key-for-loopback-only";
/// How often the bench asks whether jobs have ended. Durations come from
/// the jobs' own finish times, so this only bounds how late the bench notices.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The `[transfer]` settings a bench runs the daemon with.
#[derive(Clone, Copy, Debug)]
pub struct TransferBenchSettings {
    pub part_size_bytes: u64,
    pub parts_in_flight: usize,
    pub byte_budget_bytes: u64,
    pub max_concurrent: usize,
    /// Download requests per second for the one Zoom account of the bench.
    pub download_requests_per_second: u32,
}

/// How many daemons, on which store, each limited how.
#[derive(Clone, Debug)]
pub struct FleetSettings {
    /// More than one needs `store_env` naming a PostgreSQL database.
    pub replicas: usize,
    /// `FERRY_STORE_*` and the shared encryption key
    /// (`SharedStore::daemon_env`); empty for the embedded SQLite.
    pub store_env: Vec<(&'static str, String)>,
    /// Each replica's download bandwidth; 0 is unlimited.
    pub bandwidth_bytes_per_second: u64,
}

impl Default for FleetSettings {
    fn default() -> Self {
        FleetSettings {
            replicas: 1,
            store_env: Vec::new(),
            bandwidth_bytes_per_second: 0,
        }
    }
}

/// The run-time CA of a TLS rig, written where clients can read it.
pub struct RigTls {
    /// The CA certificate (PEM) the daemon and any other client trust.
    pub ca_file: PathBuf,
    _dir: tempfile::TempDir,
}

pub struct TransferRig {
    /// Set when both hops speak HTTPS.
    pub tls: Option<RigTls>,
    /// The scene is set up through the first replica.
    pub scene: Scene<DaemonProcess>,
    /// Replicas after the first, on the same database.
    pub other_replicas: Vec<DaemonProcess>,
    /// Zoom posting to each replica, in replica order.
    zooms: Vec<ZoomSimulator>,
    pub downloads: DownloadServer,
    pub s3: DiscardS3,
}

impl TransferRig {
    /// One daemon on the embedded SQLite, unlimited bandwidth.
    pub async fn start(
        daemon_binary: &Path,
        settings: TransferBenchSettings,
    ) -> anyhow::Result<TransferRig> {
        Self::start_fleet(daemon_binary, settings, FleetSettings::default()).await
    }

    /// One daemon on the embedded SQLite, unlimited bandwidth, both hops
    /// over HTTPS with a CA made now.
    pub async fn start_tls(
        daemon_binary: &Path,
        settings: TransferBenchSettings,
    ) -> anyhow::Result<TransferRig> {
        let ca = TestCa::generate("Ferry bench CA")?;
        let dir = tempfile::tempdir()?;
        let tls = RigTls {
            ca_file: ca.write_ca_file(dir.path())?,
            _dir: dir,
        };
        let downloads = DownloadServer::start_tls(ca.server_tls(Alpn::Http2AndHttp1)?).await?;
        let s3 = DiscardS3::start_tls(ca.server_tls(Alpn::Http1)?).await?;
        Self::start_on(
            daemon_binary,
            settings,
            FleetSettings::default(),
            (downloads, s3),
            Some(tls),
        )
        .await
    }

    pub async fn start_fleet(
        daemon_binary: &Path,
        settings: TransferBenchSettings,
        fleet: FleetSettings,
    ) -> anyhow::Result<TransferRig> {
        let servers = (DownloadServer::start().await?, DiscardS3::start().await?);
        Self::start_on(daemon_binary, settings, fleet, servers, None).await
    }

    async fn start_on(
        daemon_binary: &Path,
        settings: TransferBenchSettings,
        fleet: FleetSettings,
        (downloads, s3): (DownloadServer, DiscardS3),
        tls: Option<RigTls>,
    ) -> anyhow::Result<TransferRig> {
        let numbers = [
            settings.part_size_bytes.to_string(),
            settings.parts_in_flight.to_string(),
            settings.byte_budget_bytes.to_string(),
            settings.max_concurrent.to_string(),
            settings.download_requests_per_second.to_string(),
            fleet.bandwidth_bytes_per_second.to_string(),
        ];
        let endpoint = s3.endpoint();
        let zoom_base = downloads.zoom_base();
        let ca_file = tls
            .as_ref()
            .map(|tls| tls.ca_file.display().to_string())
            .unwrap_or_default();
        let env = [
            ("FERRY_TRANSFER_ENABLED", "true"),
            ("FERRY_TRANSFER_SINK", "s3"),
            ("FERRY_TRANSFER_PART_SIZE_BYTES", numbers[0].as_str()),
            ("FERRY_TRANSFER_PARTS_IN_FLIGHT", numbers[1].as_str()),
            ("FERRY_TRANSFER_BYTE_BUDGET_BYTES", numbers[2].as_str()),
            ("FERRY_TRANSFER_MAX_CONCURRENT", numbers[3].as_str()),
            (
                "FERRY_TRANSFER_DOWNLOAD_REQUESTS_PER_SECOND",
                numbers[4].as_str(),
            ),
            ("FERRY_S3_ENDPOINT", endpoint.as_str()),
            ("FERRY_S3_REGION", "us-east-1"),
            ("FERRY_S3_BUCKET", BUCKET),
            ("FERRY_S3_PATH_STYLE", "true"),
            ("FERRY_S3_ACCESS_KEY_ID", ACCESS_KEY_ID),
            ("FERRY_S3_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
            ("FERRY_ZOOM_DOWNLOAD_ALLOWLIST", "127.0.0.1,localhost"),
            // Plain http:// only when the rig is plain.
            (
                "FERRY_ZOOM_ALLOW_INSECURE_DOWNLOADS",
                if tls.is_some() { "false" } else { "true" },
            ),
            // Empty (no extra CA) when the rig is plain.
            ("FERRY_TRANSFER_EXTRA_CA_FILE", ca_file.as_str()),
            // Zoom's API is the simulator's too, so that even a token
            // refresh stays on loopback.
            ("FERRY_ZOOM_API_BASE_URL", zoom_base.as_str()),
            ("FERRY_ZOOM_OAUTH_BASE_URL", zoom_base.as_str()),
            (
                "FERRY_TRANSFER_BANDWIDTH_BYTES_PER_SECOND",
                numbers[5].as_str(),
            ),
        ];
        let env = [&env[..], &borrowed(&fleet.store_env)].concat();
        let mut replicas = start_replicas(daemon_binary, fleet.replicas, &env)?.into_iter();
        let first = replicas.next().context("no replica started")?;
        let other_replicas: Vec<DaemonProcess> = replicas.collect();
        let scene = Scene::with_daemon(first).await;
        let zooms = std::iter::once(scene.zoom.clone())
            .chain(
                other_replicas
                    .iter()
                    .map(|replica| ZoomSimulator::new(replica.http_addr, WEBHOOK_SECRET)),
            )
            .collect();
        Ok(TransferRig {
            tls,
            scene,
            other_replicas,
            zooms,
            downloads,
            s3,
        })
    }

    /// Every replica's process id, the first replica's first.
    pub fn pids(&self) -> Vec<u32> {
        std::iter::once(&self.scene.daemon)
            .chain(&self.other_replicas)
            .map(DaemonProcess::pid)
            .collect()
    }

    /// Delivers every meeting's webhook at once, to the replicas in turn;
    /// fails unless each queued a new job.
    pub async fn queue_all(&self, meetings: &[Meeting]) -> anyhow::Result<Vec<String>> {
        let deliveries = meetings
            .iter()
            .enumerate()
            .map(|(i, meeting)| queue_to(&self.zooms[i % self.zooms.len()], meeting));
        futures::future::try_join_all(deliveries).await
    }

    /// A lecture whose one MP4 of `num_bytes` the simulator serves.
    pub fn recording(&self, num_bytes: u64) -> Meeting {
        let mut meeting = self.scene.lecture(0).with_files(vec![FileSpec::mp4(
            "shared_screen_with_speaker_view",
            0,
            3600,
            num_bytes,
        )]);
        meeting.download_base = self.downloads.zoom_base();
        serve_recording(
            &self.downloads,
            &meeting.files[0].id,
            &meeting.download_token,
            num_bytes,
        );
        meeting
    }

    /// The jobs in any of `states` (every job when empty).
    pub async fn jobs_in(&mut self, states: &[api::JobState]) -> anyhow::Result<Vec<api::Job>> {
        let mut jobs = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .scene
                .admin
                .jobs
                .list_jobs(api::ListJobsRequest {
                    states: states.iter().map(|&state| state as i32).collect(),
                    page: Some(api::PageRequest {
                        page_size: 1000,
                        page_token,
                    }),
                    ..Default::default()
                })
                .await?
                .into_inner();
            jobs.extend(page.jobs);
            page_token = page.page.map(|p| p.next_page_token).unwrap_or_default();
            if page_token.is_empty() {
                return Ok(jobs);
            }
        }
    }

    /// How many of `jobs` each replica moved (by the worker of each job's
    /// last attempt), in replica order.
    pub async fn jobs_moved_by_replica(&mut self, jobs: &[api::Job]) -> anyhow::Result<Vec<usize>> {
        let pids = self.pids();
        let mut moved = vec![0; pids.len()];
        for job in jobs {
            let job = self
                .scene
                .admin
                .jobs
                .get_job(api::GetJobRequest {
                    job_id: job.job_id.clone(),
                    institution_id: String::new(),
                })
                .await?
                .into_inner();
            let pid = job
                .attempts
                .last()
                .and_then(|attempt| worker_pid(&attempt.worker_id))
                .with_context(|| format!("job {} names no worker", job.job_id))?;
            let replica = pids.iter().position(|&p| p == pid).with_context(|| {
                format!("job {} was moved by pid {pid}, no replica", job.job_id)
            })?;
            moved[replica] += 1;
        }
        Ok(moved)
    }

    /// Waits until no job is queued or transferring.
    pub async fn wait_all_final(&mut self, timeout: Duration) -> anyhow::Result<Finished> {
        let mut most_transferring_at_once = 0;
        tokio::time::timeout(timeout, async {
            loop {
                let unfinished = self
                    .jobs_in(&[api::JobState::Queued, api::JobState::Transferring])
                    .await?;
                let transferring = unfinished
                    .iter()
                    .filter(|job| job.state == api::JobState::Transferring as i32)
                    .count();
                most_transferring_at_once = most_transferring_at_once.max(transferring);
                if unfinished.is_empty() {
                    return anyhow::Ok(());
                }
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        })
        .await
        .with_context(|| format!("jobs still running after {} s", timeout.as_secs()))??;
        Ok(Finished {
            jobs: self.jobs_in(&[]).await?,
            most_transferring_at_once,
        })
    }
}

/// Every job once none is running, and how many the polls saw transferring
/// at once (a lower bound: polls are 100 ms apart).
pub struct Finished {
    pub jobs: Vec<api::Job>,
    pub most_transferring_at_once: usize,
}

/// Has the simulator serve a one-hour synthetic MP4 of `num_bytes` as
/// `file_id`, to whoever holds `token` (the Zoom host) or the CDN URL.
pub fn serve_recording(downloads: &DownloadServer, file_id: &str, token: &str, num_bytes: u64) {
    let media = SyntheticMedia::mp4(
        num_bytes,
        Duration::from_secs(3600),
        Mp4Layout::MoovAtEnd,
        1,
    );
    downloads.add(file_id, FileBehavior::new(media, token));
}

/// A job's finish time in milliseconds since the Unix epoch.
pub fn finish_unix_millis(job: &api::Job) -> anyhow::Result<i64> {
    let finish = job
        .finish_time
        .as_ref()
        .with_context(|| format!("job {} has no finish time", job.job_id))?;
    Ok(finish.seconds * 1000 + i64::from(finish.nanos / 1_000_000))
}

/// Now, in milliseconds since the Unix epoch (the clock finish times use).
pub fn now_unix_millis() -> i64 {
    ferry_control::model::Timestamp::now().as_millis()
}

/// Fails unless every job completed and its object arrived whole.
pub fn check_completed(jobs: &[api::Job], s3: &DiscardS3, num_bytes: u64) -> anyhow::Result<()> {
    for job in jobs {
        let state = api::JobState::try_from(job.state).unwrap_or(api::JobState::Unspecified);
        anyhow::ensure!(
            state == api::JobState::Completed,
            "job {} ended {state:?}: {}",
            job.job_id,
            job.message
        );
        anyhow::ensure!(
            job.bytes_transferred == num_bytes,
            "job {} transferred {} bytes of {num_bytes}",
            job.job_id,
            job.bytes_transferred
        );
    }
    let sizes = s3.completed_object_sizes();
    anyhow::ensure!(
        sizes.len() == jobs.len() && sizes.iter().all(|&size| size == num_bytes),
        "the endpoint completed objects of {sizes:?} bytes for {} jobs of {num_bytes} bytes",
        jobs.len()
    );
    anyhow::ensure!(
        s3.open_uploads() == 0,
        "{} multipart uploads were left open",
        s3.open_uploads()
    );
    Ok(())
}

/// Fails unless there are `count` jobs, each completed with its object
/// arrived whole (as [`check_completed`]); returns the last one's finish
/// time in milliseconds since the Unix epoch.
pub fn check_all_completed(
    jobs: &[api::Job],
    s3: &DiscardS3,
    count: u64,
    num_bytes: u64,
) -> anyhow::Result<i64> {
    anyhow::ensure!(
        jobs.len() as u64 == count,
        "{} jobs for {count} webhooks",
        jobs.len()
    );
    check_completed(jobs, s3, num_bytes)?;
    jobs.iter()
        .map(finish_unix_millis)
        .try_fold(i64::MIN, |last, finish| Ok(last.max(finish?)))
}

/// Bytes per second in MiB/s.
pub fn mib_per_second(num_bytes: u64, elapsed: Duration) -> f64 {
    num_bytes as f64 / MIB as f64 / elapsed.as_secs_f64()
}
