//! The embedded SQLite backend: one database file in WAL mode, migrated at
//! open, written by a single group-committing writer thread (see `engine`)
//! and read through a pool of read-only connections.
//!
//! Every write is committed with `synchronous = FULL` before its caller is
//! answered, so an acknowledged RPC survives `kill -9` and power loss.

mod accounts;
mod companions;
mod configurations;
mod directory;
mod engine;
#[cfg(test)]
mod history_tests;
mod job_list;
mod jobs;
mod media;
mod reconcile;
mod replicas;
mod retention;
mod schema;
mod sections;
mod tenants;
mod transfers;
mod web;
mod zoom_trash;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, params};
use tokio::sync::broadcast;

use self::engine::{Engine, EngineLimits, sql_error};
use super::{Page, PageQuery, StoreResult};
use crate::model::*;

/// The default WAL size past which it is checkpointed and reset: 64 MiB.
pub const DEFAULT_WAL_LIMIT_BYTES: u64 = 64 * 1024 * 1024;

/// Settings of the SQLite backend.
#[derive(Clone, Debug)]
pub struct SqliteConfig {
    /// The database file; its directory is created if missing.
    pub path: PathBuf,
    /// Most writes committed together in one transaction.
    pub max_batch: usize,
    /// Most scans running at once, and most idle reader connections kept.
    pub max_readers: usize,
    /// How long a connection waits for a lock held by another process.
    pub busy_timeout: Duration,
    /// The WAL size past which a checkpoint resets it (see `engine`).
    pub wal_limit_bytes: u64,
    /// Bytes of the database file each reader maps (`PRAGMA mmap_size`; 0:
    /// none). See [`DEFAULT_MMAP_BYTES`].
    pub mmap_bytes: u64,
}

/// Readers map the first 256 MiB of the database file. A point read then
/// touches pages in place: without it, every page outside a reader's small
/// private cache is a `pread` and a copy, which was half of the daemon's CPU
/// per `LookupUserByEmail` on a directory of 100,000 users. The mapped pages
/// are the kernel's page cache, shared by every reader (they count in RSS
/// as file-backed pages, and the kernel can drop them at any time).
pub const DEFAULT_MMAP_BYTES: u64 = 256 * 1024 * 1024;

impl SqliteConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteConfig {
            path: path.into(),
            max_batch: 256,
            max_readers: 8,
            busy_timeout: Duration::from_secs(5),
            wal_limit_bytes: DEFAULT_WAL_LIMIT_BYTES,
            mmap_bytes: DEFAULT_MMAP_BYTES,
        }
    }
}

pub struct SqliteStore {
    engine: Engine,
    job_events: broadcast::Sender<JobEvent>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database.
    pub fn open(config: &SqliteConfig) -> StoreResult<SqliteStore> {
        if let Some(parent) = config.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                crate::error::StoreError::Unavailable(format!(
                    "cannot create {}: {e}",
                    parent.display()
                ))
            })?;
        }
        let writer = open_writer(&config.path, config.busy_timeout)?;
        migrate(&writer)?;
        let (job_events, _) = broadcast::channel(4096);
        Ok(SqliteStore {
            engine: Engine::start(
                &config.path,
                writer,
                EngineLimits {
                    max_batch: config.max_batch,
                    max_readers: config.max_readers,
                    wal_limit_bytes: config.wal_limit_bytes,
                    mmap_bytes: config.mmap_bytes,
                },
                config.busy_timeout,
            ),
            job_events,
        })
    }

    fn publish(&self, job: &Job, progress_only: bool) {
        // No subscribers is fine: nobody is watching.
        let _ = self.job_events.send(JobEvent {
            job: job.clone(),
            progress_only,
        });
    }
}

fn open_writer(path: &Path, busy_timeout: Duration) -> StoreResult<Connection> {
    let conn = Connection::open(path).map_err(sql_error)?;
    conn.busy_timeout(busy_timeout).map_err(sql_error)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA wal_autocheckpoint = 0;
         PRAGMA journal_size_limit = 67108864;
         PRAGMA cache_size = -65536;",
    )
    .map_err(sql_error)?;
    Ok(conn)
}

fn migrate(conn: &Connection) -> StoreResult<()> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL)")
        .map_err(sql_error)?;
    let current: i64 = conn
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |row| row.get(0),
        )
        .map_err(sql_error)?;
    let newest = schema::MIGRATIONS.last().map_or(0, |(v, _)| *v);
    if current > newest {
        return Err(crate::error::StoreError::Unavailable(format!(
            "database schema version {current} is newer than this ferry ({newest}); upgrade ferry"
        )));
    }
    for (version, sql) in schema::MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        // Re-read the version under the write lock: another process opening
        // the same new file may have applied this migration meanwhile.
        conn.execute_batch("BEGIN IMMEDIATE").map_err(sql_error)?;
        let applied = conn
            .query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                [],
                |row| row.get::<_, i64>(0),
            )
            .and_then(|now_current| {
                if now_current >= *version {
                    return Ok(());
                }
                conn.execute_batch(sql)?;
                conn.execute(
                    "INSERT INTO schema_migrations (version, applied_ms) VALUES (?1, ?2)",
                    params![version, Timestamp::now().0],
                )
                .map(|_| ())
            });
        match applied {
            Ok(()) => conn.execute_batch("COMMIT").map_err(sql_error)?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(crate::error::StoreError::Unavailable(format!(
                    "migration {version} failed: {e}"
                )));
            }
        }
    }
    Ok(())
}

