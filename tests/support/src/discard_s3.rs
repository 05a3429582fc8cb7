//! A discarding S3-protocol endpoint for the transfer benches: enough of
//! S3's multipart upload protocol (path-style, on 127.0.0.1) for Ferry's S3
//! sink and for `rclone`, with every body read to the end and thrown away.
//! It keeps only sizes, so "stored" objects cost no memory and the bench can
//! check that every byte arrived.
//!
//! Signatures, checksums and Content-MD5 are not checked: the endpoint
//! stands in for a store infinitely fast at keeping bytes, so that the
//! clients' own costs are what a bench measures. Requests it does not know
//! answer `501 NotImplemented`, are printed and show up in the operation
//! counts, so a client's new request never passes unseen.
//! `FERRY_BENCH_S3_LOG=1` prints every request.
//!
//! It speaks plain HTTP, or HTTPS ([`DiscardS3::start_tls`], HTTP/1.1 as S3
//! does) and then counts TLS handshakes, one per connection a client opened.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use ferry_zoomsim::tls::{self, ServerTls};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, ETAG, HeaderValue, LAST_MODIFIED};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Every object "stored" here reads as last modified at this instant.
const LAST_MODIFIED_HTTP: &str = "Thu, 01 Jan 2026 00:00:00 GMT";
const LAST_MODIFIED_ISO: &str = "2026-01-01T00:00:00.000Z";
const XML_NAMESPACE: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// A part as UploadPart left it: only its size and the ETag handed out.
struct StoredPart {
    num_bytes: u64,
    etag: String,
}

struct Upload {
    bucket: String,
    key: String,
    parts: BTreeMap<u32, StoredPart>,
}

#[derive(Default)]
struct State {
    next_upload_id: AtomicU64,
    /// Body bytes of UploadPart and PutObject requests, drained and dropped.
    bytes_received: AtomicU64,
    uploads: Mutex<HashMap<String, Upload>>,
    /// Size of every completed object, by `bucket/key`.
    objects: Mutex<HashMap<String, u64>>,
    operations: Mutex<BTreeMap<&'static str, u64>>,
    log_requests: bool,
}

/// The running endpoint; it stops accepting when dropped.
pub struct DiscardS3 {
    pub addr: SocketAddr,
    tls: Option<ServerTls>,
    state: Arc<State>,
    accept_loop: JoinHandle<()>,
}

impl Drop for DiscardS3 {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

impl DiscardS3 {
    /// Plain HTTP.
    pub async fn start() -> std::io::Result<DiscardS3> {
        Self::start_with(None).await
    }

    /// HTTPS with `tls`'s certificate (which must name `127.0.0.1`).
    pub async fn start_tls(tls: ServerTls) -> std::io::Result<DiscardS3> {
        Self::start_with(Some(tls)).await
    }

