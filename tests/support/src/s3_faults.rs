//! A fault-injecting HTTP proxy in front of an S3 server, on 127.0.0.1. It
//! forwards every request unchanged and, by rule, answers some UploadPart
//! requests itself the way a struggling S3 does: `500 InternalError`,
//! `503 SlowDown`, or `429` with a `Retry-After` (and, when asked, fails
//! CompleteMultipartUploads without forwarding them). It records every request
//! it saw, with times, so a test can check what the client sent again and
//! how long it waited first.
//!
//! Forwarding keeps the client's `Host` header (the proxy's address), so
//! SigV4 signatures only hold for a server that does not check them, such
//! as moto. One answer is mended on the way back: moto 5.2.1 names the root
//! elements of CompleteMultipartUpload's and ListParts' results
//! `CompleteMultipartUploadResponse` and `ListPartsResponse` where S3 says
//! `…Result` (5.2.5 says it right), and aws-sdk-s3 takes the wrong name for
//! an error; the proxy renames them.
//!
//! [`FaultProxy::start_tls`] makes it a TLS-terminating proxy: clients reach
//! it over HTTPS (HTTP/1.1, as S3 speaks) and it forwards in plain HTTP to
//! moto, which has no TLS of its own; it counts TLS handshakes.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferry_zoomsim::tls::{self, ServerTls};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// Headers a proxy does not forward (RFC 9110, section 7.6.1).
const HOP_BY_HOP_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// An answer the proxy gives instead of forwarding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `500 InternalError`.
    InternalError,
    /// `503 SlowDown`, S3's own throttling answer.
    SlowDown,
    /// `429 TooManyRequests` with `Retry-After` in whole seconds.
    TooManyRequests { retry_after: Duration },
}

impl Fault {
    pub fn status(self) -> StatusCode {
        match self {
            Fault::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            Fault::SlowDown => StatusCode::SERVICE_UNAVAILABLE,
            Fault::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    fn response(self) -> Response<ProxyBody> {
        let (code, message) = match self {
            Fault::InternalError => ("InternalError", "We encountered an internal error."),
            Fault::SlowDown => ("SlowDown", "Please reduce your request rate."),
            Fault::TooManyRequests { .. } => ("TooManyRequests", "Too many requests."),
        };
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
             <Message>{message}</Message><RequestId>fault-proxy</RequestId></Error>"
        );
        let mut response = Response::builder()
            .status(self.status())
            .header("content-type", "application/xml");
        if let Fault::TooManyRequests { retry_after } = self {
            response = response.header("retry-after", retry_after.as_secs().to_string());
        }
        response.body(full(body)).expect("a static fault response")
    }
}

/// The first `times` UploadPart requests for `part_number` (any part when
/// `None`) get `fault`; later ones are forwarded.
#[derive(Clone, Copy, Debug)]
pub struct FaultRule {
    pub part_number: Option<u32>,
    pub times: u32,
    pub fault: Fault,
}

/// The S3 operations a test tells apart, from method and query alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum S3Operation {
    CreateMultipartUpload,
    UploadPart,
    ListParts,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    ListMultipartUploads,
    Other,
}

impl S3Operation {
    fn of(method: &Method, uri: &Uri) -> S3Operation {
        let query = uri.query().unwrap_or_default();
        let has = |name: &str| query_value(query, name).is_some();
        match *method {
            Method::PUT if has("partNumber") && has("uploadId") => S3Operation::UploadPart,
            Method::POST if has("uploads") => S3Operation::CreateMultipartUpload,
            Method::POST if has("uploadId") => S3Operation::CompleteMultipartUpload,
            Method::DELETE if has("uploadId") => S3Operation::AbortMultipartUpload,
            Method::GET if has("uploadId") => S3Operation::ListParts,
            Method::GET if has("uploads") => S3Operation::ListMultipartUploads,
            _ => S3Operation::Other,
        }
    }
}

/// A request as the proxy saw it, and what it answered.
#[derive(Clone, Debug)]
pub struct SeenRequest {
    pub operation: S3Operation,
    pub method: Method,
    pub path: String,
    pub part_number: Option<u32>,
    /// The status the client got (502 when the server could not be reached).
    pub status: u16,
    /// The proxy answered by itself, by a [`FaultRule`].
    pub injected: bool,
    pub received_at: Instant,
    /// When the response head went back to the client.
    pub answered_at: Instant,
}

