//! The embedded SQLite backend: one database file in WAL mode, migrated at
//! open, written by a single group-committing writer thread (see `engine`)
//! and read through a pool of read-only connections.
//!
//! Every write is committed with `synchronous = FULL` before its caller is
//! answered, so an acknowledged RPC survives `kill -9` and power loss.

mod directory;
mod engine;
mod jobs;
mod schema;
mod tenants;
mod transfers;

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, params};
use tokio::sync::broadcast;

use self::engine::{Engine, sql_error};
use super::{Lease, Page, PageQuery, Store, StoreResult};
use crate::model::*;
use crate::secrets::TokenHash;

/// Settings of the SQLite backend.
#[derive(Clone, Debug)]
pub struct SqliteConfig {
    /// The database file; its directory is created if missing.
    pub path: PathBuf,
    /// Most writes committed together in one transaction.
    pub max_batch: usize,
    /// How long a connection waits for a lock held by another process.
    pub busy_timeout: Duration,
}

impl SqliteConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteConfig {
            path: path.into(),
            max_batch: 256,
            busy_timeout: Duration::from_secs(5),
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
            engine: Engine::start(&config.path, writer, config.max_batch, config.busy_timeout),
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
         PRAGMA journal_size_limit = 67108864;",
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

#[async_trait]
impl Store for SqliteStore {
    async fn operator_token_hash(&self) -> StoreResult<Option<TokenHash>> {
        self.engine.read(tenants::operator_token_hash).await
    }

    async fn init_operator_token_hash(&self, hash: TokenHash) -> StoreResult<bool> {
        self.engine
            .write(move |c| tenants::init_operator_token_hash(c, &hash))
            .await
    }

    async fn create_institution(
        &self,
        display_name: &str,
        now: Timestamp,
    ) -> StoreResult<Institution> {
        let display_name = display_name.to_string();
        self.engine
            .write(move |c| tenants::create_institution(c, &display_name, now))
            .await
    }

    async fn get_institution(&self, institution_id: &str) -> StoreResult<Institution> {
        self.engine
            .read_point(|c| tenants::get_institution(c, institution_id))
    }

    async fn list_institutions(&self, page: &PageQuery) -> StoreResult<Page<Institution>> {
        let page = page.clone();
        self.engine
            .read(move |c| tenants::list_institutions(c, &page))
            .await
    }

    async fn create_admin_key(
        &self,
        institution_id: &str,
        name: &str,
        hash: TokenHash,
        now: Timestamp,
    ) -> StoreResult<AdminKey> {
        let (institution_id, name) = (institution_id.to_string(), name.to_string());
        self.engine
            .write(move |c| tenants::create_admin_key(c, &institution_id, &name, &hash, now))
            .await
    }

    async fn get_admin_key(&self, key_id: &str) -> StoreResult<AdminKey> {
        self.engine
            .read_point(|c| tenants::get_admin_key(c, key_id))
    }

    async fn list_admin_keys(
        &self,
        institution_id: &str,
        page: &PageQuery,
    ) -> StoreResult<Page<AdminKey>> {
        let (institution_id, page) = (institution_id.to_string(), page.clone());
        self.engine
            .read(move |c| tenants::list_admin_keys(c, &institution_id, &page))
            .await
    }

    async fn revoke_admin_key(&self, key_id: &str, now: Timestamp) -> StoreResult<AdminKey> {
        let key_id = key_id.to_string();
        self.engine
            .write(move |c| tenants::revoke_admin_key(c, &key_id, now))
            .await
    }

    async fn find_admin_key(&self, hash: &TokenHash) -> StoreResult<Option<AdminKey>> {
        self.engine.read_point(|c| tenants::find_admin_key(c, hash))
    }

    async fn create_configuration(
        &self,
        institution_id: &str,
        display_name: &str,
        view_priority: &[String],
        token_hash: TokenHash,
        now: Timestamp,
    ) -> StoreResult<ZoomConfiguration> {
        let (institution_id, display_name) = (institution_id.to_string(), display_name.to_string());
        let view_priority = view_priority.to_vec();
        self.engine
            .write(move |c| {
                tenants::create_configuration(
                    c,
                    &institution_id,
                    &display_name,
                    &view_priority,
                    &token_hash,
                    now,
                )
            })
            .await
    }

    async fn get_configuration(
        &self,
        institution_id: &str,
        configuration_id: &str,
    ) -> StoreResult<ZoomConfiguration> {
        self.engine
            .read_point(|c| tenants::get_configuration(c, institution_id, configuration_id))
    }

