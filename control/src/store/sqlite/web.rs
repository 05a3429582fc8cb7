//! The SQLite backend of `TicketStore` and `AccountTokenStore`. The single
//! writer makes each conditional update (take a ticket, claim or complete a
//! refresh) atomic by itself.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::SqliteStore;
use super::engine::sql_error;
use crate::model::Timestamp;
use crate::secrets::{Sealed, TokenHash};
use crate::store::{
    AccountTokenStore, AccountTokens, StoreResult, Ticket, TicketKind, TicketStore,
};

fn find_ticket(
    conn: &Connection,
    kind: TicketKind,
    hash: &TokenHash,
    now: Timestamp,
) -> StoreResult<Option<Ticket>> {
    conn.prepare_cached(
        "SELECT sealed, expires_ms FROM web_tickets WHERE kind = ?1 AND hash = ?2 AND expires_ms > ?3",
    )
    .map_err(sql_error)?
    .query_row(params![kind.as_str(), hash.as_hex(), now.0], |row| {
        Ok(Ticket {
            kind,
            hash: hash.clone(),
            sealed: Sealed(row.get(0)?),
            expires_at: Timestamp(row.get(1)?),
        })
    })
    .optional()
    .map_err(sql_error)
}

#[async_trait]
impl TicketStore for SqliteStore {
    async fn put_ticket(&self, ticket: Ticket) -> StoreResult<()> {
        self.engine
            .write(move |c| {
                c.execute(
                    "INSERT INTO web_tickets (kind, hash, sealed, expires_ms) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (kind, hash) DO UPDATE SET sealed = excluded.sealed,
                        expires_ms = excluded.expires_ms",
                    params![
                        ticket.kind.as_str(),
                        ticket.hash.as_hex(),
                        ticket.sealed.0,
                        ticket.expires_at.0
                    ],
                )
                .map(|_| ())
                .map_err(sql_error)
            })
            .await
    }

    async fn get_ticket(
        &self,
        kind: TicketKind,
        hash: &TokenHash,
        now: Timestamp,
    ) -> StoreResult<Option<Ticket>> {
        self.engine.read_point(|c| find_ticket(c, kind, hash, now))
    }

    async fn take_ticket(
        &self,
        kind: TicketKind,
        hash: &TokenHash,
        now: Timestamp,
    ) -> StoreResult<Option<Ticket>> {
        let hash = hash.clone();
        self.engine
            .write(move |c| {
                let found = find_ticket(c, kind, &hash, now)?;
                c.execute(
                    "DELETE FROM web_tickets WHERE kind = ?1 AND hash = ?2",
                    params![kind.as_str(), hash.as_hex()],
                )
                .map_err(sql_error)?;
                Ok(found)
            })
            .await
    }

    async fn sweep_tickets(&self, now: Timestamp) -> StoreResult<u64> {
        self.engine
            .write(move |c| {
                c.execute(
                    "DELETE FROM web_tickets WHERE expires_ms <= ?1",
                    params![now.0],
                )
                .map(|n| n as u64)
                .map_err(sql_error)
            })
            .await
    }
}

fn tokens_from_row(row: &Row<'_>) -> rusqlite::Result<AccountTokens> {
    Ok(AccountTokens {
        zoom_account_id: row.get(0)?,
        client_id: row.get(1)?,
        sealed_access_token: Sealed(row.get(2)?),
        access_expires_at: Timestamp(row.get(3)?),
        sealed_refresh_token: Sealed(row.get(4)?),
        refresh_token_hash: TokenHash::from_hex(row.get::<_, String>(5)?),
        updated_at: Timestamp(row.get(6)?),
    })
}

