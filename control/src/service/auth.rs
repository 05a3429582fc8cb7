//! Who is calling: the operator, or an admin key of one institution.
//! Credentials arrive as `authorization: Bearer <secret>` metadata and are
//! only ever compared by hash.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tonic::{Request, Status};

use crate::secrets::TokenHash;
use crate::store::Store;

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// Acts on every institution.
    Operator,
    /// Acts only on `institution_id`.
    Admin {
        institution_id: String,
        key_id: String,
    },
}

impl Principal {
    /// The institution a request acts on. An admin key may leave
    /// `requested` empty (its own) or name its own; naming another answers
    /// NOT_FOUND, exactly as for an institution that does not exist, so
    /// nothing about other institutions leaks. The operator must name one.
    pub fn scope(&self, requested: &str) -> Result<String, Status> {
        let requested = requested.trim();
        match self {
            Principal::Operator if requested.is_empty() => Err(Status::invalid_argument(
                "institution_id: required when calling with the operator token",
            )),
            Principal::Operator => Ok(requested.to_string()),
            Principal::Admin { institution_id, .. }
                if requested.is_empty() || requested == institution_id =>
            {
                Ok(institution_id.clone())
            }
            Principal::Admin { .. } => Err(Status::not_found(format!(
                "institution {requested} not found"
            ))),
        }
    }

    pub fn require_operator(&self) -> Result<(), Status> {
        match self {
            Principal::Operator => Ok(()),
            Principal::Admin { .. } => Err(Status::permission_denied(
                "this call needs the operator token",
            )),
        }
    }
}

/// How long a verified admin key is trusted without asking the store again.
/// A revocation made through this daemon takes effect at once (the entry is
/// dropped); one made through another replica sharing the store, within this.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(2);
/// Verified keys kept at most; past this the cache starts over.
const KEY_CACHE_CAPACITY: usize = 10_000;

/// Checks bearer credentials against the operator token hash and the store's
/// admin keys.
#[derive(Clone)]
pub struct Authenticator {
    store: Arc<dyn Store>,
    operator_hash: TokenHash,
    /// Hash of a valid admin key → its principal and when it was checked.
    /// Only successes are cached: an unknown key always reaches the store.
    verified: Arc<Mutex<HashMap<TokenHash, (Principal, Instant)>>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authenticator(<redacted>)")
    }
}

impl Authenticator {
    pub fn new(store: Arc<dyn Store>, operator_hash: TokenHash) -> Self {
        Authenticator {
            store,
            operator_hash,
            verified: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    pub async fn authenticate<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        let header = request.metadata().get("authorization").ok_or_else(|| {
            Status::unauthenticated("missing authorization metadata (expected: Bearer <key>)")
        })?;
        let value = header
            .to_str()
            .map_err(|_| Status::unauthenticated("authorization metadata is not valid text"))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                Status::unauthenticated("authorization metadata must be \"Bearer <key>\"")
            })?;
        let hash = TokenHash::of(token);
        if hash.matches(&self.operator_hash) {
            return Ok(Principal::Operator);
        }
        if let Some((principal, checked_at)) =
            self.verified.lock().expect("key cache lock").get(&hash)
            && checked_at.elapsed() < KEY_CACHE_TTL
        {
            return Ok(principal.clone());
        }
        match self.store.find_admin_key(&hash).await? {
            Some(key) => {
                let principal = Principal::Admin {
                    institution_id: key.institution_id,
                    key_id: key.key_id,
                };
                let mut verified = self.verified.lock().expect("key cache lock");
                if verified.len() >= KEY_CACHE_CAPACITY {
                    verified.clear();
                }
                verified.insert(hash, (principal.clone(), Instant::now()));
                Ok(principal)
            }
            None => Err(Status::unauthenticated("unknown or revoked key")),
        }
    }

    /// Drops a revoked key from the cache so that it stops working at once.
    pub fn forget_key(&self, key_id: &str) {
        self.verified
            .lock()
            .expect("key cache lock")
            .retain(|_, (principal, _)| !matches!(principal, Principal::Admin { key_id: id, .. } if id == key_id));
    }
}
