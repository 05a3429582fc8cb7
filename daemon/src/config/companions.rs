//! `[companions]`: whether Ferry copies the files that belong with a chosen
//! video (its segment's transcript, closed captions and chat) and the cap
//! on each one's size, held while it streams whatever Zoom announced.
//! Converts into `CompanionSettings`, which the transfer engine and the
//! webhook intake (`recording.transcript_completed`) read.

use anyhow::bail;
use serde::{Deserialize, Serialize};

use crate::transfer::companion::CompanionSettings;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompanionsConfig {
    /// Copy the chosen segment's TRANSCRIPT, CC and CHAT files beside the video.
    pub enabled: bool,
    /// The largest companion file copied, in bytes; a larger one is refused
    /// (named on its job) as soon as its bytes pass the cap.
    pub max_bytes: u64,
}

impl Default for CompanionsConfig {
    fn default() -> Self {
        CompanionsConfig {
            enabled: true,
            max_bytes: CompanionSettings::default().max_bytes,
        }
    }
}

impl CompanionsConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.max_bytes == 0 {
            bail!("companions.max_bytes must be at least 1");
        }
        Ok(())
    }

    pub fn settings(&self) -> CompanionSettings {
        CompanionSettings {
            enabled: self.enabled,
            max_bytes: self.max_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn companions_are_on_by_default_and_read_from_the_file_and_the_environment() {
        let defaults = Config::default().companions.settings();
        assert!(defaults.enabled);
        assert_eq!(defaults.max_bytes, 50 * 1024 * 1024);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ferry.toml");
        std::fs::write(&file, "[companions]\nmax_bytes = 1000\n").unwrap();
        let config = Config::load(
            Some(&file),
            [("FERRY_COMPANIONS_ENABLED".to_string(), "false".to_string())],
        )
        .unwrap();
        let settings = config.companions.settings();
        assert!(!settings.enabled);
        assert_eq!(settings.max_bytes, 1000);
        let error = Config::load(
            Some(&file),
            [("FERRY_COMPANIONS_MAX_BYTES".to_string(), "0".to_string())],
        )
        .unwrap_err();
        assert!(
            format!("{error:#}").contains("companions.max_bytes"),
            "{error:#}"
        );
    }
}