    async fn list_configurations(
        &self,
        institution_id: &str,
        page: &PageQuery,
    ) -> StoreResult<Page<ZoomConfiguration>> {
        let (institution_id, page) = (institution_id.to_string(), page.clone());
        self.engine
            .read(move |c| tenants::list_configurations(c, &institution_id, &page))
            .await
    }

    async fn update_configuration(
        &self,
        institution_id: &str,
        configuration_id: &str,
        update: ConfigurationUpdate,
    ) -> StoreResult<ZoomConfiguration> {
        let (institution_id, configuration_id) =
            (institution_id.to_string(), configuration_id.to_string());
        self.engine
            .write(move |c| {
                tenants::update_configuration(c, &institution_id, &configuration_id, &update)
            })
            .await
    }

    async fn rotate_configuration_token(
        &self,
        institution_id: &str,
        configuration_id: &str,
        token_hash: TokenHash,
        now: Timestamp,
    ) -> StoreResult<ZoomConfiguration> {
        let (institution_id, configuration_id) =
            (institution_id.to_string(), configuration_id.to_string());
        self.engine
            .write(move |c| {
                tenants::rotate_configuration_token(
                    c,
                    &institution_id,
                    &configuration_id,
                    &token_hash,
                    now,
                )
            })
            .await
    }

    async fn delete_configuration(
        &self,
        institution_id: &str,
        configuration_id: &str,
        now: Timestamp,
    ) -> StoreResult<Vec<String>> {
        let (institution_id, configuration_id) =
            (institution_id.to_string(), configuration_id.to_string());
        self.engine
            .write(move |c| {
                tenants::delete_configuration(c, &institution_id, &configuration_id, now)
            })
            .await
    }

    async fn find_configuration_by_token(
        &self,
        hash: &TokenHash,
    ) -> StoreResult<Option<ZoomConfiguration>> {
        self.engine
            .read_point(|c| tenants::find_configuration_by_token(c, hash))
    }

    async fn install_account(&self, install: AccountInstall) -> StoreResult<ZoomAccount> {
        self.engine
            .write(move |c| tenants::install_account(c, &install))
            .await
    }

    async fn get_account(
        &self,
        institution_id: &str,
        zoom_account_id: &str,
    ) -> StoreResult<ZoomAccount> {
        self.engine
            .read_point(|c| tenants::get_account(c, institution_id, zoom_account_id))
    }

    async fn list_accounts(
        &self,
        institution_id: &str,
        include_uninstalled: bool,
        page: &PageQuery,
    ) -> StoreResult<Page<ZoomAccount>> {
        let (institution_id, page) = (institution_id.to_string(), page.clone());
        self.engine
            .read(move |c| tenants::list_accounts(c, &institution_id, include_uninstalled, &page))
            .await
    }

    async fn uninstall_account(
        &self,
        institution_id: Option<&str>,
        zoom_account_id: &str,
        now: Timestamp,
    ) -> StoreResult<ZoomAccount> {
        let (institution_id, zoom_account_id) = (
            institution_id.map(str::to_string),
            zoom_account_id.to_string(),
        );
        self.engine
            .write(move |c| {
                tenants::uninstall_account(c, institution_id.as_deref(), &zoom_account_id, now)
            })
            .await
    }

    async fn installed_account(&self, zoom_account_id: &str) -> StoreResult<Option<ZoomAccount>> {
        self.engine
            .read_point(|c| tenants::installed_account(c, zoom_account_id))
    }

    async fn sync_users(
        &self,
        institution_id: &str,
        mode: SyncMode,
        records: Vec<UserRecord>,
        rejected_upfront: Vec<RejectedRecord>,
        now: Timestamp,
    ) -> StoreResult<SyncOutcome> {
        let institution_id = institution_id.to_string();
        self.engine
            .write(move |c| {
                directory::sync_users(c, &institution_id, mode, records, rejected_upfront, now)
            })
            .await
    }

    async fn lookup_user_by_email(
        &self,
        institution_id: &str,
        email: &str,
    ) -> StoreResult<Option<User>> {
        self.engine
            .read_point(|c| directory::lookup_user_by_email(c, institution_id, email))
    }

    async fn get_user(&self, institution_id: &str, user_id: &str) -> StoreResult<User> {
        self.engine
            .read_point(|c| directory::get_user(c, institution_id, user_id))
    }

