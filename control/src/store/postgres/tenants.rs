//! The PostgreSQL backend of `TenantStore`: the operator token, institutions
//! and their admin keys.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{
    PostgresStore, get, get_opt_time, get_time, page_after, page_limit, page_of, pg_error,
};
use crate::error::StoreError;
use crate::model::*;
use crate::secrets::TokenHash;
use crate::store::{Page, PageQuery, StoreResult, TenantStore, new_id};

fn institution_from_row(row: &Row) -> StoreResult<Institution> {
    Ok(Institution {
        institution_id: get(row, 0)?,
        display_name: get(row, 1)?,
        created_at: get_time(row, 2)?,
    })
}

/// The institution; with `lock`, its row stays locked until the transaction
/// ends, which serialises the writes that decide per institution.
pub(super) async fn get_institution(
    c: &impl GenericClient,
    institution_id: &str,
    lock: bool,
) -> StoreResult<Institution> {
    let sql = if lock {
        "SELECT institution_id, display_name, created_ms FROM institutions WHERE institution_id = $1 FOR UPDATE"
    } else {
        "SELECT institution_id, display_name, created_ms FROM institutions WHERE institution_id = $1"
    };
    let row = c
        .query_opt(sql, &[&institution_id])
        .await
        .map_err(pg_error)?
        .ok_or_else(|| StoreError::not_found(format!("institution {institution_id}")))?;
    institution_from_row(&row)
}

const ADMIN_KEY_COLUMNS: &str = "key_id, institution_id, name, created_ms, revoked_ms";

fn admin_key_from_row(row: &Row) -> StoreResult<AdminKey> {
    Ok(AdminKey {
        key_id: get(row, 0)?,
        institution_id: get(row, 1)?,
        name: get(row, 2)?,
        created_at: get_time(row, 3)?,
        revoked_at: get_opt_time(row, 4)?,
    })
}

async fn get_admin_key(c: &impl GenericClient, key_id: &str) -> StoreResult<AdminKey> {
    let row = c
        .query_opt(
            &format!("SELECT {ADMIN_KEY_COLUMNS} FROM admin_keys WHERE key_id = $1"),
            &[&key_id],
        )
        .await
        .map_err(pg_error)?
        .ok_or_else(|| StoreError::not_found(format!("admin key {key_id}")))?;
    admin_key_from_row(&row)
}

#[async_trait]
impl TenantStore for PostgresStore {
    async fn operator_token_hash(&self) -> StoreResult<Option<TokenHash>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT value FROM settings WHERE name = 'operator_token_hash'",
                &[],
            )
            .await
            .map_err(pg_error)?;
        row.map(|row| get::<String>(&row, 0).map(TokenHash::from_hex))
            .transpose()
    }

    async fn init_operator_token_hash(&self, hash: TokenHash) -> StoreResult<bool> {
        let inserted = self
            .client()
            .await?
            .execute(
                "INSERT INTO settings (name, value) VALUES ('operator_token_hash', $1)
                 ON CONFLICT (name) DO NOTHING",
                &[&hash.as_hex()],
            )
            .await
            .map_err(pg_error)?;
        Ok(inserted == 1)
    }

    async fn create_institution(
        &self,
        display_name: &str,
        now: Timestamp,
    ) -> StoreResult<Institution> {
        let institution = Institution {
            institution_id: new_id("inst"),
            display_name: display_name.to_string(),
            created_at: now,
        };
        self.client()
            .await?
            .execute(
                "INSERT INTO institutions (institution_id, display_name, created_ms) VALUES ($1, $2, $3)",
                &[&institution.institution_id, &institution.display_name, &now.0],
            )
            .await
            .map_err(pg_error)?;
        Ok(institution)
    }

    async fn get_institution(&self, institution_id: &str) -> StoreResult<Institution> {
        get_institution(&self.client().await?, institution_id, false).await
    }

    async fn list_institutions(&self, page: &PageQuery) -> StoreResult<Page<Institution>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT institution_id, display_name, created_ms FROM institutions
                 WHERE institution_id > $1 ORDER BY institution_id LIMIT $2",
                &[&page_after(page), &page_limit(page)],
            )
            .await
            .map_err(pg_error)?;
        let rows = rows
            .iter()
            .map(institution_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(page_of(rows, page, |i| &i.institution_id))
    }

    async fn create_admin_key(&self, key: NewAdminKey) -> StoreResult<AdminKey> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        get_institution(&tx, &key.institution_id, false).await?;
        let created = AdminKey {
            key_id: new_id("key"),
            institution_id: key.institution_id.clone(),
            name: key.name.clone(),
            created_at: key.now,
            revoked_at: None,
        };
        tx.execute(
            "INSERT INTO admin_keys (key_id, institution_id, name, key_hash, created_ms) VALUES ($1, $2, $3, $4, $5)",
            &[
                &created.key_id,
                &created.institution_id,
                &created.name,
                &key.hash.as_hex(),
                &key.now.0,
            ],
        )
        .await
        .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        Ok(created)
    }

    async fn get_admin_key(&self, key_id: &str) -> StoreResult<AdminKey> {
        get_admin_key(&self.client().await?, key_id).await
    }

    async fn list_admin_keys(
        &self,
        institution_id: &str,
        page: &PageQuery,
    ) -> StoreResult<Page<AdminKey>> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {ADMIN_KEY_COLUMNS} FROM admin_keys
                     WHERE institution_id = $1 AND key_id > $2 ORDER BY key_id LIMIT $3"
                ),
                &[&institution_id, &page_after(page), &page_limit(page)],
            )
            .await
            .map_err(pg_error)?;
        let rows = rows
            .iter()
            .map(admin_key_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(page_of(rows, page, |k| &k.key_id))
    }

    async fn revoke_admin_key(&self, key_id: &str, now: Timestamp) -> StoreResult<AdminKey> {
        let client = self.client().await?;
        // One statement: a concurrent revocation cannot replace the first time.
        client
            .execute(
                "UPDATE admin_keys SET revoked_ms = $2 WHERE key_id = $1 AND revoked_ms IS NULL",
                &[&key_id, &now.0],
            )
            .await
            .map_err(pg_error)?;
        get_admin_key(&client, key_id).await
    }

    async fn find_admin_key(&self, hash: &TokenHash) -> StoreResult<Option<AdminKey>> {
        let row = self
            .client()
            .await?
            .query_opt(
                &format!(
                    "SELECT {ADMIN_KEY_COLUMNS} FROM admin_keys WHERE key_hash = $1 AND revoked_ms IS NULL"
                ),
                &[&hash.as_hex()],
            )
            .await
            .map_err(pg_error)?;
        row.as_ref().map(admin_key_from_row).transpose()
    }
}
