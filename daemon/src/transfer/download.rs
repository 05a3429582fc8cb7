//! Downloading a recording from Zoom: `GET download_url` with the bearer
//! token, following at most five redirects by hand so that every hop is
//! checked against the host allowlist and the token never leaves the
//! original host. IP-literal and private-address targets are refused unless
//! allowlisted by exact name; proxy environment variables are not read.
//! HTTPS hosts are verified against [`ClientTrust`]'s roots (Mozilla's and
//! `transfer.extra_ca_file`'s).

use std::collections::HashSet;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio_util::either::Either;

use super::trust::{ClientTrust, TrustError};

/// The most a download connection reads ahead of the transfer (plaintext;
/// over TLS, as much again of ciphertext in [`BufferedTcp`], and rustls one
/// record of 16 KiB). hyper's default (about 400 KiB) is outside the byte
/// budget, once per connection.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Most redirects followed for one download.
pub const MAX_REDIRECTS: usize = 5;

/// One allowlist entry: `zoom.us` (exactly that host) or `*.zoom.us` (any
/// subdomain of it, not `zoom.us` itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPattern {
    Exact(String),
    Subdomains(String),
}

impl HostPattern {
    pub fn parse(text: &str) -> Option<HostPattern> {
        let text = text.trim().to_ascii_lowercase();
        if text.is_empty() || text.contains('/') || text.contains(' ') {
            return None;
        }
        match text.strip_prefix("*.") {
            Some(domain) if !domain.is_empty() && !domain.contains('*') => {
                Some(HostPattern::Subdomains(domain.into()))
            }
            Some(_) => None,
            None if !text.contains('*') => Some(HostPattern::Exact(text)),
            None => None,
        }
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(exact) => host == exact,
            HostPattern::Subdomains(domain) => host
                .strip_suffix(domain.as_str())
                .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1),
        }
    }
}

/// Zoom's download hosts, the default allowlist.
pub fn default_allowlist() -> Vec<HostPattern> {
    ["zoom.us", "*.zoom.us", "zoomgov.com", "*.zoomgov.com"]
        .iter()
        .filter_map(|p| HostPattern::parse(p))
        .collect()
}

#[derive(Clone, Debug)]
pub struct DownloadPolicy {
    pub allowlist: Vec<HostPattern>,
    /// Plain http:// is refused unless this is set (tests on loopback).
    pub allow_insecure_http: bool,
    pub connect_timeout: Duration,
}

impl DownloadPolicy {
    fn host_allowed(&self, host: &str) -> bool {
        self.allowlist.iter().any(|p| p.matches(host))
    }

    /// Exact entries may point at IP literals and private addresses.
    fn explicitly_allowed(&self, host: &str) -> bool {
        self.allowlist
            .iter()
            .any(|p| matches!(p, HostPattern::Exact(e) if e == host))
    }

    /// Checks one hop's URL; the error says why it is refused.
    pub fn check(&self, uri: &Uri) -> Result<(), DownloadError> {
        let scheme = uri.scheme_str().unwrap_or_default();
        let host = uri
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        if host.is_empty() {
            return Err(DownloadError::Refused(
                "the download URL has no host".into(),
            ));
        }
        match scheme {
            "https" => {}
            "http" if self.allow_insecure_http => {}
            _ => {
                return Err(DownloadError::Refused(format!(
                    "{host}: only https downloads are allowed"
                )));
            }
        }
        if !self.host_allowed(&host) {
            return Err(DownloadError::Refused(format!(
                "{host} is not an allowed download host"
            )));
        }
        if host.parse::<IpAddr>().is_ok() && !self.explicitly_allowed(&host) {
            return Err(DownloadError::Refused(format!(
                "{host}: IP-literal download hosts are not allowed"
            )));
        }
        Ok(())
    }
}

/// Why a download request failed.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// A hop broke the host policy (never retried).
    #[error("download refused: {0}")]
    Refused(String),
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects,
    /// An HTTP error status.
    #[error("zoom answered HTTP {status}")]
    Status {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// Connecting or talking failed; worth a retry.
    #[error("network error: {0}")]
    Network(String),
}

/// A response whose status is 200 or 206, ready to stream.
pub struct Download {
    pub status: u16,
    pub content_type: Option<String>,
    pub content_length: Option<u64>,
    /// For 206: the first byte of the range served.
    pub range_start: Option<u64>,
    pub body: Incoming,
}

type Connector = hyper_rustls::HttpsConnector<BufferedConnector>;

#[derive(Clone)]
pub struct Downloader {
    client: Client<Connector, Full<Bytes>>,
    policy: Arc<DownloadPolicy>,
}

