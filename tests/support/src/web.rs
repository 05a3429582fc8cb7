//! The web side of the fixtures: a daemon with the Marketplace app
//! configured against the simulator (`WebScene`), and a cookie-keeping HTTP
//! client that does not follow redirects (`WebClient`), so tests see each
//! hop of the install and every header the pages send.

use std::collections::BTreeMap;
use std::sync::Mutex;

use bytes::Bytes;
use ferry_daemon::cli::client::Clients;
use ferry_daemon::config::Config;
use ferry_zoomsim::downloads::DownloadServer;
use ferry_zoomsim::{BASIC_USER, LICENSED_USER, ZoomUser};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::control_plane::{TestInstitution, create_configuration, create_institution};
use crate::daemon::{OPERATOR_TOKEN, TestDaemon, connect, test_config};

pub const MARKETPLACE_CLIENT_ID: &str = "ferry-marketplace-app";
pub const MARKETPLACE_CLIENT_SECRET: &str = "marketplace-secret-for-loopback-tests";

/// One answer, with its body as text.
#[derive(Debug)]
pub struct WebPage {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl WebPage {
    pub fn location(&self) -> Option<String> {
        self.header("location")
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// The value of the page's first hidden input named `name`.
    pub fn hidden(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&marker)? + marker.len();
        let end = self.body[start..].find('"')?;
        Some(self.body[start..start + end].to_string())
    }

    /// The `Set-Cookie` line of cookie `name`.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_string)
    }
}

/// A browser without a browser: keeps cookies, follows nothing by itself.
pub struct WebClient {
    base: String,
    cookies: Mutex<BTreeMap<String, String>>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl WebClient {
    /// `base` is `http://host:port`; paths are resolved against it.
    pub fn new(base: &str) -> Self {
        WebClient {
            base: base.trim_end_matches('/').to_string(),
            cookies: Mutex::new(BTreeMap::new()),
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        }
    }

    fn url(&self, target: &str) -> String {
        if target.starts_with("http://") {
            target.to_string()
        } else {
            format!("{}{target}", self.base)
        }
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.lock().unwrap().get(name).cloned()
    }

    pub fn set_cookie(&self, name: &str, value: &str) {
        self.cookies
            .lock()
            .unwrap()
            .insert(name.to_string(), value.to_string());
    }

    async fn send(&self, request: http::request::Builder, body: Bytes) -> WebPage {
        let cookies = self
            .cookies
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let request = if cookies.is_empty() {
            request
        } else {
            request.header("cookie", cookies)
        };
        let response = self
            .client
            .request(request.body(Full::new(body)).unwrap())
            .await
            .expect("web request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        for line in headers.get_all("set-cookie").iter() {
            let line = line.to_str().unwrap();
            let (pair, attributes) = line.split_once(';').unwrap_or((line, ""));
            let (name, value) = pair.split_once('=').unwrap();
            let mut cookies = self.cookies.lock().unwrap();
            if value.is_empty() || attributes.contains("Max-Age=0") {
                cookies.remove(name);
            } else {
                cookies.insert(name.to_string(), value.to_string());
            }
        }
        let body = response.into_body().collect().await.unwrap().to_bytes();
        WebPage {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    pub async fn get(&self, target: &str) -> WebPage {
        self.send(hyper::Request::get(self.url(target)), Bytes::new())
            .await
    }

    pub async fn post(&self, target: &str, fields: &[(&str, &str)]) -> WebPage {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.send(
            hyper::Request::post(self.url(target))
                .header("content-type", "application/x-www-form-urlencoded"),
            Bytes::from(body),
        )
        .await
    }

    /// Posts `multipart/form-data`: `(name, content)` parts; a part named
    /// `users` is sent as a CSV file.
    pub async fn post_multipart(&self, target: &str, parts: &[(&str, &str)]) -> WebPage {
        let boundary = "ferry-test-boundary-7d1c";
        let mut body = String::new();
        for (name, content) in parts {
            let file = if *name == "users" {
                "; filename=\"users.csv\"\r\nContent-Type: text/csv"
            } else {
                ""
            };
            body.push_str(&format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"{file}\r\n\r\n{content}\r\n"
            ));
        }
        body.push_str(&format!("--{boundary}--\r\n"));
        self.send(
            hyper::Request::post(self.url(target)).header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            ),
            Bytes::from(body),
        )
        .await
    }

    /// Follows `page`'s redirect.
    pub async fn follow(&self, page: &WebPage) -> WebPage {
        let location = page
            .location()
            .unwrap_or_else(|| panic!("no redirect from a {} page: {}", page.status, page.body));
        self.get(&location).await
    }

    /// Signs in to the console with `key` (and `institution_id` for the
    /// operator token); the answer to the sign-in POST.
    pub async fn sign_in(&self, key: &str, institution_id: &str) -> WebPage {
        let form = self.get("/admin/sign-in").await;
        let csrf = form.hidden("csrf").expect("sign-in csrf");
        self.post(
            "/admin/sign-in",
            &[
                ("csrf", &csrf),
                ("key", key),
                ("institution_id", institution_id),
            ],
        )
        .await
    }
}

/// A free loopback port: the Marketplace's redirect URI must name the HTTP
/// listener's port before the daemon starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn licensed_user(account_id: &str) -> ZoomUser {
    ZoomUser {
        user_id: format!("user-of-{account_id}"),
        email: format!("admin@{account_id}.example.edu"),
        account_id: account_id.to_string(),
        user_type: LICENSED_USER,
    }
}

