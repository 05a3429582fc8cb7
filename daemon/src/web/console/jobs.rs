//! The jobs page: filters (state, skip reason, account, host email), each
//! skip with its message and a Retry button, and live progress: the page's
//! script follows `/admin/jobs/events`, Server-Sent Events made from the
//! very stream `WatchJobs` serves (same events, same scoping). Without
//! JavaScript the page still lists, filters and retries.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use ferry_control::api;
use ferry_control::api::job_service_server::JobService;
use futures::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::{Response, StatusCode};
use maud::html;

use super::super::session::Session;
use super::super::{Web, WebRequest, WebResponse, redirect};
use super::{ok_page, page, refusal, time};

/// A comment line this often keeps proxies from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

const STATES: [&str; 6] = [
    "queued",
    "transferring",
    "completed",
    "skipped",
    "failed",
    "cancelled",
];
const SKIP_REASONS: [&str; 5] = [
    "no_matching_user",
    "recorded_before_install",
    "too_long",
    "too_large",
    "no_downloadable_file",
];

pub(crate) fn state_name(state: i32) -> String {
    api::JobState::try_from(state)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("JOB_STATE_")
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

fn skip_name(reason: i32) -> String {
    api::SkipReason::try_from(reason)
        .ok()
        .filter(|r| *r != api::SkipReason::Unspecified)
        .map(|r| {
            r.as_str_name()
                .trim_start_matches("SKIP_REASON_")
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

pub(crate) async fn list(web: &Web, session: &Session, request: &WebRequest) -> WebResponse {
    let state = request.query("state").unwrap_or_default().to_string();
    let skip = request.query("skip_reason").unwrap_or_default().to_string();
    let account = request.query("account").unwrap_or_default().to_string();
    let host = request.query("host_email").unwrap_or_default().to_string();
    let states = api::JobState::from_str_name(&format!("JOB_STATE_{}", state.to_ascii_uppercase()))
        .map(|s| vec![s as i32])
        .unwrap_or_default();
    let skip_reason =
        api::SkipReason::from_str_name(&format!("SKIP_REASON_{}", skip.to_ascii_uppercase()))
            .map_or(0, |r| r as i32);
    let listed = answer!(
        web.apis
            .jobs
            .list_jobs(session.request(api::ListJobsRequest {
                institution_id: session.institution_id.clone(),
                states,
                skip_reason,
                zoom_account_id: account.clone(),
                host_email: host.clone(),
                create_time: None,
                page: page(100),
                // Any source: the console filters by state, reason, account and host.
                source: api::JobSource::Unspecified as i32,
            }))
    );
    ok_page(
        session,
        "jobs",
        "Jobs",
        html! {
            form.inline method="get" action="/admin/jobs" {
                label for="state" { "State" }
                select id="state" name="state" {
                    option value="" { "any" }
                    @for s in STATES { option value=(s) selected[s == state] { (s) } }
                }
                label for="skip_reason" { "Skip reason" }
                select id="skip_reason" name="skip_reason" {
                    option value="" { "any" }
                    @for r in SKIP_REASONS { option value=(r) selected[r == skip] { (r) } }
                }
                label for="account" { "Zoom account" }
                input id="account" type="text" name="account" value=(account);
                label for="host_email" { "Host email" }
                input id="host_email" type="email" name="host_email" value=(host);
                button type="submit" { "Filter" }
            }
            table id="jobs" data-events="/admin/jobs/events" {
                thead { tr { th { "Recording" } th { "Host" } th { "State" } th { "Progress" } th { "Message" } th {} } }
                tbody {
                    @for j in &listed.jobs {
                        tr id={ "job-" (j.job_id) } data-job=(j.job_id) {
                            td { (j.topic) br; small { (time(j.meeting_start_time.as_ref())) } }
                            td { (j.host_email) }
                            td.state { (state_name(j.state)) @let s = skip_name(j.skip_reason); @if !s.is_empty() { br; small { (s) } } }
                            td { progress value=(j.bytes_transferred) max=(j.total_bytes.max(1)) { (j.bytes_transferred) " / " (j.total_bytes) } }
                            td.message { (j.message) }
                            td {
                                @if matches!(state_name(j.state).as_str(), "skipped" | "failed" | "cancelled") {
                                    form method="post" action={ "/admin/jobs/" (j.job_id) "/retry" } {
                                        input type="hidden" name="csrf" value=(session.csrf);
                                        button type="submit" { "Retry" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

pub(crate) async fn retry(web: &Web, session: &Session, id: &str) -> WebResponse {
    let retried = web
        .apis
        .jobs
        .retry_job(session.request(api::RetryJobRequest {
            job_id: id.to_string(),
            institution_id: session.institution_id.clone(),
        }))
        .await;
    match retried {
        Ok(_) => redirect("/admin/jobs"),
        Err(status) => refusal(&status),
    }
}

/// One job event as the page's script reads it.
fn event_data(event: &api::JobEvent) -> Option<String> {
    let job = event.job.as_ref()?;
    Some(
        serde_json::json!({
            "job_id": job.job_id,
            "topic": job.topic,
            "host_email": job.host_email,
            "state": state_name(job.state),
            "skip_reason": skip_name(job.skip_reason),
            "message": job.message,
            "bytes_transferred": job.bytes_transferred,
            "total_bytes": job.total_bytes,
            "progress_only": event.progress_only,
        })
        .to_string(),
    )
}

/// `GET /admin/jobs/events`: the session's `WatchJobs` stream as SSE.
pub(crate) async fn events(web: &Web, session: &Session) -> WebResponse {
    let watched = web
        .apis
        .jobs
        .watch_jobs(session.request(api::WatchJobsRequest {
            institution_id: session.institution_id.clone(),
            job_id: String::new(),
        }))
        .await;
    let stream = match watched {
        Ok(stream) => stream.into_inner(),
        Err(status) => {
            return Response::builder()
                .status(match status.code() {
                    tonic::Code::Unauthenticated => StatusCode::UNAUTHORIZED,
                    _ => StatusCode::SERVICE_UNAVAILABLE,
                })
                .body(super::super::body(Bytes::new()))
                .expect("status response");
        }
    };
    let shutdown = web.shutdown.clone();
    let events = stream
        .take_until(async move { shutdown.cancelled().await })
        .filter_map(|event| async move {
            event
                .ok()
                .as_ref()
                .and_then(event_data)
                .map(|data| format!("data: {data}\n\n"))
        });
    let keep_alive = tokio_stream::wrappers::IntervalStream::new(tokio::time::interval(KEEP_ALIVE))
        .map(|_| ": keep-alive\n\n".to_string());
    // The events' end (shutdown, or the watch ending) ends the stream; the
    // keep-alive alone never would.
    let events = events
        .map(Some)
        .chain(futures::stream::once(futures::future::ready(None)));
    let merged = futures::stream::select(events, keep_alive.map(Some))
        .take_while(|item| futures::future::ready(item.is_some()))
        .map(|item| Ok::<_, Infallible>(Frame::data(Bytes::from(item.unwrap_or_default()))));
    Response::builder()
        .header(http::header::CONTENT_TYPE, "text/event-stream")
        .body(StreamBody::new(merged).boxed_unsync())
        .expect("event stream response")
}
