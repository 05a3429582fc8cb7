//! `ferry-zoomsim`: a Zoom simulator for the demo, the tests and the
//! benchmarks. It builds `recording.completed` payloads shaped like ZOOM.md's
//! example (stop/start segments, separate views with `(CC)` suffixes,
//! `processing` files, uuids with `/` and `+`), signs them exactly as Zoom
//! does, delivers them over real HTTP to a daemon on loopback, and serves the
//! recordings' bytes from simulated download hosts.
//!
//! It plays Zoom and nothing else: it knows Ferry only through Ferry's public
//! interfaces (the webhook endpoint, the download and API URLs Ferry is
//! configured with), never through the daemon's code, and it must never be
//! used by the daemon's production code (only `ferry demo` drives it).

pub mod downloads;
pub mod marketplace;
pub mod media;
mod payload;
mod signature;
pub mod tls;
pub mod trash;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub use marketplace::{BASIC_USER, LICENSED_USER, MarketplaceStats, ZoomUser};
pub use media::{Mp4Layout, SyntheticMedia};
pub use payload::{FileSpec, Meeting, random_meeting_uuid};
pub use signature::sign;
pub use trash::TrashedMeeting;

/// Sizes of recordings in bytes, as the demo, the tests and the benches
/// count them (`ferry-test-support` re-exports them).
pub const MIB: u64 = 1024 * 1024;
pub const GIB: u64 = 1024 * MIB;

/// An answer from the daemon.
#[derive(Debug)]
pub struct Delivery {
    pub status: u16,
    pub body: serde_json::Value,
}

impl Delivery {
    pub fn job_id(&self) -> Option<&str> {
        self.body.get("job_id").and_then(|v| v.as_str())
    }

    pub fn state(&self) -> Option<&str> {
        self.body.get("state").and_then(|v| v.as_str())
    }

    /// Whether the daemon found the job already made by an earlier delivery.
    pub fn duplicate(&self) -> Option<bool> {
        self.body.get("duplicate").and_then(|v| v.as_bool())
    }
}

/// Sends webhooks to one daemon, as the Zoom app with `secret`.
#[derive(Clone)]
pub struct ZoomSimulator {
    secret: String,
    webhook_url: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

pub fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl ZoomSimulator {
    /// `http_addr` is the daemon's HTTP listener on loopback.
    pub fn new(http_addr: std::net::SocketAddr, secret: &str) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        ZoomSimulator {
            secret: secret.to_string(),
            webhook_url: format!("http://{http_addr}/zoom/webhook"),
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// Signs `body` now and posts it.
    pub async fn deliver(&self, body: &[u8]) -> anyhow::Result<Delivery> {
        let timestamp = unix_now();
        let signature = sign(&self.secret, timestamp, body);
        self.deliver_with(body, Some(&timestamp.to_string()), Some(&signature))
            .await
    }

    /// Posts `body` with exactly these signature headers (absent when None).
    pub async fn deliver_with(
        &self,
        body: &[u8],
        timestamp: Option<&str>,
        signature: Option<&str>,
    ) -> anyhow::Result<Delivery> {
        let mut request =
            hyper::Request::post(&self.webhook_url).header("content-type", "application/json");
        if let Some(timestamp) = timestamp {
            request = request.header("x-zm-request-timestamp", timestamp);
        }
        if let Some(signature) = signature {
            request = request.header("x-zm-signature", signature);
        }
        let response = self
            .client
            .request(request.body(Full::new(Bytes::copy_from_slice(body)))?)
            .await?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Ok(Delivery { status, body })
    }

    /// Delivers a `recording.completed` for `meeting`.
    pub async fn recording_completed(&self, meeting: &Meeting) -> anyhow::Result<Delivery> {
        self.deliver(&meeting.recording_completed_body()).await
    }

    /// Delivers `recording.transcript_completed` for `meeting`: `transcript`
    /// (a `FileSpec::transcript`), with its own `download_token`.
    pub async fn transcript_completed(
        &self,
        meeting: &Meeting,
        transcript: &FileSpec,
        download_token: &str,
    ) -> anyhow::Result<Delivery> {
        self.deliver(&meeting.transcript_completed_body(transcript, download_token))
            .await
    }

    /// Delivers `recording.deleted` or `recording.trashed` (`event`) for `meeting`.
    pub async fn recording_removed(
        &self,
        meeting: &Meeting,
        event: &str,
    ) -> anyhow::Result<Delivery> {
        self.deliver(&meeting.removed_body(event)).await
    }

    /// Delivers `app_deauthorized` for `account_id`.
    pub async fn deauthorize(&self, account_id: &str) -> anyhow::Result<Delivery> {
        let body = serde_json::json!({
            "event": "app_deauthorized",
            "event_ts": unix_now() * 1000,
            "payload": { "account_id": account_id, "user_id": "z8yCxTTTTSiw02QgCAp8uQ",
                "signature": "deauth-signature", "deauthorization_time": "2026-11-28T09:00:00Z",
                "client_id": "ferry-app" }
        });
        self.deliver(body.to_string().as_bytes()).await
    }

    /// Delivers the endpoint validation challenge.
    pub async fn validate_endpoint(&self, plain_token: &str) -> anyhow::Result<Delivery> {
        let body = serde_json::json!({
            "event": "endpoint.url_validation",
            "payload": { "plainToken": plain_token },
            "event_ts": unix_now() * 1000,
        });
        self.deliver(body.to_string().as_bytes()).await
    }

    /// The URL webhooks go to.
    pub fn webhook_url(&self) -> &str {
        &self.webhook_url
    }
}
