//! Companion files through the engine: the transcript, closed captions and
//! chat that belong with a job's video, copied beside it (`companion_key`).
//!
//! Planning happens inside a video attempt, under the job's lease: the
//! job's recording (still sealed in the store) gives the chosen segment's
//! companions (`rules::choose_companions`), stored with the job's download
//! token. The copy happens once the job has COMPLETED, as its own unit of
//! work: the dispatcher claims a pending companion under a lease of its
//! own (in the same slots as jobs) when no job is waiting, so a companion
//! never holds up, fails or un-completes its video. A late transcript
//! (`recording.transcript_completed`) and `RetryJob` only make a companion
//! pending again; this module copies it.
//!
//! A copy goes through the video's stages: the account's download rate,
//! the same downloader, the stall guard of `GuardedBody`, parts cut by the
//! `PartAssembler`, each holding its share of the byte budget until the
//! part uploader (with its per-part retry and sink rate) lands it, then the
//! byte counts verified and the multipart upload completed. Two checks are
//! the companion's own, both on the bytes as they arrive, before any part
//! of them is sent: the companion cap (`[companions] max_bytes`, whatever
//! Zoom announced or `Content-Length` says) and text (`rules::TextCheck`).
//! A refused companion is never retried; a 404 or 410 is MISSING; other
//! failures retry through the shared helper, each attempt from byte 0
//! (companions are small, so no part state is kept for a resume), then
//! FAILED with the last reason. Secrets are opened only for the request.

use std::sync::Arc;

use ferry_control::model::{
    CompanionKind, CompanionLease, CompanionOutcome, Job, NewCompanion, Timestamp,
};
use ferry_control::rules::{self, Caps, TextCheck};
use ferry_control::secrets::Sealed;
use ferry_control::store::CompanionHolder;
use ferry_control::zoom::Recording;
use tokio_util::sync::CancellationToken;

use super::body::GuardedBody;
use super::context::Context;
use super::cutter::CutPart;
use super::download::{Download, DownloadError};
use super::error::{TransferError, lease_or_store};
use super::object::companion_key;
use super::parts::{Part, PartAssembler, combine_crc32c, part_size_for};
use super::retry::retry;
use super::sink::CompletedPart;
use super::source::refuse_web_page;
use super::token;
use super::uploader::upload_part;
use crate::metrics::COMPANIONS_TOTAL;

/// `[companions]`: whether companions are copied, and the cap on each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompanionSettings {
    pub enabled: bool,
    pub max_bytes: u64,
}

impl Default for CompanionSettings {
    fn default() -> Self {
        CompanionSettings {
            enabled: true,
            max_bytes: 50 * 1024 * 1024,
        }
    }
}

