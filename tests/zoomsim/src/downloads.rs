//! The simulator's download side: a "Zoom" host that checks the bearer
//! token and a second "CDN" host it can redirect to, both on 127.0.0.1
//! (reached as `127.0.0.1` and `localhost`, two different host names).
//! Each file can misbehave on purpose: ignore Range, reset the connection
//! part way, stall, throttle, lie about its length, answer 429, or answer
//! with the HTML page Zoom shows when downloads are not allowed.
//!
//! Both hosts speak plain HTTP, or HTTPS with a certificate the caller
//! provides ([`DownloadServer::start_tls`]; both offer HTTP/2 and HTTP/1.1,
//! as a CDN does), and then count TLS handshakes.
//!
//! The "Zoom" host also plays Zoom's API for fresh download tokens:
//! Server-to-Server OAuth (`POST /oauth/token`) and
//! `GET /v2/meetings/{uuid}/recordings?include_fields=download_access_token`,
//! which, like Zoom, wants a uuid that starts with `/` or holds `//` encoded
//! twice; and for the reconciler, the account's recordings list
//! (`GET /v2/accounts/{id}/recordings`: newest first, real `next_page_token`
//! pages, 400 for a range of a month or more) and `GET /v2/users/{id}`.
//! It can answer the list with 429 and `Retry-After` on purpose, and
//! enforce a per-account request rate the way Zoom does. Moving a meeting's
//! recordings to the trash is `trash`'s. The Marketplace
//! app's endpoints (`/oauth/authorize`, the authorization-code and refresh
//! grants, `/v2/users/me`) are `marketplace`'s.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::StreamBody;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use ferry_control::model::{Day, Timestamp};

use super::media::SyntheticMedia;
use super::tls::{self, ServerTls};

/// What `Content-Length` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LengthHeader {
    Exact,
    Absent,
    /// Claims this many bytes.
    Lie(u64),
}

/// How one file is served.
#[derive(Clone, Debug)]
pub struct FileBehavior {
    pub media: SyntheticMedia,
    /// The bearer token the Zoom host requires.
    pub token: String,
    /// 302 from the Zoom host to the CDN host (which wants no token).
    pub redirect_to_cdn: bool,
    /// 302 to this URL instead (e.g. a host that is not allowlisted).
    pub redirect_elsewhere: Option<String>,
    pub honor_range: bool,
    pub length_header: LengthHeader,
    /// Answer `200 text/html` (downloads not allowed).
    pub html_page: bool,
    /// Break the connection after this many body bytes, on the first N requests.
    pub reset_after: Option<(u64, u32)>,
    /// Pause this long after this many body bytes (first request only).
    pub stall_after: Option<(u64, Duration)>,
    /// Serve at most this many bytes per second.
    pub throttle_bytes_per_sec: Option<u64>,
    /// Answer 429 to the first N requests, with this `Retry-After` (seconds).
    pub too_many_requests: Option<(u32, Option<u64>)>,
}

impl FileBehavior {
    pub fn new(media: SyntheticMedia, token: &str) -> Self {
        FileBehavior {
            media,
            token: token.into(),
            redirect_to_cdn: true,
            redirect_elsewhere: None,
            honor_range: true,
            length_header: LengthHeader::Exact,
            html_page: false,
            reset_after: None,
            stall_after: None,
            throttle_bytes_per_sec: None,
            too_many_requests: None,
        }
    }
}

/// What the server saw for one file.
#[derive(Clone, Debug, Default)]
pub struct FileStats {
    /// Requests that reached the file's content (either host).
    pub content_requests: u32,
    /// The start of every Range asked for (0 when none).
    pub range_starts: Vec<u64>,
    /// Whether an Authorization header ever reached the CDN host.
    pub cdn_saw_authorization: bool,
    pub bytes_served: u64,
    pub unauthorized: u32,
    /// When each request reached the Zoom host.
    pub requests_at: Vec<Instant>,
    /// Requests answered 429.
    pub too_many: u32,
}

