//! What transfers share and wait for: the global byte budget (memory held
//! by parts in flight, in KiB permits), the download bandwidth limiter, the
//! sink's request limiter and one download-request limiter per Zoom account.
//!
//! The per-account download rate is what Zoom sees, so it is split between
//! the replicas alive (`set_replicas`, from the engine's heartbeat).
//!
//! Every wait here races the transfer's cancellation token, so cancelling a
//! job or stopping the daemon never waits on a limiter. A part takes its
//! bandwidth before its memory, so a transfer held back by bandwidth holds
//! no budget.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::error::TransferError;
use crate::metrics::RATE_LIMIT_WAIT_SECONDS;

/// KiB permits for `bytes` (rounded up), as the budget semaphore counts.
pub fn kib(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX)
}

/// The limits every transfer of one engine shares.
pub struct Limits {
    budget: Arc<Semaphore>,
    /// Whole budget, in KiB permits: a part never asks for more.
    budget_permits: u32,
    bandwidth: Option<DefaultDirectRateLimiter>,
    sink_requests: Option<DefaultDirectRateLimiter>,
    downloads_per_account: NonZeroU32,
    /// Replicas sharing the per-account download rate (at least 1).
    replicas: AtomicU32,
    account_limiters: Mutex<HashMap<String, Arc<DefaultDirectRateLimiter>>>,
}

/// The limits' sizes, from the `[transfer]` settings.
#[derive(Clone, Copy, Debug)]
pub struct LimitSettings {
    pub byte_budget: u64,
    pub part_size: u64,
    pub bandwidth_bytes_per_second: Option<u64>,
    pub sink_requests_per_second: Option<u32>,
    pub download_requests_per_second: u32,
}

impl Limits {
    pub fn new(settings: LimitSettings) -> Self {
        let per_second =
            |n: u64| NonZeroU32::new(u32::try_from(n.min(u64::from(u32::MAX))).unwrap_or(u32::MAX));
        // Bandwidth is metered in KiB so that one part fits in a burst.
        let bandwidth = settings.bandwidth_bytes_per_second.and_then(|rate| {
            let rate = per_second(rate.div_ceil(1024))?;
            let burst = NonZeroU32::new(kib(settings.part_size).max(rate.get())).expect("non-zero");
            Some(RateLimiter::direct(
                Quota::per_second(rate).allow_burst(burst),
            ))
        });
        let sink_requests = settings
            .sink_requests_per_second
            .and_then(|rate| per_second(u64::from(rate)))
            .map(|rate| RateLimiter::direct(Quota::per_second(rate)));
        let budget_permits = kib(settings.byte_budget)
            .min(u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX))
            .max(1);
        Limits {
            budget: Arc::new(Semaphore::new(budget_permits as usize)),
            budget_permits,
            bandwidth,
            sink_requests,
            downloads_per_account: NonZeroU32::new(settings.download_requests_per_second.max(1))
                .expect("non-zero"),
            replicas: AtomicU32::new(1),
            account_limiters: Mutex::new(HashMap::new()),
        }
    }

    /// KiB permits one part of `part_size` bytes takes: a part larger than
    /// the whole budget (a huge file raised the part size) takes the whole
    /// budget rather than waiting forever.
    pub fn part_permits(&self, part_size: u64) -> u32 {
        kib(part_size).min(self.budget_permits)
    }

    /// The budget for one more part of `part_permits`: bandwidth first,
    /// then memory. Every part passes here exactly once.
    pub async fn part_budget(
        &self,
        part_permits: u32,
        cancel: &CancellationToken,
    ) -> Result<OwnedSemaphorePermit, TransferError> {
        if let Some(bandwidth) = &self.bandwidth
            && let Some(n) = NonZeroU32::new(part_permits)
        {
            wait_on(bandwidth, n, "bandwidth", cancel).await?;
        }
        tokio::select! {
            _ = cancel.cancelled() => Err(TransferError::Stopped),
            permit = self.budget.clone().acquire_many_owned(part_permits) =>
                Ok(permit.expect("the budget is never closed")),
        }
    }

    /// One request to the sink, when its rate is limited.
    pub async fn sink_request(&self, cancel: &CancellationToken) -> Result<(), TransferError> {
        match &self.sink_requests {
            Some(limiter) => wait_on(limiter, NonZeroU32::MIN, "sink_requests", cancel).await,
            None => Ok(()),
        }
    }

    /// Splits the per-account download rate between `replicas` daemons (the
    /// ones alive now), so that together they stay under what Zoom allows.
    pub fn set_replicas(&self, replicas: u32) {
        let replicas = replicas.max(1);
        if self.replicas.swap(replicas, Ordering::Relaxed) != replicas {
            // New limiters take the new share; the old ones are dropped.
            self.account_limiters
                .lock()
                .expect("limiter map lock")
                .clear();
        }
    }

    /// This replica's share of `rate` requests a second between `replicas`:
    /// one request every `replicas / rate` seconds, with a burst of its share
    /// of `rate` (so one replica alone gets `rate` a second, burst `rate`).
    fn account_quota(&self) -> Quota {
        let replicas = self.replicas.load(Ordering::Relaxed).max(1);
        let rate = self.downloads_per_account.get();
        let period = Duration::from_secs_f64(f64::from(replicas) / f64::from(rate));
        let burst = NonZeroU32::new(rate / replicas).unwrap_or(NonZeroU32::MIN);
        Quota::with_period(period)
            .expect("a positive period")
            .allow_burst(burst)
    }

    /// One download request to Zoom for `zoom_account_id`.
    pub async fn account_download(
        &self,
        zoom_account_id: &str,
        cancel: &CancellationToken,
    ) -> Result<(), TransferError> {
        let limiter = {
            let mut limiters = self.account_limiters.lock().expect("limiter map lock");
            limiters
                .entry(zoom_account_id.to_string())
                .or_insert_with(|| Arc::new(RateLimiter::direct(self.account_quota())))
                .clone()
        };
        wait_on(&limiter, NonZeroU32::MIN, "account_downloads", cancel).await
    }
}

