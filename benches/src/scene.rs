//! The real `ferry` daemon as a separate process (so its CPU time and memory
//! can be read from /proc), set up as every bench needs it: an institution,
//! a configuration, one installed Zoom account and its lecturer synced, so a
//! signed `recording.completed` goes the whole way to a queued job.

use std::path::Path;

use anyhow::Context;
use ferry_control::api;
use ferry_control::model::Timestamp;
use ferry_daemon::cli::client::Clients;
use ferry_tests::daemon::{DaemonProcess, OPERATOR_TOKEN, connect, create_institution};
use ferry_zoomsim::{Meeting, ZoomSimulator};

pub const WEBHOOK_SECRET: &str = "bench-webhook-secret-for-loopback-only";
pub const ACCOUNT_ID: &str = "BenchAccount0000000001";
pub const HOST_EMAIL: &str = "Lecturer@Bench.example.edu";

pub struct BenchScene {
    pub daemon: DaemonProcess,
    /// The institution's admin clients.
    pub admin: Clients,
    pub zoom: ZoomSimulator,
    /// Meetings starting from here on come after the install.
    pub meetings_start: Timestamp,
    _data_dir: tempfile::TempDir,
}

impl BenchScene {
    /// Starts `daemon_binary` on a fresh data directory with `env` added to
    /// the daemon's FERRY_* settings, and sets up the institution.
    pub async fn start(daemon_binary: &Path, env: &[(&str, &str)]) -> anyhow::Result<BenchScene> {
        let data_dir = tempfile::tempdir()?;
        let daemon_env = [
            &[
                ("FERRY_OPERATOR_TOKEN", OPERATOR_TOKEN),
                ("FERRY_ZOOM_WEBHOOK_SECRET", WEBHOOK_SECRET),
            ][..],
            env,
        ]
        .concat();
        let daemon = DaemonProcess::spawn(daemon_binary, data_dir.path(), &daemon_env)?;
        let mut operator = connect(&daemon.grpc_url(), Some(OPERATOR_TOKEN)).await?;
        let institution = create_institution(&mut operator, "Bench University").await?;
        let mut admin = connect(&daemon.grpc_url(), Some(&institution.admin_key)).await?;

        let configuration = admin
            .configurations
            .create_zoom_configuration(api::CreateZoomConfigurationRequest {
                institution_id: String::new(),
                display_name: "Bench configuration".into(),
                view_priority: vec![],
            })
            .await?
            .into_inner();
        admin
            .accounts
            .install_zoom_account(api::InstallZoomAccountRequest {
                configuration_token: configuration.configuration_token,
                zoom_account_id: ACCOUNT_ID.into(),
                plan: api::ZoomPlan::Education as i32,
                oauth_credentials: None,
            })
            .await?;
        let sync = [
            api::SyncUsersRequest {
                item: Some(api::sync_users_request::Item::Header(
                    api::SyncUsersHeader {
                        institution_id: String::new(),
                        mode: api::SyncMode::Upsert as i32,
                    },
                )),
            },
            api::SyncUsersRequest {
                item: Some(api::sync_users_request::Item::User(api::UserRecord {
                    external_id: "lecturer-1".into(),
                    email: HOST_EMAIL.into(),
                    alternate_zoom_email: String::new(),
                    display_name: "Bench Lecturer".into(),
                    role: api::UserRole::Instructor as i32,
                })),
            },
        ];
        let summary = admin
            .users
            .sync_users(tokio_stream::iter(sync))
            .await?
            .into_inner();
        anyhow::ensure!(
            summary.created == 1,
            "sync created {} users of 1",
            summary.created
        );
        let zoom = ZoomSimulator::new(daemon.http_addr, WEBHOOK_SECRET);
        Ok(BenchScene {
            daemon,
            admin,
            zoom,
            // Meetings that started before the install would be skipped.
            meetings_start: Timestamp::now().saturating_add_millis(5_000),
            _data_dir: data_dir,
        })
    }

    /// A lecture of the bench host, after the install.
    pub fn lecture(&self) -> Meeting {
        Meeting::lecture(ACCOUNT_ID, HOST_EMAIL, self.meetings_start)
    }

    /// Delivers a signed `recording.completed`; returns the new queued job's id.
    pub async fn ingest(&self, meeting: &Meeting) -> anyhow::Result<String> {
        let delivery = self.zoom.recording_completed(meeting).await?;
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
}
