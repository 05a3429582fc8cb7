//! The PostgreSQL backend of `TicketStore` and `AccountTokenStore`. Each
//! conditional write is one statement: PostgreSQL locks the row and
//! re-checks the condition after any concurrent writer commits, so of two
//! replicas taking one ticket (`DELETE … RETURNING`) or claiming one
//! refresh token (`UPDATE … WHERE refresh_token_hash = $old`) one wins.

use std::time::Duration;

use async_trait::async_trait;
use tokio_postgres::Row;

use super::{PostgresStore, get, get_time, pg_error};
use crate::model::Timestamp;
use crate::secrets::{Sealed, TokenHash};
use crate::store::{
    AccountTokenStore, AccountTokens, StoreResult, Ticket, TicketKind, TicketStore,
};

fn ticket_from_row(kind: TicketKind, hash: &TokenHash, row: &Row) -> StoreResult<Ticket> {
    Ok(Ticket {
        kind,
        hash: hash.clone(),
        sealed: Sealed(get(row, 0)?),
        expires_at: get_time(row, 1)?,
    })
}

#[async_trait]
impl TicketStore for PostgresStore {
    async fn put_ticket(&self, ticket: Ticket) -> StoreResult<()> {
        self.client()
            .await?
            .execute(
                "INSERT INTO web_tickets (kind, hash, sealed, expires_ms) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (kind, hash) DO UPDATE SET sealed = EXCLUDED.sealed,
                    expires_ms = EXCLUDED.expires_ms",
                &[
                    &ticket.kind.as_str(),
                    &ticket.hash.as_hex(),
                    &ticket.sealed.0,
                    &ticket.expires_at.0,
                ],
            )
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    async fn get_ticket(
        &self,
        kind: TicketKind,
        hash: &TokenHash,
        now: Timestamp,
    ) -> StoreResult<Option<Ticket>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT sealed, expires_ms FROM web_tickets
                 WHERE kind = $1 AND hash = $2 AND expires_ms > $3",
                &[&kind.as_str(), &hash.as_hex(), &now.0],
            )
            .await
            .map_err(pg_error)?;
        row.map(|row| ticket_from_row(kind, hash, &row)).transpose()
    }

    async fn take_ticket(
        &self,
        kind: TicketKind,
        hash: &TokenHash,
        now: Timestamp,
    ) -> StoreResult<Option<Ticket>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "DELETE FROM web_tickets WHERE kind = $1 AND hash = $2
                 RETURNING sealed, expires_ms",
                &[&kind.as_str(), &hash.as_hex()],
            )
            .await
            .map_err(pg_error)?;
        Ok(row
            .map(|row| ticket_from_row(kind, hash, &row))
            .transpose()?
            .filter(|ticket| ticket.expires_at > now))
    }

    async fn sweep_tickets(&self, now: Timestamp) -> StoreResult<u64> {
        self.client()
            .await?
            .execute("DELETE FROM web_tickets WHERE expires_ms <= $1", &[&now.0])
            .await
            .map_err(pg_error)
    }
}

fn tokens_from_row(row: &Row) -> StoreResult<AccountTokens> {
    Ok(AccountTokens {
        zoom_account_id: get(row, 0)?,
        client_id: get(row, 1)?,
        sealed_access_token: Sealed(get(row, 2)?),
        access_expires_at: get_time(row, 3)?,
        sealed_refresh_token: Sealed(get(row, 4)?),
        refresh_token_hash: TokenHash::from_hex(get::<String>(row, 5)?),
        updated_at: get_time(row, 6)?,
    })
}

