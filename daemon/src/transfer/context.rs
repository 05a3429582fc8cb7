//! What every stage of a transfer reads: the engine's settings, the
//! connections it talks through (store, sink, Zoom) and the shared limits.
//! Built once by the engine and passed down by reference; no stage depends
//! on the engine itself.

use std::sync::Arc;
use std::time::Duration;

use ferry_control::rules::CapsPolicy;
use ferry_control::secrets::SecretBox;
use ferry_control::store::{LeaseHolder, Store};

use super::budget::Limits;
use super::download::Downloader;
use super::retry::RetryPolicy;
use super::sink::ObjectSink;
use super::zoom_api::ZoomApi;

/// How the engine runs; see the README's `[transfer]` settings.
#[derive(Clone, Debug)]
pub struct TransferSettings {
    pub worker_id: String,
    pub max_concurrent: usize,
    /// Bytes of downloaded data all transfers together may hold.
    pub byte_budget: u64,
    pub part_size: u64,
    pub parts_in_flight: usize,
    pub lease: Duration,
    pub heartbeat: Duration,
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub stall_timeout: Duration,
    /// Download requests per second per Zoom account.
    pub download_requests_per_second: u32,
    /// Global download bandwidth; None is unlimited.
    pub bandwidth_bytes_per_second: Option<u64>,
    /// Requests per second to the sink; None is unlimited.
    pub sink_requests_per_second: Option<u32>,
    pub key_prefix: String,
    pub caps: CapsPolicy,
    /// How often an idle engine looks for work it was not told about.
    pub poll_interval: Duration,
    /// `[companions]`: whether companion files are copied, and their cap.
    pub companions: super::companion::CompanionSettings,
}

impl TransferSettings {
    /// The retry policy of whole attempts and of single part uploads alike.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts.max(1),
            backoff_base: self.backoff_base,
        }
    }
}

/// What the engine talks to.
pub struct Connections {
    pub store: Arc<dyn Store>,
    pub secret_box: SecretBox,
    pub sink: Arc<dyn ObjectSink>,
    pub downloader: Downloader,
    pub zoom_api: Arc<ZoomApi>,
    /// Marketplace accounts' OAuth tokens, when the app is configured.
    pub marketplace: Option<Arc<crate::marketplace::Marketplace>>,
}

/// What every transfer shares.
pub struct Context {
    pub store: Arc<dyn Store>,
    pub secret_box: SecretBox,
    pub sink: Arc<dyn ObjectSink>,
    pub downloader: Downloader,
    pub zoom_api: Arc<ZoomApi>,
    pub marketplace: Option<Arc<crate::marketplace::Marketplace>>,
    pub settings: TransferSettings,
    pub limits: Limits,
}

impl Context {
    /// This worker, as the holder of `job_id`'s lease that fences its writes.
    pub fn holder<'a>(&'a self, job_id: &'a str) -> LeaseHolder<'a> {
        LeaseHolder {
            job_id,
            worker_id: &self.settings.worker_id,
        }
    }
}
