//! One transfer attempt: resume or start the multipart upload, stream the
//! download through part assembly, MP4 scanning and checksums into parallel
//! part uploads, enforce the caps on the bytes as they arrive, verify, and
//! complete. Nothing is staged: memory is the parts in flight, bounded by
//! the global byte budget.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use ferry_control::model::{Job, NewMedia, PartRecord, SkipReason, Timestamp, UploadRecord};
use http_body_util::BodyExt;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::download::{Download, DownloadError};
use super::engine::{Shared, backoff, kib, wait_on};
use super::mp4::{Mp4Scanner, Mp4Verdict};
use super::parts::{Part, PartAssembler, combine_crc32c, part_size_for};
use super::sink::{CompletedPart, SinkError};
use super::zoom_api::FreshDownload;
use crate::metrics::{
    CAP_ABORTS_TOTAL, DOWNLOADED_BYTES_TOTAL, PART_UPLOAD_SECONDS, RESUMED_TRANSFERS_TOTAL,
    RETRIES_TOTAL, UPLOADED_BYTES_TOTAL,
};

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
    fn transient(message: impl Into<String>) -> Self {
        TransferError::Transient {
            message: message.into(),
            retry_after: None,
            stage: Stage::Download,
        }
    }

    /// Relabels a transient failure's stage.
    fn at(self, stage: Stage) -> Self {
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

/// The seed's requirements for downloadable recordings, for the message
/// shown when Zoom answers with a web page instead of the file.
const DOWNLOAD_SETTINGS_HINT: &str = "zoom answered with a web page instead of the recording: the account's cloud \
    recording settings must have \"Allow Downloads\" on and \"Only the host can download cloud recordings\" off, \
    and the meeting must be recorded to the cloud";

/// `{prefix}/{institution}/{account}/{meeting uuid, base64url}/{file id}.{ext}`:
/// ids only, never the topic; the uuid may hold `/` and `+`, so it is encoded.
pub fn object_key(prefix: &str, job: &Job) -> String {
    let file = job.recording_file.as_ref();
    let extension = file
        .map(|f| f.file_extension.to_ascii_lowercase())
        .filter(|e| !e.is_empty() && e.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or_else(|| "mp4".into());
    let file_id: String = file
        .map(|f| f.file_id.as_str())
        .unwrap_or("file")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    let uuid = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(job.meeting_uuid.as_bytes());
    let prefix = prefix.trim_matches('/');
    let parts = [
        job.institution_id.as_str(),
        job.zoom_account_id.as_str(),
        &uuid,
    ];
    let safe = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let mut key = String::new();
    if !prefix.is_empty() {
        key.push_str(prefix);
        key.push('/');
    }
    for part in parts {
        key.push_str(&safe(part));
        key.push('/');
    }
    key.push_str(&format!("{file_id}.{extension}"));
    key
}

/// Where a transfer starts: the upload, and the parts already in it.
struct Resume {
    upload: UploadRecord,
    parts: Vec<PartRecord>,
    media_duration_ms: Option<u64>,
}

impl Resume {
    fn offset(&self) -> u64 {
        self.parts.iter().map(|p| p.len).sum()
    }
}

/// Opens the job's stored download URL and token.
fn secrets(
    shared: &Shared,
    job: &Job,
    sealed: &ferry_control::model::JobSecrets,
) -> Result<(String, Option<String>), TransferError> {
    let url = sealed
        .sealed_download_url
        .as_ref()
        .ok_or_else(|| TransferError::Permanent("the job has no download URL".into()))
        .and_then(|s| {
            shared.secret_box.open_secret(s).map_err(|_| {
                TransferError::Permanent(format!(
                    "job {}'s download URL cannot be read",
                    job.job_id
                ))
            })
        })?;
    let token = match &sealed.sealed_download_token {
        Some(s) => Some(
            shared
                .secret_box
                .open_secret(s)
                .map_err(|_| {
                    TransferError::Permanent(format!(
                        "job {}'s download token cannot be read",
                        job.job_id
                    ))
                })?
                .expose()
                .to_string(),
        ),
        None => None,
    };
    Ok((url.expose().to_string(), token))
}

async fn start_over(
    shared: &Shared,
    job: &Job,
    key: &str,
    content_type: &str,
) -> Result<Resume, TransferError> {
    if let Ok(Some(old)) = shared.store.upload_state(&job.job_id).await {
        let _ = shared
            .sink
            .abort_upload(&old.upload.object_key, &old.upload.upload_id)
            .await;
    }
    let upload_id = shared.sink.create_upload(key, content_type).await?;
    let file_size = job.recording_file.as_ref().map_or(0, |f| f.file_size);
    let upload = UploadRecord {
        upload_id,
        object_key: key.to_string(),
        part_size: part_size_for(file_size, shared.settings.part_size),
    };
    if let Err(e) = shared
        .store
        .start_upload(&job.job_id, &shared.settings.worker_id, upload.clone())
        .await
    {
        let _ = shared.sink.abort_upload(key, &upload.upload_id).await;
        return Err(lease_or_store(e));
    }
    Ok(Resume {
        upload,
        parts: Vec::new(),
        media_duration_ms: None,
    })
}

fn lease_or_store(error: ferry_control::error::StoreError) -> TransferError {
    match error {
        ferry_control::error::StoreError::FailedPrecondition(_) => TransferError::Stopped,
        other => TransferError::transient(format!("store: {other}")).at(Stage::Store),
    }
}

/// Where an attempt starts.
enum Start {
    Resume(Resume),
    /// An earlier attempt completed the upload but never heard back: only
    /// the media record is missing.
    AlreadyComplete(Resume),
}

/// The stored upload, reconciled with what the sink really holds: only the
/// leading run of parts both agree on is kept (never uploaded again).
async fn resume_or_start(
    shared: &Shared,
    job: &Job,
    key: &str,
    content_type: &str,
) -> Result<Start, TransferError> {
    let stored = shared
        .store
        .upload_state(&job.job_id)
        .await
        .map_err(lease_or_store)?;
    let Some(stored) = stored.filter(|s| s.upload.object_key == key) else {
        return start_over(shared, job, key, content_type)
            .await
            .map(Start::Resume);
    };
    let held = match shared.sink.list_parts(key, &stored.upload.upload_id).await {
        Ok(held) => held,
        Err(SinkError::NoSuchUpload(_)) => {
            if let Some(done) = completed_earlier(shared, job, key, &stored).await? {
                return Ok(Start::AlreadyComplete(done));
            }
            return start_over(shared, job, key, content_type)
                .await
                .map(Start::Resume);
        }
        Err(e) => return Err(e.into()),
    };
    let mut parts = Vec::new();
    for (i, part) in stored.parts.into_iter().enumerate() {
        let agreed = part.part_number == i as u32 + 1
            && held.iter().any(|h| {
                h.part_number == part.part_number && h.etag == part.etag && h.size == part.len
            });
        if !agreed {
            break;
        }
        parts.push(part);
    }
    Ok(Start::Resume(Resume {
        upload: stored.upload,
        parts,
        media_duration_ms: stored.media_duration_ms,
    }))
}

/// The upload is gone from the sink: if the object is there, made of exactly
/// the parts recorded (which cover the whole file), the last attempt's
/// CompleteMultipartUpload succeeded and only its answer was lost.
async fn completed_earlier(
    shared: &Shared,
    job: &Job,
    key: &str,
    stored: &ferry_control::model::UploadState,
) -> Result<Option<Resume>, TransferError> {
    let contiguous = stored
        .parts
        .iter()
        .enumerate()
        .all(|(i, p)| p.part_number == i as u32 + 1);
    let recorded: u64 = stored.parts.iter().map(|p| p.len).sum();
    let announced = job.recording_file.as_ref().map_or(0, |f| f.file_size);
    if !contiguous || recorded == 0 || (announced > 0 && recorded != announced) {
        return Ok(None);
    }
    match shared.sink.object_size(key).await {
        Ok(Some(size)) if size == recorded => Ok(Some(Resume {
            upload: stored.upload.clone(),
            parts: stored.parts.clone(),
            media_duration_ms: stored.media_duration_ms,
        })),
        Ok(_) => Ok(None),
        Err(e) => Err(TransferError::from(e).at(Stage::StartUpload)),
    }
}

fn download_error(error: DownloadError) -> TransferError {
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

/// One attempt at the whole transfer.
/// `fresh` overrides the webhook's download token and URL.
pub(super) async fn transfer(
    shared: &Arc<Shared>,
    job: &Job,
    stop: &CancellationToken,
    fresh: Option<&FreshDownload>,
) -> Result<(), TransferError> {
    let sealed = shared
        .store
        .get_job_secrets(&job.institution_id, &job.job_id)
        .await
        .map_err(lease_or_store)?;
    let (mut url, mut token) = secrets(shared, job, &sealed)?;
    if let Some(fresh) = fresh {
        token = Some(fresh.token.expose().to_string());
        if let Some(fresh_url) = &fresh.download_url {
            url = fresh_url.clone();
        }
    }
    let file = job
        .recording_file
        .clone()
        .ok_or_else(|| TransferError::Permanent("the job has no recording file".into()))?;
    let key = object_key(&shared.settings.key_prefix, job);
    let content_type = content_type(job);
    let mut resume = match resume_or_start(shared, job, &key, content_type).await? {
        Start::Resume(resume) => resume,
        Start::AlreadyComplete(done) => {
            tracing::info!(job = %job.job_id, "the upload was completed by an earlier attempt whose answer was lost");
            let size = done.offset();
            return record_completion(shared, job, done, size, String::new()).await;
        }
    };

    wait_on(
        &shared.account_limiter(&job.zoom_account_id),
        std::num::NonZeroU32::MIN,
        "account_downloads",
    )
    .await;
    let download = tokio::select! {
        _ = stop.cancelled() => return Err(TransferError::Stopped),
        download = shared.downloader.get(&url, token.as_deref(), resume.offset()) =>
            download.map_err(download_error)?,
    };
    if download
        .content_type
        .as_deref()
        .is_some_and(|t| t.to_ascii_lowercase().starts_with("text/html"))
    {
        return Err(TransferError::Permanent(DOWNLOAD_SETTINGS_HINT.into()));
    }
    let resumed_at = resume.offset();
    if resumed_at > 0 && (download.status != 206 || download.range_start != Some(resumed_at)) {
        // The source ignored the Range: start over cleanly from byte 0.
        tracing::info!(job = %job.job_id, "the download source ignored Range; starting the upload over");
        resume = start_over(shared, job, &key, content_type).await?;
        if download.status != 200 {
            return Err(TransferError::transient(
                "the source answered a partial range that was not asked for",
            ));
        }
    }
    stream_parts(shared, job, stop, download, resume, file.file_size).await
}

/// The MIME type of the job's file: audio-only M4A, or MP4 video.
fn content_type(job: &Job) -> &'static str {
    match &job.recording_file {
        Some(file) if file.file_type == "M4A" => "audio/mp4",
        _ => "video/mp4",
    }
}

/// The budget for one more part: bandwidth first, then memory, so that a
/// transfer waiting on the limiter holds no budget. Every part passes here
/// exactly once.
async fn part_budget(shared: &Shared, part_permits: u32) -> OwnedSemaphorePermit {
    if let Some(bandwidth) = &shared.bandwidth
        && let Some(n) = std::num::NonZeroU32::new(part_permits)
    {
        wait_on(bandwidth, n, "bandwidth").await;
    }
    shared
        .budget
        .clone()
        .acquire_many_owned(part_permits)
        .await
        .expect("budget is never closed")
}

/// The budget held for the part being filled, or a fresh share of it.
async fn take_budget(
    held: &mut Option<OwnedSemaphorePermit>,
    shared: &Shared,
    part_permits: u32,
) -> OwnedSemaphorePermit {
    match held.take() {
        Some(permit) => permit,
        None => part_budget(shared, part_permits).await,
    }
}

/// A part upload in flight, holding its share of the byte budget.
type PartTask = JoinSet<Result<PartRecord, TransferError>>;

async fn upload_part(
    shared: Arc<Shared>,
    job_id: String,
    key: String,
    upload_id: String,
    part: Part,
    stop: CancellationToken,
    _budget: OwnedSemaphorePermit,
) -> Result<PartRecord, TransferError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        if let Some(limiter) = &shared.sink_limiter {
            wait_on(limiter, std::num::NonZeroU32::MIN, "sink_requests").await;
        }
        let started = Instant::now();
        let uploaded = tokio::select! {
            _ = stop.cancelled() => return Err(TransferError::Stopped),
            uploaded = shared.sink.upload_part(&key, &upload_id, &part) => uploaded,
        };
        metrics::histogram!(PART_UPLOAD_SECONDS).record(started.elapsed().as_secs_f64());
        match uploaded {
            Ok(etag) => {
                return Ok(PartRecord {
                    part_number: part.number,
                    etag,
                    crc32c: part.crc32c,
                    offset: part.offset,
                    len: part.len,
                });
            }
            Err(SinkError::Transient {
                message,
                retry_after,
            }) if attempt < shared.settings.max_attempts => {
                metrics::counter!(RETRIES_TOTAL, "stage" => Stage::UploadPart.as_str())
                    .increment(1);
                let delay =
                    retry_after.unwrap_or_else(|| backoff(shared.settings.backoff_base, attempt));
                tracing::warn!(job = %job_id, part = part.number, attempt, error = %message, "part upload failed; retrying");
                tokio::time::sleep(delay).await;
            }
            Err(e) => {
                let error: TransferError = e.into();
                return Err(match error {
                    TransferError::Transient {
                        message,
                        retry_after,
                        ..
                    } => TransferError::Transient {
                        message: format!("part {} upload failed: {message}", part.number),
                        retry_after,
                        stage: Stage::UploadPart,
                    },
                    other => other,
                });
            }
        }
    }
}

