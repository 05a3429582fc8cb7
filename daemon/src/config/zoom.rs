//! `[zoom]`: the Zoom app's webhook secrets, the Marketplace app's OAuth
//! client (`client_id`, `client_secret`, `public_url`) and where downloads
//! and Zoom API calls may go. Converts into the intake's `WebhookVerifier` and the
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
    /// Where Server-to-Server OAuth account tokens come from, and where the
    /// Marketplace install sends the admin's browser to approve the app. Its
    /// host must also pass `download_allowlist` to be used.
    pub oauth_base_url: String,
    /// The Zoom Marketplace app's client id (OAuth authorization code).
    /// With `client_secret` and `public_url`, turns on `/zoom/install`.
    pub client_id: Option<String>,
    /// The Marketplace app's client secret.
    #[serde(skip_serializing)]
    pub client_secret: Option<Secret>,
    /// The https origin Zoom sends the admin's browser back to; the
    /// redirect URI is `{public_url}/zoom/oauth/callback`.
    pub public_url: Option<String>,
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
            client_id: None,
            client_secret: None,
            public_url: None,
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
        self.validate_marketplace()
    }

    /// All three Marketplace settings, or none; `public_url` an https origin
    /// (plain http only on loopback, for tests and the demo).
    fn validate_marketplace(&self) -> anyhow::Result<()> {
        match (&self.client_id, &self.client_secret, &self.public_url) {
            (None, None, None) => Ok(()),
            (Some(id), Some(secret), Some(url)) => {
                if id.trim().is_empty() || secret.is_empty() {
                    bail!("zoom.client_id and zoom.client_secret must not be empty");
                }
                let uri: http::Uri = url
                    .parse()
                    .map_err(|_| anyhow::anyhow!("zoom.public_url: {url:?} is not a URL"))?;
                let loopback = matches!(uri.host(), Some("127.0.0.1" | "localhost" | "[::1]"));
                match uri.scheme_str() {
                    Some("https") if uri.host().is_some() => {}
                    Some("http") if loopback => {}
                    _ => bail!("zoom.public_url: {url:?} must be an https:// origin"),
                }
                if !uri.path().trim_end_matches('/').is_empty() || uri.query().is_some() {
                    bail!("zoom.public_url: {url:?} must be an origin, without a path");
                }
                Ok(())
            }
            _ => bail!(
                "zoom.client_id, zoom.client_secret and zoom.public_url go together: set all three \
                 for the Marketplace install, or none"
            ),
        }
    }

    /// The Marketplace app, when configured.
    pub fn marketplace_app(&self) -> Option<crate::marketplace::MarketplaceApp> {
        match (&self.client_id, &self.client_secret, &self.public_url) {
            (Some(client_id), Some(client_secret), Some(public_url)) => {
                Some(crate::marketplace::MarketplaceApp {
                    client_id: client_id.trim().to_string(),
                    client_secret: client_secret.clone(),
                    public_url: public_url.trim_end_matches('/').to_string(),
                })
            }
            _ => None,
        }
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
