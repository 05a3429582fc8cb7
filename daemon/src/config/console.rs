//! `[console]`: the admin console's sessions and sign-in limit, and where it
//! is served: on the HTTP listener (`/admin`) by default, or on a listener
//! of its own (`addr`, plain HTTP) as `metrics.addr` does for `/metrics`.
//! The Marketplace install stays on the HTTP listener either way: Zoom
//! sends the admin's browser back to `zoom.public_url`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::bail;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// A listener of the console's own (plain HTTP); unset serves `/admin`
    /// on the HTTP listener.
    pub addr: Option<SocketAddr>,
    /// Allows that listener on a non-loopback address.
    pub insecure: bool,
    /// A session unused this long is signed out.
    pub session_idle_secs: u64,
    /// A session ends this long after sign-in, however busy.
    pub session_max_secs: u64,
    /// Sign-in attempts per minute from one client address.
    pub sign_in_per_minute: u32,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            addr: None,
            insecure: false,
            session_idle_secs: 30 * 60,
            session_max_secs: 12 * 60 * 60,
            sign_in_per_minute: 10,
        }
    }
}

/// What the console runs on.
#[derive(Clone, Copy, Debug)]
pub struct ConsoleSettings {
    pub session_idle: Duration,
    pub session_max: Duration,
    pub sign_in_per_minute: u32,
}

impl ConsoleConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.session_idle_secs == 0 || self.session_max_secs < self.session_idle_secs {
            bail!(
                "console.session_idle_secs must be at least 1 and at most console.session_max_secs"
            );
        }
        if let Some(addr) = self.addr
            && !addr.ip().is_loopback()
            && !self.insecure
        {
            bail!(
                "console.addr: {addr} is not a loopback address; the console's own listener is plain \
                 HTTP, so set console.insecure = true to serve it there anyway (behind a TLS proxy)"
            );
        }
        if self.sign_in_per_minute == 0 {
            bail!("console.sign_in_per_minute must be at least 1");
        }
        Ok(())
    }

    pub fn settings(&self) -> ConsoleSettings {
        ConsoleSettings {
            session_idle: Duration::from_secs(self.session_idle_secs),
            session_max: Duration::from_secs(self.session_max_secs),
            sign_in_per_minute: self.sign_in_per_minute,
        }
    }
}
