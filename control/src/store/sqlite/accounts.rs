//! The SQLite backend of `AccountStore`: Zoom accounts, each bound to one
//! institution, and their sealed OAuth credentials.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::engine::sql_error;
use super::{SqliteStore, page_of};
use crate::error::StoreError;
use crate::model::*;
use crate::secrets::Sealed;
use crate::store::{AccountStore, Page, PageQuery, StoreResult};

pub(super) const ACCOUNT_COLUMNS: &str =
    "zoom_account_id, institution_id, configuration_id, plan, installed_ms,
    uninstalled_ms, oauth_client_id, oauth_client_secret_sealed";

pub(super) fn account_from_row(row: &Row<'_>) -> rusqlite::Result<ZoomAccount> {
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

#[async_trait]
impl AccountStore for SqliteStore {
    async fn install_account(&self, install: AccountInstall) -> StoreResult<ZoomAccount> {
        self.engine
            .write(move |c| install_account(c, &install))
            .await
    }

    async fn get_account(
        &self,
        institution_id: &str,
        zoom_account_id: &str,
    ) -> StoreResult<ZoomAccount> {
        self.engine
            .read_point(|c| get_account(c, institution_id, zoom_account_id))
    }

    async fn list_accounts(
        &self,
        institution_id: &str,
        include_uninstalled: bool,
        page: &PageQuery,
    ) -> StoreResult<Page<ZoomAccount>> {
        let (institution_id, page) = (institution_id.to_string(), page.clone());
        self.engine
            .read(move |c| list_accounts(c, &institution_id, include_uninstalled, &page))
            .await
    }

    async fn uninstall_account(&self, uninstall: AccountUninstall) -> StoreResult<ZoomAccount> {
        self.engine
            .write(move |c| {
                uninstall_account(
                    c,
                    uninstall.institution_id.as_deref(),
                    &uninstall.zoom_account_id,
                    uninstall.now,
                )
            })
            .await
    }

    async fn installed_account(&self, zoom_account_id: &str) -> StoreResult<Option<ZoomAccount>> {
        self.engine
            .read_point(|c| installed_account(c, zoom_account_id))
    }
}
