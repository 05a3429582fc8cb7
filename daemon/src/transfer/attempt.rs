//! One transfer attempt, as a chain of stages: open the job's credentials →
//! reconcile the stored upload with the sink (and restore the MP4 scan) →
//! count the attempt → open the download from the first missing byte →
//! check the length it declares against the size cap → stream it through
//! the guarded body, the part cutter and the uploader → verify → complete.
//! Each stage lives in its own module; this one only orders them, and
//! depends on nothing of the engine that runs it. Before streaming, it
//! records the companion files that go with the video (`companion::plan`).

use std::sync::Arc;

use ferry_control::model::{AttemptStart, Job, Timestamp};
use tokio_util::sync::CancellationToken;

use super::caps::declared_size_cap;
use super::companion;
use super::context::Context;
use super::error::{TransferError, lease_or_store};
use super::finalize;
use super::mp4::Mp4Scanner;
use super::object::{content_type, object_key};
use super::resume::{self, Start};
use super::source;
use super::stream::stream;
use super::zoom_api::FreshDownload;
use crate::metrics::RESUMED_TRANSFERS_TOTAL;

/// One attempt at the whole transfer; `fresh` overrides the webhook's
/// download token (and URL) after Zoom refused it.
pub async fn run(
    context: &Arc<Context>,
    job: &Job,
    stop: &CancellationToken,
    fresh: Option<&FreshDownload>,
) -> Result<(), TransferError> {
    let credentials = source::credentials(context, job, fresh).await?;
    let announced_size = match &job.recording_file {
        Some(file) => file.file_size,
        None => {
            return Err(TransferError::Permanent(
                "the job has no recording file".into(),
            ));
        }
    };
    // The companions go with the chosen video; they are copied once the
    // job has completed (see `companion`).
    companion::plan(context, job).await?;
    let key = object_key(&context.settings.key_prefix, job);
    let content_type = content_type(job);
    let caps = context.settings.caps.for_account(&job.zoom_account_id);
    let start = resume::reconcile(context, job, &key, content_type).await?;
    begin_attempt(context, job, &start).await?;
    let (mut resume, mut scanner) = match start {
        Start::Resume {
            resume, scanner, ..
        } => (resume, scanner),
        Start::AlreadyComplete { done, scanner } => {
            return finalize::already_complete(
                context,
                job,
                &done.upload,
                &done.parts,
                scanner,
                &caps,
            )
            .await;
        }
    };

    let download = source::open(context, job, stop, &credentials, resume.offset()).await?;
    if !source::starts_at(&download, resume.offset()) {
        tracing::info!(job = %job.job_id, "the download source ignored Range; starting the upload over");
        resume = resume::start_over(context, job, &key, content_type).await?;
        scanner = Mp4Scanner::new();
        if download.status != 200 {
            return Err(TransferError::transient(
                "the source answered a partial range that was not asked for",
            ));
        }
    }
    // A truthful length above the cap ends the job before a byte is read.
    declared_size_cap(
        resume.offset(),
        download.content_length,
        announced_size,
        &caps,
    )?;
    if resume.offset() > 0 {
        metrics::counter!(RESUMED_TRANSFERS_TOTAL).increment(1);
        tracing::info!(job = %job.job_id, resumed_from_bytes = resume.offset(), "resuming the transfer");
    }

    let streamed = stream(context, job, stop, download, resume, scanner, caps).await?;
    finalize::verify_and_complete(context, job, streamed, announced_size, &caps).await
}

/// Counts the attempt and records where it starts in the job's history.
async fn begin_attempt(context: &Context, job: &Job, start: &Start) -> Result<(), TransferError> {
    let resumed_from_bytes = start.offset();
    let attempt = context
        .store
        .begin_attempt(AttemptStart {
            job_id: job.job_id.clone(),
            worker_id: context.settings.worker_id.clone(),
            resumed_from_bytes,
            note: start.note(),
            now: Timestamp::now(),
        })
        .await
        .map_err(lease_or_store)?;
    tracing::debug!(job = %job.job_id, attempt, resumed_from_bytes, "transfer attempt started");
    Ok(())
}
