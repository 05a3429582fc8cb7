//! The PostgreSQL backend of `ReconcileStore`: the accounts the reconciler
//! may list, a meeting's job by its business key, the reconciler's cursor
//! per account, backfills, and failing the job of a recording Zoom deleted.
//! Which replica lists an account is decided by a duty (`take_duty`), not
//! here; a backfill's progress only applies while it runs, so a cancel from
//! any replica wins.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::accounts::{ACCOUNT_COLUMNS, account_from_row};
use super::jobs::{JOB_COLUMNS, job_from_row};
use super::{
    PostgresStore, get, get_opt_time, get_time, get_u64, page_after, page_limit, page_of, pg_error,
};
use crate::error::StoreError;
use crate::model::*;
use crate::store::{Page, PageQuery, ReconcileStore, StoreResult, new_id};

const BACKFILL_COLUMNS: &str = "backfill_id, institution_id, zoom_account_id, state, message, meetings_seen,
    jobs_created, duplicates, not_ready, skipped, from_day, to_day, chunk_from_day, next_page_token, created_ms,
    updated_ms, finished_ms";

fn day(row: &Row, column: usize) -> StoreResult<Day> {
    let text: String = get(row, column)?;
    Day::parse(&text).ok_or_else(|| StoreError::Corrupt(format!("not a day: {text}")))
}

fn backfill_from_row(row: &Row) -> StoreResult<Backfill> {
    let state: String = get(row, 3)?;
    let skipped: String = get(row, 9)?;
    Ok(Backfill {
        backfill_id: get(row, 0)?,
        institution_id: get(row, 1)?,
        zoom_account_id: get(row, 2)?,
        state: BackfillState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown backfill state {state}")))?,
        message: get(row, 4)?,
        counts: BackfillCounts {
            meetings_seen: get_u64(row, 5)?,
            jobs_created: get_u64(row, 6)?,
            duplicates: get_u64(row, 7)?,
            not_ready: get_u64(row, 8)?,
            skipped: BackfillCounts::parse_skipped(&skipped),
        },
        cursor: ListingCursor {
            from: day(row, 10)?,
            to: day(row, 11)?,
            chunk_from: day(row, 12)?,
            next_page_token: get(row, 13)?,
        },
        created_at: get_time(row, 14)?,
        updated_at: get_time(row, 15)?,
        finished_at: get_opt_time(row, 16)?,
    })
}

async fn backfill_in(
    c: &impl GenericClient,
    institution_id: &str,
    backfill_id: &str,
) -> StoreResult<Backfill> {
    let row = c
        .query_opt(
            &format!("SELECT {BACKFILL_COLUMNS} FROM backfills WHERE backfill_id = $1"),
            &[&backfill_id],
        )
        .await
        .map_err(pg_error)?;
    row.as_ref()
        .map(backfill_from_row)
        .transpose()?
        .filter(|b| b.institution_id == institution_id)
        .ok_or_else(|| StoreError::not_found(format!("backfill {backfill_id}")))
}

async fn job_for_meeting(
    c: &impl GenericClient,
    zoom_account_id: &str,
    meeting_uuid: &str,
) -> StoreResult<Option<Job>> {
    let row = c
        .query_opt(
            &format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE zoom_account_id = $1 AND meeting_uuid = $2"
            ),
            &[&zoom_account_id, &meeting_uuid],
        )
        .await
        .map_err(pg_error)?;
    row.as_ref().map(job_from_row).transpose()
}

fn backfills_of(rows: &[Row]) -> StoreResult<Vec<Backfill>> {
    rows.iter().map(backfill_from_row).collect()
}

