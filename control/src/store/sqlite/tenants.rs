//! Institutions, admin keys, Zoom configurations and Zoom accounts.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::engine::sql_error;
use super::{is_unique_violation, page_of};
use crate::error::StoreError;
use crate::model::*;
use crate::secrets::{Sealed, TokenHash};
use crate::store::{Page, PageQuery, StoreResult, new_id};

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

const CONFIGURATION_COLUMNS: &str = "c.configuration_id, c.institution_id, c.display_name, c.view_priority,
    c.created_ms, c.token_issued_ms,
    (SELECT COUNT(*) FROM zoom_accounts a WHERE a.configuration_id = c.configuration_id AND a.uninstalled_ms IS NULL)";

fn configuration_from_row(row: &Row<'_>) -> rusqlite::Result<ZoomConfiguration> {
    let view_priority: String = row.get(3)?;
    Ok(ZoomConfiguration {
        configuration_id: row.get(0)?,
        institution_id: row.get(1)?,
        display_name: row.get(2)?,
        view_priority: split_list(&view_priority),
        created_at: Timestamp(row.get(4)?),
        token_issued_at: Timestamp(row.get(5)?),
        installed_account_count: row.get(6)?,
    })
}

fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn name_key(display_name: &str) -> String {
    display_name.trim().to_lowercase()
}

fn duplicate_configuration_name(display_name: &str) -> StoreError {
    StoreError::AlreadyExists(format!(
        "display_name: a zoom configuration named {display_name:?} already exists in this institution"
    ))
}

pub(super) fn create_configuration(
    conn: &Connection,
    institution_id: &str,
    display_name: &str,
    view_priority: &[String],
    token_hash: &TokenHash,
    now: Timestamp,
) -> StoreResult<ZoomConfiguration> {
    get_institution(conn, institution_id)?;
    let configuration_id = new_id("zcfg");
    conn.execute(
        "INSERT INTO zoom_configurations
            (configuration_id, institution_id, display_name, name_key, view_priority, token_hash, created_ms, token_issued_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        params![
            configuration_id,
            institution_id,
            display_name,
            name_key(display_name),
            view_priority.join(","),
            token_hash.as_hex(),
            now.0
        ],
    )
    .map_err(|e| {
        if is_unique_violation(&e) {
            duplicate_configuration_name(display_name)
        } else {
            sql_error(e)
        }
    })?;
    get_configuration(conn, institution_id, &configuration_id)
}

pub(super) fn get_configuration(
    conn: &Connection,
    institution_id: &str,
    configuration_id: &str,
) -> StoreResult<ZoomConfiguration> {
    // Cached: the intake reads the configuration for every webhook.
    conn.prepare_cached(&format!(
        "SELECT {CONFIGURATION_COLUMNS} FROM zoom_configurations c
         WHERE c.institution_id = ?1 AND c.configuration_id = ?2"
    ))
    .map_err(sql_error)?
    .query_row(
        params![institution_id, configuration_id],
        configuration_from_row,
    )
    .optional()
    .map_err(sql_error)?
    .ok_or_else(|| StoreError::not_found(format!("zoom configuration {configuration_id}")))
}

pub(super) fn list_configurations(
    conn: &Connection,
    institution_id: &str,
    page: &PageQuery,
) -> StoreResult<Page<ZoomConfiguration>> {
    let mut statement = conn
        .prepare_cached(&format!(
            "SELECT {CONFIGURATION_COLUMNS} FROM zoom_configurations c
             WHERE c.institution_id = ?1 AND c.configuration_id > ?2 ORDER BY c.configuration_id LIMIT ?3"
        ))
        .map_err(sql_error)?;
    let rows = statement
        .query_map(
            params![
                institution_id,
                page.after.as_deref().unwrap_or(""),
                page.limit() + 1
            ],
            configuration_from_row,
        )
        .map_err(sql_error)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql_error)?;
    Ok(page_of(rows, page, |c| &c.configuration_id))
}

pub(super) fn update_configuration(
    conn: &Connection,
    institution_id: &str,
    configuration_id: &str,
    update: &ConfigurationUpdate,
) -> StoreResult<ZoomConfiguration> {
    let current = get_configuration(conn, institution_id, configuration_id)?;
    let display_name = update
        .display_name
        .as_deref()
        .unwrap_or(&current.display_name);
    let view_priority = update
        .view_priority
        .as_ref()
        .unwrap_or(&current.view_priority);
    conn.execute(
        "UPDATE zoom_configurations SET display_name = ?3, name_key = ?4, view_priority = ?5
         WHERE institution_id = ?1 AND configuration_id = ?2",
        params![
            institution_id,
            configuration_id,
            display_name,
            name_key(display_name),
            view_priority.join(",")
        ],
    )
    .map_err(|e| {
        if is_unique_violation(&e) {
            duplicate_configuration_name(display_name)
        } else {
            sql_error(e)
        }
    })?;
    get_configuration(conn, institution_id, configuration_id)
}

