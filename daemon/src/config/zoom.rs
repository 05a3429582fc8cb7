//! `[zoom]`: the Zoom app's webhook secrets and where downloads and Zoom API
//! calls may go. Converts into the intake's `WebhookVerifier` and the
//! downloader's `DownloadPolicy`; never logs a secret (`Secret` redacts
//! itself) and never serialises one.

use std::time::Duration;

use anyhow::bail;
use ferry_control::secrets::Secret;
use serde::{Deserialize, Serialize};

use crate::intake::WebhookVerifier;
use crate::transfer::download::{DownloadPolicy, HostPattern};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZoomConfig {
    /// The Zoom app's webhook secret token. Without it, webhooks get 503.
    #[serde(skip_serializing)]
    pub webhook_secret: Option<Secret>,
    /// A second secret accepted during rotation.
    #[serde(skip_serializing)]
    pub webhook_secret_previous: Option<Secret>,
    /// How far `x-zm-request-timestamp` may be from now, in seconds.
    pub timestamp_tolerance_secs: u64,
    /// Hosts downloads may come from (every redirect hop is checked):
    /// `name` exactly, or `*.name` for its subdomains.
    pub download_allowlist: Vec<String>,
    /// Allow plain http:// downloads (loopback tests only).
    pub allow_insecure_downloads: bool,
    /// Zoom's REST API, asked for a fresh download token when a webhook's
    /// has expired. Its host must also pass `download_allowlist` to be used.
    pub api_base_url: String,
    /// Where Server-to-Server OAuth account tokens come from. Its host must
    /// also pass `download_allowlist` to be used.
    pub oauth_base_url: String,
}

impl Default for ZoomConfig {
    fn default() -> Self {
        ZoomConfig {
            webhook_secret: None,
            webhook_secret_previous: None,
            timestamp_tolerance_secs: 300,
            download_allowlist: ["zoom.us", "*.zoom.us", "zoomgov.com", "*.zoomgov.com"]
                .map(String::from)
                .to_vec(),
            allow_insecure_downloads: false,
            api_base_url: "https://api.zoom.us".into(),
            oauth_base_url: "https://zoom.us".into(),
        }
    }
}

impl ZoomConfig {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        for entry in &self.download_allowlist {
            if HostPattern::parse(entry).is_none() {
                bail!("zoom.download_allowlist: {entry:?} is not a host name or *.domain pattern");
            }
        }
        for (key, url) in [
            ("zoom.api_base_url", &self.api_base_url),
            ("zoom.oauth_base_url", &self.oauth_base_url),
        ] {
            let uri: http::Uri = url
                .parse()
                .map_err(|_| anyhow::anyhow!("{key}: {url:?} is not a URL"))?;
            match uri.scheme_str() {
                Some("https") if uri.host().is_some() => {}
                Some("http") if uri.host().is_some() && self.allow_insecure_downloads => {}
                _ => bail!("{key}: {url:?} must be an https:// URL"),
            }
        }
        Ok(())
    }

    /// Which hosts downloads and Zoom API calls may reach.
    pub fn download_policy(&self, connect_timeout: Duration) -> DownloadPolicy {
        DownloadPolicy {
            allowlist: self
                .download_allowlist
                .iter()
                .filter_map(|e| HostPattern::parse(e))
                .collect(),
            allow_insecure_http: self.allow_insecure_downloads,
            connect_timeout,
        }
    }

    /// The intake's signature check; `None` while no secret is configured.
    pub fn webhook_verifier(&self) -> Option<WebhookVerifier> {
        self.webhook_secret.as_ref().map(|secret| {
            WebhookVerifier::new(
                secret.clone(),
                self.webhook_secret_previous.clone(),
                Duration::from_secs(self.timestamp_tolerance_secs),
            )
        })
    }
}
