//! The after-copy action `trash`: moving a meeting's recordings to Zoom's
//! trash once Ferry's copy is verified and its media recorded. The
//! completion itself leaves the move pending in the store (the same commit,
//! so a restart cannot lose it, and a skipped, failed or cancelled job never
//! gets one); this duty finds the moves that are due and calls Zoom
//! (`DELETE /v2/meetings/{uuid}/recordings?action=trash`) with the account's
//! API credentials, through the one `ZoomApi` whose per-account pacer every
//! other call of the account shares.
//!
//! A failed call never touches the job's state or its media: the job's
//! `zoom_trash` records the failure, `ferry_zoom_trash_total` counts it, and
//! the move is due again after a backoff (`retry_after`), until
//! `max_attempts` calls have failed. With several replicas, one holds the
//! duty at a time (`reconcile::duty`), and a result is recorded only over a
//! move still pending. Never logs a token or a credential.

use std::sync::Arc;
use std::time::Duration;

use ferry_control::error::StoreError;
use ferry_control::model::{Job, Timestamp, ZoomTrashState, ZoomTrashUpdate};
use ferry_control::secrets::SecretBox;
use ferry_control::store::Store;
use tokio_util::sync::CancellationToken;

use crate::metrics::ZOOM_TRASH_TOTAL;
use crate::reconcile::duty::{DutyTaker, while_holding_duty};
use crate::transfer::zoom_api::{ApiError, Trashed, ZoomApi, account_access};

/// The duty that keeps the moves on one replica.
const DUTY: &str = "zoom-trash";

/// How the trash duty works (`[after_copy]`).
#[derive(Clone, Debug)]
pub struct ZoomTrashSettings {
    /// Between two looks for moves that are due.
    pub poll: Duration,
    /// Before the first retry of a failed call; doubled per failure.
    pub retry_base: Duration,
    /// The longest wait between two calls.
    pub retry_max: Duration,
    /// Calls after which a move is given up.
    pub max_attempts: u32,
    /// How long the duty stays with a replica that stops renewing it.
    pub lease: Duration,
    /// Most moves read per look.
    pub batch: u32,
}

impl Default for ZoomTrashSettings {
    fn default() -> Self {
        ZoomTrashSettings {
            poll: Duration::from_secs(5),
            retry_base: Duration::from_secs(30),
            retry_max: Duration::from_secs(3600),
            max_attempts: 24,
            lease: Duration::from_secs(60),
            batch: 50,
        }
    }
}

/// What the duty needs.
#[derive(Clone)]
pub struct ZoomTrashContext {
    pub store: Arc<dyn Store>,
    pub secret_box: SecretBox,
    pub api: Arc<ZoomApi>,
    pub marketplace: Option<Arc<crate::marketplace::Marketplace>>,
    pub settings: ZoomTrashSettings,
    pub replica_id: String,
}

/// When to call again after a failed call, the `attempts`-th: None once
/// `max_attempts` calls have failed. Waits `retry_base × 2^(attempts−1)`,
/// at most `retry_max`, and never less than Zoom's `Retry-After`.
pub fn retry_after(
    attempts: u32,
    settings: &ZoomTrashSettings,
    zoom_retry_after: Option<Duration>,
) -> Option<Duration> {
    if attempts >= settings.max_attempts {
        return None;
    }
    let doublings = attempts.saturating_sub(1).min(32);
    let backoff = settings
        .retry_base
        .saturating_mul(1u32 << doublings.min(31))
        .min(settings.retry_max);
    Some(backoff.max(zoom_retry_after.unwrap_or(Duration::ZERO)))
}

/// Looks for due moves every `poll` while this replica holds the duty,
/// until shutdown.
pub async fn run(context: ZoomTrashContext, shutdown: CancellationToken) {
    loop {
        let taker = DutyTaker {
            store: context.store.as_ref(),
            replica_id: &context.replica_id,
            lease: context.settings.lease,
        };
        let held = while_holding_duty(taker, DUTY, &shutdown, |stop| {
            let context = &context;
            async move {
                while !stop.is_cancelled() {
                    sweep(context, &stop).await;
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = tokio::time::sleep(context.settings.poll) => {}
                    }
                }
            }
        })
        .await;
        if held.is_none() {
            tracing::debug!("another replica moves recordings to zoom's trash");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(context.settings.poll) => {}
        }
    }
}

/// One look: every move due now, oldest first, a batch at a time.
async fn sweep(context: &ZoomTrashContext, stop: &CancellationToken) {
    loop {
        let due = match context
            .store
            .due_zoom_trash(Timestamp::now(), context.settings.batch)
            .await
        {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the moves to zoom's trash that are due");
                return;
            }
        };
        let full = due.len() as u32 == context.settings.batch;
        for job in due {
            if stop.is_cancelled() {
                return;
            }
            move_to_trash(context, &job).await;
        }
        if !full {
            return;
        }
    }
}

/// What one call came to, before it is recorded.
enum Outcome {
    Done {
        gone: bool,
    },
    Failed {
        message: String,
        retry_after: Option<Duration>,
    },
}

