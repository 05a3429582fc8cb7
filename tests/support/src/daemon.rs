//! A real Ferry daemon on 127.0.0.1 with ephemeral ports and its own data
//! directory, in this process (`TestDaemon`) or as a child process of the
//! `ferry` binary (`DaemonProcess`, for restart and `kill -9` tests and for
//! benches that read its CPU time), and the gRPC clients that reach it.
//!
//! Both are configured with the well-known test credentials below and must
//! never listen anywhere but loopback.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ferry_daemon::app::RunningApp;
use ferry_daemon::cli::client::{Clients, Connection};
use ferry_daemon::config::Config;
use ferry_zoomsim::ZoomSimulator;

/// The operator token every `TestDaemon` is configured with.
pub const OPERATOR_TOKEN: &str = "fop_test-operator-token-for-loopback-tests-only";

/// The Zoom app webhook secret every `TestDaemon` is configured with.
pub const WEBHOOK_SECRET: &str = "zoom-webhook-secret-for-loopback-tests";

/// Defaults for a daemon under test: loopback, port 0, a fresh data dir.
pub fn test_config(data_dir: &Path) -> Config {
    let mut config = Config {
        data_dir: data_dir.to_path_buf(),
        operator_token: Some(ferry_control::secrets::Secret::new(OPERATOR_TOKEN)),
        ..Config::default()
    };
    config.grpc.addr = "127.0.0.1:0".parse().expect("loopback");
    config.http.addr = "127.0.0.1:0".parse().expect("loopback");
    config.zoom.webhook_secret = Some(ferry_control::secrets::Secret::new(WEBHOOK_SECRET));
    // Control-plane and intake tests read jobs as the intake left them;
    // transfer tests turn the engine on, reconcile tests the reconciler
    // (which would otherwise call the simulated Zoom's API on its own for
    // every account with credentials).
    config.transfer.enabled = false;
    config.reconcile.enabled = false;
    config
}

/// Where a scene finds a daemon, whichever way it runs.
pub trait Daemon {
    /// `http://` and the gRPC listener's address.
    fn grpc_url(&self) -> String;
    /// The HTTP listener (webhooks, `/metrics`).
    fn http_addr(&self) -> SocketAddr;
}

/// A daemon running inside the test process.
pub struct TestDaemon {
    pub app: RunningApp,
    pub data_dir: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl TestDaemon {
    pub async fn start() -> anyhow::Result<TestDaemon> {
        let dir = tempfile::tempdir()?;
        let data_dir = dir.path().to_path_buf();
        let mut daemon = Self::start_with(test_config(&data_dir)).await?;
        daemon._dir = Some(dir);
        Ok(daemon)
    }

    /// Starts a daemon on `config`, validated as `ferry serve` would.
    pub async fn start_with(config: Config) -> anyhow::Result<TestDaemon> {
        config.validate()?;
        let data_dir = config.data_dir.clone();
        let app = ferry_daemon::app::start(config).await?;
        Ok(TestDaemon {
            app,
            data_dir,
            _dir: None,
        })
    }

    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.app.grpc_addr)
    }

    /// Keeps `dir` (the data directory `start_with` was given) until the
    /// daemon stops, as `start` does with its own.
    pub fn keep_dir(&mut self, dir: tempfile::TempDir) {
        self._dir = Some(dir);
    }

    pub async fn clients(&self, token: Option<&str>) -> anyhow::Result<Clients> {
        connect(&self.grpc_url(), token).await
    }

    pub async fn operator(&self) -> anyhow::Result<Clients> {
        self.clients(Some(OPERATOR_TOKEN)).await
    }

    /// A Zoom simulator posting to this daemon's webhook endpoint.
    pub fn zoom(&self) -> ZoomSimulator {
        ZoomSimulator::new(self.app.http_addr, WEBHOOK_SECRET)
    }

    /// The daemon's key for sealed secrets, read from its data directory.
    pub fn secret_box(&self) -> anyhow::Result<ferry_control::secrets::SecretBox> {
        let key = std::fs::read_to_string(self.data_dir.join("encryption.key"))?;
        Ok(ferry_control::secrets::SecretBox::from_base64(&key)?)
    }

    /// Shuts the daemon down. The returned guard keeps the data directory
    /// until it is dropped, for tests that inspect files afterwards.
    #[must_use = "dropping the guard removes the data directory"]
    pub async fn stop(self) -> Option<tempfile::TempDir> {
        self.app.shutdown().await;
        self._dir
    }
}

