//! Zoom's webhook signature (ZOOM.md): `v0=` + hex HMAC-SHA256 over
//! `v0:{timestamp}:{raw body}`, keyed with the app's secret token, checked in
//! constant time, with a replay window around the request timestamp.

use std::time::Duration;

use ferry_control::secrets::Secret;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Why a request's signature was refused. Each is a 401 and a counter.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("missing x-zm-request-timestamp")]
    MissingTimestamp,
    #[error("malformed x-zm-request-timestamp")]
    MalformedTimestamp,
    #[error("x-zm-request-timestamp is outside the allowed window")]
    StaleTimestamp,
    #[error("missing x-zm-signature")]
    MissingSignature,
    #[error("malformed x-zm-signature")]
    MalformedSignature,
    #[error("signature does not match")]
    Mismatch,
}

/// Holds the current secret and, during rotation, the previous one.
#[derive(Clone)]
pub struct WebhookVerifier {
    secrets: Vec<Secret>,
    tolerance: Duration,
}

impl std::fmt::Debug for WebhookVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookVerifier")
            .field("secrets", &self.secrets.len())
            .field("tolerance", &self.tolerance)
            .finish()
    }
}

fn mac(secret: &Secret) -> HmacSha256 {
    HmacSha256::new_from_slice(secret.expose().as_bytes()).expect("HMAC accepts keys of any length")
}

impl WebhookVerifier {
    pub fn new(current: Secret, previous: Option<Secret>, tolerance: Duration) -> Self {
        WebhookVerifier {
            secrets: std::iter::once(current).chain(previous).collect(),
            tolerance,
        }
    }

    /// Checks the headers against the raw body bytes as received.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now_unix_seconds: i64,
    ) -> Result<(), SignatureError> {
        let timestamp = headers
            .get("x-zm-request-timestamp")
            .ok_or(SignatureError::MissingTimestamp)?
            .to_str()
            .map_err(|_| SignatureError::MalformedTimestamp)?;
        if timestamp.is_empty()
            || timestamp.len() > 12
            || !timestamp.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(SignatureError::MalformedTimestamp);
        }
        let seconds: i64 = timestamp
            .parse()
            .map_err(|_| SignatureError::MalformedTimestamp)?;
        if seconds.abs_diff(now_unix_seconds) > self.tolerance.as_secs() {
            return Err(SignatureError::StaleTimestamp);
        }
        let signature = headers
            .get("x-zm-signature")
            .ok_or(SignatureError::MissingSignature)?
            .to_str()
            .map_err(|_| SignatureError::MalformedSignature)?;
        let expected = signature
            .strip_prefix("v0=")
            .and_then(|hex_digest| hex::decode(hex_digest).ok())
            .filter(|digest| digest.len() == 32)
            .ok_or(SignatureError::MalformedSignature)?;
        let matches = self.secrets.iter().any(|secret| {
            let mut mac = mac(secret);
            mac.update(b"v0:");
            mac.update(timestamp.as_bytes());
            mac.update(b":");
            mac.update(body);
            // Constant-time comparison.
            mac.verify_slice(&expected).is_ok()
        });
        if matches {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        }
    }

    /// The `encryptedToken` answer to `endpoint.url_validation`, with the
    /// current secret.
    pub fn url_validation_token(&self, plain_token: &str) -> String {
        let mut mac = mac(&self.secrets[0]);
        mac.update(plain_token.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    // Signed by the Zoom simulator, independently of the code under test.
    use ferry_zoomsim::sign;

    fn headers(timestamp: &str, signature: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-zm-request-timestamp", timestamp.parse().unwrap());
        headers.insert("x-zm-signature", signature.parse().unwrap());
        headers
    }

    fn verifier() -> WebhookVerifier {
        WebhookVerifier::new(
            Secret::new("current"),
            Some(Secret::new("previous")),
            Duration::from_secs(300),
        )
    }

    #[test]
    fn accepts_both_secrets_and_only_the_exact_bytes() {
        let body = br#"{"event":"x"}"#;
        let now = 1_700_000_000;
        for secret in ["current", "previous"] {
            let signature = sign(secret, now, body);
            assert_eq!(
                verifier().verify(&headers(&now.to_string(), &signature), body, now),
                Ok(())
            );
        }
        let signature = sign("current", now, body);
        let reserialised = br#"{ "event": "x" }"#;
        assert_eq!(
            verifier().verify(&headers(&now.to_string(), &signature), reserialised, now),
            Err(SignatureError::Mismatch)
        );
        let other = sign("someone-else", now, body);
        assert_eq!(
            verifier().verify(&headers(&now.to_string(), &other), body, now),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn the_window_is_inclusive_at_300_seconds() {
        let body = b"{}";
        let now = 1_700_000_000;
        for (offset, ok) in [(-300, true), (300, true), (-301, false), (301, false)] {
            let at = now + offset;
            let result = verifier().verify(
                &headers(&at.to_string(), &sign("current", at, body)),
                body,
                now,
            );
            assert_eq!(result.is_ok(), ok, "offset {offset}");
        }
    }

    #[test]
    fn malformed_headers_are_named() {
        let body = b"{}";
        let now = 1_700_000_000;
        assert_eq!(
            verifier().verify(&HeaderMap::new(), body, now),
            Err(SignatureError::MissingTimestamp)
        );
        let mut only_timestamp = HeaderMap::new();
        only_timestamp.insert("x-zm-request-timestamp", now.to_string().parse().unwrap());
        assert_eq!(
            verifier().verify(&only_timestamp, body, now),
            Err(SignatureError::MissingSignature)
        );
        assert_eq!(
            verifier().verify(&headers("-5", "v0=00"), body, now),
            Err(SignatureError::MalformedTimestamp)
        );
        assert_eq!(
            verifier().verify(&headers(&now.to_string(), "v1=abc"), body, now),
            Err(SignatureError::MalformedSignature)
        );
        assert_eq!(
            verifier().verify(&headers(&now.to_string(), "v0=zz"), body, now),
            Err(SignatureError::MalformedSignature)
        );
    }

    #[test]
    fn url_validation_matches_zooms_definition() {
        // HMAC-SHA256("current", "qgg8vlvZRS6UYooatFL8Aw"), lowercase hex.
        let mut mac = HmacSha256::new_from_slice(b"current").unwrap();
        mac.update(b"qgg8vlvZRS6UYooatFL8Aw");
        let expected = hex::encode(mac.finalize().into_bytes());
        assert_eq!(
            verifier().url_validation_token("qgg8vlvZRS6UYooatFL8Aw"),
            expected
        );
        assert_eq!(expected.len(), 64);
        assert!(!format!("{:?}", verifier()).contains("current"));
    }
}
