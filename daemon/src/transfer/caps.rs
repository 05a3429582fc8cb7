//! The seed's two caps as the stream meets them: the length the download's
//! answer declares, the bytes of the file so far, and the duration the MP4
//! itself declares. The decisions and their
//! messages are `ferry_control::rules`'; this module counts each abort and
//! turns it into the skip that ends the transfer. It never looks at Zoom's
//! metadata (the intake already did).

use ferry_control::rules::{self, CapExceeded, Caps};

use super::error::TransferError;
use crate::metrics::CAP_ABORTS_TOTAL;

/// Skips the job once the file's bytes pass the size cap.
pub fn size_cap(
    received_total: u64,
    announced_size: u64,
    caps: &Caps,
) -> Result<(), TransferError> {
    rules::check_streamed_size(received_total, announced_size, caps)
        .map_err(|exceeded| abort("size", exceeded))
}

/// Skips the job before its body is read when the answer's
/// `Content-Length` (from `first_byte` on) already passes the size cap.
pub fn declared_size_cap(
    first_byte: u64,
    content_length: Option<u64>,
    announced_size: u64,
    caps: &Caps,
) -> Result<(), TransferError> {
    let Some(content_length) = content_length else {
        return Ok(());
    };
    rules::check_declared_size(first_byte, content_length, announced_size, caps)
        .map_err(|exceeded| abort("size", exceeded))
}

/// Skips the job when the MP4 says it lasts longer than the cap.
pub fn duration_cap(duration_ms: u64, caps: &Caps) -> Result<(), TransferError> {
    rules::check_streamed_duration(duration_ms, caps)
        .map_err(|exceeded| abort("duration", exceeded))
}

fn abort(cap: &'static str, exceeded: CapExceeded) -> TransferError {
    metrics::counter!(CAP_ABORTS_TOTAL, "cap" => cap).increment(1);
    TransferError::Cap {
        reason: exceeded.reason,
        message: exceeded.message,
    }
}
