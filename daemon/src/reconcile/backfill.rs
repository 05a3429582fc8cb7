//! The backfill runner: picks up RUNNING backfills (new ones, and those a
//! restart interrupted), lists their range page by page from the saved
//! cursor with the before-install rule waived, and saves counts and cursor
//! after every page. A page interrupted by a crash is listed again; the
//! store's one-job-per-meeting rule makes that harmless. A cancel, from any
//! replica, stops it at the next page. One replica runs a given backfill.

use ferry_control::ingest::Origin;
use ferry_control::model::{
    Backfill, BackfillCounts, BackfillProgress, BackfillState, JobSource, Timestamp,
};
use tokio_util::sync::CancellationToken;

use super::ReconcileContext;
use super::listing::{ListError, Listing, PageTally};
use crate::metrics::{BACKFILL_DAYS_LEFT, BACKFILLS_FINISHED_TOTAL, BACKFILLS_RUNNING};

/// Looks for running backfills every `backfill_poll` and runs them, one at
/// a time, until shutdown.
pub async fn run_backfills(context: ReconcileContext, shutdown: CancellationToken) {
    loop {
        match context.store.running_backfills().await {
            Ok(backfills) => {
                for backfill in backfills {
                    if shutdown.is_cancelled() {
                        return;
                    }
                    let duty = format!("backfill:{}", backfill.backfill_id);
                    let context = &context;
                    super::duty::while_holding(context, &duty, &shutdown, |stop| async move {
                        metrics::gauge!(BACKFILLS_RUNNING).increment(1.0);
                        days_left(&backfill);
                        run(context, backfill, &stop).await;
                        metrics::gauge!(BACKFILL_DAYS_LEFT).set(0.0);
                        metrics::gauge!(BACKFILLS_RUNNING).decrement(1.0);
                    })
                    .await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list the running backfills"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(context.settings.backfill_poll) => {}
        }
    }
}

/// The progress gauge: this daemon runs one backfill at a time.
fn days_left(backfill: &Backfill) {
    let left = backfill.total_days() - backfill.days_done();
    metrics::gauge!(BACKFILL_DAYS_LEFT).set(f64::from(left));
}

fn add(counts: &mut BackfillCounts, tally: &PageTally) {
    counts.meetings_seen += tally.seen;
    counts.jobs_created += tally.created + tally.requeued;
    counts.duplicates += tally.duplicates;
    counts.not_ready += tally.not_ready + tally.invalid;
    for reason in &tally.skipped {
        counts.add_skipped(*reason);
    }
}

async fn end(
    context: &ReconcileContext,
    backfill: &Backfill,
    state: BackfillState,
    message: String,
) {
    let progress = BackfillProgress {
        backfill_id: backfill.backfill_id.clone(),
        counts: backfill.counts.clone(),
        cursor: backfill.cursor.clone(),
        end: Some((state, message)),
        now: Timestamp::now(),
    };
    match context.store.record_backfill_progress(progress).await {
        Ok(ended) if ended.state == state => {
            metrics::counter!(BACKFILLS_FINISHED_TOTAL, "state" => state.as_str()).increment(1);
            tracing::info!(backfill = %ended.backfill_id, state = state.as_str(),
                jobs_created = ended.counts.jobs_created, duplicates = ended.counts.duplicates, "backfill ended");
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(backfill = %backfill.backfill_id, error = %e, "cannot record a backfill's end")
        }
    }
}

async fn run(context: &ReconcileContext, mut backfill: Backfill, shutdown: &CancellationToken) {
    let account = match context
        .store
        .installed_account(&backfill.zoom_account_id)
        .await
    {
        Ok(Some(account)) if account.institution_id == backfill.institution_id => account,
        Ok(_) => {
            let message = format!(
                "zoom account {} is no longer installed",
                backfill.zoom_account_id
            );
            return end(context, &backfill, BackfillState::Failed, message).await;
        }
        Err(e) => {
            tracing::warn!(backfill = %backfill.backfill_id, error = %e, "cannot read the backfill's account");
            return;
        }
    };
    let waiver = format!("backfill {}", backfill.backfill_id);
    let origin = Origin {
        source: JobSource::Backfill,
        waiver: Some(&waiver),
    };
    let mut listing =
        match Listing::new(context, &account, origin, backfill.cursor.clone(), shutdown).await {
            Ok(listing) => listing,
            Err(e) => return end(context, &backfill, BackfillState::Failed, e.to_string()).await,
        };
    loop {
        match listing.next_page().await {
            Ok(Some(tally)) => {
                add(&mut backfill.counts, &tally);
                let done = listing.cursor.is_none();
                if let Some(next) = &listing.cursor {
                    backfill.cursor = next.clone();
                }
                let progress = BackfillProgress {
                    backfill_id: backfill.backfill_id.clone(),
                    counts: backfill.counts.clone(),
                    cursor: backfill.cursor.clone(),
                    end: None,
                    now: Timestamp::now(),
                };
                match context.store.record_backfill_progress(progress).await {
                    Ok(saved) if saved.state == BackfillState::Running => days_left(&saved),
                    Ok(saved) => {
                        tracing::info!(backfill = %saved.backfill_id, state = saved.state.as_str(),
                            "backfill stopped: it no longer runs");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(backfill = %backfill.backfill_id, error = %e,
                            "cannot save a backfill's progress; it resumes from its last saved page");
                        return;
                    }
                }
                if done {
                    return end(context, &backfill, BackfillState::Completed, String::new()).await;
                }
            }
            Ok(None) => {
                return end(context, &backfill, BackfillState::Completed, String::new()).await;
            }
            Err(ListError::Shutdown) => return,
            Err(ListError::Refused(message)) => {
                return end(context, &backfill, BackfillState::Failed, message).await;
            }
            // Picked up again at the next poll, from the last saved page.
            Err(ListError::Unavailable(message)) => {
                tracing::warn!(backfill = %backfill.backfill_id, error = %message,
                    "backfill paused; it resumes from its last saved page");
                return;
            }
        }
    }
}
