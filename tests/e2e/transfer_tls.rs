//! Both hops of a transfer over HTTPS, with a CA made at run time that
//! Ferry trusts only through `transfer.extra_ca_file`: the simulator's
//! download hosts serve TLS (the Zoom hop), and moto sits behind the fault
//! proxy terminating TLS (the S3 hop). With the CA configured the
//! recording arrives whole; without it, the job fails with a certificate
//! error and nothing is stored. The servers count TLS handshakes, so the
//! tests also check that connections are reused across the parts of one
//! upload and across transfers to the same hosts. A bad CA file stops
//! start-up with an error naming the setting and the path, in process and
//! as the real binary (never a panic).

use std::path::Path;
use std::process::Command;

use ferry_control::api;
use ferry_daemon::config::Config;
use ferry_test_support::test_ca::{Alpn, TestCa};
use ferry_zoomsim::downloads::DownloadServer;
use ferry_zoomsim::tls::ServerTls;
use ferry_zoomsim::{Mp4Layout, SyntheticMedia};

use crate::s3_engine::{Bucket, S3Transfers, s3_transfers};
use crate::support::*;
use crate::transfer::{Transfers, sha256_file, transfers_from};

/// A daemon copying into a local folder from download hosts that speak
/// only HTTPS, trusting `ca_file` when given.
async fn https_downloads(ca: &TestCa, ca_file: Option<&Path>) -> Transfers {
    let server = DownloadServer::start_tls(ca.server_tls(Alpn::Http2AndHttp1).unwrap())
        .await
        .unwrap();
    assert!(server.zoom_base().starts_with("https://"));
    transfers_from(server, |config| {
        // https only: a plain http:// hop would be refused.
        config.zoom.allow_insecure_downloads = false;
        config.transfer.max_attempts = 2;
        config.transfer.extra_ca_file = ca_file.map(Path::to_path_buf);
    })
    .await
}

/// Fails unless `job` failed because the server's certificate is not trusted.
#[track_caller]
fn assert_failed_on_the_certificate(job: &api::Job) {
    assert_eq!(state(job), api::JobState::Failed, "{}", job.message);
    assert!(
        job.message.contains("invalid peer certificate") && job.message.contains("UnknownIssuer"),
        "the failure should say the certificate is not trusted: {}",
        job.message
    );
}

fn recording(num_bytes: u64) -> SyntheticMedia {
    SyntheticMedia::mp4(
        num_bytes,
        std::time::Duration::from_secs(600),
        Mp4Layout::MoovAtEnd,
        1,
    )
}