/// What the API side saw.
#[derive(Clone, Debug, Default)]
pub struct ApiStats {
    /// OAuth token requests with valid client credentials.
    pub tokens_issued: u32,
    /// OAuth token requests refused.
    pub tokens_refused: u32,
    /// Recordings requests answered with a download token.
    pub recordings_served: u32,
    /// Recordings requests refused (bad token, unknown or badly encoded uuid).
    pub recordings_refused: u32,
    /// Recordings list requests answered with a page.
    pub list_pages_served: u32,
    /// Recordings list requests answered 400 (a range of a month or more).
    pub list_bad_ranges: u32,
    /// When each recordings list request arrived, answered or not.
    pub list_requests_at: Vec<Instant>,
    /// The bearer token of each accepted recordings list request: one
    /// daemon process holds one account token, so distinct tokens mean
    /// distinct callers.
    pub list_bearers: Vec<String>,
    /// 429s answered on purpose (`fail_list_with_429`).
    pub injected_too_many: u32,
    /// 429s answered because the account went over its rate limit.
    pub rate_limited: u32,
    /// User lookups answered.
    pub users_served: u32,
}

/// The API's state: registered OAuth apps, issued tokens, meetings.
#[derive(Default)]
pub(crate) struct ApiState {
    /// account id → (client id, client secret).
    clients: HashMap<String, (String, String)>,
    /// access token → account id.
    issued: HashMap<String, String>,
    /// meeting uuid → (account id, file ids).
    meetings: HashMap<String, (String, Vec<String>)>,
    /// account id → its cloud recordings: (start, the listed meeting).
    cloud: HashMap<String, Vec<(Timestamp, serde_json::Value)>>,
    /// user id → email.
    users: HashMap<String, String>,
    /// Most meetings per page whatever `page_size` asks (Zoom: 300).
    max_page_size: usize,
    /// The next N list requests get 429 with this `Retry-After`.
    list_429: (u32, Option<u64>),
    /// Most API requests per second and account; None: unlimited.
    rate_limit: Option<u32>,
    /// account id → when its recent API requests arrived.
    recent: HashMap<String, Vec<Instant>>,
    stats: ApiStats,
    pub(crate) marketplace: super::marketplace::Marketplace,
    pub(crate) trash: super::trash::TrashState,
}

impl ApiState {
    /// The account a meeting of the recordings API belongs to.
    pub(crate) fn meeting_owner(&self, uuid: &str) -> Option<&str> {
        self.meetings.get(uuid).map(|(owner, _)| owner.as_str())
    }
}

struct Entry {
    behavior: FileBehavior,
    stats: FileStats,
}

type Files = Arc<Mutex<HashMap<String, Entry>>>;
pub(crate) type Api = Arc<Mutex<ApiState>>;

pub struct DownloadServer {
    pub zoom_addr: SocketAddr,
    pub cdn_addr: SocketAddr,
    /// HTTPS on both hosts when set, each host counting its own handshakes.
    tls: Option<ServerTls>,
    cdn_tls: Option<ServerTls>,
    files: Files,
    pub(crate) api: Api,
    shutdown: CancellationToken,
}

impl Drop for DownloadServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub(crate) type Body = UnsyncBoxBody<Bytes, std::io::Error>;

pub(crate) fn text_body(text: impl Into<Bytes>) -> Body {
    UnsyncBoxBody::new(http_body_util::Full::new(text.into()).map_err(|never| match never {}))
}

pub(crate) fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(text_body(text))
        .expect("static response")
}

pub(crate) fn json(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(text_body(value.to_string()))
        .expect("json response")
}

