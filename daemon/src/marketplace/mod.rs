//! The Zoom Marketplace app: OAuth authorization code with PKCE (S256).
//! Builds the authorize URL, exchanges a code with the app's credentials
//! (HTTP Basic), asks Zoom who installed the app (`GET /v2/users/me`: the
//! account and the user's license, from which the plan is read — never from
//! the browser), and keeps each installed account's access token fresh
//! (`tokens`).
//!
//! It owns the app's client secret and the accounts' tokens in the clear
//! only for the length of a call: tokens reach the store sealed, and no
//! token, code, verifier or secret reaches a log, an error message or a
//! `Debug` output. It decides nothing about installs: `InstallZoomAccount`'s
//! rules do.

mod tokens;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use ferry_control::model::Timestamp;
use ferry_control::secrets::{Secret, SecretBox, TokenHash};
use ferry_control::store::{AccountTokens, Store};
use http_body_util::Full;
use serde::Deserialize;

use crate::transfer::download::Downloader;
use crate::transfer::zoom_api::{ApiError, Credentials, call_zoom, oauth_token_request};

/// Largest answer read from Zoom's OAuth and users endpoints.
const ANSWER_LIMIT: usize = 256 * 1024;

/// Zoom's license type of a licensed (paid) user in `/v2/users/me`.
pub const LICENSED_USER_TYPE: u8 = 2;

/// The Marketplace app's settings (`[zoom] client_id`, `client_secret`,
/// `public_url`).
#[derive(Clone)]
pub struct MarketplaceApp {
    pub client_id: String,
    pub client_secret: Secret,
    /// The origin Zoom sends the browser back to, without a trailing `/`.
    pub public_url: String,
}

impl std::fmt::Debug for MarketplaceApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MarketplaceApp")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("public_url", &self.public_url)
            .finish()
    }
}

impl MarketplaceApp {
    pub fn redirect_uri(&self) -> String {
        format!("{}/zoom/oauth/callback", self.public_url)
    }

    /// Where an admin starts the install (the console's install link).
    pub fn install_url(&self) -> String {
        format!("{}/zoom/install", self.public_url)
    }
}

/// Tokens Zoom just issued.
pub struct IssuedTokens {
    pub access_token: Secret,
    pub refresh_token: Secret,
    pub expires_in: Duration,
}

/// Who installed the app, as `/v2/users/me` says.
#[derive(Clone, Debug)]
pub struct InstallingUser {
    pub account_id: String,
    pub email: String,
    /// 1 = Basic, 2 = Licensed, 99 = None.
    pub user_type: u8,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    refresh_token: String,
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct UserAnswer {
    account_id: String,
    #[serde(default)]
    email: String,
    #[serde(rename = "type")]
    user_type: u8,
}

/// The app's OAuth client and the accounts' token keeper.
pub struct Marketplace {
    app: MarketplaceApp,
    http: Downloader,
    oauth_base: String,
    api_base: String,
    store: Arc<dyn Store>,
    secret_box: SecretBox,
    /// Names this daemon in refresh claims.
    replica: String,
}

/// A PKCE verifier and its S256 challenge.
pub fn pkce_pair() -> (Secret, String) {
    let verifier = random_url_token();
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(<sha2::Sha256 as sha2::Digest>::digest(verifier.as_bytes()));
    (Secret::new(verifier), challenge)
}

/// 32 random bytes as unpadded base64url (43 characters).
pub fn random_url_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

impl Marketplace {
    pub fn new(
        app: MarketplaceApp,
        http: Downloader,
        oauth_base: &str,
        api_base: &str,
        store: Arc<dyn Store>,
        secret_box: SecretBox,
    ) -> Self {
        Marketplace {
            app,
            http,
            oauth_base: oauth_base.trim_end_matches('/').to_string(),
            api_base: api_base.trim_end_matches('/').to_string(),
            store,
            secret_box,
            replica: ferry_control::store::new_id("oauth"),
        }
    }

    pub fn app(&self) -> &MarketplaceApp {
        &self.app
    }

    /// Zoom's authorize URL for one install.
    pub fn authorize_url(&self, state: &str, code_challenge: &str) -> String {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.app.client_id)
            .append_pair("redirect_uri", &self.app.redirect_uri())
            .append_pair("state", state)
            .append_pair("code_challenge", code_challenge)
            .append_pair("code_challenge_method", "S256")
            .finish();
        format!("{}/oauth/authorize?{query}", self.oauth_base)
    }

