//! Zoom's REST API for an installed account: a fresh `download_access_token`
//! when a webhook's token has expired, (for the reconciler and backfills)
//! the account's recordings list and a host's email, and (for the
//! after-copy action) moving a meeting's recordings to Zoom's trash. Every call
//! goes out with the account's access token from whichever credentials it
//! installed with (`AccountAccess`): the Marketplace app's OAuth tokens
//! (`crate::marketplace` keeps them fresh) or Server-to-Server OAuth
//! credentials, whose account tokens (`POST /oauth/token`, grant
//! `account_credentials`) are cached per account until a minute before they
//! expire (Zoom issues no refresh tokens for them).
//!
//! Zoom's rate limits are per account and shared by every app, so every API
//! request of an account, whoever makes it, takes a slot of one pacer
//! (`requests_per_second`), and a 429's `Retry-After` holds back the
//! account's next request for everyone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use ferry_control::model::ZoomAccount;
use ferry_control::secrets::{Secret, SecretBox};
use ferry_control::store::Store;
use http_body_util::Full;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use super::download::{DownloadError, Downloader};

/// Largest API answer read.
const ANSWER_LIMIT: usize = 1024 * 1024;

/// An account token is renewed this long before Zoom says it expires.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// Everything but RFC 3986's unreserved characters is encoded.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// An account's Server-to-Server OAuth app.
pub struct Credentials {
    pub client_id: String,
    pub client_secret: Secret,
}

/// How Ferry reaches Zoom's API for one account.
pub enum AccountAccess {
    /// The account's own Server-to-Server OAuth app.
    ServerToServer(Credentials),
    /// The Marketplace app's OAuth tokens, from the account's web install.
    Marketplace(Arc<crate::marketplace::Marketplace>),
}

impl AccountAccess {
    /// The kind of credentials, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            AccountAccess::ServerToServer(_) => "Server-to-Server OAuth",
            AccountAccess::Marketplace(_) => "Marketplace OAuth",
        }
    }
}

/// The account's way into Zoom's API: the Marketplace app's tokens when it
/// installed through the web flow (and this daemon runs the app), else its
/// Server-to-Server OAuth credentials, opened; None when it has neither.
pub async fn account_access(
    store: &dyn Store,
    secret_box: &SecretBox,
    marketplace: Option<&Arc<crate::marketplace::Marketplace>>,
    account: &ZoomAccount,
) -> Result<Option<AccountAccess>, ApiError> {
    if let Some(marketplace) = marketplace {
        let tokens = store
            .account_tokens(&account.zoom_account_id)
            .await
            .map_err(|e| ApiError::Unavailable {
                message: format!("store: {e}"),
                retry_after: None,
            })?;
        if tokens.is_some() {
            return Ok(Some(AccountAccess::Marketplace(marketplace.clone())));
        }
    }
    let Some(oauth) = &account.oauth else {
        return Ok(None);
    };
    let client_secret = secret_box
        .open_secret(&oauth.sealed_client_secret)
        .map_err(|_| {
            ApiError::Refused(
                "the account's OAuth client secret cannot be read with this daemon's encryption key"
                    .into(),
            )
        })?;
    Ok(Some(AccountAccess::ServerToServer(Credentials {
        client_id: oauth.client_id.clone(),
        client_secret,
    })))
}

/// What Zoom's trash endpoint did with a meeting's recordings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trashed {
    /// Moved to the trash (HTTP 204).
    Moved,
    /// Zoom has no recordings for the meeting any more (HTTP 404): already
    /// trashed or deleted, by someone or something else.
    Gone,
}

/// Where and how to download a file now.
#[derive(Debug)]
pub struct FreshDownload {
    pub token: Secret,
    /// The file's URL from the API, when it listed the file.
    pub download_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Zoom said no in a way a retry will not change.
    #[error("{0}")]
    Refused(String),
    /// Zoom or the network failed; worth a retry later.
    #[error("{message}")]
    Unavailable {
        message: String,
        retry_after: Option<Duration>,
    },
}

