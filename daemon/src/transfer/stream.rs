//! One transfer attempt: resume or start the multipart upload, stream the
//! download through part assembly, MP4 scanning and checksums into parallel
//! part uploads, enforce the caps on the bytes as they arrive, verify, and
//! complete. Nothing is staged: memory is the parts in flight, bounded by
//! the global byte budget.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use ferry_control::model::{
    AttemptStart, Job, NewMedia, PartRecord, SkipReason, Timestamp, UploadRecord,
};
use http_body_util::BodyExt;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::cutter::{CutPart, PartCutter};
use super::download::{Download, DownloadError};
use super::engine::{Shared, backoff, kib, wait_on};
use super::mp4::{Mp4Scanner, Mp4Verdict};
use super::parts::{combine_crc32c, part_size_for};
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
    /// The leading run of parts the store and the sink agree on.
    parts: Vec<PartRecord>,
    /// Parts after a gap that the sink also holds: a resumed stream that cuts
    /// the same part again records it without sending it a second time.
    landed_later: Vec<PartRecord>,
}

impl Resume {
    fn fresh(upload: UploadRecord) -> Self {
        Resume {
            upload,
            parts: Vec::new(),
            landed_later: Vec::new(),
        }
    }

    fn offset(&self) -> u64 {
        self.parts.iter().map(|p| p.len).sum()
    }

