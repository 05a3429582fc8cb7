//! Ferry's settings: defaults, then a TOML file, then `FERRY_*` environment
//! variables, then validation. Unknown keys are errors that name the key, so
//! a typo never silently falls back to a default.
//!
//! Variable names: `FERRY_<KEY>` for top-level keys, `FERRY_<SECTION>_<KEY>`
//! for keys of a section (`FERRY_GRPC_ADDR` is `[grpc] addr`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ferry_control::secrets::Secret;
use serde::Deserialize;

/// Environment variables the admin client reads; `ferry serve` ignores them
/// instead of rejecting them as unknown settings.
pub const CLIENT_VARIABLES: &[&str] = &[
    "FERRY_SERVER",
    "FERRY_TOKEN",
    "FERRY_CA_CERT",
    "FERRY_INSTITUTION",
    "FERRY_CONFIG",
    "FERRY_OAUTH_CLIENT_SECRET",
];

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the database, the generated encryption key and local media live.
    pub data_dir: PathBuf,
    /// The operator's credential. When unset, one is generated at first
    /// start, printed once, and only its hash is stored.
    pub operator_token: Option<Secret>,
    /// Base64 of 32 bytes; seals stored OAuth client secrets and download
    /// tokens. When unset, a key is generated into `<data_dir>/encryption.key`.
    pub encryption_key: Option<Secret>,
    /// Log filter, in `tracing` env-filter syntax.
    pub log: String,
    /// `text` or `json`.
    pub log_format: String,
    pub grpc: ListenerConfig,
    pub http: ListenerConfig,
    pub metrics: MetricsConfig,
    pub store: StoreConfig,
    pub directory: DirectoryConfig,
    pub zoom: ZoomConfig,
    pub caps: CapsConfig,
    pub transfer: TransferConfig,
    pub s3: S3Config,
}

/// The S3 sink (`transfer.sink = "s3"`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// Base URL of an S3-compatible server; empty for AWS S3 itself.
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    pub path_style: bool,
    pub access_key_id: String,
    pub secret_access_key: Option<Secret>,
    pub session_token: Option<Secret>,
    /// Per-part CRC32C checksums; turn off for stores that reject them.
    pub checksums: bool,
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

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransferConfig {
    /// Run the transfer engine in this daemon.
    pub enabled: bool,
    /// `local` (a folder) or `s3`.
    pub sink: String,
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
}

