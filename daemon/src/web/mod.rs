//! The web pages Ferry serves on its HTTP listener: the Zoom Marketplace
//! install (`/zoom/install`, `/zoom/oauth/callback`, the configuration-token
//! prompt; `install`) and the admin console (`/admin`; `session`, `console`).
//!
//! Pages act only through `ferry_control::service`'s handlers, called with
//! the signed-in credential exactly as a gRPC client would call them, so a
//! page is scoped, validated and ruled exactly as the API is (another
//! institution's ids answer 404). They never show a secret except the one a
//! page exists to hand out once (a new configuration token), and every
//! response carries the security headers of `respond` (a Content-Security-
//! Policy without inline script, `frame-ancestors 'none'`, `no-store`).
//! HTML comes from `views` (maud: compile-time checked, escaped by default);
//! the stylesheet and script are embedded in the binary.

mod console;
mod install;
mod session;
mod views;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use ferry_control::secrets::SecretBox;
use ferry_control::service::{Authenticator, ControlApis};
use ferry_control::store::Store;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tokio_util::sync::CancellationToken;

use crate::config::ConsoleSettings;
use crate::marketplace::Marketplace;

pub type WebBody = UnsyncBoxBody<Bytes, Infallible>;
pub type WebResponse = Response<WebBody>;

/// Marketplace installs one client address may start per minute.
const INSTALLS_PER_MINUTE: u32 = 30;

/// Largest form body read (a users CSV included).
const FORM_LIMIT: usize = 4 * 1024 * 1024;

/// Every page's Content-Security-Policy: only this origin's script and
/// style (no inline script), forms post only here, never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const STYLESHEET: &str = include_str!("assets/console.css");
const SCRIPT: &str = include_str!("assets/console.js");

/// What the pages need.
pub struct Web {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) secret_box: SecretBox,
    pub(crate) apis: ControlApis,
    pub(crate) auth: Authenticator,
    pub(crate) marketplace: Option<Arc<Marketplace>>,
    pub(crate) settings: ConsoleSettings,
    /// Cookies carry `Secure` (the listener has TLS, or the public URL is https).
    pub(crate) secure_cookies: bool,
    pub(crate) sign_in_limiter: session::SignInLimiter,
    /// Installs started per client address: each stores a ticket.
    pub(crate) install_limiter: session::SignInLimiter,
    pub(crate) shutdown: CancellationToken,
}

impl std::fmt::Debug for Web {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Web(<pages>)")
    }
}

/// What `Web::new` is built from.
pub struct WebParts {
    /// The control plane's context; the pages call its services.
    pub context: ferry_control::service::ControlContext,
    pub marketplace: Option<Arc<Marketplace>>,
    pub settings: ConsoleSettings,
    pub secure_cookies: bool,
    pub shutdown: CancellationToken,
}

impl Web {
    pub fn new(parts: WebParts) -> Self {
        Web {
            store: parts.context.store.clone(),
            secret_box: parts.context.secret_box.clone(),
            auth: parts.context.auth.clone(),
            apis: ControlApis::new(parts.context),
            marketplace: parts.marketplace,
            settings: parts.settings,
            secure_cookies: parts.secure_cookies,
            sign_in_limiter: session::sign_in_limiter(parts.settings.sign_in_per_minute),
            install_limiter: session::sign_in_limiter(INSTALLS_PER_MINUTE),
            shutdown: parts.shutdown,
        }
    }
}

/// A request with what the pages read of it.
pub(crate) struct WebRequest {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: http::HeaderMap,
    pub peer: SocketAddr,
    body: Option<Incoming>,
}

impl WebRequest {
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.trim().is_empty())
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
            .filter(|v| !v.is_empty())
    }

    /// The urlencoded form body, read with a limit.
    pub async fn form(&mut self) -> Result<Form, WebResponse> {
        let Some(body) = self.body.take() else {
            return Ok(Form(Vec::new()));
        };
        let bytes = Limited::new(body, FORM_LIMIT)
            .collect()
            .await
            .map_err(|_| {
                views::error_page(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Too large",
                    "The form is larger than this page accepts.",
                )
            })?
            .to_bytes();
        Ok(Form(
            form_urlencoded::parse(&bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }
}

impl WebRequest {
    /// A `multipart/form-data` body's fields (a file's bytes included), read
    /// with a limit.
    pub async fn multipart(&mut self) -> Result<Vec<(String, Bytes)>, WebResponse> {
        let boundary = self
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.split(';')
                    .find_map(|p| p.trim().strip_prefix("boundary="))
            })
            .map(|b| b.trim_matches('"').to_string());
        let Some(boundary) = boundary else {
            return Err(views::error_page(
                StatusCode::BAD_REQUEST,
                "Not accepted",
                "The upload is not multipart/form-data.",
            ));
        };
        let Some(body) = self.body.take() else {
            return Ok(Vec::new());
        };
        let bytes = Limited::new(body, FORM_LIMIT)
            .collect()
            .await
            .map_err(|_| {
                views::error_page(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Too large",
                    "The upload is larger than this page accepts.",
                )
            })?
            .to_bytes();
        Ok(multipart_fields(&boundary, &bytes))
    }
}