/// `POST /oauth/token`: Basic client credentials, grant `account_credentials`
/// and `account_id` in the form body or the query string.
async fn issue_token(api: &Api, request: Request<Incoming>) -> Response<Body> {
    let basic = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
        .and_then(|v| String::from_utf8(v).ok());
    let query = request.uri().query().unwrap_or_default().to_string();
    let Ok(body) = request.into_body().collect().await else {
        return plain(StatusCode::BAD_REQUEST, "unreadable body");
    };
    let body = body.to_bytes();
    let fields: HashMap<String, String> = form_urlencoded::parse(query.as_bytes())
        .chain(form_urlencoded::parse(&body))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut api = api.lock().expect("api lock");
    if matches!(
        fields.get("grant_type").map(String::as_str),
        Some("authorization_code" | "refresh_token")
    ) {
        return api.marketplace.token(basic.as_deref(), &fields);
    }
    let account = fields.get("account_id").cloned().unwrap_or_default();
    let valid = fields.get("grant_type").map(String::as_str) == Some("account_credentials")
        && api
            .clients
            .get(&account)
            .is_some_and(|(id, secret)| basic.as_deref() == Some(&format!("{id}:{secret}")));
    if !valid {
        api.stats.tokens_refused += 1;
        return json(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"reason": "Invalid client_id or client_secret", "error": "invalid_client"}),
        );
    }
    api.stats.tokens_issued += 1;
    let token = format!("sim-account-token-{}", api.stats.tokens_issued);
    api.issued.insert(token.clone(), account);
    json(
        StatusCode::OK,
        serde_json::json!({"access_token": token, "token_type": "bearer", "expires_in": 3600,
            "scope": "cloud_recording:read:list_recording_files:admin"}),
    )
}

/// The meeting uuid from its path segment, decoded as Zoom does: once, or
/// twice for a uuid that starts with `/` or holds `//` (anything else is not
/// found, as on Zoom).
pub(crate) fn decode_meeting(segment: &str) -> Option<String> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .ok()
            .map(|d| d.into_owned())
    };
    let once = decode(segment)?;
    let needs_twice = |uuid: &str| uuid.starts_with('/') || uuid.contains("//");
    if needs_twice(&once) {
        return None;
    }
    match decode(&once) {
        Some(twice) if twice != once && needs_twice(&twice) => Some(twice),
        _ => Some(once),
    }
}

/// `GET /v2/meetings/{uuid}/recordings?include_fields=download_access_token`.
fn recordings(
    api: &Api,
    files: &Files,
    scheme: &str,
    request: Request<Incoming>,
) -> Response<Body> {
    let mut api = api.lock().expect("api lock");
    let Some(account) = bearer_account(&api, &request) else {
        api.stats.recordings_refused += 1;
        return json(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"code": 124, "message": "Invalid access token."}),
        );
    };
    if !within_rate(&mut api, &account) {
        return too_many(Some(1));
    }
    let meeting = request
        .uri()
        .path()
        .strip_prefix("/v2/meetings/")
        .and_then(|rest| rest.strip_suffix("/recordings"))
        .and_then(decode_meeting)
        .filter(|uuid| !api.trash.is_trashed(uuid))
        .and_then(|uuid| api.meetings.get(&uuid).map(|m| (uuid, m.clone())));
    let wants_token = request
        .uri()
        .query()
        .is_some_and(|q| q.contains("include_fields=download_access_token"));
    let Some((uuid, (owner, file_ids))) = meeting.filter(|(_, (owner, _))| *owner == account)
    else {
        api.stats.recordings_refused += 1;
        return json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"code": 3301, "message": "This recording does not exist."}),
        );
    };
    api.stats.recordings_served += 1;
    let host = request
        .headers()
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    let files = files.lock().expect("files lock");
    let token = file_ids
        .first()
        .and_then(|id| files.get(id))
        .map(|entry| entry.behavior.token.clone())
        .unwrap_or_default();
    let listed: Vec<serde_json::Value> = file_ids
        .iter()
        .map(|id| {
            serde_json::json!({"id": id, "meeting_id": uuid, "file_type": "MP4", "status": "completed",
                "download_url": format!("{scheme}://{host}/rec/download/{id}")})
        })
        .collect();
    let mut answer =
        serde_json::json!({"uuid": uuid, "account_id": owner, "recording_files": listed});
    if wants_token {
        answer["download_access_token"] = serde_json::Value::String(token);
    }
    json(StatusCode::OK, answer)
}

