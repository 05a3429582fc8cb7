//! The SQLite backend of `JobStore`: jobs, one per (Zoom account, meeting
//! uuid), their leases and their completion.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::SqliteStore;
use super::engine::sql_error;
use super::transfers::require_lease;
use crate::error::StoreError;
use crate::model::*;
use crate::store::{
    JobStore, Lease, LeaseHolder, Page, PageQuery, RetentionSweep, RetentionSwept, StoreResult,
    new_id,
};
use tokio::sync::broadcast;

pub(super) const JOB_COLUMNS: &str = "job_id, institution_id, zoom_account_id, meeting_uuid, meeting_id, topic, host_email,
    meeting_start_ms, state, skip_reason, message, owner_user_id, file_id, recording_type, file_type,
    file_extension, file_size, recording_start_ms, recording_end_ms, skipped_file_count, skipped_segment_count,
    bytes_transferred, total_bytes, attempt_count, media_id, created_ms, updated_ms, finished_ms,
    detected_mid_stream, source, zoom_trash_state, zoom_trash_message, zoom_trash_attempts, zoom_trash_next_ms";

fn conversion_error(column: usize, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, message.into())
}

pub(super) fn job_from_row(row: &Row<'_>) -> rusqlite::Result<Job> {
    let state: String = row.get(8)?;
    let skip_reason: Option<String> = row.get(9)?;
    let file_id: Option<String> = row.get(12)?;
    let recording_file = match file_id {
        Some(file_id) => Some(RecordingFile {
            file_id,
            recording_type: row.get::<_, Option<String>>(13)?.unwrap_or_default(),
            file_type: row.get::<_, Option<String>>(14)?.unwrap_or_default(),
            file_extension: row.get::<_, Option<String>>(15)?.unwrap_or_default(),
            file_size: row.get::<_, Option<i64>>(16)?.unwrap_or(0) as u64,
            recording_start: Timestamp(row.get::<_, Option<i64>>(17)?.unwrap_or(0)),
            recording_end: Timestamp(row.get::<_, Option<i64>>(18)?.unwrap_or(0)),
        }),
        None => None,
    };
    Ok(Job {
        job_id: row.get(0)?,
        institution_id: row.get(1)?,
        zoom_account_id: row.get(2)?,
        meeting_uuid: row.get(3)?,
        meeting_id: row.get::<_, i64>(4)? as u64,
        topic: row.get(5)?,
        host_email: row.get(6)?,
        meeting_start: row.get::<_, Option<i64>>(7)?.map(Timestamp),
        state: JobState::parse(&state)
            .ok_or_else(|| conversion_error(8, format!("unknown job state {state}")))?,
        skip_reason: match skip_reason {
            Some(reason) => Some(
                SkipReason::parse(&reason)
                    .ok_or_else(|| conversion_error(9, format!("unknown skip reason {reason}")))?,
            ),
            None => None,
        },
        message: row.get(10)?,
        owner_user_id: row.get(11)?,
        recording_file,
        skipped_file_count: row.get(19)?,
        skipped_segment_count: row.get(20)?,
        bytes_transferred: row.get::<_, i64>(21)? as u64,
        total_bytes: row.get::<_, i64>(22)? as u64,
        attempt_count: row.get(23)?,
        media_id: row.get(24)?,
        created_at: Timestamp(row.get(25)?),
        updated_at: Timestamp(row.get(26)?),
        finished_at: row.get::<_, Option<i64>>(27)?.map(Timestamp),
        detected_mid_stream: row.get(28)?,
        source: {
            let source: String = row.get(29)?;
            JobSource::parse(&source)
                .ok_or_else(|| conversion_error(29, format!("unknown job source {source}")))?
        },
        zoom_trash: ZoomTrash::from_columns(
            row.get::<_, Option<String>>(30)?.as_deref(),
            row.get(31)?,
            row.get(32)?,
            row.get(33)?,
        )
        .map_err(|e| conversion_error(30, e))?,
    })
}

fn find_job(conn: &Connection, job_id: &str) -> StoreResult<Option<Job>> {
    conn.prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE job_id = ?1"))
        .map_err(sql_error)?
        .query_row(params![job_id], job_from_row)
        .optional()
        .map_err(sql_error)
}

pub(super) fn find_job_by_id(conn: &Connection, job_id: &str) -> StoreResult<Job> {
    find_job(conn, job_id)?.ok_or_else(|| job_not_found(job_id))
}

