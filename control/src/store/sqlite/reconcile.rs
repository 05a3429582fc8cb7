//! The SQLite backend of `ReconcileStore`: the accounts the reconciler may
//! list, a meeting's job by its business key, the reconciler's cursor per
//! account, backfills, and failing the job of a recording Zoom deleted.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::accounts::{ACCOUNT_COLUMNS, account_from_row};
use super::engine::sql_error;
use super::jobs::{JOB_COLUMNS, job_from_row};
use super::{SqliteStore, page_of};
use crate::error::StoreError;
use crate::model::*;
use crate::store::{Page, PageQuery, ReconcileStore, StoreResult, new_id};

const BACKFILL_COLUMNS: &str = "backfill_id, institution_id, zoom_account_id, state, message, meetings_seen,
    jobs_created, duplicates, not_ready, skipped, from_day, to_day, chunk_from_day, next_page_token, created_ms,
    updated_ms, finished_ms";

fn bad(column: usize, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, message.into())
}

fn day(row: &Row<'_>, column: usize) -> rusqlite::Result<Day> {
    let text: String = row.get(column)?;
    Day::parse(&text).ok_or_else(|| bad(column, format!("not a day: {text}")))
}

fn count(row: &Row<'_>, column: usize) -> rusqlite::Result<u64> {
    Ok(row.get::<_, i64>(column)?.max(0) as u64)
}

fn backfill_from_row(row: &Row<'_>) -> rusqlite::Result<Backfill> {
    let state: String = row.get(3)?;
    let skipped: String = row.get(9)?;
    Ok(Backfill {
        backfill_id: row.get(0)?,
        institution_id: row.get(1)?,
        zoom_account_id: row.get(2)?,
        state: BackfillState::parse(&state)
            .ok_or_else(|| bad(3, format!("unknown backfill state {state}")))?,
        message: row.get(4)?,
        counts: BackfillCounts {
            meetings_seen: count(row, 5)?,
            jobs_created: count(row, 6)?,
            duplicates: count(row, 7)?,
            not_ready: count(row, 8)?,
            skipped: BackfillCounts::parse_skipped(&skipped),
        },
        cursor: ListingCursor {
            from: day(row, 10)?,
            to: day(row, 11)?,
            chunk_from: day(row, 12)?,
            next_page_token: row.get(13)?,
        },
        created_at: Timestamp(row.get(14)?),
        updated_at: Timestamp(row.get(15)?),
        finished_at: row.get::<_, Option<i64>>(16)?.map(Timestamp),
    })
}

fn find_backfill(conn: &Connection, backfill_id: &str) -> StoreResult<Option<Backfill>> {
    conn.prepare_cached(&format!(
        "SELECT {BACKFILL_COLUMNS} FROM backfills WHERE backfill_id = ?1"
    ))
    .map_err(sql_error)?
    .query_row(params![backfill_id], backfill_from_row)
    .optional()
    .map_err(sql_error)
}

fn backfill_in(
    conn: &Connection,
    institution_id: &str,
    backfill_id: &str,
) -> StoreResult<Backfill> {
    find_backfill(conn, backfill_id)?
        .filter(|b| b.institution_id == institution_id)
        .ok_or_else(|| StoreError::not_found(format!("backfill {backfill_id}")))
}

fn job_for_meeting(
    conn: &Connection,
    zoom_account_id: &str,
    meeting_uuid: &str,
) -> StoreResult<Option<Job>> {
    conn.prepare_cached(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE zoom_account_id = ?1 AND meeting_uuid = ?2"
    ))
    .map_err(sql_error)?
    .query_row(params![zoom_account_id, meeting_uuid], job_from_row)
    .optional()
    .map_err(sql_error)
}

fn fail_gone_recording(conn: &Connection, gone: &RecordingGone) -> StoreResult<Option<Job>> {
    let failed = conn
        .prepare_cached(
            "UPDATE jobs SET state = 'failed', message = ?3, lease_owner = NULL, lease_expires_ms = NULL,
                finished_ms = ?4, updated_ms = ?4
             WHERE zoom_account_id = ?1 AND meeting_uuid = ?2 AND state IN ('queued', 'transferring')",
        )
        .map_err(sql_error)?
        .execute(params![
            gone.zoom_account_id,
            gone.meeting_uuid,
            gone.message,
            gone.now.0
        ])
        .map_err(sql_error)?;
    if failed == 0 {
        return Ok(None);
    }
    job_for_meeting(conn, &gone.zoom_account_id, &gone.meeting_uuid)
}

