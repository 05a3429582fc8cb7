//! `GET /metrics` after a scripted run: each number matches what happened,
//! and promtool accepts the page.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use ferry_control::api;
use ferry_zoomsim::{Mp4Layout, SyntheticMedia};

use crate::support::MIB;
use crate::transfer::{state, transfers};

/// The value of the sample `name{labels}` (labels in exposition order, or
/// none), or 0 when absent.
pub(crate) fn sample(page: &str, series: &str) -> f64 {
    page.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
        .unwrap_or(0.0)
}

/// Runs promtool's linter on a scrape. CI installs it (Debian's
/// `prometheus` package); without it this check cannot run.
fn promtool_check(page: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool not found: install Debian's `prometheus` package (.ci/run does)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_counts_exactly_what_happened() {
    let mut t = transfers(|c| {
        c.caps.max_file_bytes = 20 * MIB;
        c.transfer.download_requests_per_second = 1;
    })
    .await;

    // 1. A stream that passes the size cap although Zoom understated it.
    let big = SyntheticMedia::mp4(30 * MIB, Duration::from_secs(600), Mp4Layout::MoovAtEnd, 0);
    let meeting = t.meeting(&big, 10 * MIB, |_| {});
    let job = t.scene.ingest(&meeting).await;
    let done = t.wait_final(&job.job_id).await;
    assert_eq!(
        state(&done),
        (api::JobState::Skipped, api::SkipReason::TooLarge)
    );
    let page = t.scene.metrics().await;
    let (downloaded_0, uploaded_0) = (
        sample(&page, "ferry_downloaded_bytes_total"),
        sample(&page, "ferry_uploaded_bytes_total"),
    );

    // 2. Two recordings at once (the account's 1 download/s makes one wait),
    // one of them broken at 12 MiB and resumed.
    let a = SyntheticMedia::mp4(
        9 * MIB + 5,
        Duration::from_secs(600),
        Mp4Layout::FastStart,
        0,
    );
    let b = SyntheticMedia::mp4(17 * MIB, Duration::from_secs(900), Mp4Layout::FastStart, 0);
    let break_at = 12 * MIB + 99;
    let meeting_a = t.meeting(&a, a.len(), |_| {});
    let meeting_b = t.meeting(&b, b.len(), |f| f.reset_after = Some((break_at, 1)));
    let job_a = t.scene.ingest(&meeting_a).await;
    let job_b = t.scene.ingest(&meeting_b).await;
    for job in [&job_a, &job_b] {
        let done = t.wait_final(&job.job_id).await;
        assert_eq!(state(&done).0, api::JobState::Completed, "{}", done.message);
    }
    let resumed_at = t.server.stats(&meeting_b.files[0].id).range_starts[1];
    assert!(resumed_at > 0);

    // 3. A host with no user, and a forged signature.
    let mut stranger = t.scene.lecture(60);
    stranger.host_email = "nobody@example.edu".into();
    let skipped = t.scene.ingest(&stranger).await;
    assert_eq!(
        state(&skipped),
        (api::JobState::Skipped, api::SkipReason::NoMatchingUser)
    );
    let forged = t
        .scene
        .zoom
        .deliver_with(
            &meeting_a.recording_completed_body(),
            Some(&ferry_zoomsim::unix_now().to_string()),
            Some("v0=0000"),
        )
        .await
        .unwrap();
    assert_eq!(forged.status, 401);

    let page = t.scene.metrics().await;
    promtool_check(&page);
    let expect = |series: &str, value: f64| {
        assert_eq!(sample(&page, series), value, "{series}\n{page}");
    };
    expect(
        r#"ferry_webhook_requests_total{event="recording.completed",outcome="accepted"}"#,
        4.0,
    );
    expect(
        r#"ferry_webhook_requests_total{event="unknown",outcome="rejected_signature"}"#,
        1.0,
    );
    expect(
        r#"ferry_jobs_created_total{state="queued",reason="",source="webhook"}"#,
        3.0,
    );
    expect(
        r#"ferry_jobs_finished_total{state="completed",reason=""}"#,
        2.0,
    );
    expect(
        r#"ferry_jobs_finished_total{state="skipped",reason="too_large"}"#,
        1.0,
    );
    expect(
        r#"ferry_jobs_finished_total{state="skipped",reason="no_matching_user"}"#,
        1.0,
    );
    expect(r#"ferry_jobs{state="completed"}"#, 2.0);
    expect(r#"ferry_jobs{state="skipped"}"#, 2.0);
    expect(r#"ferry_jobs{state="queued"}"#, 0.0);
    expect("ferry_oldest_queued_job_age_seconds", 0.0);
    expect("ferry_active_transfers", 0.0);
    expect("ferry_resumed_transfers_total", 1.0);
    expect(r#"ferry_retries_total{stage="download"}"#, 1.0);
    expect(r#"ferry_cap_aborts_total{cap="size"}"#, 1.0);
    expect(
        r#"ferry_transfer_duration_seconds_count{outcome="completed"}"#,
        2.0,
    );
    expect(
        r#"ferry_transfer_duration_seconds_count{outcome="skipped"}"#,
        1.0,
    );
    // Parts are never sent twice: exactly both files went up after (1).
    expect(
        "ferry_uploaded_bytes_total",
        uploaded_0 + (a.len() + b.len()) as f64,
    );
    // Downloads: all of a, b until the break (the bytes in flight when the
    // connection reset may be lost), then b again from the resume point.
    let downloaded = sample(&page, "ferry_downloaded_bytes_total") - downloaded_0;
    let after_resume = (a.len() + b.len() - resumed_at) as f64;
    assert!(
        downloaded >= after_resume + resumed_at as f64
            && downloaded <= after_resume + break_at as f64,
        "{downloaded} bytes downloaded; resumed at {resumed_at}, broke at {break_at}"
    );
    expect(
        &format!(
            r#"ferry_build_info{{version="{}"}}"#,
            env!("CARGO_PKG_VERSION")
        ),
        1.0,
    );
    assert!(sample(&page, "ferry_part_upload_seconds_count") >= 6.0);
    assert!(sample(&page, "ferry_store_commit_seconds_count") > 0.0);
    assert!(sample(&page, "ferry_webhook_ack_seconds_count") >= 5.0);
    assert!(
        sample(
            &page,
            r#"ferry_rate_limit_wait_seconds_count{limiter="account_downloads"}"#
        ) >= 1.0,
        "{page}"
    );
    for line in page.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            !line.contains("example.edu") && !line.contains(&meeting_a.uuid),
            "no emails or uuids in labels: {line}"
        );
    }
    let _ = t.scene.daemon.stop().await;
}

#[tokio::test]
async fn metrics_can_move_to_an_admin_listener() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ferry_test_support::daemon::test_config(dir.path());
    config.metrics.addr = Some("127.0.0.1:0".parse().unwrap());
    let daemon = ferry_test_support::daemon::TestDaemon::start_with(config)
        .await
        .unwrap();
    let admin = daemon.app.metrics_addr.expect("admin listener bound");
    let get = |addr: std::net::SocketAddr| async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(
            &mut stream,
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
        let mut answer = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut answer)
            .await
            .unwrap();
        answer
    };
    let page = get(admin).await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("ferry_build_info"), "{page}");
    let main = get(daemon.app.http_addr).await;
    assert!(main.starts_with("HTTP/1.1 404"), "{main}");
    let _ = daemon.stop().await;
}
