//! The PostgreSQL backend of `AccountStore`: Zoom accounts, each bound to one
//! institution, and their sealed OAuth credentials. An install decides under
//! a transaction-scoped advisory lock on the account id, so two replicas
//! installing the same account into two institutions at once bind it once.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{
    PostgresStore, get, get_opt_time, get_time, page_after, page_limit, page_of, pg_error,
};
use crate::error::StoreError;
use crate::model::*;
use crate::secrets::Sealed;
use crate::store::{AccountStore, Page, PageQuery, StoreResult};

pub(super) const ACCOUNT_COLUMNS: &str =
    "zoom_account_id, institution_id, configuration_id, plan, installed_ms,
    uninstalled_ms, oauth_client_id, oauth_client_secret_sealed";

pub(super) fn account_from_row(row: &Row) -> StoreResult<ZoomAccount> {
    let plan: String = get(row, 3)?;
    let client_id: Option<String> = get(row, 6)?;
    let sealed: Option<Vec<u8>> = get(row, 7)?;
    Ok(ZoomAccount {
        zoom_account_id: get(row, 0)?,
        institution_id: get(row, 1)?,
        configuration_id: get(row, 2)?,
        plan: ZoomPlan::parse(&plan)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown plan {plan}")))?,
        installed_at: get_time(row, 4)?,
        uninstalled_at: get_opt_time(row, 5)?,
        oauth: match (client_id, sealed) {
            (Some(client_id), Some(sealed)) => Some(SealedOAuthCredentials {
                client_id,
                sealed_client_secret: Sealed(sealed),
            }),
            _ => None,
        },
    })
}

async fn find_account(
    c: &impl GenericClient,
    zoom_account_id: &str,
) -> StoreResult<Option<ZoomAccount>> {
    // Every webhook reads its account: prepared once per connection.
    let select = c
        .prepare_cached(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM zoom_accounts WHERE zoom_account_id = $1"
        ))
        .await
        .map_err(pg_error)?;
    let row = c
        .query_opt(&select, &[&zoom_account_id])
        .await
        .map_err(pg_error)?;
    row.as_ref().map(account_from_row).transpose()
}

async fn account_by_id(c: &impl GenericClient, zoom_account_id: &str) -> StoreResult<ZoomAccount> {
    find_account(c, zoom_account_id)
        .await?
        .ok_or_else(|| StoreError::not_found(format!("zoom account {zoom_account_id}")))
}

/// Serialises decisions about one account until the transaction ends, also
/// when its row does not exist yet (a row lock would not).
async fn lock_account(c: &impl GenericClient, zoom_account_id: &str) -> StoreResult<()> {
    c.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('zoom_account:' || $1, 0))",
        &[&zoom_account_id],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
}

