//! Zoom's REST API, for one purpose: a fresh `download_access_token` when a
//! webhook's token has expired, with a Marketplace account's access token
//! (`crate::marketplace`) or Server-to-Server credentials. Server-to-Server OAuth account tokens
//! (`POST /oauth/token`, grant `account_credentials`) are cached per account
//! until a minute before they expire; Zoom issues no refresh tokens.

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
    pub fn new(http: Downloader, oauth_base: &str, api_base: &str) -> Self {
        ZoomApi {
            http,
            oauth_base: oauth_base.trim_end_matches('/').to_string(),
            api_base: api_base.trim_end_matches('/').to_string(),
            tokens: Mutex::new(HashMap::new()),
        }
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
        if let Some(fresh) = self.recordings(&token, meeting_uuid, file_id).await? {
            return Ok(fresh);
        }
        let token = self.account_token(account_id, credentials, true).await?;
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

    /// The meeting's download token; None when Zoom refused the account
    /// token (a Server-to-Server one, or a Marketplace account's).
    pub async fn recordings(
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
        call_zoom(&self.http, request, ANSWER_LIMIT, what, setting).await
    }
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