/// Records an acknowledged part; the lease must still be ours.
async fn record(
    shared: &Shared,
    job: &Job,
    record: PartRecord,
    parts: &mut Vec<PartRecord>,
) -> Result<(), TransferError> {
    let transferred = parts.iter().map(|p| p.len).sum::<u64>() + record.len;
    shared
        .store
        .record_part(
            &job.job_id,
            &shared.settings.worker_id,
            record.clone(),
            transferred,
        )
        .await
        .map_err(lease_or_store)?;
    metrics::counter!(UPLOADED_BYTES_TOTAL).increment(record.len);
    parts.push(record);
    Ok(())
}

async fn stream_parts(
    shared: &Arc<Shared>,
    job: &Job,
    stop: &CancellationToken,
    download: Download,
    resume: Resume,
    announced_size: u64,
) -> Result<(), TransferError> {
    let settings = &shared.settings;
    let caps = settings.caps.for_account(&job.zoom_account_id);
    let Resume {
        upload,
        parts: mut done,
        media_duration_ms,
    } = resume;
    let start_offset = done.iter().map(|p| p.len).sum::<u64>();
    let mut assembler = PartAssembler::new(upload.part_size, done.len() as u32 + 1, start_offset);
    // The MP4 header is only seen when the stream starts at byte 0; a resumed
    // transfer relies on what the first attempt recorded.
    let mut scanner = (start_offset == 0).then(Mp4Scanner::new);
    let mut duration_ms = media_duration_ms;
    let mut in_flight: PartTask = JoinSet::new();
    let mut ready = Vec::new();
    let mut budget: Option<OwnedSemaphorePermit> = None;
    let mut received_here = 0u64;
    let mut last_progress = Instant::now();
    let mut body = download.body;
    if start_offset > 0 {
        metrics::counter!(RESUMED_TRANSFERS_TOTAL).increment(1);
    }
    let downloaded = metrics::counter!(DOWNLOADED_BYTES_TOTAL);
    // A part larger than the whole budget (a huge file raised the part size)
    // takes the whole budget rather than waiting forever.
    let part_permits = kib(upload.part_size).min(kib(settings.byte_budget));

    let broken = loop {
        if budget.is_none() {
            budget = Some(tokio::select! {
                _ = stop.cancelled() => return Err(TransferError::Stopped),
                permit = part_budget(shared, part_permits) => permit,
            });
        }
        let frame = tokio::select! {
            _ = stop.cancelled() => return Err(TransferError::Stopped),
            Some(finished) = in_flight.join_next(), if !in_flight.is_empty() => {
                record(shared, job, finished.map_err(|e| TransferError::transient(e.to_string()))??, &mut done).await?;
                continue;
            }
            frame = tokio::time::timeout(settings.stall_timeout, body.frame()) => match frame {
                Err(_) => break Some(TransferError::transient(format!(
                    "the download stalled: no bytes for {} s", settings.stall_timeout.as_secs()))),
                Ok(None) => break None,
                Ok(Some(Err(e))) => break Some(TransferError::transient(format!("the download broke off: {e}"))),
                Ok(Some(Ok(frame))) => frame,
            },
        };
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        received_here += chunk.len() as u64;
        downloaded.increment(chunk.len() as u64);
        let total = start_offset + received_here;
        if total > caps.max_file_bytes {
            metrics::counter!(CAP_ABORTS_TOTAL, "cap" => "size").increment(1);
            return Err(TransferError::Cap {
                reason: SkipReason::TooLarge,
                message: format!(
                    "the download passed the {}-byte cap while streaming (zoom announced {announced_size} bytes); \
                     download it from zoom and upload it by hand",
                    caps.max_file_bytes
                ),
            });
        }
        if let Some(scanner) = scanner.as_mut() {
            scanner.feed(&chunk);
            if duration_ms.is_none()
                && let Some(duration) = scanner.duration()
            {
                let ms = duration.as_millis() as u64;
                duration_ms = Some(ms);
                let _ = shared.store.record_media_duration(&job.job_id, ms).await;
            }
        }
        if let Some(ms) = duration_ms
            && ms as i64 > caps.max_duration_ms
        {
            metrics::counter!(CAP_ABORTS_TOTAL, "cap" => "duration").increment(1);
            return Err(TransferError::Cap {
                reason: SkipReason::TooLong,
                message: format!(
                    "the MP4 says it lasts {} s, longer than the {} s cap (found while streaming); download it \
                     from zoom and upload it by hand",
                    ms / 1000,
                    caps.max_duration_ms / 1000
                ),
            });
        }
        assembler.push(chunk, &mut ready);
        for part in ready.drain(..) {
            // One chunk can complete more than one part (a chunk larger than
            // a part): every part after the first needs budget of its own.
            let permit = take_budget(&mut budget, shared, part_permits).await;
            while in_flight.len() >= settings.parts_in_flight.max(1) {
                if let Some(finished) = in_flight.join_next().await {
                    record(
                        shared,
                        job,
                        finished.map_err(|e| TransferError::transient(e.to_string()))??,
                        &mut done,
                    )
                    .await?;
                }
            }
            in_flight.spawn(upload_part(
                shared.clone(),
                job.job_id.clone(),
                upload.object_key.clone(),
                upload.upload_id.clone(),
                part,
                stop.clone(),
                permit,
            ));
            if assembler.pending_len() > 0 {
                // The chunk spilled into the next part: it needs budget too.
                budget = Some(part_budget(shared, part_permits).await);
            }
        }
        if last_progress.elapsed() >= Duration::from_millis(250) {
            last_progress = Instant::now();
            let mut progress = job.clone();
            progress.bytes_transferred = total;
            progress.total_bytes = announced_size;
            shared.store.publish_progress(progress);
        }
    };

    if let Some(error) = broken {
        // The parts already handed to the sink are whole: keep the ones that
        // land, so the retry resumes after them instead of sending them again.
        drop(budget);
        while let Some(finished) = in_flight.join_next().await {
            if let Ok(Ok(part)) = finished {
                record(shared, job, part, &mut done).await?;
            }
        }
        return Err(error);
    }
    let received_total = assembler.offset();
    if let Some(last) = assembler.finish() {
        let permit = take_budget(&mut budget, shared, part_permits).await;
        in_flight.spawn(upload_part(
            shared.clone(),
            job.job_id.clone(),
            upload.object_key.clone(),
            upload.upload_id.clone(),
            last,
            stop.clone(),
            permit,
        ));
    }
    drop(budget);
    while let Some(finished) = in_flight.join_next().await {
        record(
            shared,
            job,
            finished.map_err(|e| TransferError::transient(e.to_string()))??,
            &mut done,
        )
        .await?;
    }

    // Verify before anything becomes visible.
    if let Some(length) = download.content_length
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
    let note = match scanner.map(Mp4Scanner::finish) {
        Some(Mp4Verdict::NotMp4 { reason }) => {
            format!("transferred, but the file is not a valid MP4 ({reason})")
        }
        Some(Mp4Verdict::NoDuration) => "transferred; the MP4 has no readable duration".to_string(),
        Some(Mp4Verdict::Duration { .. }) | None => String::new(),
    };
    done.sort_by_key(|p| p.part_number);
    let completed: Vec<CompletedPart> = done
        .iter()
        .map(|p| CompletedPart {
            part_number: p.part_number,
            etag: p.etag.clone(),
            crc32c: p.crc32c,
        })
        .collect();
    shared
        .sink
        .complete_upload(&upload.object_key, &upload.upload_id, &completed)
        .await
        .map_err(|e| TransferError::from(e).at(Stage::Complete))?;
    let done = Resume {
        upload,
        parts: done,
        media_duration_ms: duration_ms,
    };
    record_completion(shared, job, done, received_total, note).await
}

/// The object exists: record the media and complete the job.
async fn record_completion(
    shared: &Shared,
    job: &Job,
    done: Resume,
    received_total: u64,
    note: String,
) -> Result<(), TransferError> {
    let Resume {
        upload,
        parts: done,
        media_duration_ms: duration_ms,
    } = done;
    let checksum = combine_crc32c(done.iter().map(|p| (p.crc32c, p.len)));
    let media = NewMedia {
        object_key: upload.object_key.clone(),
        checksum: format!("crc32c:{checksum:08x}"),
        duration_ms: duration_ms.unwrap_or(0),
        size_bytes: received_total,
        content_type: content_type(job).into(),
        job_note: note.clone(),
    };
    let (completed_job, created) = shared
        .store
        .complete_job(
            &job.job_id,
            &shared.settings.worker_id,
            media,
            Timestamp::now(),
        )
        .await
        .map_err(lease_or_store)?;
    ferry_control::metrics::count_finished(&completed_job);
    tracing::info!(job = %completed_job.job_id, media = %created.media_id, bytes = received_total,
        note = %note, "transfer completed");
    Ok(())
}
