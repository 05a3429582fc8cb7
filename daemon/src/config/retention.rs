//! `[retention]`: how long what a finished job no longer needs is kept.
//! Converts into the `RetentionSettings` the retention task runs on; the
//! sweep itself is the store's.

use std::time::Duration;

use anyhow::bail;
use serde::{Deserialize, Serialize};

use crate::retention::RetentionSettings;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Days a SKIPPED, FAILED or CANCELLED job keeps its sealed download
    /// URL, token and recording, so that `RetryJob` can still run it.
    pub retry_days: u32,
    /// Days after which such a job's record is deleted; unset keeps job
    /// records for ever. COMPLETED jobs stay: their media record names them.
    pub job_days: Option<u32>,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            retry_days: 30,
            job_days: None,
        }
    }
}

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

impl RetentionConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.retry_days == 0 {
            bail!("retention.retry_days must be at least 1");
        }
        if let Some(job_days) = self.job_days
            && job_days < self.retry_days
        {
            bail!(
                "retention.job_days ({job_days}) must be at least retention.retry_days ({})",
                self.retry_days
            );
        }
        Ok(())
    }

    pub fn settings(&self) -> RetentionSettings {
        RetentionSettings {
            keep_retry_details: DAY * self.retry_days,
            keep_jobs: self.job_days.map(|days| DAY * days),
            ..RetentionSettings::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn retention_reads_from_the_file_and_the_environment_and_is_validated() {
        let defaults = Config::default().retention.settings();
        assert_eq!(defaults.keep_retry_details, DAY * 30);
        assert_eq!(defaults.keep_jobs, None);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ferry.toml");
        std::fs::write(&file, "[retention]\nretry_days = 7\n").unwrap();
        let config = Config::load(
            Some(&file),
            [("FERRY_RETENTION_JOB_DAYS".to_string(), "90".to_string())],
        )
        .unwrap();
        assert_eq!(config.retention.settings().keep_retry_details, DAY * 7);
        assert_eq!(config.retention.settings().keep_jobs, Some(DAY * 90));
        let error = Config::load(
            Some(&file),
            [("FERRY_RETENTION_JOB_DAYS".to_string(), "3".to_string())],
        )
        .unwrap_err();
        assert!(
            format!("{error:#}").contains("retention.job_days"),
            "{error:#}"
        );
        std::fs::write(&file, "[retention]\nretry_dayz = 7\n").unwrap();
        let error = Config::load(Some(&file), []).unwrap_err();
        assert!(format!("{error:#}").contains("retry_dayz"), "{error:#}");
    }
}