fn save_cursor(conn: &Connection, cursor: &ReconcileCursor) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO reconcile_cursors (zoom_account_id, from_day, to_day, chunk_from_day, next_page_token,
            pass_started_ms, finished_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (zoom_account_id) DO UPDATE SET from_day = excluded.from_day, to_day = excluded.to_day,
            chunk_from_day = excluded.chunk_from_day, next_page_token = excluded.next_page_token,
            pass_started_ms = excluded.pass_started_ms, finished_ms = excluded.finished_ms",
    )
    .map_err(sql_error)?
    .execute(params![
        cursor.zoom_account_id,
        cursor.cursor.from.to_string(),
        cursor.cursor.to.to_string(),
        cursor.cursor.chunk_from.to_string(),
        cursor.cursor.next_page_token,
        cursor.pass_started.0,
        cursor.finished_at.map(|t| t.0),
    ])
    .map_err(sql_error)?;
    Ok(())
}

fn load_cursor(conn: &Connection, zoom_account_id: &str) -> StoreResult<Option<ReconcileCursor>> {
    conn.prepare_cached(
        "SELECT zoom_account_id, from_day, to_day, chunk_from_day, next_page_token, pass_started_ms, finished_ms
         FROM reconcile_cursors WHERE zoom_account_id = ?1",
    )
    .map_err(sql_error)?
    .query_row(params![zoom_account_id], |row| {
        Ok(ReconcileCursor {
            zoom_account_id: row.get(0)?,
            cursor: ListingCursor {
                from: day(row, 1)?,
                to: day(row, 2)?,
                chunk_from: day(row, 3)?,
                next_page_token: row.get(4)?,
            },
            pass_started: Timestamp(row.get(5)?),
            finished_at: row.get::<_, Option<i64>>(6)?.map(Timestamp),
        })
    })
    .optional()
    .map_err(sql_error)
}

fn create_backfill(conn: &Connection, new: &NewBackfill) -> StoreResult<Backfill> {
    let backfill_id = new_id("bf");
    let from = new.from.to_string();
    conn.prepare_cached(
        "INSERT INTO backfills (backfill_id, institution_id, zoom_account_id, state, message, meetings_seen,
            jobs_created, duplicates, not_ready, skipped, from_day, to_day, chunk_from_day, next_page_token,
            created_ms, updated_ms)
         VALUES (?1, ?2, ?3, 'running', '', 0, 0, 0, 0, '', ?4, ?5, ?4, '', ?6, ?6)",
    )
    .map_err(sql_error)?
    .execute(params![
        backfill_id,
        new.institution_id,
        new.zoom_account_id,
        from,
        new.to.to_string(),
        new.now.0
    ])
    .map_err(sql_error)?;
    backfill_in(conn, &new.institution_id, &backfill_id)
}

fn record_progress(conn: &Connection, progress: &BackfillProgress) -> StoreResult<Backfill> {
    let (state, message) = match &progress.end {
        Some((state, message)) => (state.as_str(), message.as_str()),
        None => (BackfillState::Running.as_str(), ""),
    };
    let finished = progress.end.as_ref().map(|_| progress.now.0);
    let counts = &progress.counts;
    conn.prepare_cached(
        "UPDATE backfills SET state = ?2, message = ?3, meetings_seen = ?4, jobs_created = ?5, duplicates = ?6,
            not_ready = ?7, skipped = ?8, chunk_from_day = ?9, next_page_token = ?10, updated_ms = ?11,
            finished_ms = ?12
         WHERE backfill_id = ?1 AND state = 'running'",
    )
    .map_err(sql_error)?
    .execute(params![
        progress.backfill_id,
        state,
        message,
        counts.meetings_seen as i64,
        counts.jobs_created as i64,
        counts.duplicates as i64,
        counts.not_ready as i64,
        counts.skipped_text(),
        progress.cursor.chunk_from.to_string(),
        progress.cursor.next_page_token,
        progress.now.0,
        finished,
    ])
    .map_err(sql_error)?;
    find_backfill(conn, &progress.backfill_id)?
        .ok_or_else(|| StoreError::not_found(format!("backfill {}", progress.backfill_id)))
}

fn cancel_backfill(
    conn: &Connection,
    institution_id: &str,
    backfill_id: &str,
    now: Timestamp,
) -> StoreResult<Backfill> {
    let backfill = backfill_in(conn, institution_id, backfill_id)?;
    if backfill.state != BackfillState::Running {
        return Err(StoreError::FailedPrecondition(format!(
            "backfill {backfill_id} is {}; only a running backfill can be cancelled",
            backfill.state.as_str()
        )));
    }
    conn.execute(
        "UPDATE backfills SET state = 'cancelled', message = 'cancelled by an admin', updated_ms = ?2,
            finished_ms = ?2 WHERE backfill_id = ?1",
        params![backfill_id, now.0],
    )
    .map_err(sql_error)?;
    backfill_in(conn, institution_id, backfill_id)
}

