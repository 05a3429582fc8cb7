//! The PostgreSQL backend of `JobStore`: jobs, one per (Zoom account, meeting
//! uuid) by a unique constraint (two replicas receiving the same delivery at
//! the same instant create one job: the second insert waits for the first
//! and does nothing), their listing and their admin transitions. Leases and
//! completion live in `leases`; events in `events`.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio::sync::broadcast;
use tokio_postgres::Row;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use super::{PostgresStore, get, get_opt_time, get_time, get_u32, get_u64, pg_error};
use super::{job_list, leases};
use crate::error::StoreError;
use crate::model::*;
use crate::store::job_plan::new_job_id;
use crate::store::{
    JobStore, Lease, LeaseHolder, Page, PageQuery, RetentionSweep, RetentionSwept, StoreResult,
};

pub(super) const JOB_COLUMNS: &str = "job_id, institution_id, zoom_account_id, meeting_uuid, meeting_id, topic, host_email,
    meeting_start_ms, state, skip_reason, message, owner_user_id, file_id, recording_type, file_type,
    file_extension, file_size, recording_start_ms, recording_end_ms, skipped_file_count, skipped_segment_count,
    bytes_transferred, total_bytes, attempt_count, media_id, created_ms, updated_ms, finished_ms,
    detected_mid_stream, source, zoom_trash_state, zoom_trash_message, zoom_trash_attempts, zoom_trash_next_ms";

pub(super) fn job_from_row(row: &Row) -> StoreResult<Job> {
    let state: String = get(row, 8)?;
    let skip_reason: Option<String> = get(row, 9)?;
    let file_id: Option<String> = get(row, 12)?;
    let recording_file = match file_id {
        Some(file_id) => Some(RecordingFile {
            file_id,
            recording_type: get::<Option<String>>(row, 13)?.unwrap_or_default(),
            file_type: get::<Option<String>>(row, 14)?.unwrap_or_default(),
            file_extension: get::<Option<String>>(row, 15)?.unwrap_or_default(),
            file_size: get::<Option<i64>>(row, 16)?.unwrap_or(0).max(0) as u64,
            recording_start: Timestamp(get::<Option<i64>>(row, 17)?.unwrap_or(0)),
            recording_end: Timestamp(get::<Option<i64>>(row, 18)?.unwrap_or(0)),
        }),
        None => None,
    };
    Ok(Job {
        job_id: get(row, 0)?,
        institution_id: get(row, 1)?,
        zoom_account_id: get(row, 2)?,
        meeting_uuid: get(row, 3)?,
        meeting_id: get_u64(row, 4)?,
        topic: get(row, 5)?,
        host_email: get(row, 6)?,
        meeting_start: get_opt_time(row, 7)?,
        state: JobState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown job state {state}")))?,
        skip_reason: match skip_reason {
            Some(reason) => Some(
                SkipReason::parse(&reason)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown skip reason {reason}")))?,
            ),
            None => None,
        },
        message: get(row, 10)?,
        owner_user_id: get(row, 11)?,
        recording_file,
        skipped_file_count: get_u32(row, 19)?,
        skipped_segment_count: get_u32(row, 20)?,
        bytes_transferred: get_u64(row, 21)?,
        total_bytes: get_u64(row, 22)?,
        attempt_count: get_u32(row, 23)?,
        media_id: get(row, 24)?,
        created_at: get_time(row, 25)?,
        updated_at: get_time(row, 26)?,
        finished_at: get_opt_time(row, 27)?,
        detected_mid_stream: get(row, 28)?,
        source: {
            let source: String = get(row, 29)?;
            JobSource::parse(&source)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown job source {source}")))?
        },
        zoom_trash: ZoomTrash::from_columns(
            get::<Option<String>>(row, 30)?.as_deref(),
            get(row, 31)?,
            get_u32(row, 32)?,
            get(row, 33)?,
        )
        .map_err(StoreError::Corrupt)?,
    })
}

