//! The stage the demo's recordings play on: a fresh daemon on the embedded
//! defaults (or, with `--replicas N`, N replicas on one PostgreSQL database:
//! see `replicas`), and the control plane set up through its own gRPC API the
//! way an operator, an institution's admin and Zoom's marketplace would.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ferry_control::api;
use ferry_control::secrets::{OPERATOR_TOKEN_PREFIX, generate_token};
use ferry_zoomsim::downloads::DownloadServer;
use ferry_zoomsim::{MIB, ZoomSimulator};

use super::replicas::{Database, Fleet, encryption_key};
use crate::app::RunningApp;
use crate::cli::client::{Clients, Connection};
use crate::cli::watch::format::bytes;
use crate::config::{AccountCapsConfig, Config};

/// The institution's main account (Education plan, the default caps).
pub const MAIN_ACCOUNT: &str = "demo-edu-account";
/// A second paid account whose size cap the demo lowers, so that a file
/// growing past its cap mid-stream takes megabytes rather than 5 GiB.
pub const PILOT_ACCOUNT: &str = "demo-pilot-account";
pub const PILOT_MAX_FILE_BYTES: u64 = 12 * MIB;
/// The main account's Server-to-Server OAuth app in the simulated Zoom.
const DEMO_OAUTH_CLIENT_ID: &str = "demo-s2s-client";
const DEMO_OAUTH_CLIENT_SECRET: &str = "demo-s2s-client-secret";
/// An account of a second configuration whose after-copy action is
/// `trash`: Zoom's copy of its recordings goes to Zoom's trash once Ferry's
/// copy is verified. It comes with API credentials of its own.
pub const ARCHIVE_ACCOUNT: &str = "demo-archive-account";
const ARCHIVE_OAUTH_CLIENT_ID: &str = "demo-archive-client";
const ARCHIVE_OAUTH_CLIENT_SECRET: &str = "demo-archive-client-secret";
/// A Free-plan account, which Zoom's rules keep out.
pub const FREE_ACCOUNT: &str = "demo-free-account";

/// What a demo folder may hold: anything else means it is not one, and the
/// demo refuses to clear it.
const DEMO_FILES: [&str; 5] = [
    "ferry.db",
    "ferry.db-wal",
    "ferry.db-shm",
    "encryption.key",
    "media",
];

/// The running daemon and the control plane as the recordings will find it.
pub struct Stage {
    /// The daemon; with replicas, the first of them.
    pub app: RunningApp,
    /// The other replicas, with `--replicas`.
    pub fleet: Option<Fleet>,
    pub media_dir: PathBuf,
    pub part_size: u64,
    pub operator_token: String,
    pub admin_key: String,
    pub institution_id: String,
    pub admin: Clients,
    pub zoom: ZoomSimulator,
    pub main_account: api::ZoomAccount,
    pub pilot_account: api::ZoomAccount,
    pub archive_account: api::ZoomAccount,
    /// What installing the Free-plan account answered.
    pub free_install: Result<api::ZoomAccount, tonic::Status>,
    /// user id → primary email, to name owners.
    pub user_emails: HashMap<String, String>,
}

/// Empties `data_dir` for a fresh run; refuses a folder that holds anything
/// a demo does not create (a mistyped `--data-dir` must not cost a home folder).
pub fn fresh_data_dir(data_dir: &Path) -> anyhow::Result<()> {
    let entries = match std::fs::read_dir(data_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", data_dir.display())),
    };
    for entry in entries {
        let name = entry?.file_name();
        if !DEMO_FILES.iter().any(|demo| name == *demo) {
            anyhow::bail!(
                "{} holds {name:?}, which the demo did not create, so it will not clear it; \
                 remove the folder or pick another --data-dir",
                data_dir.display()
            );
        }
    }
    std::fs::remove_dir_all(data_dir)
        .with_context(|| format!("cannot clear {}", data_dir.display()))
}