impl Default for TransferConfig {
    fn default() -> Self {
        TransferConfig {
            enabled: true,
            sink: "local".into(),
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
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZoomConfig {
    /// The Zoom app's webhook secret token. Without it, webhooks get 503.
    pub webhook_secret: Option<Secret>,
    /// A second secret accepted during rotation.
    pub webhook_secret_previous: Option<Secret>,
    /// How far `x-zm-request-timestamp` may be from now, in seconds.
    pub timestamp_tolerance_secs: u64,
    /// Hosts downloads may come from (every redirect hop is checked):
    /// `name` exactly, or `*.name` for its subdomains.
    pub download_allowlist: Vec<String>,
    /// Allow plain http:// downloads (loopback tests only).
    pub allow_insecure_downloads: bool,
    /// Zoom's REST API, asked for a fresh download token when a webhook's
    /// has expired. Its host must also pass `download_allowlist` to be used.
    pub api_base_url: String,
    /// Where Server-to-Server OAuth account tokens come from. Its host must
    /// also pass `download_allowlist` to be used.
    pub oauth_base_url: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CapsConfig {
    /// Longest recording copied, in seconds (8 hours).
    pub max_duration_secs: u64,
    /// Largest file copied, in bytes (5 GiB).
    pub max_file_bytes: u64,
    /// Other caps for some Zoom accounts, by account id (file only).
    pub accounts: std::collections::BTreeMap<String, AccountCapsConfig>,
}

/// One account's caps; an unset cap is the default one.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountCapsConfig {
    pub max_duration_secs: Option<u64>,
    pub max_file_bytes: Option<u64>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenerConfig {
    pub addr: SocketAddr,
    /// PEM certificate chain; with `tls_key`, the listener serves TLS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key.
    pub tls_key: Option<PathBuf>,
    /// Allows plain TCP on a non-loopback address. Logged as a warning.
    pub insecure: bool,
    /// Largest request body accepted (HTTP listener only).
    pub max_body_bytes: u64,
    /// Time a client has to send a request's head and body, in seconds
    /// (HTTP listener only).
    pub read_timeout_secs: u64,
}

/// Where `GET /metrics` is served: on the HTTP listener, unless an admin
/// listener is configured here (plain HTTP; then the HTTP listener does not
/// serve it).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub addr: Option<SocketAddr>,
    /// Allows the admin listener on a non-loopback address.
    pub insecure: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Only `sqlite` for now.
    pub backend: String,
    /// SQLite file; defaults to `<data_dir>/ferry.db`.
    pub sqlite_path: Option<PathBuf>,
    /// Most writes committed in one transaction.
    pub max_batch: usize,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DirectoryConfig {
    /// Most user records one SyncUsers call may carry.
    pub max_sync_records: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./ferry-data"),
            operator_token: None,
            encryption_key: None,
            log: "info".into(),
            log_format: "text".into(),
            grpc: ListenerConfig::on("127.0.0.1:50051"),
            http: ListenerConfig::on("127.0.0.1:8080"),
            metrics: MetricsConfig::default(),
            store: StoreConfig::default(),
            directory: DirectoryConfig::default(),
            zoom: ZoomConfig::default(),
            caps: CapsConfig::default(),
            transfer: TransferConfig::default(),
            s3: S3Config::default(),
        }
    }
}

impl ListenerConfig {
    fn on(addr: &str) -> Self {
        ListenerConfig {
            addr: addr.parse().expect("default listener address"),
            tls_cert: None,
            tls_key: None,
            insecure: false,
            max_body_bytes: 1024 * 1024,
            read_timeout_secs: 10,
        }
    }

    pub fn tls_enabled(&self) -> bool {
        self.tls_cert.is_some()
    }

    fn validate(&self, section: &str) -> anyhow::Result<()> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => bail!("{section}.tls_key: required when {section}.tls_cert is set"),
            (None, Some(_)) => bail!("{section}.tls_cert: required when {section}.tls_key is set"),
            _ => {}
        }
        if !self.tls_enabled() && !self.addr.ip().is_loopback() && !self.insecure {
            bail!(
                "{section}.addr: {} is not a loopback address; configure {section}.tls_cert and \
                 {section}.tls_key, or set {section}.insecure = true to serve plain TCP anyway",
                self.addr
            );
        }
        Ok(())
    }
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig::on("127.0.0.1:0")
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: "sqlite".into(),
            sqlite_path: None,
            max_batch: 256,
        }
    }
}

impl Default for ZoomConfig {
    fn default() -> Self {
        ZoomConfig {
            webhook_secret: None,
            webhook_secret_previous: None,
            timestamp_tolerance_secs: 300,
            download_allowlist: ["zoom.us", "*.zoom.us", "zoomgov.com", "*.zoomgov.com"]
                .map(String::from)
                .to_vec(),
            allow_insecure_downloads: false,
            api_base_url: "https://api.zoom.us".into(),
            oauth_base_url: "https://zoom.us".into(),
        }
    }
}

impl Default for CapsConfig {
    fn default() -> Self {
        let caps = ferry_control::rules::Caps::default();
        CapsConfig {
            max_duration_secs: (caps.max_duration_ms / 1000) as u64,
            max_file_bytes: caps.max_file_bytes,
            accounts: Default::default(),
        }
    }
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        DirectoryConfig {
            max_sync_records: 1_000_000,
        }
    }
}