    /// The MP4 scanner as it stood after the kept parts, or why it cannot
    /// be had (then the file must be scanned again from byte 0).
    fn scanner(&self) -> Result<Mp4Scanner, String> {
        let Some(last) = self.parts.last() else {
            return Ok(Mp4Scanner::new());
        };
        let stored = last.scan_state.as_deref().ok_or_else(|| {
            "the kept parts were recorded by a version of Ferry that stored no MP4 scan state"
                .to_string()
        })?;
        let scanner = Mp4Scanner::restore(stored).map_err(|e| e.to_string())?;
        if scanner.bytes_seen() != self.offset() {
            return Err(format!(
                "the stored MP4 scan state covers {} bytes, not the {} bytes of the kept parts",
                scanner.bytes_seen(),
                self.offset()
            ));
        }
        Ok(scanner)
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
    Ok(Resume::fresh(upload))
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
    let in_sink = |part: &PartRecord| {
        held.iter()
            .any(|h| h.part_number == part.part_number && h.etag == part.etag && h.size == part.len)
    };
    let (mut parts, mut landed_later) = (Vec::new(), Vec::new());
    let mut contiguous = true;
    for part in stored.parts {
        let held_too = in_sink(&part);
        contiguous = contiguous && held_too && part.part_number == parts.len() as u32 + 1;
        if contiguous {
            parts.push(part);
        } else if held_too {
            landed_later.push(part);
        }
    }
    Ok(Start::Resume(Resume {
        upload: stored.upload,
        parts,
        landed_later,
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
            landed_later: Vec::new(),
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
    let start = resume_or_start(shared, job, &key, content_type).await?;
    let kept = match &start {
        Start::Resume(resume) | Start::AlreadyComplete(resume) => resume,
    };
    let (start, scanner, note) = match kept.scanner() {
        Ok(scanner) => {
            let note = match start {
                Start::AlreadyComplete(_) => {
                    "the upload was completed by an earlier attempt whose answer was lost".into()
                }
                Start::Resume(_) => String::new(),
            };
            (start, scanner, note)
        }
        Err(why) => {
            // Never complete a file whose scan did not see every byte: scan
            // it again from the start rather than trust the kept parts.
            tracing::warn!(job = %job.job_id, reason = %why, "starting the upload over to scan the whole file");
            let fresh = start_over(shared, job, &key, content_type).await?;
            let note = format!("started over from byte 0 to scan the whole file: {why}");
            (Start::Resume(fresh), Mp4Scanner::new(), note)
        }
    };
    let resumed_from = match &start {
        Start::Resume(resume) | Start::AlreadyComplete(resume) => resume.offset(),
    };
    begin_attempt(shared, job, resumed_from, note).await?;
    let mut resume = match start {
        Start::Resume(resume) => resume,
        Start::AlreadyComplete(done) => {
            tracing::info!(job = %job.job_id, "the upload was completed by an earlier attempt whose answer was lost");
            let caps = shared.settings.caps.for_account(&job.zoom_account_id);
            let (duration_ms, note) = scan_outcome(scanner, &caps)?;
            let size = done.offset();
            return record_completion(shared, job, done, size, duration_ms, note).await;
        }
    };

    let account_limiter = shared.account_limiter(&job.zoom_account_id);
    tokio::select! {
        _ = stop.cancelled() => return Err(TransferError::Stopped),
        _ = wait_on(&account_limiter, std::num::NonZeroU32::MIN, "account_downloads") => {}
    }
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
    let mut scanner = scanner;
    if resumed_at > 0 && (download.status != 206 || download.range_start != Some(resumed_at)) {
        // The source ignored the Range: start over cleanly from byte 0.
        tracing::info!(job = %job.job_id, "the download source ignored Range; starting the upload over");
        resume = start_over(shared, job, &key, content_type).await?;
        scanner = Mp4Scanner::new();
        if download.status != 200 {
            return Err(TransferError::transient(
                "the source answered a partial range that was not asked for",
            ));
        }
    }
    if resume.offset() > 0 {
        metrics::counter!(RESUMED_TRANSFERS_TOTAL).increment(1);
        tracing::info!(job = %job.job_id, resumed_from_bytes = resume.offset(), "resuming the transfer");
    }
    stream_parts(shared, job, stop, download, resume, scanner, file.file_size).await
}

/// Counts the attempt and records where it starts in the job's history.
async fn begin_attempt(
    shared: &Shared,
    job: &Job,
    resumed_from_bytes: u64,
    note: String,
) -> Result<(), TransferError> {
    let attempt = shared
        .store
        .begin_attempt(AttemptStart {
            job_id: job.job_id.clone(),
            worker_id: shared.settings.worker_id.clone(),
            resumed_from_bytes,
            note,
            now: Timestamp::now(),
        })
        .await
        .map_err(lease_or_store)?;
    tracing::debug!(job = %job.job_id, attempt, resumed_from_bytes, "transfer attempt started");
    Ok(())
}

/// What the whole scan says, for a file about to be completed: its
/// duration, or the cap it breaks, and a note when it is not a clean MP4.
fn scan_outcome(
    scanner: Mp4Scanner,
    caps: &ferry_control::rules::Caps,
) -> Result<(Option<u64>, String), TransferError> {
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

/// Skips the job when the MP4 says it lasts longer than the cap.
fn duration_cap(duration_ms: u64, caps: &ferry_control::rules::Caps) -> Result<(), TransferError> {
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

/// The MIME type of the job's file: audio-only M4A, or MP4 video.
fn content_type(job: &Job) -> &'static str {
    match &job.recording_file {
        Some(file) if file.file_type == "M4A" => "audio/mp4",
        _ => "video/mp4",
    }
}

/// The budget for one more part: bandwidth first, then memory, so that a
/// transfer waiting on the limiter holds no budget. Every part passes here
/// exactly once; cancelling the transfer ends the wait.
async fn part_budget(
    shared: &Shared,
    part_permits: u32,
    stop: &CancellationToken,
) -> Result<OwnedSemaphorePermit, TransferError> {
    let wait = async {
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
    };
    tokio::select! {
        _ = stop.cancelled() => Err(TransferError::Stopped),
        permit = wait => Ok(permit),
    }
}

/// The budget held for the part being filled, or a fresh share of it.
async fn take_budget(
    held: &mut Option<OwnedSemaphorePermit>,
    shared: &Shared,
    part_permits: u32,
    stop: &CancellationToken,
) -> Result<OwnedSemaphorePermit, TransferError> {
    match held.take() {
        Some(permit) => Ok(permit),
        None => part_budget(shared, part_permits, stop).await,
    }
}

async fn upload_part(
    shared: Arc<Shared>,
    job_id: String,
    key: String,
    upload_id: String,
    cut: CutPart,
    stop: CancellationToken,
    _budget: OwnedSemaphorePermit,
) -> Result<PartRecord, TransferError> {
    let CutPart { part, scan_state } = cut;
    let mut attempt = 0;
    loop {
        attempt += 1;
        if let Some(limiter) = &shared.sink_limiter {
            tokio::select! {
                _ = stop.cancelled() => return Err(TransferError::Stopped),
                _ = wait_on(limiter, std::num::NonZeroU32::MIN, "sink_requests") => {}
            }
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
                    scan_state: Some(scan_state),
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
                tokio::select! {
                    _ = stop.cancelled() => return Err(TransferError::Stopped),
                    _ = tokio::time::sleep(delay) => {}
                }
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

/// How a part upload task ended.
type PartResult = Result<Result<PartRecord, TransferError>, tokio::task::JoinError>;

/// The part uploads of one attempt: sends each cut part (or records it
/// straight away when an earlier attempt already landed the same bytes),
/// and records each part the sink acknowledges.
struct PartUploads<'a> {
    shared: &'a Arc<Shared>,
    job: &'a Job,
    upload: &'a UploadRecord,
    stop: &'a CancellationToken,
    in_flight: JoinSet<Result<PartRecord, TransferError>>,
    /// Every part recorded, earlier attempts' included.
    done: Vec<PartRecord>,
    landed_later: Vec<PartRecord>,
}

impl PartUploads<'_> {
    async fn send(
        &mut self,
        cut: CutPart,
        budget: OwnedSemaphorePermit,
    ) -> Result<(), TransferError> {
        let landed = self.landed_later.iter().position(|p| {
            (p.part_number, p.offset, p.len, p.crc32c)
                == (
                    cut.part.number,
                    cut.part.offset,
                    cut.part.len,
                    cut.part.crc32c,
                )
        });
        if let Some(i) = landed {
            let mut record = self.landed_later.swap_remove(i);
            record.scan_state = Some(cut.scan_state);
            tracing::debug!(job = %self.job.job_id, part = record.part_number, "part already landed; not sent again");
            return self.record(record).await;
        }
        while self.in_flight.len() >= self.shared.settings.parts_in_flight.max(1) {
            self.land_next().await?;
        }
        self.in_flight.spawn(upload_part(
            self.shared.clone(),
            self.job.job_id.clone(),
            self.upload.object_key.clone(),
            self.upload.upload_id.clone(),
            cut,
            self.stop.clone(),
            budget,
        ));
        Ok(())
    }

    /// Waits for one part upload to end and records it (nothing to do when
    /// none is in flight).
    async fn land_next(&mut self) -> Result<(), TransferError> {
        match self.in_flight.join_next().await {
            Some(finished) => self.landed(finished).await,
            None => Ok(()),
        }
    }

    /// Records a part upload that ended; `join_next` is the cancel-safe half
    /// to race against other events, this the half to run to completion.
    async fn landed(&mut self, finished: PartResult) -> Result<(), TransferError> {
        let part = finished.map_err(|e| TransferError::transient(e.to_string()))??;
        self.record(part).await
    }

    /// Lets every part upload in flight end and records those that landed,
    /// so a retry resumes after them instead of sending them again; returns
    /// the first failure.
    async fn land_all(&mut self) -> Result<(), TransferError> {
        let mut first_error = None;
        while !self.in_flight.is_empty() {
            if let Err(e) = self.land_next().await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Records an acknowledged part; the lease must still be ours.
    async fn record(&mut self, record: PartRecord) -> Result<(), TransferError> {
        let transferred = self.done.iter().map(|p| p.len).sum::<u64>() + record.len;
        self.shared
            .store
            .record_part(
                &self.job.job_id,
                &self.shared.settings.worker_id,
                record.clone(),
                transferred,
            )
            .await
            .map_err(lease_or_store)?;
        metrics::counter!(UPLOADED_BYTES_TOTAL).increment(record.len);
        self.done.push(record);
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
async fn stream_parts(
    shared: &Arc<Shared>,
    job: &Job,
    stop: &CancellationToken,
    download: Download,
    resume: Resume,
    scanner: Mp4Scanner,
    announced_size: u64,
) -> Result<(), TransferError> {
    let settings = &shared.settings;
    let caps = settings.caps.for_account(&job.zoom_account_id);
    let Resume {
        upload,
        parts: done,
        landed_later,
    } = resume;
    let start_offset = done.iter().map(|p| p.len).sum::<u64>();
    let mut cutter = PartCutter::new(
        upload.part_size,
        done.len() as u32 + 1,
        start_offset,
        scanner,
    );
    let mut uploads = PartUploads {
        shared,
        job,
        upload: &upload,
        stop,
        in_flight: JoinSet::new(),
        done,
        landed_later,
    };
    let mut cut = Vec::new();
    let mut budget: Option<OwnedSemaphorePermit> = None;
    let mut received_here = 0u64;
    let mut last_progress = Instant::now();
    let mut body = download.body;
    let downloaded = metrics::counter!(DOWNLOADED_BYTES_TOTAL);
    // A part larger than the whole budget (a huge file raised the part size)
    // takes the whole budget rather than waiting forever.
    let part_permits = kib(upload.part_size).min(kib(settings.byte_budget));

    let broken = loop {
        if budget.is_none() {
            budget = Some(part_budget(shared, part_permits, stop).await?);
        }
        let frame = tokio::select! {
            _ = stop.cancelled() => return Err(TransferError::Stopped),
            Some(finished) = uploads.in_flight.join_next(), if !uploads.in_flight.is_empty() => {
                match uploads.landed(finished).await {
                    Ok(()) => continue,
                    Err(e) => break Some(e),
                }
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
        cutter.push(chunk, &mut cut);
        // Checked before any part of this chunk is sent.
        if let Some(duration) = cutter.scanner().duration() {
            duration_cap(duration.as_millis() as u64, &caps)?;
        }
        for part in cut.drain(..) {
            // One chunk can complete more than one part (a chunk larger than
            // a part): every part after the first needs budget of its own,
            // and so does a chunk spilling into the next part (taken at the
            // top of the loop).
            let permit = take_budget(&mut budget, shared, part_permits, stop).await?;
            uploads.send(part, permit).await?;
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
        let _ = uploads.land_all().await;
        return Err(error);
    }
    let received_total = cutter.offset();
    let (last, scanner) = cutter.finish();
    if let Some(last) = last {
        let permit = take_budget(&mut budget, shared, part_permits, stop).await?;
        uploads.send(last, permit).await?;
    }
    drop(budget);
    uploads.land_all().await?;

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
    if scanner.bytes_seen() != received_total {
        return Err(TransferError::Permanent(format!(
            "the MP4 scan saw {} of the file's {received_total} bytes, so its duration cannot be \
             vouched for; retry the job to copy it again from the start",
            scanner.bytes_seen()
        )));
    }
    let (duration_ms, note) = scan_outcome(scanner, &caps)?;
    let mut done = uploads.done;
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
        landed_later: Vec::new(),
    };
    record_completion(shared, job, done, received_total, duration_ms, note).await
}

/// The object exists: record the media and complete the job.
async fn record_completion(
    shared: &Shared,
    job: &Job,
    done: Resume,
    received_total: u64,
    duration_ms: Option<u64>,
    note: String,
) -> Result<(), TransferError> {
    let Resume {
        upload,
        parts: done,
        ..
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