#[async_trait]
impl AccountTokenStore for PostgresStore {
    async fn put_account_tokens(&self, tokens: AccountTokens) -> StoreResult<()> {
        self.client()
            .await?
            .execute(
                "INSERT INTO zoom_account_tokens (zoom_account_id, client_id, access_token_sealed,
                    access_expires_ms, refresh_token_sealed, refresh_token_hash, refresh_holder,
                    refresh_claim_ms, updated_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, $7)
                 ON CONFLICT (zoom_account_id) DO UPDATE SET client_id = EXCLUDED.client_id,
                    access_token_sealed = EXCLUDED.access_token_sealed,
                    access_expires_ms = EXCLUDED.access_expires_ms,
                    refresh_token_sealed = EXCLUDED.refresh_token_sealed,
                    refresh_token_hash = EXCLUDED.refresh_token_hash,
                    refresh_holder = NULL, refresh_claim_ms = NULL,
                    updated_ms = EXCLUDED.updated_ms",
                &[
                    &tokens.zoom_account_id,
                    &tokens.client_id,
                    &tokens.sealed_access_token.0,
                    &tokens.access_expires_at.0,
                    &tokens.sealed_refresh_token.0,
                    &tokens.refresh_token_hash.as_hex(),
                    &tokens.updated_at.0,
                ],
            )
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    async fn account_tokens(&self, zoom_account_id: &str) -> StoreResult<Option<AccountTokens>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT zoom_account_id, client_id, access_token_sealed, access_expires_ms,
                    refresh_token_sealed, refresh_token_hash, updated_ms
                 FROM zoom_account_tokens WHERE zoom_account_id = $1",
                &[&zoom_account_id],
            )
            .await
            .map_err(pg_error)?;
        row.as_ref().map(tokens_from_row).transpose()
    }

    async fn claim_token_refresh(
        &self,
        zoom_account_id: &str,
        refresh_token_hash: &TokenHash,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> StoreResult<bool> {
        let until = now.saturating_add_millis(ttl.as_millis() as i64);
        let claimed = self
            .client()
            .await?
            .execute(
                "UPDATE zoom_account_tokens SET refresh_holder = $3, refresh_claim_ms = $4
                 WHERE zoom_account_id = $1 AND refresh_token_hash = $2
                   AND (refresh_holder IS NULL OR refresh_claim_ms <= $5)",
                &[
                    &zoom_account_id,
                    &refresh_token_hash.as_hex(),
                    &holder,
                    &until.0,
                    &now.0,
                ],
            )
            .await
            .map_err(pg_error)?;
        Ok(claimed == 1)
    }

    async fn complete_token_refresh(
        &self,
        spent_refresh_token_hash: &TokenHash,
        tokens: AccountTokens,
    ) -> StoreResult<bool> {
        let stored = self
            .client()
            .await?
            .execute(
                "UPDATE zoom_account_tokens SET client_id = $3, access_token_sealed = $4,
                    access_expires_ms = $5, refresh_token_sealed = $6, refresh_token_hash = $7,
                    refresh_holder = NULL, refresh_claim_ms = NULL, updated_ms = $8
                 WHERE zoom_account_id = $1 AND refresh_token_hash = $2",
                &[
                    &tokens.zoom_account_id,
                    &spent_refresh_token_hash.as_hex(),
                    &tokens.client_id,
                    &tokens.sealed_access_token.0,
                    &tokens.access_expires_at.0,
                    &tokens.sealed_refresh_token.0,
                    &tokens.refresh_token_hash.as_hex(),
                    &tokens.updated_at.0,
                ],
            )
            .await
            .map_err(pg_error)?;
        Ok(stored == 1)
    }

    async fn release_token_refresh(&self, zoom_account_id: &str, holder: &str) -> StoreResult<()> {
        self.client()
            .await?
            .execute(
                "UPDATE zoom_account_tokens SET refresh_holder = NULL, refresh_claim_ms = NULL
                 WHERE zoom_account_id = $1 AND refresh_holder = $2",
                &[&zoom_account_id, &holder],
            )
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    async fn delete_account_tokens(&self, zoom_account_id: &str) -> StoreResult<bool> {
        let deleted = self
            .client()
            .await?
            .execute(
                "DELETE FROM zoom_account_tokens WHERE zoom_account_id = $1",
                &[&zoom_account_id],
            )
            .await
            .map_err(pg_error)?;
        Ok(deleted == 1)
    }
}
