//! An installed account's access token, refreshed when it is about to
//! expire. Zoom rotates the refresh token on every use and refuses a spent
//! one, so exactly one caller — among this daemon's tasks and every replica
//! sharing the store — spends a given refresh token: it first claims the
//! refresh in the store, conditional on that token still being the stored
//! one (`AccountTokenStore::claim_token_refresh`); the others wait and read
//! the tokens the winner stored. The new pair is stored only while the
//! spent token is still the stored one, in one conditional write.

use std::time::{Duration, Instant};

use ferry_control::model::Timestamp;
use ferry_control::secrets::Secret;

use super::Marketplace;
use crate::transfer::zoom_api::ApiError;

/// An access token is refreshed this long before it expires.
const EXPIRY_MARGIN_MS: i64 = 60_000;
/// How long a claim holds off other refreshers: longer than a token call
/// can take, short enough that a crashed holder does not hold up the rest.
const CLAIM_TTL: Duration = Duration::from_secs(30);
/// How long a caller waits for another's refresh before giving up for now.
const WAIT_FOR_OTHERS: Duration = Duration::from_secs(35);
const POLL: Duration = Duration::from_millis(100);

fn store_unavailable(e: ferry_control::error::StoreError) -> ApiError {
    ApiError::Unavailable {
        message: format!("store: {e}"),
        retry_after: None,
    }
}

impl Marketplace {
    /// The account's access token, refreshed first when it expires within
    /// a minute or when it is `stale` (Zoom just refused it). None when the
    /// account has no Marketplace tokens.
    pub async fn access_token(
        &self,
        zoom_account_id: &str,
        stale: Option<&Secret>,
    ) -> Result<Option<Secret>, ApiError> {
        let deadline = Instant::now() + WAIT_FOR_OTHERS;
        loop {
            let Some(stored) = self
                .store
                .account_tokens(zoom_account_id)
                .await
                .map_err(store_unavailable)?
            else {
                return Ok(None);
            };
            let access = self
                .secret_box
                .open_secret(&stored.sealed_access_token)
                .map_err(|_| unreadable())?;
            let now = Timestamp::now();
            let expiring = stored.access_expires_at.0 - now.0 <= EXPIRY_MARGIN_MS;
            let refused = stale.is_some_and(|s| s.expose() == access.expose());
            if !expiring && !refused {
                return Ok(Some(access));
            }
            let holder = format!("{}-{}", self.replica, ferry_control::store::new_id("r"));
            let claimed = self
                .store
                .claim_token_refresh(
                    zoom_account_id,
                    &stored.refresh_token_hash,
                    &holder,
                    now,
                    CLAIM_TTL,
                )
                .await
                .map_err(store_unavailable)?;
            if claimed {
                let refresh = self
                    .secret_box
                    .open_secret(&stored.sealed_refresh_token)
                    .map_err(|_| unreadable())?;
                match self.refresh_grant(&refresh).await {
                    Ok(issued) => {
                        let fresh = self.seal_tokens(zoom_account_id, &issued, Timestamp::now());
                        let kept = self
                            .store
                            .complete_token_refresh(&stored.refresh_token_hash, fresh)
                            .await
                            .map_err(store_unavailable)?;
                        if kept {
                            tracing::info!(account = %zoom_account_id, "zoom account's oauth tokens refreshed");
                            return Ok(Some(issued.access_token));
                        }
                        // Reinstalled or deauthorized meanwhile: read again.
                        continue;
                    }
                    Err(e) => {
                        let _ = self
                            .store
                            .release_token_refresh(zoom_account_id, &holder)
                            .await;
                        return Err(match e {
                            ApiError::Refused(message) => ApiError::Refused(format!(
                                "{message}: the account's Marketplace authorization has lapsed or was \
                                 revoked; a Zoom admin must install the app again"
                            )),
                            other => other,
                        });
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(ApiError::Unavailable {
                    message: "another refresh of the account's oauth token did not finish".into(),
                    retry_after: None,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

fn unreadable() -> ApiError {
    ApiError::Refused(
        "the account's oauth tokens cannot be read with this daemon's encryption key".into(),
    )
}
