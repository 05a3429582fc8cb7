//! `[after_copy]`: how the per-configuration after-copy action (`after_copy
//! = trash`, set on the configuration through the API) is carried out: how
//! often the trash duty looks for moves that are due, how a failed call is
//! retried, and when it gives up. Converts into `ZoomTrashSettings`.

use std::time::Duration;

use anyhow::bail;
use serde::{Deserialize, Serialize};

use crate::zoom_trash::ZoomTrashSettings;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AfterCopyConfig {
    /// Milliseconds between two looks for moves to Zoom's trash that are
    /// due (one indexed read).
    pub poll_millis: u64,
    /// Milliseconds before the first retry of a failed call; each further
    /// retry waits twice as long, up to `retry_max_secs` (a 429's
    /// `Retry-After` is honoured when longer).
    pub retry_base_millis: u64,
    pub retry_max_secs: u64,
    /// Calls to Zoom after which a move is given up (FAILED on the job).
    pub max_attempts: u32,
    /// Seconds the trash duty stays with a replica that stops renewing it.
    pub lease_secs: u64,
}

impl Default for AfterCopyConfig {
    fn default() -> Self {
        AfterCopyConfig {
            poll_millis: 5000,
            retry_base_millis: 30_000,
            retry_max_secs: 3600,
            max_attempts: 24,
            lease_secs: 60,
        }
    }
}

impl AfterCopyConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.poll_millis == 0 {
            bail!("after_copy.poll_millis must be at least 1");
        }
        if self.retry_base_millis == 0 {
            bail!("after_copy.retry_base_millis must be at least 1");
        }
        if self.retry_max_secs.saturating_mul(1000) < self.retry_base_millis {
            bail!("after_copy.retry_max_secs must not be shorter than retry_base_millis");
        }
        if self.max_attempts == 0 {
            bail!("after_copy.max_attempts must be at least 1");
        }
        if self.lease_secs < 3 {
            bail!("after_copy.lease_secs must be at least 3");
        }
        Ok(())
    }

    pub fn settings(&self) -> ZoomTrashSettings {
        ZoomTrashSettings {
            poll: Duration::from_millis(self.poll_millis),
            retry_base: Duration::from_millis(self.retry_base_millis),
            retry_max: Duration::from_secs(self.retry_max_secs),
            max_attempts: self.max_attempts,
            lease: Duration::from_secs(self.lease_secs),
            batch: ZoomTrashSettings::default().batch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn after_copy_reads_from_the_file_and_the_environment_and_is_validated() {
        let defaults = Config::default().after_copy.settings();
        assert_eq!(defaults.poll, Duration::from_secs(5));
        assert_eq!(defaults.max_attempts, 24);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ferry.toml");
        std::fs::write(&file, "[after_copy]\nmax_attempts = 3\n").unwrap();
        let config = Config::load(
            Some(&file),
            [(
                "FERRY_AFTER_COPY_RETRY_BASE_MILLIS".to_string(),
                "200".to_string(),
            )],
        )
        .unwrap();
        let settings = config.after_copy.settings();
        assert_eq!(settings.max_attempts, 3);
        assert_eq!(settings.retry_base, Duration::from_millis(200));
        let error = Config::load(
            Some(&file),
            [("FERRY_AFTER_COPY_MAX_ATTEMPTS".to_string(), "0".to_string())],
        )
        .unwrap_err();
        assert!(
            format!("{error:#}").contains("after_copy.max_attempts"),
            "{error:#}"
        );
    }
}