impl Daemon for TestDaemon {
    fn grpc_url(&self) -> String {
        TestDaemon::grpc_url(self)
    }

    fn http_addr(&self) -> SocketAddr {
        self.app.http_addr
    }
}

pub async fn connect(url: &str, token: Option<&str>) -> anyhow::Result<Clients> {
    Connection {
        server: url.to_string(),
        token: token.map(str::to_string),
        ca_cert: None,
    }
    .connect()
    .await
}

/// The `ferry` binary running as a child process.
pub struct DaemonProcess {
    child: Child,
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// Lines the daemon printed on stdout before it was ready.
    pub banner: Vec<String>,
    /// Removed after the process is killed, when `start` made it.
    _data_dir: Option<tempfile::TempDir>,
}

impl DaemonProcess {
    /// Starts `binary serve` on a fresh data directory with the test
    /// operator token and webhook secret (as `TestDaemon::start` has them),
    /// `env` added to its FERRY_* settings.
    pub fn start(binary: &Path, env: &[(&str, &str)]) -> anyhow::Result<DaemonProcess> {
        let data_dir = tempfile::tempdir()?;
        let credentials = [
            ("FERRY_OPERATOR_TOKEN", OPERATOR_TOKEN),
            ("FERRY_ZOOM_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ];
        let env = [&credentials[..], env].concat();
        let mut daemon = DaemonProcess::spawn(binary, data_dir.path(), &env)?;
        daemon._data_dir = Some(data_dir);
        Ok(daemon)
    }

    /// Starts `binary serve` on `data_dir` with ephemeral loopback ports and
    /// waits until it prints its addresses. `env` adds FERRY_* settings.
    pub fn spawn(
        binary: &Path,
        data_dir: &Path,
        env: &[(&str, &str)],
    ) -> anyhow::Result<DaemonProcess> {
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .env_clear()
            .env("FERRY_DATA_DIR", data_dir)
            .env("FERRY_GRPC_ADDR", "127.0.0.1:0")
            .env("FERRY_HTTP_ADDR", "127.0.0.1:0")
            .env("FERRY_LOG", "warn")
            .env("FERRY_TRANSFER_ENABLED", "false")
            .env("FERRY_RECONCILE_ENABLED", "false")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let stdout = child.stdout.take().context("daemon stdout")?;
        let (line_tx, line_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut banner = Vec::new();
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let line = match line_rx.recv_timeout(remaining) {
                Ok(line) => line,
                Err(_) => {
                    let _ = child.kill();
                    bail!("daemon did not report its addresses in time; printed: {banner:?}");
                }
            };
            if let Some(rest) = line.strip_prefix("ferry serving gRPC on ") {
                // "ferry serving gRPC on http://A and HTTP on B"
                let (grpc, http) = rest.split_once(" and HTTP on ").context("banner shape")?;
                let grpc = grpc.rsplit("://").next().context("grpc url")?;
                return Ok(DaemonProcess {
                    child,
                    grpc_addr: grpc.parse()?,
                    http_addr: http.trim().parse()?,
                    banner,
                    _data_dir: None,
                });
            }
            banner.push(line);
        }
    }

    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Daemon for DaemonProcess {
    fn grpc_url(&self) -> String {
        DaemonProcess::grpc_url(self)
    }

    fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
