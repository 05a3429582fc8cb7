//! Leases of the PostgreSQL backend: claims, renewals, and the writes of a
//! lease holder, each fenced by the lease.
//!
//! A claim locks its candidate `FOR UPDATE SKIP LOCKED`, so replicas claiming
//! at once take different jobs and never wait on each other. A lease is
//! taken over once the database's clock (`now()`) has passed
//! `lease_expires_db`, or once the caller's `now` has passed
//! `lease_expires_ms` when the lease was written through this same store
//! (`lease_clock`): the caller's clock only ever judges its own leases, so
//! skew between replicas cannot steal a live lease, while a single store
//! (and the conformance suite, which drives time through `now`) keeps the
//! exact caller-clock semantics of the SQLite backend. A fenced write locks
//! the job's row and checks its holder first, so it cannot interleave with a
//! claim that takes the lease away.

use std::time::Duration;

use deadpool_postgres::GenericClient;

use super::jobs::{find_job, job_not_found};
use super::pg_error;
use crate::error::StoreError;
use crate::model::*;
use crate::store::{Lease, LeaseHolder, StoreResult, new_id};

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// FailedPrecondition unless `worker_id` holds the job's lease; the job's
/// row stays locked until the transaction ends.
pub(super) async fn require_lease(
    c: &impl GenericClient,
    job_id: &str,
    worker_id: &str,
) -> StoreResult<()> {
    let holder: Option<String> = c
        .query_opt(
            "SELECT lease_owner FROM jobs WHERE job_id = $1 AND state = 'transferring' FOR UPDATE",
            &[&job_id],
        )
        .await
        .map_err(pg_error)?
        .map(|row| super::get::<Option<String>>(&row, 0))
        .transpose()?
        .flatten();
    if holder.as_deref() == Some(worker_id) {
        Ok(())
    } else {
        Err(StoreError::FailedPrecondition(format!(
            "job {job_id} is no longer held by worker {worker_id}"
        )))
    }
}

pub(super) const CLAIM_QUEUED: &str = "SELECT job_id FROM jobs WHERE state = 'queued'
    ORDER BY job_id LIMIT 1 FOR UPDATE SKIP LOCKED";

/// `$1` the store's clock id, `$2` the caller's now (see the module docs).
pub(super) const CLAIM_EXPIRED: &str = "SELECT job_id FROM jobs
    WHERE state = 'transferring'
      AND (lease_expires_db < now() OR (lease_clock = $1 AND lease_expires_ms < $2))
    ORDER BY job_id LIMIT 1 FOR UPDATE SKIP LOCKED";

