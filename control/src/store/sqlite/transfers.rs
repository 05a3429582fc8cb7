//! The SQLite backend of `TransferStore`: a job's multipart upload, its
//! parts with their scan states, and its attempts.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use super::engine::sql_error;
use crate::error::StoreError;
use crate::model::*;
use crate::store::{LeaseHolder, StoreResult, TransferStore};

/// FailedPrecondition unless `worker_id` holds the job's lease.
pub(super) fn require_lease(conn: &Connection, job_id: &str, worker_id: &str) -> StoreResult<()> {
    let holder: Option<Option<String>> = conn
        .prepare_cached("SELECT lease_owner FROM jobs WHERE job_id = ?1 AND state = 'transferring'")
        .map_err(sql_error)?
        .query_row(params![job_id], |row| row.get(0))
        .optional()
        .map_err(sql_error)?;
    if holder.flatten().as_deref() == Some(worker_id) {
        Ok(())
    } else {
        Err(StoreError::FailedPrecondition(format!(
            "job {job_id} is no longer held by worker {worker_id}"
        )))
    }
}

pub(super) fn start_upload(
    conn: &Connection,
    job_id: &str,
    worker_id: &str,
    upload: &UploadRecord,
) -> StoreResult<()> {
    require_lease(conn, job_id, worker_id)?;
    drop_upload(conn, job_id)?;
    conn.execute(
        "INSERT INTO transfer_uploads (job_id, upload_id, object_key, part_size, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            job_id,
            upload.upload_id,
            upload.object_key,
            upload.part_size as i64,
            Timestamp::now().0
        ],
    )
    .map_err(sql_error)?;
    Ok(())
}

fn store_fresh_download(
    conn: &Connection,
    job_id: &str,
    worker_id: &str,
    fresh: &FreshCredentials,
    now: Timestamp,
) -> StoreResult<()> {
    require_lease(conn, job_id, worker_id)?;
    conn.prepare_cached(
        "UPDATE jobs SET download_token_sealed = ?2,
            download_url_sealed = COALESCE(?3, download_url_sealed),
            download_event_ms = MAX(COALESCE(download_event_ms, ?4), ?4)
         WHERE job_id = ?1",
    )
    .map_err(sql_error)?
    .execute(params![
        job_id,
        fresh.sealed_download_token.0,
        fresh.sealed_download_url.as_ref().map(|s| &s.0),
        now.0
    ])
    .map_err(sql_error)?;
    Ok(())
}

pub(super) fn upload_state(conn: &Connection, job_id: &str) -> StoreResult<Option<UploadState>> {
    let upload = conn
        .prepare_cached(
            "SELECT upload_id, object_key, part_size FROM transfer_uploads WHERE job_id = ?1",
        )
        .map_err(sql_error)?
        .query_row(params![job_id], |row| {
            Ok(UploadRecord {
                upload_id: row.get(0)?,
                object_key: row.get(1)?,
                part_size: row.get::<_, i64>(2)? as u64,
            })
        })
        .optional()
        .map_err(sql_error)?;
    let Some(upload) = upload else {
        return Ok(None);
    };
    let parts = conn
        .prepare_cached(
            "SELECT part_number, etag, crc32c, offset_b, len_b, scan_state FROM transfer_parts
             WHERE job_id = ?1 ORDER BY part_number",
        )
        .map_err(sql_error)?
        .query_map(params![job_id], |row| {
            Ok(PartRecord {
                part_number: row.get(0)?,
                etag: row.get(1)?,
                crc32c: row.get::<_, i64>(2)? as u32,
                offset: row.get::<_, i64>(3)? as u64,
                len: row.get::<_, i64>(4)? as u64,
                scan_state: row.get(5)?,
            })
        })
        .map_err(sql_error)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql_error)?;
    Ok(Some(UploadState { upload, parts }))
}

pub(super) fn record_part(
    conn: &Connection,
    job_id: &str,
    worker_id: &str,
    part: &PartRecord,
    bytes_transferred: u64,
) -> StoreResult<()> {
    require_lease(conn, job_id, worker_id)?;
    conn.prepare_cached(
        "INSERT INTO transfer_parts (job_id, part_number, etag, crc32c, offset_b, len_b, scan_state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (job_id, part_number) DO UPDATE SET etag = excluded.etag, crc32c = excluded.crc32c,
            offset_b = excluded.offset_b, len_b = excluded.len_b, scan_state = excluded.scan_state",
    )
    .map_err(sql_error)?
    .execute(params![
        job_id,
        part.part_number,
        part.etag,
        i64::from(part.crc32c),
        part.offset as i64,
        part.len as i64,
        part.scan_state
    ])
    .map_err(sql_error)?;
    conn.prepare_cached(
        "UPDATE jobs SET bytes_transferred = ?2, updated_ms = ?3 WHERE job_id = ?1",
    )
    .map_err(sql_error)?
    .execute(params![
        job_id,
        bytes_transferred as i64,
        Timestamp::now().0
    ])
    .map_err(sql_error)?;
    Ok(())
}