pub(super) fn rotate_configuration_token(
    conn: &Connection,
    institution_id: &str,
    configuration_id: &str,
    token_hash: &TokenHash,
    now: Timestamp,
) -> StoreResult<ZoomConfiguration> {
    let changed = conn
        .execute(
            "UPDATE zoom_configurations SET token_hash = ?3, token_issued_ms = ?4
             WHERE institution_id = ?1 AND configuration_id = ?2",
            params![institution_id, configuration_id, token_hash.as_hex(), now.0],
        )
        .map_err(sql_error)?;
    if changed == 0 {
        return Err(StoreError::not_found(format!(
            "zoom configuration {configuration_id}"
        )));
    }
    get_configuration(conn, institution_id, configuration_id)
}

pub(super) fn delete_configuration(
    conn: &Connection,
    institution_id: &str,
    configuration_id: &str,
    now: Timestamp,
) -> StoreResult<Vec<String>> {
    get_configuration(conn, institution_id, configuration_id)?;
    let uninstalled = conn
        .prepare(
            "UPDATE zoom_accounts SET uninstalled_ms = ?2
             WHERE configuration_id = ?1 AND uninstalled_ms IS NULL RETURNING zoom_account_id",
        )
        .map_err(sql_error)?
        .query_map(params![configuration_id, now.0], |row| {
            row.get::<_, String>(0)
        })
        .map_err(sql_error)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql_error)?;
    conn.execute(
        "DELETE FROM zoom_configurations WHERE institution_id = ?1 AND configuration_id = ?2",
        params![institution_id, configuration_id],
    )
    .map_err(sql_error)?;
    let mut uninstalled = uninstalled;
    uninstalled.sort();
    Ok(uninstalled)
}

pub(super) fn find_configuration_by_token(
    conn: &Connection,
    hash: &TokenHash,
) -> StoreResult<Option<ZoomConfiguration>> {
    conn.query_row(
        &format!(
            "SELECT {CONFIGURATION_COLUMNS} FROM zoom_configurations c WHERE c.token_hash = ?1"
        ),
        params![hash.as_hex()],
        configuration_from_row,
    )
    .optional()
    .map_err(sql_error)
}

const ACCOUNT_COLUMNS: &str =
    "zoom_account_id, institution_id, configuration_id, plan, installed_ms,
    uninstalled_ms, oauth_client_id, oauth_client_secret_sealed";

fn account_from_row(row: &Row<'_>) -> rusqlite::Result<ZoomAccount> {
    let plan: String = row.get(3)?;
    let client_id: Option<String> = row.get(6)?;
    let sealed: Option<Vec<u8>> = row.get(7)?;
    Ok(ZoomAccount {
        zoom_account_id: row.get(0)?,
        institution_id: row.get(1)?,
        configuration_id: row.get(2)?,
        plan: ZoomPlan::parse(&plan).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                3,
                rusqlite::types::Type::Text,
                format!("unknown plan {plan}").into(),
            )
        })?,
        installed_at: Timestamp(row.get(4)?),
        uninstalled_at: row.get::<_, Option<i64>>(5)?.map(Timestamp),
        oauth: match (client_id, sealed) {
            (Some(client_id), Some(sealed)) => Some(SealedOAuthCredentials {
                client_id,
                sealed_client_secret: Sealed(sealed),
            }),
            _ => None,
        },
    })
}

fn find_account(conn: &Connection, zoom_account_id: &str) -> StoreResult<Option<ZoomAccount>> {
    conn.prepare_cached(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM zoom_accounts WHERE zoom_account_id = ?1"
    ))
    .map_err(sql_error)?
    .query_row(params![zoom_account_id], account_from_row)
    .optional()
    .map_err(sql_error)
}