#[async_trait]
impl ReconcileStore for PostgresStore {
    async fn accounts_with_api_access(&self) -> StoreResult<Vec<ZoomAccount>> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM zoom_accounts a
                     WHERE uninstalled_ms IS NULL AND (oauth_client_id IS NOT NULL
                        OR EXISTS (SELECT 1 FROM zoom_account_tokens t
                                   WHERE t.zoom_account_id = a.zoom_account_id))
                     ORDER BY zoom_account_id"
                ),
                &[],
            )
            .await
            .map_err(pg_error)?;
        rows.iter().map(account_from_row).collect()
    }

    async fn job_for_meeting(
        &self,
        zoom_account_id: &str,
        meeting_uuid: &str,
    ) -> StoreResult<Option<Job>> {
        job_for_meeting(&self.client().await?, zoom_account_id, meeting_uuid).await
    }

    async fn fail_gone_recording(&self, gone: RecordingGone) -> StoreResult<Option<Job>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let failed = tx
            .execute(
                "UPDATE jobs SET state = 'failed', message = $3, lease_owner = NULL, lease_expires_ms = NULL,
                    lease_clock = NULL, lease_expires_db = NULL, finished_ms = $4, updated_ms = $4
                 WHERE zoom_account_id = $1 AND meeting_uuid = $2 AND state IN ('queued', 'transferring')",
                &[
                    &gone.zoom_account_id,
                    &gone.meeting_uuid,
                    &gone.message,
                    &gone.now.0,
                ],
            )
            .await
            .map_err(pg_error)?;
        if failed == 0 {
            return Ok(None);
        }
        let job = job_for_meeting(&tx, &gone.zoom_account_id, &gone.meeting_uuid)
            .await?
            .ok_or_else(|| {
                StoreError::not_found(format!("job of meeting {}", gone.meeting_uuid))
            })?;
        self.commit_job_change(tx, &job).await?;
        Ok(Some(job))
    }

    async fn reconcile_cursor(
        &self,
        zoom_account_id: &str,
    ) -> StoreResult<Option<ReconcileCursor>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT zoom_account_id, from_day, to_day, chunk_from_day, next_page_token, pass_started_ms,
                    finished_ms FROM reconcile_cursors WHERE zoom_account_id = $1",
                &[&zoom_account_id],
            )
            .await
            .map_err(pg_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(ReconcileCursor {
            zoom_account_id: get(&row, 0)?,
            cursor: ListingCursor {
                from: day(&row, 1)?,
                to: day(&row, 2)?,
                chunk_from: day(&row, 3)?,
                next_page_token: get(&row, 4)?,
            },
            pass_started: get_time(&row, 5)?,
            finished_at: get_opt_time(&row, 6)?,
        }))
    }

    async fn save_reconcile_cursor(&self, cursor: ReconcileCursor) -> StoreResult<()> {
        self.client()
            .await?
            .execute(
                "INSERT INTO reconcile_cursors (zoom_account_id, from_day, to_day, chunk_from_day, next_page_token,
                    pass_started_ms, finished_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (zoom_account_id) DO UPDATE SET from_day = excluded.from_day,
                    to_day = excluded.to_day, chunk_from_day = excluded.chunk_from_day,
                    next_page_token = excluded.next_page_token, pass_started_ms = excluded.pass_started_ms,
                    finished_ms = excluded.finished_ms",
                &[
                    &cursor.zoom_account_id,
                    &cursor.cursor.from.to_string(),
                    &cursor.cursor.to.to_string(),
                    &cursor.cursor.chunk_from.to_string(),
                    &cursor.cursor.next_page_token,
                    &cursor.pass_started.0,
                    &cursor.finished_at.map(|t| t.0),
                ],
            )
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    async fn create_backfill(&self, backfill: NewBackfill) -> StoreResult<Backfill> {
        let client = self.client().await?;
        let backfill_id = new_id("bf");
        client
            .execute(
                "INSERT INTO backfills (backfill_id, institution_id, zoom_account_id, state, message,
                    meetings_seen, jobs_created, duplicates, not_ready, skipped, from_day, to_day, chunk_from_day,
                    next_page_token, created_ms, updated_ms)
                 VALUES ($1, $2, $3, 'running', '', 0, 0, 0, 0, '', $4, $5, $4, '', $6, $6)",
                &[
                    &backfill_id,
                    &backfill.institution_id,
                    &backfill.zoom_account_id,
                    &backfill.from.to_string(),
                    &backfill.to.to_string(),
                    &backfill.now.0,
                ],
            )
            .await
            .map_err(pg_error)?;
        backfill_in(&client, &backfill.institution_id, &backfill_id).await
    }

    async fn get_backfill(&self, institution_id: &str, backfill_id: &str) -> StoreResult<Backfill> {
        backfill_in(&self.client().await?, institution_id, backfill_id).await
    }

    async fn list_backfills(
        &self,
        institution_id: &str,
        zoom_account_id: Option<&str>,
        page: &PageQuery,
    ) -> StoreResult<Page<Backfill>> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {BACKFILL_COLUMNS} FROM backfills
                     WHERE institution_id = $1 AND backfill_id > $2
                        AND ($3::TEXT IS NULL OR zoom_account_id = $3)
                     ORDER BY backfill_id LIMIT $4"
                ),
                &[
                    &institution_id,
                    &page_after(page),
                    &zoom_account_id,
                    &page_limit(page),
                ],
            )
            .await
            .map_err(pg_error)?;
        Ok(page_of(backfills_of(&rows)?, page, |b| &b.backfill_id))
    }

    async fn running_backfills(&self) -> StoreResult<Vec<Backfill>> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {BACKFILL_COLUMNS} FROM backfills WHERE state = 'running' ORDER BY backfill_id"
                ),
                &[],
            )
            .await
            .map_err(pg_error)?;
        backfills_of(&rows)
    }

    async fn record_backfill_progress(&self, progress: BackfillProgress) -> StoreResult<Backfill> {
        let client = self.client().await?;
        let (state, message) = match &progress.end {
            Some((state, message)) => (state.as_str(), message.as_str()),
            None => (BackfillState::Running.as_str(), ""),
        };
        let finished = progress.end.as_ref().map(|_| progress.now.0);
        let counts = &progress.counts;
        client
            .execute(
                "UPDATE backfills SET state = $2, message = $3, meetings_seen = $4, jobs_created = $5,
                    duplicates = $6, not_ready = $7, skipped = $8, chunk_from_day = $9, next_page_token = $10,
                    updated_ms = $11, finished_ms = $12
                 WHERE backfill_id = $1 AND state = 'running'",
                &[
                    &progress.backfill_id,
                    &state,
                    &message,
                    &(counts.meetings_seen as i64),
                    &(counts.jobs_created as i64),
                    &(counts.duplicates as i64),
                    &(counts.not_ready as i64),
                    &counts.skipped_text(),
                    &progress.cursor.chunk_from.to_string(),
                    &progress.cursor.next_page_token,
                    &progress.now.0,
                    &finished,
                ],
            )
            .await
            .map_err(pg_error)?;
        let row = client
            .query_opt(
                &format!("SELECT {BACKFILL_COLUMNS} FROM backfills WHERE backfill_id = $1"),
                &[&progress.backfill_id],
            )
            .await
            .map_err(pg_error)?
            .ok_or_else(|| StoreError::not_found(format!("backfill {}", progress.backfill_id)))?;
        backfill_from_row(&row)
    }

    async fn cancel_backfill(
        &self,
        institution_id: &str,
        backfill_id: &str,
        now: Timestamp,
    ) -> StoreResult<Backfill> {
        let client = self.client().await?;
        let backfill = backfill_in(&client, institution_id, backfill_id).await?;
        let cancelled = client
            .execute(
                "UPDATE backfills SET state = 'cancelled', message = 'cancelled by an admin', updated_ms = $2,
                    finished_ms = $2 WHERE backfill_id = $1 AND state = 'running'",
                &[&backfill_id, &now.0],
            )
            .await
            .map_err(pg_error)?;
        if cancelled == 0 {
            let state = if backfill.state == BackfillState::Running {
                // It ended between the read and the update.
                backfill_in(&client, institution_id, backfill_id)
                    .await?
                    .state
            } else {
                backfill.state
            };
            return Err(StoreError::FailedPrecondition(format!(
                "backfill {backfill_id} is {}; only a running backfill can be cancelled",
                state.as_str()
            )));
        }
        backfill_in(&client, institution_id, backfill_id).await
    }
}
