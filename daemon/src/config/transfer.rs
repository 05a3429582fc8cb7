//! `[transfer]` and `[s3]`: how recordings are copied and where to. Converts
//! into the engine's `TransferSettings` and the S3 sink's `S3Settings`;
//! never builds a sink or a client itself (the app does, at build).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use ferry_control::rules::CapsPolicy;
use ferry_control::secrets::Secret;
use serde::{Deserialize, Serialize};

use crate::transfer::engine::TransferSettings;
use crate::transfer::sink::S3Settings;
use crate::transfer::trust::ClientTrust;

/// Where copied recordings go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// A folder (`transfer.local_dir`).
    #[default]
    Local,
    /// An S3-compatible bucket (`[s3]`).
    S3,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransferConfig {
    /// Run the transfer engine in this daemon.
    pub enabled: bool,
    /// `local` (a folder) or `s3`.
    pub sink: SinkKind,
    /// The local sink's folder; defaults to `<data_dir>/media`.
    pub local_dir: Option<PathBuf>,
    /// Object keys start with this.
    pub key_prefix: String,
    pub max_concurrent: usize,
    pub byte_budget_bytes: u64,
    pub part_size_bytes: u64,
    pub parts_in_flight: usize,
    pub lease_secs: u64,
    pub heartbeat_secs: u64,
    pub max_attempts: u32,
    pub backoff_base_ms: u64,
    pub stall_timeout_secs: u64,
    pub connect_timeout_secs: u64,
    pub download_requests_per_second: u32,
    /// 0 is unlimited.
    pub bandwidth_bytes_per_second: u64,
    /// 0 is unlimited.
    pub sink_requests_per_second: u32,
    /// A PEM bundle of CA certificates trusted in addition to the built-in
    /// roots, for Zoom (downloads and API calls) and for S3. Read when the
    /// daemon starts; verification itself can never be turned off.
    pub extra_ca_file: Option<PathBuf>,
}

/// The S3 sink (`transfer.sink = "s3"`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// Base URL of an S3-compatible server; empty for AWS S3 itself.
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    pub path_style: bool,
    pub access_key_id: String,
    #[serde(skip_serializing)]
    pub secret_access_key: Option<Secret>,
    #[serde(skip_serializing)]
    pub session_token: Option<Secret>,
    /// Per-part CRC32C checksums; turn off for stores that reject them.
    pub checksums: bool,
}

impl Default for TransferConfig {
    fn default() -> Self {
        TransferConfig {
            enabled: true,
            sink: SinkKind::Local,
            local_dir: None,
            key_prefix: "recordings".into(),
            max_concurrent: 4,
            byte_budget_bytes: 256 * 1024 * 1024,
            part_size_bytes: 16 * 1024 * 1024,
            parts_in_flight: 4,
            lease_secs: 60,
            heartbeat_secs: 10,
            max_attempts: 5,
            backoff_base_ms: 500,
            stall_timeout_secs: 30,
            connect_timeout_secs: 10,
            download_requests_per_second: 10,
            bandwidth_bytes_per_second: 0,
            sink_requests_per_second: 0,
            extra_ca_file: None,
        }
    }
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            endpoint: None,
            region: "us-east-1".into(),
            bucket: String::new(),
            path_style: false,
            access_key_id: String::new(),
            secret_access_key: None,
            session_token: None,
            checksums: true,
        }
    }
}

impl TransferConfig {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if self.part_size_bytes < 5 * 1024 * 1024 {
            bail!("transfer.part_size_bytes: must be at least 5 MiB (S3's minimum part size)");
        }
        if self.max_concurrent == 0 || self.parts_in_flight == 0 || self.max_attempts == 0 {
            bail!("transfer: max_concurrent, parts_in_flight and max_attempts must be at least 1");
        }
        if self.byte_budget_bytes < self.part_size_bytes {
            bail!(
                "transfer.byte_budget_bytes: must hold at least one part (transfer.part_size_bytes)"
            );
        }
        if self.heartbeat_secs == 0 || self.heartbeat_secs >= self.lease_secs {
            bail!(
                "transfer.heartbeat_secs: must be at least 1 and shorter than transfer.lease_secs"
            );
        }
        if self.download_requests_per_second == 0 || self.stall_timeout_secs == 0 {
            bail!(
                "transfer: download_requests_per_second and stall_timeout_secs must be at least 1"
            );
        }
        Ok(())
    }

    /// What both hops' TLS clients trust: reads `extra_ca_file`, so it is
    /// called when the app is built (start-up), never while loading.
    pub fn trust(&self) -> anyhow::Result<ClientTrust> {
        ClientTrust::load(self.extra_ca_file.as_deref())
            .map_err(|e| anyhow::anyhow!("transfer.extra_ca_file: {e}"))
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }

    /// The engine's settings; `worker_id` names this process in leases.
    pub fn settings(
        &self,
        worker_id: String,
        caps: CapsPolicy,
        companions: crate::transfer::companion::CompanionSettings,
    ) -> TransferSettings {
        TransferSettings {
            worker_id,
            max_concurrent: self.max_concurrent,
            byte_budget: self.byte_budget_bytes,
            part_size: self.part_size_bytes,
            parts_in_flight: self.parts_in_flight,
            lease: Duration::from_secs(self.lease_secs),
            heartbeat: Duration::from_secs(self.heartbeat_secs),
            max_attempts: self.max_attempts,
            backoff_base: Duration::from_millis(self.backoff_base_ms),
            stall_timeout: Duration::from_secs(self.stall_timeout_secs),
            download_requests_per_second: self.download_requests_per_second,
            bandwidth_bytes_per_second: Some(self.bandwidth_bytes_per_second).filter(|b| *b > 0),
            sink_requests_per_second: Some(self.sink_requests_per_second).filter(|r| *r > 0),
            key_prefix: self.key_prefix.clone(),
            caps,
            poll_interval: Duration::from_secs(2),
            companions,
        }
    }
}

impl S3Config {
    /// What the S3 sink needs, checked when `transfer.sink = "s3"`.
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if self.bucket.is_empty()
            || self.access_key_id.is_empty()
            || self.secret_access_key.is_none()
        {
            bail!(
                "s3: bucket, access_key_id and secret_access_key are required when transfer.sink = \"s3\""
            );
        }
        if let Some(endpoint) = &self.endpoint {
            let uri: http::Uri = endpoint
                .parse()
                .map_err(|_| anyhow::anyhow!("s3.endpoint: {endpoint:?} is not a URL"))?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                bail!("s3.endpoint: {endpoint:?} must be an http:// or https:// URL");
            }
        }
        Ok(())
    }

    /// The S3 sink's settings, trusting `trust` (see `TransferConfig::trust`).
    pub fn settings(&self, trust: ClientTrust) -> anyhow::Result<S3Settings> {
        Ok(S3Settings {
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            bucket: self.bucket.clone(),
            path_style: self.path_style,
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self
                .secret_access_key
                .clone()
                .context("s3.secret_access_key")?,
            session_token: self.session_token.clone(),
            checksums: self.checksums,
            trust,
        })
    }
}
