//! `[store]` and `[directory]`: which backend keeps Ferry's state, and the
//! limits of writing to it. Converts into the backend's own settings; never
//! opens anything, and never shows `postgres_url` (it may hold a password):
//! it is a `Secret`, skipped when serialised and redacted in `Debug`, and no
//! validation error quotes it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::bail;
use ferry_control::secrets::Secret;
use ferry_control::store::{PostgresConfig, PostgresUrl, SqliteConfig};
use serde::{Deserialize, Serialize};

/// The store backends this build knows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// One SQLite file in WAL mode.
    #[default]
    Sqlite,
    /// A PostgreSQL database, which several replicas may share.
    Postgres,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite` (the default) or `postgres`.
    pub backend: StoreBackend,
    /// SQLite file; defaults to `<data_dir>/ferry.db`.
    pub sqlite_path: Option<PathBuf>,
    /// Most writes committed in one transaction (SQLite).
    pub max_batch: usize,
    /// Bytes of the SQLite file each reader maps into memory (0: none, every
    /// page read is a `pread` into the reader's own page cache).
    pub sqlite_mmap_bytes: u64,
    /// `postgres://user:password@host:5432/ferry`; required by `postgres`.
    #[serde(skip_serializing)]
    pub postgres_url: Option<Secret>,
    /// Most connections to PostgreSQL open at once (one more listens for
    /// other replicas' job events).
    pub postgres_pool_size: usize,
    /// How long connecting to PostgreSQL, or waiting for a free connection,
    /// may take before the call fails as unavailable.
    pub postgres_connect_timeout_secs: u64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DirectoryConfig {
    /// Most user records one SyncUsers call may carry.
    pub max_sync_records: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: StoreBackend::Sqlite,
            sqlite_path: None,
            max_batch: 256,
            sqlite_mmap_bytes: ferry_control::store::DEFAULT_SQLITE_MMAP_BYTES,
            postgres_url: None,
            postgres_pool_size: 16,
            postgres_connect_timeout_secs: 5,
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

impl StoreConfig {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if self.max_batch == 0 {
            bail!("store.max_batch: must be at least 1");
        }
        if self.postgres_pool_size == 0 {
            bail!("store.postgres_pool_size: must be at least 1");
        }
        if self.postgres_connect_timeout_secs == 0 {
            bail!("store.postgres_connect_timeout_secs: must be at least 1");
        }
        if self.backend == StoreBackend::Postgres {
            match self.postgres_url.as_ref().filter(|url| !url.is_empty()) {
                None => bail!("store.postgres_url: required when store.backend is \"postgres\""),
                // The store's error never quotes the URL.
                Some(url) => PostgresUrl::new(url.expose())
                    .validate()
                    .map_err(|e| anyhow::anyhow!("store.{e}"))?,
            }
        }
        Ok(())
    }

    /// The PostgreSQL backend's settings; None without a `postgres_url`.
    pub fn postgres(&self) -> Option<PostgresConfig> {
        let url = self.postgres_url.as_ref()?;
        let mut postgres = PostgresConfig::new(PostgresUrl::new(url.expose()));
        postgres.pool_size = self.postgres_pool_size;
        postgres.connect_timeout = Duration::from_secs(self.postgres_connect_timeout_secs);
        Some(postgres)
    }

    pub fn sqlite_path(&self, data_dir: &Path) -> PathBuf {
        self.sqlite_path
            .clone()
            .unwrap_or_else(|| data_dir.join("ferry.db"))
    }

    /// The SQLite backend's settings.
    pub fn sqlite(&self, data_dir: &Path) -> SqliteConfig {
        let mut sqlite = SqliteConfig::new(self.sqlite_path(data_dir));
        sqlite.max_batch = self.max_batch;
        sqlite.mmap_bytes = self.sqlite_mmap_bytes;
        sqlite
    }
}