/// The job by id, whatever its institution; with `lock`, its row stays
/// locked until the transaction ends.
pub(super) async fn find_job(c: &impl GenericClient, job_id: &str, lock: bool) -> StoreResult<Job> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let row = c
        .query_opt(
            &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE job_id = $1{lock}"),
            &[&job_id],
        )
        .await
        .map_err(pg_error)?
        .ok_or_else(|| job_not_found(job_id))?;
    job_from_row(&row)
}

pub(super) fn job_not_found(job_id: &str) -> StoreError {
    StoreError::not_found(format!("job {job_id}"))
}

/// The job if it belongs to the institution (NotFound otherwise), locked.
async fn job_in(c: &impl GenericClient, institution_id: &str, job_id: &str) -> StoreResult<Job> {
    Some(find_job(c, job_id, true).await?)
        .filter(|job| job.institution_id == institution_id)
        .ok_or_else(|| job_not_found(job_id))
}

fn sealed_bytes(sealed: &Option<crate::secrets::Sealed>) -> Option<&[u8]> {
    sealed.as_ref().map(|s| s.0.as_slice())
}

/// The columns a new job's row is written with, in [`new_job_row`]'s order.
const NEW_JOB_COLUMNS: &str = "job_id, institution_id, zoom_account_id, meeting_uuid, meeting_id, topic,
    host_email, host_email_key, meeting_start_ms, state, skip_reason, message, owner_user_id, file_id,
    recording_type, file_type, file_extension, file_size, recording_start_ms, recording_end_ms,
    skipped_file_count, skipped_segment_count, total_bytes, created_ms, updated_ms, finished_ms,
    download_url_sealed, download_token_sealed, download_event_ms, recording_sealed, source";

/// The types of `NEW_JOB_COLUMNS`, for a binary `COPY`.
const NEW_JOB_TYPES: [Type; 31] = [
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::BYTEA,
    Type::BYTEA,
    Type::INT8,
    Type::BYTEA,
    Type::TEXT,
];

/// One value of a new job's row.
type Value<'a> = Box<dyn ToSql + Sync + Send + 'a>;

/// The row of a new job with id `job_id`, in `NEW_JOB_COLUMNS` order: the
/// one place that decides what a new job stores, for the intake's insert
/// and the bulk import alike.
fn new_job_row<'a>(job_id: &'a str, job: &'a NewJob) -> Vec<Value<'a>> {
    let file = job.recording_file.as_ref();
    let finished_ms = job.state.is_final().then_some(job.now.0);
    vec![
        Box::new(job_id),
        Box::new(job.institution_id.as_str()),
        Box::new(job.zoom_account_id.as_str()),
        Box::new(job.meeting_uuid.as_str()),
        Box::new(job.meeting_id as i64),
        Box::new(job.topic.as_str()),
        Box::new(job.host_email.as_str()),
        Box::new(crate::email::normalize(&job.host_email)),
        Box::new(job.meeting_start.map(|t| t.0)),
        Box::new(job.state.as_str()),
        Box::new(job.skip_reason.map(SkipReason::as_str)),
        Box::new(job.message.as_str()),
        Box::new(job.owner_user_id.as_deref()),
        Box::new(file.map(|f| f.file_id.as_str())),
        Box::new(file.map(|f| f.recording_type.as_str())),
        Box::new(file.map(|f| f.file_type.as_str())),
        Box::new(file.map(|f| f.file_extension.as_str())),
        Box::new(file.map(|f| f.file_size as i64)),
        Box::new(file.map(|f| f.recording_start.0)),
        Box::new(file.map(|f| f.recording_end.0)),
        Box::new(i64::from(job.skipped_file_count)),
        Box::new(i64::from(job.skipped_segment_count)),
        Box::new(file.map(|f| f.file_size as i64).unwrap_or(0)),
        Box::new(job.now.0),
        Box::new(job.now.0),
        Box::new(finished_ms),
        Box::new(sealed_bytes(&job.sealed_download_url)),
        Box::new(sealed_bytes(&job.sealed_download_token)),
        Box::new(job.event_time.0),
        Box::new(sealed_bytes(&job.sealed_recording)),
        Box::new(job.source.as_str()),
    ]
}