    async fn start_with(tls: Option<ServerTls>) -> std::io::Result<DiscardS3> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            log_requests: std::env::var("FERRY_BENCH_S3_LOG").is_ok_and(|v| v == "1"),
            ..State::default()
        });
        let (accept_state, accept_tls) = (state.clone(), tls.clone());
        let accept_loop = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (state, tls) = (accept_state.clone(), accept_tls.clone());
                tokio::spawn(async move {
                    let Ok(stream) = tls::accept(tls.as_ref(), stream).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |request| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(&state, request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(DiscardS3 {
            addr,
            tls,
            state,
            accept_loop,
        })
    }

    /// The base URL clients are configured with (path-style addressing).
    pub fn endpoint(&self) -> String {
        format!("{}://{}", tls::scheme(self.tls.as_ref()), self.addr)
    }

    /// The TLS side (its handshake counts), if the endpoint speaks HTTPS.
    pub fn tls(&self) -> Option<&ServerTls> {
        self.tls.as_ref()
    }

    /// Size of a completed object, if one was completed under that name.
    pub fn object_size(&self, bucket: &str, key: &str) -> Option<u64> {
        self.state
            .objects
            .lock()
            .expect("objects lock")
            .get(&format!("{bucket}/{key}"))
            .copied()
    }

    /// Sizes of all completed objects.
    pub fn completed_object_sizes(&self) -> Vec<u64> {
        self.state
            .objects
            .lock()
            .expect("objects lock")
            .values()
            .copied()
            .collect()
    }

    /// Body bytes received so far, over all objects and parts.
    pub fn bytes_received(&self) -> u64 {
        self.state.bytes_received.load(Ordering::Relaxed)
    }

    /// Multipart uploads created and neither completed nor aborted.
    pub fn open_uploads(&self) -> usize {
        self.state.uploads.lock().expect("uploads lock").len()
    }

    /// How many requests of each operation arrived since the last call,
    /// as `Operation×count` joined by spaces.
    pub fn take_operation_counts(&self) -> String {
        let operations =
            std::mem::take(&mut *self.state.operations.lock().expect("operations lock"));
        operations
            .iter()
            .map(|(operation, count)| format!("{operation}×{count}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The query string as a map; S3's flag parameters (`?uploads`) map to "".
fn query_map(query: Option<&str>) -> HashMap<String, String> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) => (name.to_string(), value.to_string()),
            None => (pair.to_string(), String::new()),
        })
        .collect()
}

/// `%XX` escapes of a path segment undone; clients escape keys differently.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let escaped = (bytes[at] == b'%')
            .then(|| text.get(at + 1..at + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                at += 3;
            }
            None => {
                out.push(bytes[at]);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A quoted 32-hex-digit ETag that differs per upload, part and size. It is
/// not the MD5 of the body: computing that would make the endpoint, not the
/// client, the cost being measured.
fn fake_etag(parts: impl Hash) -> String {
    let mut first = std::hash::DefaultHasher::new();
    parts.hash(&mut first);
    let high = first.finish();
    high.hash(&mut first);
    format!("\"{high:016x}{:016x}\"", first.finish())
}

/// Reads a body to its end, counting and dropping its bytes.
async fn drain(body: Incoming) -> Result<u64, hyper::Error> {
    let mut body = body;
    let mut num_bytes = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            num_bytes += data.len() as u64;
        }
    }
    Ok(num_bytes)
}

fn response(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

fn xml(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = response(
        status,
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{body}"),
    );
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    response
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    xml(
        status,
        format!("<Error><Code>{code}</Code><Message>{message}</Message></Error>"),
    )
}

fn with_etag(mut response: Response<Full<Bytes>>, etag: &str) -> Response<Full<Bytes>> {
    if let Ok(value) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(ETAG, value);
    }
    response
}

/// The S3 operation a request asks for, by method, path shape and query.
fn operation(method: &Method, has_key: bool, query: &HashMap<String, String>) -> &'static str {
    let has = |name: &str| query.contains_key(name);
    match (method.as_str(), has_key) {
        ("POST", true) if has("uploads") => "CreateMultipartUpload",
        ("POST", true) if has("uploadId") => "CompleteMultipartUpload",
        ("PUT", true) if has("partNumber") && has("uploadId") => "UploadPart",
        ("PUT", true) => "PutObject",
        ("DELETE", true) if has("uploadId") => "AbortMultipartUpload",
        ("GET", true) if has("uploadId") => "ListParts",
        ("HEAD", true) => "HeadObject",
        ("GET", true) => "GetObject",
        ("GET", false) if has("uploads") => "ListMultipartUploads",
        ("GET", false) => "ListObjects",
        ("HEAD", false) => "HeadBucket",
        ("PUT", false) => "CreateBucket",
        _ => "NotImplemented",
    }
}

