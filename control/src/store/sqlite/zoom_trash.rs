//! The SQLite backend of `ZoomTrashStore`: completed jobs whose meeting's
//! recordings are still to be moved to Zoom's trash, read by the partial
//! index `jobs_zoom_trash_due`, and the result of each call.

use async_trait::async_trait;
use rusqlite::{Connection, params};

use super::SqliteStore;
use super::engine::sql_error;
use super::jobs::{JOB_COLUMNS, find_job_by_id, job_from_row};
use crate::model::*;
use crate::store::{StoreResult, ZoomTrashStore};

fn due_zoom_trash(conn: &Connection, now: Timestamp, limit: u32) -> StoreResult<Vec<Job>> {
    conn.prepare_cached(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs
         WHERE zoom_trash_state = 'pending' AND zoom_trash_next_ms <= ?1
         ORDER BY zoom_trash_next_ms, job_id LIMIT ?2"
    ))
    .map_err(sql_error)?
    .query_map(params![now.0, limit], job_from_row)
    .map_err(sql_error)?
    .collect::<rusqlite::Result<Vec<_>>>()
    .map_err(sql_error)
}

/// Whether the update changed the job (it was pending).
fn record_zoom_trash(conn: &Connection, update: &ZoomTrashUpdate) -> StoreResult<bool> {
    let changed = conn
        .execute(
            "UPDATE jobs SET zoom_trash_state = ?2, zoom_trash_message = ?3,
                zoom_trash_attempts = zoom_trash_attempts + 1, zoom_trash_next_ms = ?4, updated_ms = ?5
             WHERE job_id = ?1 AND zoom_trash_state = 'pending'",
            params![
                update.job_id,
                update.state.as_str(),
                update.message,
                update.next_attempt_at.map(|t| t.0),
                update.now.0
            ],
        )
        .map_err(sql_error)?;
    Ok(changed == 1)
}

#[async_trait]
impl ZoomTrashStore for SqliteStore {
    async fn due_zoom_trash(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<Job>> {
        self.engine
            .read(move |c| due_zoom_trash(c, now, limit))
            .await
    }

    async fn record_zoom_trash(&self, update: ZoomTrashUpdate) -> StoreResult<Job> {
        let (job, changed) = self
            .engine
            .write(move |c| {
                let changed = record_zoom_trash(c, &update)?;
                Ok((find_job_by_id(c, &update.job_id)?, changed))
            })
            .await?;
        if changed {
            self.publish(&job, false);
        }
        Ok(job)
    }
}
