//! The PostgreSQL backend of `TransferStore`: a job's multipart upload, its
//! parts with their scan states, and its attempts. Every write of a lease
//! holder checks the lease under the job's row lock first (`require_lease`).

use async_trait::async_trait;
use deadpool_postgres::GenericClient;

use super::leases::require_lease;
use super::{PostgresStore, get, get_time, get_u32, get_u64, pg_error};
use crate::model::*;
use crate::store::{LeaseHolder, StoreResult, TransferStore};

pub(super) async fn drop_upload(c: &impl GenericClient, job_id: &str) -> StoreResult<()> {
    c.execute("DELETE FROM transfer_parts WHERE job_id = $1", &[&job_id])
        .await
        .map_err(pg_error)?;
    c.execute("DELETE FROM transfer_uploads WHERE job_id = $1", &[&job_id])
        .await
        .map_err(pg_error)?;
    Ok(())
}

fn upload_from_row(row: &tokio_postgres::Row, first: usize) -> StoreResult<UploadRecord> {
    Ok(UploadRecord {
        upload_id: get(row, first)?,
        object_key: get(row, first + 1)?,
        part_size: get_u64(row, first + 2)?,
    })
}

#[async_trait]
impl TransferStore for PostgresStore {
    async fn start_upload(&self, holder: LeaseHolder<'_>, upload: UploadRecord) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        require_lease(&tx, holder.job_id, holder.worker_id).await?;
        drop_upload(&tx, holder.job_id).await?;
        tx.execute(
            "INSERT INTO transfer_uploads (job_id, upload_id, object_key, part_size, created_ms)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &holder.job_id,
                &upload.upload_id,
                &upload.object_key,
                &(upload.part_size as i64),
                &Timestamp::now().0,
            ],
        )
        .await
        .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)
    }

    async fn upload_state(&self, job_id: &str) -> StoreResult<Option<UploadState>> {
        let mut client = self.client().await?;
        // One snapshot for the upload and its parts.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(pg_error)?;
        let Some(row) = tx
            .query_opt(
                "SELECT upload_id, object_key, part_size FROM transfer_uploads WHERE job_id = $1",
                &[&job_id],
            )
            .await
            .map_err(pg_error)?
        else {
            return Ok(None);
        };
        let upload = upload_from_row(&row, 0)?;
        let parts = tx
            .query(
                "SELECT part_number, etag, crc32c, offset_b, len_b, scan_state FROM transfer_parts
                 WHERE job_id = $1 ORDER BY part_number",
                &[&job_id],
            )
            .await
            .map_err(pg_error)?
            .iter()
            .map(|row| {
                Ok(PartRecord {
                    part_number: get_u32(row, 0)?,
                    etag: get(row, 1)?,
                    crc32c: get_u32(row, 2)?,
                    offset: get_u64(row, 3)?,
                    len: get_u64(row, 4)?,
                    scan_state: get(row, 5)?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        tx.commit().await.map_err(pg_error)?;
        Ok(Some(UploadState { upload, parts }))
    }

    async fn record_part(
        &self,
        holder: LeaseHolder<'_>,
        part: PartRecord,
        bytes_transferred: u64,
    ) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        require_lease(&tx, holder.job_id, holder.worker_id).await?;
        tx.execute(
            "INSERT INTO transfer_parts (job_id, part_number, etag, crc32c, offset_b, len_b, scan_state)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (job_id, part_number) DO UPDATE SET etag = excluded.etag, crc32c = excluded.crc32c,
                offset_b = excluded.offset_b, len_b = excluded.len_b, scan_state = excluded.scan_state",
            &[
                &holder.job_id,
                &i64::from(part.part_number),
                &part.etag,
                &i64::from(part.crc32c),
                &(part.offset as i64),
                &(part.len as i64),
                &part.scan_state,
            ],
        )
        .await
        .map_err(pg_error)?;
        tx.execute(
            "UPDATE jobs SET bytes_transferred = $2, updated_ms = $3 WHERE job_id = $1",
            &[
                &holder.job_id,
                &(bytes_transferred as i64),
                &Timestamp::now().0,
            ],
        )
        .await
        .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)
    }

    async fn store_fresh_download(
        &self,
        holder: LeaseHolder<'_>,
        fresh: FreshCredentials,
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        require_lease(&tx, holder.job_id, holder.worker_id).await?;
        tx.execute(
            "UPDATE jobs SET download_token_sealed = $2,
                download_url_sealed = COALESCE($3, download_url_sealed),
                download_event_ms = GREATEST(download_event_ms, $4)
             WHERE job_id = $1",
            &[
                &holder.job_id,
                &fresh.sealed_download_token.0,
                &fresh.sealed_download_url.as_ref().map(|s| &s.0),
                &now.0,
            ],
        )
        .await
        .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)
    }

    async fn begin_attempt(&self, start: AttemptStart) -> StoreResult<u32> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        require_lease(&tx, &start.job_id, &start.worker_id).await?;
        let row = tx
            .query_one(
                "UPDATE jobs SET attempt_count = attempt_count + 1, updated_ms = $2 WHERE job_id = $1
                 RETURNING attempt_count",
                &[&start.job_id, &start.now.0],
            )
            .await
            .map_err(pg_error)?;
        let attempt = get_u32(&row, 0)?;
        tx.execute(
            "INSERT INTO job_attempts (job_id, attempt, worker_id, started_ms, resumed_from_b, note)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (job_id, attempt) DO UPDATE SET worker_id = excluded.worker_id,
                started_ms = excluded.started_ms, resumed_from_b = excluded.resumed_from_b,
                note = excluded.note",
            &[
                &start.job_id,
                &i64::from(attempt),
                &start.worker_id,
                &start.now.0,
                &(start.resumed_from_bytes as i64),
                &start.note,
            ],
        )
        .await
        .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        Ok(attempt)
    }

    async fn job_attempts(&self, job_id: &str) -> StoreResult<Vec<JobAttempt>> {
        self.client()
            .await?
            .query(
                "SELECT attempt, worker_id, started_ms, resumed_from_b, note FROM job_attempts
                 WHERE job_id = $1 ORDER BY attempt",
                &[&job_id],
            )
            .await
            .map_err(pg_error)?
            .iter()
            .map(|row| {
                Ok(JobAttempt {
                    attempt: get_u32(row, 0)?,
                    worker_id: get(row, 1)?,
                    started_at: get_time(row, 2)?,
                    resumed_from_bytes: get_u64(row, 3)?,
                    note: get(row, 4)?,
                })
            })
            .collect()
    }

    async fn drop_upload(&self, job_id: &str) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        drop_upload(&tx, job_id).await?;
        tx.commit().await.map_err(pg_error)
    }

    async fn abandoned_uploads(&self) -> StoreResult<Vec<(String, UploadRecord)>> {
        self.client()
            .await?
            .query(
                "SELECT u.job_id, u.upload_id, u.object_key, u.part_size FROM transfer_uploads u
                 JOIN jobs j ON j.job_id = u.job_id WHERE j.state NOT IN ('queued', 'transferring')",
                &[],
            )
            .await
            .map_err(pg_error)?
            .iter()
            .map(|row| Ok((get(row, 0)?, upload_from_row(row, 1)?)))
            .collect()
    }

    async fn tracked_upload_ids(&self) -> StoreResult<Vec<String>> {
        self.client()
            .await?
            .query("SELECT upload_id FROM transfer_uploads", &[])
            .await
            .map_err(pg_error)?
            .iter()
            .map(|row| get(row, 0))
            .collect()
    }
}