/// Waits (up to 5 s) until `tls` has seen a client refuse its certificate.
async fn wait_for_failed_handshake(tls: &ServerTls) {
    for _ in 0..100 {
        if tls.failed_handshakes() >= 1 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no client ever refused the server's certificate");
}

fn state(job: &api::Job) -> api::JobState {
    api::JobState::try_from(job.state).unwrap()
}

#[tokio::test]
async fn downloads_over_https_succeed_with_the_configured_ca_and_reuse_connections() {
    let ca = TestCa::generate("Ferry test CA").unwrap();
    let ca_dir = tempfile::tempdir().unwrap();
    let ca_file = ca.write_ca_file(ca_dir.path()).unwrap();
    let mut transfers = https_downloads(&ca, Some(&ca_file)).await;

    // Two recordings, one after the other: the second must reuse the
    // connections the first opened to each host.
    for round in 1..=2 {
        let media = recording(12 * MIB + 321);
        let meeting = transfers.meeting(&media, media.len(), |_| {});
        let job = transfers.scene.ingest(&meeting).await;
        let done = transfers.wait_final(&job.job_id).await;
        assert_eq!(state(&done), api::JobState::Completed, "{}", done.message);
        assert_eq!(done.bytes_transferred, media.len());
        let objects = transfers.objects();
        assert_eq!(objects.len(), round, "{objects:?}");
        assert!(
            objects
                .iter()
                .any(|path| sha256_file(path) == media.sha256()),
            "no object holds the recording's bytes"
        );
        let server = &transfers.server;
        assert!(!server.stats(&meeting.files[0].id).cdn_saw_authorization);
        let zoom = server.zoom_tls().unwrap();
        let cdn = server.cdn_tls().unwrap();
        assert_eq!(
            (zoom.handshakes(), cdn.handshakes()),
            (1, 1),
            "TLS connections to the Zoom and CDN hosts after transfer {round}"
        );
        assert_eq!(zoom.failed_handshakes() + cdn.failed_handshakes(), 0);
    }
}

#[tokio::test]
async fn downloads_over_https_fail_with_a_certificate_error_without_the_ca() {
    let ca = TestCa::generate("Ferry test CA").unwrap();
    let mut transfers = https_downloads(&ca, None).await;
    let media = recording(6 * MIB);
    let meeting = transfers.meeting(&media, media.len(), |_| {});
    let job = transfers.scene.ingest(&meeting).await;
    let done = transfers.wait_final(&job.job_id).await;
    assert_failed_on_the_certificate(&done);
    assert!(transfers.objects().is_empty());
    let server = &transfers.server;
    let zoom = server.zoom_tls().unwrap();
    assert_eq!(
        zoom.handshakes(),
        0,
        "no TLS connection was ever established"
    );
    assert_eq!(server.stats(&meeting.files[0].id).content_requests, 0);
    // The server sees the refused handshake once the client's alert
    // arrives, which may be a moment after the job has failed.
    wait_for_failed_handshake(zoom).await;
}

/// moto behind the fault proxy, which terminates TLS with `ca`'s certificate.
async fn s3_over_tls(ca: &TestCa, trusted: bool) -> (S3Transfers, tempfile::TempDir) {
    let ca_dir = tempfile::tempdir().unwrap();
    let ca_file = ca.write_ca_file(ca_dir.path()).unwrap();
    let bucket = Bucket::start_tls(ca.server_tls(Alpn::Http1).unwrap()).await;
    assert!(bucket.proxy.endpoint().starts_with("https://"));
    let transfers = s3_transfers(bucket, |config: &mut Config| {
        config.transfer.parts_in_flight = 2;
        config.transfer.max_attempts = 2;
        config.transfer.extra_ca_file = trusted.then(|| ca_file.clone());
    })
    .await;
    (transfers, ca_dir)
}

#[tokio::test]
async fn s3_over_https_succeeds_with_the_configured_ca_and_reuses_connections() {
    let ca = TestCa::generate("Ferry test CA").unwrap();
    let (mut transfers, _ca_dir) = s3_over_tls(&ca, true).await;
    let proxy_tls = transfers.bucket.proxy.tls().unwrap().clone();
    let mut parts_uploaded = 0;
    for round in 1..=2 {
        // Four 5 MiB parts and a tail, two in flight.
        let media = recording(21 * MIB + 17);
        let meeting = transfers.meeting(&media, media.len(), |_| {});
        let job = transfers.scene.ingest(&meeting).await;
        let done = transfers.wait_final(&job.job_id).await;
        assert_eq!(state(&done), api::JobState::Completed, "{}", done.message);
        assert_eq!(done.bytes_transferred, media.len());
        let keys = transfers.bucket.object_keys().await;
        assert_eq!(keys.len(), round, "{keys:?}");
        let mut verified = false;
        for key in &keys {
            verified |= transfers.bucket.object_sha256(key).await == media.sha256();
        }
        assert!(verified, "no object holds the recording's bytes");
        parts_uploaded = transfers
            .bucket
            .proxy
            .count(ferry_test_support::s3_faults::S3Operation::UploadPart);
        // Parts go two at a time, so two connections carry every part, and
        // the second transfer opens none of its own. Two more are allowed:
        // the start-up clean-up's, and the one hyper's pool may race
        // against an idle connection coming back.
        assert!(
            proxy_tls.handshakes() <= 4,
            "{} TLS connections for {parts_uploaded} parts after transfer {round}",
            proxy_tls.handshakes()
        );
    }
    assert_eq!(parts_uploaded, 10);
    assert_eq!(proxy_tls.failed_handshakes(), 0);
}

#[tokio::test]
async fn s3_over_https_fails_with_a_certificate_error_without_the_ca() {
    let ca = TestCa::generate("Ferry test CA").unwrap();
    let (mut transfers, _ca_dir) = s3_over_tls(&ca, false).await;
    let media = recording(6 * MIB);
    let meeting = transfers.meeting(&media, media.len(), |_| {});
    let job = transfers.scene.ingest(&meeting).await;
    let done = transfers.wait_final(&job.job_id).await;
    assert_failed_on_the_certificate(&done);
    let proxy_tls = transfers.bucket.proxy.tls().unwrap();
    assert_eq!(proxy_tls.handshakes(), 0);
    wait_for_failed_handshake(proxy_tls).await;
    assert!(
        transfers.bucket.proxy.seen().is_empty(),
        "no request got through"
    );
    assert_eq!(transfers.bucket.object_keys().await, Vec::<String>::new());
}

#[tokio::test]
async fn a_bad_ca_file_stops_start_up_naming_the_setting_and_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("not-a-ca.pem");
    std::fs::write(&not_pem, "this is not a certificate\n").unwrap();
    let missing = dir.path().join("missing-ca.pem");
    for (path, expected) in [
        (&missing, format!("cannot read {}: ", missing.display())),
        (
            &not_pem,
            format!("{} holds no PEM certificate", not_pem.display()),
        ),
    ] {
        let mut config = test_config(&dir.path().join("data"));
        config.transfer.extra_ca_file = Some(path.clone());
        let error = match TestDaemon::start_with(config).await {
            Ok(_) => panic!("the daemon started with {}", path.display()),
            Err(error) => format!("{error:#}"),
        };
        assert!(
            error.starts_with(&format!("transfer.extra_ca_file: {expected}")),
            "{error}"
        );
    }

    // The real binary: exit code 1 and the same one-line error, no panic.
    let output = Command::new(env!("CARGO_BIN_EXE_ferry-under-test"))
        .arg("serve")
        .env_clear()
        .env("FERRY_DATA_DIR", dir.path().join("process-data"))
        .env("FERRY_GRPC_ADDR", "127.0.0.1:0")
        .env("FERRY_HTTP_ADDR", "127.0.0.1:0")
        .env("FERRY_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .env("FERRY_TRANSFER_EXTRA_CA_FILE", &missing)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "transfer.extra_ca_file: cannot read {}",
            missing.display()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
