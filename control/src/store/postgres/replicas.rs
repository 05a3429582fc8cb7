//! The PostgreSQL backend of `ReplicaStore`: the daemons sharing the
//! database, each with the time it was last seen, and the duties one of them
//! at a time holds.
//!
//! Liveness and duties are judged by the callers' clocks (the `now` they
//! pass), unlike leases: a skewed clock can at worst count a replica alive a
//! little long (its share of the download rate then stays split a little
//! longer, which errs on the side Zoom wants) or let two replicas sweep
//! orphaned uploads at once, which is safe (only old untracked uploads go,
//! and aborting one twice is no error).

use std::time::Duration;

use async_trait::async_trait;

use super::{PostgresStore, pg_error};
use crate::model::Timestamp;
use crate::store::{ReplicaStore, StoreResult};

#[async_trait]
impl ReplicaStore for PostgresStore {
    async fn replica_heartbeat(
        &self,
        replica_id: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> StoreResult<u32> {
        let oldest_alive = now.saturating_add_millis(-(ttl.as_millis() as i64));
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        tx.execute(
            "INSERT INTO replicas (replica_id, seen_ms) VALUES ($1, $2)
             ON CONFLICT (replica_id) DO UPDATE SET seen_ms = EXCLUDED.seen_ms",
            &[&replica_id, &now.0],
        )
        .await
        .map_err(pg_error)?;
        tx.execute(
            "DELETE FROM replicas WHERE seen_ms < $1",
            &[&oldest_alive.0],
        )
        .await
        .map_err(pg_error)?;
        let alive: i64 = tx
            .query_one("SELECT COUNT(*) FROM replicas", &[])
            .await
            .map_err(pg_error)?
            .get(0);
        tx.commit().await.map_err(pg_error)?;
        Ok(u32::try_from(alive).unwrap_or(u32::MAX))
    }

    async fn replica_gone(&self, replica_id: &str) -> StoreResult<()> {
        self.client()
            .await?
            .execute("DELETE FROM replicas WHERE replica_id = $1", &[&replica_id])
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        self.client()
            .await?
            .execute("SELECT 1", &[])
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    async fn take_duty(
        &self,
        duty: &str,
        replica_id: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> StoreResult<bool> {
        let expires = now.saturating_add_millis(ttl.as_millis() as i64);
        let taken = self
            .client()
            .await?
            .execute(
                "INSERT INTO replica_duties (duty, replica_id, expires_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (duty) DO UPDATE SET replica_id = EXCLUDED.replica_id,
                    expires_ms = EXCLUDED.expires_ms
                 WHERE replica_duties.replica_id = EXCLUDED.replica_id
                    OR replica_duties.expires_ms <= $4",
                &[&duty, &replica_id, &expires.0, &now.0],
            )
            .await
            .map_err(pg_error)?;
        Ok(taken == 1)
    }
}