fn job_not_found(job_id: &str) -> StoreError {
    StoreError::not_found(format!("job {job_id}"))
}

pub(super) fn get_job(conn: &Connection, institution_id: &str, job_id: &str) -> StoreResult<Job> {
    find_job(conn, job_id)?
        .filter(|job| job.institution_id == institution_id)
        .ok_or_else(|| job_not_found(job_id))
}

pub(super) fn get_job_secrets(
    conn: &Connection,
    institution_id: &str,
    job_id: &str,
) -> StoreResult<JobSecrets> {
    let sealed = |bytes: Option<Vec<u8>>| bytes.map(crate::secrets::Sealed);
    conn.prepare_cached(
        "SELECT download_url_sealed, download_token_sealed, recording_sealed FROM jobs
         WHERE institution_id = ?1 AND job_id = ?2",
    )
    .map_err(sql_error)?
    .query_row(params![institution_id, job_id], |row| {
        Ok(JobSecrets {
            sealed_download_url: sealed(row.get(0)?),
            sealed_download_token: sealed(row.get(1)?),
            sealed_recording: sealed(row.get(2)?),
        })
    })
    .optional()
    .map_err(sql_error)?
    .ok_or_else(|| job_not_found(job_id))
}

pub(super) fn upsert_job(conn: &Connection, job: &NewJob) -> StoreResult<(Job, bool)> {
    let job_id = crate::store::job_plan::new_job_id(job.now);
    let file = job.recording_file.as_ref();
    let finished_ms = job.state.is_final().then_some(job.now.0);
    let inserted = conn
        .prepare_cached(
            "INSERT INTO jobs (job_id, institution_id, zoom_account_id, meeting_uuid, meeting_id, topic, host_email,
                host_email_key, meeting_start_ms, state, skip_reason, message, owner_user_id, file_id, recording_type,
                file_type, file_extension, file_size, recording_start_ms, recording_end_ms, skipped_file_count,
                skipped_segment_count, total_bytes, created_ms, updated_ms, finished_ms, download_url_sealed,
                download_token_sealed, download_event_ms, recording_sealed, source)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21,
                ?22, ?23, ?24, ?24, ?25, ?26, ?27, ?28, ?29, ?30)
             ON CONFLICT (zoom_account_id, meeting_uuid) DO NOTHING",
        )
        .map_err(sql_error)?
        .execute(params![
            job_id,
            job.institution_id,
            job.zoom_account_id,
            job.meeting_uuid,
            job.meeting_id as i64,
            job.topic,
            job.host_email,
            crate::email::normalize(&job.host_email),
            job.meeting_start.map(|t| t.0),
            job.state.as_str(),
            job.skip_reason.map(SkipReason::as_str),
            job.message,
            job.owner_user_id,
            file.map(|f| f.file_id.clone()),
            file.map(|f| f.recording_type.clone()),
            file.map(|f| f.file_type.clone()),
            file.map(|f| f.file_extension.clone()),
            file.map(|f| f.file_size as i64),
            file.map(|f| f.recording_start.0),
            file.map(|f| f.recording_end.0),
            job.skipped_file_count,
            job.skipped_segment_count,
            file.map(|f| f.file_size as i64).unwrap_or(0),
            job.now.0,
            finished_ms,
            job.sealed_download_url.as_ref().map(|s| s.0.clone()),
            job.sealed_download_token.as_ref().map(|s| s.0.clone()),
            job.event_time.0,
            job.sealed_recording.as_ref().map(|s| s.0.clone()),
            job.source.as_str(),
        ])
        .map_err(sql_error)?;
    if inserted == 1 {
        let created = find_job(conn, &job_id)?.ok_or_else(|| job_not_found(&job_id))?;
        return Ok((created, true));
    }
    // A redelivery or a second event for the meeting: never a second job, but
    // fresher download credentials replace older ones until it completes.
    conn.prepare_cached(
        "UPDATE jobs SET
            download_url_sealed = COALESCE(?3, download_url_sealed),
            download_token_sealed = COALESCE(?4, download_token_sealed),
            recording_sealed = COALESCE(?5, recording_sealed),
            download_event_ms = ?6
         WHERE zoom_account_id = ?1 AND meeting_uuid = ?2 AND state != 'completed'
            AND (download_event_ms IS NULL OR download_event_ms <= ?6)",
    )
    .map_err(sql_error)?
    .execute(params![
        job.zoom_account_id,
        job.meeting_uuid,
        job.sealed_download_url.as_ref().map(|s| s.0.clone()),
        job.sealed_download_token.as_ref().map(|s| s.0.clone()),
        job.sealed_recording.as_ref().map(|s| s.0.clone()),
        job.event_time.0,
    ])
    .map_err(sql_error)?;
    let existing = conn
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE zoom_account_id = ?1 AND meeting_uuid = ?2"
        ))
        .map_err(sql_error)?
        .query_row(params![job.zoom_account_id, job.meeting_uuid], job_from_row)
        .map_err(sql_error)?;
    Ok((existing, false))
}

