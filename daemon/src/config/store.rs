//! `[store]` and `[directory]`: which backend keeps Ferry's state, and the
//! limits of writing to it. Converts into the backend's own settings; never
//! opens anything.

use std::path::{Path, PathBuf};

use anyhow::bail;
use ferry_control::store::SqliteConfig;
use serde::{Deserialize, Serialize};

/// The store backends this build knows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// One SQLite file in WAL mode.
    #[default]
    Sqlite,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Only `sqlite` for now.
    pub backend: StoreBackend,
    /// SQLite file; defaults to `<data_dir>/ferry.db`.
    pub sqlite_path: Option<PathBuf>,
    /// Most writes committed in one transaction.
    pub max_batch: usize,
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
        Ok(())
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
