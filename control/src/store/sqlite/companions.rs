//! The SQLite backend of `CompanionStore`: `job_companions`, one row per job
//! and kind, each with its own lease (`lease_owner`, `lease_expires_ms`),
//! claimed through the partial index `job_companions_pending` once its job
//! has completed.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::SqliteStore;
use super::engine::sql_error;
use super::jobs::find_job_by_id;
use super::transfers::require_lease;
use crate::error::StoreError;
use crate::model::*;
use crate::secrets::Sealed;
use crate::store::{CompanionHolder, CompanionStore, LeaseHolder, StoreResult};

const COMPANION_COLUMNS: &str =
    "job_id, kind, file_id, file_size, state, reason, object_key, size_bytes, checksum, updated_ms";

fn companion_from_row(row: &Row<'_>) -> rusqlite::Result<Companion> {
    let text = |i: usize, value: String| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("unknown companion value {value:?}").into(),
        )
    };
    let kind: String = row.get(1)?;
    let state: String = row.get(4)?;
    Ok(Companion {
        job_id: row.get(0)?,
        kind: CompanionKind::parse(&kind).ok_or_else(|| text(1, kind))?,
        file_id: row.get(2)?,
        file_size: row.get::<_, i64>(3)? as u64,
        state: CompanionState::parse(&state).ok_or_else(|| text(4, state))?,
        reason: row.get(5)?,
        object_key: row.get(6)?,
        size_bytes: row.get::<_, i64>(7)? as u64,
        checksum: row.get(8)?,
        updated_at: Timestamp(row.get(9)?),
    })
}

fn find_companion(conn: &Connection, job_id: &str, kind: CompanionKind) -> StoreResult<Companion> {
    conn.prepare_cached(&format!(
        "SELECT {COMPANION_COLUMNS} FROM job_companions WHERE job_id = ?1 AND kind = ?2"
    ))
    .map_err(sql_error)?
    .query_row(params![job_id, kind.as_str()], companion_from_row)
    .optional()
    .map_err(sql_error)?
    .ok_or_else(|| StoreError::NotFound(format!("the {} companion of job {job_id}", kind.as_str())))
}

fn list_companions(conn: &Connection, job_id: &str) -> StoreResult<Vec<Companion>> {
    let mut companions = conn
        .prepare_cached(&format!(
            "SELECT {COMPANION_COLUMNS} FROM job_companions WHERE job_id = ?1"
        ))
        .map_err(sql_error)?
        .query_map(params![job_id], companion_from_row)
        .map_err(sql_error)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql_error)?;
    companions.sort_by_key(|c| c.kind);
    Ok(companions)
}

fn plan_companions(
    conn: &Connection,
    holder: LeaseHolder<'_>,
    companions: &[NewCompanion],
    now: Timestamp,
) -> StoreResult<()> {
    require_lease(conn, holder.job_id, holder.worker_id)?;
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO job_companions (job_id, kind, file_id, file_size, state,
                sealed_download_url, sealed_download_token, updated_ms)
             VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6, ?7)
             ON CONFLICT (job_id, kind) DO NOTHING",
        )
        .map_err(sql_error)?;
    for companion in companions {
        insert
            .execute(params![
                holder.job_id,
                companion.kind.as_str(),
                companion.file_id,
                companion.file_size as i64,
                companion.sealed_download_url.0,
                companion.sealed_download_token.as_ref().map(|s| &s.0),
                now.0,
            ])
            .map_err(sql_error)?;
    }
    Ok(())
}

