//! The SQLite backend of `ConfigurationStore`: Zoom configurations, their
//! unique names and their tokens' hashes.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::engine::sql_error;
use super::tenants::get_institution;
use super::{SqliteStore, is_unique_violation, page_of};
use crate::error::StoreError;
use crate::model::*;
use crate::secrets::TokenHash;
use crate::store::{ConfigurationStore, Page, PageQuery, StoreResult, new_id};

const CONFIGURATION_COLUMNS: &str = "c.configuration_id, c.institution_id, c.display_name, c.view_priority,
    c.created_ms, c.token_issued_ms,
    (SELECT COUNT(*) FROM zoom_accounts a WHERE a.configuration_id = c.configuration_id AND a.uninstalled_ms IS NULL),
    c.ingest_mode, c.after_copy";

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
        ingest_mode: {
            let mode: String = row.get(7)?;
            IngestMode::parse(&mode)
                .ok_or_else(|| conversion_error(7, format!("unknown ingest mode {mode}")))?
        },
        after_copy: {
            let action: String = row.get(8)?;
            AfterCopy::parse(&action)
                .ok_or_else(|| conversion_error(8, format!("unknown after-copy action {action}")))?
        },
    })
}

fn conversion_error(column: usize, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, message.into())
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
    policy: ConfigurationPolicy,
    token_hash: &TokenHash,
    now: Timestamp,
) -> StoreResult<ZoomConfiguration> {
    get_institution(conn, institution_id)?;
    let configuration_id = new_id("zcfg");
    conn.execute(
        "INSERT INTO zoom_configurations
            (configuration_id, institution_id, display_name, name_key, view_priority, token_hash, created_ms,
             token_issued_ms, ingest_mode, after_copy)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9)",
        params![
            configuration_id,
            institution_id,
            display_name,
            name_key(display_name),
            view_priority.join(","),
            token_hash.as_hex(),
            now.0,
            policy.ingest_mode.as_str(),
            policy.after_copy.as_str()
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
    let ingest_mode = update.ingest_mode.unwrap_or(current.ingest_mode);
    let after_copy = update.after_copy.unwrap_or(current.after_copy);
    conn.execute(
        "UPDATE zoom_configurations SET display_name = ?3, name_key = ?4, view_priority = ?5,
            ingest_mode = ?6, after_copy = ?7
         WHERE institution_id = ?1 AND configuration_id = ?2",
        params![
            institution_id,
            configuration_id,
            display_name,
            name_key(display_name),
            view_priority.join(","),
            ingest_mode.as_str(),
            after_copy.as_str()
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

#[async_trait]
impl ConfigurationStore for SqliteStore {
    async fn create_configuration(
        &self,
        configuration: NewConfiguration,
    ) -> StoreResult<ZoomConfiguration> {
        self.engine
            .write(move |c| {
                create_configuration(
                    c,
                    &configuration.institution_id,
                    &configuration.display_name,
                    &configuration.view_priority,
                    configuration.policy,
                    &configuration.token_hash,
                    configuration.now,
                )
            })
            .await
    }

    async fn get_configuration(
        &self,
        institution_id: &str,
        configuration_id: &str,
    ) -> StoreResult<ZoomConfiguration> {
        self.engine
            .read_point(|c| get_configuration(c, institution_id, configuration_id))
    }

    async fn list_configurations(
        &self,
        institution_id: &str,
        page: &PageQuery,
    ) -> StoreResult<Page<ZoomConfiguration>> {
        let (institution_id, page) = (institution_id.to_string(), page.clone());
        self.engine
            .read(move |c| list_configurations(c, &institution_id, &page))
            .await
    }

    async fn update_configuration(
        &self,
        institution_id: &str,
        configuration_id: &str,
        update: ConfigurationUpdate,
    ) -> StoreResult<ZoomConfiguration> {
        let (institution_id, configuration_id) =
            (institution_id.to_string(), configuration_id.to_string());
        self.engine
            .write(move |c| update_configuration(c, &institution_id, &configuration_id, &update))
            .await
    }

    async fn rotate_configuration_token(
        &self,
        rotation: TokenRotation,
    ) -> StoreResult<ZoomConfiguration> {
        self.engine
            .write(move |c| {
                rotate_configuration_token(
                    c,
                    &rotation.institution_id,
                    &rotation.configuration_id,
                    &rotation.token_hash,
                    rotation.now,
                )
            })
            .await
    }

    async fn delete_configuration(
        &self,
        institution_id: &str,
        configuration_id: &str,
        now: Timestamp,
    ) -> StoreResult<Vec<String>> {
        let (institution_id, configuration_id) =
            (institution_id.to_string(), configuration_id.to_string());
        self.engine
            .write(move |c| delete_configuration(c, &institution_id, &configuration_id, now))
            .await
    }

    async fn find_configuration_by_token(
        &self,
        hash: &TokenHash,
    ) -> StoreResult<Option<ZoomConfiguration>> {
        self.engine
            .read_point(|c| find_configuration_by_token(c, hash))
    }
}
