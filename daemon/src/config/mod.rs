//! Ferry's settings: defaults, then a TOML file, then `FERRY_*` environment
//! variables, then validation. Unknown keys are errors that name the key, so
//! a typo never silently falls back to a default.
//!
//! The types are the one list of keys: each section is a struct in its own
//! file (`listener`, `store`, `zoom`, `caps`, `transfer`, `retention`, `console`,
//! `reconcile`, `after_copy`, `companions`) beside its defaults,
//! its validation and its conversion into the settings its subsystem takes;
//! the environment overlay (`env`) is derived from those types. Loading never
//! opens a socket, a file other than the config file, or the store; the app
//! does that at build.
//!
//! Variable names: `FERRY_<KEY>` for top-level keys, `FERRY_<SECTION>_<KEY>`
//! for keys of a section (`FERRY_GRPC_ADDR` is `[grpc] addr`).

mod after_copy;
mod caps;
mod companions;
mod console;
mod env;
mod listener;
mod reconcile;
mod retention;
mod store;
mod transfer;
mod zoom;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ferry_control::secrets::Secret;
use serde::{Deserialize, Serialize};

pub use after_copy::AfterCopyConfig;
pub use caps::{AccountCapsConfig, CapsConfig};
pub use companions::CompanionsConfig;
pub use console::{ConsoleConfig, ConsoleSettings};
pub use listener::{ListenerConfig, MetricsConfig};
pub use reconcile::ReconcileConfig;
pub use retention::RetentionConfig;
pub use store::{DirectoryConfig, StoreBackend, StoreConfig};
pub use transfer::{S3Config, SinkKind, TransferConfig};
pub use zoom::ZoomConfig;

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

/// `Serialize` exists so the environment overlay can read each key's type
/// from its default; secrets are never serialised.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the database, the generated encryption key and local media live.
    pub data_dir: PathBuf,
    /// The operator's credential. When unset, one is generated at first
    /// start, printed once, and only its hash is stored.
    #[serde(skip_serializing)]
    pub operator_token: Option<Secret>,
    /// Base64 of 32 bytes; seals stored OAuth client secrets and download
    /// tokens. When unset, a key is generated into `<data_dir>/encryption.key`.
    #[serde(skip_serializing)]
    pub encryption_key: Option<Secret>,
    /// Log filter, in `tracing` env-filter syntax.
    pub log: String,
    /// `text` or `json`.
    pub log_format: LogFormat,
    pub grpc: ListenerConfig,
    pub http: ListenerConfig,
    pub metrics: MetricsConfig,
    pub store: StoreConfig,
    pub directory: DirectoryConfig,
    pub zoom: ZoomConfig,
    pub caps: CapsConfig,
    pub transfer: TransferConfig,
    pub s3: S3Config,
    pub retention: RetentionConfig,
    pub console: ConsoleConfig,
    pub reconcile: ReconcileConfig,
    pub after_copy: AfterCopyConfig,
    pub companions: CompanionsConfig,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./ferry-data"),
            operator_token: None,
            encryption_key: None,
            log: "info".into(),
            log_format: LogFormat::Text,
            grpc: ListenerConfig::on("127.0.0.1:50051"),
            http: ListenerConfig::on("127.0.0.1:8080"),
            metrics: MetricsConfig::default(),
            store: StoreConfig::default(),
            directory: DirectoryConfig::default(),
            zoom: ZoomConfig::default(),
            caps: CapsConfig::default(),
            transfer: TransferConfig::default(),
            s3: S3Config::default(),
            retention: RetentionConfig::default(),
            console: ConsoleConfig::default(),
            reconcile: ReconcileConfig::default(),
            after_copy: AfterCopyConfig::default(),
            companions: CompanionsConfig::default(),
        }
    }
}

impl Config {
    /// Defaults, overlaid with the file (if any), then with `FERRY_*`
    /// variables from `env`, then validated.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Config> {
        let mut tree = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                // The typed read reports the file's own mistakes, with their line.
                if let Err(e) = toml::from_str::<Config>(&text) {
                    let line = e
                        .span()
                        .map(|span| text[..span.start].lines().count().max(1))
                        .map_or(String::new(), |line| format!(" (line {line})"));
                    bail!("config file {}: {}{line}", path.display(), e.message());
                }
                toml::from_str::<toml::Table>(&text)
                    .with_context(|| format!("config file {}", path.display()))?
            }
            None => toml::Table::new(),
        };
        env::overlay(&mut tree, env)?;
        let config: Config = toml::Value::Table(tree)
            .try_into()
            .map_err(|e| anyhow::anyhow!("configuration: {}", e.message()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        self.grpc.validate("grpc")?;
        self.http.validate("http")?;
        self.metrics.validate()?;
        self.store.validate()?;
        self.directory.validate()?;
        self.http.validate_http_limits()?;
        self.caps.validate()?;
        if self.transfer.sink == SinkKind::S3 {
            self.s3.validate()?;
        }
        self.transfer.validate()?;
        self.zoom.validate()?;
        self.retention.validate()?;
        self.console.validate()?;
        self.reconcile.validate()?;
        self.after_copy.validate()?;
        self.companions.validate()?;
        if let Some(key) = &self.encryption_key {
            ferry_control::secrets::SecretBox::from_base64(key.expose())
                .map_err(|e| anyhow::anyhow!("encryption_key: {e}"))?;
        } else if self.store.backend == StoreBackend::Postgres {
            // Without it each replica would make a key of its own in its
            // data folder and could not open what the others sealed.
            anyhow::bail!(
                "encryption_key: required with store.backend = \"postgres\": every replica must seal \
                 and open secrets with the same key (FERRY_ENCRYPTION_KEY, 32 bytes in base64)"
            );
        }
        Ok(())
    }

    /// Which hosts downloads and Zoom API calls may reach.
    pub fn download_policy(&self) -> crate::transfer::download::DownloadPolicy {
        self.zoom.download_policy(self.transfer.connect_timeout())
    }

    pub fn caps(&self) -> ferry_control::rules::CapsPolicy {
        self.caps.policy()
    }

    pub fn media_dir(&self) -> PathBuf {
        self.transfer
            .local_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("media"))
    }

    pub fn sqlite_path(&self) -> PathBuf {
        self.store.sqlite_path(&self.data_dir)
    }
}

#[cfg(test)]
mod tests;
