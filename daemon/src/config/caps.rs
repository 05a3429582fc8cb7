//! `[caps]` and `[caps.accounts.<id>]`: the longest and largest recording
//! copied, with per-account overrides. Converts into the `CapsPolicy` the
//! rules apply; the rules themselves live in `ferry_control::rules`.

use std::collections::BTreeMap;

use anyhow::bail;
use ferry_control::rules::{Caps, CapsPolicy};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CapsConfig {
    /// Longest recording copied, in seconds (8 hours).
    pub max_duration_secs: u64,
    /// Largest file copied, in bytes (5 GiB).
    pub max_file_bytes: u64,
    /// Other caps for some Zoom accounts, by account id (file only).
    pub accounts: BTreeMap<String, AccountCapsConfig>,
}

/// One account's caps; an unset cap is the default one.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccountCapsConfig {
    pub max_duration_secs: Option<u64>,
    pub max_file_bytes: Option<u64>,
}

impl Default for CapsConfig {
    fn default() -> Self {
        let caps = Caps::default();
        CapsConfig {
            max_duration_secs: (caps.max_duration_ms / 1000) as u64,
            max_file_bytes: caps.max_file_bytes,
            accounts: Default::default(),
        }
    }
}

impl CapsConfig {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if self.max_duration_secs == 0 || self.max_file_bytes == 0 {
            bail!("caps: max_duration_secs and max_file_bytes must be positive");
        }
        for (account, caps) in &self.accounts {
            if caps.max_duration_secs == Some(0) || caps.max_file_bytes == Some(0) {
                bail!(
                    "caps.accounts.{account}: max_duration_secs and max_file_bytes must be positive"
                );
            }
        }
        Ok(())
    }

    /// The caps for every account, as the rules take them.
    pub fn policy(&self) -> CapsPolicy {
        let caps = |duration_secs: u64, file_bytes: u64| Caps {
            max_duration_ms: i64::try_from(duration_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
            max_file_bytes: file_bytes,
        };
        CapsPolicy {
            default: caps(self.max_duration_secs, self.max_file_bytes),
            accounts: self
                .accounts
                .iter()
                .map(|(account, c)| {
                    let own = caps(
                        c.max_duration_secs.unwrap_or(self.max_duration_secs),
                        c.max_file_bytes.unwrap_or(self.max_file_bytes),
                    );
                    (account.clone(), own)
                })
                .collect(),
        }
    }
}
