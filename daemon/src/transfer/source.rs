//! Opening the recording's download: the job's sealed URL and token (or a
//! fresh token fetched after Zoom refused the webhook's), the account's
//! download-rate limit, the request itself with `Range` when resuming, and
//! the checks on the answer before a byte is streamed. Secrets are opened
//! here and nowhere else, and never reach a log or an error message.

use ferry_control::model::Job;
use tokio_util::sync::CancellationToken;

use super::context::Context;
use super::download::Download;
use super::error::{TransferError, lease_or_store};
use super::zoom_api::FreshDownload;

/// The seed's requirements for downloadable recordings, for the message
/// shown when Zoom answers with a web page instead of the file.
const DOWNLOAD_SETTINGS_HINT: &str = "zoom answered with a web page instead of the recording: the account's cloud \
    recording settings must have \"Allow Downloads\" on and \"Only the host can download cloud recordings\" off, \
    and the meeting must be recorded to the cloud";

/// Where to download from, with which token.
pub struct Credentials {
    url: String,
    token: Option<String>,
}

// By hand: the URL's query and the token are secrets.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials { .. }")
    }
}

/// The job's stored download URL and token, opened; `fresh` overrides the
/// webhook's token (and URL, when it carries one).
pub async fn credentials(
    context: &Context,
    job: &Job,
    fresh: Option<&FreshDownload>,
) -> Result<Credentials, TransferError> {
    let sealed = context
        .store
        .get_job_secrets(&job.institution_id, &job.job_id)
        .await
        .map_err(lease_or_store)?;
    let unreadable = |what: &str| {
        TransferError::Permanent(format!("job {}'s {what} cannot be read", job.job_id))
    };
    let mut url = sealed
        .sealed_download_url
        .as_ref()
        .ok_or_else(|| TransferError::Permanent("the job has no download URL".into()))
        .and_then(|s| {
            context
                .secret_box
                .open_secret(s)
                .map_err(|_| unreadable("download URL"))
        })?
        .expose()
        .to_string();
    let mut token = match &sealed.sealed_download_token {
        Some(s) => Some(
            context
                .secret_box
                .open_secret(s)
                .map_err(|_| unreadable("download token"))?
                .expose()
                .to_string(),
        ),
        None => None,
    };
    if let Some(fresh) = fresh {
        token = Some(fresh.token.expose().to_string());
        if let Some(fresh_url) = &fresh.download_url {
            url = fresh_url.clone();
        }
    }
    Ok(Credentials { url, token })
}

/// Requests the file from byte `offset`, once the account's download rate
/// allows; refuses a web page where the recording should be.
pub async fn open(
    context: &Context,
    job: &Job,
    stop: &CancellationToken,
    credentials: &Credentials,
    offset: u64,
) -> Result<Download, TransferError> {
    context
        .limits
        .account_download(&job.zoom_account_id, stop)
        .await?;
    let download = tokio::select! {
        _ = stop.cancelled() => return Err(TransferError::Stopped),
        download = context.downloader.get(&credentials.url, credentials.token.as_deref(), offset) =>
            download?,
    };
    refuse_web_page(&download)?;
    Ok(download)
}

/// Zoom answers a file the app may not download with a web page.
pub fn refuse_web_page(download: &Download) -> Result<(), TransferError> {
    if download
        .content_type
        .as_deref()
        .is_some_and(|t| t.to_ascii_lowercase().starts_with("text/html"))
    {
        return Err(TransferError::Permanent(DOWNLOAD_SETTINGS_HINT.into()));
    }
    Ok(())
}

/// Whether the answer starts at `offset`: always at 0; past 0 only a 206
/// for exactly the range asked for (a source that ignores `Range` sends
/// the whole file with 200).
pub fn starts_at(download: &Download, offset: u64) -> bool {
    offset == 0 || (download.status == 206 && download.range_start == Some(offset))
}