impl Stage {
    /// Starts the daemon (`replicas` of them, on PostgreSQL, when more than
    /// one) and sets up the control plane, printing each step.
    pub async fn start(
        data_dir: &Path,
        downloads: &DownloadServer,
        replicas: usize,
    ) -> anyhow::Result<Stage> {
        // Before anything starts, so that a missing PostgreSQL leaves nothing behind.
        let database = if replicas > 1 {
            Some(Database::start(replicas).await?)
        } else {
            None
        };
        let (operator_token, _) = generate_token(OPERATOR_TOKEN_PREFIX);
        let (webhook_secret, _) = generate_token("zws_");
        let mut config = Config {
            data_dir: data_dir.to_path_buf(),
            operator_token: Some(operator_token.clone()),
            ..Config::default()
        };
        config.zoom.webhook_secret = Some(webhook_secret.clone());
        // The simulated Zoom download hosts live on loopback, over plain http.
        config.zoom.download_allowlist = vec!["127.0.0.1".into(), "localhost".into()];
        config.zoom.allow_insecure_downloads = true;
        config.zoom.api_base_url = downloads.zoom_base();
        config.zoom.oauth_base_url = downloads.zoom_base();
        // The reconciler reads the main account's recordings list every
        // second, and takes what ended at once: the demo's lost webhook.
        config.reconcile.interval_secs = 1;
        config.reconcile.grace_secs = 0;
        downloads.add_oauth_client(MAIN_ACCOUNT, DEMO_OAUTH_CLIENT_ID, DEMO_OAUTH_CLIENT_SECRET);
        downloads.add_oauth_client(
            ARCHIVE_ACCOUNT,
            ARCHIVE_OAUTH_CLIENT_ID,
            ARCHIVE_OAUTH_CLIENT_SECRET,
        );
        // Moves to Zoom's trash are looked for five times a second.
        config.after_copy.poll_millis = 200;
        // Ephemeral loopback ports, so the demo never collides with a running daemon.
        config.grpc.addr = "127.0.0.1:0".parse()?;
        config.http.addr = "127.0.0.1:0".parse()?;
        config.caps.accounts.insert(
            PILOT_ACCOUNT.into(),
            AccountCapsConfig {
                max_file_bytes: Some(PILOT_MAX_FILE_BYTES),
                max_duration_secs: None,
            },
        );
        let default_max_file_bytes = config.caps.max_file_bytes;
        let media_dir = config.media_dir();
        let part_size = config.transfer.part_size_bytes;
        let (app, fleet) = match database {
            None => {
                let app = crate::app::start(config).await?;
                println!(
                    "1. started ferry on the embedded defaults (SQLite, local-folder sink): gRPC {}, HTTP {}, data in {}",
                    app.grpc_addr,
                    app.http_addr,
                    data_dir.display()
                );
                (app, None)
            }
            Some(database) => {
                let key = encryption_key();
                let mut apps = Vec::with_capacity(replicas);
                for _ in 0..replicas {
                    let config = database.replica_config(config.clone(), &key);
                    apps.push(crate::app::start(config).await?);
                }
                let first = apps.remove(0);
                let fleet = Fleet::new(&first, apps, webhook_secret.expose(), database);
                println!(
                    "1. started {} and {replicas} ferry replicas on it, sharing one media folder \
                     (data in {}):",
                    fleet.database().describe(),
                    data_dir.display()
                );
                for (i, app) in std::iter::once(&first).chain(&fleet.others).enumerate() {
                    println!(
                        "   replica {}: gRPC {}, HTTP {}",
                        i + 1,
                        app.grpc_addr,
                        app.http_addr
                    );
                }
                println!(
                    "   Zoom's webhooks go to the replicas in turn, as through a load balancer"
                );
                (first, Some(fleet))
            }
        };
        println!(
            "   the Zoom simulator serves downloads on {} (Zoom) and localhost:{} (its CDN)",
            downloads.zoom_addr,
            downloads.cdn_addr.port()
        );

        let server = format!("http://{}", app.grpc_addr);
        let connect = |token: Option<String>| Connection {
            server: server.clone(),
            token,
            ca_cert: None,
        };
        let operator_token = operator_token.expose().to_string();
        let mut operator = connect(Some(operator_token.clone())).connect().await?;
        let institution = operator
            .institutions
            .create_institution(api::CreateInstitutionRequest {
                display_name: "Demo University".into(),
            })
            .await?
            .into_inner();
        let key = operator
            .institutions
            .create_admin_key(api::CreateAdminKeyRequest {
                institution_id: institution.institution_id.clone(),
                name: "demo admin".into(),
            })
            .await?
            .into_inner();
        println!(
            "2. the operator created institution {} (\"Demo University\") and its admin key",
            institution.institution_id
        );

        let mut admin = connect(Some(key.secret.clone())).connect().await?;
        let configuration = admin
            .configurations
            .create_zoom_configuration(api::CreateZoomConfigurationRequest {
                institution_id: String::new(),
                display_name: "Main Zoom account".into(),
                view_priority: vec![],
                ..Default::default()
            })
            .await?
            .into_inner();
        println!(
            "3. the admin created the Zoom configuration \"Main Zoom account\"; its token is shown once"
        );

        // Zoom's marketplace installs with the configuration token alone.
        let mut marketplace = connect(None).connect().await?;
        let token = configuration.configuration_token;
        let mut install = async |account: &str, plan: api::ZoomPlan| {
            // The main account comes with Server-to-Server OAuth
            // credentials, which the reconciler and backfills need.
            let oauth_credentials = (account == MAIN_ACCOUNT).then(|| api::ZoomOAuthCredentials {
                client_id: DEMO_OAUTH_CLIENT_ID.into(),
                client_secret: DEMO_OAUTH_CLIENT_SECRET.into(),
            });
            marketplace
                .accounts
                .install_zoom_account(api::InstallZoomAccountRequest {
                    configuration_token: token.clone(),
                    zoom_account_id: account.into(),
                    plan: plan as i32,
                    oauth_credentials,
                })
                .await
                .map(tonic::Response::into_inner)
        };
        let main_account = install(MAIN_ACCOUNT, api::ZoomPlan::Education).await?;
        let pilot_account = install(PILOT_ACCOUNT, api::ZoomPlan::Pro).await?;
        let free_install = install(FREE_ACCOUNT, api::ZoomPlan::Free).await;
        let archive = admin
            .configurations
            .create_zoom_configuration(api::CreateZoomConfigurationRequest {
                institution_id: String::new(),
                display_name: "Archive Zoom account".into(),
                after_copy: api::AfterCopy::Trash as i32,
                ..Default::default()
            })
            .await?
            .into_inner();
        let archive_account = marketplace
            .accounts
            .install_zoom_account(api::InstallZoomAccountRequest {
                configuration_token: archive.configuration_token,
                zoom_account_id: ARCHIVE_ACCOUNT.into(),
                plan: api::ZoomPlan::Business as i32,
                oauth_credentials: Some(api::ZoomOAuthCredentials {
                    client_id: ARCHIVE_OAUTH_CLIENT_ID.into(),
                    client_secret: ARCHIVE_OAUTH_CLIENT_SECRET.into(),
                }),
            })
            .await?
            .into_inner();
        println!("4. Zoom accounts installed with the token:");
        println!("   {MAIN_ACCOUNT} (Education plan, with Server-to-Server OAuth credentials)");
        println!(
            "   {PILOT_ACCOUNT} (Pro plan); for this demo its size cap is lowered to {} \
             (caps.accounts.{PILOT_ACCOUNT}.max_file_bytes; the default cap is {})",
            bytes(PILOT_MAX_FILE_BYTES),
            bytes(default_max_file_bytes)
        );
        match &free_install {
            Err(status) => println!(
                "   {FREE_ACCOUNT} (Free plan) refused: {:?}: {}",
                status.code(),
                status.message()
            ),
            Ok(_) => println!("   {FREE_ACCOUNT} (Free plan) installed (it should not have been)"),
        }
        println!(
            "   {ARCHIVE_ACCOUNT} (Business plan, with credentials) through a second configuration, \
             \"Archive Zoom account\", whose after_copy is trash: once a copy is verified, Zoom's \
             recording goes to Zoom's trash"
        );

        let user_emails = sync_directory(&mut admin).await?;
        let zoom = ZoomSimulator::new(app.http_addr, webhook_secret.expose());
        let challenge = zoom.validate_endpoint("qgg8vlvZRS6UYooatFL8Aw").await?;
        println!(
            "6. Zoom validated the webhook endpoint: HTTP {}, encryptedToken {}...",
            challenge.status,
            challenge.body["encryptedToken"]
                .as_str()
                .unwrap_or_default()
                .get(..12)
                .unwrap_or_default()
        );
        Ok(Stage {
            app,
            fleet,
            media_dir,
            part_size,
            operator_token,
            admin_key: key.secret,
            institution_id: institution.institution_id,
            admin,
            zoom,
            main_account,
            pilot_account,
            archive_account,
            free_install,
            user_emails,
        })
    }

