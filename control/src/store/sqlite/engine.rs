//! How the SQLite backend runs statements: one writer thread that commits in
//! groups, and a bounded pool of reader connections: at most `max_readers`
//! scans run at once on the blocking pool, and at most `max_readers` idle
//! connections are kept (point reads run on the async worker that asks, so
//! their number is bounded by the runtime's workers).
//!
//! Group commit: every write is a closure sent to the writer thread. The
//! thread takes whatever writes are waiting (up to `max_batch`), runs each
//! inside its own SAVEPOINT of one transaction, commits once (one fsync for
//! the whole group), and only then answers each caller. A write whose
//! closure fails is rolled back to its savepoint without touching the others.
//! A failed COMMIT fails every write of the group, so no caller is ever told
//! "done" for data that is not on disk.
//!
//! The WAL stays bounded: a checkpoint thread copies it into the database
//! file (PASSIVE, never blocking writers) every tick, and once the file
//! passes `wal_limit_bytes` the writer thread resets it: after the group
//! that passed the limit it runs a TRUNCATE checkpoint, which copies the few frames
//! the passive pass left, waits briefly (`WAL_RESET_BUSY_WAIT`) for readers
//! still on the WAL, and truncates it. Passive checkpoints alone never catch
//! up while writes continue, and a checkpoint on another connection would
//! never win the write lock from a writer committing back to back. When the
//! store is dropped, queued writes finish, then a last TRUNCATE checkpoint
//! leaves the WAL empty.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::error::StoreError;
use crate::store::StoreResult;

type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;
type WriteOp = Box<dyn FnOnce(&Connection) -> (bool, Completion) + Send>;

/// How often the checkpoint thread looks at the WAL.
const CHECKPOINT_TICK: Duration = Duration::from_millis(100);
/// How long a WAL reset waits for the writer's transaction and for readers
/// still on the WAL before giving up until the next group.
const WAL_RESET_BUSY_WAIT: Duration = Duration::from_millis(100);
/// How long the last checkpoint at close may wait for a lock.
const CLOSE_BUSY_WAIT: Duration = Duration::from_secs(2);

pub(super) struct Engine {
    path: PathBuf,
    /// `None` once dropping: closing it lets the writer drain and stop.
    write_tx: Option<mpsc::Sender<WriteOp>>,
    writer: Option<JoinHandle<()>>,
    /// Dropping it tells the checkpoint thread to truncate the WAL and stop.
    checkpoint_stop_tx: Option<std::sync::mpsc::Sender<()>>,
    checkpointer: Option<JoinHandle<()>>,
    readers: Arc<ReaderPool>,
    busy_timeout: Duration,
}

/// Idle reader connections, and the permits of scans in flight.
struct ReaderPool {
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
    scans: Semaphore,
    mmap_bytes: u64,
}

impl ReaderPool {
    fn take(&self, path: &Path, busy_timeout: Duration) -> StoreResult<Connection> {
        let pooled = self.idle.lock().expect("reader pool lock").pop();
        match pooled {
            Some(conn) => Ok(conn),
            None => open_reader(path, busy_timeout, self.mmap_bytes),
        }
    }

    /// Keeps `conn` for the next read unless enough are kept already.
    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().expect("reader pool lock");
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
    }
}

impl Engine {
    pub(super) fn start(
        path: &Path,
        writer: Connection,
        limits: EngineLimits,
        busy_timeout: Duration,
    ) -> Engine {
        let (write_tx, write_rx) = mpsc::channel::<WriteOp>(4096);
        let group_writer = GroupWriter {
            conn: writer,
            max_batch: limits.max_batch.max(1),
            wal: wal_path(path),
            wal_limit_bytes: limits.wal_limit_bytes,
            busy_timeout,
        };
        let writer = std::thread::Builder::new()
            .name("ferry-sqlite-writer".into())
            .spawn(move || group_writer.run(write_rx))
            .expect("spawning the sqlite writer thread");
        let (checkpoint_stop_tx, checkpoint_stop_rx) = std::sync::mpsc::channel::<()>();
        let checkpoint = Checkpointer {
            path: path.to_path_buf(),
            busy_timeout,
        };
        let checkpointer = std::thread::Builder::new()
            .name("ferry-sqlite-checkpoint".into())
            .spawn(move || checkpoint.run(&checkpoint_stop_rx))
            .expect("spawning the sqlite checkpoint thread");
        let max_readers = limits.max_readers;
        Engine {
            path: path.to_path_buf(),
            write_tx: Some(write_tx),
            writer: Some(writer),
            checkpoint_stop_tx: Some(checkpoint_stop_tx),
            checkpointer: Some(checkpointer),
            readers: Arc::new(ReaderPool {
                idle: Mutex::new(Vec::new()),
                max_idle: max_readers.max(1),
                scans: Semaphore::new(max_readers.max(1)),
                mmap_bytes: limits.mmap_bytes,
            }),
            busy_timeout,
        }
    }