pub(super) fn requeue_job(conn: &Connection, requeue: &JobRequeue) -> StoreResult<Job> {
    let (job_id, now) = (requeue.job_id.as_str(), requeue.now);
    let job = get_job(conn, &requeue.institution_id, job_id)?;
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
    conn.execute(
        "UPDATE jobs SET state = 'queued', skip_reason = NULL, message = ?12, owner_user_id = ?2,
            file_id = COALESCE(?3, file_id), recording_type = COALESCE(?4, recording_type),
            file_type = COALESCE(?5, file_type), file_extension = COALESCE(?6, file_extension),
            file_size = COALESCE(?7, file_size), recording_start_ms = COALESCE(?8, recording_start_ms),
            recording_end_ms = COALESCE(?9, recording_end_ms), total_bytes = COALESCE(?7, total_bytes),
            download_url_sealed = COALESCE(?10, download_url_sealed),
            bytes_transferred = 0, detected_mid_stream = 0, finished_ms = NULL, lease_owner = NULL,
            lease_expires_ms = NULL, updated_ms = ?11
         WHERE job_id = ?1",
        params![
            job_id,
            requeue.owner_user_id,
            file.map(|f| f.file_id.clone()),
            file.map(|f| f.recording_type.clone()),
            file.map(|f| f.file_type.clone()),
            file.map(|f| f.file_extension.clone()),
            file.map(|f| f.file_size as i64),
            file.map(|f| f.recording_start.0),
            file.map(|f| f.recording_end.0),
            requeue.sealed_download_url.as_ref().map(|s| s.0.clone()),
            now.0,
            requeue.message,
        ],
    )
    .map_err(sql_error)?;
    get_job(conn, &requeue.institution_id, job_id)
}

