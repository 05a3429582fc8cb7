//! The daemon on the PostgreSQL store, end to end: webhooks committed before
//! their 200 and read back over gRPC through another replica on the same
//! database, and an outage of the database answered 503 (webhooks) and
//! UNAVAILABLE (gRPC) and told by health checks (gRPC health NOT_SERVING,
//! `/healthz` 503), after which the daemon serves again by itself.
//! Each test runs a throwaway PostgreSQL cluster (`postgres_testing`).

use std::path::Path;
use std::time::Duration;

use ferry_control::api;
use ferry_control::secrets::Secret;
use ferry_control::store::postgres_testing::TestCluster;
use ferry_daemon::config::{Config, StoreBackend};
use ferry_test_support::daemon::{TestDaemon, test_config};
use tonic_health::pb::health_check_response::ServingStatus;

use crate::support::*;

/// One key for every replica: they read each other's sealed secrets.
const ENCRYPTION_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn on_postgres(data_dir: &Path, url: &str) -> Config {
    let mut config = test_config(data_dir);
    config.store.backend = StoreBackend::Postgres;
    config.store.postgres_url = Some(Secret::new(url));
    config.store.postgres_connect_timeout_secs = 1;
    config.encryption_key = Some(Secret::new(ENCRYPTION_KEY));
    config
}

async fn replica(dir: &tempfile::TempDir, url: &str) -> TestDaemon {
    TestDaemon::start_with(on_postgres(dir.path(), url))
        .await
        .expect("start a daemon on postgres")
}

#[tokio::test]
async fn a_webhook_committed_through_one_replica_is_listed_by_another_and_not_duplicated() {
    let url = TestCluster::shared().fresh_database().await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut scene = Scene::with_daemon(replica(&dir_a, &url).await).await;
    let replica_b = replica(&dir_b, &url).await;

    let meeting = scene.lecture(60);
    let job = scene.ingest(&meeting).await;
    assert_eq!(
        api::JobState::try_from(job.state).unwrap(),
        api::JobState::Queued
    );
    assert_eq!(
        scene
            .jobs()
            .await
            .iter()
            .map(|j| &j.job_id)
            .collect::<Vec<_>>(),
        [&job.job_id]
    );

    // Zoom redelivers to the other replica: the same job, not a second one.
    let redelivered = replica_b
        .zoom()
        .recording_completed(&meeting)
        .await
        .unwrap();
    assert_eq!(redelivered.status, 200, "{redelivered:?}");
    assert_eq!(redelivered.job_id(), Some(job.job_id.as_str()));

    let mut operator_b = replica_b.operator().await.unwrap();
    let listed_on_b = operator_b
        .jobs
        .list_jobs(api::ListJobsRequest {
            institution_id: job.institution_id.clone(),
            ..api::ListJobsRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .jobs;
    assert_eq!(
        listed_on_b.iter().map(|j| &j.job_id).collect::<Vec<_>>(),
        [&job.job_id],
        "replica b lists the one job replica a committed"
    );
    let _ = replica_b.stop().await;
    let _ = scene.daemon.stop().await;
}

#[tokio::test]
async fn while_the_database_is_down_webhooks_get_503_and_the_daemon_recovers_by_itself() {
    let cluster = TestCluster::start();
    let url = cluster.fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let mut scene = Scene::with_daemon(replica(&dir, &url).await).await;

    cluster.stop();
    let during = scene.lecture(60);
    let delivery = scene.zoom.recording_completed(&during).await.unwrap();
    assert_eq!(delivery.status, 503, "{delivery:?}");
    let status = scene
        .admin
        .jobs
        .list_jobs(api::ListJobsRequest::default())
        .await
        .expect_err("the store is down");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    // Health says so, for the load balancer: gRPC health and /healthz.
    wait_for_health(&scene, ServingStatus::NotServing, 503).await;

    cluster.restart();
    // Zoom retries; the daemon reconnects by itself.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let job_id = loop {
        let delivery = scene.zoom.recording_completed(&during).await.unwrap();
        if delivery.status == 200 {
            break delivery.job_id().expect("a job").to_string();
        }
        assert_eq!(delivery.status, 503, "{delivery:?}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the daemon did not recover within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        scene
            .jobs()
            .await
            .iter()
            .map(|j| &j.job_id)
            .collect::<Vec<_>>(),
        [&job_id]
    );
    wait_for_health(&scene, ServingStatus::Serving, 200).await;
    let _ = scene.daemon.stop().await;
}

/// Waits (at most 10 s) until gRPC health reports `status` for the server
/// and for a service, and `GET /healthz` answers `http_status`.
async fn wait_for_health(scene: &Scene, status: ServingStatus, http_status: u16) {
    let channel = tonic::transport::Channel::from_shared(scene.daemon.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut seen = Vec::new();
        for service in ["", "ferry.v1.JobService"] {
            let answer = health
                .check(tonic_health::pb::HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .unwrap()
                .into_inner();
            seen.push(answer.status);
        }
        let healthz = healthz_status(scene.daemon.app.http_addr).await;
        if seen.iter().all(|s| *s == status as i32) && healthz == http_status {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "health {seen:?} and /healthz {healthz}, waiting for {status:?} and {http_status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The status line's code of `GET /healthz`.
async fn healthz_status(http_addr: std::net::SocketAddr) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(http_addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: ferry\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    text.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}
