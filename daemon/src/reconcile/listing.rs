//! One listing of an account's recordings, page by page from a cursor, and
//! what becomes of each meeting: left for its webhook while not ready, a
//! duplicate when a job has it, else decided by `ingest::decide` (the
//! webhook's path) and committed by the store's one-job-per-meeting upsert,
//! with a download token from `include_fields=download_access_token`. A
//! backfill also takes over a job skipped only because it was recorded
//! before the install.

use std::collections::HashMap;
use std::time::Duration;

use ferry_control::error::StoreError;
use ferry_control::ingest::{self, Decision, Origin};
use ferry_control::model::{
    JobRequeue, JobState, ListingCursor, SkipReason, Timestamp, ZoomAccount,
};
use ferry_control::zoom;
use tokio_util::sync::CancellationToken;

use super::{ReconcileContext, advance, chunk_to, readiness};
use crate::metrics::{JOBS_CREATED_TOTAL, RECORDINGS_FOUND_TOTAL};
use crate::transfer::zoom_api::{AccountAccess, ApiError, account_access};

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// Zoom said no in a way a retry will not change.
    #[error("{0}")]
    Refused(String),
    /// Zoom or the store failed; a later try may work.
    #[error("{0}")]
    Unavailable(String),
    #[error("shutting down")]
    Shutdown,
}

impl From<StoreError> for ListError {
    fn from(e: StoreError) -> Self {
        ListError::Unavailable(format!("store: {e}"))
    }
}

/// What one page held.
#[derive(Clone, Debug, Default)]
pub struct PageTally {
    pub seen: u64,
    pub created: u64,
    pub duplicates: u64,
    pub requeued: u64,
    pub not_ready: u64,
    pub invalid: u64,
    /// Jobs created SKIPPED, by reason.
    pub skipped: Vec<SkipReason>,
}

pub struct Listing<'a> {
    context: &'a ReconcileContext,
    account: &'a ZoomAccount,
    access: AccountAccess,
    origin: Origin<'a>,
    /// host_id → email, per listing (Zoom's list may omit `host_email`).
    emails: HashMap<String, Option<String>>,
    shutdown: &'a CancellationToken,
    /// The next page to list; None once the range is done.
    pub cursor: Option<ListingCursor>,
}

/// The account's way into Zoom's API (Marketplace tokens or
/// Server-to-Server OAuth credentials); Refused when it has neither.
pub async fn access(
    context: &ReconcileContext,
    account: &ZoomAccount,
) -> Result<AccountAccess, ListError> {
    account_access(
        context.store.as_ref(),
        &context.secret_box,
        context.marketplace.as_ref(),
        account,
    )
    .await
    .map_err(ListError::from)?
    .ok_or_else(|| {
        ListError::Refused(format!(
            "zoom account {} has no API credentials (neither a Marketplace install nor Server-to-Server \
             OAuth credentials)",
            account.zoom_account_id
        ))
    })
}

impl From<ApiError> for ListError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Refused(message) => ListError::Refused(message),
            ApiError::Unavailable { message, .. } => ListError::Unavailable(message),
        }
    }
}

impl<'a> Listing<'a> {
    pub async fn new(
        context: &'a ReconcileContext,
        account: &'a ZoomAccount,
        origin: Origin<'a>,
        cursor: ListingCursor,
        shutdown: &'a CancellationToken,
    ) -> Result<Self, ListError> {
        Ok(Listing {
            access: access(context, account).await?,
            context,
            account,
            origin,
            emails: HashMap::new(),
            shutdown,
            cursor: Some(cursor),
        })
    }

