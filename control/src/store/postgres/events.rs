//! Job events across replicas. Every committed job change is announced to
//! this store's subscribers at once and, by a NOTIFY sent inside the same
//! transaction (so it is delivered only if the change commits), to every
//! other store on the database. Each store LISTENs on a connection of its
//! own, outside the pool; a notification from another store names the job,
//! which is read back and broadcast to this store's subscribers, so a
//! `WatchJobs` on replica B sees replica A's changes within milliseconds.
//!
//! Byte progress is not stored: `publish_progress` keeps the latest count
//! per job and a publisher sends them at most every `PROGRESS_EVERY`
//! (coalesced). While the database is unreachable nothing is relayed; the
//! listener reconnects with backoff, and events of the gap are not replayed
//! (watchers see the next change). A notification carries no secret: the
//! sending store's clock id, the kind, a byte count and the job id.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Pool};
use futures::StreamExt;
use tokio::sync::{Notify, broadcast, mpsc};
use tokio_postgres::{AsyncMessage, NoTls, Notification};
use tokio_util::sync::CancellationToken;

use super::jobs::find_job;
use super::{client_from, pg_error};
use crate::error::StoreError;
use crate::model::*;
use crate::store::StoreResult;

const CHANNEL: &str = "ferry_job_events";
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// A job change as a notification payload: `<clock id> <c|p> <bytes> <job id>`.
fn payload(clock_id: &str, job_id: &str, progress_only: bool, bytes: u64) -> String {
    let kind = if progress_only { 'p' } else { 'c' };
    format!("{clock_id} {kind} {bytes} {job_id}")
}

struct Announced<'a> {
    clock_id: &'a str,
    progress_only: bool,
    bytes: u64,
    job_id: &'a str,
}

fn parse_payload(text: &str) -> Option<Announced<'_>> {
    let mut fields = text.splitn(4, ' ');
    let clock_id = fields.next()?;
    let progress_only = match fields.next()? {
        "p" => true,
        "c" => false,
        _ => return None,
    };
    let bytes = fields.next()?.parse().ok()?;
    let job_id = fields.next()?;
    Some(Announced {
        clock_id,
        progress_only,
        bytes,
        job_id,
    })
}

/// Queues the announcement of `job`'s change; delivered when `c`'s
/// transaction commits.
pub(super) async fn notify(
    c: &impl GenericClient,
    clock_id: &str,
    job: &Job,
    progress_only: bool,
) -> StoreResult<()> {
    let text = payload(clock_id, &job.job_id, progress_only, job.bytes_transferred);
    let notify = c
        .prepare_cached("SELECT pg_notify($1, $2)")
        .await
        .map_err(pg_error)?;
    c.execute(&notify, &[&CHANNEL, &text])
        .await
        .map_err(pg_error)?;
    Ok(())
}

/// The latest unsent byte count of each job that reported progress.
#[derive(Default)]
pub(super) struct ProgressOutbox {
    pending: Mutex<HashMap<String, u64>>,
    wake: Notify,
}

impl ProgressOutbox {
    pub(super) fn push(&self, job: &Job) {
        self.pending
            .lock()
            .expect("progress outbox lock")
            .insert(job.job_id.clone(), job.bytes_transferred);
        self.wake.notify_one();
    }

    fn take(&self) -> HashMap<String, u64> {
        std::mem::take(&mut *self.pending.lock().expect("progress outbox lock"))
    }
}

pub(super) fn spawn_progress_publisher(
    pool: Pool,
    clock_id: String,
    outbox: std::sync::Arc<ProgressOutbox>,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = outbox.wake.notified() => {}
            }
            // Gather what arrives meanwhile: one notification per job per period.
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(PROGRESS_EVERY) => {}
            }
            let pending = outbox.take();
            let Ok(client) = client_from(&pool).await else {
                continue;
            };
            for (job_id, bytes) in pending {
                let text = payload(&clock_id, &job_id, true, bytes);
                if let Err(e) = client
                    .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &text])
                    .await
                {
                    tracing::debug!(job = %job_id, error = %pg_error(e), "progress notification not sent");
                    break;
                }
            }
        }
    });
}

/// A LISTENing connection: the client keeps the session, the driver task
/// forwards its notifications until the connection ends.
async fn listen(
    pg_config: &tokio_postgres::Config,
) -> StoreResult<(tokio_postgres::Client, mpsc::Receiver<Notification>)> {
    let (client, mut connection) = pg_config.connect(NoTls).await.map_err(pg_error)?;
    let (notification_tx, notification_rx) = mpsc::channel(1024);
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if notification_tx.send(n).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %pg_error(e), "job event listener connection lost");
                    return;
                }
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(pg_error)?;
    Ok((client, notification_rx))
}

/// Starts listening (the first connection is made before this returns, so
/// that every change committed after `open` is seen) and keeps listening,
/// reconnecting with backoff, until `stop`.
pub(super) async fn spawn_listener(
    pg_config: tokio_postgres::Config,
    pool: Pool,
    clock_id: String,
    job_events: broadcast::Sender<JobEvent>,
    stop: CancellationToken,
) -> StoreResult<()> {
    let mut session = Some(listen(&pg_config).await?);
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            let (client, mut notifications) = match session.take() {
                Some(session) => session,
                None => {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    match listen(&pg_config).await {
                        Ok(session) => {
                            tracing::info!("job event listener reconnected");
                            backoff = Duration::from_millis(100);
                            session
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "job event listener cannot reconnect yet");
                            backoff = (backoff * 2).min(Duration::from_secs(5));
                            continue;
                        }
                    }
                }
            };
            loop {
                let notification = tokio::select! {
                    () = stop.cancelled() => return,
                    n = notifications.recv() => n,
                };
                let Some(notification) = notification else {
                    break;
                };
                relay(&pool, &clock_id, &job_events, notification.payload()).await;
            }
            drop(client);
        }
    });
    Ok(())
}

/// Broadcasts another store's announced change to this store's subscribers.
async fn relay(pool: &Pool, clock_id: &str, job_events: &broadcast::Sender<JobEvent>, text: &str) {
    let Some(announced) = parse_payload(text) else {
        tracing::warn!("ignored a malformed job event notification");
        return;
    };
    if announced.clock_id == clock_id || job_events.receiver_count() == 0 {
        return;
    }
    let job = match client_from(pool).await {
        Ok(client) => find_job(&client, announced.job_id, false).await,
        Err(e) => Err(e),
    };
    match job {
        Ok(mut job) => {
            if announced.progress_only {
                job.bytes_transferred = announced.bytes;
            }
            let _ = job_events.send(JobEvent {
                job,
                progress_only: announced.progress_only,
            });
        }
        Err(StoreError::NotFound(_)) => {}
        Err(e) => tracing::debug!(job = %announced.job_id, error = %e, "job event not relayed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_malformed_ones_are_refused() {
        let text = payload("clk_1", "job_0190ab", true, 1234);
        let announced = parse_payload(&text).expect("parse");
        assert_eq!(
            (
                announced.clock_id,
                announced.progress_only,
                announced.bytes,
                announced.job_id
            ),
            ("clk_1", true, 1234, "job_0190ab")
        );
        for bad in [
            "",
            "clk_1",
            "clk_1 x 1 job",
            "clk_1 c notanumber job",
            "clk_1 c 1",
        ] {
            assert!(parse_payload(bad).is_none(), "{bad:?} must be refused");
        }
    }
}
