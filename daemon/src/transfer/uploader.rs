//! The part uploader: sends each cut part to the sink (at most
//! `parts_in_flight` of one transfer at once, each holding its share of the
//! byte budget until it lands), retries a failed part on its own through
//! the shared retry helper, and records every part the sink acknowledged
//! with the scan state it carries, fenced by the lease.
//!
//! A part that an earlier attempt already landed with the same bytes is
//! recorded without being sent again. When the attempt breaks, the parts in
//! flight are let land and recorded, so nothing landed is ever sent twice.

use std::sync::Arc;
use std::time::Instant;

use ferry_control::model::{Job, PartRecord, UploadRecord};
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::{JoinError, JoinSet};
use tokio_util::sync::CancellationToken;

use super::context::Context;
use super::cutter::CutPart;
use super::error::{Stage, TransferError, lease_or_store};
use super::parts::Part;
use super::retry::retry;
use crate::metrics::{PART_UPLOAD_SECONDS, UPLOADED_BYTES_TOTAL};

/// How a part upload task ended.
pub type PartResult = Result<Result<PartRecord, TransferError>, JoinError>;

/// The part uploads of one attempt.
pub struct PartUploads<'a> {
    context: &'a Arc<Context>,
    job: &'a Job,
    upload: &'a UploadRecord,
    stop: &'a CancellationToken,
    in_flight: JoinSet<Result<PartRecord, TransferError>>,
    /// Every part recorded, earlier attempts' included.
    done: Vec<PartRecord>,
    landed_later: Vec<PartRecord>,
}

impl<'a> PartUploads<'a> {
    pub fn new(
        context: &'a Arc<Context>,
        job: &'a Job,
        upload: &'a UploadRecord,
        stop: &'a CancellationToken,
        kept: Vec<PartRecord>,
        landed_later: Vec<PartRecord>,
    ) -> Self {
        PartUploads {
            context,
            job,
            upload,
            stop,
            in_flight: JoinSet::new(),
            done: kept,
            landed_later,
        }
    }

    /// Sends a cut part holding `budget` (or records it, when an earlier
    /// attempt landed the same bytes), first waiting for a free slot.
    pub async fn send(
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
        while self.in_flight.len() >= self.context.settings.parts_in_flight.max(1) {
            self.land_next().await?;
        }
        self.in_flight.spawn(upload_part(
            self.context.clone(),
            self.upload.clone(),
            cut,
            self.stop.clone(),
            budget,
        ));
        Ok(())
    }

    pub fn is_idle(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// The cancel-safe half of landing a part: race it against other
    /// events, then hand its result to [`PartUploads::landed`].
    pub async fn next_finished(&mut self) -> Option<PartResult> {
        self.in_flight.join_next().await
    }

    /// Records a part upload that ended.
    pub async fn landed(&mut self, finished: PartResult) -> Result<(), TransferError> {
        let part = finished.map_err(|e| TransferError::transient(e.to_string()))??;
        self.record(part).await
    }

    async fn land_next(&mut self) -> Result<(), TransferError> {
        match self.next_finished().await {
            Some(finished) => self.landed(finished).await,
            None => Ok(()),
        }
    }

    /// Lets every part upload in flight end and records those that landed;
    /// returns the first failure.
    pub async fn land_all(&mut self) -> Result<(), TransferError> {
        let mut first_error = None;
        while !self.in_flight.is_empty() {
            if let Err(e) = self.land_next().await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Every part recorded, ordered by number.
    pub fn into_parts(mut self) -> Vec<PartRecord> {
        self.done.sort_by_key(|p| p.part_number);
        self.done
    }

    /// Records an acknowledged part; the lease must still be ours.
    async fn record(&mut self, record: PartRecord) -> Result<(), TransferError> {
        let transferred = self.done.iter().map(|p| p.len).sum::<u64>() + record.len;
        self.context
            .store
            .record_part(
                self.context.holder(&self.job.job_id),
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

/// Uploads one part, retrying it on its own; the budget is held until it ends.
pub(super) async fn upload_part(
    context: Arc<Context>,
    upload: UploadRecord,
    cut: CutPart,
    stop: CancellationToken,
    _budget: OwnedSemaphorePermit,
) -> Result<PartRecord, TransferError> {
    let CutPart { part, scan_state } = cut;
    let policy = context.settings.retry_policy();
    let what = format!("part {} upload", part.number);
    let etag = retry(policy, &what, &stop, |_| {
        send_once(&context, &upload, &part, &stop)
    })
    .await?;
    Ok(PartRecord {
        part_number: part.number,
        etag,
        crc32c: part.crc32c,
        offset: part.offset,
        len: part.len,
        scan_state: Some(scan_state),
    })
}

async fn send_once(
    context: &Context,
    upload: &UploadRecord,
    part: &Part,
    stop: &CancellationToken,
) -> Result<String, TransferError> {
    context.limits.sink_request(stop).await?;
    let started = Instant::now();
    let uploaded = tokio::select! {
        _ = stop.cancelled() => return Err(TransferError::Stopped),
        uploaded = context.sink.upload_part(&upload.object_key, &upload.upload_id, part) => uploaded,
    };
    metrics::histogram!(PART_UPLOAD_SECONDS).record(started.elapsed().as_secs_f64());
    uploaded.map_err(|e| match TransferError::from(e) {
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
    })
}