#[async_trait]
impl AccountStore for PostgresStore {
    async fn install_account(&self, install: AccountInstall) -> StoreResult<ZoomAccount> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        lock_account(&tx, &install.zoom_account_id).await?;
        // FOR SHARE: a concurrent delete of the configuration waits for us, or
        // we for it and then find it gone.
        let institution_id: String = match tx
            .query_opt(
                "SELECT institution_id FROM zoom_configurations WHERE configuration_id = $1 FOR SHARE",
                &[&install.configuration_id],
            )
            .await
            .map_err(pg_error)?
        {
            Some(row) => get(&row, 0)?,
            None => {
                return Err(StoreError::not_found(format!(
                    "zoom configuration {}",
                    install.configuration_id
                )));
            }
        };
        let (client_id, sealed) = match &install.oauth {
            Some(oauth) => (
                Some(oauth.client_id.clone()),
                Some(oauth.sealed_client_secret.0.clone()),
            ),
            None => (None, None),
        };
        let id = &install.zoom_account_id;
        match find_account(&tx, id).await? {
            Some(existing)
                if existing.is_installed() && existing.institution_id != institution_id =>
            {
                return Err(StoreError::AlreadyExists(format!(
                    "zoom account {id} is already bound to another institution; it must be uninstalled there first"
                )));
            }
            Some(existing)
                if existing.is_installed()
                    && existing.configuration_id != install.configuration_id =>
            {
                return Err(StoreError::AlreadyExists(format!(
                    "zoom account {id} is already installed with configuration {}; uninstall it first",
                    existing.configuration_id
                )));
            }
            Some(existing) if existing.is_installed() => {
                // Idempotent re-install: installed_at stays, so recordings made
                // between the two installs are still ingested.
                tx.execute(
                    "UPDATE zoom_accounts SET plan = $2,
                        oauth_client_id = COALESCE($3, oauth_client_id),
                        oauth_client_secret_sealed = COALESCE($4, oauth_client_secret_sealed)
                     WHERE zoom_account_id = $1",
                    &[id, &install.plan.as_str(), &client_id, &sealed],
                )
                .await
                .map_err(pg_error)?;
            }
            _ => {
                tx.execute(
                    "INSERT INTO zoom_accounts (zoom_account_id, institution_id, configuration_id, plan, installed_ms,
                        uninstalled_ms, oauth_client_id, oauth_client_secret_sealed)
                     VALUES ($1, $2, $3, $4, $5, NULL, $6, $7)
                     ON CONFLICT (zoom_account_id) DO UPDATE SET institution_id = excluded.institution_id,
                        configuration_id = excluded.configuration_id, plan = excluded.plan,
                        installed_ms = excluded.installed_ms, uninstalled_ms = NULL,
                        oauth_client_id = excluded.oauth_client_id,
                        oauth_client_secret_sealed = excluded.oauth_client_secret_sealed",
                    &[
                        id,
                        &institution_id,
                        &install.configuration_id,
                        &install.plan.as_str(),
                        &install.now.0,
                        &client_id,
                        &sealed,
                    ],
                )
                .await
                .map_err(pg_error)?;
            }
        }
        let account = account_by_id(&tx, id).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(account)
    }

    async fn get_account(
        &self,
        institution_id: &str,
        zoom_account_id: &str,
    ) -> StoreResult<ZoomAccount> {
        match find_account(&self.client().await?, zoom_account_id).await? {
            Some(account) if account.institution_id == institution_id => Ok(account),
            _ => Err(StoreError::not_found(format!(
                "zoom account {zoom_account_id}"
            ))),
        }
    }

    async fn list_accounts(
        &self,
        institution_id: &str,
        include_uninstalled: bool,
        page: &PageQuery,
    ) -> StoreResult<Page<ZoomAccount>> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM zoom_accounts
                     WHERE institution_id = $1 AND zoom_account_id > $2 AND ($3 OR uninstalled_ms IS NULL)
                     ORDER BY zoom_account_id LIMIT $4"
                ),
                &[
                    &institution_id,
                    &page_after(page),
                    &include_uninstalled,
                    &page_limit(page),
                ],
            )
            .await
            .map_err(pg_error)?;
        let rows = rows
            .iter()
            .map(account_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(page_of(rows, page, |a| &a.zoom_account_id))
    }

    async fn uninstall_account(&self, uninstall: AccountUninstall) -> StoreResult<ZoomAccount> {
        let id = uninstall.zoom_account_id.as_str();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        lock_account(&tx, id).await?;
        let account = match (
            find_account(&tx, id).await?,
            uninstall.institution_id.as_deref(),
        ) {
            (Some(account), Some(institution_id)) if account.institution_id != institution_id => {
                None
            }
            (account, _) => account,
        }
        .ok_or_else(|| StoreError::not_found(format!("zoom account {id}")))?;
        if account.is_installed() {
            tx.execute(
                "UPDATE zoom_accounts SET uninstalled_ms = $2 WHERE zoom_account_id = $1",
                &[&id, &uninstall.now.0],
            )
            .await
            .map_err(pg_error)?;
        }
        let account = account_by_id(&tx, id).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(account)
    }

    async fn installed_account(&self, zoom_account_id: &str) -> StoreResult<Option<ZoomAccount>> {
        Ok(find_account(&self.client().await?, zoom_account_id)
            .await?
            .filter(ZoomAccount::is_installed))
    }
}
