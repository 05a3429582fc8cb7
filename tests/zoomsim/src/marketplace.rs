//! The simulator's Zoom Marketplace app (OAuth authorization code with
//! PKCE): Zoom's authorize page, which approves at once for the Zoom user
//! signed in to the simulated browser session and redirects back with a
//! code; the token endpoint's `authorization_code` and `refresh_token`
//! grants, which rotate refresh tokens on every use and refuse a spent one
//! as Zoom does; and `GET /v2/users/me`, which tells a licensed user (type 2)
//! from a Basic one (type 1, what a free account has).
//!
//! Access tokens it issues are also accepted by the recordings API of
//! `downloads`, for the signed-in user's account.

use std::collections::HashMap;

use base64::Engine as _;
use hyper::{Request, Response, StatusCode};
use sha2::{Digest, Sha256};

use super::downloads::{Body, json, plain};

/// Zoom's license types of a user (`type` in `/v2/users/me`).
pub const BASIC_USER: u8 = 1;
pub const LICENSED_USER: u8 = 2;

/// The Zoom user whose browser goes through the authorize page.
#[derive(Clone, Debug)]
pub struct ZoomUser {
    pub user_id: String,
    pub email: String,
    pub account_id: String,
    /// `BASIC_USER` or `LICENSED_USER`.
    pub user_type: u8,
}

/// What the Marketplace side saw.
#[derive(Clone, Debug, Default)]
pub struct MarketplaceStats {
    pub codes_issued: u32,
    pub codes_redeemed: u32,
    /// Token requests refused (bad client, code, verifier or refresh token).
    pub token_requests_refused: u32,
    pub refreshes: u32,
    /// Refreshes refused because the refresh token was already spent.
    pub spent_refresh_tokens_refused: u32,
    pub users_me: u32,
}

struct PendingCode {
    user: ZoomUser,
    redirect_uri: String,
    code_challenge: String,
}

struct RefreshToken {
    user: ZoomUser,
    spent: bool,
}

/// The Marketplace app's state.
pub(crate) struct Marketplace {
    app: Option<(String, String)>,
    signed_in: Option<ZoomUser>,
    codes: HashMap<String, PendingCode>,
    refresh_tokens: HashMap<String, RefreshToken>,
    /// Issued refresh tokens per account, oldest first.
    issued_refresh: HashMap<String, Vec<String>>,
    access_tokens: HashMap<String, ZoomUser>,
    access_lifetime_secs: u64,
    counter: u64,
    pub(crate) stats: MarketplaceStats,
}

impl Default for Marketplace {
    fn default() -> Self {
        Marketplace {
            app: None,
            signed_in: None,
            codes: HashMap::new(),
            refresh_tokens: HashMap::new(),
            issued_refresh: HashMap::new(),
            access_tokens: HashMap::new(),
            access_lifetime_secs: 3599,
            counter: 0,
            stats: MarketplaceStats::default(),
        }
    }
}

fn query_fields(query: &str) -> HashMap<String, String> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

impl Marketplace {
    pub(crate) fn register_app(&mut self, client_id: &str, client_secret: &str) {
        self.app = Some((client_id.into(), client_secret.into()));
    }

    pub(crate) fn sign_in(&mut self, user: ZoomUser) {
        self.signed_in = Some(user);
    }

    pub(crate) fn set_access_lifetime(&mut self, secs: u64) {
        self.access_lifetime_secs = secs;
    }

    pub(crate) fn issued_refresh_tokens(&self, account_id: &str) -> Vec<String> {
        self.issued_refresh
            .get(account_id)
            .cloned()
            .unwrap_or_default()
    }

    /// The account whose user holds this access token, for the recordings API.
    pub(crate) fn account_of(&self, access_token: &str) -> Option<String> {
        self.access_tokens
            .get(access_token)
            .map(|u| u.account_id.clone())
    }

    fn next(&mut self, what: &str) -> String {
        self.counter += 1;
        format!("sim-{what}-{}-{:016x}", self.counter, rand::random::<u64>())
    }

    /// `GET /oauth/authorize`: approves at once for the signed-in user.
    pub(crate) fn authorize(&mut self, request: &Request<hyper::body::Incoming>) -> Response<Body> {
        let fields = query_fields(request.uri().query().unwrap_or_default());
        let field = |name: &str| fields.get(name).cloned().unwrap_or_default();
        let Some((client_id, _)) = self.app.clone() else {
            return plain(StatusCode::BAD_REQUEST, "no marketplace app is registered");
        };
        if field("response_type") != "code" || field("client_id") != client_id {
            return plain(
                StatusCode::BAD_REQUEST,
                "invalid client_id or response_type",
            );
        }
        if field("code_challenge_method") != "S256" || field("code_challenge").len() < 43 {
            return plain(StatusCode::BAD_REQUEST, "PKCE with S256 is required");
        }
        let redirect_uri = field("redirect_uri");
        let Some(user) = self.signed_in.clone() else {
            return plain(StatusCode::UNAUTHORIZED, "no zoom user is signed in");
        };
        let code = self.next("code");
        self.codes.insert(
            code.clone(),
            PendingCode {
                user,
                redirect_uri: redirect_uri.clone(),
                code_challenge: field("code_challenge"),
            },
        );
        self.stats.codes_issued += 1;
        let mut location = redirect_uri;
        location.push(if location.contains('?') { '&' } else { '?' });
        location.push_str(
            &form_urlencoded::Serializer::new(String::new())
                .append_pair("code", &code)
                .append_pair("state", &field("state"))
                .finish(),
        );
        Response::builder()
            .status(StatusCode::FOUND)
            .header(http::header::LOCATION, location)
            .body(super::downloads::text_body(""))
            .expect("redirect")
    }