/// Calls Zoom for one job and records the result on it.
async fn move_to_trash(context: &ZoomTrashContext, job: &Job) {
    let outcome = call_zoom(context, job).await;
    let attempts = job.zoom_trash.as_ref().map_or(0, |t| t.attempts) + 1;
    let now = Timestamp::now();
    let (state, message, next_attempt_at, label) = match outcome {
        Outcome::Done { gone: false } => (
            ZoomTrashState::Trashed,
            format!("moved the meeting's recordings to zoom's trash at {now}"),
            None,
            "trashed",
        ),
        Outcome::Done { gone: true } => (
            ZoomTrashState::Trashed,
            format!(
                "zoom no longer had the meeting's recordings at {now} (HTTP 404): already trashed or deleted"
            ),
            None,
            "gone",
        ),
        Outcome::Failed {
            message,
            retry_after: zoom_retry_after,
        } => match retry_after(attempts, &context.settings, zoom_retry_after) {
            Some(wait) => {
                let at =
                    now.saturating_add_millis(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
                (
                    ZoomTrashState::Pending,
                    format!(
                        "moving the recordings to zoom's trash failed ({message}); trying again at {at}"
                    ),
                    Some(at),
                    "retry",
                )
            }
            None => (
                ZoomTrashState::Failed,
                format!(
                    "gave up moving the recordings to zoom's trash after {attempts} call(s): {message}; \
                     the copy is complete, and the recording is still in zoom"
                ),
                None,
                "failed",
            ),
        },
    };
    metrics::counter!(ZOOM_TRASH_TOTAL, "outcome" => label).increment(1);
    match state {
        ZoomTrashState::Pending | ZoomTrashState::Failed => {
            tracing::warn!(job = %job.job_id, attempts, outcome = label, message = %message,
                "zoom's trash call failed")
        }
        ZoomTrashState::Trashed => {
            tracing::info!(job = %job.job_id, attempts, outcome = label, "recordings moved to zoom's trash")
        }
    }
    let recorded = context
        .store
        .record_zoom_trash(ZoomTrashUpdate {
            job_id: job.job_id.clone(),
            state,
            message,
            next_attempt_at,
            now,
        })
        .await;
    if let Err(e) = recorded {
        // The move stays due as it was; the next look calls Zoom again,
        // which for a move that went through answers 404 (`gone`).
        tracing::warn!(job = %job.job_id, error = %e, "cannot record the result of zoom's trash call");
    }
}

/// The call itself, with the account's credentials.
async fn call_zoom(context: &ZoomTrashContext, job: &Job) -> Outcome {
    let failed = |message: String| Outcome::Failed {
        message,
        retry_after: None,
    };
    let account = match context
        .store
        .get_account(&job.institution_id, &job.zoom_account_id)
        .await
    {
        Ok(account) => account,
        Err(StoreError::NotFound(_)) => {
            return failed(format!(
                "zoom account {} is no longer known to this institution",
                job.zoom_account_id
            ));
        }
        Err(e) => return failed(format!("store: {e}")),
    };
    if !account.is_installed() {
        // Ferry no longer acts for an account that uninstalled it; a
        // reinstall within the retries lets the move go through.
        return failed(format!(
            "zoom account {} is uninstalled; Ferry no longer calls zoom for it",
            job.zoom_account_id
        ));
    }
    let access = match account_access(
        context.store.as_ref(),
        &context.secret_box,
        context.marketplace.as_ref(),
        &account,
    )
    .await
    {
        Ok(Some(access)) => access,
        Ok(None) => {
            return failed(format!(
                "zoom account {} has no API credentials (the Marketplace app's or Server-to-Server \
                 OAuth); install it with credentials that may delete recordings",
                job.zoom_account_id
            ));
        }
        Err(e) => return failed(e.to_string()),
    };
    match context
        .api
        .trash_recordings(&job.zoom_account_id, &access, &job.meeting_uuid)
        .await
    {
        Ok(Trashed::Moved) => Outcome::Done { gone: false },
        Ok(Trashed::Gone) => Outcome::Done { gone: true },
        Err(ApiError::Refused(message)) => failed(message),
        Err(ApiError::Unavailable {
            message,
            retry_after,
        }) => Outcome::Failed {
            message,
            retry_after,
        },
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn settings(base_ms: u64, max_ms: u64, max_attempts: u32) -> ZoomTrashSettings {
        ZoomTrashSettings {
            retry_base: Duration::from_millis(base_ms),
            retry_max: Duration::from_millis(max_ms),
            max_attempts,
            ..ZoomTrashSettings::default()
        }
    }

    #[test]
    fn retries_double_up_to_the_cap_then_give_up() {
        let s = settings(100, 1_000, 6);
        let waits: Vec<_> = (1..=6).map(|n| retry_after(n, &s, None)).collect();
        let ms = |m| Some(Duration::from_millis(m));
        assert_eq!(
            waits,
            vec![ms(100), ms(200), ms(400), ms(800), ms(1000), None]
        );
        assert_eq!(
            retry_after(1, &s, Some(Duration::from_secs(5))),
            Some(Duration::from_secs(5)),
            "zoom's Retry-After wins when longer"
        );
        assert_eq!(retry_after(1, &settings(100, 1_000, 1), None), None);
    }

    proptest! {
        #[test]
        fn a_retry_is_never_sooner_than_asked_nor_later_than_the_cap(
            base in 1u64..10_000,
            extra in 0u64..100_000,
            max_attempts in 1u32..40,
            attempts in 1u32..100,
            zoom in proptest::option::of(0u64..10_000_000),
        ) {
            let s = settings(base, base + extra, max_attempts);
            let zoom = zoom.map(Duration::from_millis);
            match retry_after(attempts, &s, zoom) {
                None => prop_assert!(attempts >= max_attempts),
                Some(wait) => {
                    prop_assert!(attempts < max_attempts);
                    prop_assert!(wait >= s.retry_base.min(s.retry_max));
                    prop_assert!(wait >= zoom.unwrap_or_default());
                    prop_assert!(wait <= s.retry_max.max(zoom.unwrap_or_default()));
                    if attempts > 1 {
                        let before = retry_after(attempts - 1, &s, None).unwrap();
                        prop_assert!(retry_after(attempts, &s, None).unwrap() >= before);
                    }
                }
            }
        }
    }
}
