//! The store's side of the web flows: short-lived tickets (a Marketplace
//! install's `state`, an install waiting for its configuration token, an
//! admin console session) and the Zoom accounts' Marketplace OAuth tokens.
//!
//! Every payload arrives sealed and every lookup key arrives hashed: the
//! store never sees a ticket's secret, a session's key or an OAuth token in
//! the clear. A refresh token is spent at most once: a refresh is claimed
//! under a condition on the stored token's hash, so two threads or two
//! replicas never both send the same refresh token to Zoom, and the tokens
//! a refresh returns are stored only while the spent one is still the
//! stored one.

use std::time::Duration;

use async_trait::async_trait;

use crate::model::Timestamp;
use crate::secrets::{Sealed, TokenHash};
use crate::store::StoreResult;

/// What a ticket is for; a ticket is only ever found under its own kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TicketKind {
    /// A Marketplace install's `state`, from `/zoom/install` to the callback.
    InstallState,
    /// An install Zoom approved, waiting for its configuration token.
    PendingInstall,
    /// A signed-in admin console session.
    ConsoleSession,
}

impl TicketKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TicketKind::InstallState => "install_state",
            TicketKind::PendingInstall => "pending_install",
            TicketKind::ConsoleSession => "console_session",
        }
    }
}

/// A short-lived record found by the hash of a secret its holder presents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ticket {
    pub kind: TicketKind,
    pub hash: TokenHash,
    /// The payload, sealed by the caller.
    pub sealed: Sealed,
    pub expires_at: Timestamp,
}

/// Tickets of the web flows.
#[async_trait]
pub trait TicketStore: Send + Sync {
    /// Stores the ticket, replacing one of the same kind and hash (a
    /// session's idle expiry moves this way).
    async fn put_ticket(&self, ticket: Ticket) -> StoreResult<()>;
    /// The ticket, while it has not expired at `now`.
    async fn get_ticket(
        &self,
        kind: TicketKind,
        hash: &TokenHash,
        now: Timestamp,
    ) -> StoreResult<Option<Ticket>>;
    /// Removes the ticket and returns it when it had not expired at `now`.
    /// Of callers racing for one ticket, one at most gets it: single use.
    async fn take_ticket(
        &self,
        kind: TicketKind,
        hash: &TokenHash,
        now: Timestamp,
    ) -> StoreResult<Option<Ticket>>;
    /// Forgets every ticket expired at `now`; returns how many.
    async fn sweep_tickets(&self, now: Timestamp) -> StoreResult<u64>;
}

/// A Zoom account's Marketplace (authorization code) OAuth tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountTokens {
    pub zoom_account_id: String,
    /// The Marketplace app the tokens belong to (not a secret).
    pub client_id: String,
    pub sealed_access_token: Sealed,
    pub access_expires_at: Timestamp,
    pub sealed_refresh_token: Sealed,
    /// The hash of the refresh token: what a refresh is conditional on.
    pub refresh_token_hash: TokenHash,
    pub updated_at: Timestamp,
}

/// The Marketplace OAuth tokens of installed accounts.
#[async_trait]
pub trait AccountTokenStore: Send + Sync {
    /// Stores an install's tokens, replacing any earlier ones of the account
    /// (and any refresh claim on them).
    async fn put_account_tokens(&self, tokens: AccountTokens) -> StoreResult<()>;
    async fn account_tokens(&self, zoom_account_id: &str) -> StoreResult<Option<AccountTokens>>;
    /// Claims the right to spend the refresh token whose hash is
    /// `refresh_token_hash` for `holder` until `now + ttl`: true only while
    /// that is still the stored refresh token and no other holder's claim
    /// is unexpired. Only a holder that got true may send it to Zoom.
    async fn claim_token_refresh(
        &self,
        zoom_account_id: &str,
        refresh_token_hash: &TokenHash,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> StoreResult<bool>;
    /// Stores the tokens a refresh returned, and ends the claim, if the
    /// spent token (`spent_refresh_token_hash`) is still the stored one;
    /// false otherwise (a reinstall or a deauthorization came first, and
    /// the tokens are dropped).
    async fn complete_token_refresh(
        &self,
        spent_refresh_token_hash: &TokenHash,
        tokens: AccountTokens,
    ) -> StoreResult<bool>;
    /// Ends `holder`'s claim without a new token (Zoom refused, or the call
    /// failed); another holder may then claim the same refresh token.
    async fn release_token_refresh(&self, zoom_account_id: &str, holder: &str) -> StoreResult<()>;
    /// Forgets the account's tokens (`app_deauthorized`); whether any were stored.
    async fn delete_account_tokens(&self, zoom_account_id: &str) -> StoreResult<bool>;
}
