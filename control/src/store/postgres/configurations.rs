//! The PostgreSQL backend of `ConfigurationStore`: Zoom configurations, their
//! unique names (a unique constraint, so two replicas creating the same name
//! at once yield one configuration and one AlreadyExists) and their tokens'
//! hashes.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::tenants::get_institution;
use super::{
    PostgresStore, get, get_time, get_u32, is_unique_violation, page_after, page_limit, page_of,
    pg_error,
};
use crate::error::StoreError;
use crate::model::*;
use crate::secrets::TokenHash;
use crate::store::{ConfigurationStore, Page, PageQuery, StoreResult, new_id};

const CONFIGURATION_COLUMNS: &str = "c.configuration_id, c.institution_id, c.display_name, c.view_priority,
    c.created_ms, c.token_issued_ms,
    (SELECT COUNT(*) FROM zoom_accounts a WHERE a.configuration_id = c.configuration_id AND a.uninstalled_ms IS NULL),
    c.ingest_mode, c.after_copy";

fn configuration_from_row(row: &Row) -> StoreResult<ZoomConfiguration> {
    let view_priority: String = get(row, 3)?;
    Ok(ZoomConfiguration {
        configuration_id: get(row, 0)?,
        institution_id: get(row, 1)?,
        display_name: get(row, 2)?,
        view_priority: view_priority
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        created_at: get_time(row, 4)?,
        token_issued_at: get_time(row, 5)?,
        installed_account_count: get_u32(row, 6)?,
        ingest_mode: {
            let mode: String = get(row, 7)?;
            IngestMode::parse(&mode)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown ingest mode {mode}")))?
        },
        after_copy: {
            let action: String = get(row, 8)?;
            AfterCopy::parse(&action)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown after-copy action {action}")))?
        },
    })
}

fn name_key(display_name: &str) -> String {
    display_name.trim().to_lowercase()
}

fn name_error(display_name: &str, error: tokio_postgres::Error) -> StoreError {
    if is_unique_violation(&error) {
        StoreError::AlreadyExists(format!(
            "display_name: a zoom configuration named {display_name:?} already exists in this institution"
        ))
    } else {
        pg_error(error)
    }
}

/// The configuration; with `lock`, its row is locked until the transaction ends.
pub(super) async fn get_configuration(
    c: &impl GenericClient,
    institution_id: &str,
    configuration_id: &str,
    lock: bool,
) -> StoreResult<ZoomConfiguration> {
    let lock = if lock { " FOR UPDATE OF c" } else { "" };
    // Every webhook reads its configuration: prepared once per connection.
    let select = c
        .prepare_cached(&format!(
            "SELECT {CONFIGURATION_COLUMNS} FROM zoom_configurations c
             WHERE c.institution_id = $1 AND c.configuration_id = $2{lock}"
        ))
        .await
        .map_err(pg_error)?;
    let row = c
        .query_opt(&select, &[&institution_id, &configuration_id])
        .await
        .map_err(pg_error)?
        .ok_or_else(|| StoreError::not_found(format!("zoom configuration {configuration_id}")))?;
    configuration_from_row(&row)
}