fn as_params<'a>(row: &'a [Value<'_>]) -> Vec<&'a (dyn ToSql + Sync)> {
    row.iter()
        .map(|value| value.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

async fn upsert_job(c: &impl GenericClient, job: &NewJob) -> StoreResult<(Job, bool)> {
    let job_id = new_job_id(job.now);
    // Every webhook inserts: prepared once per connection.
    let insert = c
        .prepare_cached(&format!(
            "INSERT INTO jobs ({NEW_JOB_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
                $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31)
             ON CONFLICT ON CONSTRAINT jobs_one_per_meeting DO NOTHING
             RETURNING {JOB_COLUMNS}"
        ))
        .await
        .map_err(pg_error)?;
    let row = new_job_row(&job_id, job);
    let inserted = c
        .query_opt(&insert, &as_params(&row))
        .await
        .map_err(pg_error)?;
    if let Some(row) = inserted {
        return Ok((job_from_row(&row)?, true));
    }
    // A redelivery or a second event for the meeting: never a second job, but
    // fresher download credentials replace older ones until it completes.
    c.execute(
        "UPDATE jobs SET
            download_url_sealed = COALESCE($3, download_url_sealed),
            download_token_sealed = COALESCE($4, download_token_sealed),
            recording_sealed = COALESCE($5, recording_sealed),
            download_event_ms = $6
         WHERE zoom_account_id = $1 AND meeting_uuid = $2 AND state != 'completed'
            AND (download_event_ms IS NULL OR download_event_ms <= $6)",
        &[
            &job.zoom_account_id,
            &job.meeting_uuid,
            &sealed_bytes(&job.sealed_download_url),
            &sealed_bytes(&job.sealed_download_token),
            &sealed_bytes(&job.sealed_recording),
            &job.event_time.0,
        ],
    )
    .await
    .map_err(pg_error)?;
    let row = c
        .query_one(
            &format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE zoom_account_id = $1 AND meeting_uuid = $2"
            ),
            &[&job.zoom_account_id, &job.meeting_uuid],
        )
        .await
        .map_err(pg_error)?;
    Ok((job_from_row(&row)?, false))
}

async fn requeue_job(c: &impl GenericClient, requeue: &JobRequeue) -> StoreResult<Job> {
    let job_id = requeue.job_id.as_str();
    let job = job_in(c, &requeue.institution_id, job_id).await?;
    if !matches!(
        job.state,
        JobState::Skipped | JobState::Failed | JobState::Cancelled
    ) {
        return Err(StoreError::FailedPrecondition(format!(
            "job {job_id} is {}; only skipped, failed or cancelled jobs can be retried",
            job.state.as_str()
        )));
    }
    let file = requeue.recording_file.as_ref();
    c.execute(
        "UPDATE jobs SET state = 'queued', skip_reason = NULL, message = $12, owner_user_id = $2,
            file_id = COALESCE($3, file_id), recording_type = COALESCE($4, recording_type),
            file_type = COALESCE($5, file_type), file_extension = COALESCE($6, file_extension),
            file_size = COALESCE($7, file_size), recording_start_ms = COALESCE($8, recording_start_ms),
            recording_end_ms = COALESCE($9, recording_end_ms), total_bytes = COALESCE($7, total_bytes),
            download_url_sealed = COALESCE($10, download_url_sealed),
            bytes_transferred = 0, detected_mid_stream = FALSE, finished_ms = NULL, lease_owner = NULL,
            lease_expires_ms = NULL, lease_clock = NULL, lease_expires_db = NULL, updated_ms = $11
         WHERE job_id = $1",
        &[
            &job_id,
            &requeue.owner_user_id,
            &file.map(|f| f.file_id.as_str()),
            &file.map(|f| f.recording_type.as_str()),
            &file.map(|f| f.file_type.as_str()),
            &file.map(|f| f.file_extension.as_str()),
            &file.map(|f| f.file_size as i64),
            &file.map(|f| f.recording_start.0),
            &file.map(|f| f.recording_end.0),
            &sealed_bytes(&requeue.sealed_download_url),
            &requeue.now.0,
            &requeue.message,
        ],
    )
    .await
    .map_err(pg_error)?;
    find_job(c, job_id, false).await
}

async fn cancel_job(
    c: &impl GenericClient,
    institution_id: &str,
    job_id: &str,
    now: Timestamp,
) -> StoreResult<Job> {
    let job = job_in(c, institution_id, job_id).await?;
    if job.state.is_final() {
        return Err(StoreError::FailedPrecondition(format!(
            "job {job_id} is {}; only queued or transferring jobs can be cancelled",
            job.state.as_str()
        )));
    }
    c.execute(
        "UPDATE jobs SET state = 'cancelled', message = 'cancelled by an admin', lease_owner = NULL,
            lease_expires_ms = NULL, lease_clock = NULL, lease_expires_db = NULL,
            finished_ms = $2, updated_ms = $2 WHERE job_id = $1",
        &[&job_id, &now.0],
    )
    .await
    .map_err(pg_error)?;
    find_job(c, job_id, false).await
}

impl PostgresStore {
    /// Commits a job change and announces it: to this store's subscribers
    /// at once, to other replicas by a NOTIFY sent with the commit.
    /// Writes `jobs`, all new, in one transaction: a binary `COPY` of the
    /// rows the intake's insert writes (`new_job_row`, ids in the same
    /// scheme), counted by the same statement-level trigger as any insert.
    /// For loading history (the `history` bench's fill), not for the
    /// intake: no job events are published (nobody watches a load), and a
    /// job whose (account, meeting) is already stored fails the whole batch
    /// with AlreadyExists, writing none of it, where `upsert_job` would keep
    /// the stored job and refresh its credentials. Returns how many jobs
    /// were written.
    pub async fn import_new_jobs(&self, jobs: &[NewJob]) -> StoreResult<u64> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let sink = tx
            .copy_in(&format!(
                "COPY jobs ({NEW_JOB_COLUMNS}) FROM STDIN (FORMAT binary)"
            ))
            .await
            .map_err(pg_error)?;
        let writer = BinaryCopyInWriter::new(sink, &NEW_JOB_TYPES);
        futures::pin_mut!(writer);
        for job in jobs {
            let job_id = new_job_id(job.now);
            let row = new_job_row(&job_id, job);
            writer
                .as_mut()
                .write(&as_params(&row))
                .await
                .map_err(pg_error)?;
        }
        let written = writer.finish().await.map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        Ok(written)
    }

    pub(super) async fn commit_job_change(
        &self,
        tx: deadpool_postgres::Transaction<'_>,
        job: &Job,
    ) -> StoreResult<()> {
        super::events::notify(&tx, &self.clock_id, job, false).await?;
        tx.commit().await.map_err(pg_error)?;
        self.publish(job, false);
        Ok(())
    }
}

