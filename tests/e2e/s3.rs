//! The object sinks' conformance suite (`ferry_daemon::transfer::sink::
//! conformance`) run against the S3 sink, plus what only the S3 sink can get
//! wrong: signatures, unreachable endpoints, throttling, checksums. (The
//! local-folder sink runs the suite beside its own code.)
//!
//! The S3 side is a real S3-protocol server on 127.0.0.1: s3s-fs made
//! strict where it falls short of S3 (`ferry_test_support::strict_s3`), so
//! the sink's requests go through aws-sdk-s3, signing, hyper and TCP as in
//! production.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use ferry_control::secrets::Secret;
use ferry_daemon::transfer::sink::conformance::{self, part_of, pseudo_random_bytes};
use ferry_daemon::transfer::sink::{ObjectSink, S3Settings, S3Sink, SinkError};
use ferry_test_support::strict_s3::StrictS3;

#[tokio::test]
async fn s3_sink_passes_the_sink_suite() {
    let server = StrictS3::start(true).await;
    let sink = S3Sink::new(server.settings()).unwrap();
    assert_eq!(sink.kind(), "s3");
    let read_object = |key: &str| server.read_object(key);
    conformance::run_all(&sink, &read_object).await;
    assert_eq!(
        server.controls.checksums_seen.load(Ordering::SeqCst),
        server.controls.parts_seen.load(Ordering::SeqCst),
        "every part carried its CRC32C"
    );
}

// ---------------------------------------------------------------------------
// What only the S3 sink can get wrong.

#[tokio::test]
async fn s3_wrong_secret_key_is_permanent_and_names_the_s3_error() {
    let server = StrictS3::start(true).await;
    let mut settings = server.settings();
    settings.secret_access_key = Secret::new("not-the-secret-key-at-all");
    let sink = S3Sink::new(settings).unwrap();

    let created = sink.create_upload("k/wrong-secret.mp4", "video/mp4").await;
    let Err(SinkError::Permanent(message)) = created else {
        panic!("expected a permanent error, got {created:?}");
    };
    assert!(message.contains("SignatureDoesNotMatch"), "{message}");
    assert!(message.contains("CreateMultipartUpload"), "{message}");
    assert!(!message.contains("not-the-secret-key"), "{message}");
}

#[tokio::test]
async fn s3_refused_connection_is_transient() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let sink = S3Sink::new(S3Settings {
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        ..StrictS3::settings_for("http://127.0.0.1:1".into())
    })
    .unwrap();

    let created = sink.create_upload("k/refused.mp4", "video/mp4").await;
    let Err(SinkError::Transient { message, .. }) = created else {
        panic!("expected a transient error, got {created:?}");
    };
    assert!(message.contains("CreateMultipartUpload"), "{message}");
    assert!(message.contains("refused"), "{message}");
    let part = part_of(1, 0, Bytes::from_static(b"tail"));
    let uploaded = sink.upload_part("k/refused.mp4", "some-id", &part).await;
    assert!(
        matches!(uploaded, Err(SinkError::Transient { .. })),
        "{uploaded:?}"
    );
}

/// UploadPart runs without SDK retries, so one throttled answer reaches the
/// engine with its Retry-After; control requests keep the SDK's retries.
#[tokio::test]
async fn s3_throttling_is_transient_with_retry_after() {
    let server = StrictS3::start(true).await;
    let sink = S3Sink::new(server.settings()).unwrap();
    let key = "k/throttled.mp4";

    server.controls.throttle_next.store(1, Ordering::SeqCst);
    let upload_id = sink.create_upload(key, "video/mp4").await.unwrap();
    assert_eq!(server.controls.throttle_next.load(Ordering::SeqCst), 0);

    server.controls.throttle_next.store(1, Ordering::SeqCst);
    let part = part_of(1, 0, pseudo_random_bytes(10_000, 3));
    let uploaded = sink.upload_part(key, &upload_id, &part).await;
    let Err(SinkError::Transient {
        message,
        retry_after,
    }) = uploaded
    else {
        panic!("expected a transient error, got {uploaded:?}");
    };
    assert_eq!(retry_after, Some(Duration::from_secs(3)));
    assert!(message.contains("SlowDown"), "{message}");
    assert!(message.contains("UploadPart"), "{message}");
    // The same part goes through on the engine's next attempt.
    sink.upload_part(key, &upload_id, &part).await.unwrap();
    sink.abort_upload(key, &upload_id).await.unwrap();
}

#[tokio::test]
async fn s3_part_with_a_wrong_crc32c_is_refused_only_when_checksums_are_on() {
    let server = StrictS3::start(true).await;
    let key = "k/corrupt.mp4";
    let mut part = part_of(1, 0, pseudo_random_bytes(50_000, 5));
    part.crc32c ^= 1;

    let sink = S3Sink::new(server.settings()).unwrap();
    let upload_id = sink.create_upload(key, "video/mp4").await.unwrap();
    let uploaded = sink.upload_part(key, &upload_id, &part).await;
    let Err(SinkError::Permanent(message)) = uploaded else {
        panic!("expected a permanent error, got {uploaded:?}");
    };
    assert!(message.contains("BadDigest"), "{message}");
    assert!(sink.list_parts(key, &upload_id).await.unwrap().is_empty());
    sink.abort_upload(key, &upload_id).await.unwrap();

    // With checksums off the sink sends none, so the server cannot object.
    let mut settings = server.settings();
    settings.checksums = false;
    let sink = S3Sink::new(settings).unwrap();
    let upload_id = sink.create_upload(key, "video/mp4").await.unwrap();
    let seen_before = server.controls.checksums_seen.load(Ordering::SeqCst);
    sink.upload_part(key, &upload_id, &part).await.unwrap();
    assert_eq!(
        server.controls.checksums_seen.load(Ordering::SeqCst),
        seen_before
    );
    sink.abort_upload(key, &upload_id).await.unwrap();
}

/// Plain s3s-fs has no ListMultipartUploads; the sink says so plainly.
#[tokio::test]
async fn s3_server_without_list_multipart_uploads_is_a_clear_permanent_error() {
    let server = StrictS3::start(false).await;
    let sink = S3Sink::new(server.settings()).unwrap();
    let listed = sink.list_uploads("k/").await;
    let Err(SinkError::Permanent(message)) = listed else {
        panic!("expected a permanent error, got {listed:?}");
    };
    assert!(message.contains("ListMultipartUploads"), "{message}");
    assert!(message.contains("NotImplemented"), "{message}");
}
