//! The scene most tests and benches play on: a daemon (in this process or
//! as a child process) with one institution, a Zoom configuration, one
//! installed Education account and its lecturer synced as a user, so that a
//! signed `recording.completed` from the simulator goes the whole way to a
//! job; plus the reads a test makes of what followed.
//!
//! It sets up only through the daemon's public API and the simulator, never
//! through the daemon's internals, and its helpers panic on any failure
//! (they are test fixtures) except [`Scene::queue`], which load generators
//! count on.

use std::time::Duration;

use anyhow::Context;
use ferry_control::api;
use ferry_control::model::Timestamp;
use ferry_daemon::cli::client::Clients;
use ferry_zoomsim::downloads::{DownloadServer, FileBehavior};
use ferry_zoomsim::{FileSpec, Meeting, SyntheticMedia, ZoomSimulator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::control_plane::{create_configuration, create_institution, install, sync, user};
use crate::daemon::{Daemon, OPERATOR_TOKEN, TestDaemon, WEBHOOK_SECRET, connect};

/// The installed Zoom account.
pub const ACCOUNT: &str = "AAAAAA-zoom-account";
/// The host of the scene's meetings, spelled as Zoom sends it; the directory
/// holds her as `elisa@example.edu`.
pub const HOST: &str = "Elisa@Example.edu";

/// A daemon with an institution, an installed account and the host as a user.
pub struct Scene<D = TestDaemon> {
    pub daemon: D,
    pub admin: Clients,
    /// The institution admin's key behind `admin`.
    pub admin_key: String,
    pub zoom: ZoomSimulator,
    pub installed_at: Timestamp,
    pub configuration_id: String,
    pub configuration_token: String,
}

impl Scene {
    /// The scene on a fresh in-process daemon with the test defaults.
    pub async fn new() -> Scene {
        Self::with_daemon(TestDaemon::start().await.unwrap()).await
    }
}

impl<D: Daemon> Scene<D> {
    /// Sets the scene up on `daemon`, which has the test operator token and
    /// webhook secret.
    pub async fn with_daemon(daemon: D) -> Scene<D> {
        let mut operator = connect(&daemon.grpc_url(), Some(OPERATOR_TOKEN))
            .await
            .unwrap();
        let institution = create_institution(&mut operator, "Example U")
            .await
            .unwrap();
        let mut admin = connect(&daemon.grpc_url(), Some(&institution.admin_key))
            .await
            .unwrap();
        let configuration = create_configuration(&mut admin, "Main").await;
        let account = install(
            &mut admin,
            &configuration.configuration_token,
            ACCOUNT,
            api::ZoomPlan::Education,
        )
        .await
        .unwrap();
        let install_time = account.install_time.unwrap();
        sync(
            &mut admin,
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
        let zoom = ZoomSimulator::new(daemon.http_addr(), WEBHOOK_SECRET);
        Scene {
            daemon,
            admin,
            admin_key: institution.admin_key.clone(),
            zoom,
            installed_at: Timestamp(
                install_time.seconds * 1000 + i64::from(install_time.nanos / 1_000_000),
            ),
            configuration_id: configuration.configuration.unwrap().configuration_id,
            configuration_token: configuration.configuration_token,
        }
    }

    /// `offset_secs` after the install, in whole seconds: a meeting that
    /// starts then comes after it.
    pub fn after_install(&self, offset_secs: i64) -> Timestamp {
        Timestamp::from_unix_seconds(self.installed_at.0.div_euclid(1000) + 1 + offset_secs)
    }

    /// A lecture that starts `offset_secs` after the install (whole seconds).
    pub fn lecture(&self, offset_secs: i64) -> Meeting {
        Meeting::lecture(ACCOUNT, HOST, self.after_install(offset_secs))
    }

    pub async fn jobs(&mut self) -> Vec<api::Job> {
        self.admin
            .jobs
            .list_jobs(api::ListJobsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .jobs
    }

    pub async fn job(&mut self, job_id: &str) -> api::Job {
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

    /// Delivers and expects a 200 that created or found a job; returns it.
    pub async fn ingest(&mut self, meeting: &Meeting) -> api::Job {
        let delivery = self.zoom.recording_completed(meeting).await.unwrap();
        assert_eq!(delivery.status, 200, "{delivery:?}");
        let job_id = delivery.job_id().expect("a job").to_string();
        self.job(&job_id).await
    }

    /// Delivers and expects a 200 that queued a new job; returns its id. For
    /// load generators, which deliver many at once and count failures.
    pub async fn queue(&self, meeting: &Meeting) -> anyhow::Result<String> {
        queue_to(&self.zoom, meeting).await
    }

    /// Waits (up to 60 s) until the job is neither queued nor transferring.
    pub async fn wait_final(&mut self, job_id: &str) -> api::Job {
        for _ in 0..600 {
            let job = self.job(job_id).await;
            let state = api::JobState::try_from(job.state).unwrap();
            if !matches!(state, api::JobState::Queued | api::JobState::Transferring) {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("job {job_id} did not finish within 60 s");
    }

    /// A lecture whose one MP4 is `media`, announced as `announced_size`
    /// bytes and served by `server` per `behave`.
    pub fn served_meeting(
        &self,
        server: &DownloadServer,
        media: &SyntheticMedia,
        announced_size: u64,
        behave: impl FnOnce(&mut FileBehavior),
    ) -> Meeting {
        let mut meeting = self.lecture(60).with_files(vec![FileSpec::mp4(
            "shared_screen_with_speaker_view",
            0,
            3600,
            announced_size,
        )]);
        meeting.download_base = server.zoom_base();
        let mut behavior = FileBehavior::new(media.clone(), &meeting.download_token);
        behave(&mut behavior);
        server.add(&meeting.files[0].id, behavior);
        meeting
    }

    /// The body of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        metrics_at(self.daemon.http_addr()).await
    }
}

/// The body of `GET /metrics` from the daemon whose HTTP listener is `http_addr`.
pub async fn metrics_at(http_addr: std::net::SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(http_addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: ferry\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let body = text.find("\r\n\r\n").expect("a complete answer") + 4;
    text[body..].to_string()
}

/// `zoom` delivers `meeting`, and the answer must be a 200 that queued a new
/// job; returns its id. [`Scene::queue`] on one daemon of several.
pub async fn queue_to(zoom: &ZoomSimulator, meeting: &Meeting) -> anyhow::Result<String> {
    let delivery = zoom.recording_completed(meeting).await?;
    anyhow::ensure!(
        delivery.status == 200 && delivery.state() == Some("queued"),
        "webhook answered {}: {}",
        delivery.status,
        delivery.body
    );
    delivery
        .job_id()
        .map(str::to_string)
        .context("the webhook answer has no job id")
}
