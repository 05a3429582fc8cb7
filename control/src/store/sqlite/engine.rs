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

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::error::StoreError;
use crate::store::StoreResult;

type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;
type WriteOp = Box<dyn FnOnce(&Connection) -> (bool, Completion) + Send>;

pub(super) struct Engine {
    /// Set when the store is dropped: stops the checkpoint thread.
    closed: Arc<std::sync::atomic::AtomicBool>,
    path: PathBuf,
    write_tx: mpsc::Sender<WriteOp>,
    readers: Arc<ReaderPool>,
    busy_timeout: Duration,
}

/// Idle reader connections, and the permits of scans in flight.
struct ReaderPool {
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
    scans: Semaphore,
}

impl ReaderPool {
    fn take(&self, path: &Path, busy_timeout: Duration) -> StoreResult<Connection> {
        let pooled = self.idle.lock().expect("reader pool lock").pop();
        match pooled {
            Some(conn) => Ok(conn),
            None => open_reader(path, busy_timeout),
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
        max_batch: usize,
        max_readers: usize,
        busy_timeout: Duration,
    ) -> Engine {
        let (write_tx, write_rx) = mpsc::channel::<WriteOp>(4096);
        std::thread::Builder::new()
            .name("ferry-sqlite-writer".into())
            .spawn(move || run_writer(writer, write_rx, max_batch.max(1)))
            .expect("spawning the sqlite writer thread");
        let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (checkpoint_path, checkpoint_closed) = (path.to_path_buf(), closed.clone());
        std::thread::Builder::new()
            .name("ferry-sqlite-checkpoint".into())
            .spawn(move || run_checkpoints(&checkpoint_path, &checkpoint_closed, busy_timeout))
            .expect("spawning the sqlite checkpoint thread");
        Engine {
            closed,
            path: path.to_path_buf(),
            write_tx,
            readers: Arc::new(ReaderPool {
                idle: Mutex::new(Vec::new()),
                max_idle: max_readers.max(1),
                scans: Semaphore::new(max_readers.max(1)),
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
fn open_reader(path: &Path, busy_timeout: Duration) -> StoreResult<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql_error)?;
    conn.busy_timeout(busy_timeout).map_err(sql_error)?;
    conn.execute_batch("PRAGMA query_only = ON")
        .map_err(sql_error)?;
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(sql_error)?;
    Ok(conn)
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Copies the WAL into the database file every half second, on its own
/// connection. Automatic checkpoints are off on the writer: they would run
/// inline after a commit and put a database-file fsync (tens of ms on a busy
/// disk) in front of every write waiting behind it. Commits stay durable:
/// each still fsyncs the WAL.
fn run_checkpoints(path: &Path, closed: &std::sync::atomic::AtomicBool, busy_timeout: Duration) {
    let Ok(conn) = Connection::open(path) else {
        tracing::error!("could not open a connection for WAL checkpoints");
        return;
    };
    let _ = conn.busy_timeout(busy_timeout);
    while !closed.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(500));
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "WAL checkpoint failed");
        }
    }
}

fn run_writer(conn: Connection, mut write_rx: mpsc::Receiver<WriteOp>, max_batch: usize) {
    let mut batch = Vec::with_capacity(max_batch);
    while let Some(first) = write_rx.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match write_rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        commit_group(&conn, &mut batch);
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
