//! The PostgreSQL backend's retention sweep: erases the sealed download
//! details of jobs that no longer need them and deletes expired final jobs,
//! a bounded batch at a time, each batch read from a partial index in order
//! of finish time, in one transaction (`SKIP LOCKED`, so replicas sweeping
//! together share the work instead of waiting on each other).

use deadpool_postgres::GenericClient;

use super::pg_error;
use crate::store::{RetentionSweep, RetentionSwept, StoreResult};

pub(super) async fn sweep(
    c: &impl GenericClient,
    sweep: &RetentionSweep,
) -> StoreResult<RetentionSwept> {
    let limit = i64::from(sweep.max_jobs.max(1));
    let secrets_erased = c
        .execute(
            "UPDATE jobs SET download_url_sealed = NULL, download_token_sealed = NULL,
                recording_sealed = ''::bytea
             WHERE job_id IN (
                SELECT job_id FROM jobs
                WHERE state IN ('completed', 'skipped', 'failed', 'cancelled')
                  AND (download_url_sealed IS NOT NULL OR download_token_sealed IS NOT NULL
                       OR length(recording_sealed) > 0)
                  AND (state = 'completed' OR finished_ms < $1)
                ORDER BY finished_ms LIMIT $2
                FOR UPDATE SKIP LOCKED)",
            &[&sweep.erase_secrets_finished_before.0, &limit],
        )
        .await
        .map_err(pg_error)?;
    let Some(delete_before) = sweep.delete_jobs_finished_before else {
        return Ok(RetentionSwept {
            secrets_erased,
            jobs_deleted: 0,
        });
    };
    let expired: Vec<String> = c
        .query(
            "SELECT job_id FROM jobs
             WHERE state IN ('skipped', 'failed', 'cancelled') AND finished_ms < $1
               AND NOT EXISTS (SELECT 1 FROM transfer_uploads u WHERE u.job_id = jobs.job_id)
               AND NOT EXISTS (SELECT 1 FROM media m WHERE m.job_id = jobs.job_id)
             ORDER BY finished_ms LIMIT $2
             FOR UPDATE SKIP LOCKED",
            &[&delete_before.0, &limit],
        )
        .await
        .map_err(pg_error)?
        .iter()
        .map(|row| row.get(0))
        .collect();
    c.execute(
        "DELETE FROM job_attempts WHERE job_id = ANY($1)",
        &[&expired],
    )
    .await
    .map_err(pg_error)?;
    c.execute(
        "DELETE FROM job_companions WHERE job_id = ANY($1)",
        &[&expired],
    )
    .await
    .map_err(pg_error)?;
    let jobs_deleted = c
        .execute("DELETE FROM jobs WHERE job_id = ANY($1)", &[&expired])
        .await
        .map_err(pg_error)?;
    Ok(RetentionSwept {
        secrets_erased,
        jobs_deleted,
    })
}
