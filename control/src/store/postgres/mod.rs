//! The PostgreSQL backend: the store of several Ferry replicas sharing one
//! database. A pool of `tokio-postgres` connections (deadpool-postgres), the
//! schema migrated at open under an advisory lock (see `schema`), one file
//! per domain like the SQLite backend, and job events carried between
//! replicas by LISTEN/NOTIFY (see `events`).
//!
//! Every write runs in one transaction committed before its caller is
//! answered (`synchronous_commit` as the server has it, `on` by default), so
//! an acknowledged webhook or RPC is durable. Every invariant the SQLite
//! backend keeps by its single writer is kept here under concurrency: unique
//! constraints (one job per account and meeting uuid, unique configuration
//! names, one active user per email), row locks (`FOR UPDATE`) on the rows a
//! decision reads, and `FOR UPDATE SKIP LOCKED` for claims.
//!
//! Leases and clocks: a lease records the holder's expiry twice, in the
//! caller's clock (`lease_expires_ms`, with the id of the store instance whose
//! clock it is) and in the database's clock (`lease_expires_db`). A claim
//! takes over a lease once the database's clock has passed it, or once the
//! caller's clock has passed it when that lease was written through this very
//! store (the same clock, so no skew). A replica's clock therefore never
//! judges a lease written by another replica: skew cannot steal a live lease.
//! `Lease::expires_at` is in the caller's clock, as the caller measures it.
//!
//! It never logs, formats or returns the connection URL (its password).
//! Database failures are `Unavailable`; the pool reconnects by itself.

mod accounts;
mod companions;
mod configurations;
mod directory;
mod events;
mod job_list;
mod jobs;
mod leases;
mod media;
mod reconcile;
mod replicas;
mod retention;
mod schema;
mod sections;
mod tenants;
pub mod testing;
mod transfers;
mod web;
mod zoom_trash;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, QueueMode, RecyclingMethod, Runtime,
};
use tokio::sync::broadcast;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::FromSql;
use tokio_postgres::{NoTls, Row};
use tokio_util::sync::CancellationToken;

use super::{Page, PageQuery, StoreResult};
use crate::error::StoreError;
use crate::model::*;

pub use schema::SCHEMA_VERSION;

/// A PostgreSQL connection URL: a secret (it may hold a password), so its
/// `Debug` shows only where it points.
#[derive(Clone)]
pub struct PostgresUrl(String);

impl PostgresUrl {
    pub fn new(url: impl Into<String>) -> Self {
        PostgresUrl(url.into())
    }

    fn parse(&self) -> StoreResult<tokio_postgres::Config> {
        // The parser's message may quote the URL: never pass it on.
        tokio_postgres::Config::from_str(&self.0).map_err(|_| {
            StoreError::InvalidArgument(
                "postgres_url: not a valid postgres:// URL or key=value connection string".into(),
            )
        })
    }

    /// Checks the URL's shape without connecting.
    pub fn validate(&self) -> StoreResult<()> {
        self.parse().map(|_| ())
    }
}

impl std::fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PostgresUrl(<redacted>)")
    }
}

/// Settings of the PostgreSQL backend.
#[derive(Clone, Debug)]
pub struct PostgresConfig {
    pub url: PostgresUrl,
    /// Most connections open at once (the listener for job events is one more).
    pub pool_size: usize,
    /// How long opening a connection, or waiting for a free one, may take.
    pub connect_timeout: Duration,
}