struct AccountToken {
    token: Secret,
    renew_at: Instant,
}

pub struct ZoomApi {
    http: Downloader,
    oauth_base: String,
    api_base: String,
    tokens: Mutex<HashMap<String, AccountToken>>,
    /// Per account: when its next API request may be sent.
    next_slot: Mutex<HashMap<String, tokio::time::Instant>>,
    request_interval: Duration,
}

/// One page of an account's recordings list.
#[derive(Debug, Default)]
pub struct RecordingsPage {
    /// Each meeting as Zoom listed it (the webhook's `object` shape, maybe
    /// without `host_email`).
    pub meetings: Vec<serde_json::Value>,
    /// Empty on the last page.
    pub next_page_token: String,
}

#[derive(Deserialize)]
struct ListAnswer {
    #[serde(default)]
    meetings: Vec<serde_json::Value>,
    #[serde(default)]
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct UserAnswer {
    email: Option<String>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct RecordingsAnswer {
    download_access_token: Option<String>,
    #[serde(default)]
    recording_files: Vec<ListedFile>,
}

#[derive(Deserialize)]
struct ListedFile {
    id: Option<String>,
    download_url: Option<String>,
}

/// The meeting uuid as one path segment: encoded once, or twice when it
/// starts with `/` or holds `//` (Zoom decodes such paths twice).
pub fn meeting_path_segment(uuid: &str) -> String {
    let once = utf8_percent_encode(uuid, PATH_SEGMENT).to_string();
    if uuid.starts_with('/') || uuid.contains("//") {
        utf8_percent_encode(&once, PATH_SEGMENT).to_string()
    } else {
        once
    }
}

impl ZoomApi {
    /// `requests_per_second` paces each account's API requests.
    pub fn new(
        http: Downloader,
        oauth_base: &str,
        api_base: &str,
        requests_per_second: u32,
    ) -> Self {
        ZoomApi {
            http,
            oauth_base: oauth_base.trim_end_matches('/').to_string(),
            api_base: api_base.trim_end_matches('/').to_string(),
            tokens: Mutex::new(HashMap::new()),
            next_slot: Mutex::new(HashMap::new()),
            request_interval: Duration::from_secs(1) / requests_per_second.max(1),
        }
    }

    /// Waits for the account's next request slot and takes it.
    async fn pace(&self, account_id: &str) {
        let wait = {
            let mut slots = self.next_slot.lock().expect("pacer lock");
            let now = tokio::time::Instant::now();
            let slot = slots.entry(account_id.to_string()).or_insert(now);
            let at = (*slot).max(now);
            *slot = at + self.request_interval;
            at - now
        };
        if !wait.is_zero() {
            let started = Instant::now();
            tokio::time::sleep(wait).await;
            metrics::histogram!(crate::metrics::RATE_LIMIT_WAIT_SECONDS, "limiter" => "zoom_api")
                .record(started.elapsed().as_secs_f64());
        }
    }

    /// Zoom answered 429: no request of the account goes out before
    /// `retry_after` (or one second) has passed.
    fn hold_back(&self, account_id: &str, retry_after: Option<Duration>) {
        let until = tokio::time::Instant::now() + retry_after.unwrap_or(Duration::from_secs(1));
        let mut slots = self.next_slot.lock().expect("pacer lock");
        let slot = slots.entry(account_id.to_string()).or_insert(until);
        *slot = (*slot).max(until);
    }

    /// One page of the account's cloud recordings that started between
    /// `from` and `to` (at most a month apart, as Zoom requires).
    pub async fn list_recordings(
        &self,
        account_id: &str,
        access: &AccountAccess,
        from: &str,
        to: &str,
        next_page_token: &str,
    ) -> Result<RecordingsPage, ApiError> {
        let query = {
            let mut query = form_urlencoded::Serializer::new(String::new());
            query
                .append_pair("from", from)
                .append_pair("to", to)
                .append_pair("page_size", "300");
            if !next_page_token.is_empty() {
                query.append_pair("next_page_token", next_page_token);
            }
            query.finish()
        };
        let path = format!(
            "/v2/accounts/{}/recordings?{query}",
            utf8_percent_encode(account_id, PATH_SEGMENT),
        );
        let what = "the recordings list";
        let answer = self.authorized_get(account_id, access, &path, what).await?;
        match answer.status {
            200 => {}
            400 | 403 | 404 => return Err(refused_by_zoom(what, answer.status)),
            status => return Err(unavailable(what, status, &answer)),
        }
        let parsed: ListAnswer =
            serde_json::from_slice(&answer.body).map_err(|e| ApiError::Unavailable {
                message: format!("zoom's recordings list is not the expected JSON: {e}"),
                retry_after: None,
            })?;
        Ok(RecordingsPage {
            meetings: parsed.meetings,
            next_page_token: parsed.next_page_token.unwrap_or_default(),
        })
    }

    /// The email of a Zoom user of the account; None when Zoom has no such user.
    pub async fn user_email(
        &self,
        account_id: &str,
        access: &AccountAccess,
        user_id: &str,
    ) -> Result<Option<String>, ApiError> {
        let path = format!("/v2/users/{}", utf8_percent_encode(user_id, PATH_SEGMENT));
        let what = "the user request";
        let answer = self.authorized_get(account_id, access, &path, what).await?;
        match answer.status {
            200 => {}
            404 => return Ok(None),
            400 | 403 => return Err(refused_by_zoom(what, answer.status)),
            status => return Err(unavailable(what, status, &answer)),
        }
        let parsed: UserAnswer =
            serde_json::from_slice(&answer.body).map_err(|e| ApiError::Unavailable {
                message: format!("zoom's user answer is not the expected JSON: {e}"),
                retry_after: None,
            })?;
        Ok(parsed.email.filter(|e| !e.trim().is_empty()))
    }

    /// A fresh download token (and URL) for one file of a meeting, from
    /// `GET /v2/meetings/{uuid}/recordings?include_fields=download_access_token`.
    pub async fn fresh_download(
        &self,
        account_id: &str,
        access: &AccountAccess,
        meeting_uuid: &str,
        file_id: &str,
    ) -> Result<FreshDownload, ApiError> {
        let path = format!(
            "/v2/meetings/{}/recordings?include_fields=download_access_token",
            meeting_path_segment(meeting_uuid)
        );
        let what = "the recordings request";
        let answer = self.authorized_get(account_id, access, &path, what).await?;
        match answer.status {
            200 => {}
            403 | 404 => {
                return Err(ApiError::Refused(format!(
                    "zoom's recordings API answered HTTP {} for the meeting: the recording may be deleted, or \
                     the OAuth app lacks the cloud_recording:read scope",
                    answer.status
                )));
            }
            status => return Err(unavailable(what, status, &answer)),
        }
        let parsed: RecordingsAnswer =
            serde_json::from_slice(&answer.body).map_err(|e| ApiError::Unavailable {
                message: format!("zoom's recordings answer is not the expected JSON: {e}"),
                retry_after: None,
            })?;
        let token = parsed
            .download_access_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::Refused(
                    "zoom's recordings answer has no download_access_token: the OAuth app needs the \
                     cloud_recording:read scope"
                        .into(),
                )
            })?;
        let download_url = parsed
            .recording_files
            .into_iter()
            .find(|f| f.id.as_deref() == Some(file_id))
            .and_then(|f| f.download_url);
        Ok(FreshDownload {
            token: Secret::new(token),
            download_url,
        })
    }

