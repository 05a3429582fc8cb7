//! What an RPC acknowledged survives `kill -9` of the daemon process.

use std::path::Path;

use ferry_control::api;

use crate::support::*;

pub(crate) fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferry-under-test"))
}

#[tokio::test]
async fn acknowledged_changes_survive_kill_9_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = DaemonProcess::spawn(binary(), dir.path(), &[]).unwrap();
    let operator_token = first
        .banner
        .iter()
        .find(|line| line.starts_with("fop_"))
        .expect("the first start prints a generated operator token")
        .clone();
    let mut operator = connect(&first.grpc_url(), Some(&operator_token))
        .await
        .unwrap();
    let institution = create_institution(&mut operator, "Durable U")
        .await
        .unwrap();
    let mut admin = connect(&first.grpc_url(), Some(&institution.admin_key))
        .await
        .unwrap();
    let config = create_configuration(&mut admin, "Main").await;
    let installed = install(
        &mut admin,
        &config.configuration_token,
        "acct-1",
        api::ZoomPlan::Education,
    )
    .await
    .unwrap();
    let users: Vec<_> = (0..500)
        .map(|i| {
            user(
                &format!("u{i}"),
                &format!("user{i}@example.edu"),
                "",
                api::UserRole::Student,
            )
        })
        .collect();
    let summary = sync(&mut admin, api::SyncMode::Full, users).await.unwrap();
    assert_eq!(summary.created, 500);
    // The last acknowledged call, immediately before the kill.
    let revoked_key = operator
        .institutions
        .create_admin_key(api::CreateAdminKeyRequest {
            institution_id: institution.institution_id.clone(),
            name: "to revoke".into(),
        })
        .await
        .unwrap()
        .into_inner();
    operator
        .institutions
        .revoke_admin_key(api::RevokeAdminKeyRequest {
            key_id: revoked_key.key.unwrap().key_id,
        })
        .await
        .unwrap();
    first.kill9().unwrap();

    let second = DaemonProcess::spawn(binary(), dir.path(), &[]).unwrap();
    assert!(
        !second.banner.iter().any(|line| line.starts_with("fop_")),
        "the operator token is printed only once"
    );
    let mut operator = connect(&second.grpc_url(), Some(&operator_token))
        .await
        .unwrap();
    let listed = operator
        .institutions
        .list_institutions(api::ListInstitutionsRequest::default())
        .await
        .expect("the generated operator token still works after a restart")
        .into_inner();
    assert_eq!(listed.institutions.len(), 1);
    let mut admin = connect(&second.grpc_url(), Some(&institution.admin_key))
        .await
        .unwrap();
    let account = admin
        .accounts
        .get_zoom_account(api::GetZoomAccountRequest {
            zoom_account_id: "acct-1".into(),
            institution_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(account.install_time, installed.install_time);
    let found = admin
        .users
        .lookup_user_by_email(api::LookupUserByEmailRequest {
            institution_id: String::new(),
            email: "USER499@example.edu".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.external_id, "u499");
    let mut revoked = connect(&second.grpc_url(), Some(&revoked_key.secret))
        .await
        .unwrap();
    assert!(
        revoked
            .institutions
            .get_institution(api::GetInstitutionRequest::default())
            .await
            .is_err(),
        "the revocation acknowledged before the kill holds"
    );
    // The configuration token still installs (it was stored, hashed).
    install(
        &mut admin,
        &config.configuration_token,
        "acct-2",
        api::ZoomPlan::Pro,
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_webhook_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("FERRY_OPERATOR_TOKEN", OPERATOR_TOKEN),
        ("FERRY_ZOOM_WEBHOOK_SECRET", WEBHOOK_SECRET),
    ];
    let daemon = DaemonProcess::spawn(binary(), dir.path(), &env).unwrap();
    let (institution, start) = process_scene(&daemon, "burst-account").await;

    let zoom = ferry_zoomsim::ZoomSimulator::new(daemon.http_addr, WEBHOOK_SECRET);
    let mut senders = Vec::new();
    for _ in 0..300 {
        let zoom = zoom.clone();
        let meeting = ferry_zoomsim::Meeting::lecture("burst-account", "host@example.edu", start);
        senders.push(tokio::spawn(async move {
            let delivery = zoom.recording_completed(&meeting).await.unwrap();
            (
                delivery.status,
                delivery.job_id().map(str::to_string),
                meeting.uuid,
            )
        }));
    }
    let mut acknowledged = Vec::new();
    for sender in senders {
        let (status, job_id, uuid) = sender.await.unwrap();
        assert_eq!(status, 200);
        acknowledged.push((job_id.unwrap(), uuid));
    }
    // Killed the moment the last acknowledgement arrived.
    daemon.kill9().unwrap();

    let restarted = DaemonProcess::spawn(binary(), dir.path(), &env).unwrap();
    let mut admin = connect(&restarted.grpc_url(), Some(&institution.admin_key))
        .await
        .unwrap();
    let mut stored = std::collections::HashMap::new();
    let mut token = String::new();
    loop {
        let page = admin
            .jobs
            .list_jobs(api::ListJobsRequest {
                page: Some(api::PageRequest {
                    page_size: 1000,
                    page_token: token,
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        for job in page.jobs {
            stored.insert(job.job_id, job.meeting_uuid);
        }
        token = page.page.unwrap().next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(stored.len(), acknowledged.len());
    for (job_id, uuid) in acknowledged {
        assert_eq!(
            stored.get(&job_id),
            Some(&uuid),
            "acknowledged job {job_id} was lost"
        );
    }
}

/// An institution with one installed Zoom account and its host as a user,
/// made over the process's gRPC API; returns the admin key and the earliest
/// recording start the rules accept.
pub(crate) async fn process_scene(
    daemon: &DaemonProcess,
    account: &str,
) -> (TestInstitution, ferry_control::model::Timestamp) {
    let mut operator = connect(&daemon.grpc_url(), Some(OPERATOR_TOKEN))
        .await
        .unwrap();
    let institution = create_institution(&mut operator, "Process U")
        .await
        .unwrap();
    let mut admin = connect(&daemon.grpc_url(), Some(&institution.admin_key))
        .await
        .unwrap();
    let config = create_configuration(&mut admin, "Main").await;
    let installed = install(
        &mut admin,
        &config.configuration_token,
        account,
        api::ZoomPlan::Business,
    )
    .await
    .unwrap();
    sync(
        &mut admin,
        api::SyncMode::Upsert,
        vec![user("h", "host@example.edu", "", api::UserRole::Instructor)],
    )
    .await
    .unwrap();
    let start = ferry_control::model::Timestamp::from_unix_seconds(
        installed.install_time.unwrap().seconds + 5,
    );
    (institution, start)
}

#[tokio::test]
async fn serve_refuses_plain_tcp_off_loopback_and_unknown_settings() {
    let dir = tempfile::tempdir().unwrap();
    for (env, needle) in [
        (vec![("FERRY_GRPC_ADDR", "0.0.0.0:0")], "grpc.insecure"),
        (vec![("FERRY_GRPC_ADRR", "127.0.0.1:0")], "FERRY_GRPC_ADRR"),
    ] {
        let mut command = std::process::Command::new(binary());
        command
            .arg("serve")
            .env_clear()
            .env("FERRY_DATA_DIR", dir.path());
        for (key, value) in &env {
            command.env(key, value);
        }
        let output = command.output().unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(needle),
            "stderr {stderr:?} should mention {needle}"
        );
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "one-line error: {stderr:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_killed_mid_stream_resumes_after_restart() {
    use ferry_zoomsim::downloads::{DownloadServer, FileBehavior};
    use ferry_zoomsim::{FileSpec, Meeting, Mp4Layout, SyntheticMedia};

    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("FERRY_OPERATOR_TOKEN", OPERATOR_TOKEN),
        ("FERRY_ZOOM_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("FERRY_TRANSFER_ENABLED", "true"),
        ("FERRY_TRANSFER_PART_SIZE_BYTES", "5242880"),
        ("FERRY_TRANSFER_LEASE_SECS", "3"),
        ("FERRY_TRANSFER_HEARTBEAT_SECS", "1"),
        ("FERRY_ZOOM_DOWNLOAD_ALLOWLIST", "127.0.0.1,localhost"),
        ("FERRY_ZOOM_ALLOW_INSECURE_DOWNLOADS", "true"),
    ];
    let server = DownloadServer::start().await.unwrap();
    let daemon = DaemonProcess::spawn(binary(), dir.path(), &env).unwrap();
    let (institution, start) = process_scene(&daemon, "crash-account").await;
    let mut admin = connect(&daemon.grpc_url(), Some(&institution.admin_key))
        .await
        .unwrap();

    let media = SyntheticMedia::mp4(
        40 * MIB,
        std::time::Duration::from_secs(3000),
        Mp4Layout::FastStart,
        1,
    );
    let mut meeting = Meeting::lecture("crash-account", "host@example.edu", start)
        .with_files(vec![FileSpec::mp4("speaker_view", 0, 3000, media.len())]);
    meeting.download_base = server.zoom_base();
    let mut behavior = FileBehavior::new(media.clone(), &meeting.download_token);
    behavior.throttle_bytes_per_sec = Some(10 * MIB);
    server.add(&meeting.files[0].id, behavior);
    let zoom = ferry_zoomsim::ZoomSimulator::new(daemon.http_addr, WEBHOOK_SECRET);
    let delivery = zoom.recording_completed(&meeting).await.unwrap();
    let job_id = delivery.job_id().unwrap().to_string();

    let get = |admin: &mut ferry_daemon::cli::client::Clients| {
        let request = api::GetJobRequest {
            job_id: job_id.clone(),
            institution_id: String::new(),
        };
        let mut jobs = admin.jobs.clone();
        async move { jobs.get_job(request).await.unwrap().into_inner() }
    };
    for _ in 0..100 {
        if get(&mut admin).await.bytes_transferred >= 15 * MIB {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let before_kill = get(&mut admin).await;
    assert!(
        before_kill.bytes_transferred >= 15 * MIB && before_kill.bytes_transferred < media.len()
    );
    daemon.kill9().unwrap();
    server.update(&meeting.files[0].id, |b| b.throttle_bytes_per_sec = None);

    let restarted = DaemonProcess::spawn(binary(), dir.path(), &env).unwrap();
    let mut admin = connect(&restarted.grpc_url(), Some(&institution.admin_key))
        .await
        .unwrap();
    let mut done = get(&mut admin).await;
    for _ in 0..300 {
        if done.state == api::JobState::Completed as i32
            || done.state == api::JobState::Failed as i32
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        done = get(&mut admin).await;
    }
    assert_eq!(
        done.state,
        api::JobState::Completed as i32,
        "{}",
        done.message
    );
    let stats = server.stats(&meeting.files[0].id);
    assert!(
        stats.range_starts.len() >= 2 && stats.range_starts[1] > 0,
        "resumed with Range: {stats:?}"
    );

    let mut objects = Vec::new();
    let mut stack = vec![dir.path().join("media")];
    while let Some(path) = stack.pop() {
        for entry in std::fs::read_dir(&path).unwrap().flatten() {
            let p = entry.path();
            if p.file_name().is_some_and(|n| n == ".uploads") {
                assert_eq!(
                    std::fs::read_dir(&p).unwrap().count(),
                    0,
                    "no upload left behind"
                );
            } else if p.is_dir() {
                stack.push(p);
            } else {
                objects.push(p);
            }
        }
    }
    assert_eq!(objects.len(), 1, "{objects:?}");
    let bytes = std::fs::read(&objects[0]).unwrap();
    use sha2::Digest;
    assert_eq!(
        <[u8; 32]>::from(sha2::Sha256::digest(&bytes)),
        media.sha256()
    );
}