/// The named parts of a multipart body (RFC 7578): each part's
/// `Content-Disposition` name and its content.
pub(crate) fn multipart_fields(boundary: &str, body: &Bytes) -> Vec<(String, Bytes)> {
    let delimiter = format!("--{boundary}");
    let find = |haystack: &[u8], needle: &[u8], from: usize| {
        haystack[from..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    let mut fields = Vec::new();
    let Some(mut at) = find(body, delimiter.as_bytes(), 0) else {
        return fields;
    };
    loop {
        let part_start = at + delimiter.len();
        if body[part_start..].starts_with(b"--") {
            break;
        }
        let Some(next) = find(body, format!("\r\n{delimiter}").as_bytes(), part_start) else {
            break;
        };
        let part = &body[part_start..next];
        if let Some(split) = find(part, b"\r\n\r\n", 0) {
            let head = String::from_utf8_lossy(&part[..split]);
            let name = head
                .split(';')
                .find_map(|p| p.trim().strip_prefix("name="))
                .map(|n| {
                    n.split("\r\n")
                        .next()
                        .unwrap_or_default()
                        .trim_matches('"')
                        .to_string()
                });
            if let Some(name) = name {
                let start = part_start + split + 4;
                fields.push((name, body.slice(start..next)));
            }
        }
        at = next + 2;
    }
    fields
}

/// A posted form's fields.
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// Whether `path` is one of the pages' on a listener that serves the
/// console (`/admin`) or not (the HTTP router asks first).
pub fn serves(path: &str, console: bool) -> bool {
    let admin = path == "/admin" || path.starts_with("/admin/");
    let install = path.starts_with("/zoom/install") || path == "/zoom/oauth/callback";
    (admin && console) || install
}

/// A full HTML (or other) body.
pub(crate) fn body(bytes: impl Into<Bytes>) -> WebBody {
    Full::new(bytes.into()).boxed_unsync()
}

/// Adds the security headers every page carries.
pub(crate) fn with_security_headers(mut response: WebResponse) -> WebResponse {
    let headers = response.headers_mut();
    let set = |headers: &mut http::HeaderMap, name: &'static str, value: &'static str| {
        headers
            .entry(name)
            .or_insert(http::HeaderValue::from_static(value));
    };
    set(headers, "content-security-policy", CONTENT_SECURITY_POLICY);
    set(headers, "x-frame-options", "DENY");
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "referrer-policy", "no-referrer");
    set(headers, "cross-origin-opener-policy", "same-origin");
    set(headers, "cache-control", "no-store");
    response
}

pub(crate) fn redirect(location: &str) -> WebResponse {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(http::header::LOCATION, location)
        .body(body(Bytes::new()))
        .expect("redirect response")
}

fn asset(content_type: &'static str, text: &'static str) -> WebResponse {
    Response::builder()
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CACHE_CONTROL, "public, max-age=3600")
        .body(body(Bytes::from_static(text.as_bytes())))
        .expect("asset response")
}

impl Web {
    /// Serves one request to a page.
    pub async fn handle(&self, request: Request<Incoming>, peer: SocketAddr) -> WebResponse {
        let (parts, incoming) = request.into_parts();
        let query = form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let mut request = WebRequest {
            method: parts.method,
            path: parts.uri.path().to_string(),
            query,
            headers: parts.headers,
            peer,
            body: Some(incoming),
        };
        with_security_headers(self.route(&mut request).await)
    }

    async fn route(&self, request: &mut WebRequest) -> WebResponse {
        let path = request.path.clone();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (&request.method, segments.as_slice()) {
            (&Method::GET, ["zoom", "install"]) => install::start(self, request).await,
            (&Method::GET, ["zoom", "oauth", "callback"]) => install::callback(self, request).await,
            (&Method::GET, ["zoom", "install", "token"]) => install::prompt(self, request).await,
            (&Method::POST, ["zoom", "install", "token"]) => install::finish(self, request).await,
            (&Method::GET, ["admin", "assets", "console.css"]) => {
                asset("text/css; charset=utf-8", STYLESHEET)
            }
            (&Method::GET, ["admin", "assets", "console.js"]) => {
                asset("text/javascript; charset=utf-8", SCRIPT)
            }
            (&Method::GET, ["admin", "sign-in"]) => session::sign_in_page(self, request).await,
            (&Method::POST, ["admin", "sign-in"]) => session::sign_in(self, request).await,
            (&Method::POST, ["admin", "sign-out"]) => session::sign_out(self, request).await,
            (_, ["admin", ..]) => match session::Session::of(self, request).await {
                Ok(session) => console::route(self, session, request, &segments[1..]).await,
                Err(response) => response,
            },
            (_, _) => views::error_page(
                StatusCode::METHOD_NOT_ALLOWED,
                "Not allowed",
                "This page does not take that method.",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_fields_are_split_by_their_boundary() {
        let body = Bytes::from_static(
            b"--XyZ\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\nabc\r\n\
              --XyZ\r\nContent-Disposition: form-data; name=\"users\"; filename=\"u.csv\"\r\n\
              Content-Type: text/csv\r\n\r\nemail,role\r\na@b.c,admin\r\n\r\n--XyZ--\r\n",
        );
        let fields = multipart_fields("XyZ", &body);
        assert_eq!(fields.len(), 2);
        assert_eq!(fields[0], ("csrf".to_string(), Bytes::from_static(b"abc")));
        assert_eq!(fields[1].0, "users");
        assert_eq!(&fields[1].1[..], b"email,role\r\na@b.c,admin\r\n");
        assert!(multipart_fields("other", &body).is_empty());
    }
}