#[async_trait]
impl JobStore for PostgresStore {
    async fn upsert_job(&self, job: NewJob) -> StoreResult<(Job, bool)> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let (job, created) = upsert_job(&tx, &job).await?;
        if created {
            self.commit_job_change(tx, &job).await?;
        } else {
            tx.commit().await.map_err(pg_error)?;
        }
        Ok((job, created))
    }

    async fn get_job(&self, institution_id: &str, job_id: &str) -> StoreResult<Job> {
        Some(find_job(&self.client().await?, job_id, false).await?)
            .filter(|job| job.institution_id == institution_id)
            .ok_or_else(|| job_not_found(job_id))
    }

    async fn get_job_secrets(&self, institution_id: &str, job_id: &str) -> StoreResult<JobSecrets> {
        let sealed = |bytes: Option<Vec<u8>>| bytes.map(crate::secrets::Sealed);
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT download_url_sealed, download_token_sealed, recording_sealed FROM jobs
                 WHERE institution_id = $1 AND job_id = $2",
                &[&institution_id, &job_id],
            )
            .await
            .map_err(pg_error)?
            .ok_or_else(|| job_not_found(job_id))?;
        Ok(JobSecrets {
            sealed_download_url: sealed(get(&row, 0)?),
            sealed_download_token: sealed(get(&row, 1)?),
            sealed_recording: sealed(get(&row, 2)?),
        })
    }

    async fn list_jobs(
        &self,
        institution_id: &str,
        filter: &JobFilter,
        page: &PageQuery,
    ) -> StoreResult<Page<Job>> {
        let client = self.client().await?;
        job_list::list_jobs(&client, institution_id, filter, page).await
    }

    async fn job_counts(&self) -> StoreResult<JobCounts> {
        job_list::job_counts(&self.client().await?).await
    }

    async fn requeue_job(&self, requeue: JobRequeue) -> StoreResult<Job> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let job = requeue_job(&tx, &requeue).await?;
        self.commit_job_change(tx, &job).await?;
        Ok(job)
    }

    async fn cancel_job(
        &self,
        institution_id: &str,
        job_id: &str,
        now: Timestamp,
    ) -> StoreResult<Job> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let job = cancel_job(&tx, institution_id, job_id, now).await?;
        self.commit_job_change(tx, &job).await?;
        Ok(job)
    }

    async fn claim_job(
        &self,
        worker_id: &str,
        lease: Duration,
        now: Timestamp,
    ) -> StoreResult<Option<Lease>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let claimed = leases::claim_job(&tx, &self.clock_id, worker_id, lease, now).await?;
        match &claimed {
            Some(lease) => self.commit_job_change(tx, &lease.job).await?,
            None => tx.commit().await.map_err(pg_error)?,
        }
        Ok(claimed)
    }

    async fn renew_lease(
        &self,
        holder: LeaseHolder<'_>,
        lease: Duration,
        now: Timestamp,
    ) -> StoreResult<bool> {
        leases::renew_lease(&self.client().await?, &self.clock_id, holder, lease, now).await
    }

    async fn complete_job(
        &self,
        holder: LeaseHolder<'_>,
        media: NewMedia,
        now: Timestamp,
    ) -> StoreResult<(Job, Media)> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let (job, media) = leases::complete_job(&tx, holder, &media, now).await?;
        self.commit_job_change(tx, &job).await?;
        Ok((job, media))
    }

    async fn finish_job(
        &self,
        holder: LeaseHolder<'_>,
        outcome: JobOutcome,
        now: Timestamp,
    ) -> StoreResult<Job> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let job = leases::finish_job(&tx, holder, &outcome, now).await?;
        self.commit_job_change(tx, &job).await?;
        Ok(job)
    }

    async fn sweep_retention(&self, sweep: RetentionSweep) -> StoreResult<RetentionSwept> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let swept = super::retention::sweep(&tx, &sweep).await?;
        tx.commit().await.map_err(pg_error)?;
        // The fold rides on the periodic sweep, in a transaction of its own
        // so that it holds the counts rows it takes only for a moment.
        let tx = client.transaction().await.map_err(pg_error)?;
        job_list::fold_job_counts(&tx).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(swept)
    }

    fn publish_progress(&self, job: Job) {
        self.progress.push(&job);
        let _ = self.job_events.send(JobEvent {
            job,
            progress_only: true,
        });
    }

    fn subscribe_job_events(&self) -> broadcast::Receiver<JobEvent> {
        self.job_events.subscribe()
    }
}
