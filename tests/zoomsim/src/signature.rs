//! Zoom's side of the webhook signature (ZOOM.md): `v0=` + hex HMAC-SHA256
//! over `v0:{timestamp}:{raw body}`, keyed with the app's secret token. It
//! owns signing only; checking a signature is the daemon's intake
//! (`ferry_daemon::intake::signature`), which must never call this, so that
//! the tests verify the daemon against an independent signer.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Signs like Zoom does: the `x-zm-signature` value for `body` sent at
/// `timestamp` (Unix seconds, the `x-zm-request-timestamp` value).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}