/// Records the companions of the job's chosen video, under the job's lease.
/// A recording that cannot be read plans nothing (and says so): the video
/// is copied all the same.
pub async fn plan(context: &Context, job: &Job) -> Result<(), TransferError> {
    if !context.settings.companions.enabled {
        return Ok(());
    }
    let Some(chosen_id) = job.recording_file.as_ref().map(|f| f.file_id.as_str()) else {
        return Ok(());
    };
    let secrets = context
        .store
        .get_job_secrets(&job.institution_id, &job.job_id)
        .await
        .map_err(lease_or_store)?;
    let recording: Option<Recording> = secrets
        .sealed_recording
        .as_ref()
        .and_then(|sealed| context.secret_box.open(sealed).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let Some(recording) = recording else {
        tracing::warn!(job = %job.job_id, "the job's recording cannot be read; no companion files planned");
        return Ok(());
    };
    let Some(chosen) = recording.files.iter().find(|f| f.id == chosen_id) else {
        return Ok(());
    };
    let companions: Vec<NewCompanion> = rules::choose_companions(&recording.files, chosen)
        .into_iter()
        .filter_map(|(kind, file)| {
            Some(NewCompanion {
                kind,
                file_id: file.id.clone(),
                file_size: file.file_size,
                sealed_download_url: context.secret_box.seal_str(file.download_url.as_deref()?),
                sealed_download_token: secrets.sealed_download_token.clone(),
            })
        })
        .collect();
    if companions.is_empty() {
        return Ok(());
    }
    context
        .store
        .plan_companions(context.holder(&job.job_id), companions, Timestamp::now())
        .await
        .map_err(lease_or_store)
}

/// Copies one claimed companion and records how it ended.
pub async fn run(context: &Arc<Context>, claimed: CompanionLease, shutdown: &CancellationToken) {
    let CompanionLease {
        job,
        companion,
        sealed_download_url,
        sealed_download_token,
    } = claimed;
    let kind = companion.kind;
    let holder = CompanionHolder {
        job_id: &job.job_id,
        kind,
        worker_id: &context.settings.worker_id,
    };
    let stop = shutdown.child_token();
    let watcher = watch_lease(context, &job.job_id, kind, stop.clone());
    let credentials = open_credentials(
        context,
        sealed_download_url.as_ref(),
        sealed_download_token.as_ref(),
    );
    let outcome = match credentials {
        Ok((url, token)) => {
            let file = (companion.file_id.as_str(), companion.file_size);
            copy_with_fresh_token(context, &job, file, kind, &url, token, &stop).await
        }
        Err(e) => Err(e),
    };
    stop.cancel();
    let _ = watcher.await;
    let policy = context.settings.retry_policy();
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(TransferError::Stopped) if shutdown.is_cancelled() => CompanionOutcome::Released,
        // The lease was lost: another worker has it now.
        Err(TransferError::Stopped) => return,
        Err(TransferError::Transient { message, .. }) => CompanionOutcome::Failed(format!(
            "gave up after {} attempts: {message}",
            policy.max_attempts
        )),
        Err(TransferError::Permanent(message)) => CompanionOutcome::Failed(message),
        Err(TransferError::Cap { message, .. }) => CompanionOutcome::Refused(message),
        Err(TransferError::TokenRejected { status }) => CompanionOutcome::Failed(format!(
            "zoom refused the download token (HTTP {status}) even after a fresh one was fetched"
        )),
    };
    let state = outcome.state();
    match context
        .store
        .finish_companion(holder, outcome.clone(), Timestamp::now())
        .await
    {
        Ok(_) => {
            metrics::counter!(COMPANIONS_TOTAL, "kind" => kind.as_str(), "state" => state.as_str())
                .increment(1);
            tracing::info!(job = %job.job_id, kind = kind.as_str(), state = state.as_str(),
                reason = outcome.reason(), "companion file ended");
        }
        Err(e) => {
            tracing::info!(job = %job.job_id, kind = kind.as_str(), error = %e, "companion ended without its lease")
        }
    }
}

fn open_credentials(
    context: &Context,
    url: Option<&Sealed>,
    token: Option<&Sealed>,
) -> Result<(String, Option<String>), TransferError> {
    let unreadable =
        |what: &str| TransferError::Permanent(format!("the companion's {what} cannot be read"));
    let url = url
        .ok_or_else(|| TransferError::Permanent("the companion has no download URL".into()))
        .and_then(|s| {
            context
                .secret_box
                .open_secret(s)
                .map_err(|_| unreadable("download URL"))
        })?
        .expose()
        .to_string();
    let token = match token {
        Some(s) => Some(
            context
                .secret_box
                .open_secret(s)
                .map_err(|_| unreadable("download token"))?
                .expose()
                .to_string(),
        ),
        None => None,
    };
    Ok((url, token))
}

/// The copy with retries; when Zoom refuses the stored token (they last 24
/// hours, and a retry may come days later) a fresh one is fetched once
/// with the account's API access, as for the video.
async fn copy_with_fresh_token(
    context: &Arc<Context>,
    job: &Job,
    (file_id, announced_size): (&str, u64),
    kind: CompanionKind,
    url: &str,
    token: Option<String>,
    stop: &CancellationToken,
) -> Result<CompanionOutcome, TransferError> {
    let policy = context.settings.retry_policy();
    let copy = |url: String, token: Option<String>| async move {
        retry(policy, "companion copy", stop, |_| {
            let source = Source {
                url: &url,
                token: token.as_deref(),
                announced_size,
            };
            copy_once(context, job, kind, source, stop)
        })
        .await
    };
    match copy(url.to_string(), token).await {
        Err(TransferError::TokenRejected { status }) => {
            let fresh = token::fetch(context, job, file_id, status).await?;
            let url = fresh.download_url.unwrap_or_else(|| url.to_string());
            copy(url, Some(fresh.token.expose().to_string())).await
        }
        other => other,
    }
}