    /// Moves a meeting's recordings to Zoom's trash with
    /// `DELETE /v2/meetings/{uuid}/recordings?action=trash`.
    pub async fn trash_recordings(
        &self,
        account_id: &str,
        access: &AccountAccess,
        meeting_uuid: &str,
    ) -> Result<Trashed, ApiError> {
        let path = format!(
            "/v2/meetings/{}/recordings?action=trash",
            meeting_path_segment(meeting_uuid)
        );
        let what = "the trash request";
        let answer = self
            .authorized_request(http::Method::DELETE, account_id, access, &path, what)
            .await?;
        match answer.status {
            200 | 204 => Ok(Trashed::Moved),
            404 => Ok(Trashed::Gone),
            400 | 403 => Err(ApiError::Refused(format!(
                "zoom refused {what} (HTTP {}): the OAuth app needs the \
                 cloud_recording:delete:meeting_cloud_recording scope (recording:write:admin on older \
                 apps), and the account's recording settings must let it delete recordings",
                answer.status
            ))),
            status => Err(unavailable(what, status, &answer)),
        }
    }

    /// GET `path` with the account's access token (see `authorized_request`).
    async fn authorized_get(
        &self,
        account_id: &str,
        access: &AccountAccess,
        path: &str,
        what: &str,
    ) -> Result<super::download::Fetched, ApiError> {
        self.authorized_request(http::Method::GET, account_id, access, path, what)
            .await
    }

