//! The SQLite backend's retention sweep: erases the sealed download details
//! of jobs that no longer need them and deletes expired final jobs, a
//! bounded batch at a time, each batch read from a partial index in order
//! of finish time (so a sweep never scans the jobs table).

use rusqlite::{Connection, params};

use super::engine::sql_error;
use crate::store::{RetentionSweep, RetentionSwept, StoreResult};

pub(super) fn sweep(conn: &Connection, sweep: &RetentionSweep) -> StoreResult<RetentionSwept> {
    let limit = i64::from(sweep.max_jobs.max(1));
    // The conditions repeat the partial index's WHERE, which is what lets
    // SQLite (and `INDEXED BY`) use it. The erased recording is an empty
    // blob, not NULL: the mark `RetryJob` reads (see `RetentionSweep`).
    let secrets_erased = conn
        .prepare_cached(
            "UPDATE jobs SET download_url_sealed = NULL, download_token_sealed = NULL,
                recording_sealed = X''
             WHERE job_id IN (
                SELECT job_id FROM jobs INDEXED BY jobs_holding_secrets
                WHERE state IN ('completed', 'skipped', 'failed', 'cancelled')
                  AND (download_url_sealed IS NOT NULL OR download_token_sealed IS NOT NULL
                       OR length(recording_sealed) > 0)
                  AND (state = 'completed' OR finished_ms < ?1)
                ORDER BY finished_ms LIMIT ?2)",
        )
        .map_err(sql_error)?
        .execute(params![sweep.erase_secrets_finished_before.0, limit])
        .map_err(sql_error)? as u64;
    let Some(delete_before) = sweep.delete_jobs_finished_before else {
        return Ok(RetentionSwept {
            secrets_erased,
            jobs_deleted: 0,
        });
    };
    let expired: Vec<String> = conn
        .prepare_cached(
            "SELECT job_id FROM jobs INDEXED BY jobs_expirable
             WHERE state IN ('skipped', 'failed', 'cancelled') AND finished_ms < ?1
               AND NOT EXISTS (SELECT 1 FROM transfer_uploads u WHERE u.job_id = jobs.job_id)
               AND NOT EXISTS (SELECT 1 FROM media m WHERE m.job_id = jobs.job_id)
             ORDER BY finished_ms LIMIT ?2",
        )
        .map_err(sql_error)?
        .query_map(params![delete_before.0, limit], |row| row.get(0))
        .map_err(sql_error)?
        .collect::<rusqlite::Result<_>>()
        .map_err(sql_error)?;
    let mut delete_attempts = conn
        .prepare_cached("DELETE FROM job_attempts WHERE job_id = ?1")
        .map_err(sql_error)?;
    let mut delete_companions = conn
        .prepare_cached("DELETE FROM job_companions WHERE job_id = ?1")
        .map_err(sql_error)?;
    let mut delete_job = conn
        .prepare_cached("DELETE FROM jobs WHERE job_id = ?1")
        .map_err(sql_error)?;
    for job_id in &expired {
        delete_attempts.execute([job_id]).map_err(sql_error)?;
        delete_companions.execute([job_id]).map_err(sql_error)?;
        delete_job.execute([job_id]).map_err(sql_error)?;
    }
    Ok(RetentionSwept {
        secrets_erased,
        jobs_deleted: expired.len() as u64,
    })
}
