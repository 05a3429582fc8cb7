//! The seed's two caps as the stream meets them: the bytes of the file so
//! far, and the duration the MP4 itself declares. Each check counts the
//! abort and skips the job with a message a person can act on; it never
//! looks at Zoom's metadata (the intake already did).

use ferry_control::model::SkipReason;
use ferry_control::rules::Caps;

use super::error::TransferError;
use crate::metrics::CAP_ABORTS_TOTAL;

/// Skips the job once the file's bytes pass the size cap.
pub fn size_cap(
    received_total: u64,
    announced_size: u64,
    caps: &Caps,
) -> Result<(), TransferError> {
    if received_total <= caps.max_file_bytes {
        return Ok(());
    }
    metrics::counter!(CAP_ABORTS_TOTAL, "cap" => "size").increment(1);
    Err(TransferError::Cap {
        reason: SkipReason::TooLarge,
        message: format!(
            "the download passed the {}-byte cap while streaming (zoom announced {announced_size} bytes); \
             download it from zoom and upload it by hand",
            caps.max_file_bytes
        ),
    })
}

/// Skips the job when the MP4 says it lasts longer than the cap.
pub fn duration_cap(duration_ms: u64, caps: &Caps) -> Result<(), TransferError> {
    if duration_ms as i64 <= caps.max_duration_ms {
        return Ok(());
    }
    metrics::counter!(CAP_ABORTS_TOTAL, "cap" => "duration").increment(1);
    Err(TransferError::Cap {
        reason: SkipReason::TooLong,
        message: format!(
            "the MP4 says it lasts {} s, longer than the {} s cap (found while streaming); download it \
             from zoom and upload it by hand",
            duration_ms / 1000,
            caps.max_duration_ms / 1000
        ),
    })
}