fn attach_companion(
    conn: &Connection,
    zoom_account_id: &str,
    meeting_uuid: &str,
    companion: &NewCompanion,
    now: Timestamp,
) -> StoreResult<Option<CompanionAttached>> {
    let job_id: Option<String> = conn
        .prepare_cached("SELECT job_id FROM jobs WHERE zoom_account_id = ?1 AND meeting_uuid = ?2")
        .map_err(sql_error)?
        .query_row(params![zoom_account_id, meeting_uuid], |row| row.get(0))
        .optional()
        .map_err(sql_error)?;
    let Some(job_id) = job_id else {
        return Ok(None);
    };
    let url = &companion.sealed_download_url.0;
    let token = companion.sealed_download_token.as_ref().map(|s| &s.0);
    // A new row, or a missing or failed one pending again: attached.
    let attached = conn
        .execute(
            "INSERT INTO job_companions (job_id, kind, file_id, file_size, state,
                sealed_download_url, sealed_download_token, updated_ms)
             VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6, ?7)
             ON CONFLICT (job_id, kind) DO UPDATE SET file_id = excluded.file_id,
                file_size = excluded.file_size, state = 'pending', reason = '',
                sealed_download_url = excluded.sealed_download_url,
                sealed_download_token = excluded.sealed_download_token,
                lease_owner = NULL, lease_expires_ms = NULL, updated_ms = excluded.updated_ms
             WHERE job_companions.state IN ('missing', 'failed')",
            params![
                job_id,
                companion.kind.as_str(),
                companion.file_id,
                companion.file_size as i64,
                url,
                token,
                now.0
            ],
        )
        .map_err(sql_error)?
        == 1;
    if !attached {
        // A redelivery: a pending companion takes the fresher credentials.
        conn.execute(
            "UPDATE job_companions SET sealed_download_url = ?3, sealed_download_token = ?4
             WHERE job_id = ?1 AND kind = ?2 AND state = 'pending'",
            params![job_id, companion.kind.as_str(), url, token],
        )
        .map_err(sql_error)?;
    }
    Ok(Some(CompanionAttached { job_id, attached }))
}