/// Cuts a `limit + 1` result down to a page and says whether more follow.
fn page_of<T>(mut rows: Vec<T>, page: &PageQuery, id: impl Fn(&T) -> &String) -> Page<T> {
    let limit = page.limit() as usize;
    let next_after = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|last| id(last).clone())
    } else {
        None
    };
    Page {
        items: rows,
        next_after,
    }
}

fn is_unique_violation(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::ConstraintViolation
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::TokenHash;
    use crate::store::{DirectoryStore, TenantStore, conformance};

    fn open_temp_store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().expect("create temp dir");
        let store = SqliteStore::open(&SqliteConfig::new(dir.path().join("ferry.db")))
            .expect("open sqlite store");
        (dir, store)
    }

    crate::store_conformance_tests!(async { open_temp_store() });

    /// The checks also hold when they share one database, as they will on a
    /// Postgres instance.
    #[tokio::test]
    async fn conformance_run_all_on_one_store() {
        let (_dir, store) = open_temp_store();
        conformance::run_all(&store).await;
    }

    #[tokio::test]
    async fn readers_map_the_configured_bytes_of_the_file() {
        let dir = tempfile::tempdir().expect("create temp dir");
        for mmap_bytes in [0, 8 * 1024 * 1024, DEFAULT_MMAP_BYTES] {
            let mut config = SqliteConfig::new(dir.path().join(format!("mapped-{mmap_bytes}.db")));
            config.mmap_bytes = mmap_bytes;
            let store = SqliteStore::open(&config).expect("open");
            let mapped: i64 = store
                .engine
                .read_point(|c| {
                    c.query_row("PRAGMA mmap_size", [], |row| row.get(0))
                        .map_err(engine::sql_error)
                })
                .expect("read mmap_size");
            assert_eq!(u64::try_from(mapped).ok(), Some(mmap_bytes));
        }
    }

    #[tokio::test]
    async fn committed_writes_survive_reopen_and_migration_is_idempotent() {
        let dir = tempfile::tempdir().expect("create temp dir");
        // A missing parent directory is created at open.
        let config = SqliteConfig::new(dir.path().join("state").join("ferry.db"));
        let operator_hash = TokenHash::of("fop_durability");
        let store = SqliteStore::open(&config).expect("open");
        let institution = store
            .create_institution("Durable University", Timestamp(1_000))
            .await
            .expect("create institution");
        assert!(
            store
                .init_operator_token_hash(operator_hash.clone())
                .await
                .expect("init operator hash")
        );
        store
            .sync_users(UserSync {
                institution_id: institution.institution_id.to_string(),
                mode: SyncMode::Full,
                records: vec![UserRecord {
                    record_index: 0,
                    external_id: "ada".into(),
                    email: "ada@example.edu".into(),
                    alternate_zoom_email: None,
                    display_name: "Ada".into(),
                    role: UserRole::Instructor,
                    ingest_choice: IngestChoice::Default,
                }],
                rejected_upfront: Vec::new(),
                now: Timestamp(2_000),
            })
            .await
            .expect("sync users");
        drop(store);

        let reopened = SqliteStore::open(&config).expect("reopen");
        assert_eq!(
            reopened
                .get_institution(&institution.institution_id)
                .await
                .expect("institution survives reopen"),
            institution
        );
        let user = reopened
            .lookup_user_by_email(&institution.institution_id, "ada@example.edu")
            .await
            .expect("lookup")
            .expect("user survives reopen");
        assert_eq!(user.external_id, "ada");
        assert!(
            reopened
                .operator_token_hash()
                .await
                .expect("read operator hash")
                .is_some_and(|hash| hash.matches(&operator_hash)),
            "operator hash survives reopen"
        );
        drop(reopened);

        // Migrating an up-to-date database again applies nothing.
        let conn = Connection::open(&config.path).expect("open raw connection");
        migrate(&conn).expect("migrate again");
        migrate(&conn).expect("and again");
        let versions: Vec<i64> = conn
            .prepare("SELECT version FROM schema_migrations ORDER BY version")
            .and_then(|mut statement| {
                statement
                    .query_map([], |row| row.get(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .expect("read schema_migrations");
        let expected: Vec<i64> = schema::MIGRATIONS.iter().map(|(v, _)| *v).collect();
        assert_eq!(versions, expected, "each migration is recorded once");
        drop(conn);
        let third = SqliteStore::open(&config).expect("open a third time");
        assert_eq!(
            third
                .list_institutions(&PageQuery::first(0))
                .await
                .expect("list")
                .items,
            vec![institution]
        );
    }
}
