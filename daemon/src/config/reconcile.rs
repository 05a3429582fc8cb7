//! `[reconcile]`: comparing Zoom's recordings list with the jobs, so that a
//! recording whose webhook Zoom never delivered is still ingested (or
//! visibly skipped), and how fast Ferry may call Zoom's REST API. Converts
//! into the `ReconcileSettings` the reconciler and the backfill runner take.

use std::time::Duration;

use anyhow::bail;
use serde::{Deserialize, Serialize};

use crate::reconcile::ReconcileSettings;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReconcileConfig {
    /// Reconcile every installed account that has API credentials (a
    /// Marketplace install or Server-to-Server OAuth credentials).
    /// Backfills run whatever this says.
    pub enabled: bool,
    /// Seconds between two passes over an account (jittered by up to a
    /// tenth either way).
    pub interval_secs: u64,
    /// Days of recordings each pass lists, today included.
    pub lookback_days: u32,
    /// Recordings completed less than this many seconds ago are left for
    /// their webhook.
    pub grace_secs: u64,
    /// Most Zoom REST API requests per second and account (recordings
    /// lists, users, download tokens), shared by every caller in the daemon.
    pub api_requests_per_second: u32,
    /// Seconds an account's listing (or a backfill) stays with a replica
    /// that stops renewing it (it renews every third of this): how long a
    /// crashed replica's work waits before another takes it over.
    pub lease_secs: u64,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        ReconcileConfig {
            enabled: true,
            interval_secs: 3600,
            lookback_days: 3,
            grace_secs: 900,
            api_requests_per_second: 10,
            lease_secs: 60,
        }
    }
}

impl ReconcileConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.interval_secs == 0 {
            bail!("reconcile.interval_secs must be at least 1");
        }
        if self.lookback_days == 0 {
            bail!("reconcile.lookback_days must be at least 1");
        }
        if self.lease_secs < 3 {
            bail!("reconcile.lease_secs must be at least 3");
        }
        if self.api_requests_per_second == 0 {
            bail!("reconcile.api_requests_per_second must be at least 1");
        }
        Ok(())
    }

    pub fn settings(&self) -> ReconcileSettings {
        ReconcileSettings {
            enabled: self.enabled,
            interval: Duration::from_secs(self.interval_secs),
            lookback_days: self.lookback_days,
            grace: Duration::from_secs(self.grace_secs),
            lease: Duration::from_secs(self.lease_secs),
            ..ReconcileSettings::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn reconcile_reads_from_the_file_and_the_environment_and_is_validated() {
        let defaults = Config::default().reconcile;
        assert!(defaults.enabled);
        assert_eq!(
            (
                defaults.interval_secs,
                defaults.lookback_days,
                defaults.grace_secs
            ),
            (3600, 3, 900)
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ferry.toml");
        std::fs::write(&file, "[reconcile]\nlookback_days = 7\n").unwrap();
        let config = Config::load(
            Some(&file),
            [
                (
                    "FERRY_RECONCILE_INTERVAL_SECS".to_string(),
                    "60".to_string(),
                ),
                ("FERRY_RECONCILE_GRACE_SECS".to_string(), "0".to_string()),
                ("FERRY_RECONCILE_ENABLED".to_string(), "false".to_string()),
            ],
        )
        .unwrap();
        let settings = config.reconcile.settings();
        assert!(!settings.enabled);
        assert_eq!(settings.interval, Duration::from_secs(60));
        assert_eq!(settings.lookback_days, 7);
        assert_eq!(settings.grace, Duration::ZERO);
        let error = Config::load(
            Some(&file),
            [("FERRY_RECONCILE_INTERVAL_SECS".to_string(), "0".to_string())],
        )
        .unwrap_err();
        assert!(
            format!("{error:#}").contains("reconcile.interval_secs"),
            "{error:#}"
        );
    }
}
