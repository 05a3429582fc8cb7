//! Throwaway PostgreSQL clusters for tests, benches and `ferry demo
//! --replicas`: `TestCluster::shared()` starts
//! one cluster per test process (on first use) and gives each caller a fresh
//! database (`fresh_database`), so checks stay independent;
//! `TestCluster::start()` gives a test a cluster of its own, which it may
//! stop and start again (an outage) and which is removed when dropped.
//!
//! A cluster is `initdb` into a temporary folder and `pg_ctl start` on a free
//! loopback port (and a Unix socket in that folder), with trust
//! authentication and without fsync: test data only. Benches that measure
//! durable acknowledgement start theirs with `try_start_durable`, which keeps
//! PostgreSQL's own defaults (fsync, synchronous commit, full page writes)
//! and sizes the server as the README recommends ([`durable_settings`]). Run as root, the
//! binaries run as the `postgres` user (PostgreSQL refuses root). A watchdog
//! process in its own session stops the cluster (`pg_ctl stop -m immediate`)
//! and removes the folder within a second of the test process ending, even
//! when it panics or is killed, so no postgres process outlives the tests.
//!
//! It never skips: without PostgreSQL's binaries `start` panics and
//! `try_start` returns [`ClusterError::Missing`], naming what to install.
//! `FERRY_PG_BIN` may name the folder of `initdb` and `pg_ctl`; otherwise
//! the newest `/usr/lib/postgresql/*/bin` (Debian) is used, then whatever
//! `initdb` is on PATH. The README shows the same commands by hand.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::{PostgresConfig, PostgresStore, PostgresUrl};

/// A durable cluster's settings: the server sizing the README recommends
/// for Ferry's database (PostgreSQL's defaults for fsync, synchronous
/// commit and full page writes, all on; shared buffers that hold the jobs
/// indexes' insert points, a quarter of the machine's memory up to 4 GiB;
/// checkpoints far enough apart, and full-page images compressed, that a
/// webhook's insert does not write a page image per index after every
/// checkpoint).
pub fn durable_settings() -> String {
    format!(
        " -c shared_buffers={}MB -c max_wal_size=8GB -c checkpoint_timeout=15min \
         -c wal_compression=lz4",
        shared_buffers_mib(memory_mib())
    )
}

/// A quarter of `memory_mib`, at least PostgreSQL's default 128 MiB and at
/// most 4 GiB.
fn shared_buffers_mib(memory_mib: Option<u64>) -> u64 {
    memory_mib.map_or(128, |mib| (mib / 4).clamp(128, 4096))
}

/// The machine's memory (`MemTotal`), when /proc says.
fn memory_mib() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024)
}

/// Why a throwaway cluster did not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "PostgreSQL is missing: initdb and pg_ctl are neither in /usr/lib/postgresql/*/bin nor \
         on PATH (Debian: apt-get install postgresql; .ci/test installs it), and FERRY_PG_BIN \
         is not set"
    )]
    Missing,
    #[error("the throwaway PostgreSQL cluster did not start: {0}")]
    Failed(String),
}

pub struct TestCluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    run_as_postgres: bool,
    durable: bool,
}

