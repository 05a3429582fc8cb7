//! `[grpc]`, `[http]` and `[metrics]`: where Ferry listens, and whether in
//! TLS. Owns the rule that plain TCP off loopback needs an explicit
//! `insecure = true`; never reads a certificate (the app does, at build).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::bail;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenerConfig {
    pub addr: SocketAddr,
    /// PEM certificate chain; with `tls_key`, the listener serves TLS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key.
    pub tls_key: Option<PathBuf>,
    /// Allows plain TCP on a non-loopback address. Logged as a warning.
    pub insecure: bool,
    /// Largest request body accepted (HTTP listener only).
    pub max_body_bytes: u64,
    /// Time a client has to send a request's head and body, in seconds
    /// (HTTP listener only).
    pub read_timeout_secs: u64,
}

/// Where `GET /metrics` is served: on the HTTP listener, unless an admin
/// listener is configured here (plain HTTP; then the HTTP listener does not
/// serve it).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub addr: Option<SocketAddr>,
    /// Allows the admin listener on a non-loopback address.
    pub insecure: bool,
}

impl ListenerConfig {
    pub(super) fn on(addr: &str) -> Self {
        ListenerConfig {
            addr: addr.parse().expect("default listener address"),
            tls_cert: None,
            tls_key: None,
            insecure: false,
            max_body_bytes: 1024 * 1024,
            read_timeout_secs: 10,
        }
    }

    pub fn tls_enabled(&self) -> bool {
        self.tls_cert.is_some()
    }

    /// The certificate and key files, when the listener serves TLS.
    pub fn tls_files(&self) -> Option<(&Path, &Path)> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            _ => None,
        }
    }

    pub(super) fn validate(&self, section: &str) -> anyhow::Result<()> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => bail!("{section}.tls_key: required when {section}.tls_cert is set"),
            (None, Some(_)) => bail!("{section}.tls_cert: required when {section}.tls_key is set"),
            _ => {}
        }
        if !self.tls_enabled() && !self.addr.ip().is_loopback() && !self.insecure {
            bail!(
                "{section}.addr: {} is not a loopback address; configure {section}.tls_cert and \
                 {section}.tls_key, or set {section}.insecure = true to serve plain TCP anyway",
                self.addr
            );
        }
        Ok(())
    }

    /// The limits only the HTTP listener has.
    pub(super) fn validate_http_limits(&self) -> anyhow::Result<()> {
        if self.max_body_bytes < 1024 {
            bail!("http.max_body_bytes: must be at least 1024");
        }
        if self.read_timeout_secs == 0 {
            bail!("http.read_timeout_secs: must be at least 1");
        }
        Ok(())
    }

    pub fn read_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.read_timeout_secs)
    }
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig::on("127.0.0.1:0")
    }
}

impl MetricsConfig {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if let Some(addr) = self.addr
            && !addr.ip().is_loopback()
            && !self.insecure
        {
            bail!(
                "metrics.addr: {addr} is not a loopback address; set metrics.insecure = true to serve \
                 metrics in plain HTTP there"
            );
        }
        Ok(())
    }
}