#[async_trait]
impl ReconcileStore for SqliteStore {
    async fn accounts_with_api_access(&self) -> StoreResult<Vec<ZoomAccount>> {
        self.engine
            .read(|c| {
                c.prepare_cached(&format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM zoom_accounts a
                     WHERE uninstalled_ms IS NULL AND (oauth_client_id IS NOT NULL
                        OR EXISTS (SELECT 1 FROM zoom_account_tokens t
                                   WHERE t.zoom_account_id = a.zoom_account_id))
                     ORDER BY zoom_account_id"
                ))
                .map_err(sql_error)?
                .query_map([], account_from_row)
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(sql_error)
            })
            .await
    }

    async fn job_for_meeting(
        &self,
        zoom_account_id: &str,
        meeting_uuid: &str,
    ) -> StoreResult<Option<Job>> {
        self.engine
            .read_point(|c| job_for_meeting(c, zoom_account_id, meeting_uuid))
    }

    async fn fail_gone_recording(&self, gone: RecordingGone) -> StoreResult<Option<Job>> {
        let job = self
            .engine
            .write(move |c| fail_gone_recording(c, &gone))
            .await?;
        if let Some(job) = &job {
            self.publish(job, false);
        }
        Ok(job)
    }

    async fn reconcile_cursor(
        &self,
        zoom_account_id: &str,
    ) -> StoreResult<Option<ReconcileCursor>> {
        self.engine.read_point(|c| load_cursor(c, zoom_account_id))
    }

    async fn save_reconcile_cursor(&self, cursor: ReconcileCursor) -> StoreResult<()> {
        self.engine.write(move |c| save_cursor(c, &cursor)).await
    }

    async fn create_backfill(&self, backfill: NewBackfill) -> StoreResult<Backfill> {
        self.engine
            .write(move |c| create_backfill(c, &backfill))
            .await
    }

    async fn get_backfill(&self, institution_id: &str, backfill_id: &str) -> StoreResult<Backfill> {
        self.engine
            .read_point(|c| backfill_in(c, institution_id, backfill_id))
    }

    async fn list_backfills(
        &self,
        institution_id: &str,
        zoom_account_id: Option<&str>,
        page: &PageQuery,
    ) -> StoreResult<Page<Backfill>> {
        let (institution_id, account, page) = (
            institution_id.to_string(),
            zoom_account_id.map(str::to_string),
            page.clone(),
        );
        self.engine
            .read(move |c| {
                let rows = c
                    .prepare_cached(&format!(
                        "SELECT {BACKFILL_COLUMNS} FROM backfills
                         WHERE institution_id = ?1 AND backfill_id > ?2
                            AND (?3 IS NULL OR zoom_account_id = ?3)
                         ORDER BY backfill_id LIMIT ?4"
                    ))
                    .map_err(sql_error)?
                    .query_map(
                        params![
                            institution_id,
                            page.after.clone().unwrap_or_default(),
                            account,
                            i64::from(page.limit()) + 1
                        ],
                        backfill_from_row,
                    )
                    .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                    .map_err(sql_error)?;
                Ok(page_of(rows, &page, |b| &b.backfill_id))
            })
            .await
    }

    async fn running_backfills(&self) -> StoreResult<Vec<Backfill>> {
        self.engine
            .read(|c| {
                c.prepare_cached(&format!(
                    "SELECT {BACKFILL_COLUMNS} FROM backfills INDEXED BY backfills_running
                     WHERE state = 'running' ORDER BY backfill_id"
                ))
                .map_err(sql_error)?
                .query_map([], backfill_from_row)
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(sql_error)
            })
            .await
    }

    async fn record_backfill_progress(&self, progress: BackfillProgress) -> StoreResult<Backfill> {
        self.engine
            .write(move |c| record_progress(c, &progress))
            .await
    }

    async fn cancel_backfill(
        &self,
        institution_id: &str,
        backfill_id: &str,
        now: Timestamp,
    ) -> StoreResult<Backfill> {
        let (institution_id, backfill_id) = (institution_id.to_string(), backfill_id.to_string());
        self.engine
            .write(move |c| cancel_backfill(c, &institution_id, &backfill_id, now))
            .await
    }
}