    /// `method` on `path` with the account's access token, in the account's
    /// next request slot. A token Zoom refuses (401) is renewed once; a 429
    /// holds the account back and comes back as Unavailable with its
    /// `Retry-After`; any other answer is the caller's to read.
    async fn authorized_request(
        &self,
        method: http::Method,
        account_id: &str,
        access: &AccountAccess,
        path: &str,
        what: &str,
    ) -> Result<super::download::Fetched, ApiError> {
        let mut refused: Option<Secret> = None;
        loop {
            let token = self
                .access_token(account_id, access, refused.as_ref())
                .await?;
            self.pace(account_id).await;
            let request = hyper::Request::builder()
                .method(method.clone())
                .uri(format!("{}{path}", self.api_base))
                .header(
                    http::header::AUTHORIZATION,
                    format!("Bearer {}", token.expose()),
                )
                .body(Full::new(Bytes::new()))
                .map_err(|_| ApiError::Refused("zoom.api_base_url is not a usable URL".into()))?;
            let answer = self.send(request, what, "zoom.api_base_url").await?;
            match answer.status {
                401 if refused.is_none() => refused = Some(token),
                401 => {
                    return Err(ApiError::Refused(format!(
                        "zoom refused a freshly issued {} token for {what} (HTTP 401)",
                        access.kind()
                    )));
                }
                429 => {
                    self.hold_back(account_id, answer.retry_after);
                    return Err(unavailable(what, 429, &answer));
                }
                _ => return Ok(answer),
            }
        }
    }

    /// The account's access token; `refused` is one Zoom just refused, which
    /// is renewed rather than handed out again.
    async fn access_token(
        &self,
        account_id: &str,
        access: &AccountAccess,
        refused: Option<&Secret>,
    ) -> Result<Secret, ApiError> {
        match access {
            AccountAccess::ServerToServer(credentials) => {
                self.server_to_server_token(account_id, credentials, refused.is_some())
                    .await
            }
            AccountAccess::Marketplace(marketplace) => marketplace
                .access_token(account_id, refused)
                .await?
                .ok_or_else(|| {
                    ApiError::Refused(format!(
                        "zoom account {account_id} no longer has Marketplace OAuth tokens (the app was \
                         deauthorized); a Zoom admin must install the app again"
                    ))
                }),
        }
    }

