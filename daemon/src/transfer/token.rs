//! A fresh download token for a job whose webhook token Zoom refused (they
//! last 24 hours; webhooks have arrived days late): with the account's
//! Marketplace OAuth access token when it installed through the Marketplace,
//! else its Server-to-Server OAuth credentials, ask Zoom's API for a new
//! one, and keep it (sealed) in place of the webhook's, so a restart does
//! not ask again. Secrets are opened here only for the call and never
//! logged.

use ferry_control::model::{FreshCredentials, Job, Timestamp};

use super::context::Context;
use super::error::{Stage, TransferError, lease_or_store};
use super::zoom_api::{ApiError, FreshDownload, account_access};
use crate::metrics::TOKEN_REFRESHES_TOTAL;

/// Zoom refused the webhook's download token (HTTP `status`): ask the API
/// for a fresh one (see `fetch`) and keep it for later attempts.
pub async fn fresh_download(
    context: &Context,
    job: &Job,
    status: u16,
) -> Result<FreshDownload, TransferError> {
    let file_id = job
        .recording_file
        .as_ref()
        .map_or("", |f| f.file_id.as_str());
    let fetched = fetch(context, job, file_id, status).await?;
    keep(context, job, &fetched).await?;
    Ok(fetched)
}

/// Asks Zoom for a fresh token (and `file_id`'s URL) with the account's
/// API access (Marketplace tokens first, see `zoom_api::account_access`).
pub(super) async fn fetch(
    context: &Context,
    job: &Job,
    file_id: &str,
    status: u16,
) -> Result<FreshDownload, TransferError> {
    let account = context
        .store
        .installed_account(&job.zoom_account_id)
        .await
        .map_err(|e| TransferError::Transient {
            message: format!("store: {e}"),
            retry_after: None,
            stage: Stage::Store,
        })?;
    let access = match &account {
        Some(account) => {
            account_access(
                context.store.as_ref(),
                &context.secret_box,
                context.marketplace.as_ref(),
                account,
            )
            .await
        }
        None => Ok(None),
    };
    let access = match access {
        Ok(Some(access)) => access,
        Ok(None) => {
            metrics::counter!(TOKEN_REFRESHES_TOTAL, "outcome" => "no_credentials").increment(1);
            return Err(TransferError::Permanent(format!(
                "zoom refused the download token (HTTP {status}): it has probably expired (tokens last 24 hours) \
                 and the zoom account has no API credentials (Marketplace install or Server-to-Server OAuth) \
                 to fetch a fresh one; reinstall the account with OAuth credentials, then retry the job"
            )));
        }
        Err(e) => return count_and_map(Err(e)),
    };
    let fetched = context
        .zoom_api
        .fresh_download(&job.zoom_account_id, &access, &job.meeting_uuid, file_id)
        .await;
    count_and_map(fetched)
}

fn count_and_map(fetched: Result<FreshDownload, ApiError>) -> Result<FreshDownload, TransferError> {
    let label = match &fetched {
        Ok(_) => "fetched",
        Err(ApiError::Refused(_)) => "refused",
        Err(ApiError::Unavailable { .. }) => "unavailable",
    };
    metrics::counter!(TOKEN_REFRESHES_TOTAL, "outcome" => label).increment(1);
    fetched.map_err(|e| match e {
        ApiError::Refused(message) => TransferError::Permanent(format!(
            "the download token expired and no fresh one could be fetched: {message}"
        )),
        ApiError::Unavailable {
            message,
            retry_after,
        } => TransferError::Transient {
            message: format!("fetching a fresh download token: {message}"),
            retry_after,
            stage: Stage::Download,
        },
    })
}

/// Stores the fetched credentials, sealed, in place of the webhook's, so
/// that the next attempt (after a restart, or on another replica) starts
/// with them instead of being refused and fetching again.
async fn keep(context: &Context, job: &Job, fetched: &FreshDownload) -> Result<(), TransferError> {
    let fresh = FreshCredentials {
        sealed_download_token: context.secret_box.seal_str(fetched.token.expose()),
        sealed_download_url: fetched
            .download_url
            .as_deref()
            .map(|url| context.secret_box.seal_str(url)),
    };
    context
        .store
        .store_fresh_download(context.holder(&job.job_id), fresh, Timestamp::now())
        .await
        .map_err(lease_or_store)
}