#[derive(Default)]
struct State {
    rules: Vec<FaultRule>,
    /// CompleteMultipartUploads still to forward and then answer 500, as if
    /// the server's answer was lost on the way back.
    lost_completions: u32,
    /// CompleteMultipartUploads still to answer with a fault, unforwarded.
    failed_completions: (u32, Option<Fault>),
    seen: Vec<SeenRequest>,
}

impl State {
    /// The fault for this UploadPart, spending one of its rule's `times`.
    fn take_fault(&mut self, part_number: Option<u32>) -> Option<Fault> {
        let rule = self.rules.iter_mut().find(|rule| {
            rule.times > 0 && (rule.part_number.is_none() || rule.part_number == part_number)
        })?;
        rule.times -= 1;
        Some(rule.fault)
    }
}

/// The proxy; it stops accepting connections when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    tls: Option<ServerTls>,
    state: Arc<Mutex<State>>,
    shutdown: CancellationToken,
}

impl FaultProxy {
    /// Listens on a free 127.0.0.1 port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<FaultProxy> {
        Self::start_with(upstream, None).await
    }

    /// As [`FaultProxy::start`], but clients reach the proxy over HTTPS
    /// with `tls`'s certificate (which must name `127.0.0.1`).
    pub async fn start_tls(upstream: SocketAddr, tls: ServerTls) -> std::io::Result<FaultProxy> {
        Self::start_with(upstream, Some(tls)).await
    }

    async fn start_with(
        upstream: SocketAddr,
        tls: Option<ServerTls>,
    ) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let proxy = FaultProxy {
            addr: listener.local_addr()?,
            tls,
            state: Arc::new(Mutex::new(State::default())),
            shutdown: CancellationToken::new(),
        };
        let client: Client<HttpConnector, Incoming> =
            Client::builder(TokioExecutor::new()).build_http();
        let (state, shutdown, tls) = (
            proxy.state.clone(),
            proxy.shutdown.clone(),
            proxy.tls.clone(),
        );
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(_) => continue,
                    },
                };
                let (state, client, shutdown, tls) =
                    (state.clone(), client.clone(), shutdown.clone(), tls.clone());
                tokio::spawn(async move {
                    let Ok(stream) = tls::accept(tls.as_ref(), stream).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |request| {
                        let (state, client) = (state.clone(), client.clone());
                        async move {
                            Ok::<_, Infallible>(handle(&state, &client, upstream, request).await)
                        }
                    });
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = connection => {}
                    }
                });
            }
        });
        Ok(proxy)
    }

    /// The base URL to give an S3 client, `http://127.0.0.1:PORT` (or
    /// `https://` when the proxy terminates TLS).
    pub fn endpoint(&self) -> String {
        format!("{}://{}", tls::scheme(self.tls.as_ref()), self.addr)
    }

    /// The TLS side (its handshake counts), if the proxy terminates TLS.
    pub fn tls(&self) -> Option<&ServerTls> {
        self.tls.as_ref()
    }

    pub fn inject(&self, rule: FaultRule) {
        self.state.lock().expect("proxy state").rules.push(rule);
    }

    /// The next `times` CompleteMultipartUploads reach the server, but the
    /// client gets a 500 instead of the server's answer.
    pub fn lose_completions(&self, times: u32) {
        self.state.lock().expect("proxy state").lost_completions = times;
    }

    /// The next `times` CompleteMultipartUploads get `fault` and never
    /// reach the server: the object is never made.
    pub fn fail_completions(&self, times: u32, fault: Fault) {
        self.state.lock().expect("proxy state").failed_completions = (times, Some(fault));
    }

    /// Every request so far, in the order they arrived.
    pub fn seen(&self) -> Vec<SeenRequest> {
        let mut seen = self.state.lock().expect("proxy state").seen.clone();
        seen.sort_by_key(|request| request.received_at);
        seen
    }

    /// The UploadPart requests for one part number, in the order they arrived.
    pub fn upload_parts(&self, part_number: u32) -> Vec<SeenRequest> {
        self.seen()
            .into_iter()
            .filter(|request| {
                request.operation == S3Operation::UploadPart
                    && request.part_number == Some(part_number)
            })
            .collect()
    }

    pub fn count(&self, operation: S3Operation) -> usize {
        let state = self.state.lock().expect("proxy state");
        state
            .seen
            .iter()
            .filter(|request| request.operation == operation)
            .count()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn handle(
    state: &Mutex<State>,
    client: &Client<HttpConnector, Incoming>,
    upstream: SocketAddr,
    request: Request<Incoming>,
) -> Response<ProxyBody> {
    let received_at = Instant::now();
    let operation = S3Operation::of(request.method(), request.uri());
    let part_number = query_value(request.uri().query().unwrap_or_default(), "partNumber")
        .and_then(|value| value.parse().ok());
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let fault = match operation {
        S3Operation::UploadPart => state.lock().expect("proxy state").take_fault(part_number),
        S3Operation::CompleteMultipartUpload => {
            let mut state = state.lock().expect("proxy state");
            match state.failed_completions {
                (times, Some(fault)) if times > 0 => {
                    state.failed_completions.0 -= 1;
                    Some(fault)
                }
                _ => None,
            }
        }
        _ => None,
    };
    let response = match fault {
        Some(fault) => {
            // Read the whole body first, as S3 does: an answer mid-upload
            // would reach the client as a broken connection, not a status.
            let _ = request.into_body().collect().await;
            fault.response()
        }
        None => {
            let response = forward(client, upstream, request).await;
            match operation {
                S3Operation::CompleteMultipartUpload => {
                    let lose = {
                        let mut state = state.lock().expect("proxy state");
                        let lose = state.lost_completions > 0;
                        state.lost_completions = state.lost_completions.saturating_sub(1);
                        lose
                    };
                    let response = mend_result_name(response).await;
                    if lose {
                        Fault::InternalError.response()
                    } else {
                        response
                    }
                }
                S3Operation::ListParts => mend_result_name(response).await,
                _ => response,
            }
        }
    };
    state.lock().expect("proxy state").seen.push(SeenRequest {
        operation,
        method,
        path,
        part_number,
        status: response.status().as_u16(),
        injected: fault.is_some(),
        received_at,
        answered_at: Instant::now(),
    });
    response
}

async fn forward(
    client: &Client<HttpConnector, Incoming>,
    upstream: SocketAddr,
    request: Request<Incoming>,
) -> Response<ProxyBody> {
    let (mut head, body) = request.into_parts();
    let path_and_query = head
        .uri
        .path_and_query()
        .map_or("/", |path_and_query| path_and_query.as_str());
    head.uri = format!("http://{upstream}{path_and_query}")
        .parse()
        .expect("an upstream URI");
    match client.request(Request::from_parts(head, body)).await {
        Ok(mut response) => {
            // Hop-by-hop headers describe the proxy's connection to the
            // server, not the client's to the proxy (moto's `Connection:
            // close` would otherwise close every client connection).
            for name in HOP_BY_HOP_HEADERS {
                response.headers_mut().remove(*name);
            }
            response.map(BodyExt::boxed)
        }
        Err(e) => Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .body(full(format!("the S3 server could not be reached: {e}")))
            .expect("a static response"),
    }
}

/// What moto calls `CompleteMultipartUploadResponse` or `ListPartsResponse`,
/// as S3 names it.
async fn mend_result_name(response: Response<ProxyBody>) -> Response<ProxyBody> {
    let (mut head, body) = response.into_parts();
    let text = match body.collect().await {
        Ok(collected) => String::from_utf8_lossy(&collected.to_bytes()).into_owned(),
        Err(e) => format!("the S3 server's answer broke off: {e}"),
    };
    let text = text
        .replace(
            "CompleteMultipartUploadResponse",
            "CompleteMultipartUploadResult",
        )
        .replace("ListPartsResponse", "ListPartsResult");
    head.headers.remove(hyper::header::CONTENT_LENGTH);
    Response::from_parts(head, full(text))
}

fn full(text: String) -> ProxyBody {
    Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed()
}

/// The value of `name` in a query string (`Some("")` for a bare `name`).
fn query_value<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}