pub fn basic_user(account_id: &str) -> ZoomUser {
    ZoomUser {
        user_type: BASIC_USER,
        ..licensed_user(account_id)
    }
}

/// A daemon with the Marketplace app, the simulator's Zoom, one
/// institution with an admin key and a configuration.
pub struct WebScene {
    pub daemon: TestDaemon,
    pub zoom_host: DownloadServer,
    /// `http://127.0.0.1:port`, the daemon's public URL.
    pub base: String,
    pub institution: TestInstitution,
    pub admin: Clients,
    pub operator: Clients,
    pub configuration_token: String,
    _dir: tempfile::TempDir,
}

/// Points `config` at the simulator's Zoom with the Marketplace app.
pub fn marketplace_config(config: &mut Config, zoom_host: &DownloadServer, port: u16) {
    config.http.addr = format!("127.0.0.1:{port}").parse().unwrap();
    config.zoom.download_allowlist = vec!["127.0.0.1".into(), "localhost".into()];
    config.zoom.allow_insecure_downloads = true;
    config.zoom.api_base_url = zoom_host.zoom_base();
    config.zoom.oauth_base_url = zoom_host.zoom_base();
    config.zoom.client_id = Some(MARKETPLACE_CLIENT_ID.into());
    config.zoom.client_secret = Some(ferry_control::secrets::Secret::new(
        MARKETPLACE_CLIENT_SECRET,
    ));
    config.zoom.public_url = Some(format!("http://127.0.0.1:{port}"));
}

impl WebScene {
    pub async fn start(adjust: impl FnOnce(&mut Config)) -> WebScene {
        let dir = tempfile::tempdir().unwrap();
        let zoom_host = DownloadServer::start().await.unwrap();
        zoom_host.register_marketplace_app(MARKETPLACE_CLIENT_ID, MARKETPLACE_CLIENT_SECRET);
        let port = free_port();
        let mut config = test_config(dir.path());
        marketplace_config(&mut config, &zoom_host, port);
        adjust(&mut config);
        let daemon = TestDaemon::start_with(config).await.unwrap();
        let mut operator = daemon.clients(Some(OPERATOR_TOKEN)).await.unwrap();
        let institution = create_institution(&mut operator, "Example University")
            .await
            .unwrap();
        let mut admin = connect(&daemon.grpc_url(), Some(&institution.admin_key))
            .await
            .unwrap();
        let configuration = create_configuration(&mut admin, "Main Zoom account").await;
        WebScene {
            daemon,
            zoom_host,
            base: format!("http://127.0.0.1:{port}"),
            institution,
            admin,
            operator,
            configuration_token: configuration.configuration_token,
            _dir: dir,
        }
    }

    pub fn browser(&self) -> WebClient {
        WebClient::new(&self.base)
    }

    pub async fn approve(&self, browser: &WebClient, user: ZoomUser) -> WebPage {
        approve(&self.zoom_host, browser, user).await
    }

    pub async fn install(&self, browser: &WebClient, user: ZoomUser, token: &str) -> WebPage {
        install(&self.zoom_host, browser, user, token).await
    }
}

/// Install → Zoom's authorize page (as `user`) → the callback: the page it
/// ends on (the token prompt when Zoom's user may install).
pub async fn approve(zoom_host: &DownloadServer, browser: &WebClient, user: ZoomUser) -> WebPage {
    zoom_host.sign_in_zoom_user(user);
    let start = browser.get("/zoom/install").await;
    assert_eq!(start.status, 303, "{}", start.body);
    let authorize = browser.follow(&start).await;
    assert_eq!(authorize.status, 302, "{}", authorize.body);
    let callback = browser.follow(&authorize).await;
    if callback.status != 303 {
        return callback;
    }
    browser.follow(&callback).await
}

/// The whole install; the page after posting `token`.
pub async fn install(
    zoom_host: &DownloadServer,
    browser: &WebClient,
    user: ZoomUser,
    token: &str,
) -> WebPage {
    let prompt = approve(zoom_host, browser, user).await;
    assert_eq!(prompt.status, 200, "{}", prompt.body);
    let csrf = prompt.hidden("csrf").expect("prompt csrf");
    browser
        .post(
            "/zoom/install/token",
            &[("csrf", &csrf), ("configuration_token", token)],
        )
        .await
}