#[async_trait]
impl ConfigurationStore for PostgresStore {
    async fn create_configuration(
        &self,
        configuration: NewConfiguration,
    ) -> StoreResult<ZoomConfiguration> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        get_institution(&tx, &configuration.institution_id, false).await?;
        let configuration_id = new_id("zcfg");
        tx.execute(
            "INSERT INTO zoom_configurations
                (configuration_id, institution_id, display_name, name_key, view_priority, token_hash, created_ms,
                 token_issued_ms, ingest_mode, after_copy)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9)",
            &[
                &configuration_id,
                &configuration.institution_id,
                &configuration.display_name,
                &name_key(&configuration.display_name),
                &configuration.view_priority.join(","),
                &configuration.token_hash.as_hex(),
                &configuration.now.0,
                &configuration.policy.ingest_mode.as_str(),
                &configuration.policy.after_copy.as_str(),
            ],
        )
        .await
        .map_err(|e| name_error(&configuration.display_name, e))?;
        let created =
            get_configuration(&tx, &configuration.institution_id, &configuration_id, false).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(created)
    }

    async fn get_configuration(
        &self,
        institution_id: &str,
        configuration_id: &str,
    ) -> StoreResult<ZoomConfiguration> {
        get_configuration(
            &self.client().await?,
            institution_id,
            configuration_id,
            false,
        )
        .await
    }

    async fn list_configurations(
        &self,
        institution_id: &str,
        page: &PageQuery,
    ) -> StoreResult<Page<ZoomConfiguration>> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {CONFIGURATION_COLUMNS} FROM zoom_configurations c
                     WHERE c.institution_id = $1 AND c.configuration_id > $2
                     ORDER BY c.configuration_id LIMIT $3"
                ),
                &[&institution_id, &page_after(page), &page_limit(page)],
            )
            .await
            .map_err(pg_error)?;
        let rows = rows
            .iter()
            .map(configuration_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(page_of(rows, page, |c| &c.configuration_id))
    }

    async fn update_configuration(
        &self,
        institution_id: &str,
        configuration_id: &str,
        update: ConfigurationUpdate,
    ) -> StoreResult<ZoomConfiguration> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let current = get_configuration(&tx, institution_id, configuration_id, true).await?;
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
        tx.execute(
            "UPDATE zoom_configurations SET display_name = $3, name_key = $4, view_priority = $5,
                ingest_mode = $6, after_copy = $7
             WHERE institution_id = $1 AND configuration_id = $2",
            &[
                &institution_id,
                &configuration_id,
                &display_name,
                &name_key(display_name),
                &view_priority.join(","),
                &ingest_mode.as_str(),
                &after_copy.as_str(),
            ],
        )
        .await
        .map_err(|e| name_error(display_name, e))?;
        let updated = get_configuration(&tx, institution_id, configuration_id, false).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(updated)
    }

    async fn rotate_configuration_token(
        &self,
        rotation: TokenRotation,
    ) -> StoreResult<ZoomConfiguration> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let changed = tx
            .execute(
                "UPDATE zoom_configurations SET token_hash = $3, token_issued_ms = $4
                 WHERE institution_id = $1 AND configuration_id = $2",
                &[
                    &rotation.institution_id,
                    &rotation.configuration_id,
                    &rotation.token_hash.as_hex(),
                    &rotation.now.0,
                ],
            )
            .await
            .map_err(pg_error)?;
        if changed == 0 {
            return Err(StoreError::not_found(format!(
                "zoom configuration {}",
                rotation.configuration_id
            )));
        }
        let rotated = get_configuration(
            &tx,
            &rotation.institution_id,
            &rotation.configuration_id,
            false,
        )
        .await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(rotated)
    }

    async fn delete_configuration(
        &self,
        institution_id: &str,
        configuration_id: &str,
        now: Timestamp,
    ) -> StoreResult<Vec<String>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        // The lock makes a concurrent install with this configuration wait,
        // then find it gone, rather than bind an account to a deleted one.
        get_configuration(&tx, institution_id, configuration_id, true).await?;
        let rows = tx
            .query(
                "UPDATE zoom_accounts SET uninstalled_ms = $2
                 WHERE configuration_id = $1 AND uninstalled_ms IS NULL RETURNING zoom_account_id",
                &[&configuration_id, &now.0],
            )
            .await
            .map_err(pg_error)?;
        let mut uninstalled = rows
            .iter()
            .map(|row| get::<String>(row, 0))
            .collect::<StoreResult<Vec<_>>>()?;
        tx.execute(
            "DELETE FROM zoom_configurations WHERE institution_id = $1 AND configuration_id = $2",
            &[&institution_id, &configuration_id],
        )
        .await
        .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        uninstalled.sort();
        Ok(uninstalled)
    }

    async fn find_configuration_by_token(
        &self,
        hash: &TokenHash,
    ) -> StoreResult<Option<ZoomConfiguration>> {
        let row = self
            .client()
            .await?
            .query_opt(
                &format!(
                    "SELECT {CONFIGURATION_COLUMNS} FROM zoom_configurations c WHERE c.token_hash = $1"
                ),
                &[&hash.as_hex()],
            )
            .await
            .map_err(pg_error)?;
        row.as_ref().map(configuration_from_row).transpose()
    }
}