pub(super) fn install_account(
    conn: &Connection,
    install: &AccountInstall,
) -> StoreResult<ZoomAccount> {
    let institution_id: String = conn
        .query_row(
            "SELECT institution_id FROM zoom_configurations WHERE configuration_id = ?1",
            params![install.configuration_id],
            |row| row.get(0),
        )
        .optional()
        .map_err(sql_error)?
        .ok_or_else(|| {
            StoreError::not_found(format!("zoom configuration {}", install.configuration_id))
        })?;
    let (client_id, sealed) = match &install.oauth {
        Some(oauth) => (
            Some(oauth.client_id.clone()),
            Some(oauth.sealed_client_secret.0.clone()),
        ),
        None => (None, None),
    };
    match find_account(conn, &install.zoom_account_id)? {
        Some(existing) if existing.is_installed() && existing.institution_id != institution_id => {
            Err(StoreError::AlreadyExists(format!(
                "zoom account {} is already bound to another institution; it must be uninstalled there first",
                install.zoom_account_id
            )))
        }
        Some(existing)
            if existing.is_installed() && existing.configuration_id != install.configuration_id =>
        {
            Err(StoreError::AlreadyExists(format!(
                "zoom account {} is already installed with configuration {}; uninstall it first",
                install.zoom_account_id, existing.configuration_id
            )))
        }
        Some(existing) if existing.is_installed() => {
            // Idempotent re-install: installed_at stays, so recordings made
            // between the two installs are still ingested.
            conn.execute(
                "UPDATE zoom_accounts SET plan = ?2,
                    oauth_client_id = COALESCE(?3, oauth_client_id),
                    oauth_client_secret_sealed = COALESCE(?4, oauth_client_secret_sealed)
                 WHERE zoom_account_id = ?1",
                params![
                    install.zoom_account_id,
                    install.plan.as_str(),
                    client_id,
                    sealed
                ],
            )
            .map_err(sql_error)?;
            find_account(conn, &install.zoom_account_id)?.ok_or_else(|| {
                StoreError::not_found(format!("zoom account {}", install.zoom_account_id))
            })
        }
        _ => {
            conn.execute(
                "INSERT INTO zoom_accounts (zoom_account_id, institution_id, configuration_id, plan, installed_ms,
                    uninstalled_ms, oauth_client_id, oauth_client_secret_sealed)
                 VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6, ?7)
                 ON CONFLICT (zoom_account_id) DO UPDATE SET institution_id = excluded.institution_id,
                    configuration_id = excluded.configuration_id, plan = excluded.plan,
                    installed_ms = excluded.installed_ms, uninstalled_ms = NULL,
                    oauth_client_id = excluded.oauth_client_id,
                    oauth_client_secret_sealed = excluded.oauth_client_secret_sealed",
                params![
                    install.zoom_account_id,
                    institution_id,
                    install.configuration_id,
                    install.plan.as_str(),
                    install.now.0,
                    client_id,
                    sealed
                ],
            )
            .map_err(sql_error)?;
            find_account(conn, &install.zoom_account_id)?.ok_or_else(|| {
                StoreError::not_found(format!("zoom account {}", install.zoom_account_id))
            })
        }
    }
}

pub(super) fn get_account(
    conn: &Connection,
    institution_id: &str,
    zoom_account_id: &str,
) -> StoreResult<ZoomAccount> {
    match find_account(conn, zoom_account_id)? {
        Some(account) if account.institution_id == institution_id => Ok(account),
        _ => Err(StoreError::not_found(format!(
            "zoom account {zoom_account_id}"
        ))),
    }
}

pub(super) fn list_accounts(
    conn: &Connection,
    institution_id: &str,
    include_uninstalled: bool,
    page: &PageQuery,
) -> StoreResult<Page<ZoomAccount>> {
    let mut statement = conn
        .prepare_cached(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM zoom_accounts
             WHERE institution_id = ?1 AND zoom_account_id > ?2 AND (?3 OR uninstalled_ms IS NULL)
             ORDER BY zoom_account_id LIMIT ?4"
        ))
        .map_err(sql_error)?;
    let rows = statement
        .query_map(
            params![
                institution_id,
                page.after.as_deref().unwrap_or(""),
                include_uninstalled,
                page.limit() + 1
            ],
            account_from_row,
        )
        .map_err(sql_error)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql_error)?;
    Ok(page_of(rows, page, |a| &a.zoom_account_id))
}

pub(super) fn uninstall_account(
    conn: &Connection,
    institution_id: Option<&str>,
    zoom_account_id: &str,
    now: Timestamp,
) -> StoreResult<ZoomAccount> {
    let account = match (find_account(conn, zoom_account_id)?, institution_id) {
        (Some(account), Some(institution_id)) if account.institution_id != institution_id => None,
        (account, _) => account,
    }
    .ok_or_else(|| StoreError::not_found(format!("zoom account {zoom_account_id}")))?;
    if account.is_installed() {
        conn.execute(
            "UPDATE zoom_accounts SET uninstalled_ms = ?2 WHERE zoom_account_id = ?1",
            params![zoom_account_id, now.0],
        )
        .map_err(sql_error)?;
    }
    find_account(conn, zoom_account_id)?
        .ok_or_else(|| StoreError::not_found(format!("zoom account {zoom_account_id}")))
}

pub(super) fn installed_account(
    conn: &Connection,
    zoom_account_id: &str,
) -> StoreResult<Option<ZoomAccount>> {
    Ok(find_account(conn, zoom_account_id)?.filter(ZoomAccount::is_installed))
}