    /// Runs `op` in the writer's current group transaction and returns its
    /// result once the group is durably committed.
    pub(super) async fn write<T, F>(&self, op: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (done_tx, done_rx) = oneshot::channel::<StoreResult<T>>();
        let write_op: WriteOp = Box::new(move |conn| {
            let result = op(conn);
            let ok = result.is_ok();
            let completion: Completion = Box::new(move |commit| {
                let outcome = match commit {
                    Ok(()) => result,
                    Err(message) => Err(StoreError::Unavailable(message)),
                };
                let _ = done_tx.send(outcome);
            });
            (ok, completion)
        });
        self.write_tx
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("sqlite writer has stopped".into()))?
            .send(write_op)
            .await
            .map_err(|_| StoreError::Unavailable("sqlite writer has stopped".into()))?;
        done_rx
            .await
            .map_err(|_| StoreError::Unavailable("sqlite write was abandoned".into()))?
    }

    /// Runs a point read (one indexed row, a few microseconds) right here on
    /// the async worker: a hop to the blocking pool would cost more than the
    /// query. Only for single-row lookups by key; scans use `read`.
    pub(super) fn read_point<T, F>(&self, op: F) -> StoreResult<T>
    where
        F: FnOnce(&Connection) -> StoreResult<T>,
    {
        let conn = self.readers.take(&self.path, self.busy_timeout)?;
        let result = op(&conn);
        self.readers.give_back(conn);
        result
    }

    /// Runs `op` on a pooled read-only connection on the blocking pool.
    pub(super) async fn read<T, F>(&self, op: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let _scan = self
            .readers
            .scans
            .acquire()
            .await
            .map_err(|_| StoreError::Unavailable("sqlite reader pool closed".into()))?;
        let readers = Arc::clone(&self.readers);
        let path = self.path.clone();
        let busy_timeout = self.busy_timeout;
        tokio::task::spawn_blocking(move || {
            let conn = readers.take(&path, busy_timeout)?;
            let result = op(&conn);
            readers.give_back(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("sqlite read task failed: {e}")))?
    }
}

/// Readers open the file read-write but refuse writes with `query_only`: a
/// connection opened read-only cannot share the WAL index (`-shm`) and would
/// rebuild it from the whole WAL on every read transaction.
/// Each maps `mmap_bytes` of the file (see `DEFAULT_MMAP_BYTES`).
fn open_reader(path: &Path, busy_timeout: Duration, mmap_bytes: u64) -> StoreResult<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql_error)?;
    conn.busy_timeout(busy_timeout).map_err(sql_error)?;
    conn.execute_batch(&format!(
        "PRAGMA query_only = ON; PRAGMA mmap_size = {mmap_bytes};"
    ))
    .map_err(sql_error)?;
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(sql_error)?;
    Ok(conn)
}

/// The sizes an engine works within.
#[derive(Clone, Copy, Debug)]
pub(super) struct EngineLimits {
    pub(super) max_batch: usize,
    pub(super) max_readers: usize,
    pub(super) wal_limit_bytes: u64,
    /// `PRAGMA mmap_size` of every reader.
    pub(super) mmap_bytes: u64,
}

impl Drop for Engine {
    /// Lets queued writes finish, then checkpoints and truncates the WAL, so
    /// a clean shutdown leaves the database file whole and the WAL empty.
    fn drop(&mut self) {
        drop(self.write_tx.take());
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::error!("the sqlite writer thread panicked");
        }
        drop(self.checkpoint_stop_tx.take());
        if let Some(checkpointer) = self.checkpointer.take()
            && checkpointer.join().is_err()
        {
            tracing::error!("the sqlite checkpoint thread panicked");
        }
    }
}

/// The WAL file beside the database `path`.
pub(super) fn wal_path(path: &Path) -> PathBuf {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

/// Copies the WAL into the database file every tick, on its own connection.
/// Automatic checkpoints are off on the writer: they would run inline after
/// a commit and put a database-file fsync (tens of ms on a busy disk) in
/// front of every write waiting behind it. Commits stay durable: each still
/// fsyncs the WAL.
struct Checkpointer {
    path: PathBuf,
    busy_timeout: Duration,
}

impl Checkpointer {
    fn run(&self, stop_rx: &std::sync::mpsc::Receiver<()>) {
        let Ok(conn) = Connection::open(&self.path) else {
            tracing::error!("could not open a connection for WAL checkpoints");
            return;
        };
        let _ = conn.busy_timeout(self.busy_timeout);
        let wal = wal_path(&self.path);
        while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
            stop_rx.recv_timeout(CHECKPOINT_TICK)
        {
            if let Err(e) = checkpoint(&conn, "PASSIVE") {
                tracing::warn!(error = %e, "WAL checkpoint failed");
            }
            let wal_bytes = std::fs::metadata(&wal).map_or(0, |m| m.len());
            metrics::gauge!(crate::metrics::STORE_WAL_BYTES).set(wal_bytes as f64);
        }
        let _ = conn.busy_timeout(CLOSE_BUSY_WAIT);
        match checkpoint(&conn, "TRUNCATE") {
            Ok(false) => {}
            Ok(true) => tracing::warn!("the WAL could not be truncated at close: still in use"),
            Err(e) => tracing::warn!(error = %e, "the last WAL checkpoint failed"),
        }
    }
}

/// Runs `PRAGMA wal_checkpoint(mode)`; true when it could not finish
/// because a lock was held (SQLITE_BUSY in its first column).
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<bool> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        row.get::<_, i64>(0)
    })
    .map(|busy| busy != 0)
}