/// Where a companion is downloaded from, and what Zoom said of its size.
#[derive(Clone, Copy)]
struct Source<'a> {
    url: &'a str,
    token: Option<&'a str>,
    announced_size: u64,
}

/// One attempt, from byte 0: refused and missing files are outcomes, not
/// errors, so the retry helper passes them through.
async fn copy_once(
    context: &Arc<Context>,
    job: &Job,
    kind: CompanionKind,
    source: Source<'_>,
    stop: &CancellationToken,
) -> Result<CompanionOutcome, TransferError> {
    let Source {
        url,
        token,
        announced_size,
    } = source;
    let max_bytes = context.settings.companions.max_bytes;
    context
        .limits
        .account_download(&job.zoom_account_id, stop)
        .await?;
    let download = tokio::select! {
        _ = stop.cancelled() => return Err(TransferError::Stopped),
        download = context.downloader.get(url, token, 0) => download,
    };
    let download = match download {
        Ok(download) => download,
        Err(DownloadError::Status {
            status: status @ (404 | 410),
            ..
        }) => {
            return Ok(CompanionOutcome::Missing(format!(
                "zoom no longer has the {} file (HTTP {status})",
                kind.as_str()
            )));
        }
        Err(e) => return Err(e.into()),
    };
    refuse_web_page(&download)?;
    if let Some(length) = download.content_length
        && let Err(refused) = rules::check_companion_size(kind, length, announced_size, max_bytes)
    {
        return Ok(CompanionOutcome::Refused(refused));
    }
    let key = companion_key(&context.settings.key_prefix, job, kind);
    let upload_id = context
        .sink
        .create_upload(&key, kind.content_type())
        .await?;
    let upload = ferry_control::model::UploadRecord {
        upload_id,
        object_key: key.clone(),
        part_size: part_size_for(
            download.content_length.unwrap_or(0),
            context.settings.part_size,
        ),
    };
    let streamed = stream_parts(context, kind, download, announced_size, &upload, stop).await;
    let parts = match streamed {
        Ok(Ok(parts)) => parts,
        Ok(Err(refused)) => {
            let _ = context.sink.abort_upload(&key, &upload.upload_id).await;
            return Ok(CompanionOutcome::Refused(refused));
        }
        Err(e) => {
            let _ = context.sink.abort_upload(&key, &upload.upload_id).await;
            return Err(e);
        }
    };
    let completed: Vec<CompletedPart> = parts
        .iter()
        .map(|(part, etag)| CompletedPart {
            part_number: part.number,
            etag: etag.clone(),
            crc32c: part.crc32c,
        })
        .collect();
    context
        .sink
        .complete_upload(&key, &upload.upload_id, &completed)
        .await?;
    let checksum = combine_crc32c(parts.iter().map(|(p, _)| (p.crc32c, p.len)));
    Ok(CompanionOutcome::Copied {
        object_key: key,
        size_bytes: parts.iter().map(|(p, _)| p.len).sum(),
        checksum: format!("crc32c:{checksum:08x}"),
    })
}