async fn handle(state: &State, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (head, body) = request.into_parts();
    let query = query_map(head.uri.query());
    let path = head.uri.path().trim_start_matches('/');
    let (bucket, key) = match path.split_once('/') {
        Some((bucket, key)) => (percent_decode(bucket), percent_decode(key)),
        None => (percent_decode(path), String::new()),
    };
    let operation = operation(&head.method, !key.is_empty(), &query);
    *state
        .operations
        .lock()
        .expect("operations lock")
        .entry(operation)
        .or_default() += 1;
    if state.log_requests || operation == "NotImplemented" {
        // What the client computed over the payload shows in these headers:
        // a SHA-256 (or UNSIGNED-PAYLOAD), a Content-MD5, a CRC32C.
        let header = |name: &str| {
            head.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_string()
        };
        eprintln!(
            "discard-s3: {} {} -> {operation} (x-amz-content-sha256 {}, content-md5 {}, \
             x-amz-checksum-crc32c {}, content-length {}, expect {})",
            head.method,
            head.uri.path_and_query().map_or("", |p| p.as_str()),
            header("x-amz-content-sha256"),
            header("content-md5"),
            header("x-amz-checksum-crc32c"),
            header("content-length"),
            header("expect"),
        );
    }
    let object_name = format!("{bucket}/{key}");
    let upload_id = query.get("uploadId").cloned().unwrap_or_default();
    let no_such_upload = || {
        error(
            StatusCode::NOT_FOUND,
            "NoSuchUpload",
            "The specified upload does not exist",
        )
    };

    match operation {
        "CreateMultipartUpload" => {
            let _ = drain(body).await;
            let upload_id = format!(
                "discard-{}",
                state.next_upload_id.fetch_add(1, Ordering::Relaxed)
            );
            state.uploads.lock().expect("uploads lock").insert(
                upload_id.clone(),
                Upload {
                    bucket: bucket.clone(),
                    key: key.clone(),
                    parts: BTreeMap::new(),
                },
            );
            xml(
                StatusCode::OK,
                format!(
                    "<InitiateMultipartUploadResult xmlns=\"{XML_NAMESPACE}\"><Bucket>{}</Bucket>\
                     <Key>{}</Key><UploadId>{upload_id}</UploadId></InitiateMultipartUploadResult>",
                    xml_escape(&bucket),
                    xml_escape(&key)
                ),
            )
        }
        "UploadPart" => {
            let Some(part_number) = query.get("partNumber").and_then(|n| n.parse::<u32>().ok())
            else {
                return error(StatusCode::BAD_REQUEST, "InvalidArgument", "bad partNumber");
            };
            if !state
                .uploads
                .lock()
                .expect("uploads lock")
                .contains_key(&upload_id)
            {
                return no_such_upload();
            }
            let Ok(num_bytes) = drain(body).await else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "IncompleteBody",
                    "the body broke off",
                );
            };
            state.bytes_received.fetch_add(num_bytes, Ordering::Relaxed);
            let etag = fake_etag((&upload_id, part_number, num_bytes));
            let mut uploads = state.uploads.lock().expect("uploads lock");
            let Some(upload) = uploads.get_mut(&upload_id) else {
                return no_such_upload();
            };
            upload.parts.insert(
                part_number,
                StoredPart {
                    num_bytes,
                    etag: etag.clone(),
                },
            );
            with_etag(response(StatusCode::OK, Bytes::new()), &etag)
        }
        "CompleteMultipartUpload" => {
            // The part list in the body is small XML; the parts uploaded
            // are what the object is made of here.
            let _ = drain(body).await;
            let Some(upload) = state
                .uploads
                .lock()
                .expect("uploads lock")
                .remove(&upload_id)
            else {
                return no_such_upload();
            };
            let num_bytes: u64 = upload.parts.values().map(|part| part.num_bytes).sum();
            state
                .objects
                .lock()
                .expect("objects lock")
                .insert(object_name, num_bytes);
            let etag = format!(
                "{}-{}\"",
                fake_etag((&upload_id, num_bytes)).trim_end_matches('"'),
                upload.parts.len()
            );
            xml(
                StatusCode::OK,
                format!(
                    "<CompleteMultipartUploadResult xmlns=\"{XML_NAMESPACE}\"><Location>/{}/{}</Location>\
                     <Bucket>{}</Bucket><Key>{}</Key><ETag>{}</ETag></CompleteMultipartUploadResult>",
                    xml_escape(&upload.bucket),
                    xml_escape(&upload.key),
                    xml_escape(&upload.bucket),
                    xml_escape(&upload.key),
                    xml_escape(&etag)
                ),
            )
        }
        "AbortMultipartUpload" => {
            let _ = drain(body).await;
            match state
                .uploads
                .lock()
                .expect("uploads lock")
                .remove(&upload_id)
            {
                Some(_) => response(StatusCode::NO_CONTENT, Bytes::new()),
                None => no_such_upload(),
            }
        }
        "ListParts" => {
            let uploads = state.uploads.lock().expect("uploads lock");
            let Some(upload) = uploads.get(&upload_id) else {
                return no_such_upload();
            };
            let parts: String = upload
                .parts
                .iter()
                .map(|(number, part)| {
                    format!(
                        "<Part><PartNumber>{number}</PartNumber><LastModified>{LAST_MODIFIED_ISO}</LastModified>\
                         <ETag>{}</ETag><Size>{}</Size></Part>",
                        xml_escape(&part.etag),
                        part.num_bytes
                    )
                })
                .collect();
            xml(
                StatusCode::OK,
                format!(
                    "<ListPartsResult xmlns=\"{XML_NAMESPACE}\"><Bucket>{}</Bucket><Key>{}</Key>\
                     <UploadId>{upload_id}</UploadId><MaxParts>10000</MaxParts>\
                     <IsTruncated>false</IsTruncated>{parts}</ListPartsResult>",
                    xml_escape(&upload.bucket),
                    xml_escape(&upload.key)
                ),
            )
        }
        "ListMultipartUploads" => xml(
            StatusCode::OK,
            format!(
                "<ListMultipartUploadsResult xmlns=\"{XML_NAMESPACE}\"><Bucket>{}</Bucket>\
                 <KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker><MaxUploads>1000</MaxUploads>\
                 <IsTruncated>false</IsTruncated></ListMultipartUploadsResult>",
                xml_escape(&bucket)
            ),
        ),
        "PutObject" => {
            let Ok(num_bytes) = drain(body).await else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "IncompleteBody",
                    "the body broke off",
                );
            };
            state.bytes_received.fetch_add(num_bytes, Ordering::Relaxed);
            let etag = fake_etag((&object_name, num_bytes));
            state
                .objects
                .lock()
                .expect("objects lock")
                .insert(object_name, num_bytes);
            with_etag(response(StatusCode::OK, Bytes::new()), &etag)
        }
        "HeadObject" => {
            let size = state
                .objects
                .lock()
                .expect("objects lock")
                .get(&object_name)
                .copied();
            // A HEAD answer has no body, whatever Content-Length says.
            let Some(size) = size else {
                return response(StatusCode::NOT_FOUND, Bytes::new());
            };
            let mut response = with_etag(
                response(StatusCode::OK, Bytes::new()),
                &fake_etag((&object_name, size)),
            );
            let headers = response.headers_mut();
            headers.insert(CONTENT_LENGTH, HeaderValue::from(size));
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            headers.insert(LAST_MODIFIED, HeaderValue::from_static(LAST_MODIFIED_HTTP));
            response
        }
        "GetObject" => error(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "objects here are discarded",
        ),
        "ListObjects" => xml(
            StatusCode::OK,
            format!(
                "<ListBucketResult xmlns=\"{XML_NAMESPACE}\"><Name>{}</Name><Prefix></Prefix>\
                 <KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>\
                 </ListBucketResult>",
                xml_escape(&bucket)
            ),
        ),
        "HeadBucket" | "CreateBucket" => {
            let _ = drain(body).await;
            response(StatusCode::OK, Bytes::new())
        }
        _ => {
            let _ = drain(body).await;
            error(
                StatusCode::NOT_IMPLEMENTED,
                "NotImplemented",
                "the discarding endpoint does not implement this request",
            )
        }
    }
}