impl Downloader {
    /// A client under `policy` that trusts `trust`'s roots for HTTPS.
    pub fn new(policy: DownloadPolicy, trust: &ClientTrust) -> Result<Self, TrustError> {
        let explicit: HashSet<String> = policy
            .allowlist
            .iter()
            .filter_map(|p| match p {
                HostPattern::Exact(host) => Some(host.clone()),
                HostPattern::Subdomains(_) => None,
            })
            .collect();
        let mut http = HttpConnector::new_with_resolver(PrivateAddressFilter {
            explicit: Arc::new(explicit),
        });
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(policy.connect_timeout));
        // HTTP/1.1 only (ALPN `http/1.1`), also where a host offers h2: a
        // download is one long stream per connection, which h2 cannot speed
        // up, and h2's flow-control window (2 MiB a stream in hyper) is
        // read-ahead outside the byte budget that READ_BUFFER_BYTES bounds.
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(trust.zoom_client_config()?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(BufferedConnector(http));
        Ok(Downloader {
            client: Client::builder(TokioExecutor::new())
                .http1_max_buf_size(READ_BUFFER_BYTES)
                .build(https),
            policy: Arc::new(policy),
        })
    }

    /// GETs `url` from byte `range_start` on, following redirects. The
    /// bearer token goes only to the first hop's host.
    pub async fn get(
        &self,
        url: &str,
        bearer: Option<&str>,
        range_start: u64,
    ) -> Result<Download, DownloadError> {
        let mut uri: Uri = url
            .parse()
            .map_err(|_| DownloadError::Refused("the download URL is not a valid URL".into()))?;
        let origin = uri.authority().map(|a| a.as_str().to_ascii_lowercase());
        for _ in 0..=MAX_REDIRECTS {
            self.policy.check(&uri)?;
            let same_origin = uri.authority().map(|a| a.as_str().to_ascii_lowercase()) == origin;
            let mut request = hyper::Request::get(uri.clone());
            if let (Some(token), true) = (bearer, same_origin) {
                request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
            }
            if range_start > 0 {
                request = request.header(http::header::RANGE, format!("bytes={range_start}-"));
            }
            let request = request.body(Full::new(Bytes::new())).map_err(|_| {
                DownloadError::Refused("the download URL cannot be requested".into())
            })?;
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| DownloadError::Network(describe(&e)))?;
            let status = response.status().as_u16();
            let header = |name: http::header::HeaderName| header(response.headers(), name);
            match status {
                200 | 206 => {
                    let range_start = (status == 206)
                        .then(|| header(http::header::CONTENT_RANGE))
                        .flatten()
                        .and_then(|range| parse_content_range_start(&range));
                    return Ok(Download {
                        status,
                        content_type: header(http::header::CONTENT_TYPE),
                        content_length: header(http::header::CONTENT_LENGTH)
                            .and_then(|v| v.parse().ok()),
                        range_start,
                        body: response.into_body(),
                    });
                }
                301 | 302 | 303 | 307 | 308 => {
                    let location = header(http::header::LOCATION).ok_or_else(|| {
                        DownloadError::Network(format!("HTTP {status} without a Location"))
                    })?;
                    uri = resolve(&uri, &location)?;
                }
                _ => {
                    return Err(DownloadError::Status {
                        status,
                        retry_after: retry_after(response.headers()),
                    });
                }
            }
        }
        Err(DownloadError::TooManyRedirects)
    }

    /// Sends one request to a Zoom API host (checked like a download hop,
    /// redirects not followed) and reads its whole answer, at most `limit`
    /// bytes. Any status is returned; only the transport can fail.
    pub async fn fetch(
        &self,
        request: hyper::Request<Full<Bytes>>,
        limit: usize,
    ) -> Result<Fetched, DownloadError> {
        self.policy.check(request.uri())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| DownloadError::Network(describe(&e)))?;
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let body = Limited::new(response.into_body(), limit)
            .collect()
            .await
            .map_err(|e| DownloadError::Network(format!("reading the answer: {e}")))?
            .to_bytes();
        Ok(Fetched {
            status,
            retry_after,
            body,
        })
    }
}

/// A whole API answer.
#[derive(Debug)]
pub struct Fetched {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: Bytes,
}

fn header(headers: &http::HeaderMap, name: http::header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .map(str::to_string)
}

/// `Retry-After` in seconds (the HTTP-date form is not used by Zoom or S3).
fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    header(headers, http::header::RETRY_AFTER)
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// The error and its sources on one line, without URLs' query strings.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    match text.find('?') {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

fn parse_content_range_start(value: &str) -> Option<u64> {
    // "bytes 100-199/200"
    value
        .strip_prefix("bytes ")?
        .split('-')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// A Location, absolute or relative to the current URL.
fn resolve(current: &Uri, location: &str) -> Result<Uri, DownloadError> {
    let invalid = || DownloadError::Refused("a redirect pointed at an invalid URL".into());
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.parse().map_err(|_| invalid());
    }
    if let Some(rest) = location.strip_prefix("//") {
        let scheme = current.scheme_str().unwrap_or("https");
        return format!("{scheme}://{rest}").parse().map_err(|_| invalid());
    }
    let mut parts = current.clone().into_parts();
    let path = if location.starts_with('/') {
        location.to_string()
    } else {
        let base = current.path();
        let directory = &base[..base.rfind('/').map_or(0, |i| i + 1)];
        format!("{directory}{location}")
    };
    parts.path_and_query = Some(path.parse().map_err(|_| invalid())?);
    Uri::from_parts(parts).map_err(|_| invalid())
}

