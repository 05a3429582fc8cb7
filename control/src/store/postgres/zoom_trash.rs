//! The PostgreSQL backend of `ZoomTrashStore`: completed jobs whose
//! meeting's recordings are still to be moved to Zoom's trash, read by the
//! partial index `jobs_zoom_trash_due`, and the result of each call. The
//! trash duty runs on one replica at a time; the conditional update keeps
//! a call's result from being recorded over one another replica recorded.

use async_trait::async_trait;

use super::jobs::{JOB_COLUMNS, find_job, job_from_row};
use super::{PostgresStore, pg_error};
use crate::model::*;
use crate::store::{StoreResult, ZoomTrashStore};

#[async_trait]
impl ZoomTrashStore for PostgresStore {
    async fn due_zoom_trash(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<Job>> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {JOB_COLUMNS} FROM jobs
                     WHERE zoom_trash_state = 'pending' AND zoom_trash_next_ms <= $1
                     ORDER BY zoom_trash_next_ms, job_id LIMIT $2"
                ),
                &[&now.0, &i64::from(limit)],
            )
            .await
            .map_err(pg_error)?;
        rows.iter().map(job_from_row).collect()
    }

    async fn record_zoom_trash(&self, update: ZoomTrashUpdate) -> StoreResult<Job> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let changed = tx
            .execute(
                "UPDATE jobs SET zoom_trash_state = $2, zoom_trash_message = $3,
                    zoom_trash_attempts = zoom_trash_attempts + 1, zoom_trash_next_ms = $4,
                    updated_ms = $5
                 WHERE job_id = $1 AND zoom_trash_state = 'pending'",
                &[
                    &update.job_id,
                    &update.state.as_str(),
                    &update.message,
                    &update.next_attempt_at.map(|t| t.0),
                    &update.now.0,
                ],
            )
            .await
            .map_err(pg_error)?;
        let job = find_job(&tx, &update.job_id, false).await?;
        if changed == 1 {
            self.commit_job_change(tx, &job).await?;
        } else {
            tx.commit().await.map_err(pg_error)?;
        }
        Ok(job)
    }
}