    /// Zoom posting to each replica in turn (one, without replicas).
    pub fn zooms(&self) -> Vec<ZoomSimulator> {
        let others = self.fleet.iter().flat_map(|fleet| fleet.zooms.iter());
        std::iter::once(&self.zoom).chain(others).cloned().collect()
    }

    /// Stops every replica, then the database under them.
    pub async fn shutdown(self) {
        self.app.shutdown().await;
        if let Some(fleet) = self.fleet {
            fleet.shutdown().await;
        }
    }

    /// The email of the user `user_id`, as the table shows owners.
    pub fn owner_email(&self, user_id: &str) -> Option<&str> {
        self.user_emails.get(user_id).map(String::as_str)
    }
}

/// A full sync of a small directory, one row of it invalid; returns user id → email.
async fn sync_directory(admin: &mut Clients) -> anyhow::Result<HashMap<String, String>> {
    let records = [
        (
            "e-100",
            "Elisa@Example.edu",
            "elisa.zoom@example.edu",
            "Elisa Example",
            api::UserRole::Instructor,
        ),
        (
            "e-101",
            "sam@example.edu",
            "",
            "Sam Student",
            api::UserRole::Student,
        ),
        (
            "e-103",
            "rao@med.example.edu",
            "",
            "Priya Rao",
            api::UserRole::Instructor,
        ),
        (
            "e-104",
            "lee@example.edu",
            "",
            "Lee Optout",
            api::UserRole::Instructor,
        ),
        (
            "e-102",
            "not-an-email",
            "",
            "Broken Row",
            api::UserRole::Student,
        ),
    ];
    let header = api::SyncUsersRequest {
        item: Some(api::sync_users_request::Item::Header(
            api::SyncUsersHeader {
                institution_id: String::new(),
                mode: api::SyncMode::Full as i32,
            },
        )),
    };
    let users = records
        .into_iter()
        .map(|(id, email, alternate, name, role)| api::SyncUsersRequest {
            item: Some(api::sync_users_request::Item::User(api::UserRecord {
                external_id: id.into(),
                email: email.into(),
                alternate_zoom_email: alternate.into(),
                display_name: name.into(),
                role: role as i32,
                // Lee asked that his recordings stay out of the library.
                ingest_choice: if id == "e-104" {
                    api::IngestChoice::OptedOut as i32
                } else {
                    api::IngestChoice::Default as i32
                },
            })),
        });
    let summary = admin
        .users
        .sync_users(tokio_stream::iter(std::iter::once(header).chain(users)))
        .await?
        .into_inner();
    println!(
        "5. the admin synced the directory: {} applied, {} rejected{}; \
         Elisa also signs in to Zoom as elisa.zoom@example.edu; Lee opted out of the ingest",
        summary.applied,
        summary.rejected.len(),
        summary
            .rejected
            .first()
            .map(|r| format!(" ({}: {})", r.external_id, r.reason))
            .unwrap_or_default()
    );
    let listed = admin
        .users
        .list_users(api::ListUsersRequest::default())
        .await?
        .into_inner()
        .users;
    Ok(listed.into_iter().map(|u| (u.user_id, u.email)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_folder_a_demo_made_is_cleared() {
        let root = tempfile::tempdir().unwrap();
        let demo = root.path().join("demo");
        fresh_data_dir(&demo).expect("a missing folder is fine");

        std::fs::create_dir_all(demo.join("media/recordings")).unwrap();
        std::fs::write(demo.join("ferry.db"), b"").unwrap();
        std::fs::write(demo.join("encryption.key"), b"").unwrap();
        fresh_data_dir(&demo).unwrap();
        assert!(!demo.exists());

        std::fs::create_dir_all(&demo).unwrap();
        std::fs::write(demo.join("thesis.tex"), b"years of work").unwrap();
        let error = fresh_data_dir(&demo).unwrap_err();
        assert!(error.to_string().contains("thesis.tex"), "{error}");
        assert!(demo.join("thesis.tex").exists());
    }
}