    async fn server_to_server_token(
        &self,
        account_id: &str,
        credentials: &Credentials,
        renew: bool,
    ) -> Result<Secret, ApiError> {
        if !renew
            && let Some(cached) = self
                .tokens
                .lock()
                .expect("token cache lock")
                .get(account_id)
            && cached.renew_at > Instant::now()
        {
            return Ok(cached.token.clone());
        }
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "account_credentials")
            .append_pair("account_id", account_id)
            .finish();
        let request = oauth_token_request(&self.oauth_base, credentials, form)?;
        let answer = self
            .send(request, "the OAuth token request", "zoom.oauth_base_url")
            .await?;
        match answer.status {
            200 => {}
            400 | 401 | 403 => {
                return Err(ApiError::Refused(format!(
                    "zoom refused the account's Server-to-Server OAuth credentials (HTTP {}); reinstall the \
                     account with a valid client id and secret",
                    answer.status
                )));
            }
            status => return Err(unavailable("the OAuth token request", status, &answer)),
        }
        let parsed: TokenAnswer =
            serde_json::from_slice(&answer.body).map_err(|e| ApiError::Unavailable {
                message: format!("zoom's OAuth answer is not the expected JSON: {e}"),
                retry_after: None,
            })?;
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(3600));
        let token = Secret::new(parsed.access_token);
        self.tokens.lock().expect("token cache lock").insert(
            account_id.to_string(),
            AccountToken {
                token: token.clone(),
                renew_at: Instant::now() + lifetime.saturating_sub(EXPIRY_MARGIN),
            },
        );
        Ok(token)
    }

    /// `setting` names the configuration key of the URL's base.
    async fn send(
        &self,
        request: hyper::Request<Full<Bytes>>,
        what: &str,
        setting: &str,
    ) -> Result<super::download::Fetched, ApiError> {
        call_zoom(&self.http, request, ANSWER_LIMIT, what, setting).await
    }
}

/// `POST {oauth_base}/oauth/token` with an OAuth app's client id and
/// secret (HTTP Basic) and the grant's `form`: Server-to-Server account
/// tokens and the Marketplace app's grants alike.
pub(crate) fn oauth_token_request(
    oauth_base: &str,
    app: &Credentials,
    form: String,
) -> Result<hyper::Request<Full<Bytes>>, ApiError> {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        app.client_id,
        app.client_secret.expose()
    ));
    hyper::Request::post(format!("{oauth_base}/oauth/token"))
        .header(http::header::AUTHORIZATION, format!("Basic {basic}"))
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(Full::new(Bytes::from(form)))
        .map_err(|_| ApiError::Refused("zoom.oauth_base_url is not a usable URL".into()))
}

/// One call to Zoom's API or OAuth endpoints through the downloader (so the
/// allowlist applies); `setting` names the configuration key of the URL's
/// base, `what` the call, in errors.
pub(crate) async fn call_zoom(
    http: &Downloader,
    request: hyper::Request<Full<Bytes>>,
    limit: usize,
    what: &str,
    setting: &str,
) -> Result<super::download::Fetched, ApiError> {
    http.fetch(request, limit).await.map_err(|e| match e {
        DownloadError::Refused(message) => ApiError::Refused(format!(
            "{setting}: {message} (its host must pass zoom.download_allowlist)"
        )),
        other => ApiError::Unavailable {
            message: format!("{what} failed: {other}"),
            retry_after: None,
        },
    })
}

/// Zoom refused a listing call in a way a retry will not change.
fn refused_by_zoom(what: &str, status: u16) -> ApiError {
    let why = if status == 400 {
        "zoom rejected its parameters"
    } else {
        "the OAuth app needs the cloud_recording:read:list_account_recordings:admin and \
         user:read:user:admin scopes"
    };
    ApiError::Refused(format!("zoom refused {what} (HTTP {status}): {why}"))
}

fn unavailable(what: &str, status: u16, answer: &super::download::Fetched) -> ApiError {
    ApiError::Unavailable {
        message: format!("{what} got HTTP {status} from zoom"),
        retry_after: answer.retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_encoded_once_or_twice_as_zoom_requires() {
        assert_eq!(meeting_path_segment("abc123=="), "abc123%3D%3D");
        assert_eq!(meeting_path_segment("a+b/c=="), "a%2Bb%2Fc%3D%3D");
        assert_eq!(
            meeting_path_segment("/ajXp112QmuoKj4854875=="),
            "%252FajXp112QmuoKj4854875%253D%253D"
        );
        assert_eq!(meeting_path_segment("ab//cd"), "ab%252F%252Fcd");
    }
}
