//! The reconciler: every `interval` (jittered), for each installed account
//! with API credentials, one pass over the last `lookback_days` of its
//! recordings list. A pass saves its cursor after every page, so a restart
//! continues the pass where it stopped; with several replicas, a duty held
//! in the store (`duty`) keeps an account's pass on one replica at a time.

use std::time::{Duration, Instant};

use ferry_control::ingest::Origin;
use ferry_control::model::{JobSource, ReconcileCursor, Timestamp, ZoomAccount};
use rand::Rng;
use tokio_util::sync::CancellationToken;

use super::listing::{ListError, Listing};
use super::{ReconcileContext, lookback_range};
use crate::metrics::{RECONCILE_PASS_SECONDS, RECONCILE_PASSES_TOTAL};

/// The duty that lets one replica list an account.
pub(super) fn account_duty(zoom_account_id: &str) -> String {
    format!("zoom-list:{zoom_account_id}")
}

/// Runs a pass over every account now and then every interval, until shutdown.
pub async fn run_reconciler(context: ReconcileContext, shutdown: CancellationToken) {
    if !context.settings.enabled {
        return;
    }
    loop {
        match context.store.accounts_with_api_access().await {
            Ok(accounts) => {
                for account in accounts {
                    if shutdown.is_cancelled() {
                        return;
                    }
                    reconcile_account(&context, &account, &shutdown).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list the accounts to reconcile"),
        }
        let interval = context.settings.interval.as_secs_f64();
        let jittered = Duration::from_secs_f64(interval * rand::rng().random_range(0.9..=1.1));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(jittered) => {}
        }
    }
}

/// One pass over an account, resumed from its cursor when the last one
/// stopped part way through a range that is still recent.
async fn reconcile_account(
    context: &ReconcileContext,
    account: &ZoomAccount,
    shutdown: &CancellationToken,
) {
    let duty = account_duty(&account.zoom_account_id);
    let held = super::duty::while_holding(context, &duty, shutdown, |stop| async move {
        reconcile_held_account(context, account, &stop).await
    })
    .await;
    if held.is_none() {
        tracing::debug!(account = %account.zoom_account_id, "another replica reconciles the account");
    }
}

/// `reconcile_account` once this replica holds the account's duty.
async fn reconcile_held_account(
    context: &ReconcileContext,
    account: &ZoomAccount,
    shutdown: &CancellationToken,
) {
    let account_id = &account.zoom_account_id;
    let started = Instant::now();
    let now = Timestamp::now();
    let (from, to) = lookback_range(now, context.settings.lookback_days);
    let mut state = match context.store.reconcile_cursor(account_id).await {
        Ok(Some(saved)) if saved.finished_at.is_none() && saved.cursor.to >= from => saved,
        Ok(_) => ReconcileCursor {
            zoom_account_id: account_id.clone(),
            cursor: ferry_control::model::ListingCursor::start(from, to),
            pass_started: now,
            finished_at: None,
        },
        Err(e) => {
            tracing::warn!(account = %account_id, error = %e, "cannot read the reconcile cursor");
            return;
        }
    };
    let origin = Origin {
        source: JobSource::Reconcile,
        waiver: None,
    };
    let outcome = pass(context, account, &mut state, origin, shutdown).await;
    let label = match &outcome {
        Ok(()) => "completed",
        Err(ListError::Shutdown) => return,
        Err(e) => {
            tracing::warn!(account = %account_id, error = %e, "reconcile pass stopped; the next one continues it");
            "failed"
        }
    };
    metrics::counter!(RECONCILE_PASSES_TOTAL, "outcome" => label).increment(1);
    metrics::histogram!(RECONCILE_PASS_SECONDS).record(started.elapsed().as_secs_f64());
}

async fn pass(
    context: &ReconcileContext,
    account: &ZoomAccount,
    state: &mut ReconcileCursor,
    origin: Origin<'_>,
    shutdown: &CancellationToken,
) -> Result<(), ListError> {
    let mut listing =
        Listing::new(context, account, origin, state.cursor.clone(), shutdown).await?;
    let mut created = 0;
    while let Some(tally) = listing.next_page().await? {
        created += tally.created;
        match &listing.cursor {
            Some(next) => state.cursor = next.clone(),
            None => state.finished_at = Some(Timestamp::now()),
        }
        context.store.save_reconcile_cursor(state.clone()).await?;
    }
    if created > 0 {
        tracing::warn!(account = %account.zoom_account_id, created,
            "the reconciler found recordings no webhook delivered: check the webhook endpoint and secret");
    }
    Ok(())
}
