//! The SQLite backend of `ReplicaStore`: the daemons sharing the database
//! file, each with the time it was last seen, and the duties one of them
//! at a time holds. One machine's deployment has
//! one replica, but two daemons on one file count as two.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, params};

use super::SqliteStore;
use super::engine::sql_error;
use crate::model::Timestamp;
use crate::store::{ReplicaStore, StoreResult};

fn replica_heartbeat(
    conn: &Connection,
    replica_id: &str,
    now: Timestamp,
    ttl: Duration,
) -> StoreResult<u32> {
    conn.prepare_cached(
        "INSERT INTO replicas (replica_id, seen_ms) VALUES (?1, ?2)
         ON CONFLICT (replica_id) DO UPDATE SET seen_ms = excluded.seen_ms",
    )
    .map_err(sql_error)?
    .execute(params![replica_id, now.0])
    .map_err(sql_error)?;
    let oldest_alive = now.saturating_add_millis(-(ttl.as_millis() as i64));
    conn.prepare_cached("DELETE FROM replicas WHERE seen_ms < ?1")
        .map_err(sql_error)?
        .execute(params![oldest_alive.0])
        .map_err(sql_error)?;
    conn.prepare_cached("SELECT COUNT(*) FROM replicas")
        .map_err(sql_error)?
        .query_row([], |row| row.get(0))
        .map_err(sql_error)
}

fn take_duty(
    conn: &Connection,
    duty: &str,
    replica_id: &str,
    now: Timestamp,
    ttl: Duration,
) -> StoreResult<bool> {
    let expires = now.saturating_add_millis(ttl.as_millis() as i64);
    let taken = conn
        .prepare_cached(
            "INSERT INTO replica_duties (duty, replica_id, expires_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (duty) DO UPDATE SET replica_id = excluded.replica_id,
                expires_ms = excluded.expires_ms
             WHERE replica_duties.replica_id = excluded.replica_id OR replica_duties.expires_ms <= ?4",
        )
        .map_err(sql_error)?
        .execute(params![duty, replica_id, expires.0, now.0])
        .map_err(sql_error)?;
    Ok(taken == 1)
}

#[async_trait]
impl ReplicaStore for SqliteStore {
    async fn replica_heartbeat(
        &self,
        replica_id: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> StoreResult<u32> {
        let replica_id = replica_id.to_string();
        self.engine
            .write(move |c| replica_heartbeat(c, &replica_id, now, ttl))
            .await
    }

    async fn replica_gone(&self, replica_id: &str) -> StoreResult<()> {
        let replica_id = replica_id.to_string();
        self.engine
            .write(move |c| {
                c.execute(
                    "DELETE FROM replicas WHERE replica_id = ?1",
                    params![replica_id],
                )
                .map(|_| ())
                .map_err(sql_error)
            })
            .await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.engine
            .read_point(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(sql_error))
    }

    async fn take_duty(
        &self,
        duty: &str,
        replica_id: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> StoreResult<bool> {
        let (duty, replica_id) = (duty.to_string(), replica_id.to_string());
        self.engine
            .write(move |c| take_duty(c, &duty, &replica_id, now, ttl))
            .await
    }
}
