//! The S3 sink, the production one: multipart uploads through `aws-sdk-s3`
//! against AWS S3 or any S3-compatible server (path-style addressing and a
//! custom endpoint for MinIO, Ceph and the like).
//!
//! The client is built from [`S3Settings`] alone: static credentials, a fixed
//! region and endpoint, and Ferry's own rustls HTTPS client trusting the
//! system's roots and `transfer.extra_ca_file`'s ([`ClientTrust`]). Nothing
//! reads the environment, a profile file or the instance metadata service.
//!
//! Retries are split on purpose. The engine retries a failed part itself,
//! with backoff and the server's Retry-After, and records every attempt, so
//! UploadPart runs with the SDK's retries off: one engine attempt is one
//! request. The control requests (create, list, complete, abort, head) keep
//! the SDK's standard retries, three attempts, because the engine fails the
//! whole job attempt when one of them fails.
//!
//! The SDK's own request checksums are off (`WhenRequired`): when
//! `checksums` is on, the sink sends each part's CRC32C, already computed by
//! the assembler, as `x-amz-checksum-crc32c`, so the body is streamed once,
//! as is, never re-read nor re-framed as `aws-chunked` (which many
//! S3-compatible servers reject).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Builder as ConfigBuilder, Credentials, Region, RequestChecksumCalculation,
    ResponseChecksumValidation, StalledStreamProtectionConfig,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, SdkBody};
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload};
use base64::Engine as _;
use ferry_control::secrets::Secret;

use super::{CompletedPart, ObjectSink, PendingUpload, SinkError, UploadedPart};
use crate::transfer::parts::Part;
use crate::transfer::trust::ClientTrust;

/// Attempts the SDK makes for a control request (not for UploadPart).
const CONTROL_REQUEST_ATTEMPTS: u32 = 3;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request or response body may move no bytes at all before the
/// request fails as transient. There is deliberately no whole-request
/// timeout: a large part on a slow link is slow, not stuck.
const STALL_GRACE_PERIOD: Duration = Duration::from_secs(30);

/// Error codes S3 and compatible servers use for "try again later", whatever
/// the HTTP status (S3 sends `RequestTimeout` as a 400, and an error inside
/// a 200 response to CompleteMultipartUpload).
const TRANSIENT_CODES: &[&str] = &[
    "InternalError",
    "RequestTimeout",
    "ServiceUnavailable",
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "TooManyRequests",
    "RequestThrottled",
];

/// Where and how to reach the bucket.
#[derive(Clone, Debug)]
pub struct S3Settings {
    /// `None` for AWS S3 itself; otherwise the server's base URL.
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    /// `https://host/bucket/key` rather than `https://bucket.host/key`;
    /// most S3-compatible servers want it.
    pub path_style: bool,
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
    /// Send each part's CRC32C so the server verifies it (and stores it).
    pub checksums: bool,
    /// Which server certificates are trusted (built-in roots by default).
    pub trust: ClientTrust,
}

pub struct S3Sink {
    client: Client,
    bucket: String,
    endpoint: Option<String>,
    checksums: bool,
}

impl fmt::Debug for S3Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Sink")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("checksums", &self.checksums)
            .finish_non_exhaustive()
    }
}

impl S3Sink {
    pub fn new(settings: S3Settings) -> Result<Self, SinkError> {
        if settings.bucket.is_empty() {
            return Err(SinkError::Permanent("s3 bucket name is empty".into()));
        }
        if settings.region.is_empty() {
            return Err(SinkError::Permanent("s3 region is empty".into()));
        }
        if let Some(endpoint) = &settings.endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(SinkError::Permanent(format!(
                "s3 endpoint {endpoint:?} must start with http:// or https://"
            )));
        }
        let credentials = Credentials::new(
            settings.access_key_id,
            settings.secret_access_key.expose(),
            settings
                .session_token
                .as_ref()
                .map(|token| token.expose().to_string()),
            None,
            "ferry-settings",
        );
        let http_client = settings
            .trust
            .s3_http_client()
            .map_err(|e| SinkError::Permanent(format!("s3 client: {e}")))?;
        let mut config = ConfigBuilder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(settings.region))
            .credentials_provider(credentials)
            .http_client(http_client)
            .force_path_style(settings.path_style)
            .retry_config(RetryConfig::standard().with_max_attempts(CONTROL_REQUEST_ATTEMPTS))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .build(),
            )
            .stalled_stream_protection(
                StalledStreamProtectionConfig::enabled()
                    .grace_period(STALL_GRACE_PERIOD)
                    .build(),
            )
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(endpoint) = &settings.endpoint {
            config = config.endpoint_url(endpoint.trim_end_matches('/'));
        }
        Ok(S3Sink {
            client: Client::from_conf(config.build()),
            bucket: settings.bucket,
            endpoint: settings.endpoint,
            checksums: settings.checksums,
        })
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