/// Streams the body into parts: the cap and the text check see every chunk
/// before any part of it leaves; each part holds its budget from its first
/// byte until it lands. `Ok(Err(reason))` is a refusal.
async fn stream_parts(
    context: &Arc<Context>,
    kind: CompanionKind,
    download: Download,
    announced_size: u64,
    upload: &ferry_control::model::UploadRecord,
    stop: &CancellationToken,
) -> Result<Result<Vec<(Part, String)>, String>, TransferError> {
    let max_bytes = context.settings.companions.max_bytes;
    let download_length = download.content_length;
    // The companion cap is checked here with its own message; the guard
    // keeps the stall timeout and the download metrics.
    let unbounded = Caps {
        max_duration_ms: i64::MAX,
        max_file_bytes: u64::MAX,
    };
    let mut body = GuardedBody::new(
        download.body,
        0,
        0,
        unbounded,
        context.settings.stall_timeout,
    );
    let mut assembler = PartAssembler::new(upload.part_size, 1, 0);
    let mut text = TextCheck::new(kind);
    let part_permits = context.limits.part_permits(upload.part_size);
    let mut budget = None;
    let mut finished: Vec<Part> = Vec::new();
    let mut landed = Vec::new();
    loop {
        if budget.is_none() {
            budget = Some(context.limits.part_budget(part_permits, stop).await?);
        }
        let chunk = tokio::select! {
            _ = stop.cancelled() => return Err(TransferError::Stopped),
            chunk = body.next_chunk() => chunk?,
        };
        let Some(chunk) = chunk else { break };
        if let Err(refused) =
            rules::check_companion_size(kind, body.position(), announced_size, max_bytes)
                .and_then(|()| text.push(&chunk))
        {
            return Ok(Err(refused));
        }
        assembler.push(chunk, &mut finished);
        for part in finished.drain(..) {
            let permit = match budget.take() {
                Some(permit) => permit,
                None => context.limits.part_budget(part_permits, stop).await?,
            };
            landed.push(send(context, upload, part, stop, permit).await?);
        }
    }
    if let Some(length) = download_length
        && body.received() != length
    {
        return Err(TransferError::transient(format!(
            "the {} file's download ended after {} of {length} bytes",
            kind.as_str(),
            body.received()
        )));
    }
    if let Err(refused) = text.finish() {
        return Ok(Err(refused));
    }
    // An empty file is one empty part: a multipart upload needs one.
    let last = assembler.finish().or_else(|| {
        landed.is_empty().then(|| Part {
            number: 1,
            offset: 0,
            len: 0,
            crc32c: 0,
            chunks: Arc::from(Vec::new()),
        })
    });
    if let Some(last) = last {
        let permit = match budget.take() {
            Some(permit) => permit,
            None => context.limits.part_budget(part_permits, stop).await?,
        };
        landed.push(send(context, upload, last, stop, permit).await?);
    }
    Ok(Ok(landed))
}

/// One part through the video's part uploader (its retries, the sink's
/// rate, the upload metrics), holding `budget` until it lands.
async fn send(
    context: &Arc<Context>,
    upload: &ferry_control::model::UploadRecord,
    part: Part,
    stop: &CancellationToken,
    budget: tokio::sync::OwnedSemaphorePermit,
) -> Result<(Part, String), TransferError> {
    let kept = Part {
        chunks: Arc::from(Vec::new()),
        ..part.clone()
    };
    let cut = CutPart {
        part,
        scan_state: Vec::new(),
    };
    let record = upload_part(context.clone(), upload.clone(), cut, stop.clone(), budget).await?;
    Ok((kept, record.etag))
}

/// Keeps the companion's lease alive; stops the copy when it is lost.
fn watch_lease(
    context: &Arc<Context>,
    job_id: &str,
    kind: CompanionKind,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let (context, job_id) = (context.clone(), job_id.to_string());
    tokio::spawn(async move {
        let mut heartbeat = tokio::time::interval(context.settings.heartbeat);
        heartbeat.tick().await;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = heartbeat.tick() => {
                    let holder = CompanionHolder {
                        job_id: &job_id,
                        kind,
                        worker_id: &context.settings.worker_id,
                    };
                    let renewed = context
                        .store
                        .renew_companion_lease(holder, context.settings.lease, Timestamp::now())
                        .await;
                    if matches!(renewed, Ok(false)) {
                        tracing::info!(job = %job_id, kind = kind.as_str(), "companion lease lost; stopping the copy");
                        stop.cancel();
                        return;
                    }
                }
            }
        }
    })
}
