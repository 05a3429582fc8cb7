//! Zoom's REST API: a fresh `download_access_token` when a webhook's token
//! has expired, and (for the reconciler and backfills) an account's
//! recordings list and a host's email. Server-to-Server OAuth account tokens
//! (`POST /oauth/token`, grant `account_credentials`) are cached per account
//! until a minute before they expire; Zoom issues no refresh tokens.
//!
//! Zoom's rate limits are per account and shared by every app, so every API
//! request of an account, whoever makes it, takes a slot of one pacer
//! (`requests_per_second`), and a 429's `Retry-After` holds back the
//! account's next request for everyone.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use ferry_control::secrets::Secret;
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
        credentials: &Credentials,
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
        let body = self
            .api_get(account_id, credentials, &path, "the recordings list")
            .await?
            .ok_or_else(|| {
                ApiError::Refused(format!(
                    "zoom's recordings list answered HTTP 404 for account {account_id}"
                ))
            })?;
        let parsed: ListAnswer =
            serde_json::from_slice(&body).map_err(|e| ApiError::Unavailable {
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
        credentials: &Credentials,
        user_id: &str,
    ) -> Result<Option<String>, ApiError> {
        let path = format!("/v2/users/{}", utf8_percent_encode(user_id, PATH_SEGMENT));
        let Some(body) = self
            .api_get(account_id, credentials, &path, "the user request")
            .await?
        else {
            return Ok(None);
        };
        let parsed: UserAnswer =
            serde_json::from_slice(&body).map_err(|e| ApiError::Unavailable {
                message: format!("zoom's user answer is not the expected JSON: {e}"),
                retry_after: None,
            })?;
        Ok(parsed.email.filter(|e| !e.trim().is_empty()))
    }

    /// GET `path` with the account's token: the body of a 200, None for a
    /// 404. A refused account token is renewed once; a 429 holds the
    /// account back and is returned as Unavailable with its `Retry-After`.
    async fn api_get(
        &self,
        account_id: &str,
        credentials: &Credentials,
        path: &str,
        what: &str,
    ) -> Result<Option<Bytes>, ApiError> {
        for renew in [false, true] {
            let token = self.account_token(account_id, credentials, renew).await?;
            self.pace(account_id).await;
            let request = hyper::Request::get(format!("{}{path}", self.api_base))
                .header(
                    http::header::AUTHORIZATION,
                    format!("Bearer {}", token.expose()),
                )
                .body(Full::new(Bytes::new()))
                .map_err(|_| ApiError::Refused("zoom.api_base_url is not a usable URL".into()))?;
            let answer = self.send(request, what, "zoom.api_base_url").await?;
            match answer.status {
                200 => return Ok(Some(answer.body)),
                404 => return Ok(None),
                401 if !renew => continue,
                400 | 401 | 403 => {
                    return Err(ApiError::Refused(format!(
                        "zoom refused {what} (HTTP {}): the OAuth app needs the \
                         cloud_recording:read:list_account_recordings:admin and user:read:user:admin scopes",
                        answer.status
                    )));
                }
                429 => {
                    self.hold_back(account_id, answer.retry_after);
                    return Err(unavailable(what, 429, &answer));
                }
                status => return Err(unavailable(what, status, &answer)),
            }
        }
        Err(ApiError::Refused(format!(
            "zoom refused a freshly issued OAuth token for {what} (HTTP 401)"
        )))
    }

    /// A fresh download token (and URL) for one file of a meeting. A cached
    /// account token that Zoom no longer accepts is replaced once.
    pub async fn fresh_download(
        &self,
        account_id: &str,
        credentials: &Credentials,
        meeting_uuid: &str,
        file_id: &str,
    ) -> Result<FreshDownload, ApiError> {
        let token = self.account_token(account_id, credentials, false).await?;
        self.pace(account_id).await;
        if let Some(fresh) = self.recordings(&token, meeting_uuid, file_id).await? {
            return Ok(fresh);
        }
        let token = self.account_token(account_id, credentials, true).await?;
        self.pace(account_id).await;
        self.recordings(&token, meeting_uuid, file_id)
            .await?
            .ok_or_else(|| {
                ApiError::Refused(
                    "zoom refused a freshly issued OAuth token for the recordings API (HTTP 401)"
                        .into(),
                )
            })
    }

    async fn account_token(
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
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            credentials.client_id,
            credentials.client_secret.expose()
        ));
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "account_credentials")
            .append_pair("account_id", account_id)
            .finish();
        let request = hyper::Request::post(format!("{}/oauth/token", self.oauth_base))
            .header(http::header::AUTHORIZATION, format!("Basic {basic}"))
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(Full::new(Bytes::from(form)))
            .map_err(|_| ApiError::Refused("zoom.oauth_base_url is not a usable URL".into()))?;
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

    /// The meeting's download token; None when Zoom refused the account token.
    async fn recordings(
        &self,
        account_token: &Secret,
        meeting_uuid: &str,
        file_id: &str,
    ) -> Result<Option<FreshDownload>, ApiError> {
        let url = format!(
            "{}/v2/meetings/{}/recordings?include_fields=download_access_token",
            self.api_base,
            meeting_path_segment(meeting_uuid)
        );
        let request = hyper::Request::get(url)
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", account_token.expose()),
            )
            .body(Full::new(Bytes::new()))
            .map_err(|_| ApiError::Refused("zoom.api_base_url is not a usable URL".into()))?;
        let answer = self
            .send(request, "the recordings request", "zoom.api_base_url")
            .await?;
        match answer.status {
            200 => {}
            401 => return Ok(None),
            403 | 404 => {
                return Err(ApiError::Refused(format!(
                    "zoom's recordings API answered HTTP {} for the meeting: the recording may be deleted, or \
                     the OAuth app lacks the cloud_recording:read scope",
                    answer.status
                )));
            }
            status => return Err(unavailable("the recordings request", status, &answer)),
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
        Ok(Some(FreshDownload {
            token: Secret::new(token),
            download_url,
        }))
    }

    /// `setting` names the configuration key of the URL's base.
    async fn send(
        &self,
        request: hyper::Request<Full<Bytes>>,
        what: &str,
        setting: &str,
    ) -> Result<super::download::Fetched, ApiError> {
        self.http
            .fetch(request, ANSWER_LIMIT)
            .await
            .map_err(|e| match e {
                DownloadError::Refused(message) => ApiError::Refused(format!(
                    "{setting}: {message} (its host must pass zoom.download_allowlist)"
                )),
                other => ApiError::Unavailable {
                    message: format!("{what} failed: {other}"),
                    retry_after: None,
                },
            })
    }
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
