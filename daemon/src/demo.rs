//! `ferry demo`: Ferry on the embedded defaults (SQLite, local folder),
//! driven end to end over its own gRPC API on loopback, printing each step.
//! It starts a fresh daemon in `data_dir`, so it never touches a real one.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use ferry_control::api;
use ferry_control::secrets::{OPERATOR_TOKEN_PREFIX, generate_token};

use ferry_control::model::Timestamp;

use crate::cli::client::{Clients, Connection};
use crate::config::Config;
use crate::zoomsim::downloads::{DownloadServer, FileBehavior};
use crate::zoomsim::{FileSpec, Meeting, Mp4Layout, SyntheticMedia, ZoomSimulator};

pub async fn run(data_dir: &Path) -> anyhow::Result<()> {
    if data_dir.exists() {
        std::fs::remove_dir_all(data_dir)
            .with_context(|| format!("cannot clear {}", data_dir.display()))?;
    }
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
    let downloads = DownloadServer::start().await?;
    config.zoom.api_base_url = downloads.zoom_base();
    config.zoom.oauth_base_url = downloads.zoom_base();
    // Ephemeral loopback ports, so the demo never collides with a running daemon.
    config.grpc.addr = "127.0.0.1:0".parse()?;
    config.http.addr = "127.0.0.1:0".parse()?;
    let config_media_dir = config.media_dir();
    let app = crate::app::start(config).await?;
    let server = format!("http://{}", app.grpc_addr);
    println!(
        "1. started ferry: gRPC {} HTTP {} data {}",
        app.grpc_addr,
        app.http_addr,
        data_dir.display()
    );

    let connect = |token: Option<String>| Connection {
        server: server.clone(),
        token,
        ca_cert: None,
    };
    let mut operator: Clients = connect(Some(operator_token.expose().to_string()))
        .connect()
        .await?;
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
        "2. operator created institution {} and an admin key",
        institution.institution_id
    );

    let mut admin = connect(Some(key.secret.clone())).connect().await?;
    let configuration = admin
        .configurations
        .create_zoom_configuration(api::CreateZoomConfigurationRequest {
            institution_id: String::new(),
            display_name: "Main Zoom account".into(),
            view_priority: vec![],
        })
        .await?
        .into_inner();
    println!(
        "3. admin created zoom configuration {:?}; its token is shown once",
        configuration
            .configuration
            .as_ref()
            .map(|c| c.display_name.as_str())
            .unwrap_or_default()
    );

    let mut marketplace = connect(None).connect().await?;
    let free = marketplace
        .accounts
        .install_zoom_account(api::InstallZoomAccountRequest {
            configuration_token: configuration.configuration_token.clone(),
            zoom_account_id: "demo-free-account".into(),
            plan: api::ZoomPlan::Free as i32,
            oauth_credentials: None,
        })
        .await;
    if let Err(status) = free {
        println!(
            "4. a free zoom account cannot install: {}",
            status.message()
        );
    }
    let account = marketplace
        .accounts
        .install_zoom_account(api::InstallZoomAccountRequest {
            configuration_token: configuration.configuration_token.clone(),
            zoom_account_id: "demo-edu-account".into(),
            plan: api::ZoomPlan::Education as i32,
            oauth_credentials: None,
        })
        .await?
        .into_inner();
    println!(
        "5. zoom account {} installed into the institution",
        account.zoom_account_id
    );

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
                external_id: id.to_string(),
                email: email.to_string(),
                alternate_zoom_email: alternate.to_string(),
                display_name: name.to_string(),
                role: role as i32,
            })),
        });
    let summary = admin
        .users
        .sync_users(tokio_stream::iter(std::iter::once(header).chain(users)))
        .await?
        .into_inner();
    println!(
        "6. synced the directory: {} applied, {} rejected{}",
        summary.applied,
        summary.rejected.len(),
        summary
            .rejected
            .first()
            .map(|r| format!(" ({}: {})", r.external_id, r.reason))
            .unwrap_or_default()
    );
    let host = admin
        .users
        .lookup_user_by_email(api::LookupUserByEmailRequest {
            institution_id: String::new(),
            email: "ELISA.ZOOM@example.edu".into(),
        })
        .await?
        .into_inner();
    println!(
        "7. a zoom host signing in as ELISA.ZOOM@example.edu matches user {} ({})",
        host.external_id, host.display_name
    );

    // Zoom's side: the simulator signs and posts webhooks like Zoom does.
    let zoom = ZoomSimulator::new(app.http_addr, webhook_secret.expose());
    let challenge = zoom.validate_endpoint("qgg8vlvZRS6UYooatFL8Aw").await?;
    println!(
        "8. zoom validated the webhook endpoint (HTTP {}, encryptedToken {}...)",
        challenge.status,
        challenge.body["encryptedToken"]
            .as_str()
            .unwrap_or_default()
            .get(..12)
            .unwrap_or_default()
    );
    let install_second = account.install_time.map_or(0, |t| t.seconds);
    let after_install = Timestamp::from_unix_seconds(install_second + 60);
    let account_id = account.zoom_account_id.as_str();
    // Zoom's download hosts: each MP4 is a synthetic recording whose bytes
    // the demo can check after the transfer.
    let mut served = Vec::new();
    let mut serve = |meeting: &mut Meeting, minutes: u64| {
        meeting.download_base = downloads.zoom_base();
        for file in meeting.files.iter_mut().filter(|f| f.file_type == "MP4") {
            let media = SyntheticMedia::mp4(
                file.file_size,
                Duration::from_secs(minutes * 60),
                Mp4Layout::MoovAtEnd,
                0,
            );
            downloads.add(
                &file.id,
                FileBehavior::new(media.clone(), &meeting.download_token),
            );
            served.push((file.id.clone(), media));
        }
    };
    let mut lecture = Meeting::lecture(account_id, "ELISA.ZOOM@example.edu", after_install)
        .with_files(vec![
            FileSpec::mp4(
                "shared_screen_with_speaker_view",
                5,
                3600,
                200 * 1024 * 1024,
            ),
            FileSpec::audio(5, 3600, 900_000),
            FileSpec::chat(5),
        ]);
    serve(&mut lecture, 60);
    let mut stop_start =
        Meeting::lecture(account_id, "sam@example.edu", after_install).with_files(vec![
            FileSpec::mp4("gallery_view", 0, 1200, 20_000_000),
            FileSpec::mp4("speaker_view(CC)", 0, 1200, 15_000_000),
            FileSpec::mp4("shared_screen_with_speaker_view", 0, 1200, 18_000_000).processing(),
            FileSpec::mp4("speaker_view", 1500, 900, 11_000_000),
        ]);
    serve(&mut stop_start, 20);
    let stranger = Meeting::lecture(account_id, "guest@elsewhere.org", after_install);
    let marathon =
        Meeting::lecture(account_id, "elisa@example.edu", after_install).with_files(vec![
            FileSpec::mp4("speaker_view", 0, 9 * 3600, 4_000_000_000),
        ]);
    let old = Meeting::lecture(
        account_id,
        "elisa@example.edu",
        Timestamp::from_unix_seconds(install_second - 3600),
    );
    for (what, meeting) in [
        ("a lecture by a host known by alternate email", &lecture),
        ("a stop/start session with separate views", &stop_start),
        ("a host with no matching user", &stranger),
        ("a 9-hour meeting", &marathon),
        ("a recording made before the install", &old),
        ("the first lecture again (Zoom retries)", &lecture),
    ] {
        let delivery = zoom.recording_completed(meeting).await?;
        let duplicate = if delivery.body["duplicate"] == true {
            " (the same job: no duplicate)"
        } else {
            ""
        };
        println!(
            "9. webhook: {what}: HTTP {} -> {}{duplicate}",
            delivery.status,
            delivery.state().unwrap_or("-")
        );
    }
    // The transfer engine streams the queued recordings into the media folder.
    let started = std::time::Instant::now();
    let jobs = loop {
        let jobs = admin
            .jobs
            .list_jobs(api::ListJobsRequest::default())
            .await?
            .into_inner()
            .jobs;
        let busy = jobs.iter().any(|j| {
            j.state == api::JobState::Queued as i32 || j.state == api::JobState::Transferring as i32
        });
        if !busy || started.elapsed() > Duration::from_secs(300) {
            break jobs;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let transferred: u64 = jobs
        .iter()
        .filter(|j| j.state == api::JobState::Completed as i32)
        .map(|j| j.bytes_transferred)
        .sum();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "10. transfers finished: {:.1} MiB in {seconds:.2} s ({:.0} MiB/s), streamed without staging",
        transferred as f64 / 1048576.0,
        transferred as f64 / 1048576.0 / seconds
    );
    println!("11. the admin's job list ({} jobs):", jobs.len());
    for job in &jobs {
        let state = api::JobState::try_from(job.state).map_or("?", |s| s.as_str_name());
        let reason = api::SkipReason::try_from(job.skip_reason)
            .ok()
            .filter(|r| *r != api::SkipReason::Unspecified)
            .map_or(String::new(), |r| format!(" {}", r.as_str_name()));
        println!("    {} {state}{reason}: {}", job.host_email, job.message);
    }
    let media = admin
        .media
        .list_media(api::ListMediaRequest::default())
        .await?
        .into_inner()
        .media;
    println!("12. the library ({} media):", media.len());
    for item in &media {
        let path = config_media_dir.join(&item.object_key);
        let bytes_match = served
            .iter()
            .find(|(id, _)| item.object_key.contains(id.as_str()))
            .is_some_and(|(_, synthetic)| sha256_of(&path).ok() == Some(synthetic.sha256()));
        println!(
            "    {:?} owned by {}, {} bytes, {} s, {}; bytes identical to zoom's: {}",
            item.title,
            item.owner_user_id,
            item.size_bytes,
            item.duration_ms / 1000,
            item.checksum,
            bytes_match
        );
    }
    app.shutdown().await;
    println!(
        "done: everything above is stored in {}",
        data_dir.join("ferry.db").display()
    );
    Ok(())
}

fn sha256_of(path: &Path) -> std::io::Result<[u8; 32]> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
    Ok(hasher.finalize().into())
}
