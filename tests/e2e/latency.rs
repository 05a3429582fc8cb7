//! Answers are never held back by Nagle's algorithm: a client calling one
//! RPC after another over loopback gets each answer in about a millisecond,
//! not after the peer's ~40 ms delayed ACK; and reflection answers tools
//! that speak only `grpc.reflection.v1alpha`.

use std::time::{Duration, Instant};

use ferry_control::api;
use ferry_control::model::{JobSource, JobState, NewJob, Timestamp};

use crate::support::*;

/// Jobs stored straight through the daemon's store (the intake's path is
/// not what these tests are about).
async fn store_jobs(daemon: &TestDaemon, institution_id: &str, count: usize) {
    let writes = (0..count).map(|i| {
        daemon.app.store.upsert_job(NewJob {
            institution_id: institution_id.to_string(),
            zoom_account_id: "acct-latency".into(),
            meeting_uuid: format!("uuid-{i}"),
            meeting_id: i as u64,
            topic: format!("Lecture {i}"),
            host_email: "host@example.edu".into(),
            meeting_start: None,
            state: JobState::Queued,
            skip_reason: None,
            message: String::new(),
            owner_user_id: None,
            recording_file: None,
            skipped_file_count: 0,
            skipped_segment_count: 0,
            sealed_download_url: None,
            sealed_download_token: None,
            sealed_recording: None,
            event_time: Timestamp(1_000),
            now: Timestamp(1_000),
            source: JobSource::Webhook,
        })
    });
    for result in futures::future::join_all(writes).await {
        result.expect("store a job");
    }
}

/// Twenty pages, each followed by another, one call after the other. With
/// Nagle on the accepted socket each call waited ~40 ms (800 ms in all);
/// the bound leaves an order of magnitude of slack for a loaded machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_list_jobs_pages_are_not_held_back_by_nagle() {
    let daemon = TestDaemon::start().await.unwrap();
    let mut operator = daemon.operator().await.unwrap();
    let institution = create_institution(&mut operator, "Latency U")
        .await
        .unwrap();
    store_jobs(&daemon, &institution.institution_id, 250).await;
    let mut admin = daemon.clients(Some(&institution.admin_key)).await.unwrap();

    let mut page_token = String::new();
    let mut next_page = async || {
        let response = admin
            .jobs
            .list_jobs(api::ListJobsRequest {
                page: Some(api::PageRequest {
                    page_size: 10,
                    page_token: page_token.clone(),
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(response.jobs.len(), 10);
        page_token = response.page.unwrap_or_default().next_page_token;
        assert!(!page_token.is_empty(), "another page follows");
    };
    // The first call warms the connection (HTTP/2 settings, pooled readers).
    next_page().await;
    let started = Instant::now();
    for _ in 0..20 {
        next_page().await;
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_millis(400),
        "20 sequential ListJobs calls took {elapsed:?}: are answers waiting on delayed ACKs?"
    );
    let _ = daemon.stop().await;
}

#[tokio::test]
async fn a_v1alpha_reflection_client_lists_the_services() {
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
    let daemon = TestDaemon::start().await.unwrap();
    let channel = tonic::transport::Endpoint::from_shared(daemon.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut reflection = ServerReflectionClient::new(channel);
    let request = tonic_reflection::pb::v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer {response:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in ferry_control::service::SERVICE_NAMES {
        assert!(
            names.contains(&expected.to_string()),
            "{expected} missing from {names:?}"
        );
    }
    let _ = daemon.stop().await;
}