/// The oldest claimable job, locked: the first QUEUED one in id order, or
/// the first TRANSFERRING one whose lease has expired, whichever has the
/// lower id. Two index seeks (`jobs_queued_by_id`, a partial index of the
/// queued jobs, each of its entries a candidate, and `jobs_by_state`, where
/// transferring jobs are as few as the workers), where one
/// `state = 'queued' OR ...` query walks the primary key until a match, the
/// whole table when nothing is queued. The candidate not taken stays locked
/// until the claim commits.
async fn claim_candidate(
    c: &impl GenericClient,
    clock_id: &str,
    now: Timestamp,
) -> StoreResult<Option<String>> {
    let expired_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&clock_id, &now.0];
    let queued = c.query_opt(CLAIM_QUEUED, &[]);
    let expired = c.query_opt(CLAIM_EXPIRED, &expired_params);
    let (queued, expired) = futures::join!(queued, expired);
    let id =
        |row: Option<tokio_postgres::Row>| row.map(|row| super::get::<String>(&row, 0)).transpose();
    let queued = id(queued.map_err(pg_error)?)?;
    let expired = id(expired.map_err(pg_error)?)?;
    Ok(match (queued, expired) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

pub(super) async fn claim_job(
    c: &impl GenericClient,
    clock_id: &str,
    worker_id: &str,
    lease: Duration,
    now: Timestamp,
) -> StoreResult<Option<Lease>> {
    let candidate = claim_candidate(c, clock_id, now).await?;
    let Some(job_id) = candidate else {
        return Ok(None);
    };
    let lease_ms = millis(lease);
    let expires_at = now.saturating_add_millis(lease_ms);
    c.execute(
        "UPDATE jobs SET state = 'transferring', lease_owner = $2, lease_expires_ms = $3,
            lease_clock = $4, lease_expires_db = now() + $5 * interval '1 millisecond', updated_ms = $6
         WHERE job_id = $1",
        &[
            &job_id,
            &worker_id,
            &expires_at.0,
            &clock_id,
            &(lease_ms as f64),
            &now.0,
        ],
    )
    .await
    .map_err(pg_error)?;
    let job = find_job(c, &job_id, false).await?;
    Ok(Some(Lease {
        job,
        worker_id: worker_id.to_string(),
        expires_at,
    }))
}

pub(super) async fn renew_lease(
    c: &impl GenericClient,
    clock_id: &str,
    holder: LeaseHolder<'_>,
    lease: Duration,
    now: Timestamp,
) -> StoreResult<bool> {
    let lease_ms = millis(lease);
    let changed = c
        .execute(
            "UPDATE jobs SET lease_expires_ms = $3, lease_clock = $4,
                lease_expires_db = now() + $5 * interval '1 millisecond'
             WHERE job_id = $1 AND lease_owner = $2 AND state = 'transferring'",
            &[
                &holder.job_id,
                &holder.worker_id,
                &now.saturating_add_millis(lease_ms).0,
                &clock_id,
                &(lease_ms as f64),
            ],
        )
        .await
        .map_err(pg_error)?;
    Ok(changed == 1)
}

pub(super) async fn complete_job(
    c: &impl GenericClient,
    holder: LeaseHolder<'_>,
    media: &NewMedia,
    now: Timestamp,
) -> StoreResult<(Job, Media)> {
    let job_id = holder.job_id;
    require_lease(c, job_id, holder.worker_id).await?;
    let job = find_job(c, job_id, false).await?;
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
    c.execute(
        "INSERT INTO media (media_id, institution_id, owner_user_id, title, duration_ms, size_bytes, checksum,
            object_key, meeting_id, meeting_uuid, recorded_ms, job_id, created_ms, content_type)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        &[
            &created.media_id,
            &created.institution_id,
            &created.owner_user_id,
            &created.title,
            &(created.duration_ms as i64),
            &(created.size_bytes as i64),
            &created.checksum,
            &created.object_key,
            &(created.meeting_id as i64),
            &created.meeting_uuid,
            &created.recorded_at.map(|t| t.0),
            &created.job_id,
            &created.created_at.0,
            &created.content_type,
        ],
    )
    .await
    .map_err(pg_error)?;
    c.execute(
        "UPDATE jobs SET state = 'completed', media_id = $2, bytes_transferred = $3, total_bytes = $3,
            lease_owner = NULL, lease_expires_ms = NULL, lease_clock = NULL, lease_expires_db = NULL,
            finished_ms = $4, updated_ms = $4,
            message = CASE WHEN $5 = '' THEN message ELSE $5 END,
            download_url_sealed = NULL, download_token_sealed = NULL, recording_sealed = NULL
         WHERE job_id = $1",
        &[
            &job_id,
            &created.media_id,
            &(created.size_bytes as i64),
            &now.0,
            &media.job_note,
        ],
    )
    .await
    .map_err(pg_error)?;
    created.section_ids =
        super::sections::share_on_completion(c, &job, &created.media_id, now).await?;
    if media.after_copy == AfterCopy::Trash {
        c.execute(
            "UPDATE jobs SET zoom_trash_state = 'pending', zoom_trash_message = $2,
                zoom_trash_attempts = 0, zoom_trash_next_ms = $3
             WHERE job_id = $1",
            &[&job_id, &ZoomTrash::QUEUED_MESSAGE, &now.0],
        )
        .await
        .map_err(pg_error)?;
    }
    super::transfers::drop_upload(c, job_id).await?;
    let job = find_job(c, job_id, false)
        .await
        .map_err(|_| job_not_found(job_id))?;
    Ok((job, created))
}

pub(super) async fn finish_job(
    c: &impl GenericClient,
    holder: LeaseHolder<'_>,
    outcome: &JobOutcome,
    now: Timestamp,
) -> StoreResult<Job> {
    let job_id = holder.job_id;
    require_lease(c, job_id, holder.worker_id).await?;
    const NO_LEASE: &str =
        "lease_owner = NULL, lease_expires_ms = NULL, lease_clock = NULL, lease_expires_db = NULL";
    match outcome {
        JobOutcome::Failed { message } => {
            c.execute(
                &format!(
                    "UPDATE jobs SET state = 'failed', message = $2, {NO_LEASE},
                        finished_ms = $3, updated_ms = $3 WHERE job_id = $1"
                ),
                &[&job_id, message, &now.0],
            )
            .await
        }
        JobOutcome::Skipped { reason, message } => {
            c.execute(
                &format!(
                    "UPDATE jobs SET state = 'skipped', skip_reason = $2, message = $3,
                        detected_mid_stream = TRUE, {NO_LEASE}, finished_ms = $4, updated_ms = $4
                     WHERE job_id = $1"
                ),
                &[&job_id, &reason.as_str(), message, &now.0],
            )
            .await
        }
        JobOutcome::Released => {
            c.execute(
                &format!(
                    "UPDATE jobs SET state = 'queued', {NO_LEASE}, updated_ms = $2 WHERE job_id = $1"
                ),
                &[&job_id, &now.0],
            )
            .await
        }
    }
    .map_err(pg_error)?;
    find_job(c, job_id, false).await
}