/// Waits until `limiter` allows `n` cells (or `cancel` fires), counting the
/// wait when there is one.
async fn wait_on(
    limiter: &DefaultDirectRateLimiter,
    n: NonZeroU32,
    label: &'static str,
    cancel: &CancellationToken,
) -> Result<(), TransferError> {
    if matches!(limiter.check_n(n), Ok(Ok(()))) {
        return Ok(());
    }
    let started = std::time::Instant::now();
    // More than the burst can never be granted: `n` is capped by the caller.
    tokio::select! {
        _ = cancel.cancelled() => return Err(TransferError::Stopped),
        _ = limiter.until_n_ready(n) => {}
    }
    metrics::histogram!(RATE_LIMIT_WAIT_SECONDS, "limiter" => label)
        .record(started.elapsed().as_secs_f64());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(byte_budget: u64, bandwidth: Option<u64>) -> Limits {
        Limits::new(LimitSettings {
            byte_budget,
            part_size: 5 * 1024 * 1024,
            bandwidth_bytes_per_second: bandwidth,
            sink_requests_per_second: Some(1),
            download_requests_per_second: 1,
        })
    }

    #[tokio::test]
    async fn a_wait_for_the_budget_ends_when_the_transfer_is_cancelled() {
        let limits = limits(8 * 1024 * 1024, None);
        let permits = limits.part_permits(5 * 1024 * 1024);
        let cancel = CancellationToken::new();
        let _held = limits.part_budget(permits, &cancel).await.unwrap();
        let waiting = limits.part_budget(permits, &cancel);
        cancel.cancel();
        let waited = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert!(matches!(waited, Ok(Err(TransferError::Stopped))));
    }

    #[tokio::test]
    async fn a_wait_for_a_limiter_ends_when_the_transfer_is_cancelled() {
        let limits = limits(64 * 1024 * 1024, Some(1024));
        let cancel = CancellationToken::new();
        limits.sink_request(&cancel).await.unwrap();
        limits.account_download("acct", &cancel).await.unwrap();
        let permits = limits.part_permits(5 * 1024 * 1024);
        let _first_part = limits.part_budget(permits, &cancel).await.unwrap();
        cancel.cancel();
        for waited in [
            tokio::time::timeout(Duration::from_secs(5), limits.sink_request(&cancel)).await,
            tokio::time::timeout(
                Duration::from_secs(5),
                limits.account_download("acct", &cancel),
            )
            .await,
        ] {
            assert!(matches!(waited, Ok(Err(TransferError::Stopped))));
        }
        let bandwidth =
            tokio::time::timeout(Duration::from_secs(5), limits.part_budget(permits, &cancel))
                .await;
        assert!(matches!(bandwidth, Ok(Err(TransferError::Stopped))));
    }

    #[test]
    fn the_per_account_rate_is_split_between_the_replicas_alive() {
        let limits = Limits::new(LimitSettings {
            byte_budget: 1024 * 1024,
            part_size: 1024,
            bandwidth_bytes_per_second: None,
            sink_requests_per_second: None,
            download_requests_per_second: 6,
        });
        let quota = |limits: &Limits| {
            let q = limits.account_quota();
            (q.replenish_interval(), q.burst_size().get())
        };
        assert_eq!(
            quota(&limits),
            (Duration::from_nanos(166_666_667), 6),
            "alone: 6/s"
        );
        limits.set_replicas(3);
        assert_eq!(
            quota(&limits),
            (Duration::from_millis(500), 2),
            "a third each: 2/s"
        );
        limits.set_replicas(12);
        assert_eq!(
            quota(&limits),
            (Duration::from_secs(2), 1),
            "half a request a second each"
        );
        limits.set_replicas(0);
        assert_eq!(quota(&limits).1, 6, "never fewer than one replica");
    }

    #[tokio::test]
    async fn a_new_share_takes_effect_for_the_next_request() {
        let limits = limits(64 * 1024 * 1024, None);
        let cancel = CancellationToken::new();
        // 1 request a second alone: the first passes, the second would wait.
        limits.account_download("acct", &cancel).await.unwrap();
        limits.set_replicas(2);
        let waited = tokio::time::timeout(
            Duration::from_millis(200),
            limits.account_download("acct", &cancel),
        )
        .await;
        assert!(
            matches!(waited, Ok(Ok(()))),
            "a fresh limiter with the new share starts with its burst"
        );
        let next = tokio::time::timeout(
            Duration::from_millis(500),
            limits.account_download("acct", &cancel),
        )
        .await;
        assert!(
            next.is_err(),
            "then one request every 2 s: the next one waits"
        );
    }

    #[test]
    fn a_part_larger_than_the_budget_takes_the_whole_budget() {
        let limits = limits(4 * 1024 * 1024, None);
        assert_eq!(limits.part_permits(64 * 1024 * 1024), 4096);
        assert_eq!(limits.part_permits(1024 * 1024), 1024);
        assert_eq!(kib(1), 1);
        assert_eq!(kib(1025), 2);
    }
}
