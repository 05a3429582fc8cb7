//! The streaming stage of an attempt: the guarded body's chunks go through
//! the part cutter (parts and the MP4 scan in step) into the part uploader,
//! each part taking its share of the byte budget first; the duration cap is
//! checked on every chunk before any part of it is sent, and watchers get
//! byte progress. Nothing is staged: memory is the parts in flight, bounded
//! by the global byte budget.
//!
//! When the body breaks (a reset, a stall) or a part upload fails for good,
//! the parts in flight are let land and recorded before the failure is
//! returned, so the retry resumes after them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_control::model::Job;
use ferry_control::rules::Caps;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use super::body::GuardedBody;
use super::caps::duration_cap;
use super::context::Context;
use super::cutter::{CutPart, PartCutter};
use super::download::Download;
use super::error::TransferError;
use super::finalize::Streamed;
use super::mp4::Mp4Scanner;
use super::resume::Resume;
use super::uploader::PartUploads;

/// How often watchers hear of one transfer's bytes, at most.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Streams `download` from `resume.offset()` into the upload, `scanner`
/// standing where the kept parts end.
pub async fn stream(
    context: &Arc<Context>,
    job: &Job,
    stop: &CancellationToken,
    download: Download,
    resume: Resume,
    scanner: Mp4Scanner,
    caps: Caps,
) -> Result<Streamed, TransferError> {
    let Resume {
        upload,
        parts: kept,
        landed_later,
    } = resume;
    let start_offset = kept.iter().map(|p| p.len).sum::<u64>();
    let announced_size = job.recording_file.as_ref().map_or(0, |f| f.file_size);
    let mut cutter = PartCutter::new(
        upload.part_size,
        kept.len() as u32 + 1,
        start_offset,
        scanner,
    );
    let mut uploads = PartUploads::new(context, job, &upload, stop, kept, landed_later);
    let mut body = GuardedBody::new(
        download.body,
        start_offset,
        announced_size,
        caps,
        context.settings.stall_timeout,
    );
    let part_permits = context.limits.part_permits(upload.part_size);
    let mut budget: Option<OwnedSemaphorePermit> = None;
    let mut cut: Vec<CutPart> = Vec::new();
    let mut progress = Progress::new(job, announced_size);

    let broken = 'stream: loop {
        // The part being filled holds its budget before its first byte.
        if budget.is_none() {
            budget = Some(context.limits.part_budget(part_permits, stop).await?);
        }
        let chunk = tokio::select! {
            _ = stop.cancelled() => return Err(TransferError::Stopped),
            Some(finished) = uploads.next_finished(), if !uploads.is_idle() => {
                match uploads.landed(finished).await {
                    Ok(()) => continue,
                    Err(e) => break Some(e),
                }
            }
            chunk = body.next_chunk() => match chunk {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break None,
                Err(e @ TransferError::Transient { .. }) => break Some(e),
                Err(e) => return Err(e),
            },
        };
        cutter.push(chunk, &mut cut);
        if let Some(duration) = cutter.scanner().duration() {
            duration_cap(duration.as_millis() as u64, &caps)?;
        }
        for part in cut.drain(..) {
            // One chunk can complete more than one part: every part after
            // the first takes budget of its own.
            let permit = match budget.take() {
                Some(permit) => permit,
                None => context.limits.part_budget(part_permits, stop).await?,
            };
            if let Err(e) = uploads.send(part, permit).await {
                break 'stream Some(e);
            }
        }
        progress.tick(context, body.position());
    };
    if let Some(error) = broken {
        drop(budget);
        let _ = uploads.land_all().await;
        return Err(error);
    }
    let received_total = cutter.offset();
    let (last, scanner) = cutter.finish();
    if let Some(last) = last {
        let permit = match budget.take() {
            Some(permit) => permit,
            None => context.limits.part_budget(part_permits, stop).await?,
        };
        uploads.send(last, permit).await?;
    }
    drop(budget);
    uploads.land_all().await?;
    Ok(Streamed {
        parts: uploads.into_parts(),
        upload,
        received_total,
        received_here: body.received(),
        content_length: download.content_length,
        scanner,
    })
}

/// Byte progress for watchers, without writing anything.
struct Progress {
    job: Job,
    last: Instant,
}

impl Progress {
    fn new(job: &Job, announced_size: u64) -> Self {
        let mut job = job.clone();
        job.total_bytes = announced_size;
        Progress {
            job,
            last: Instant::now(),
        }
    }

    fn tick(&mut self, context: &Context, position: u64) {
        if self.last.elapsed() >= PROGRESS_EVERY {
            self.last = Instant::now();
            self.job.bytes_transferred = position;
            context.store.publish_progress(self.job.clone());
        }
    }
}