    async fn list_users(
        &self,
        institution_id: &str,
        include_inactive: bool,
        page: &PageQuery,
    ) -> StoreResult<Page<User>> {
        let (institution_id, page) = (institution_id.to_string(), page.clone());
        self.engine
            .read(move |c| directory::list_users(c, &institution_id, include_inactive, &page))
            .await
    }

    async fn upsert_job(&self, job: NewJob) -> StoreResult<(Job, bool)> {
        let (job, created) = self
            .engine
            .write(move |c| jobs::upsert_job(c, &job))
            .await?;
        if created {
            self.publish(&job, false);
        }
        Ok((job, created))
    }

    async fn get_job(&self, institution_id: &str, job_id: &str) -> StoreResult<Job> {
        self.engine
            .read_point(|c| jobs::get_job(c, institution_id, job_id))
    }

    async fn get_job_secrets(&self, institution_id: &str, job_id: &str) -> StoreResult<JobSecrets> {
        self.engine
            .read_point(|c| jobs::get_job_secrets(c, institution_id, job_id))
    }

    async fn list_jobs(
        &self,
        institution_id: &str,
        filter: &JobFilter,
        page: &PageQuery,
    ) -> StoreResult<Page<Job>> {
        let (institution_id, filter, page) =
            (institution_id.to_string(), filter.clone(), page.clone());
        self.engine
            .read(move |c| jobs::list_jobs(c, &institution_id, &filter, &page))
            .await
    }

    async fn job_counts(&self) -> StoreResult<JobCounts> {
        self.engine.read(jobs::job_counts).await
    }

    async fn requeue_job(
        &self,
        institution_id: &str,
        job_id: &str,
        requeue: JobRequeue,
        now: Timestamp,
    ) -> StoreResult<Job> {
        let (institution_id, job_id) = (institution_id.to_string(), job_id.to_string());
        let job = self
            .engine
            .write(move |c| jobs::requeue_job(c, &institution_id, &job_id, &requeue, now))
            .await?;
        self.publish(&job, false);
        Ok(job)
    }

    async fn cancel_job(
        &self,
        institution_id: &str,
        job_id: &str,
        now: Timestamp,
    ) -> StoreResult<Job> {
        let (institution_id, job_id) = (institution_id.to_string(), job_id.to_string());
        let job = self
            .engine
            .write(move |c| jobs::cancel_job(c, &institution_id, &job_id, now))
            .await?;
        self.publish(&job, false);
        Ok(job)
    }

    async fn claim_job(
        &self,
        worker_id: &str,
        lease: Duration,
        now: Timestamp,
    ) -> StoreResult<Option<Lease>> {
        let worker_id = worker_id.to_string();
        let claimed = self
            .engine
            .write(move |c| jobs::claim_job(c, &worker_id, lease, now))
            .await?;
        if let Some(lease) = &claimed {
            self.publish(&lease.job, false);
        }
        Ok(claimed)
    }

    async fn renew_lease(
        &self,
        job_id: &str,
        worker_id: &str,
        lease: Duration,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let (job_id, worker_id) = (job_id.to_string(), worker_id.to_string());
        self.engine
            .write(move |c| jobs::renew_lease(c, &job_id, &worker_id, lease, now))
            .await
    }

    async fn complete_job(
        &self,
        job_id: &str,
        worker_id: &str,
        media: NewMedia,
        now: Timestamp,
    ) -> StoreResult<(Job, Media)> {
        let (job_id, worker_id) = (job_id.to_string(), worker_id.to_string());
        let (job, media) = self
            .engine
            .write(move |c| jobs::complete_job(c, &job_id, &worker_id, &media, now))
            .await?;
        self.publish(&job, false);
        Ok((job, media))
    }

    async fn start_upload(
        &self,
        job_id: &str,
        worker_id: &str,
        upload: UploadRecord,
    ) -> StoreResult<()> {
        let (job_id, worker_id) = (job_id.to_string(), worker_id.to_string());
        self.engine
            .write(move |c| transfers::start_upload(c, &job_id, &worker_id, &upload))
            .await
    }

    async fn upload_state(&self, job_id: &str) -> StoreResult<Option<UploadState>> {
        self.engine
            .read_point(|c| transfers::upload_state(c, job_id))
    }

    async fn record_part(
        &self,
        job_id: &str,
        worker_id: &str,
        part: PartRecord,
        bytes_transferred: u64,
    ) -> StoreResult<()> {
        let (job_id, worker_id) = (job_id.to_string(), worker_id.to_string());
        self.engine
            .write(move |c| {
                transfers::record_part(c, &job_id, &worker_id, &part, bytes_transferred)
            })
            .await
    }

