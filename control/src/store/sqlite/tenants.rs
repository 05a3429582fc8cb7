//! The SQLite backend of `TenantStore`: the operator token, institutions
//! and their admin keys.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::engine::sql_error;
use super::{SqliteStore, page_of};
use crate::error::StoreError;
use crate::model::*;
use crate::secrets::TokenHash;
use crate::store::{Page, PageQuery, StoreResult, TenantStore, new_id};

pub(super) fn operator_token_hash(conn: &Connection) -> StoreResult<Option<TokenHash>> {
    conn.query_row(
        "SELECT value FROM settings WHERE name = 'operator_token_hash'",
        [],
        |row| row.get::<_, String>(0),
    )
    .optional()
    .map(|value| value.map(TokenHash::from_hex))
    .map_err(sql_error)
}

pub(super) fn init_operator_token_hash(conn: &Connection, hash: &TokenHash) -> StoreResult<bool> {
    let inserted = conn
        .execute(
            "INSERT INTO settings (name, value) VALUES ('operator_token_hash', ?1)
             ON CONFLICT (name) DO NOTHING",
            params![hash.as_hex()],
        )
        .map_err(sql_error)?;
    Ok(inserted == 1)
}

fn institution_from_row(row: &Row<'_>) -> rusqlite::Result<Institution> {
    Ok(Institution {
        institution_id: row.get(0)?,
        display_name: row.get(1)?,
        created_at: Timestamp(row.get(2)?),
    })
}

pub(super) fn create_institution(
    conn: &Connection,
    display_name: &str,
    now: Timestamp,
) -> StoreResult<Institution> {
    let institution = Institution {
        institution_id: new_id("inst"),
        display_name: display_name.to_string(),
        created_at: now,
    };
    conn.execute(
        "INSERT INTO institutions (institution_id, display_name, created_ms) VALUES (?1, ?2, ?3)",
        params![institution.institution_id, institution.display_name, now.0],
    )
    .map_err(sql_error)?;
    Ok(institution)
}

pub(super) fn get_institution(conn: &Connection, institution_id: &str) -> StoreResult<Institution> {
    conn.query_row(
        "SELECT institution_id, display_name, created_ms FROM institutions WHERE institution_id = ?1",
        params![institution_id],
        institution_from_row,
    )
    .optional()
    .map_err(sql_error)?
    .ok_or_else(|| StoreError::not_found(format!("institution {institution_id}")))
}

pub(super) fn list_institutions(
    conn: &Connection,
    page: &PageQuery,
) -> StoreResult<Page<Institution>> {
    let mut statement = conn
        .prepare_cached(
            "SELECT institution_id, display_name, created_ms FROM institutions
             WHERE institution_id > ?1 ORDER BY institution_id LIMIT ?2",
        )
        .map_err(sql_error)?;
    let rows = statement
        .query_map(
            params![page.after.as_deref().unwrap_or(""), page.limit() + 1],
            institution_from_row,
        )
        .map_err(sql_error)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql_error)?;
    Ok(page_of(rows, page, |i| &i.institution_id))
}

const ADMIN_KEY_COLUMNS: &str = "key_id, institution_id, name, created_ms, revoked_ms";

fn admin_key_from_row(row: &Row<'_>) -> rusqlite::Result<AdminKey> {
    Ok(AdminKey {
        key_id: row.get(0)?,
        institution_id: row.get(1)?,
        name: row.get(2)?,
        created_at: Timestamp(row.get(3)?),
        revoked_at: row.get::<_, Option<i64>>(4)?.map(Timestamp),
    })
}

pub(super) fn create_admin_key(
    conn: &Connection,
    institution_id: &str,
    name: &str,
    hash: &TokenHash,
    now: Timestamp,
) -> StoreResult<AdminKey> {
    get_institution(conn, institution_id)?;
    let key = AdminKey {
        key_id: new_id("key"),
        institution_id: institution_id.to_string(),
        name: name.to_string(),
        created_at: now,
        revoked_at: None,
    };
    conn.execute(
        "INSERT INTO admin_keys (key_id, institution_id, name, key_hash, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![key.key_id, key.institution_id, key.name, hash.as_hex(), now.0],
    )
    .map_err(sql_error)?;
    Ok(key)
}