pub(super) fn cancel_job(
    conn: &Connection,
    institution_id: &str,
    job_id: &str,
    now: Timestamp,
) -> StoreResult<Job> {
    let job = get_job(conn, institution_id, job_id)?;
    if job.state.is_final() {
        return Err(StoreError::FailedPrecondition(format!(
            "job {job_id} is {}; only queued or transferring jobs can be cancelled",
            job.state.as_str()
        )));
    }
    conn.execute(
        "UPDATE jobs SET state = 'cancelled', message = 'cancelled by an admin', lease_owner = NULL,
            lease_expires_ms = NULL, finished_ms = ?2, updated_ms = ?2 WHERE job_id = ?1",
        params![job_id, now.0],
    )
    .map_err(sql_error)?;
    get_job(conn, institution_id, job_id)
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

pub(super) fn claim_job(
    conn: &Connection,
    worker_id: &str,
    lease: Duration,
    now: Timestamp,
) -> StoreResult<Option<Lease>> {
    let candidate = super::job_list::claim_candidate(conn, now)?;
    let Some(job_id) = candidate else {
        return Ok(None);
    };
    let expires_at = now.saturating_add_millis(millis(lease));
    conn.execute(
        "UPDATE jobs SET state = 'transferring', lease_owner = ?2, lease_expires_ms = ?3, updated_ms = ?4
         WHERE job_id = ?1",
        params![job_id, worker_id, expires_at.0, now.0],
    )
    .map_err(sql_error)?;
    let job = find_job(conn, &job_id)?.ok_or_else(|| job_not_found(&job_id))?;
    Ok(Some(Lease {
        job,
        worker_id: worker_id.to_string(),
        expires_at,
    }))
}

pub(super) fn renew_lease(
    conn: &Connection,
    job_id: &str,
    worker_id: &str,
    lease: Duration,
    now: Timestamp,
) -> StoreResult<bool> {
    let changed = conn
        .execute(
            "UPDATE jobs SET lease_expires_ms = ?3
             WHERE job_id = ?1 AND lease_owner = ?2 AND state = 'transferring'",
            params![
                job_id,
                worker_id,
                now.saturating_add_millis(millis(lease)).0
            ],
        )
        .map_err(sql_error)?;
    Ok(changed == 1)
}

pub(super) fn complete_job(
    conn: &Connection,
    job_id: &str,
    worker_id: &str,
    media: &NewMedia,
    now: Timestamp,
) -> StoreResult<(Job, Media)> {
    let job = find_job(conn, job_id)?.ok_or_else(|| job_not_found(job_id))?;
    let held: Option<String> = conn
        .query_row(
            "SELECT lease_owner FROM jobs WHERE job_id = ?1 AND state = 'transferring'",
            params![job_id],
            |row| row.get(0),
        )
        .optional()
        .map_err(sql_error)?
        .flatten();
    if held.as_deref() != Some(worker_id) {
        return Err(StoreError::FailedPrecondition(format!(
            "job {job_id} is no longer held by worker {worker_id}"
        )));
    }
    let owner_user_id = job
        .owner_user_id
        .clone()
        .ok_or_else(|| StoreError::FailedPrecondition(format!("job {job_id} has no owner")))?;
    let mut created = Media {
        media_id: new_id("med"),
        institution_id: job.institution_id.clone(),
        owner_user_id,
        title: job.topic.clone(),
        duration_ms: media.duration_ms,
        size_bytes: media.size_bytes,
        checksum: media.checksum.clone(),
        object_key: media.object_key.clone(),
        meeting_id: job.meeting_id,
        meeting_uuid: job.meeting_uuid.clone(),
        recorded_at: job
            .recording_file
            .as_ref()
            .map(|f| f.recording_start)
            .or(job.meeting_start),
        job_id: job_id.to_string(),
        created_at: now,
        content_type: media.content_type.clone(),
        section_ids: Vec::new(),
    };
    conn.execute(
        "INSERT INTO media (media_id, institution_id, owner_user_id, title, duration_ms, size_bytes, checksum,
            object_key, meeting_id, meeting_uuid, recorded_ms, job_id, created_ms, content_type)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            created.media_id,
            created.institution_id,
            created.owner_user_id,
            created.title,
            created.duration_ms as i64,
            created.size_bytes as i64,
            created.checksum,
            created.object_key,
            created.meeting_id as i64,
            created.meeting_uuid,
            created.recorded_at.map(|t| t.0),
            created.job_id,
            created.created_at.0,
            created.content_type
        ],
    )
    .map_err(sql_error)?;
    conn.execute(
        "UPDATE jobs SET state = 'completed', media_id = ?2, bytes_transferred = ?3, total_bytes = ?3,
            lease_owner = NULL, lease_expires_ms = NULL, finished_ms = ?4, updated_ms = ?4,
            download_url_sealed = NULL, download_token_sealed = NULL, recording_sealed = NULL,
            message = CASE WHEN ?5 = '' THEN message ELSE ?5 END
         WHERE job_id = ?1",
        params![job_id, created.media_id, created.size_bytes as i64, now.0, media.job_note],
    )
    .map_err(sql_error)?;
    created.section_ids = super::sections::share_on_completion(conn, &job, &created.media_id, now)?;
    if media.after_copy == AfterCopy::Trash {
        conn.execute(
            "UPDATE jobs SET zoom_trash_state = 'pending', zoom_trash_message = ?2,
                zoom_trash_attempts = 0, zoom_trash_next_ms = ?3
             WHERE job_id = ?1",
            params![job_id, ZoomTrash::QUEUED_MESSAGE, now.0],
        )
        .map_err(sql_error)?;
    }
    super::transfers::drop_upload(conn, job_id)?;
    let job = find_job(conn, job_id)?.ok_or_else(|| job_not_found(job_id))?;
    Ok((job, created))
}