    async fn begin_attempt(&self, start: AttemptStart) -> StoreResult<u32> {
        self.engine
            .write(move |c| transfers::begin_attempt(c, &start))
            .await
    }

    async fn job_attempts(&self, job_id: &str) -> StoreResult<Vec<JobAttempt>> {
        self.engine
            .read_point(|c| transfers::job_attempts(c, job_id))
    }

    async fn drop_upload(&self, job_id: &str) -> StoreResult<()> {
        let job_id = job_id.to_string();
        self.engine
            .write(move |c| transfers::drop_upload(c, &job_id))
            .await
    }

    async fn abandoned_uploads(&self) -> StoreResult<Vec<(String, UploadRecord)>> {
        self.engine.read(transfers::abandoned_uploads).await
    }

    async fn tracked_upload_ids(&self) -> StoreResult<Vec<String>> {
        self.engine.read(transfers::tracked_upload_ids).await
    }

    async fn finish_job(
        &self,
        job_id: &str,
        worker_id: &str,
        outcome: JobOutcome,
        now: Timestamp,
    ) -> StoreResult<Job> {
        let (job_id, worker_id) = (job_id.to_string(), worker_id.to_string());
        let job = self
            .engine
            .write(move |c| {
                transfers::finish_job(c, &job_id, &worker_id, &outcome, now)?;
                jobs::find_job_by_id(c, &job_id)
            })
            .await?;
        self.publish(&job, false);
        Ok(job)
    }

    fn publish_progress(&self, job: Job) {
        let _ = self.job_events.send(JobEvent {
            job,
            progress_only: true,
        });
    }

    fn subscribe_job_events(&self) -> broadcast::Receiver<JobEvent> {
        self.job_events.subscribe()
    }

    async fn get_media(&self, institution_id: &str, media_id: &str) -> StoreResult<Media> {
        self.engine
            .read_point(|c| jobs::get_media(c, institution_id, media_id))
    }

    async fn list_media(
        &self,
        institution_id: &str,
        owner_user_id: Option<&str>,
        page: &PageQuery,
    ) -> StoreResult<Page<Media>> {
        let (institution_id, owner, page) = (
            institution_id.to_string(),
            owner_user_id.map(str::to_string),
            page.clone(),
        );
        self.engine
            .read(move |c| jobs::list_media(c, &institution_id, owner.as_deref(), &page))
            .await
    }

    async fn transfer_media_ownership(
        &self,
        institution_id: &str,
        media_id: &str,
        new_owner_user_id: &str,
    ) -> StoreResult<Media> {
        let (institution_id, media_id, owner) = (
            institution_id.to_string(),
            media_id.to_string(),
            new_owner_user_id.to_string(),
        );
        self.engine
            .write(move |c| jobs::transfer_media_ownership(c, &institution_id, &media_id, &owner))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance;

    fn open_temp_store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().expect("create temp dir");
        let store = SqliteStore::open(&SqliteConfig::new(dir.path().join("ferry.db")))
            .expect("open sqlite store");
        (dir, store)
    }

    /// One test per conformance check, each on its own fresh database, so a
    /// failure names the rule that broke.
    macro_rules! conformance_tests {
        ($($check:ident),* $(,)?) => {
            $(
                #[tokio::test]
                async fn $check() {
                    let (_dir, store) = open_temp_store();
                    conformance::$check(&store).await;
                }
            )*
        };
    }

    conformance_tests!(
        operator_token,
        institutions,
        admin_keys,
        configurations,
        configuration_delete,
        accounts,
        user_sync_modes,
        user_sync_conflicts,
        job_upsert_and_scope,
        job_list_filters,
        job_leases,
        job_cancel_and_requeue,
        job_completion_and_media,
        job_events,
        transfer_state_and_attempts,
    );

    /// The checks also hold when they share one database, as they will on a
    /// Postgres instance.
    #[tokio::test]
    async fn conformance_run_all_on_one_store() {
        let (_dir, store) = open_temp_store();
        conformance::run_all(&store).await;
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
            .sync_users(
                &institution.institution_id,
                SyncMode::Full,
                vec![UserRecord {
                    record_index: 0,
                    external_id: "ada".into(),
                    email: "ada@example.edu".into(),
                    alternate_zoom_email: None,
                    display_name: "Ada".into(),
                    role: UserRole::Instructor,
                }],
                Vec::new(),
                Timestamp(2_000),
            )
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