fn bearer(request: &Request<Incoming>) -> Option<&str> {
    request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// The account an API request's bearer token was issued to: a
/// Server-to-Server account token or a Marketplace access token.
pub(crate) fn bearer_account(api: &ApiState, request: &Request<Incoming>) -> Option<String> {
    let bearer = bearer(request)?;
    api.issued
        .get(bearer)
        .cloned()
        .or_else(|| api.marketplace.account_of(bearer))
}

fn too_many(retry_after: Option<u64>) -> Response<Body> {
    let mut response = json(
        StatusCode::TOO_MANY_REQUESTS,
        serde_json::json!({"code": 429, "message": "You have reached the maximum per-second rate limit for this API. Try again later."}),
    );
    if let Some(secs) = retry_after {
        response.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_str(&secs.to_string()).expect("digits"),
        );
    }
    response
}

/// Counts an API request of `account` against its rate limit; false when it
/// is over (Zoom answers 429).
fn within_rate(api: &mut ApiState, account: &str) -> bool {
    let Some(limit) = api.rate_limit else {
        return true;
    };
    let now = Instant::now();
    let recent = api.recent.entry(account.to_string()).or_default();
    recent.retain(|at| now.duration_since(*at) < Duration::from_secs(1));
    if recent.len() >= limit as usize {
        api.stats.rate_limited += 1;
        return false;
    }
    recent.push(now);
    true
}

/// `GET /v2/accounts/{accountId}/recordings?from&to&page_size&next_page_token`.
fn list_recordings(api: &Api, request: Request<Incoming>) -> Response<Body> {
    let mut api = api.lock().expect("api lock");
    api.stats.list_requests_at.push(Instant::now());
    let Some(account) = bearer_account(&api, &request) else {
        return json(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"code": 124, "message": "Invalid access token."}),
        );
    };
    let named = request
        .uri()
        .path()
        .strip_prefix("/v2/accounts/")
        .and_then(|rest| rest.strip_suffix("/recordings"))
        .and_then(|id| percent_encoding::percent_decode_str(id).decode_utf8().ok())
        .map(|id| id.into_owned());
    if named.as_deref() != Some(account.as_str()) && named.as_deref() != Some("me") {
        return json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"code": 1001, "message": "Account does not exist."}),
        );
    }
    let caller = bearer(&request).unwrap_or_default().to_string();
    api.stats.list_bearers.push(caller);
    if api.list_429.0 > 0 {
        api.list_429.0 -= 1;
        api.stats.injected_too_many += 1;
        return too_many(api.list_429.1);
    }
    if !within_rate(&mut api, &account) {
        return too_many(Some(1));
    }
    let query: HashMap<String, String> =
        form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let day = |key: &str| query.get(key).and_then(|text| Day::parse(text));
    let (Some(from), Some(to)) = (day("from"), day("to")) else {
        api.stats.list_bad_ranges += 1;
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"code": 300, "message": "Invalid from or to date."}),
        );
    };
    if to < from || to >= from.plus_one_month() {
        api.stats.list_bad_ranges += 1;
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"code": 300, "message": "The date range must be less than one month."}),
        );
    }
    let page_size = query
        .get("page_size")
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 300)
        .min(api.max_page_size);
    let offset = match query.get("next_page_token").filter(|t| !t.is_empty()) {
        None => 0,
        Some(token) => match token
            .strip_prefix("sim-page-")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(offset) => offset,
            None => {
                return json(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({"code": 300, "message": "Invalid next_page_token."}),
                );
            }
        },
    };
    let mut listed: Vec<&(Timestamp, serde_json::Value)> = api
        .cloud
        .get(&account)
        .map(|meetings| {
            meetings
                .iter()
                .filter(|(start, _)| (from..=to).contains(&Day::of(*start)))
                .collect()
        })
        .unwrap_or_default();
    // Newest first, as Zoom lists them; ties by uuid so pages are stable.
    listed.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| a.1["uuid"].as_str().cmp(&b.1["uuid"].as_str()))
    });
    let total = listed.len();
    let meetings: Vec<serde_json::Value> = listed
        .iter()
        .skip(offset)
        .take(page_size)
        .map(|(_, meeting)| meeting.clone())
        .collect();
    let next = offset + meetings.len();
    let next_page_token = if next < total {
        format!("sim-page-{next}")
    } else {
        String::new()
    };
    api.stats.list_pages_served += 1;
    json(
        StatusCode::OK,
        serde_json::json!({"from": from.to_string(), "to": to.to_string(), "page_size": page_size,
            "total_records": total, "next_page_token": next_page_token, "meetings": meetings}),
    )
}

