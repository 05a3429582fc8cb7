//! HTTPS for the simulator's hosts and the other loopback stand-ins (the
//! discarding S3 endpoint, the fault proxy): a TLS acceptor that counts
//! every handshake it completes and every one that fails, so a test or a
//! bench can check how many TLS connections a client opened (connection
//! reuse) and that a client without the CA was turned away.
//!
//! The certificates come from whoever starts the server (the test support
//! crate's run-time test CA); this module never makes one and never turns
//! verification off on any side.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::either::Either;

/// A connection as a server reads it: plain, or TLS already handshaken.
pub type MaybeTlsStream = Either<TcpStream, TlsStream<TcpStream>>;

#[derive(Default)]
struct Handshakes {
    completed: AtomicU64,
    failed: AtomicU64,
}

/// A server's TLS side; clones share their counts.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: TlsAcceptor,
    handshakes: Arc<Handshakes>,
}

impl ServerTls {
    pub fn new(config: Arc<rustls::ServerConfig>) -> ServerTls {
        ServerTls {
            acceptor: TlsAcceptor::from(config),
            handshakes: Arc::default(),
        }
    }

    /// The same certificate and protocols, with counts of its own (for a
    /// second host whose connections are counted apart).
    pub fn with_own_counts(&self) -> ServerTls {
        ServerTls {
            acceptor: self.acceptor.clone(),
            handshakes: Arc::default(),
        }
    }

    /// TLS handshakes completed so far: one per connection a client opened.
    pub fn handshakes(&self) -> u64 {
        self.handshakes.completed.load(Ordering::Relaxed)
    }

    /// Handshakes that failed (a client that does not trust the
    /// certificate aborts the handshake).
    pub fn failed_handshakes(&self) -> u64 {
        self.handshakes.failed.load(Ordering::Relaxed)
    }
}

/// Completes the TLS handshake on `stream` when `tls` is given, counting
/// it; hands plain connections through untouched.
pub async fn accept(tls: Option<&ServerTls>, stream: TcpStream) -> std::io::Result<MaybeTlsStream> {
    let Some(tls) = tls else {
        return Ok(Either::Left(stream));
    };
    match tls.acceptor.accept(stream).await {
        Ok(stream) => {
            tls.handshakes.completed.fetch_add(1, Ordering::Relaxed);
            Ok(Either::Right(stream))
        }
        Err(e) => {
            tls.handshakes.failed.fetch_add(1, Ordering::Relaxed);
            Err(e)
        }
    }
}

/// `http` or `https`, as a server with or without `tls` is reached.
pub fn scheme(tls: Option<&ServerTls>) -> &'static str {
    if tls.is_some() { "https" } else { "http" }
}