/// The writer thread: group commits, and the WAL reset between two groups.
struct GroupWriter {
    conn: Connection,
    max_batch: usize,
    wal: PathBuf,
    wal_limit_bytes: u64,
    busy_timeout: Duration,
}

impl GroupWriter {
    fn run(self, mut write_rx: mpsc::Receiver<WriteOp>) {
        let mut batch = Vec::with_capacity(self.max_batch);
        while let Some(first) = write_rx.blocking_recv() {
            batch.push(first);
            while batch.len() < self.max_batch {
                match write_rx.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            commit_group(&self.conn, &mut batch);
            // One stat per group, beside an fsync: negligible.
            if std::fs::metadata(&self.wal).is_ok_and(|m| m.len() > self.wal_limit_bytes) {
                self.reset_wal();
            }
        }
    }

    /// Checkpoints the whole WAL and truncates it. The checkpoint thread's
    /// passive passes copied nearly everything, so the writes queued behind
    /// this wait for the last frames, one database fsync, and at most
    /// `WAL_RESET_BUSY_WAIT` for readers; if readers are still on the WAL
    /// then, the next group tries again.
    fn reset_wal(&self) {
        let started = std::time::Instant::now();
        let _ = self.conn.busy_timeout(WAL_RESET_BUSY_WAIT);
        match checkpoint(&self.conn, "TRUNCATE") {
            Ok(false) => {
                metrics::counter!(crate::metrics::STORE_WAL_RESETS_TOTAL).increment(1);
                tracing::debug!(elapsed = ?started.elapsed(), "WAL reset");
            }
            Ok(true) => tracing::debug!("WAL reset waits for readers"),
            Err(e) => tracing::warn!(error = %e, "WAL reset failed"),
        }
        let _ = self.conn.busy_timeout(self.busy_timeout);
    }
}

fn commit_group(conn: &Connection, batch: &mut Vec<WriteOp>) {
    let started = std::time::Instant::now();
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        // Dropping the ops drops their reply channels: every caller gets
        // Unavailable, so nothing is acknowledged that was not committed.
        tracing::error!(error = %e, writes = batch.len(), "could not begin a store transaction");
        batch.clear();
        return;
    }
    let mut completions = Vec::with_capacity(batch.len());
    for op in batch.drain(..) {
        if let Err(e) = conn.execute_batch("SAVEPOINT ferry_op") {
            tracing::error!(error = %e, "could not open a savepoint; write dropped");
            drop(op);
            continue;
        }
        match std::panic::catch_unwind(AssertUnwindSafe(|| op(conn))) {
            Ok((true, completion)) => {
                let _ = conn.execute_batch("RELEASE ferry_op");
                completions.push(completion);
            }
            Ok((false, completion)) => {
                let _ = conn.execute_batch("ROLLBACK TO ferry_op; RELEASE ferry_op");
                completions.push(completion);
            }
            Err(_) => {
                // The op's reply channel was dropped while unwinding: its caller
                // sees "abandoned". Undo its partial work and keep serving.
                let _ = conn.execute_batch("ROLLBACK TO ferry_op; RELEASE ferry_op");
                tracing::error!("a store write panicked and was rolled back");
            }
        }
    }
    let commit = conn.execute_batch("COMMIT").map_err(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        format!("commit failed: {e}")
    });
    metrics::histogram!(crate::metrics::STORE_COMMIT_SECONDS)
        .record(started.elapsed().as_secs_f64());
    if let Err(message) = &commit {
        tracing::error!(error = %message, writes = completions.len(), "store group commit failed");
    }
    for completion in completions {
        completion(commit.clone());
    }
}

/// A row that cannot be decoded is corrupt (no retry fixes it); any other
/// SQLite failure is the store being unavailable.
pub(super) fn sql_error(error: rusqlite::Error) -> StoreError {
    match error {
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::IntegralValueOutOfRange(..) => {
            StoreError::Corrupt(format!("sqlite: {error}"))
        }
        _ => StoreError::Unavailable(format!("sqlite: {error}")),
    }
}
