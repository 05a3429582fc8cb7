//! moto's S3 server (`moto[server]` from PyPI) as a child process on a free
//! 127.0.0.1 port, for tests that need a real S3-protocol server with what
//! s3s-fs lacks: long keys and ListMultipartUploads. The server lives until
//! the [`MotoServer`] is dropped, or until this process ends, however it ends.
//!
//! moto keeps everything in memory and does not verify SigV4 signatures, so
//! any credentials (and any `Host` port, e.g. through a proxy) are accepted.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How to install the server when it is missing.
const INSTALL_HINT: &str = "moto's S3 server is missing: install it with \
    `python3 -m pip install 'moto[server]'` (the transfer tests against S3 need it)";
/// Python's import takes about a second; a loaded CI machine may take far longer.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Another process may take the free port before moto binds it.
const START_ATTEMPTS: u32 = 3;

/// A running moto server; killed on drop.
pub struct MotoServer {
    child: Child,
    addr: SocketAddr,
    _log_dir: tempfile::TempDir,
}

impl MotoServer {
    /// Starts moto's server with `python3` and waits until it answers S3
    /// requests. Panics, naming the install command, if moto is missing.
    pub async fn start() -> MotoServer {
        let log_dir = tempfile::tempdir().expect("a temporary folder for moto's log");
        let log_path = log_dir.path().join("moto.log");
        for _ in 0..START_ATTEMPTS {
            let addr = free_loopback_port();
            let mut child = spawn(addr, &log_path);
            match wait_until_ready(&mut child, addr).await {
                Readiness::Ready => {
                    return MotoServer {
                        child,
                        addr,
                        _log_dir: log_dir,
                    };
                }
                Readiness::Exited => {
                    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    if log.contains("No module named") {
                        panic!("{INSTALL_HINT}\n{log}");
                    }
                    if !log.contains("Address already in use") {
                        panic!("moto's S3 server exited before answering:\n{log}");
                    }
                }
                Readiness::TimedOut => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    panic!(
                        "moto's S3 server did not answer on {addr} within {} s:\n{log}",
                        READY_TIMEOUT.as_secs()
                    );
                }
            }
        }
        panic!("moto's S3 server found no free port in {START_ATTEMPTS} attempts");
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL for path-style requests, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago (moto binds it itself; a lost race
/// shows as "Address already in use" and is retried).
fn free_loopback_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
}

/// Runs moto's server behind a watch on stdin: the pipe closes when this
/// process ends, however it ends (a `kill -9` of a timed-out test too), and
/// the server exits with it instead of living on.
const BOOTSTRAP: &str = "import os, sys, threading\n\
    threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()\n\
    from moto.server import main\n\
    main(sys.argv[1:])\n";

fn spawn(addr: SocketAddr, log_path: &Path) -> Child {
    // The log goes to a file, not a pipe: moto logs every request, and an
    // unread pipe would fill up and block it.
    let log = File::create(log_path).expect("moto's log file");
    let log_for_stderr = log.try_clone().expect("moto's log file");
    Command::new("python3")
        .args(["-c", BOOTSTRAP, "-H", "127.0.0.1", "-p"])
        .arg(addr.port().to_string())
        .stdin(Stdio::piped())
        .stdout(log)
        .stderr(log_for_stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run python3: {e}; {INSTALL_HINT}"))
}

enum Readiness {
    Ready,
    Exited,
    TimedOut,
}

async fn wait_until_ready(child: &mut Child, addr: SocketAddr) -> Readiness {
    let deadline = Instant::now() + READY_TIMEOUT;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return Readiness::Exited;
        }
        if answers_like_s3(addr).await {
            return Readiness::Ready;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Readiness::TimedOut
}

/// Whether `addr` answers ListBuckets as an S3 server does (and so is our
/// moto, not some other program that took the port).
async fn answers_like_s3(addr: SocketAddr) -> bool {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        std::io::Result::Ok(response)
    };
    match tokio::time::timeout(Duration::from_secs(5), exchange).await {
        Ok(Ok(response)) => {
            let text = String::from_utf8_lossy(&response);
            text.starts_with("HTTP/1.1 200") && text.contains("ListAllMyBucketsResult")
        }
        _ => false,
    }
}
