//! The PostgreSQL backend of `CompanionStore` (as SQLite's): `job_companions`,
//! one row per job and kind, each with its own lease, claimed `FOR UPDATE
//! SKIP LOCKED` through the partial index `job_companions_pending` once its
//! job has completed, so replicas claiming at once take different files.
//!
//! A companion lease is judged by the caller's clock alone (unlike a job's,
//! see `leases`): replicas whose clocks disagree by more than a lease could
//! both copy one companion. That costs a second upload of the same bytes to
//! the same key, never a wrong record: the finish is fenced by the holder.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::jobs::find_job;
use super::leases::require_lease;
use super::{PostgresStore, get, get_time, get_u64, pg_error};
use crate::error::StoreError;
use crate::model::*;
use crate::secrets::Sealed;
use crate::store::{CompanionHolder, CompanionStore, LeaseHolder, StoreResult};

const COMPANION_COLUMNS: &str =
    "job_id, kind, file_id, file_size, state, reason, object_key, size_bytes, checksum, updated_ms";

fn companion_from_row(row: &Row) -> StoreResult<Companion> {
    let kind: String = get(row, 1)?;
    let state: String = get(row, 4)?;
    Ok(Companion {
        job_id: get(row, 0)?,
        kind: CompanionKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown companion kind {kind:?}")))?,
        file_id: get(row, 2)?,
        file_size: get_u64(row, 3)?,
        state: CompanionState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown companion state {state:?}")))?,
        reason: get(row, 5)?,
        object_key: get(row, 6)?,
        size_bytes: get_u64(row, 7)?,
        checksum: get(row, 8)?,
        updated_at: get_time(row, 9)?,
    })
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

async fn find_companion(
    c: &impl GenericClient,
    job_id: &str,
    kind: CompanionKind,
) -> StoreResult<Companion> {
    let row = c
        .query_opt(
            &format!(
                "SELECT {COMPANION_COLUMNS} FROM job_companions WHERE job_id = $1 AND kind = $2"
            ),
            &[&job_id, &kind.as_str()],
        )
        .await
        .map_err(pg_error)?
        .ok_or_else(|| {
            StoreError::NotFound(format!("the {} companion of job {job_id}", kind.as_str()))
        })?;
    companion_from_row(&row)
}

#[async_trait]
impl CompanionStore for PostgresStore {
    async fn plan_companions(
        &self,
        holder: LeaseHolder<'_>,
        companions: Vec<NewCompanion>,
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        require_lease(&tx, holder.job_id, holder.worker_id).await?;
        for companion in &companions {
            tx.execute(
                "INSERT INTO job_companions (job_id, kind, file_id, file_size, state,
                    sealed_download_url, sealed_download_token, updated_ms)
                 VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7)
                 ON CONFLICT (job_id, kind) DO NOTHING",
                &[
                    &holder.job_id,
                    &companion.kind.as_str(),
                    &companion.file_id,
                    &(companion.file_size as i64),
                    &companion.sealed_download_url.0,
                    &companion.sealed_download_token.as_ref().map(|s| &s.0),
                    &now.0,
                ],
            )
            .await
            .map_err(pg_error)?;
        }
        tx.commit().await.map_err(pg_error)
    }

    async fn attach_companion(
        &self,
        zoom_account_id: &str,
        meeting_uuid: &str,
        companion: NewCompanion,
        now: Timestamp,
    ) -> StoreResult<Option<CompanionAttached>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let Some(row) = tx
            .query_opt(
                "SELECT job_id FROM jobs WHERE zoom_account_id = $1 AND meeting_uuid = $2",
                &[&zoom_account_id, &meeting_uuid],
            )
            .await
            .map_err(pg_error)?
        else {
            return Ok(None);
        };
        let job_id: String = get(&row, 0)?;
        let url = &companion.sealed_download_url.0;
        let token = companion.sealed_download_token.as_ref().map(|s| &s.0);
        // A new row, or a missing or failed one pending again: attached.
        let attached = tx
            .execute(
                "INSERT INTO job_companions AS c (job_id, kind, file_id, file_size, state,
                    sealed_download_url, sealed_download_token, updated_ms)
                 VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7)
                 ON CONFLICT (job_id, kind) DO UPDATE SET file_id = EXCLUDED.file_id,
                    file_size = EXCLUDED.file_size, state = 'pending', reason = '',
                    sealed_download_url = EXCLUDED.sealed_download_url,
                    sealed_download_token = EXCLUDED.sealed_download_token,
                    lease_owner = NULL, lease_expires_ms = NULL, updated_ms = EXCLUDED.updated_ms
                 WHERE c.state IN ('missing', 'failed')",
                &[
                    &job_id,
                    &companion.kind.as_str(),
                    &companion.file_id,
                    &(companion.file_size as i64),
                    url,
                    &token,
                    &now.0,
                ],
            )
            .await
            .map_err(pg_error)?
            == 1;
        if !attached {
            // A redelivery: a pending companion takes the fresher credentials.
            tx.execute(
                "UPDATE job_companions SET sealed_download_url = $3, sealed_download_token = $4
                 WHERE job_id = $1 AND kind = $2 AND state = 'pending'",
                &[&job_id, &companion.kind.as_str(), url, &token],
            )
            .await
            .map_err(pg_error)?;
        }
        tx.commit().await.map_err(pg_error)?;
        Ok(Some(CompanionAttached { job_id, attached }))
    }

    async fn list_companions(&self, job_id: &str) -> StoreResult<Vec<Companion>> {
        let rows = self
            .client()
            .await?
            .query(
                &format!("SELECT {COMPANION_COLUMNS} FROM job_companions WHERE job_id = $1"),
                &[&job_id],
            )
            .await
            .map_err(pg_error)?;
        let mut companions = rows
            .iter()
            .map(companion_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        companions.sort_by_key(|c| c.kind);
        Ok(companions)
    }

    async fn claim_companion(
        &self,
        worker_id: &str,
        lease: Duration,
        now: Timestamp,
    ) -> StoreResult<Option<CompanionLease>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let Some(row) = tx
            .query_opt(
                "SELECT c.job_id, c.kind FROM job_companions c JOIN jobs j ON j.job_id = c.job_id
                 WHERE c.state = 'pending' AND j.state = 'completed'
                   AND (c.lease_owner IS NULL OR c.lease_expires_ms <= $1)
                 ORDER BY c.updated_ms, c.job_id, c.kind LIMIT 1
                 FOR UPDATE OF c SKIP LOCKED",
                &[&now.0],
            )
            .await
            .map_err(pg_error)?
        else {
            return Ok(None);
        };
        let (job_id, kind): (String, String) = (get(&row, 0)?, get(&row, 1)?);
        let row = tx
            .query_one(
                "UPDATE job_companions SET lease_owner = $3, lease_expires_ms = $4
                 WHERE job_id = $1 AND kind = $2
                 RETURNING sealed_download_url, sealed_download_token",
                &[
                    &job_id,
                    &kind,
                    &worker_id,
                    &now.0.saturating_add(millis(lease)),
                ],
            )
            .await
            .map_err(pg_error)?;
        let url: Option<Vec<u8>> = get(&row, 0)?;
        let token: Option<Vec<u8>> = get(&row, 1)?;
        let kind = CompanionKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown companion kind {kind:?}")))?;
        let claimed = CompanionLease {
            job: find_job(&tx, &job_id, false).await?,
            companion: find_companion(&tx, &job_id, kind).await?,
            sealed_download_url: url.map(Sealed),
            sealed_download_token: token.map(Sealed),
        };
        tx.commit().await.map_err(pg_error)?;
        Ok(Some(claimed))
    }

    async fn renew_companion_lease(
        &self,
        holder: CompanionHolder<'_>,
        lease: Duration,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let changed = self
            .client()
            .await?
            .execute(
                "UPDATE job_companions SET lease_expires_ms = $4
                 WHERE job_id = $1 AND kind = $2 AND lease_owner = $3 AND state = 'pending'",
                &[
                    &holder.job_id,
                    &holder.kind.as_str(),
                    &holder.worker_id,
                    &now.0.saturating_add(millis(lease)),
                ],
            )
            .await
            .map_err(pg_error)?;
        Ok(changed == 1)
    }

    async fn finish_companion(
        &self,
        holder: CompanionHolder<'_>,
        outcome: CompanionOutcome,
        now: Timestamp,
    ) -> StoreResult<Companion> {
        let (object_key, size_bytes, checksum) = match &outcome {
            CompanionOutcome::Copied {
                object_key,
                size_bytes,
                checksum,
            } => (object_key.as_str(), *size_bytes as i64, checksum.as_str()),
            _ => ("", 0, ""),
        };
        let copied = matches!(outcome, CompanionOutcome::Copied { .. });
        let client = self.client().await?;
        let changed = client
            .execute(
                "UPDATE job_companions SET state = $4, reason = $5, object_key = $6,
                    size_bytes = $7, checksum = $8, lease_owner = NULL, lease_expires_ms = NULL,
                    updated_ms = $9,
                    sealed_download_url = CASE WHEN $10 THEN NULL ELSE sealed_download_url END,
                    sealed_download_token = CASE WHEN $10 THEN NULL ELSE sealed_download_token END
                 WHERE job_id = $1 AND kind = $2 AND lease_owner = $3 AND state = 'pending'",
                &[
                    &holder.job_id,
                    &holder.kind.as_str(),
                    &holder.worker_id,
                    &outcome.state().as_str(),
                    &outcome.reason(),
                    &object_key,
                    &size_bytes,
                    &checksum,
                    &now.0,
                    &copied,
                ],
            )
            .await
            .map_err(pg_error)?;
        if changed != 1 {
            return Err(StoreError::FailedPrecondition(format!(
                "the {} companion of job {} is no longer held by worker {}",
                holder.kind.as_str(),
                holder.job_id,
                holder.worker_id
            )));
        }
        find_companion(&client, holder.job_id, holder.kind).await
    }

    async fn retry_companions(&self, job_id: &str, now: Timestamp) -> StoreResult<u32> {
        let changed = self
            .client()
            .await?
            .execute(
                "UPDATE job_companions SET state = 'pending', reason = '', lease_owner = NULL,
                    lease_expires_ms = NULL, updated_ms = $2
                 WHERE job_id = $1 AND state IN ('missing', 'failed')",
                &[&job_id, &now.0],
            )
            .await
            .map_err(pg_error)?;
        Ok(changed as u32)
    }
}