    fn refuse(&mut self, reason: &str) -> Response<Body> {
        self.stats.token_requests_refused += 1;
        json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"reason": reason, "error": "invalid_request"}),
        )
    }

    fn issue(&mut self, user: ZoomUser) -> Response<Body> {
        let access = self.next("user-access");
        let refresh = self.next("refresh");
        self.access_tokens.insert(access.clone(), user.clone());
        self.issued_refresh
            .entry(user.account_id.clone())
            .or_default()
            .push(refresh.clone());
        self.refresh_tokens
            .insert(refresh.clone(), RefreshToken { user, spent: false });
        json(
            StatusCode::OK,
            serde_json::json!({"access_token": access, "token_type": "bearer",
                "refresh_token": refresh, "expires_in": self.access_lifetime_secs,
                "scope": "user:read:user cloud_recording:read:list_recording_files"}),
        )
    }

    /// `POST /oauth/token` with grant `authorization_code` or `refresh_token`.
    pub(crate) fn token(
        &mut self,
        basic: Option<&str>,
        fields: &HashMap<String, String>,
    ) -> Response<Body> {
        let field = |name: &str| fields.get(name).cloned().unwrap_or_default();
        let client_ok = self
            .app
            .as_ref()
            .is_some_and(|(id, secret)| basic == Some(&format!("{id}:{secret}")));
        if !client_ok {
            self.stats.token_requests_refused += 1;
            return json(
                StatusCode::UNAUTHORIZED,
                serde_json::json!({"reason": "Invalid client_id or client_secret", "error": "invalid_client"}),
            );
        }
        match field("grant_type").as_str() {
            "authorization_code" => {
                let Some(pending) = self.codes.remove(&field("code")) else {
                    return self.refuse("Invalid authorization code");
                };
                if pending.redirect_uri != field("redirect_uri") {
                    return self.refuse("Redirect URI mismatch");
                }
                if pkce_challenge(&field("code_verifier")) != pending.code_challenge {
                    return self.refuse("Invalid code verifier");
                }
                self.stats.codes_redeemed += 1;
                self.issue(pending.user)
            }
            "refresh_token" => {
                let presented = field("refresh_token");
                let user = match self.refresh_tokens.get_mut(&presented) {
                    Some(token) if !token.spent => {
                        token.spent = true;
                        token.user.clone()
                    }
                    Some(_) => {
                        self.stats.spent_refresh_tokens_refused += 1;
                        return self.refuse("Invalid Token!");
                    }
                    None => return self.refuse("Invalid Token!"),
                };
                self.stats.refreshes += 1;
                self.issue(user)
            }
            _ => self.refuse("Unsupported grant type"),
        }
    }

    /// `GET /v2/users/me`.
    pub(crate) fn users_me(&mut self, bearer: Option<&str>) -> Response<Body> {
        let Some(user) = bearer.and_then(|t| self.access_tokens.get(t)).cloned() else {
            return json(
                StatusCode::UNAUTHORIZED,
                serde_json::json!({"code": 124, "message": "Invalid access token."}),
            );
        };
        self.stats.users_me += 1;
        json(
            StatusCode::OK,
            serde_json::json!({"id": user.user_id, "email": user.email,
                "account_id": user.account_id, "role_name": "Owner", "type": user.user_type,
                "status": "active"}),
        )
    }
}

/// The Marketplace side of the simulated Zoom host.
impl super::downloads::DownloadServer {
    /// Registers the Marketplace app (authorization code OAuth).
    pub fn register_marketplace_app(&self, client_id: &str, client_secret: &str) {
        self.api
            .lock()
            .expect("api lock")
            .marketplace
            .register_app(client_id, client_secret);
    }

    /// The Zoom user the authorize page approves for from now on.
    pub fn sign_in_zoom_user(&self, user: ZoomUser) {
        self.api.lock().expect("api lock").marketplace.sign_in(user);
    }

    /// The `expires_in` of access tokens issued from now on.
    pub fn set_user_token_lifetime(&self, secs: u64) {
        self.api
            .lock()
            .expect("api lock")
            .marketplace
            .set_access_lifetime(secs);
    }

    /// Every refresh token issued for the account, oldest first (spent or not).
    pub fn issued_refresh_tokens(&self, account_id: &str) -> Vec<String> {
        self.api
            .lock()
            .expect("api lock")
            .marketplace
            .issued_refresh_tokens(account_id)
    }

    pub fn marketplace_stats(&self) -> MarketplaceStats {
        self.api.lock().expect("api lock").marketplace.stats.clone()
    }
}
