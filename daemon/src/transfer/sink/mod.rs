//! Where transferred objects go: one trait over S3's multipart upload
//! protocol, with an S3 implementation (production) and a local-folder one
//! (the embedded default). Both run the same test suite, `conformance`.
//!
//! A sink must never make an object visible before `complete_upload`, and
//! an aborted upload must leave no object behind.

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod local;
mod s3;

use async_trait::async_trait;

pub use local::LocalSink;
pub use s3::{S3Settings, S3Sink};

use super::parts::Part;

/// A part the sink holds for an unfinished upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadedPart {
    pub part_number: u32,
    pub etag: String,
    pub size: u64,
}

/// An unfinished multipart upload the sink holds.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PendingUpload {
    pub key: String,
    pub upload_id: String,
    /// When it was started, when the sink says.
    pub initiated: Option<std::time::SystemTime>,
}

/// A part as `complete_upload` names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompletedPart {
    pub part_number: u32,
    pub etag: String,
    pub crc32c: u32,
}

/// How a sink operation failed, which decides what the engine does next.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Worth retrying with backoff (5xx, throttling, a dropped connection).
    #[error("{message}")]
    Transient {
        message: String,
        /// The server's Retry-After, when it gave one.
        retry_after: Option<std::time::Duration>,
    },
    /// The upload id is unknown to the sink (aborted or expired).
    #[error("multipart upload {0} no longer exists")]
    NoSuchUpload(String),
    /// Retrying will not help; a person must look.
    #[error("{0}")]
    Permanent(String),
}

impl SinkError {
    pub fn transient(message: impl Into<String>) -> Self {
        SinkError::Transient {
            message: message.into(),
            retry_after: None,
        }
    }
}

#[async_trait]
pub trait ObjectSink: Send + Sync + 'static {
    /// Short name for logs and metrics labels (`s3`, `local`).
    fn kind(&self) -> &'static str;
    /// Starts a multipart upload; returns its id.
    async fn create_upload(&self, key: &str, content_type: &str) -> Result<String, SinkError>;
    /// Uploads one part; returns its ETag. Re-uploading a part number replaces it.
    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part: &Part,
    ) -> Result<String, SinkError>;
    /// The parts the sink holds for an unfinished upload.
    async fn list_parts(&self, key: &str, upload_id: &str) -> Result<Vec<UploadedPart>, SinkError>;
    /// Makes the object visible, made of `parts` in order.
    async fn complete_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<(), SinkError>;
    /// Discards an unfinished upload; unknown ids are not an error.
    async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<(), SinkError>;
    /// Unfinished uploads under `prefix`.
    async fn list_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>, SinkError>;
    /// Size of a stored object, if it exists.
    async fn object_size(&self, key: &str) -> Result<Option<u64>, SinkError>;
}