    /// Exchanges an authorization code (with its PKCE verifier).
    pub async fn exchange_code(
        &self,
        code: &str,
        verifier: &Secret,
    ) -> Result<IssuedTokens, ApiError> {
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", &self.app.redirect_uri())
            .append_pair("code_verifier", verifier.expose())
            .finish();
        self.token_request(form, "the authorization code").await
    }

    /// Spends `refresh_token` for a new pair (Zoom rotates it every time).
    async fn refresh_grant(&self, refresh_token: &Secret) -> Result<IssuedTokens, ApiError> {
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "refresh_token")
            .append_pair("refresh_token", refresh_token.expose())
            .finish();
        self.token_request(form, "the account's refresh token")
            .await
    }

    async fn token_request(&self, form: String, what: &str) -> Result<IssuedTokens, ApiError> {
        let app = Credentials {
            client_id: self.app.client_id.clone(),
            client_secret: self.app.client_secret.clone(),
        };
        let request = oauth_token_request(&self.oauth_base, &app, form)?;
        let answer = self.send(request, "zoom.oauth_base_url").await?;
        match answer.status {
            200 => {}
            400 | 401 | 403 => {
                return Err(ApiError::Refused(format!(
                    "zoom refused {what} (HTTP {})",
                    answer.status
                )));
            }
            status => {
                return Err(ApiError::Unavailable {
                    message: format!("zoom's OAuth token endpoint answered HTTP {status}"),
                    retry_after: answer.retry_after,
                });
            }
        }
        let parsed: TokenAnswer =
            serde_json::from_slice(&answer.body).map_err(|e| ApiError::Unavailable {
                message: format!("zoom's OAuth answer is not the expected JSON: {e}"),
                retry_after: None,
            })?;
        Ok(IssuedTokens {
            access_token: Secret::new(parsed.access_token),
            refresh_token: Secret::new(parsed.refresh_token),
            expires_in: Duration::from_secs(parsed.expires_in.unwrap_or(3599)),
        })
    }

    /// `GET /v2/users/me` with the installing user's access token.
    pub async fn installing_user(&self, access_token: &Secret) -> Result<InstallingUser, ApiError> {
        let request = hyper::Request::get(format!("{}/v2/users/me", self.api_base))
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", access_token.expose()),
            )
            .body(Full::new(Bytes::new()))
            .map_err(|_| ApiError::Refused("zoom.api_base_url is not a usable URL".into()))?;
        let answer = self.send(request, "zoom.api_base_url").await?;
        if answer.status != 200 {
            return Err(ApiError::Unavailable {
                message: format!("zoom's users API answered HTTP {}", answer.status),
                retry_after: answer.retry_after,
            });
        }
        let parsed: UserAnswer =
            serde_json::from_slice(&answer.body).map_err(|e| ApiError::Unavailable {
                message: format!("zoom's users answer is not the expected JSON: {e}"),
                retry_after: None,
            })?;
        if parsed.account_id.trim().is_empty() {
            return Err(ApiError::Refused(
                "zoom's users answer names no account".into(),
            ));
        }
        Ok(InstallingUser {
            account_id: parsed.account_id,
            email: parsed.email,
            user_type: parsed.user_type,
        })
    }

    /// The store's record of freshly issued tokens, sealed.
    pub fn seal_tokens(
        &self,
        zoom_account_id: &str,
        issued: &IssuedTokens,
        now: Timestamp,
    ) -> AccountTokens {
        AccountTokens {
            zoom_account_id: zoom_account_id.to_string(),
            client_id: self.app.client_id.clone(),
            sealed_access_token: self.secret_box.seal_str(issued.access_token.expose()),
            access_expires_at: now.saturating_add_millis(issued.expires_in.as_millis() as i64),
            sealed_refresh_token: self.secret_box.seal_str(issued.refresh_token.expose()),
            refresh_token_hash: TokenHash::of(issued.refresh_token.expose()),
            updated_at: now,
        }
    }

    async fn send(
        &self,
        request: hyper::Request<Full<Bytes>>,
        setting: &str,
    ) -> Result<crate::transfer::download::Fetched, ApiError> {
        call_zoom(
            &self.http,
            request,
            ANSWER_LIMIT,
            "the call to zoom",
            setting,
        )
        .await
    }
}
