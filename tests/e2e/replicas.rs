//! Several daemons sharing one store: the per-account download rate is a
//! limit on what Zoom sees, so the replicas alive split it between them.
//! Two `ferry serve` processes on one database, each told about the other
//! by the replica registry, download eight recordings of one account: all
//! the requests Zoom sees together keep to the configured rate.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ferry_control::api;
use ferry_zoomsim::downloads::{DownloadServer, FileBehavior};
use ferry_zoomsim::{FileSpec, Meeting, Mp4Layout, SyntheticMedia, ZoomSimulator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::durability::{binary, process_scene};
use crate::support::*;
use crate::transfer::state;

const ACCOUNT: &str = "shared-rate-account";
/// What Zoom allows this account, in download requests a second.
const RATE: u32 = 2;
const RECORDINGS: usize = 8;

/// The value of an unlabelled gauge on the daemon's `/metrics` page.
async fn gauge(http_addr: SocketAddr, name: &str) -> Option<f64> {
    let mut stream = tokio::net::TcpStream::connect(http_addr).await.ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: ferry\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await.ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_together_keep_to_the_accounts_download_rate() {
    let dir = tempfile::tempdir().unwrap();
    let rate = RATE.to_string();
    let env = [
        ("FERRY_OPERATOR_TOKEN", OPERATOR_TOKEN),
        ("FERRY_ZOOM_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("FERRY_TRANSFER_ENABLED", "true"),
        ("FERRY_TRANSFER_LEASE_SECS", "3"),
        ("FERRY_TRANSFER_HEARTBEAT_SECS", "1"),
        ("FERRY_TRANSFER_DOWNLOAD_REQUESTS_PER_SECOND", rate.as_str()),
        ("FERRY_ZOOM_DOWNLOAD_ALLOWLIST", "127.0.0.1,localhost"),
        ("FERRY_ZOOM_ALLOW_INSECURE_DOWNLOADS", "true"),
    ];
    let server = DownloadServer::start().await.unwrap();
    let first = DaemonProcess::spawn(binary(), dir.path(), &env).unwrap();
    let (institution, start) = process_scene(&first, ACCOUNT).await;
    let second = DaemonProcess::spawn(binary(), dir.path(), &env).unwrap();

    // The signal that each has heard of the other: its own gauge says 2.
    let deadline = Instant::now() + Duration::from_secs(20);
    for daemon in [&first, &second] {
        while gauge(daemon.http_addr, "ferry_replicas_alive").await != Some(2.0) {
            assert!(
                Instant::now() < deadline,
                "the replicas never saw each other"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // Half the recordings reach each replica, as a load balancer sends them.
    let media = SyntheticMedia::mp4(64 * 1024, Duration::from_secs(600), Mp4Layout::FastStart, 0);
    let mut jobs = Vec::new();
    let mut file_ids = Vec::new();
    for i in 0..RECORDINGS {
        let mut meeting = Meeting::lecture(ACCOUNT, "host@example.edu", start)
            .with_files(vec![FileSpec::mp4("speaker_view", 0, 600, media.len())]);
        meeting.download_base = server.zoom_base();
        server.add(
            &meeting.files[0].id,
            FileBehavior::new(media.clone(), &meeting.download_token),
        );
        let replica = if i % 2 == 0 { &first } else { &second };
        let zoom = ZoomSimulator::new(replica.http_addr, WEBHOOK_SECRET);
        let delivery = zoom.recording_completed(&meeting).await.unwrap();
        assert_eq!(delivery.status, 200, "{delivery:?}");
        jobs.push(delivery.job_id().unwrap().to_string());
        file_ids.push(meeting.files[0].id.clone());
    }

    let mut admin = connect(&first.grpc_url(), Some(&institution.admin_key))
        .await
        .unwrap();
    let mut workers = std::collections::HashSet::new();
    for job_id in &jobs {
        let mut job = api::Job::default();
        for _ in 0..300 {
            job = admin
                .jobs
                .get_job(api::GetJobRequest {
                    job_id: job_id.clone(),
                    institution_id: String::new(),
                })
                .await
                .unwrap()
                .into_inner();
            if state(&job).0 == api::JobState::Completed {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(state(&job).0, api::JobState::Completed, "{}", job.message);
        workers.extend(job.attempts.iter().map(|a| a.worker_id.clone()));
    }
    assert_eq!(workers.len(), 2, "both replicas transferred: {workers:?}");

    // What Zoom saw: every download request of the account, from both.
    let mut requests: Vec<Instant> = file_ids
        .iter()
        .flat_map(|id| server.stats(id).requests_at)
        .collect();
    requests.sort();
    assert_eq!(requests.len(), RECORDINGS, "one request per recording");
    // RATE a second with a burst of RATE in all: the requests after the first
    // RATE need at least (n - RATE) / RATE seconds. Two replicas that each
    // took the whole rate would send them in half that.
    let span = *requests.last().unwrap() - requests[0];
    let at_least = Duration::from_secs_f64((RECORDINGS as f64 - f64::from(RATE)) / f64::from(RATE));
    assert!(
        span >= at_least.mul_f64(0.9),
        "{RECORDINGS} requests within {span:?}: faster than {RATE}/s across both replicas"
    );
}
