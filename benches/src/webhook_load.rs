//! Signed webhooks on the wire, for the benches that load the intake: each
//! body signed as Zoom would, posted over pooled keep-alive connections with
//! TCP_NODELAY, and an open loop at a fixed rate whose latencies run from
//! each webhook's scheduled send time (so a slow answer cannot hide the ones
//! queued behind it). It measures nothing by itself.

use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use ferry_control::model::Timestamp;
use ferry_test_support::daemon::WEBHOOK_SECRET;
use ferry_test_support::scene::{ACCOUNT, HOST};
use ferry_zoomsim::Meeting;
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderValue;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// No single request may hang the bench; Zoom itself gives up after 3 s.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A webhook body with its signature headers, ready to post.
pub struct SignedWebhook {
    body: Bytes,
    timestamp: HeaderValue,
    signature: HeaderValue,
}

/// Signs every body with the current time, as Zoom would just before sending.
pub fn sign_all(bodies: Vec<Bytes>) -> anyhow::Result<Vec<SignedWebhook>> {
    let unix_seconds = ferry_zoomsim::unix_now();
    let timestamp = HeaderValue::from_str(&unix_seconds.to_string())?;
    bodies
        .into_iter()
        .map(|body| {
            let signature =
                HeaderValue::from_str(&ferry_zoomsim::sign(WEBHOOK_SECRET, unix_seconds, &body))?;
            Ok(SignedWebhook {
                body,
                timestamp: timestamp.clone(),
                signature,
            })
        })
        .collect()
}

/// A lecture of the bench host. Its download URLs point at a closed
/// loopback port: the intake never fetches them, and should a transfer
/// engine pick the job up, the address is refused (an IP literal outside the
/// allowlist) or at worst fails on loopback, never reaching Zoom.
pub fn lecture(start: Timestamp) -> Meeting {
    let mut meeting = Meeting::lecture(ACCOUNT, HOST, start);
    meeting.download_base = "https://127.0.0.1:9".into();
    meeting
}

/// Distinct lectures, each one job.
pub fn lecture_bodies(count: u64, start: Timestamp) -> Vec<Bytes> {
    (0..count)
        .map(|_| Bytes::from(lecture(start).recording_completed_body()))
        .collect()
}

/// Posts pre-signed webhooks over pooled keep-alive connections.
#[derive(Clone)]
pub struct WebhookPoster {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: hyper::Uri,
}

impl WebhookPoster {
    pub fn new(http_addr: std::net::SocketAddr) -> anyhow::Result<Self> {
        anyhow::ensure!(
            http_addr.ip().is_loopback(),
            "the daemon must listen on loopback"
        );
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Ok(WebhookPoster {
            client: Client::builder(TokioExecutor::new()).build(connector),
            uri: format!("http://{http_addr}/zoom/webhook").parse()?,
        })
    }

    /// Posts one webhook; Ok only for a 200 that committed a new queued job.
    pub async fn post(&self, webhook: &SignedWebhook) -> anyhow::Result<()> {
        let request = hyper::Request::post(self.uri.clone())
            .header("content-type", "application/json")
            .header("x-zm-request-timestamp", webhook.timestamp.clone())
            .header("x-zm-signature", webhook.signature.clone())
            .body(Full::new(webhook.body.clone()))?;
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, body))
        })
        .await
        .context("webhook not answered within 10 s")??;
        let (status, body) = answer;
        let text = String::from_utf8_lossy(&body);
        anyhow::ensure!(
            status == hyper::StatusCode::OK,
            "webhook answered {status}: {text}"
        );
        let answer: serde_json::Value = serde_json::from_slice(&body)?;
        anyhow::ensure!(
            answer["state"] == "queued" && answer["duplicate"] == false,
            "webhook answered 200 without a new queued job: {text}"
        );
        Ok(())
    }
}

pub struct LatencyResult {
    /// Scheduled send time to answer, sorted ascending.
    pub latencies: Vec<Duration>,
    /// Phase start to the last send: the offered rate actually achieved.
    pub sending: Duration,
    /// Phase start to the last answer.
    pub elapsed: Duration,
}

impl LatencyResult {
    /// Nearest-rank percentile.
    pub fn percentile(&self, percent: usize) -> Duration {
        let rank = (self.latencies.len() * percent).div_ceil(100).max(1);
        self.latencies[rank - 1]
    }
}

/// Phase B: webhook `i` is due at `start + i / rate` and is sent on its own
/// task then, whether or not earlier ones have been answered.
pub async fn open_loop(
    poster: &WebhookPoster,
    webhooks: Vec<SignedWebhook>,
    rate: u64,
) -> anyhow::Result<LatencyResult> {
    let interval_nanos = 1_000_000_000 / rate;
    let started = tokio::time::Instant::now();
    let mut requests = Vec::with_capacity(webhooks.len());
    for (i, webhook) in webhooks.into_iter().enumerate() {
        let scheduled = started + Duration::from_nanos(interval_nanos * i as u64);
        tokio::time::sleep_until(scheduled).await;
        let poster = poster.clone();
        requests.push(tokio::spawn(async move {
            poster.post(&webhook).await?;
            anyhow::Ok(scheduled.elapsed())
        }));
    }
    // One interval past the last send, so n sends on time read as the rate.
    let sending = started.elapsed() + Duration::from_nanos(interval_nanos);
    let mut latencies = Vec::with_capacity(requests.len());
    for request in requests {
        latencies.push(request.await??);
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    Ok(LatencyResult {
        latencies,
        sending,
        elapsed,
    })
}
