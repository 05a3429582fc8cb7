//! How a transfer attempt fails, and what each failure means for the job:
//! transient (retry with backoff, resuming), permanent (fail with a message a
//! person can act on), a cap exceeded (skip with a reason), stopped (not
//! ours to record), or a refused download token (fetch a fresh one). Every
//! other subsystem's error (sink, download, store) is classified here and
//! nowhere else.

use std::time::Duration;

use ferry_control::error::StoreError;
use ferry_control::model::SkipReason;

use super::download::DownloadError;
use super::sink::SinkError;

/// How an attempt failed, which decides what happens next.
#[derive(Debug)]
pub enum TransferError {
    /// Retry with backoff (resuming from the parts already uploaded).
    Transient {
        message: String,
        retry_after: Option<Duration>,
        stage: Stage,
    },
    /// Fail the job with this message.
    Permanent(String),
    /// Skip the job: a cap was exceeded while streaming.
    Cap { reason: SkipReason, message: String },
    /// Cancelled, lease lost, or shutting down.
    Stopped,
    /// Zoom refused the download token (HTTP 401 or 403).
    TokenRejected { status: u16 },
}

/// Where a transient failure happened, for the retry metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Download,
    StartUpload,
    UploadPart,
    Complete,
    Store,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Download => "download",
            Stage::StartUpload => "start_upload",
            Stage::UploadPart => "upload_part",
            Stage::Complete => "complete",
            Stage::Store => "store",
        }
    }
}

impl TransferError {
    /// A transient failure of the download.
    pub fn transient(message: impl Into<String>) -> Self {
        TransferError::Transient {
            message: message.into(),
            retry_after: None,
            stage: Stage::Download,
        }
    }

    /// Relabels a transient failure's stage.
    pub fn at(self, stage: Stage) -> Self {
        match self {
            TransferError::Transient {
                message,
                retry_after,
                ..
            } => TransferError::Transient {
                message,
                retry_after,
                stage,
            },
            other => other,
        }
    }
}

impl From<SinkError> for TransferError {
    fn from(error: SinkError) -> Self {
        match error {
            SinkError::Transient {
                message,
                retry_after,
            } => TransferError::Transient {
                message,
                retry_after,
                stage: Stage::StartUpload,
            },
            SinkError::NoSuchUpload(id) => {
                TransferError::transient(format!("multipart upload {id} vanished"))
                    .at(Stage::StartUpload)
            }
            SinkError::Permanent(message) => {
                TransferError::Permanent(format!("storage refused the upload: {message}"))
            }
        }
    }
}

impl From<DownloadError> for TransferError {
    fn from(error: DownloadError) -> Self {
        match error {
            DownloadError::Refused(message) => TransferError::Permanent(message),
            DownloadError::TooManyRedirects => TransferError::Permanent(error.to_string()),
            DownloadError::Network(message) => TransferError::transient(message),
            DownloadError::Status {
                status: status @ (401 | 403),
                ..
            } => TransferError::TokenRejected { status },
            DownloadError::Status {
                status,
                retry_after,
            } if status == 429 || status >= 500 => TransferError::Transient {
                message: format!("zoom answered HTTP {status}"),
                retry_after,
                stage: Stage::Download,
            },
            DownloadError::Status { status, .. } => TransferError::Permanent(format!(
                "zoom answered HTTP {status} for the recording file"
            )),
        }
    }
}

/// A store failure of the lease holder: a lost lease stops the transfer
/// (another worker owns the job now); anything else is worth a retry.
pub fn lease_or_store(error: StoreError) -> TransferError {
    match error {
        StoreError::FailedPrecondition(_) => TransferError::Stopped,
        other => TransferError::transient(format!("store: {other}")).at(Stage::Store),
    }
}
