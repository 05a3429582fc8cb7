//! `[console]`: the admin console's sessions and sign-in limit. The console
//! itself is always served on the HTTP listener (`/admin`).

use std::time::Duration;

use anyhow::bail;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
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