pub(super) fn get_admin_key(conn: &Connection, key_id: &str) -> StoreResult<AdminKey> {
    conn.query_row(
        &format!("SELECT {ADMIN_KEY_COLUMNS} FROM admin_keys WHERE key_id = ?1"),
        params![key_id],
        admin_key_from_row,
    )
    .optional()
    .map_err(sql_error)?
    .ok_or_else(|| StoreError::not_found(format!("admin key {key_id}")))
}

pub(super) fn list_admin_keys(
    conn: &Connection,
    institution_id: &str,
    page: &PageQuery,
) -> StoreResult<Page<AdminKey>> {
    let mut statement = conn
        .prepare_cached(&format!(
            "SELECT {ADMIN_KEY_COLUMNS} FROM admin_keys
             WHERE institution_id = ?1 AND key_id > ?2 ORDER BY key_id LIMIT ?3"
        ))
        .map_err(sql_error)?;
    let rows = statement
        .query_map(
            params![
                institution_id,
                page.after.as_deref().unwrap_or(""),
                page.limit() + 1
            ],
            admin_key_from_row,
        )
        .map_err(sql_error)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql_error)?;
    Ok(page_of(rows, page, |k| &k.key_id))
}

pub(super) fn revoke_admin_key(
    conn: &Connection,
    key_id: &str,
    now: Timestamp,
) -> StoreResult<AdminKey> {
    conn.execute(
        "UPDATE admin_keys SET revoked_ms = ?2 WHERE key_id = ?1 AND revoked_ms IS NULL",
        params![key_id, now.0],
    )
    .map_err(sql_error)?;
    get_admin_key(conn, key_id)
}

pub(super) fn find_admin_key(conn: &Connection, hash: &TokenHash) -> StoreResult<Option<AdminKey>> {
    conn.prepare_cached(&format!(
        "SELECT {ADMIN_KEY_COLUMNS} FROM admin_keys WHERE key_hash = ?1 AND revoked_ms IS NULL"
    ))
    .map_err(sql_error)?
    .query_row(params![hash.as_hex()], admin_key_from_row)
    .optional()
    .map_err(sql_error)
}

#[async_trait]
impl TenantStore for SqliteStore {
    async fn operator_token_hash(&self) -> StoreResult<Option<TokenHash>> {
        self.engine.read(operator_token_hash).await
    }

    async fn init_operator_token_hash(&self, hash: TokenHash) -> StoreResult<bool> {
        self.engine
            .write(move |c| init_operator_token_hash(c, &hash))
            .await
    }

    async fn create_institution(
        &self,
        display_name: &str,
        now: Timestamp,
    ) -> StoreResult<Institution> {
        let display_name = display_name.to_string();
        self.engine
            .write(move |c| create_institution(c, &display_name, now))
            .await
    }

    async fn get_institution(&self, institution_id: &str) -> StoreResult<Institution> {
        self.engine
            .read_point(|c| get_institution(c, institution_id))
    }

    async fn list_institutions(&self, page: &PageQuery) -> StoreResult<Page<Institution>> {
        let page = page.clone();
        self.engine.read(move |c| list_institutions(c, &page)).await
    }

    async fn create_admin_key(&self, key: NewAdminKey) -> StoreResult<AdminKey> {
        self.engine
            .write(move |c| create_admin_key(c, &key.institution_id, &key.name, &key.hash, key.now))
            .await
    }

    async fn get_admin_key(&self, key_id: &str) -> StoreResult<AdminKey> {
        self.engine.read_point(|c| get_admin_key(c, key_id))
    }

    async fn list_admin_keys(
        &self,
        institution_id: &str,
        page: &PageQuery,
    ) -> StoreResult<Page<AdminKey>> {
        let (institution_id, page) = (institution_id.to_string(), page.clone());
        self.engine
            .read(move |c| list_admin_keys(c, &institution_id, &page))
            .await
    }

    async fn revoke_admin_key(&self, key_id: &str, now: Timestamp) -> StoreResult<AdminKey> {
        let key_id = key_id.to_string();
        self.engine
            .write(move |c| revoke_admin_key(c, &key_id, now))
            .await
    }

    async fn find_admin_key(&self, hash: &TokenHash) -> StoreResult<Option<AdminKey>> {
        self.engine.read_point(|c| find_admin_key(c, hash))
    }
}
