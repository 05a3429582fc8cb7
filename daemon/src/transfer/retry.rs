//! The one retry loop of the transfer path: a whole attempt (in the engine)
//! and a single part upload (in the uploader) both go through [`retry`],
//! with exponential backoff and full jitter, `Retry-After` honoured, every
//! retry counted by stage, and every wait raced against cancellation. It
//! never retries anything but [`TransferError::Transient`].

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::error::TransferError;
use crate::metrics::RETRIES_TOTAL;

/// How often and how patiently to try.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Tries in all, the first included (at least 1).
    pub max_attempts: u32,
    pub backoff_base: Duration,
}

impl RetryPolicy {
    /// Exponential backoff with full jitter: a random delay in
    /// `[base, base × 2^attempt]`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        use rand::Rng;
        let base = self.backoff_base;
        let ceiling = base.saturating_mul(1u32 << attempt.min(10));
        let millis = rand::rng().random_range(
            base.as_millis() as u64..=ceiling.as_millis().max(base.as_millis()) as u64,
        );
        Duration::from_millis(millis)
    }
}

/// Runs `op(attempt)` (attempt counts from 1) until it succeeds, fails other
/// than transiently, or `policy.max_attempts` tries have failed (then the
/// last transient failure is returned as it is: the caller decides what
/// giving up means); waits between tries unless `cancel` fires first (then
/// [`TransferError::Stopped`]). `what` names the operation in the log.
pub async fn retry<T, F, Fut>(
    policy: RetryPolicy,
    what: &str,
    cancel: &CancellationToken,
    mut op: F,
) -> Result<T, TransferError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, TransferError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match op(attempt).await {
            Err(TransferError::Transient {
                message,
                retry_after,
                stage,
            }) if attempt < policy.max_attempts => {
                metrics::counter!(RETRIES_TOTAL, "stage" => stage.as_str()).increment(1);
                let delay = retry_after.unwrap_or_else(|| policy.backoff(attempt));
                tracing::warn!(attempt, stage = stage.as_str(), delay_ms = delay.as_millis() as u64,
                    error = %message, "{what} failed; retrying");
                tokio::select! {
                    _ = cancel.cancelled() => return Err(TransferError::Stopped),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::transfer::error::Stage;

    fn policy(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            backoff_base: Duration::from_millis(100),
        }
    }

    fn transient(retry_after: Option<Duration>) -> TransferError {
        TransferError::Transient {
            message: "part 3 upload failed".into(),
            retry_after,
            stage: Stage::UploadPart,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_until_one_succeeds() {
        let calls = AtomicU32::new(0);
        let cancel = CancellationToken::new();
        let result = retry(policy(4), "upload", &cancel, |attempt| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if attempt < 3 {
                    Err(transient(None))
                } else {
                    Ok(attempt)
                }
            }
        })
        .await;
        assert_eq!(result.unwrap(), 3);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn the_last_transient_failure_is_returned_after_max_attempts() {
        let calls = AtomicU32::new(0);
        let cancel = CancellationToken::new();
        let result: Result<(), _> = retry(policy(3), "upload", &cancel, |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(transient(None)) }
        })
        .await;
        match result {
            Err(TransferError::Transient { message, stage, .. }) => {
                assert_eq!(
                    (message.as_str(), stage),
                    ("part 3 upload failed", Stage::UploadPart)
                )
            }
            other => panic!("expected the transient failure, got {other:?}"),
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn other_failures_are_not_retried() {
        let calls = AtomicU32::new(0);
        let cancel = CancellationToken::new();
        let result: Result<(), _> = retry(policy(5), "upload", &cancel, |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(TransferError::Permanent("no".into())) }
        })
        .await;
        assert!(matches!(result, Err(TransferError::Permanent(m)) if m == "no"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_waited_out_exactly() {
        let cancel = CancellationToken::new();
        let started = tokio::time::Instant::now();
        let result = retry(policy(2), "upload", &cancel, |attempt| async move {
            if attempt == 1 {
                Err(transient(Some(Duration::from_secs(7))))
            } else {
                Ok(())
            }
        })
        .await;
        assert!(result.is_ok());
        assert_eq!(started.elapsed(), Duration::from_secs(7));
    }

    #[tokio::test(start_paused = true)]
    async fn cancelling_ends_the_wait_at_once() {
        let cancel = CancellationToken::new();
        let canceller = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            canceller.cancel();
        });
        let started = tokio::time::Instant::now();
        let result: Result<(), _> = retry(policy(2), "upload", &cancel, |_| async {
            Err(transient(Some(Duration::from_secs(3600))))
        })
        .await;
        assert!(matches!(result, Err(TransferError::Stopped)));
        assert_eq!(started.elapsed(), Duration::from_secs(1));
    }

    #[test]
    fn backoff_stays_between_the_base_and_the_doubled_ceiling() {
        let policy = policy(10);
        for attempt in 1..=12 {
            let ceiling = Duration::from_millis(100) * (1 << attempt.min(10));
            for _ in 0..50 {
                let delay = policy.backoff(attempt);
                assert!(
                    delay >= Duration::from_millis(100) && delay <= ceiling,
                    "{delay:?}"
                );
            }
        }
    }
}