#[async_trait]
impl ObjectSink for S3Sink {
    fn kind(&self) -> &'static str {
        "s3"
    }

    async fn create_upload(&self, key: &str, content_type: &str) -> Result<String, SinkError> {
        let mut request = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type);
        if self.checksums {
            request = request.checksum_algorithm(ChecksumAlgorithm::Crc32C);
        }
        let output = request
            .send()
            .await
            .map_err(|e| sink_error("CreateMultipartUpload", None, e))?;
        output
            .upload_id()
            .filter(|id| !id.is_empty())
            .map(str::to_string)
            .ok_or_else(|| {
                SinkError::Permanent("s3 CreateMultipartUpload returned no upload id".into())
            })
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part: &Part,
    ) -> Result<String, SinkError> {
        let part_number = s3_part_number(part.number)?;
        let content_length = i64::try_from(part.len)
            .map_err(|_| SinkError::Permanent(format!("part {} is too large", part.number)))?;
        // Each (re)build of the body is a fresh `PartBody` over the same
        // chunks: the bytes are never copied, whoever replays them.
        let chunks = part.clone();
        let body = SdkBody::retryable(move || SdkBody::from_body_1_x(chunks.body()));
        let mut request = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(part_number)
            .content_length(content_length)
            .body(ByteStream::new(body));
        if self.checksums {
            request = request.checksum_crc32_c(part.crc32c_base64());
        }
        let output = request
            .customize()
            // The engine retries parts itself (see the module comment).
            .config_override(ConfigBuilder::new().retry_config(RetryConfig::disabled()))
            .send()
            .await
            .map_err(|e| sink_error("UploadPart", Some(upload_id), e))?;
        output.e_tag().map(normalize_etag).ok_or_else(|| {
            SinkError::Permanent(format!(
                "s3 UploadPart returned no ETag for part {}",
                part.number
            ))
        })
    }

    async fn list_parts(&self, key: &str, upload_id: &str) -> Result<Vec<UploadedPart>, SinkError> {
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let output = self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .set_part_number_marker(marker.clone())
                .send()
                .await
                .map_err(|e| sink_error("ListParts", Some(upload_id), e))?;
            for listed in output.parts() {
                let (Some(number), Some(size)) = (listed.part_number(), listed.size()) else {
                    return Err(SinkError::Permanent(
                        "s3 ListParts returned a part without a number or size".into(),
                    ));
                };
                let etag = listed.e_tag().map(normalize_etag).ok_or_else(|| {
                    SinkError::Permanent(format!(
                        "s3 ListParts returned part {number} without an ETag"
                    ))
                })?;
                parts.push(UploadedPart {
                    part_number: u32::try_from(number).unwrap_or(0),
                    etag,
                    size: u64::try_from(size).unwrap_or(0),
                });
            }
            if output.is_truncated() != Some(true) {
                break;
            }
            let next = output.next_part_number_marker().map(str::to_string);
            if next.is_none() || next == marker {
                return Err(SinkError::Permanent(
                    "s3 ListParts said there are more parts but gave no next marker".into(),
                ));
            }
            marker = next;
        }
        parts.sort_by_key(|part| part.part_number);
        Ok(parts)
    }

    async fn complete_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<(), SinkError> {
        let mut completed = Vec::with_capacity(parts.len());
        for part in parts {
            let mut builder = aws_sdk_s3::types::CompletedPart::builder()
                .part_number(s3_part_number(part.part_number)?)
                .e_tag(format!("\"{}\"", normalize_etag(&part.etag)));
            if self.checksums {
                builder = builder.checksum_crc32_c(crc32c_base64(part.crc32c));
            }
            completed.push(builder.build());
        }
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| sink_error("CompleteMultipartUpload", Some(upload_id), e))?;
        Ok(())
    }

    async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<(), SinkError> {
        let aborted = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await;
        match aborted.map_err(|e| sink_error("AbortMultipartUpload", Some(upload_id), e)) {
            Ok(_) | Err(SinkError::NoSuchUpload(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn list_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>, SinkError> {
        let mut uploads = Vec::new();
        let mut key_marker: Option<String> = None;
        let mut upload_id_marker: Option<String> = None;
        loop {
            let output = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_key_marker(key_marker.clone())
                .set_upload_id_marker(upload_id_marker.clone())
                .send()
                .await
                .map_err(|e| match sink_error("ListMultipartUploads", None, e) {
                    SinkError::Permanent(message) if message.contains("NotImplemented") => {
                        SinkError::Permanent(format!(
                            "this S3 server does not implement ListMultipartUploads, so \
                             abandoned uploads cannot be found and aborted ({message})"
                        ))
                    }
                    other => other,
                })?;
            for upload in output.uploads() {
                if let (Some(key), Some(upload_id)) = (upload.key(), upload.upload_id()) {
                    uploads.push(PendingUpload {
                        key: key.to_string(),
                        upload_id: upload_id.to_string(),
                        initiated: upload
                            .initiated()
                            .and_then(|t| std::time::SystemTime::try_from(*t).ok()),
                    });
                }
            }
            if output.is_truncated() != Some(true) {
                break;
            }
            let next = (
                output.next_key_marker().map(str::to_string),
                output.next_upload_id_marker().map(str::to_string),
            );
            if next.0.is_none() || next == (key_marker.clone(), upload_id_marker.clone()) {
                return Err(SinkError::Permanent(
                    "s3 ListMultipartUploads said there are more uploads but gave no next marker"
                        .into(),
                ));
            }
            (key_marker, upload_id_marker) = next;
        }
        Ok(uploads)
    }

    async fn object_size(&self, key: &str) -> Result<Option<u64>, SinkError> {
        let headed = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await;
        match headed {
            Ok(output) => Ok(Some(
                output
                    .content_length()
                    .and_then(|len| u64::try_from(len).ok())
                    .unwrap_or(0),
            )),
            Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 404 => Ok(None),
            Err(e) => Err(sink_error("HeadObject", None, e)),
        }
    }
}

fn s3_part_number(number: u32) -> Result<i32, SinkError> {
    i32::try_from(number)
        .ok()
        .filter(|number| (1..=10_000).contains(number))
        .ok_or_else(|| SinkError::Permanent(format!("part number {number} is outside 1..=10000")))
}

/// ETags without their quotes, so the one UploadPart returns and the one
/// ListParts returns compare equal whatever quoting the server uses.
fn normalize_etag(etag: &str) -> String {
    etag.trim().trim_matches('"').to_string()
}

/// The `x-amz-checksum-crc32c` form: base64 of the big-endian 4 bytes.
fn crc32c_base64(crc32c: u32) -> String {
    base64::engine::general_purpose::STANDARD.encode(crc32c.to_be_bytes())
}

/// Maps an SDK failure to what the engine should do about it. Messages name
/// the operation and the S3 error code; they never carry credentials (the
/// SDK's error text has the endpoint at most, never the signature).
fn sink_error<E>(
    operation: &'static str,
    upload_id: Option<&str>,
    error: SdkError<E, HttpResponse>,
) -> SinkError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &error {
        SdkError::ServiceError(service) => {
            let raw = service.raw();
            let retry_after = raw.headers().get("retry-after").and_then(parse_retry_after);
            classify_response(
                operation,
                upload_id,
                raw.status().as_u16(),
                service.err().code(),
                service.err().message(),
                retry_after,
            )
        }
        SdkError::ResponseError(response) => {
            let raw = response.raw();
            let retry_after = raw.headers().get("retry-after").and_then(parse_retry_after);
            classify_response(
                operation,
                upload_id,
                raw.status().as_u16(),
                None,
                Some("the response could not be read"),
                retry_after,
            )
        }
        SdkError::TimeoutError(_) => SinkError::transient(format!("s3 {operation} timed out")),
        SdkError::DispatchFailure(failure) if failure.is_user() => SinkError::Permanent(format!(
            "s3 {operation} could not be sent: {}",
            error_chain(&error)
        )),
        SdkError::DispatchFailure(_) => SinkError::transient(format!(
            "s3 {operation} could not reach the server: {}",
            error_chain(&error)
        )),
        SdkError::ConstructionFailure(_) => SinkError::Permanent(format!(
            "s3 {operation} request could not be built: {}",
            error_chain(&error)
        )),
        _ => SinkError::transient(format!("s3 {operation} failed: {}", error_chain(&error))),
    }
}

/// An error and its sources, `outer: inner: innermost`, without the Debug
/// dump the SDK's `DisplayErrorContext` appends.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The decision for an error response, from its status and S3 error code.
fn classify_response(
    operation: &'static str,
    upload_id: Option<&str>,
    status: u16,
    code: Option<&str>,
    message: Option<&str>,
    retry_after: Option<Duration>,
) -> SinkError {
    if code == Some("NoSuchUpload") {
        return SinkError::NoSuchUpload(upload_id.unwrap_or_default().to_string());
    }
    let code_text = code.unwrap_or("no error code");
    let detail = message
        .filter(|message| !message.is_empty())
        .map(|message| format!(": {}", truncate(message, 300)))
        .unwrap_or_default();
    let message = format!("s3 {operation} failed: {code_text} (http {status}){detail}");
    let not_implemented = status == 501 || code == Some("NotImplemented");
    let transient =
        status >= 500 || status == 429 || code.is_some_and(|c| TRANSIENT_CODES.contains(&c));
    if transient && !not_implemented {
        SinkError::Transient {
            message,
            retry_after,
        }
    } else {
        SinkError::Permanent(message)
    }
}

/// Retry-After in delta-seconds, the form S3-compatible servers send; an
/// HTTP date is ignored (the engine's own backoff applies).
fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

fn truncate(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> S3Settings {
        S3Settings {
            endpoint: Some("http://127.0.0.1:9".into()),
            region: "us-east-1".into(),
            bucket: "recordings".into(),
            path_style: true,
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI-very-secret"),
            session_token: Some(Secret::new("session-token-very-secret")),
            checksums: true,
            trust: ClientTrust::builtin(),
        }
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let settings = settings();
        let printed = format!("{settings:?}");
        assert!(!printed.contains("very-secret"), "{printed}");
        assert!(printed.contains("recordings"));
        let sink = S3Sink::new(settings).expect("valid settings");
        let printed = format!("{sink:?}");
        assert!(!printed.contains("very-secret"), "{printed}");
    }

    #[test]
    fn settings_are_checked() {
        let mut bad = settings();
        bad.bucket.clear();
        assert!(matches!(S3Sink::new(bad), Err(SinkError::Permanent(_))));
        let mut bad = settings();
        bad.endpoint = Some("127.0.0.1:9000".into());
        assert!(matches!(S3Sink::new(bad), Err(SinkError::Permanent(m)) if m.contains("http://")));
    }

    #[test]
    fn server_errors_and_throttling_are_transient() {
        for (status, code) in [
            (500, Some("InternalError")),
            (502, None),
            (503, Some("SlowDown")),
            (429, None),
            (400, Some("RequestTimeout")),
            (200, Some("InternalError")),
        ] {
            let error = classify_response(
                "UploadPart",
                Some("u1"),
                status,
                code,
                None,
                Some(Duration::from_secs(7)),
            );
            assert!(
                matches!(
                    &error,
                    SinkError::Transient { retry_after: Some(d), .. } if *d == Duration::from_secs(7)
                ),
                "{status} {code:?}: {error:?}"
            );
        }
    }

    #[test]
    fn client_errors_are_permanent_and_name_the_operation_and_code() {
        let error = classify_response(
            "UploadPart",
            Some("u1"),
            403,
            Some("SignatureDoesNotMatch"),
            Some("The request signature we calculated does not match"),
            None,
        );
        let SinkError::Permanent(message) = error else {
            panic!("expected permanent, got {error:?}");
        };
        assert!(message.contains("UploadPart"), "{message}");
        assert!(message.contains("SignatureDoesNotMatch"), "{message}");
        assert!(message.contains("403"), "{message}");

        let error = classify_response(
            "ListMultipartUploads",
            None,
            501,
            Some("NotImplemented"),
            None,
            None,
        );
        assert!(matches!(error, SinkError::Permanent(m) if m.contains("NotImplemented")));
    }

    #[test]
    fn no_such_upload_is_its_own_kind() {
        let error = classify_response(
            "ListParts",
            Some("abc"),
            404,
            Some("NoSuchUpload"),
            None,
            None,
        );
        assert!(matches!(error, SinkError::NoSuchUpload(id) if id == "abc"));
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        assert_eq!(parse_retry_after(" 12 "), Some(Duration::from_secs(12)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn etags_lose_their_quotes_and_checksums_match_the_part_form() {
        assert_eq!(normalize_etag("\"abc\""), "abc");
        assert_eq!(normalize_etag("abc"), "abc");
        assert_eq!(crc32c_base64(0x7B98_E751), "e5jnUQ==");
        assert_eq!(truncate("héllo", 2), "hé");
    }
}