/// Sections whose keys can be set from `FERRY_<SECTION>_<KEY>`.
const SECTIONS: &[&str] = &[
    "grpc",
    "http",
    "metrics",
    "store",
    "directory",
    "zoom",
    "caps",
    "transfer",
    "s3",
];

impl Config {
    /// Defaults, overlaid with the file (if any), then with `FERRY_*`
    /// variables from `env`, then validated.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Config> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                toml::from_str::<Config>(&text).map_err(|e| {
                    anyhow::anyhow!("config file {}: {}", path.display(), e.message())
                })?
            }
            None => Config::default(),
        };
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("FERRY_") else {
                continue;
            };
            if CLIENT_VARIABLES.contains(&name.as_str()) {
                continue;
            }
            let rest = rest.to_ascii_lowercase();
            let (section, key) = SECTIONS
                .iter()
                .find_map(|s| {
                    rest.strip_prefix(&format!("{s}_"))
                        .map(|key| (Some(*s), key.to_string()))
                })
                .unwrap_or((None, rest.clone()));
            config
                .set(section, &key, &value)
                .with_context(|| format!("environment variable {name}"))?;
        }
        config.validate()?;
        Ok(config)
    }

    /// Sets one key from text, as given in the environment.
    fn set(&mut self, section: Option<&str>, key: &str, value: &str) -> anyhow::Result<()> {
        fn parse<T: std::str::FromStr>(key: &str, value: &str) -> anyhow::Result<T>
        where
            T::Err: std::fmt::Display,
        {
            value
                .trim()
                .parse()
                .map_err(|e| anyhow::anyhow!("{key}: cannot parse {value:?}: {e}"))
        }
        fn path(value: &str) -> Option<PathBuf> {
            Some(PathBuf::from(value)).filter(|p| !p.as_os_str().is_empty())
        }
        match (section, key) {
            (None, "data_dir") => self.data_dir = PathBuf::from(value),
            (None, "operator_token") => {
                self.operator_token = Some(Secret::new(value)).filter(|s| !s.is_empty())
            }
            (None, "encryption_key") => {
                self.encryption_key = Some(Secret::new(value)).filter(|s| !s.is_empty())
            }
            (None, "log") => self.log = value.to_string(),
            (None, "log_format") => self.log_format = value.to_string(),
            (Some(section @ ("grpc" | "http")), key) => {
                let listener = if section == "grpc" {
                    &mut self.grpc
                } else {
                    &mut self.http
                };
                match key {
                    "addr" => listener.addr = parse(key, value)?,
                    "tls_cert" => listener.tls_cert = path(value),
                    "tls_key" => listener.tls_key = path(value),
                    "insecure" => listener.insecure = parse(key, value)?,
                    "max_body_bytes" => listener.max_body_bytes = parse(key, value)?,
                    "read_timeout_secs" => listener.read_timeout_secs = parse(key, value)?,
                    _ => bail!("unknown setting {section}.{key}"),
                }
            }
            (Some("store"), "backend") => self.store.backend = value.to_string(),
            (Some("metrics"), "addr") => {
                self.metrics.addr = if value.is_empty() {
                    None
                } else {
                    Some(parse(key, value)?)
                }
            }
            (Some("metrics"), "insecure") => self.metrics.insecure = parse(key, value)?,
            (Some("store"), "sqlite_path") => self.store.sqlite_path = path(value),
            (Some("store"), "max_batch") => self.store.max_batch = parse(key, value)?,
            (Some("directory"), "max_sync_records") => {
                self.directory.max_sync_records = parse(key, value)?
            }
            (Some("zoom"), "webhook_secret") => {
                self.zoom.webhook_secret = Some(Secret::new(value)).filter(|s| !s.is_empty())
            }
            (Some("zoom"), "webhook_secret_previous") => {
                self.zoom.webhook_secret_previous =
                    Some(Secret::new(value)).filter(|s| !s.is_empty())
            }
            (Some("zoom"), "timestamp_tolerance_secs") => {
                self.zoom.timestamp_tolerance_secs = parse(key, value)?
            }
            (Some("zoom"), "download_allowlist") => {
                self.zoom.download_allowlist = value
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            }
            (Some("zoom"), "api_base_url") => self.zoom.api_base_url = value.to_string(),
            (Some("zoom"), "oauth_base_url") => self.zoom.oauth_base_url = value.to_string(),
            (Some("zoom"), "allow_insecure_downloads") => {
                self.zoom.allow_insecure_downloads = parse(key, value)?
            }
            (Some("transfer"), "enabled") => self.transfer.enabled = parse(key, value)?,
            (Some("transfer"), "sink") => self.transfer.sink = value.to_string(),
            (Some("transfer"), "local_dir") => self.transfer.local_dir = path(value),
            (Some("transfer"), "key_prefix") => self.transfer.key_prefix = value.to_string(),
            (Some("transfer"), "max_concurrent") => {
                self.transfer.max_concurrent = parse(key, value)?
            }
            (Some("transfer"), "byte_budget_bytes") => {
                self.transfer.byte_budget_bytes = parse(key, value)?
            }
            (Some("transfer"), "part_size_bytes") => {
                self.transfer.part_size_bytes = parse(key, value)?
            }
            (Some("transfer"), "parts_in_flight") => {
                self.transfer.parts_in_flight = parse(key, value)?
            }
            (Some("transfer"), "lease_secs") => self.transfer.lease_secs = parse(key, value)?,
            (Some("transfer"), "heartbeat_secs") => {
                self.transfer.heartbeat_secs = parse(key, value)?
            }
            (Some("transfer"), "max_attempts") => self.transfer.max_attempts = parse(key, value)?,
            (Some("transfer"), "backoff_base_ms") => {
                self.transfer.backoff_base_ms = parse(key, value)?
            }
            (Some("transfer"), "stall_timeout_secs") => {
                self.transfer.stall_timeout_secs = parse(key, value)?
            }
            (Some("transfer"), "connect_timeout_secs") => {
                self.transfer.connect_timeout_secs = parse(key, value)?
            }
            (Some("transfer"), "download_requests_per_second") => {
                self.transfer.download_requests_per_second = parse(key, value)?
            }
            (Some("transfer"), "bandwidth_bytes_per_second") => {
                self.transfer.bandwidth_bytes_per_second = parse(key, value)?
            }
            (Some("transfer"), "sink_requests_per_second") => {
                self.transfer.sink_requests_per_second = parse(key, value)?
            }
            (Some("s3"), "endpoint") => {
                self.s3.endpoint = Some(value.to_string()).filter(|v| !v.is_empty())
            }
            (Some("s3"), "region") => self.s3.region = value.to_string(),
            (Some("s3"), "bucket") => self.s3.bucket = value.to_string(),
            (Some("s3"), "path_style") => self.s3.path_style = parse(key, value)?,
            (Some("s3"), "access_key_id") => self.s3.access_key_id = value.to_string(),
            (Some("s3"), "secret_access_key") => {
                self.s3.secret_access_key = Some(Secret::new(value)).filter(|s| !s.is_empty())
            }
            (Some("s3"), "session_token") => {
                self.s3.session_token = Some(Secret::new(value)).filter(|s| !s.is_empty())
            }
            (Some("s3"), "checksums") => self.s3.checksums = parse(key, value)?,
            (Some("caps"), "max_duration_secs") => self.caps.max_duration_secs = parse(key, value)?,
            (Some("caps"), "max_file_bytes") => self.caps.max_file_bytes = parse(key, value)?,
            (Some(section), key) => bail!("unknown setting {section}.{key}"),
            (None, key) => bail!("unknown setting {key}"),
        }
        Ok(())
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        self.grpc.validate("grpc")?;
        self.http.validate("http")?;
        if let Some(addr) = self.metrics.addr
            && !addr.ip().is_loopback()
            && !self.metrics.insecure
        {
            bail!(
                "metrics.addr: {addr} is not a loopback address; set metrics.insecure = true to serve \
                 metrics in plain HTTP there"
            );
        }
        if self.store.backend != "sqlite" {
            bail!(
                "store.backend: {:?} is not supported (only \"sqlite\")",
                self.store.backend
            );
        }
        if self.store.max_batch == 0 {
            bail!("store.max_batch: must be at least 1");
        }
        if self.directory.max_sync_records == 0 {
            bail!("directory.max_sync_records: must be at least 1");
        }
        if self.http.max_body_bytes < 1024 {
            bail!("http.max_body_bytes: must be at least 1024");
        }
        if self.http.read_timeout_secs == 0 {
            bail!("http.read_timeout_secs: must be at least 1");
        }
        if self.caps.max_duration_secs == 0 || self.caps.max_file_bytes == 0 {
            bail!("caps: max_duration_secs and max_file_bytes must be positive");
        }
        for (account, caps) in &self.caps.accounts {
            if caps.max_duration_secs == Some(0) || caps.max_file_bytes == Some(0) {
                bail!(
                    "caps.accounts.{account}: max_duration_secs and max_file_bytes must be positive"
                );
            }
        }
        let transfer = &self.transfer;
        if !matches!(transfer.sink.as_str(), "local" | "s3") {
            bail!(
                "transfer.sink: {:?} is not one of \"local\", \"s3\"",
                transfer.sink
            );
        }
        if transfer.sink == "s3" {
            let s3 = &self.s3;
            if s3.bucket.is_empty() || s3.access_key_id.is_empty() || s3.secret_access_key.is_none()
            {
                bail!(
                    "s3: bucket, access_key_id and secret_access_key are required when transfer.sink = \"s3\""
                );
            }
            if let Some(endpoint) = &s3.endpoint {
                let uri: http::Uri = endpoint
                    .parse()
                    .map_err(|_| anyhow::anyhow!("s3.endpoint: {endpoint:?} is not a URL"))?;
                if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                    bail!("s3.endpoint: {endpoint:?} must be an http:// or https:// URL");
                }
            }
        }
        if transfer.part_size_bytes < 5 * 1024 * 1024 {
            bail!("transfer.part_size_bytes: must be at least 5 MiB (S3's minimum part size)");
        }
        if transfer.max_concurrent == 0
            || transfer.parts_in_flight == 0
            || transfer.max_attempts == 0
        {
            bail!("transfer: max_concurrent, parts_in_flight and max_attempts must be at least 1");
        }
        if transfer.byte_budget_bytes < transfer.part_size_bytes {
            bail!(
                "transfer.byte_budget_bytes: must hold at least one part (transfer.part_size_bytes)"
            );
        }
        if transfer.heartbeat_secs == 0 || transfer.heartbeat_secs >= transfer.lease_secs {
            bail!(
                "transfer.heartbeat_secs: must be at least 1 and shorter than transfer.lease_secs"
            );
        }
        if transfer.download_requests_per_second == 0 || transfer.stall_timeout_secs == 0 {
            bail!(
                "transfer: download_requests_per_second and stall_timeout_secs must be at least 1"
            );
        }
        for entry in &self.zoom.download_allowlist {
            if crate::transfer::download::HostPattern::parse(entry).is_none() {
                bail!("zoom.download_allowlist: {entry:?} is not a host name or *.domain pattern");
            }
        }
        for (key, url) in [
            ("zoom.api_base_url", &self.zoom.api_base_url),
            ("zoom.oauth_base_url", &self.zoom.oauth_base_url),
        ] {
            let uri: http::Uri = url
                .parse()
                .map_err(|_| anyhow::anyhow!("{key}: {url:?} is not a URL"))?;
            match uri.scheme_str() {
                Some("https") if uri.host().is_some() => {}
                Some("http") if uri.host().is_some() && self.zoom.allow_insecure_downloads => {}
                _ => bail!("{key}: {url:?} must be an https:// URL"),
            }
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            bail!("log_format: {:?} is not one of text, json", self.log_format);
        }
        if let Some(key) = &self.encryption_key {
            ferry_control::secrets::SecretBox::from_base64(key.expose())
                .map_err(|e| anyhow::anyhow!("encryption_key: {e}"))?;
        }
        Ok(())
    }

    /// Which hosts downloads and Zoom API calls may reach.
    pub fn download_policy(&self) -> crate::transfer::download::DownloadPolicy {
        use crate::transfer::download::{DownloadPolicy, HostPattern};
        DownloadPolicy {
            allowlist: self
                .zoom
                .download_allowlist
                .iter()
                .filter_map(|e| HostPattern::parse(e))
                .collect(),
            allow_insecure_http: self.zoom.allow_insecure_downloads,
            connect_timeout: std::time::Duration::from_secs(self.transfer.connect_timeout_secs),
        }
    }

    pub fn caps(&self) -> ferry_control::rules::CapsPolicy {
        use ferry_control::rules::{Caps, CapsPolicy};
        let caps = |duration_secs: u64, file_bytes: u64| Caps {
            max_duration_ms: i64::try_from(duration_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
            max_file_bytes: file_bytes,
        };
        let default = caps(self.caps.max_duration_secs, self.caps.max_file_bytes);
        CapsPolicy {
            default,
            accounts: self
                .caps
                .accounts
                .iter()
                .map(|(account, c)| {
                    let own = caps(
                        c.max_duration_secs.unwrap_or(self.caps.max_duration_secs),
                        c.max_file_bytes.unwrap_or(self.caps.max_file_bytes),
                    );
                    (account.clone(), own)
                })
                .collect(),
        }
    }

    pub fn media_dir(&self) -> PathBuf {
        self.transfer
            .local_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("media"))
    }

    pub fn sqlite_path(&self) -> PathBuf {
        self.store
            .sqlite_path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("ferry.db"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_the_embedded_ones() {
        let config = Config::load(None, env(&[])).unwrap();
        assert_eq!(config.data_dir, PathBuf::from("./ferry-data"));
        assert_eq!(config.grpc.addr.to_string(), "127.0.0.1:50051");
        assert_eq!(config.http.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(config.sqlite_path(), PathBuf::from("./ferry-data/ferry.db"));
    }

    #[test]
    fn environment_overrides_file_and_names_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ferry.toml");
        std::fs::write(
            &file,
            "data_dir = \"/from/file\"\n[grpc]\naddr = \"127.0.0.1:1\"\n",
        )
        .unwrap();
        let config = Config::load(
            Some(&file),
            env(&[
                ("FERRY_GRPC_ADDR", "127.0.0.1:2"),
                ("FERRY_HTTP_ADDR", "127.0.0.1:3"),
                ("FERRY_TOKEN", "client variables are ignored"),
                ("HOME", "/root"),
            ]),
        )
        .unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/from/file"));
        assert_eq!(config.grpc.addr.port(), 2);
        assert_eq!(config.http.addr.port(), 3);

        let error = Config::load(None, env(&[("FERRY_GRPC_ADRR", "x")])).unwrap_err();
        assert!(
            format!("{error:#}").contains("FERRY_GRPC_ADRR"),
            "{error:#}"
        );
        std::fs::write(&file, "[grpc]\nadrr = \"127.0.0.1:1\"\n").unwrap();
        let error = Config::load(Some(&file), env(&[])).unwrap_err();
        assert!(format!("{error:#}").contains("adrr"), "{error:#}");
    }

    #[test]
    fn caps_can_differ_per_account() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ferry.toml");
        std::fs::write(
            &file,
            "[caps]\nmax_file_bytes = 1000\n[caps.accounts.small-acct]\nmax_file_bytes = 10\n",
        )
        .unwrap();
        let caps = Config::load(Some(&file), env(&[])).unwrap().caps();
        assert_eq!(caps.for_account("small-acct").max_file_bytes, 10);
        assert_eq!(
            caps.for_account("small-acct").max_duration_ms,
            caps.default.max_duration_ms
        );
        assert_eq!(caps.for_account("other").max_file_bytes, 1000);

        std::fs::write(&file, "[caps.accounts.a]\nmax_file_byte = 10\n").unwrap();
        let error = Config::load(Some(&file), env(&[])).unwrap_err();
        assert!(format!("{error:#}").contains("max_file_byte"), "{error:#}");
        std::fs::write(&file, "[caps.accounts.a]\nmax_file_bytes = 0\n").unwrap();
        let error = Config::load(Some(&file), env(&[])).unwrap_err();
        assert!(
            format!("{error:#}").contains("caps.accounts.a"),
            "{error:#}"
        );
    }

    #[test]
    fn the_s3_sink_is_configured_from_the_environment() {
        let error = Config::load(None, env(&[("FERRY_TRANSFER_SINK", "s3")])).unwrap_err();
        assert!(format!("{error:#}").contains("s3: bucket"), "{error:#}");
        let config = Config::load(
            None,
            env(&[
                ("FERRY_TRANSFER_SINK", "s3"),
                ("FERRY_S3_ENDPOINT", "http://127.0.0.1:9000"),
                ("FERRY_S3_BUCKET", "recordings"),
                ("FERRY_S3_ACCESS_KEY_ID", "ferry"),
                ("FERRY_S3_SECRET_ACCESS_KEY", "s3-secret-value"),
                ("FERRY_S3_PATH_STYLE", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(config.s3.bucket, "recordings");
        assert!(config.s3.path_style);
        assert!(!format!("{config:?}").contains("s3-secret-value"));
        let error = Config::load(None, env(&[("FERRY_TRANSFER_SINK", "gcs")])).unwrap_err();
        assert!(format!("{error:#}").contains("transfer.sink"), "{error:#}");
    }

    #[test]
    fn zoom_api_urls_must_be_https() {
        let config = Config::load(
            None,
            env(&[
                ("FERRY_ZOOM_API_BASE_URL", "https://api.zoomgov.com"),
                ("FERRY_ZOOM_OAUTH_BASE_URL", "https://zoomgov.com"),
            ]),
        )
        .unwrap();
        assert_eq!(config.zoom.api_base_url, "https://api.zoomgov.com");
        for (key, url) in [
            ("FERRY_ZOOM_API_BASE_URL", "ftp://api.zoom.us"),
            ("FERRY_ZOOM_OAUTH_BASE_URL", "http://zoom.us"),
            ("FERRY_ZOOM_API_BASE_URL", "not a url"),
        ] {
            let error = Config::load(None, env(&[(key, url)])).unwrap_err();
            let name = key.trim_start_matches("FERRY_ZOOM_").to_ascii_lowercase();
            assert!(
                format!("{error:#}").contains(&format!("zoom.{name}")),
                "{error:#}"
            );
        }
    }

    #[test]
    fn plain_tcp_off_loopback_needs_insecure() {
        let error = Config::load(None, env(&[("FERRY_GRPC_ADDR", "0.0.0.0:50051")])).unwrap_err();
        assert!(format!("{error:#}").contains("grpc.insecure"), "{error:#}");
        let config = Config::load(
            None,
            env(&[
                ("FERRY_GRPC_ADDR", "0.0.0.0:50051"),
                ("FERRY_GRPC_INSECURE", "true"),
            ]),
        )
        .unwrap();
        assert!(config.grpc.insecure);
        let error = Config::load(None, env(&[("FERRY_HTTP_TLS_CERT", "/c.pem")])).unwrap_err();
        assert!(format!("{error:#}").contains("http.tls_key"), "{error:#}");
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let config =
            Config::load(None, env(&[("FERRY_OPERATOR_TOKEN", "fop_supersecret")])).unwrap();
        assert!(!format!("{config:?}").contains("supersecret"));
    }
}