impl PostgresConfig {
    pub fn new(url: PostgresUrl) -> Self {
        PostgresConfig {
            url,
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

pub struct PostgresStore {
    pool: Pool,
    /// Identifies this store's clock in the leases it writes (see the module docs).
    clock_id: String,
    job_events: broadcast::Sender<JobEvent>,
    progress: Arc<events::ProgressOutbox>,
    /// Stops the listener and the progress publisher when the store is dropped.
    stop: CancellationToken,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl PostgresStore {
    /// Connects, migrates the schema (refusing one newer than this build
    /// knows) and starts listening for other replicas' job events. Must be
    /// called within a Tokio runtime.
    pub async fn open(config: &PostgresConfig) -> StoreResult<PostgresStore> {
        let mut pg_config = config.url.parse()?;
        pg_config.connect_timeout(config.connect_timeout);
        pg_config.application_name("ferry");
        let manager = Manager::from_config(
            pg_config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        // The most recently used connection first: one caller after another
        // keeps reusing a warm connection, whose statements are prepared
        // (`prepare_cached`) and whose server backend has its caches,
        // where taking the oldest idle one would walk every connection and
        // prepare each statement on each. Under load all are used anyway.
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .queue_mode(QueueMode::Lifo)
            .wait_timeout(Some(config.connect_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.connect_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Unavailable(format!("postgres pool: {e}")))?;
        {
            let mut client = client_from(&pool).await?;
            schema::migrate(&mut client).await?;
        }
        let clock_id = super::new_id("clk");
        let (job_events, _) = broadcast::channel(4096);
        let stop = CancellationToken::new();
        let progress = Arc::new(events::ProgressOutbox::default());
        events::spawn_listener(
            pg_config,
            pool.clone(),
            clock_id.clone(),
            job_events.clone(),
            stop.clone(),
        )
        .await?;
        events::spawn_progress_publisher(
            pool.clone(),
            clock_id.clone(),
            progress.clone(),
            stop.clone(),
        );
        Ok(PostgresStore {
            pool,
            clock_id,
            job_events,
            progress,
            stop,
        })
    }

    /// A pooled connection; Unavailable when none can be had in time.
    async fn client(&self) -> StoreResult<Object> {
        client_from(&self.pool).await
    }

    fn publish(&self, job: &Job, progress_only: bool) {
        // No subscribers is fine: nobody is watching.
        let _ = self.job_events.send(JobEvent {
            job: job.clone(),
            progress_only,
        });
    }
}

async fn client_from(pool: &Pool) -> StoreResult<Object> {
    pool.get().await.map_err(|e| {
        let reason = match e {
            deadpool_postgres::PoolError::Backend(e) => pg_error(e).to_string(),
            deadpool_postgres::PoolError::Timeout(_) => "timed out waiting for a connection".into(),
            other => other.to_string(),
        };
        StoreError::Unavailable(format!("postgres: {reason}"))
    })
}

/// Maps a driver error to the store's classes: a unique violation is
/// AlreadyExists (callers with a better message map it themselves), anything
/// else (connection lost, server shutting down, lock timeouts) Unavailable.
/// Undecodable values are mapped where rows are read (`get`).
pub(super) fn pg_error(error: tokio_postgres::Error) -> StoreError {
    if error.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        let constraint = error
            .as_db_error()
            .and_then(|db| db.constraint())
            .unwrap_or("a unique constraint");
        return StoreError::AlreadyExists(format!("violates {constraint}"));
    }
    match error.as_db_error() {
        Some(db) => StoreError::Unavailable(format!("postgres: {}", db.message())),
        None => StoreError::Unavailable(format!("postgres: {error}")),
    }
}

fn is_unique_violation(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// Column `index` of `row`; a value that does not decode is Corrupt.
fn get<'a, T: FromSql<'a>>(row: &'a Row, index: usize) -> StoreResult<T> {
    row.try_get(index)
        .map_err(|e| StoreError::Corrupt(format!("postgres column {index}: {e}")))
}

/// A non-negative count or size stored as BIGINT.
fn get_u64(row: &Row, index: usize) -> StoreResult<u64> {
    let value: i64 = get(row, index)?;
    u64::try_from(value)
        .map_err(|_| StoreError::Corrupt(format!("postgres column {index}: negative {value}")))
}

fn get_u32(row: &Row, index: usize) -> StoreResult<u32> {
    let value: i64 = get(row, index)?;
    u32::try_from(value)
        .map_err(|_| StoreError::Corrupt(format!("postgres column {index}: {value} out of range")))
}

fn get_time(row: &Row, index: usize) -> StoreResult<Timestamp> {
    get::<i64>(row, index).map(Timestamp)
}

fn get_opt_time(row: &Row, index: usize) -> StoreResult<Option<Timestamp>> {
    get::<Option<i64>>(row, index).map(|t| t.map(Timestamp))
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

/// The `LIMIT` of a page query: one more than the page, to see whether more follow.
fn page_limit(page: &PageQuery) -> i64 {
    i64::from(page.limit()) + 1
}

fn page_after(page: &PageQuery) -> &str {
    page.after.as_deref().unwrap_or("")
}

#[cfg(test)]
mod history_tests;
#[cfg(test)]
mod tests;