impl DirectoryConfig {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if self.max_sync_records == 0 {
            bail!("directory.max_sync_records: must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::StoreBackend;
    use crate::config::Config;

    const URL: &str = "postgres://ferry:hunter2-pw@db.internal:5432/ferry";
    /// Every replica on one database shares it.
    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn load(pairs: &[(&str, &str)]) -> anyhow::Result<Config> {
        Config::load(
            None,
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn the_url_alone_selects_postgres_with_default_pool_and_timeout() {
        let config = load(&[
            ("FERRY_STORE_BACKEND", "postgres"),
            ("FERRY_STORE_POSTGRES_URL", URL),
            ("FERRY_ENCRYPTION_KEY", KEY),
        ])
        .expect("load");
        assert_eq!(config.store.backend, StoreBackend::Postgres);
        let postgres = config.store.postgres().expect("postgres settings");
        assert_eq!(postgres.pool_size, 16);
        assert_eq!(postgres.connect_timeout, Duration::from_secs(5));

        let tuned = load(&[
            ("FERRY_STORE_BACKEND", "postgres"),
            ("FERRY_STORE_POSTGRES_URL", URL),
            ("FERRY_STORE_POSTGRES_POOL_SIZE", "4"),
            ("FERRY_STORE_POSTGRES_CONNECT_TIMEOUT_SECS", "2"),
            ("FERRY_ENCRYPTION_KEY", KEY),
        ])
        .expect("load");
        let postgres = tuned.store.postgres().expect("postgres settings");
        assert_eq!(postgres.pool_size, 4);
        assert_eq!(postgres.connect_timeout, Duration::from_secs(2));
    }

    #[test]
    fn the_url_never_shows_in_debug_serialisation_or_errors() {
        let config = load(&[
            ("FERRY_STORE_BACKEND", "postgres"),
            ("FERRY_STORE_POSTGRES_URL", URL),
            ("FERRY_ENCRYPTION_KEY", KEY),
        ])
        .expect("load");
        assert!(!format!("{config:?}").contains("hunter2"));
        assert!(!format!("{:?}", config.store.postgres()).contains("hunter2"));
        let serialised = toml::to_string(&config.store).expect("serialise");
        assert!(!serialised.contains("hunter2"), "{serialised}");

        let malformed = "postgres://ferry:hunter2-pw@[db/ferry";
        let error = load(&[
            ("FERRY_STORE_BACKEND", "postgres"),
            ("FERRY_STORE_POSTGRES_URL", malformed),
            ("FERRY_ENCRYPTION_KEY", KEY),
        ])
        .expect_err("a malformed url is refused");
        let text = format!("{error:#}");
        assert!(text.contains("store.postgres_url"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn postgres_settings_are_checked_and_errors_name_the_key() {
        for (pairs, key) in [
            (
                vec![("FERRY_STORE_BACKEND", "postgres")],
                "store.postgres_url: required",
            ),
            (
                vec![
                    ("FERRY_STORE_BACKEND", "postgres"),
                    ("FERRY_STORE_POSTGRES_URL", ""),
                ],
                "store.postgres_url: required",
            ),
            (
                vec![("FERRY_STORE_POSTGRES_POOL_SIZE", "0")],
                "store.postgres_pool_size: must be at least 1",
            ),
            (
                vec![("FERRY_STORE_POSTGRES_CONNECT_TIMEOUT_SECS", "0")],
                "store.postgres_connect_timeout_secs: must be at least 1",
            ),
        ] {
            let error = load(&pairs).expect_err(key);
            let text = format!("{error:#}");
            assert!(text.contains(key), "{key}: {text}");
        }
        // Replicas must share the key that seals secrets.
        let error = load(&[
            ("FERRY_STORE_BACKEND", "postgres"),
            ("FERRY_STORE_POSTGRES_URL", URL),
        ])
        .expect_err("postgres without a shared encryption key");
        let text = format!("{error:#}");
        assert!(text.contains("encryption_key: required"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        // The sqlite default needs no URL.
        assert_eq!(
            load(&[]).expect("defaults").store.backend,
            StoreBackend::Sqlite
        );
    }
}
