//! Where the benches' daemons keep their state, and Ferry as several
//! replicas: `ferry serve` processes sharing one PostgreSQL database (a
//! throwaway cluster of `ferry_control::store::postgres_testing`, started
//! with fsync and synchronous commit on, as a production server runs, so
//! that what is measured is a durable commit) or, for one replica, the
//! embedded SQLite file in the daemon's own data directory.
//!
//! Every replica gets the same encryption key (they open each other's sealed
//! secrets) and a database of its own per [`SharedStore::daemon_env`] call,
//! so that each measurement starts empty. The cluster is stopped and removed
//! when the [`SharedStore`] is dropped, or by its watchdog once this process
//! ends, however it ends.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use ferry_control::store::postgres_testing::TestCluster;
use ferry_control::store::{
    PostgresConfig, PostgresStore, PostgresUrl, SqliteConfig, SqliteStore, Store,
};

use crate::daemon::DaemonProcess;

/// One key for every replica: they read each other's sealed secrets.
pub const ENCRYPTION_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// The store backend a bench runs the daemon on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

impl StoreKind {
    pub fn parse(text: &str) -> anyhow::Result<StoreKind> {
        match text {
            "sqlite" => Ok(StoreKind::Sqlite),
            "postgres" => Ok(StoreKind::Postgres),
            other => anyhow::bail!("unknown store {other:?} (use sqlite or postgres)"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Sqlite => "sqlite",
            StoreKind::Postgres => "postgres",
        }
    }
}

/// The settings every replica on `database_url` needs, as `FERRY_*` variables.
pub fn postgres_env(database_url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("FERRY_STORE_BACKEND", "postgres".into()),
        ("FERRY_STORE_POSTGRES_URL", database_url.into()),
        ("FERRY_ENCRYPTION_KEY", ENCRYPTION_KEY.into()),
    ]
}

/// A store for benches' daemons: nothing to start for SQLite, a durable
/// throwaway cluster for PostgreSQL.
pub struct SharedStore {
    pub kind: StoreKind,
    cluster: Option<TestCluster>,
}

impl SharedStore {
    pub fn start(kind: StoreKind) -> anyhow::Result<SharedStore> {
        let cluster = match kind {
            StoreKind::Sqlite => None,
            StoreKind::Postgres => Some(TestCluster::try_start_durable()?),
        };
        Ok(SharedStore { kind, cluster })
    }

    /// PostgreSQL's server process, whose CPU time a bench may read.
    pub fn server_pid(&self) -> Option<u32> {
        self.cluster.as_ref().and_then(TestCluster::server_pid)
    }

    /// How the table titles name it.
    pub fn describe(&self) -> &'static str {
        match self.kind {
            StoreKind::Sqlite => "SQLite on disk",
            StoreKind::Postgres => "PostgreSQL on loopback (fsync and synchronous commit on)",
        }
    }

    /// The `FERRY_*` settings of one daemon, or of every replica of one
    /// fleet: for PostgreSQL a fresh database; for SQLite none (each daemon
    /// has its own file in its own data directory).
    pub async fn daemon_env(&self) -> anyhow::Result<Vec<(&'static str, String)>> {
        Ok(match &self.cluster {
            Some(cluster) => postgres_env(&cluster.fresh_database().await),
            None => Vec::new(),
        })
    }
}

/// Opens, in this process, the store a daemon ran on: its `env` from
/// [`SharedStore::daemon_env`], its SQLite file in `data_dir` otherwise.
pub async fn open_store(env: &[(&str, String)], data_dir: &Path) -> anyhow::Result<Arc<dyn Store>> {
    let url = env
        .iter()
        .find(|(key, _)| *key == "FERRY_STORE_POSTGRES_URL")
        .map(|(_, url)| url.clone());
    Ok(match url {
        Some(url) => {
            Arc::new(PostgresStore::open(&PostgresConfig::new(PostgresUrl::new(url))).await?)
        }
        None => Arc::new(SqliteStore::open(&SqliteConfig::new(
            data_dir.join("ferry.db"),
        ))?),
    })
}

/// Starts `count` replicas of `binary serve` with `env`; more than one must
/// share a PostgreSQL database (`env` from [`SharedStore::daemon_env`]).
pub fn start_replicas(
    binary: &Path,
    count: usize,
    env: &[(&str, &str)],
) -> anyhow::Result<Vec<DaemonProcess>> {
    let shared = env
        .iter()
        .any(|(key, value)| *key == "FERRY_STORE_BACKEND" && *value == "postgres");
    anyhow::ensure!(
        count >= 1 && (count == 1 || shared),
        "{count} replicas: several replicas need the postgres store"
    );
    (0..count)
        .map(|i| DaemonProcess::start(binary, env).with_context(|| format!("start replica {i}")))
        .collect()
}

/// The process id in a worker id, `ferry-<pid>-<id>`: which replica ran an
/// attempt.
pub fn worker_pid(worker_id: &str) -> Option<u32> {
    worker_id
        .strip_prefix("ferry-")
        .and_then(|rest| rest.split('-').next())
        .and_then(|pid| pid.parse().ok())
}

/// `env` as the borrowed pairs `DaemonProcess` takes.
pub fn borrowed<'a>(env: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    env.iter()
        .map(|(key, value)| (*key, value.as_str()))
        .collect()
}