pub(super) fn begin_attempt(conn: &Connection, start: &AttemptStart) -> StoreResult<u32> {
    require_lease(conn, &start.job_id, &start.worker_id)?;
    let attempt: u32 = conn
        .prepare_cached(
            "UPDATE jobs SET attempt_count = attempt_count + 1, updated_ms = ?2 WHERE job_id = ?1
             RETURNING attempt_count",
        )
        .map_err(sql_error)?
        .query_row(params![start.job_id, start.now.0], |row| row.get(0))
        .map_err(sql_error)?;
    conn.prepare_cached(
        "INSERT INTO job_attempts (job_id, attempt, worker_id, started_ms, resumed_from_b, note)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (job_id, attempt) DO UPDATE SET worker_id = excluded.worker_id,
            started_ms = excluded.started_ms, resumed_from_b = excluded.resumed_from_b, note = excluded.note",
    )
    .map_err(sql_error)?
    .execute(params![
        start.job_id,
        attempt,
        start.worker_id,
        start.now.0,
        start.resumed_from_bytes as i64,
        start.note
    ])
    .map_err(sql_error)?;
    Ok(attempt)
}

pub(super) fn job_attempts(conn: &Connection, job_id: &str) -> StoreResult<Vec<JobAttempt>> {
    conn.prepare_cached(
        "SELECT attempt, worker_id, started_ms, resumed_from_b, note FROM job_attempts
         WHERE job_id = ?1 ORDER BY attempt",
    )
    .map_err(sql_error)?
    .query_map(params![job_id], |row| {
        Ok(JobAttempt {
            attempt: row.get(0)?,
            worker_id: row.get(1)?,
            started_at: Timestamp(row.get(2)?),
            resumed_from_bytes: row.get::<_, i64>(3)? as u64,
            note: row.get(4)?,
        })
    })
    .map_err(sql_error)?
    .collect::<rusqlite::Result<Vec<_>>>()
    .map_err(sql_error)
}

pub(super) fn drop_upload(conn: &Connection, job_id: &str) -> StoreResult<()> {
    conn.prepare_cached("DELETE FROM transfer_parts WHERE job_id = ?1")
        .map_err(sql_error)?
        .execute(params![job_id])
        .map_err(sql_error)?;
    conn.prepare_cached("DELETE FROM transfer_uploads WHERE job_id = ?1")
        .map_err(sql_error)?
        .execute(params![job_id])
        .map_err(sql_error)?;
    Ok(())
}

pub(super) fn abandoned_uploads(conn: &Connection) -> StoreResult<Vec<(String, UploadRecord)>> {
    conn.prepare_cached(
        "SELECT u.job_id, u.upload_id, u.object_key, u.part_size FROM transfer_uploads u
         JOIN jobs j ON j.job_id = u.job_id WHERE j.state NOT IN ('queued', 'transferring')",
    )
    .map_err(sql_error)?
    .query_map([], |row| {
        Ok((
            row.get(0)?,
            UploadRecord {
                upload_id: row.get(1)?,
                object_key: row.get(2)?,
                part_size: row.get::<_, i64>(3)? as u64,
            },
        ))
    })
    .map_err(sql_error)?
    .collect::<rusqlite::Result<Vec<_>>>()
    .map_err(sql_error)
}

pub(super) fn tracked_upload_ids(conn: &Connection) -> StoreResult<Vec<String>> {
    conn.prepare_cached("SELECT upload_id FROM transfer_uploads")
        .map_err(sql_error)?
        .query_map([], |row| row.get(0))
        .map_err(sql_error)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql_error)
}

#[async_trait]
impl TransferStore for SqliteStore {
    async fn start_upload(&self, holder: LeaseHolder<'_>, upload: UploadRecord) -> StoreResult<()> {
        let (job_id, worker_id) = (holder.job_id.to_string(), holder.worker_id.to_string());
        self.engine
            .write(move |c| start_upload(c, &job_id, &worker_id, &upload))
            .await
    }

    async fn upload_state(&self, job_id: &str) -> StoreResult<Option<UploadState>> {
        self.engine.read_point(|c| upload_state(c, job_id))
    }

    async fn record_part(
        &self,
        holder: LeaseHolder<'_>,
        part: PartRecord,
        bytes_transferred: u64,
    ) -> StoreResult<()> {
        let (job_id, worker_id) = (holder.job_id.to_string(), holder.worker_id.to_string());
        self.engine
            .write(move |c| record_part(c, &job_id, &worker_id, &part, bytes_transferred))
            .await
    }

    async fn store_fresh_download(
        &self,
        holder: LeaseHolder<'_>,
        fresh: FreshCredentials,
        now: Timestamp,
    ) -> StoreResult<()> {
        let (job_id, worker_id) = (holder.job_id.to_string(), holder.worker_id.to_string());
        self.engine
            .write(move |c| store_fresh_download(c, &job_id, &worker_id, &fresh, now))
            .await
    }

    async fn begin_attempt(&self, start: AttemptStart) -> StoreResult<u32> {
        self.engine.write(move |c| begin_attempt(c, &start)).await
    }

    async fn job_attempts(&self, job_id: &str) -> StoreResult<Vec<JobAttempt>> {
        self.engine.read_point(|c| job_attempts(c, job_id))
    }

    async fn drop_upload(&self, job_id: &str) -> StoreResult<()> {
        let job_id = job_id.to_string();
        self.engine.write(move |c| drop_upload(c, &job_id)).await
    }

    async fn abandoned_uploads(&self) -> StoreResult<Vec<(String, UploadRecord)>> {
        self.engine.read(abandoned_uploads).await
    }

    async fn tracked_upload_ids(&self) -> StoreResult<Vec<String>> {
        self.engine.read(tracked_upload_ids).await
    }
}