impl TestCluster {
    /// The cluster this test process shares, started on first use.
    pub fn shared() -> &'static TestCluster {
        static SHARED: OnceLock<TestCluster> = OnceLock::new();
        SHARED.get_or_init(TestCluster::start)
    }

    /// A cluster of this caller's own; stopped and removed when dropped.
    /// Panics when it cannot start (tests never skip).
    pub fn start() -> TestCluster {
        Self::try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// As [`TestCluster::start`], but a missing PostgreSQL or a failed start
    /// is an error the caller can explain.
    pub fn try_start() -> Result<TestCluster, ClusterError> {
        Self::try_start_with(false)
    }

    /// A cluster that commits as a production server does (fsync and
    /// synchronous commit on), for figures of durable writes.
    pub fn try_start_durable() -> Result<TestCluster, ClusterError> {
        Self::try_start_with(true)
    }

    fn try_start_with(durable: bool) -> Result<TestCluster, ClusterError> {
        let bin = find_bin_dir()?;
        let run_as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("ferry-pg-")
            .tempdir()
            .map_err(|e| ClusterError::Failed(format!("create a folder for the cluster: {e}")))?
            .keep();
        if run_as_postgres {
            run(Command::new("chown").arg("postgres:").arg(&dir), "chown")?;
        }
        let mut cluster = TestCluster {
            dir,
            bin,
            port: 0,
            run_as_postgres,
            durable,
        };
        cluster.spawn_watchdog()?;
        let data = cluster.data_dir();
        run(
            cluster
                .pg_command("initdb")
                .arg("-D")
                .arg(&data)
                .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"])
                .arg("--no-sync"),
            "initdb",
        )?;
        // A port free now may be taken before the server binds it: retry.
        for attempt in 1..=5 {
            cluster.port = free_port()?;
            if cluster.try_start_server() {
                return Ok(cluster);
            }
            eprintln!(
                "test cluster did not start on port {} (attempt {attempt})",
                cluster.port
            );
        }
        Err(ClusterError::Failed(format!(
            "pg_ctl start failed; see {}",
            cluster.dir.join("log").display()
        )))
    }

    /// `postgres://postgres@127.0.0.1:PORT/DATABASE` (trust: no password).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id (the postmaster's), while it runs.
    pub fn server_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Creates an empty database and returns its URL.
    pub async fn fresh_database(&self) -> String {
        let name = format!("ferry_{}", uuid::Uuid::now_v7().simple());
        let (client, connection) =
            tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| {
                    panic!("connect to the test cluster on port {}: {e}", self.port)
                });
        let driver = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create a test database");
        drop(client);
        let _ = driver.await;
        self.url(&name)
    }

    /// A store on a fresh database of this cluster.
    pub async fn fresh_store(&self) -> PostgresStore {
        let url = self.fresh_database().await;
        PostgresStore::open(&PostgresConfig::new(PostgresUrl::new(url)))
            .await
            .expect("open the postgres store on a fresh database")
    }

    /// Stops the server (fast shutdown: connections are cut), keeping its data.
    pub fn stop(&self) {
        run(
            self.pg_command("pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .args(["-m", "fast", "-w", "stop"]),
            "pg_ctl stop",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Starts the stopped server again on the same port.
    pub fn restart(&self) {
        assert!(
            self.try_start_server(),
            "the test cluster did not start again"
        );
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn try_start_server(&self) -> bool {
        let settings = if self.durable {
            durable_settings()
        } else {
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off".to_string()
        };
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300{settings}",
            self.port,
            self.dir.display()
        );
        self.pg_command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-o", &options, "-w", "-t", "30", "start"])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    fn pg_command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if self.run_as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command.current_dir(&self.dir);
            command
        } else {
            Command::new(program)
        }
    }

    /// A process in its own session that outlives this one by at most a
    /// second: it stops the server and removes the folder once this process
    /// is gone (statics are never dropped, and a killed test runs no Drop).
    fn spawn_watchdog(&self) -> Result<(), ClusterError> {
        let pg_ctl = self.bin.join("pg_ctl");
        let stop = if self.run_as_postgres {
            format!("runuser -u postgres -- {}", pg_ctl.display())
        } else {
            pg_ctl.display().to_string()
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.2; done; \
             {stop} -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id(),
            data = self.data_dir().display(),
            dir = self.dir.display(),
        );
        Command::new("setsid")
            .args(["-f", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| ClusterError::Failed(format!("start the watchdog (setsid): {e}")))?;
        Ok(())
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let _ = self
            .pg_command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn find_bin_dir() -> Result<PathBuf, ClusterError> {
    if let Some(dir) = std::env::var_os("FERRY_PG_BIN") {
        let dir = PathBuf::from(dir);
        return if dir.join("initdb").is_file() {
            Ok(dir)
        } else {
            Err(ClusterError::Failed(format!(
                "FERRY_PG_BIN names {}, which holds no initdb",
                dir.display()
            )))
        };
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    debian.sort();
    if let Some((_, bin)) = debian.pop() {
        return Ok(bin);
    }
    which("initdb")
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .ok_or(ClusterError::Missing)
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|path| path.is_file())
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn free_port() -> Result<u16, ClusterError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| ClusterError::Failed(format!("find a free loopback port: {e}")))
}

fn run(command: &mut Command, what: &str) -> Result<(), ClusterError> {
    let output = command
        .output()
        .map_err(|e| ClusterError::Failed(format!("{what} could not run: {e}")))?;
    if output.status.success() {
        return Ok(());
    }
    Err(ClusterError::Failed(format!(
        "{what} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_buffers_are_a_quarter_of_memory_within_bounds() {
        assert_eq!(shared_buffers_mib(None), 128);
        assert_eq!(shared_buffers_mib(Some(256)), 128);
        assert_eq!(shared_buffers_mib(Some(2048)), 512);
        assert_eq!(shared_buffers_mib(Some(23_000)), 4096);
        assert!(durable_settings().contains("-c wal_compression=lz4"));
        assert!(
            memory_mib().is_some_and(|mib| mib > 0),
            "/proc/meminfo read"
        );
    }
}