fn claim_companion(
    conn: &Connection,
    worker_id: &str,
    lease: Duration,
    now: Timestamp,
) -> StoreResult<Option<CompanionLease>> {
    let candidate: Option<(String, String)> = conn
        .prepare_cached(
            "SELECT c.job_id, c.kind FROM job_companions c JOIN jobs j ON j.job_id = c.job_id
             WHERE c.state = 'pending' AND j.state = 'completed'
               AND (c.lease_owner IS NULL OR c.lease_expires_ms <= ?1)
             ORDER BY c.updated_ms, c.job_id, c.kind LIMIT 1",
        )
        .map_err(sql_error)?
        .query_row(params![now.0], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()
        .map_err(sql_error)?;
    let Some((job_id, kind)) = candidate else {
        return Ok(None);
    };
    let expires = now.0.saturating_add(lease.as_millis() as i64);
    conn.execute(
        "UPDATE job_companions SET lease_owner = ?3, lease_expires_ms = ?4
         WHERE job_id = ?1 AND kind = ?2",
        params![job_id, kind, worker_id, expires],
    )
    .map_err(sql_error)?;
    let (url, token): (Option<Vec<u8>>, Option<Vec<u8>>) = conn
        .prepare_cached(
            "SELECT sealed_download_url, sealed_download_token FROM job_companions
             WHERE job_id = ?1 AND kind = ?2",
        )
        .map_err(sql_error)?
        .query_row(params![job_id, kind], |row| Ok((row.get(0)?, row.get(1)?)))
        .map_err(sql_error)?;
    let kind = CompanionKind::parse(&kind)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown companion kind {kind:?}")))?;
    Ok(Some(CompanionLease {
        job: find_job_by_id(conn, &job_id)?,
        companion: find_companion(conn, &job_id, kind)?,
        sealed_download_url: url.map(Sealed),
        sealed_download_token: token.map(Sealed),
    }))
}

fn renew_companion_lease(
    conn: &Connection,
    holder: CompanionHolder<'_>,
    lease: Duration,
    now: Timestamp,
) -> StoreResult<bool> {
    let changed = conn
        .execute(
            "UPDATE job_companions SET lease_expires_ms = ?4
             WHERE job_id = ?1 AND kind = ?2 AND lease_owner = ?3 AND state = 'pending'",
            params![
                holder.job_id,
                holder.kind.as_str(),
                holder.worker_id,
                now.0.saturating_add(lease.as_millis() as i64)
            ],
        )
        .map_err(sql_error)?;
    Ok(changed == 1)
}

fn finish_companion(
    conn: &Connection,
    holder: CompanionHolder<'_>,
    outcome: &CompanionOutcome,
    now: Timestamp,
) -> StoreResult<Companion> {
    let (object_key, size_bytes, checksum) = match outcome {
        CompanionOutcome::Copied {
            object_key,
            size_bytes,
            checksum,
        } => (object_key.as_str(), *size_bytes as i64, checksum.as_str()),
        _ => ("", 0, ""),
    };
    let copied = matches!(outcome, CompanionOutcome::Copied { .. });
    let changed = conn
        .execute(
            "UPDATE job_companions SET state = ?4, reason = ?5, object_key = ?6, size_bytes = ?7,
                checksum = ?8, lease_owner = NULL, lease_expires_ms = NULL, updated_ms = ?9,
                sealed_download_url = CASE WHEN ?10 THEN NULL ELSE sealed_download_url END,
                sealed_download_token = CASE WHEN ?10 THEN NULL ELSE sealed_download_token END
             WHERE job_id = ?1 AND kind = ?2 AND lease_owner = ?3 AND state = 'pending'",
            params![
                holder.job_id,
                holder.kind.as_str(),
                holder.worker_id,
                outcome.state().as_str(),
                outcome.reason(),
                object_key,
                size_bytes,
                checksum,
                now.0,
                copied,
            ],
        )
        .map_err(sql_error)?;
    if changed != 1 {
        return Err(StoreError::FailedPrecondition(format!(
            "the {} companion of job {} is no longer held by worker {}",
            holder.kind.as_str(),
            holder.job_id,
            holder.worker_id
        )));
    }
    find_companion(conn, holder.job_id, holder.kind)
}

fn retry_companions(conn: &Connection, job_id: &str, now: Timestamp) -> StoreResult<u32> {
    let changed = conn
        .execute(
            "UPDATE job_companions SET state = 'pending', reason = '', lease_owner = NULL,
                lease_expires_ms = NULL, updated_ms = ?2
             WHERE job_id = ?1 AND state IN ('missing', 'failed')",
            params![job_id, now.0],
        )
        .map_err(sql_error)?;
    Ok(changed as u32)
}

#[async_trait]
impl CompanionStore for SqliteStore {
    async fn plan_companions(
        &self,
        holder: LeaseHolder<'_>,
        companions: Vec<NewCompanion>,
        now: Timestamp,
    ) -> StoreResult<()> {
        let (job_id, worker_id) = (holder.job_id.to_string(), holder.worker_id.to_string());
        self.engine
            .write(move |c| {
                let holder = LeaseHolder {
                    job_id: &job_id,
                    worker_id: &worker_id,
                };
                plan_companions(c, holder, &companions, now)
            })
            .await
    }

    async fn attach_companion(
        &self,
        zoom_account_id: &str,
        meeting_uuid: &str,
        companion: NewCompanion,
        now: Timestamp,
    ) -> StoreResult<Option<CompanionAttached>> {
        let (account, uuid) = (zoom_account_id.to_string(), meeting_uuid.to_string());
        self.engine
            .write(move |c| attach_companion(c, &account, &uuid, &companion, now))
            .await
    }

    async fn list_companions(&self, job_id: &str) -> StoreResult<Vec<Companion>> {
        let job_id = job_id.to_string();
        self.engine.read(move |c| list_companions(c, &job_id)).await
    }

    async fn claim_companion(
        &self,
        worker_id: &str,
        lease: Duration,
        now: Timestamp,
    ) -> StoreResult<Option<CompanionLease>> {
        let worker_id = worker_id.to_string();
        self.engine
            .write(move |c| claim_companion(c, &worker_id, lease, now))
            .await
    }

    async fn renew_companion_lease(
        &self,
        holder: CompanionHolder<'_>,
        lease: Duration,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let (job_id, kind, worker_id) = (
            holder.job_id.to_string(),
            holder.kind,
            holder.worker_id.to_string(),
        );
        self.engine
            .write(move |c| {
                let holder = CompanionHolder {
                    job_id: &job_id,
                    kind,
                    worker_id: &worker_id,
                };
                renew_companion_lease(c, holder, lease, now)
            })
            .await
    }

    async fn finish_companion(
        &self,
        holder: CompanionHolder<'_>,
        outcome: CompanionOutcome,
        now: Timestamp,
    ) -> StoreResult<Companion> {
        let (job_id, kind, worker_id) = (
            holder.job_id.to_string(),
            holder.kind,
            holder.worker_id.to_string(),
        );
        self.engine
            .write(move |c| {
                let holder = CompanionHolder {
                    job_id: &job_id,
                    kind,
                    worker_id: &worker_id,
                };
                finish_companion(c, holder, &outcome, now)
            })
            .await
    }

    async fn retry_companions(&self, job_id: &str, now: Timestamp) -> StoreResult<u32> {
        let job_id = job_id.to_string();
        self.engine
            .write(move |c| retry_companions(c, &job_id, now))
            .await
    }
}