/// `GET /v2/users/{userId}`.
fn user(api: &Api, request: Request<Incoming>) -> Response<Body> {
    let mut api = api.lock().expect("api lock");
    let Some(account) = bearer_account(&api, &request) else {
        return json(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"code": 124, "message": "Invalid access token."}),
        );
    };
    if !within_rate(&mut api, &account) {
        return too_many(Some(1));
    }
    let id = request
        .uri()
        .path()
        .strip_prefix("/v2/users/")
        .unwrap_or_default()
        .to_string();
    match api.users.get(&id).cloned() {
        Some(email) => {
            api.stats.users_served += 1;
            json(
                StatusCode::OK,
                serde_json::json!({"id": id, "email": email, "type": 2, "account_id": account}),
            )
        }
        None => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"code": 1001, "message": "User does not exist."}),
        ),
    }
}

use http_body_util::BodyExt as _;

impl DownloadServer {
    /// Both hosts over plain HTTP.
    pub async fn start() -> std::io::Result<DownloadServer> {
        Self::start_with(None).await
    }

    /// Both hosts over HTTPS with `tls`'s certificate (which must name
    /// `127.0.0.1` and `localhost`, the two hosts' names).
    pub async fn start_tls(tls: ServerTls) -> std::io::Result<DownloadServer> {
        Self::start_with(Some(tls)).await
    }

