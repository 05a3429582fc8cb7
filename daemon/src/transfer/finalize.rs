//! The last two stages of a transfer: verify what was streamed (the byte
//! counts against `Content-Length` and Zoom's `file_size`, and that the MP4
//! scan saw every byte in order), then complete the multipart upload and
//! record the media and the job's completion in one store call. Nothing
//! becomes visible before every check has passed. A configuration that moves
//! Zoom's copy to the trash after the copy gets that move left pending by
//! the same call, for the trash duty (`crate::zoom_trash`), never sooner.

use ferry_control::error::StoreError;
use ferry_control::model::{AfterCopy, Job, NewMedia, PartRecord, Timestamp, UploadRecord};
use ferry_control::rules::Caps;

use super::caps::duration_cap;
use super::context::Context;
use super::error::{Stage, TransferError, lease_or_store};
use super::mp4::{Mp4Scanner, Mp4Verdict};
use super::object::content_type;
use super::parts::combine_crc32c;
use super::sink::CompletedPart;

/// What one attempt streamed to the end.
pub struct Streamed {
    pub upload: UploadRecord,
    /// Every part of the object, ordered by number.
    pub parts: Vec<PartRecord>,
    /// The file's bytes, earlier attempts' included.
    pub received_total: u64,
    /// The bytes of this attempt's download body.
    pub received_here: u64,
    /// `Content-Length` of this attempt's answer, when it had one.
    pub content_length: Option<u64>,
    pub scanner: Mp4Scanner,
}

/// Checks what was streamed, then makes the object and its media visible.
pub async fn verify_and_complete(
    context: &Context,
    job: &Job,
    streamed: Streamed,
    announced_size: u64,
    caps: &Caps,
) -> Result<(), TransferError> {
    let Streamed {
        upload,
        parts,
        received_total,
        received_here,
        content_length,
        scanner,
    } = streamed;
    if let Some(length) = content_length
        && received_here != length
    {
        return Err(TransferError::transient(format!(
            "the download ended after {received_here} of {length} bytes"
        )));
    }
    if announced_size > 0 && received_total != announced_size {
        return Err(TransferError::Permanent(format!(
            "zoom announced {announced_size} bytes for the file but sent {received_total}"
        )));
    }
    let (duration_ms, note) = scan_outcome(scanner, received_total, caps)?;
    let completed: Vec<CompletedPart> = parts
        .iter()
        .map(|p| CompletedPart {
            part_number: p.part_number,
            etag: p.etag.clone(),
            crc32c: p.crc32c,
        })
        .collect();
    context
        .sink
        .complete_upload(&upload.object_key, &upload.upload_id, &completed)
        .await
        .map_err(|e| TransferError::from(e).at(Stage::Complete))?;
    record_completion(context, job, &upload, &parts, duration_ms, note).await
}

/// An earlier attempt completed the upload but its answer was lost: check
/// the scan of the whole file as a completion would, then record it.
pub async fn already_complete(
    context: &Context,
    job: &Job,
    upload: &UploadRecord,
    parts: &[PartRecord],
    scanner: Mp4Scanner,
    caps: &Caps,
) -> Result<(), TransferError> {
    tracing::info!(job = %job.job_id, "the upload was completed by an earlier attempt whose answer was lost");
    let size = parts.iter().map(|p| p.len).sum();
    let (duration_ms, note) = scan_outcome(scanner, size, caps)?;
    record_completion(context, job, upload, parts, duration_ms, note).await
}

/// What the scan of a whole file says: its duration, or the cap it breaks,
/// and a note when it is not a clean MP4. A scan that did not see every
/// byte of the file in order vouches for nothing.
fn scan_outcome(
    scanner: Mp4Scanner,
    file_size: u64,
    caps: &Caps,
) -> Result<(Option<u64>, String), TransferError> {
    if scanner.bytes_seen() != file_size {
        return Err(TransferError::Permanent(format!(
            "the MP4 scan saw {} of the file's {file_size} bytes, so its duration cannot be \
             vouched for; retry the job to copy it again from the start",
            scanner.bytes_seen()
        )));
    }
    let duration_ms = scanner.duration().map(|d| d.as_millis() as u64);
    if let Some(ms) = duration_ms {
        duration_cap(ms, caps)?;
    }
    let note = match scanner.finish() {
        Mp4Verdict::NotMp4 { reason } => {
            format!("transferred, but the file is not a valid MP4 ({reason})")
        }
        Mp4Verdict::NoDuration => "transferred; the MP4 has no readable duration".to_string(),
        Mp4Verdict::Duration { .. } => String::new(),
    };
    Ok((duration_ms, note))
}

/// The object exists: record the media and complete the job.
async fn record_completion(
    context: &Context,
    job: &Job,
    upload: &UploadRecord,
    parts: &[PartRecord],
    duration_ms: Option<u64>,
    note: String,
) -> Result<(), TransferError> {
    let size_bytes = parts.iter().map(|p| p.len).sum();
    let checksum = combine_crc32c(parts.iter().map(|p| (p.crc32c, p.len)));
    let media = NewMedia {
        object_key: upload.object_key.clone(),
        checksum: format!("crc32c:{checksum:08x}"),
        duration_ms: duration_ms.unwrap_or(0),
        size_bytes,
        content_type: content_type(job).into(),
        job_note: note.clone(),
        after_copy: after_copy(context, job).await?,
    };
    let (completed_job, created) = context
        .store
        .complete_job(context.holder(&job.job_id), media, Timestamp::now())
        .await
        .map_err(lease_or_store)?;
    ferry_control::metrics::count_finished(&completed_job);
    tracing::info!(job = %completed_job.job_id, media = %created.media_id, bytes = size_bytes,
        note = %note, "transfer completed");
    Ok(())
}

/// The after-copy action of the configuration the job's account installed
/// with, read as the job completes: `Trash` leaves the move to Zoom's trash
/// pending in the same commit as the completion. An account or
/// configuration gone since (being uninstalled) keeps Zoom's copy.
async fn after_copy(context: &Context, job: &Job) -> Result<AfterCopy, TransferError> {
    let account = match context
        .store
        .get_account(&job.institution_id, &job.zoom_account_id)
        .await
    {
        Ok(account) => account,
        Err(StoreError::NotFound(_)) => return Ok(AfterCopy::Keep),
        Err(e) => return Err(lease_or_store(e)),
    };
    match context
        .store
        .get_configuration(&job.institution_id, &account.configuration_id)
        .await
    {
        Ok(configuration) => Ok(configuration.after_copy),
        Err(StoreError::NotFound(_)) => Ok(AfterCopy::Keep),
        Err(e) => Err(lease_or_store(e)),
    }
}
