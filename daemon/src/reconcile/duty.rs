//! Keeping one replica on a piece of listing work (an account's reconcile
//! pass, a backfill): the work runs only while this replica holds a duty
//! in the store (`ReplicaStore::take_duty`, a lease that one replica holds
//! at a time), renewed every third of the lease while the work runs. When a
//! renewal finds that another replica took the duty (this one stalled past
//! its lease), or cannot reach the store, the work's token is cancelled and
//! it stops at its next step; its cursor, saved after every page, lets the
//! new holder continue. A replica that dies keeps the duty until the lease
//! runs out, no longer. The after-copy trash duty holds its duty the same
//! way (`while_holding_duty`).

use std::future::Future;
use std::time::Duration;

use ferry_control::model::Timestamp;
use ferry_control::store::Store;
use tokio_util::sync::CancellationToken;

use super::ReconcileContext;

/// Who takes a duty, where, and for how long: the reconciler's runners and
/// the after-copy trash duty (`crate::zoom_trash`) alike.
#[derive(Clone, Copy)]
pub(crate) struct DutyTaker<'a> {
    pub store: &'a dyn Store,
    pub replica_id: &'a str,
    pub lease: Duration,
}

/// Takes (or renews) `duty` for this replica; false when another replica
/// holds it or the store cannot say.
async fn take(taker: DutyTaker<'_>, duty: &str) -> bool {
    match taker
        .store
        .take_duty(duty, taker.replica_id, Timestamp::now(), taker.lease)
        .await
    {
        Ok(held) => held,
        Err(e) => {
            tracing::warn!(duty, error = %e, "cannot take or renew a listing duty");
            false
        }
    }
}

/// Runs `work` while this replica holds `duty`: None when another replica
/// holds it. `work` gets a token cancelled at shutdown or when the duty is
/// lost.
pub(super) async fn while_holding<F, T>(
    context: &ReconcileContext,
    duty: &str,
    shutdown: &CancellationToken,
    work: impl FnOnce(CancellationToken) -> F,
) -> Option<T>
where
    F: Future<Output = T>,
{
    let taker = DutyTaker {
        store: context.store.as_ref(),
        replica_id: &context.replica_id,
        lease: context.settings.lease,
    };
    while_holding_duty(taker, duty, shutdown, work).await
}

/// `while_holding` for any taker.
pub(crate) async fn while_holding_duty<F, T>(
    taker: DutyTaker<'_>,
    duty: &str,
    shutdown: &CancellationToken,
    work: impl FnOnce(CancellationToken) -> F,
) -> Option<T>
where
    F: Future<Output = T>,
{
    if !take(taker, duty).await {
        return None;
    }
    let stop = shutdown.child_token();
    let renew_every = taker.lease / 3;
    let renew = async {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(renew_every) => {}
            }
            if !take(taker, duty).await {
                tracing::warn!(
                    duty,
                    "lost a listing duty to another replica; stopping at the next step"
                );
                stop.cancel();
                return;
            }
        }
    };
    let run = async {
        let result = work(stop.clone()).await;
        stop.cancel();
        result
    };
    let (result, ()) = tokio::join!(run, renew);
    Some(result)
}