/// Connects as `HttpConnector` does and, for https, reads the socket through
/// a buffer of READ_BUFFER_BYTES: rustls asks the socket for about 4 KiB a
/// read, which for a download is hundreds of thousands of system calls per
/// GiB; through the buffer it is one call per 64 KiB of ciphertext, for one
/// extra copy. Plain http reads go straight to the socket (no buffer).
#[derive(Clone)]
pub struct BufferedConnector(HttpConnector<PrivateAddressFilter>);

impl tower_service::Service<Uri> for BufferedConnector {
    type Response = TokioIo<BufferedTcp>;
    type Error = <HttpConnector<PrivateAddressFilter> as tower_service::Service<Uri>>::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let buffered = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let connecting = self.0.call(uri);
        Box::pin(async move {
            let stream = connecting.await?.into_inner();
            Ok(TokioIo::new(BufferedTcp(if buffered {
                Either::Right(tokio::io::BufReader::with_capacity(
                    READ_BUFFER_BYTES,
                    stream,
                ))
            } else {
                Either::Left(stream)
            })))
        })
    }
}

/// A TCP stream, read through a buffer for https (see
/// [`BufferedConnector`]); writes go straight through.
pub struct BufferedTcp(Either<TcpStream, tokio::io::BufReader<TcpStream>>);

impl tokio::io::AsyncRead for BufferedTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for BufferedTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl hyper_util::client::legacy::connect::Connection for BufferedTcp {
    fn connected(&self) -> hyper_util::client::legacy::connect::Connected {
        match &self.0 {
            Either::Left(stream) => stream.connected(),
            Either::Right(buffered) => buffered.get_ref().connected(),
        }
    }
}

/// Resolves names like the system resolver but drops private, loopback and
/// link-local addresses, unless the name is allowlisted exactly: a public
/// name must not lead into the private network.
#[derive(Clone)]
pub struct PrivateAddressFilter {
    explicit: Arc<HashSet<String>>,
}

pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

impl tower_service::Service<Name> for PrivateAddressFilter {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let explicit = self.explicit.contains(&name.as_str().to_ascii_lowercase());
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|address| explicit || !is_private(address.ip()))
                .collect();
            if addresses.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("{host} resolves only to private addresses"),
                ));
            }
            Ok(addresses.into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(entries: &[&str]) -> DownloadPolicy {
        DownloadPolicy {
            allowlist: entries
                .iter()
                .filter_map(|e| HostPattern::parse(e))
                .collect(),
            allow_insecure_http: false,
            connect_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn the_default_allowlist_admits_zoom_hosts_only() {
        let policy = DownloadPolicy {
            allowlist: default_allowlist(),
            ..policy(&[])
        };
        for ok in [
            "https://zoom.us/rec/x",
            "https://us06web.zoom.us/rec/x",
            "https://ssrweb.zoomgov.com/x",
        ] {
            assert!(policy.check(&ok.parse().unwrap()).is_ok(), "{ok}");
        }
        for bad in [
            "http://zoom.us/rec/x",
            "https://evilzoom.us/x",
            "https://zoom.us.evil.com/x",
            "https://example.com/x",
            "https://127.0.0.1/x",
            "https://[::1]/x",
            "ftp://zoom.us/x",
        ] {
            assert!(policy.check(&bad.parse().unwrap()).is_err(), "{bad}");
        }
    }

    #[test]
    fn ip_literals_need_an_exact_entry() {
        let mut policy = policy(&["127.0.0.1", "*.1"]);
        policy.allow_insecure_http = true;
        assert!(
            policy
                .check(&"http://127.0.0.1:9/x".parse().unwrap())
                .is_ok()
        );
        assert!(
            policy
                .check(&"http://127.0.0.2:9/x".parse().unwrap())
                .is_err()
        );
    }

    #[test]
    fn redirects_resolve_relative_locations() {
        let base: Uri = "https://zoom.us/rec/download/abc?x=1".parse().unwrap();
        assert_eq!(
            resolve(&base, "/cdn/file").unwrap().to_string(),
            "https://zoom.us/cdn/file"
        );
        assert_eq!(
            resolve(&base, "other").unwrap().to_string(),
            "https://zoom.us/rec/download/other"
        );
        assert_eq!(
            resolve(&base, "https://ssrweb.zoom.us/f?sig=1")
                .unwrap()
                .to_string(),
            "https://ssrweb.zoom.us/f?sig=1"
        );
        assert_eq!(
            resolve(&base, "//cdn.zoom.us/f").unwrap().to_string(),
            "https://cdn.zoom.us/f"
        );
    }

    #[test]
    fn private_addresses_are_recognised() {
        for private in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.1.1",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_private(private.parse().unwrap()), "{private}");
        }
        for public in ["8.8.8.8", "2606:4700::1111", "170.114.52.2"] {
            assert!(!is_private(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn content_range_starts_are_parsed() {
        assert_eq!(parse_content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(parse_content_range_start("bytes */200"), None);
    }
}