pub(super) fn finish_job(
    conn: &Connection,
    job_id: &str,
    worker_id: &str,
    outcome: &JobOutcome,
    now: Timestamp,
) -> StoreResult<()> {
    require_lease(conn, job_id, worker_id)?;
    match outcome {
        JobOutcome::Failed { message } => conn.execute(
            "UPDATE jobs SET state = 'failed', message = ?2, lease_owner = NULL, lease_expires_ms = NULL,
                finished_ms = ?3, updated_ms = ?3 WHERE job_id = ?1",
            params![job_id, message, now.0],
        ),
        JobOutcome::Skipped { reason, message } => conn.execute(
            "UPDATE jobs SET state = 'skipped', skip_reason = ?2, message = ?3, detected_mid_stream = 1,
                lease_owner = NULL, lease_expires_ms = NULL, finished_ms = ?4, updated_ms = ?4 WHERE job_id = ?1",
            params![job_id, reason.as_str(), message, now.0],
        ),
        JobOutcome::Released => conn.execute(
            "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_expires_ms = NULL, updated_ms = ?2
             WHERE job_id = ?1",
            params![job_id, now.0],
        ),
    }
    .map_err(sql_error)?;
    Ok(())
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn upsert_job(&self, job: NewJob) -> StoreResult<(Job, bool)> {
        let (job, created) = self.engine.write(move |c| upsert_job(c, &job)).await?;
        if created {
            self.publish(&job, false);
        }
        Ok((job, created))
    }

    async fn get_job(&self, institution_id: &str, job_id: &str) -> StoreResult<Job> {
        self.engine
            .read_point(|c| get_job(c, institution_id, job_id))
    }

    async fn get_job_secrets(&self, institution_id: &str, job_id: &str) -> StoreResult<JobSecrets> {
        self.engine
            .read_point(|c| get_job_secrets(c, institution_id, job_id))
    }

    async fn list_jobs(
        &self,
        institution_id: &str,
        filter: &JobFilter,
        page: &PageQuery,
    ) -> StoreResult<Page<Job>> {
        let (institution_id, filter, page) =
            (institution_id.to_string(), filter.clone(), page.clone());
        self.engine
            .read(move |c| super::job_list::list_jobs(c, &institution_id, &filter, &page))
            .await
    }

    async fn job_counts(&self) -> StoreResult<JobCounts> {
        // Six rows and one index entry: a point read.
        self.engine.read_point(super::job_list::job_counts)
    }

    async fn requeue_job(&self, requeue: JobRequeue) -> StoreResult<Job> {
        let job = self.engine.write(move |c| requeue_job(c, &requeue)).await?;
        self.publish(&job, false);
        Ok(job)
    }

    async fn cancel_job(
        &self,
        institution_id: &str,
        job_id: &str,
        now: Timestamp,
    ) -> StoreResult<Job> {
        let (institution_id, job_id) = (institution_id.to_string(), job_id.to_string());
        let job = self
            .engine
            .write(move |c| cancel_job(c, &institution_id, &job_id, now))
            .await?;
        self.publish(&job, false);
        Ok(job)
    }

    async fn claim_job(
        &self,
        worker_id: &str,
        lease: Duration,
        now: Timestamp,
    ) -> StoreResult<Option<Lease>> {
        let worker_id = worker_id.to_string();
        let claimed = self
            .engine
            .write(move |c| claim_job(c, &worker_id, lease, now))
            .await?;
        if let Some(lease) = &claimed {
            self.publish(&lease.job, false);
        }
        Ok(claimed)
    }

    async fn renew_lease(
        &self,
        holder: LeaseHolder<'_>,
        lease: Duration,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let (job_id, worker_id) = (holder.job_id.to_string(), holder.worker_id.to_string());
        self.engine
            .write(move |c| renew_lease(c, &job_id, &worker_id, lease, now))
            .await
    }

    async fn complete_job(
        &self,
        holder: LeaseHolder<'_>,
        media: NewMedia,
        now: Timestamp,
    ) -> StoreResult<(Job, Media)> {
        let (job_id, worker_id) = (holder.job_id.to_string(), holder.worker_id.to_string());
        let (job, media) = self
            .engine
            .write(move |c| complete_job(c, &job_id, &worker_id, &media, now))
            .await?;
        self.publish(&job, false);
        Ok((job, media))
    }

    async fn finish_job(
        &self,
        holder: LeaseHolder<'_>,
        outcome: JobOutcome,
        now: Timestamp,
    ) -> StoreResult<Job> {
        let (job_id, worker_id) = (holder.job_id.to_string(), holder.worker_id.to_string());
        let job = self
            .engine
            .write(move |c| {
                finish_job(c, &job_id, &worker_id, &outcome, now)?;
                find_job_by_id(c, &job_id)
            })
            .await?;
        self.publish(&job, false);
        Ok(job)
    }

    async fn sweep_retention(&self, sweep: RetentionSweep) -> StoreResult<RetentionSwept> {
        self.engine
            .write(move |c| super::retention::sweep(c, &sweep))
            .await
    }

    fn publish_progress(&self, job: Job) {
        let _ = self.job_events.send(JobEvent {
            job,
            progress_only: true,
        });
    }

    fn subscribe_job_events(&self) -> broadcast::Receiver<JobEvent> {
        self.job_events.subscribe()
    }
}