    /// Lists and decides the cursor's page, then moves the cursor on; None
    /// when the range is done. A 429 or a failure is retried after
    /// `Retry-After` (or a backoff) a few times before it is returned.
    pub async fn next_page(&mut self) -> Result<Option<PageTally>, ListError> {
        let Some(cursor) = self.cursor.clone() else {
            return Ok(None);
        };
        let account_id = &self.account.zoom_account_id;
        let chunk_end = chunk_to(cursor.chunk_from, cursor.to);
        let mut attempt = 0;
        let page = loop {
            attempt += 1;
            let listed = self
                .context
                .api
                .list_recordings(
                    account_id,
                    &self.access,
                    &cursor.chunk_from.to_string(),
                    &chunk_end.to_string(),
                    &cursor.next_page_token,
                )
                .await;
            match listed {
                Ok(page) => break page,
                Err(ApiError::Refused(message)) => return Err(ListError::Refused(message)),
                Err(ApiError::Unavailable {
                    message,
                    retry_after,
                }) => {
                    if attempt >= self.context.settings.page_attempts {
                        return Err(ListError::Unavailable(message));
                    }
                    let wait = retry_after.unwrap_or(Duration::from_millis(500 << attempt.min(6)));
                    tracing::info!(account = %account_id, attempt, wait_ms = wait.as_millis() as u64,
                        error = %message, "zoom's recordings list will be asked again");
                    tokio::select! {
                        _ = self.shutdown.cancelled() => return Err(ListError::Shutdown),
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        };
        let mut tally = PageTally::default();
        for meeting in &page.meetings {
            if self.shutdown.is_cancelled() {
                return Err(ListError::Shutdown);
            }
            self.found(meeting, &mut tally).await?;
        }
        self.cursor = advance(&cursor, &page.next_page_token);
        Ok(Some(tally))
    }

    async fn found(
        &mut self,
        meeting: &serde_json::Value,
        tally: &mut PageTally,
    ) -> Result<(), ListError> {
        tally.seen += 1;
        let source = self.origin.source.as_str();
        let outcome = self.decide(meeting, tally).await?;
        metrics::counter!(RECORDINGS_FOUND_TOTAL, "source" => source, "outcome" => outcome)
            .increment(1);
        Ok(())
    }

    /// Returns the outcome's metric label.
    async fn decide(
        &mut self,
        meeting: &serde_json::Value,
        tally: &mut PageTally,
    ) -> Result<&'static str, ListError> {
        let account_id = self.account.zoom_account_id.clone();
        let host_email = meeting
            .get("host_email")
            .and_then(|v| v.as_str())
            .filter(|e| !e.trim().is_empty())
            .map(str::to_string);
        let mut object = meeting.clone();
        // Readiness and the existing job do not need the host: fill a
        // placeholder now, the real email only when it is needed.
        object["host_email"] = serde_json::Value::String(
            host_email
                .clone()
                .unwrap_or_else(|| "unresolved@zoom.invalid".into()),
        );
        let payload = serde_json::json!({ "account_id": account_id, "object": object });
        let mut recording = match zoom::parse_recording_completed(&payload) {
            Ok(recording) => recording,
            Err(e) => {
                tracing::warn!(account = %account_id, error = %e, "zoom listed a meeting that cannot be decided");
                tally.invalid += 1;
                return Ok("invalid");
            }
        };
        let now = Timestamp::now();
        if readiness(&recording, now, self.context.settings.grace).is_err() {
            tally.not_ready += 1;
            return Ok("not_ready");
        }
        let existing = self
            .context
            .store
            .job_for_meeting(&account_id, &recording.meeting_uuid)
            .await?;
        let takes_over = existing.as_ref().is_some_and(|job| {
            self.origin.waiver.is_some()
                && job.state == JobState::Skipped
                && job.skip_reason == Some(SkipReason::RecordedBeforeInstall)
        });
        if existing.is_some() && !takes_over {
            tally.duplicates += 1;
            return Ok("duplicate");
        }
        if host_email.is_none() {
            recording.host_email = self.host_email(meeting).await?;
        }
        let decision = ingest::decide(
            self.context.store.as_ref(),
            &self.context.secret_box,
            &recording,
            None,
            &self.context.caps.for_account(&account_id),
            now,
            now,
            self.origin,
        )
        .await?;
        let Decision::Job(mut job) = decision else {
            // Uninstalled since the listing began.
            tally.invalid += 1;
            return Ok("invalid");
        };
        if job.state == JobState::Queued {
            let file_id = job
                .recording_file
                .as_ref()
                .map_or(String::new(), |f| f.file_id.clone());
            match self
                .context
                .api
                .fresh_download(&account_id, &self.access, &recording.meeting_uuid, &file_id)
                .await
            {
                Ok(fresh) => {
                    job.sealed_download_token =
                        Some(self.context.secret_box.seal_str(fresh.token.expose()));
                }
                // The transfer asks again when the download is refused.
                Err(e) => {
                    tracing::warn!(account = %account_id, error = %e,
                        "no download token for a listed recording yet; the transfer will fetch one")
                }
            }
        }
        let (state, reason, owner, file, url, message) = (
            job.state,
            job.skip_reason,
            job.owner_user_id.clone(),
            job.recording_file.clone(),
            job.sealed_download_url.clone(),
            job.message.clone(),
        );
        let (stored, created) = self.context.store.upsert_job(*job).await?;
        if created {
            metrics::counter!(JOBS_CREATED_TOTAL, "state" => stored.state.as_str(),
                "reason" => stored.skip_reason.map_or("", |r| r.as_str()), "source" => stored.source.as_str())
            .increment(1);
            ferry_control::metrics::count_finished(&stored);
            tracing::info!(job = %stored.job_id, account = %account_id, state = stored.state.as_str(),
                source = stored.source.as_str(), "a listed recording had no job; decided");
            tally.created += 1;
            if let Some(reason) = reason.filter(|_| state == JobState::Skipped) {
                tally.skipped.push(reason);
            }
            return Ok("created");
        }
        match (takes_over, state, owner) {
            (true, JobState::Queued, Some(owner_user_id)) => {
                let job = self
                    .context
                    .store
                    .requeue_job(JobRequeue {
                        institution_id: stored.institution_id.clone(),
                        job_id: stored.job_id.clone(),
                        now,
                        owner_user_id,
                        recording_file: file,
                        sealed_download_url: url,
                        message,
                    })
                    .await?;
                tracing::info!(job = %job.job_id, account = %account_id,
                    "a backfill queued a job skipped as recorded before the install");
                tally.requeued += 1;
                Ok("requeued")
            }
            _ => {
                tally.duplicates += 1;
                Ok("duplicate")
            }
        }
    }

    /// The meeting host's email from `GET /v2/users/{host_id}`, cached for
    /// this listing. A host Zoom no longer knows gets an empty email, which
    /// the host rule skips as NO_MATCHING_USER.
    async fn host_email(&mut self, meeting: &serde_json::Value) -> Result<String, ListError> {
        let Some(host_id) = meeting.get("host_id").and_then(|v| v.as_str()) else {
            return Ok(String::new());
        };
        if let Some(known) = self.emails.get(host_id) {
            return Ok(known.clone().unwrap_or_default());
        }
        let email = self
            .context
            .api
            .user_email(&self.account.zoom_account_id, &self.access, host_id)
            .await?;
        self.emails.insert(host_id.to_string(), email.clone());
        Ok(email.unwrap_or_default())
    }
}