#[async_trait]
impl AccountTokenStore for SqliteStore {
    async fn put_account_tokens(&self, tokens: AccountTokens) -> StoreResult<()> {
        self.engine
            .write(move |c| {
                c.execute(
                    "INSERT INTO zoom_account_tokens (zoom_account_id, client_id, access_token_sealed,
                        access_expires_ms, refresh_token_sealed, refresh_token_hash, refresh_holder,
                        refresh_claim_ms, updated_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, NULL, ?7)
                     ON CONFLICT (zoom_account_id) DO UPDATE SET client_id = excluded.client_id,
                        access_token_sealed = excluded.access_token_sealed,
                        access_expires_ms = excluded.access_expires_ms,
                        refresh_token_sealed = excluded.refresh_token_sealed,
                        refresh_token_hash = excluded.refresh_token_hash,
                        refresh_holder = NULL, refresh_claim_ms = NULL,
                        updated_ms = excluded.updated_ms",
                    params![
                        tokens.zoom_account_id,
                        tokens.client_id,
                        tokens.sealed_access_token.0,
                        tokens.access_expires_at.0,
                        tokens.sealed_refresh_token.0,
                        tokens.refresh_token_hash.as_hex(),
                        tokens.updated_at.0
                    ],
                )
                .map(|_| ())
                .map_err(sql_error)
            })
            .await
    }

    async fn account_tokens(&self, zoom_account_id: &str) -> StoreResult<Option<AccountTokens>> {
        self.engine.read_point(|c| {
            c.prepare_cached(
                "SELECT zoom_account_id, client_id, access_token_sealed, access_expires_ms,
                    refresh_token_sealed, refresh_token_hash, updated_ms
                 FROM zoom_account_tokens WHERE zoom_account_id = ?1",
            )
            .map_err(sql_error)?
            .query_row(params![zoom_account_id], tokens_from_row)
            .optional()
            .map_err(sql_error)
        })
    }

    async fn claim_token_refresh(
        &self,
        zoom_account_id: &str,
        refresh_token_hash: &TokenHash,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> StoreResult<bool> {
        let (account, hash, holder) = (
            zoom_account_id.to_string(),
            refresh_token_hash.clone(),
            holder.to_string(),
        );
        let until = now.saturating_add_millis(ttl.as_millis() as i64);
        self.engine
            .write(move |c| {
                c.execute(
                    "UPDATE zoom_account_tokens SET refresh_holder = ?3, refresh_claim_ms = ?4
                     WHERE zoom_account_id = ?1 AND refresh_token_hash = ?2
                       AND (refresh_holder IS NULL OR refresh_claim_ms <= ?5)",
                    params![account, hash.as_hex(), holder, until.0, now.0],
                )
                .map(|n| n == 1)
                .map_err(sql_error)
            })
            .await
    }

    async fn complete_token_refresh(
        &self,
        spent_refresh_token_hash: &TokenHash,
        tokens: AccountTokens,
    ) -> StoreResult<bool> {
        let spent = spent_refresh_token_hash.clone();
        self.engine
            .write(move |c| {
                c.execute(
                    "UPDATE zoom_account_tokens SET client_id = ?3, access_token_sealed = ?4,
                        access_expires_ms = ?5, refresh_token_sealed = ?6, refresh_token_hash = ?7,
                        refresh_holder = NULL, refresh_claim_ms = NULL, updated_ms = ?8
                     WHERE zoom_account_id = ?1 AND refresh_token_hash = ?2",
                    params![
                        tokens.zoom_account_id,
                        spent.as_hex(),
                        tokens.client_id,
                        tokens.sealed_access_token.0,
                        tokens.access_expires_at.0,
                        tokens.sealed_refresh_token.0,
                        tokens.refresh_token_hash.as_hex(),
                        tokens.updated_at.0
                    ],
                )
                .map(|n| n == 1)
                .map_err(sql_error)
            })
            .await
    }

    async fn release_token_refresh(&self, zoom_account_id: &str, holder: &str) -> StoreResult<()> {
        let (account, holder) = (zoom_account_id.to_string(), holder.to_string());
        self.engine
            .write(move |c| {
                c.execute(
                    "UPDATE zoom_account_tokens SET refresh_holder = NULL, refresh_claim_ms = NULL
                     WHERE zoom_account_id = ?1 AND refresh_holder = ?2",
                    params![account, holder],
                )
                .map(|_| ())
                .map_err(sql_error)
            })
            .await
    }

    async fn delete_account_tokens(&self, zoom_account_id: &str) -> StoreResult<bool> {
        let account = zoom_account_id.to_string();
        self.engine
            .write(move |c| {
                c.execute(
                    "DELETE FROM zoom_account_tokens WHERE zoom_account_id = ?1",
                    params![account],
                )
                .map(|n| n == 1)
                .map_err(sql_error)
            })
            .await
    }
}
