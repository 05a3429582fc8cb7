//! The HTTP listener: the side Zoom and browsers call. Routes `POST
//! /zoom/webhook` to the intake, the Marketplace install and the admin
//! console (`/zoom/install…`, `/zoom/oauth/callback`, `/admin…`) to `web`,
//! `GET /metrics` to the Prometheus exporter, `GET /healthz`.
//!
//! Plain TCP or TLS (rustls) per `[http]`; each connection is served on its
//! own task so a slow client never holds up another.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub type HttpResponse = Response<Full<Bytes>>;

pub fn text_response(status: StatusCode, body: &'static str) -> HttpResponse {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("static response")
}

/// What one listener serves (`/healthz` always).
pub struct Routes {
    pub intake: Option<Arc<crate::intake::Intake>>,
    pub metrics: Option<MetricsRoute>,
    /// The Marketplace install and (with `console`) the admin console.
    pub web: Option<Arc<crate::web::Web>>,
    /// Whether this listener serves `/admin`.
    pub console: bool,
    /// `/healthz` answers 503 while the store does not answer.
    pub health: Arc<crate::health::Health>,
    /// Time a client has to send a request head.
    pub read_timeout: std::time::Duration,
}

/// `GET /metrics`: the exporter, and the store for the job gauges.
#[derive(Clone)]
pub struct MetricsRoute {
    pub handle: metrics_exporter_prometheus::PrometheusHandle,
    pub store: Arc<dyn ferry_control::store::Store>,
}

async fn route(
    routes: Arc<Routes>,
    request: Request<Incoming>,
    peer: std::net::SocketAddr,
) -> Result<crate::web::WebResponse, Infallible> {
    use http_body_util::BodyExt as _;
    if let Some(web) = &routes.web
        && crate::web::serves(request.uri().path(), routes.console)
    {
        return Ok(web.handle(request, peer).await);
    }
    Ok(match (request.method(), request.uri().path()) {
        (&hyper::Method::POST, "/zoom/webhook") if routes.intake.is_some() => {
            let intake = routes.intake.as_ref().expect("checked");
            intake.handle(request).await
        }
        (_, "/zoom/webhook") if routes.intake.is_some() => {
            text_response(StatusCode::METHOD_NOT_ALLOWED, "use POST\n")
        }
        (&hyper::Method::GET, "/metrics") if routes.metrics.is_some() => {
            let metrics = routes.metrics.as_ref().expect("checked");
            crate::metrics::refresh_job_gauges(metrics.store.as_ref()).await;
            Response::builder()
                .header("content-type", "text/plain; version=0.0.4")
                .body(Full::new(Bytes::from(metrics.handle.render())))
                .expect("static response parts")
        }
        (&hyper::Method::GET, "/healthz") if routes.health.serving() => {
            text_response(StatusCode::OK, "ok\n")
        }
        (&hyper::Method::GET, "/healthz") => {
            text_response(StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n")
        }
        _ => text_response(StatusCode::NOT_FOUND, "not found\n"),
    }
    .map(|body| body.boxed_unsync()))
}

/// Accepts connections until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    routes: Arc<Routes>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "http accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Without TCP_NODELAY a response written in two pieces (head, then
        // body) waits for the client's delayed ACK: ~40 ms per request.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "could not set TCP_NODELAY");
        }
        let acceptor = acceptor.clone();
        let shutdown = shutdown.clone();
        let routes = routes.clone();
        tasks.spawn(async move {
            let result = match acceptor {
                Some(acceptor) => {
                    match tokio::time::timeout(routes.read_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            serve_connection(TokioIo::new(tls_stream), routes, peer, &shutdown)
                                .await
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "tls handshake timed out");
                            return;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "tls handshake failed");
                            return;
                        }
                    }
                }
                None => serve_connection(TokioIo::new(stream), routes, peer, &shutdown).await,
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "http connection ended with an error");
            }
        });
    }
}

/// Serves one connection; on shutdown, lets the request in flight finish and
/// then closes.
async fn serve_connection<I>(
    io: I,
    routes: Arc<Routes>,
    peer: std::net::SocketAddr,
    shutdown: &CancellationToken,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // A client that dribbles its request head is cut off; its body is bounded
    // in time by the intake. Each connection has its own task, so a slow
    // sender never holds up another.
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(routes.read_timeout);
    let service = hyper::service::service_fn(move |request| route(routes.clone(), request, peer));
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => result,
        _ = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    }
}