    async fn start_with(tls: Option<ServerTls>) -> std::io::Result<DownloadServer> {
        let zoom = TcpListener::bind("127.0.0.1:0").await?;
        let cdn = TcpListener::bind("127.0.0.1:0").await?;
        let server = DownloadServer {
            zoom_addr: zoom.local_addr()?,
            cdn_addr: cdn.local_addr()?,
            cdn_tls: tls.as_ref().map(ServerTls::with_own_counts),
            tls,
            files: Arc::new(Mutex::new(HashMap::new())),
            api: Arc::new(Mutex::new(ApiState {
                max_page_size: 300,
                ..ApiState::default()
            })),
            shutdown: CancellationToken::new(),
        };
        let cdn_base = server.cdn_base();
        let scheme = server.scheme();
        for (listener, is_cdn) in [(zoom, false), (cdn, true)] {
            let (files, api, shutdown, cdn_base) = (
                server.files.clone(),
                server.api.clone(),
                server.shutdown.clone(),
                cdn_base.clone(),
            );
            let tls = if is_cdn {
                server.cdn_tls.clone()
            } else {
                server.tls.clone()
            };
            tokio::spawn(async move {
                loop {
                    let (stream, _) = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
                    };
                    let (files, api, cdn_base, tls) =
                        (files.clone(), api.clone(), cdn_base.clone(), tls.clone());
                    tokio::spawn(async move {
                        let Ok(stream) = tls::accept(tls.as_ref(), stream).await else {
                            return;
                        };
                        let service =
                            hyper::service::service_fn(move |request: Request<Incoming>| {
                                let (files, api, cdn_base) =
                                    (files.clone(), api.clone(), cdn_base.clone());
                                async move {
                                    let path = request.uri().path();
                                    let response = if !is_cdn && path == "/oauth/token" {
                                        issue_token(&api, request).await
                                    } else if !is_cdn && path == "/oauth/authorize" {
                                        api.lock()
                                            .expect("api lock")
                                            .marketplace
                                            .authorize(&request)
                                    } else if !is_cdn && path == "/v2/users/me" {
                                        let bearer = request
                                            .headers()
                                            .get(http::header::AUTHORIZATION)
                                            .and_then(|v| v.to_str().ok())
                                            .and_then(|v| v.strip_prefix("Bearer "))
                                            .map(str::to_string);
                                        api.lock()
                                            .expect("api lock")
                                            .marketplace
                                            .users_me(bearer.as_deref())
                                    } else if !is_cdn
                                        && path.starts_with("/v2/meetings/")
                                        && request.method() == http::Method::DELETE
                                    {
                                        super::trash::trash_recordings(&api, request)
                                    } else if !is_cdn && path.starts_with("/v2/meetings/") {
                                        recordings(&api, &files, scheme, request)
                                    } else if !is_cdn && path.starts_with("/v2/accounts/") {
                                        list_recordings(&api, request)
                                    } else if !is_cdn && path.starts_with("/v2/users/") {
                                        user(&api, request)
                                    } else {
                                        serve(files, is_cdn, &cdn_base, request)
                                    };
                                    Ok::<_, Infallible>(response)
                                }
                            });
                        let _ = auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        }
        Ok(server)
    }

    /// Registers a file; returns its Zoom download URL.
    pub fn add(&self, file_id: &str, behavior: FileBehavior) -> String {
        self.files.lock().expect("files lock").insert(
            file_id.to_string(),
            Entry {
                behavior,
                stats: FileStats::default(),
            },
        );
        format!("{}/rec/webhook_download/{file_id}", self.zoom_base())
    }

    /// `https` when the hosts serve TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        tls::scheme(self.tls.as_ref())
    }

    /// The "Zoom" host's TLS side (its handshake counts), if any.
    pub fn zoom_tls(&self) -> Option<&ServerTls> {
        self.tls.as_ref()
    }

    /// The CDN host's TLS side (its handshake counts), if any.
    pub fn cdn_tls(&self) -> Option<&ServerTls> {
        self.cdn_tls.as_ref()
    }

    /// The base URL to put in webhook payloads (`Meeting::download_base`).
    pub fn zoom_base(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme(), self.zoom_addr.port())
    }

    /// The CDN host's base URL, reached by its other name (`localhost`).
    pub fn cdn_base(&self) -> String {
        format!("{}://localhost:{}", self.scheme(), self.cdn_addr.port())
    }

    /// The URL of a file on the CDN host, which wants no token: what
    /// another tool is pointed at to fetch the same bytes Ferry fetches.
    pub fn cdn_url(&self, file_id: &str) -> String {
        format!("{}/cdn/{file_id}?signature=sim", self.cdn_base())
    }

    pub fn stats(&self, file_id: &str) -> FileStats {
        self.files
            .lock()
            .expect("files lock")
            .get(file_id)
            .map(|e| e.stats.clone())
            .unwrap_or_default()
    }

    /// Lets `account_id`'s Server-to-Server OAuth app get account tokens.
    pub fn add_oauth_client(&self, account_id: &str, client_id: &str, client_secret: &str) {
        self.api.lock().expect("api lock").clients.insert(
            account_id.to_string(),
            (client_id.to_string(), client_secret.to_string()),
        );
    }

    /// Lists a meeting's files in the recordings API; its download token is
    /// the first file's current token.
    pub fn add_meeting(&self, account_id: &str, uuid: &str, file_ids: &[&str]) {
        self.api.lock().expect("api lock").meetings.insert(
            uuid.to_string(),
            (
                account_id.to_string(),
                file_ids.iter().map(|f| f.to_string()).collect(),
            ),
        );
    }

    /// Puts a recording in the account's cloud, as Zoom's recordings list
    /// shows it (`Meeting::listed`), and in the API that gives its
    /// download token. Its webhook is another matter: a test delivers it, or
    /// not (a "lost" webhook).
    pub fn add_cloud_recording(&self, meeting: &crate::Meeting, listed: serde_json::Value) {
        let file_ids: Vec<&str> = meeting.files.iter().map(|f| f.id.as_str()).collect();
        self.add_meeting(&meeting.account_id, &meeting.uuid, &file_ids);
        self.api
            .lock()
            .expect("api lock")
            .cloud
            .entry(meeting.account_id.clone())
            .or_default()
            .push((meeting.start, listed));
    }

    /// Lets `GET /v2/users/{user_id}` answer with `email`.
    pub fn add_user(&self, user_id: &str, email: &str) {
        self.api
            .lock()
            .expect("api lock")
            .users
            .insert(user_id.to_string(), email.to_string());
    }

    /// Pages of the recordings list hold at most this many meetings.
    pub fn set_max_page_size(&self, size: usize) {
        self.api.lock().expect("api lock").max_page_size = size.max(1);
    }

    /// The next `count` recordings list requests get 429, with
    /// `Retry-After: retry_after_secs` when given.
    pub fn fail_list_with_429(&self, count: u32, retry_after_secs: Option<u64>) {
        self.api.lock().expect("api lock").list_429 = (count, retry_after_secs);
    }

    /// Answers 429 to an account's API requests past `per_second` in any one
    /// second, as Zoom does.
    pub fn set_rate_limit(&self, per_second: u32) {
        self.api.lock().expect("api lock").rate_limit = Some(per_second);
    }

    /// Every meeting the trash endpoint moved to the trash, in order.
    pub fn trashed(&self) -> Vec<super::trash::TrashedMeeting> {
        self.api.lock().expect("api lock").trash.trashed.clone()
    }

    /// Calls that reached the trash endpoint, answered however.
    pub fn trash_calls(&self) -> u32 {
        self.api.lock().expect("api lock").trash.calls
    }

    /// The next trash calls answer with these statuses, in order (e.g.
    /// `[503]` for one failure), before anything else is looked at.
    pub fn fail_trash_with(&self, statuses: &[u16]) {
        self.api
            .lock()
            .expect("api lock")
            .trash
            .fail_next
            .extend_from_slice(statuses);
    }

    pub fn api_stats(&self) -> ApiStats {
        self.api.lock().expect("api lock").stats.clone()
    }

    /// Changes a registered file's behaviour (e.g. make it honour Range now).
    pub fn update(&self, file_id: &str, change: impl FnOnce(&mut FileBehavior)) {
        if let Some(entry) = self.files.lock().expect("files lock").get_mut(file_id) {
            change(&mut entry.behavior);
        }
    }
}

fn serve(files: Files, is_cdn: bool, cdn_base: &str, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_string();
    let Some(file_id) = path
        .strip_prefix("/rec/webhook_download/")
        .or_else(|| path.strip_prefix("/rec/download/"))
        .or_else(|| path.strip_prefix("/cdn/"))
        .map(str::to_string)
    else {
        return plain(StatusCode::NOT_FOUND, "not found");
    };
    let authorization = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let range_start = request
        .headers()
        .get(http::header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.split('-').next())
        .and_then(|v| v.parse::<u64>().ok());
    let mut guard = files.lock().expect("files lock");
    let Some(entry) = guard.get_mut(&file_id) else {
        return plain(StatusCode::NOT_FOUND, "no such recording");
    };
    if is_cdn {
        entry.stats.cdn_saw_authorization |= authorization.is_some();
    } else {
        entry.stats.requests_at.push(Instant::now());
        if let Some((times, retry_after)) = entry.behavior.too_many_requests
            && entry.stats.too_many < times
        {
            entry.stats.too_many += 1;
            let mut response = Response::builder().status(StatusCode::TOO_MANY_REQUESTS);
            if let Some(seconds) = retry_after {
                response = response.header(http::header::RETRY_AFTER, seconds);
            }
            return response
                .body(text_body("{\"code\":429,\"message\":\"You have reached the maximum per-second rate limit.\"}"))
                .expect("429");
        }
        if authorization.as_deref() != Some(&format!("Bearer {}", entry.behavior.token)) {
            entry.stats.unauthorized += 1;
            return plain(
                StatusCode::UNAUTHORIZED,
                "{\"code\":124,\"message\":\"Invalid access token.\"}",
            );
        }
        if let Some(location) = &entry.behavior.redirect_elsewhere {
            return Response::builder()
                .status(StatusCode::FOUND)
                .header(http::header::LOCATION, location.as_str())
                .body(UnsyncBoxBody::new(
                    http_body_util::Empty::new().map_err(|never| match never {}),
                ))
                .expect("redirect");
        }
        if entry.behavior.redirect_to_cdn {
            return Response::builder()
                .status(StatusCode::FOUND)
                .header(
                    http::header::LOCATION,
                    format!("{cdn_base}/cdn/{file_id}?signature=sim"),
                )
                .body(UnsyncBoxBody::new(
                    http_body_util::Empty::new().map_err(|never| match never {}),
                ))
                .expect("redirect");
        }
    }
    let behavior = entry.behavior.clone();
    entry.stats.content_requests += 1;
    entry.stats.range_starts.push(range_start.unwrap_or(0));
    let attempt = entry.stats.content_requests;
    drop(guard);

    if behavior.html_page {
        return Response::builder()
            .status(StatusCode::OK)
            .header(http::header::CONTENT_TYPE, "text/html; charset=utf-8")
            .body(UnsyncBoxBody::new(
                http_body_util::Full::new(Bytes::from_static(
                    b"<!DOCTYPE html><html><body>This recording cannot be downloaded.</body></html>",
                ))
                .map_err(|never| match never {}),
            ))
            .expect("html page");
    }
    let total = behavior.media.len();
    let start = match (range_start, behavior.honor_range) {
        (Some(start), true) if start < total => start,
        _ => 0,
    };
    let mut response = Response::builder().header(http::header::CONTENT_TYPE, "video/mp4");
    response = if start > 0 {
        response.status(StatusCode::PARTIAL_CONTENT).header(
            http::header::CONTENT_RANGE,
            format!("bytes {start}-{}/{total}", total - 1),
        )
    } else {
        response.status(StatusCode::OK)
    };
    match behavior.length_header {
        LengthHeader::Exact => {
            response = response.header(http::header::CONTENT_LENGTH, total - start)
        }
        LengthHeader::Lie(claimed) => {
            response = response.header(http::header::CONTENT_LENGTH, claimed)
        }
        LengthHeader::Absent => {}
    }
    let reset_at = behavior
        .reset_after
        .filter(|(_, times)| attempt <= *times)
        .map(|(bytes, _)| bytes);
    let stall = behavior.stall_after.filter(|_| attempt == 1);
    let chunk_len = 64 * 1024;
    let stream = futures::stream::unfold(start, move |offset| {
        let (media, files, file_id) = (behavior.media.clone(), files.clone(), file_id.clone());
        async move {
            if offset >= total {
                return None;
            }
            if let Some(at) = reset_at
                && offset >= at
            {
                return Some((
                    Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "simulated reset",
                    )),
                    total,
                ));
            }
            if let Some((at, pause)) = stall
                && offset >= at
                && offset < at + chunk_len as u64
            {
                tokio::time::sleep(pause).await;
            }
            let mut len = chunk_len.min((total - offset) as usize);
            if let Some(at) = reset_at
                && offset < at
            {
                len = len.min((at - offset) as usize).max(1);
            }
            if let Some(rate) = behavior.throttle_bytes_per_sec {
                tokio::time::sleep(Duration::from_secs_f64(len as f64 / rate as f64)).await;
            }
            let chunk = media.chunk(offset, len);
            if let Some(entry) = files.lock().expect("files lock").get_mut(&file_id) {
                entry.stats.bytes_served += chunk.len() as u64;
            }
            Some((Ok(Frame::data(chunk)), offset + len as u64))
        }
    });
    response
        .body(UnsyncBoxBody::new(StreamBody::new(stream.boxed())))
        .expect("file response")
}
