//! The simulator's download side: a "Zoom" host that checks the bearer
//! token and a second "CDN" host it can redirect to, both on 127.0.0.1
//! (reached as `127.0.0.1` and `localhost`, two different host names).
//! Each file can misbehave on purpose: ignore Range, reset the connection
//! part way, stall, throttle, lie about its length, or answer with the HTML
//! page Zoom shows when downloads are not allowed.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

use super::media::SyntheticMedia;

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
}

struct Entry {
    behavior: FileBehavior,
    stats: FileStats,
}

type Files = Arc<Mutex<HashMap<String, Entry>>>;

pub struct DownloadServer {
    pub zoom_addr: SocketAddr,
    pub cdn_addr: SocketAddr,
    files: Files,
    shutdown: CancellationToken,
}

impl Drop for DownloadServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

type Body = UnsyncBoxBody<Bytes, std::io::Error>;

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(UnsyncBoxBody::new(
            http_body_util::Full::new(Bytes::from_static(text.as_bytes()))
                .map_err(|never| match never {}),
        ))
        .expect("static response")
}

use http_body_util::BodyExt as _;

impl DownloadServer {
    pub async fn start() -> std::io::Result<DownloadServer> {
        let zoom = TcpListener::bind("127.0.0.1:0").await?;
        let cdn = TcpListener::bind("127.0.0.1:0").await?;
        let server = DownloadServer {
            zoom_addr: zoom.local_addr()?,
            cdn_addr: cdn.local_addr()?,
            files: Arc::new(Mutex::new(HashMap::new())),
            shutdown: CancellationToken::new(),
        };
        let cdn_base = format!("http://localhost:{}", server.cdn_addr.port());
        for (listener, is_cdn) in [(zoom, false), (cdn, true)] {
            let (files, shutdown, cdn_base) = (
                server.files.clone(),
                server.shutdown.clone(),
                cdn_base.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let (stream, _) = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
                    };
                    let (files, cdn_base) = (files.clone(), cdn_base.clone());
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |request| {
                            let (files, cdn_base) = (files.clone(), cdn_base.clone());
                            async move { Ok::<_, Infallible>(serve(files, is_cdn, &cdn_base, request)) }
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
        format!(
            "http://127.0.0.1:{}/rec/webhook_download/{file_id}",
            self.zoom_addr.port()
        )
    }

    /// The base URL to put in webhook payloads (`Meeting::download_base`).
    pub fn zoom_base(&self) -> String {
        format!("http://127.0.0.1:{}", self.zoom_addr.port())
    }

    pub fn stats(&self, file_id: &str) -> FileStats {
        self.files
            .lock()
            .expect("files lock")
            .get(file_id)
            .map(|e| e.stats.clone())
            .unwrap_or_default()
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
