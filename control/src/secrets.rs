//! Credentials and how Ferry keeps them: random tokens with recognisable
//! prefixes, their SHA-256 hashes (the only form the store keeps of a
//! token), and sealing of the secrets Ferry must read back later (OAuth
//! client secrets, download tokens) with ChaCha20-Poly1305.
//!
//! Nothing here may print a secret: `Secret`, `Sealed` and `SecretBox` all
//! redact themselves in `Debug`.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Prefix of the operator token.
pub const OPERATOR_TOKEN_PREFIX: &str = "fop_";
/// Prefix of institution admin keys.
pub const ADMIN_KEY_PREFIX: &str = "fak_";
/// Prefix of Zoom configuration tokens.
pub const CONFIGURATION_TOKEN_PREFIX: &str = "fzc_";

/// A secret string. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the few places that must send it somewhere.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// The SHA-256 of a token, as lowercase hex. Tokens carry 256 random bits, so
/// a fast hash is the right one: there is nothing to brute-force.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TokenHash(String);

impl TokenHash {
    pub fn of(token: &str) -> Self {
        TokenHash(hex::encode(Sha256::digest(token.as_bytes())))
    }

    pub fn from_hex(hex: impl Into<String>) -> Self {
        TokenHash(hex.into())
    }

    pub fn as_hex(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison, for the one place a hash is compared in
    /// memory rather than looked up (the operator token).
    pub fn matches(&self, other: &TokenHash) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(<redacted>)")
    }
}

/// A fresh token: `prefix` followed by 256 random bits in unpadded base64url
/// (43 characters), and its hash.
pub fn generate_token(prefix: &str) -> (Secret, TokenHash) {
    let mut bits = [0u8; 32];
    rand::rng().fill_bytes(&mut bits);
    let token = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bits));
    let hash = TokenHash::of(&token);
    (Secret(token), hash)
}

/// Bytes sealed by a `SecretBox`: a 12-byte nonce followed by the ciphertext.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(pub Vec<u8>);

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed({} bytes)", self.0.len())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretBoxError {
    #[error("encryption key must be 32 bytes encoded as base64 (44 characters)")]
    BadKey,
    #[error("sealed value could not be opened: wrong encryption key or corrupted data")]
    Open,
}

/// Authenticated encryption of stored secrets with a 256-bit key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: ChaCha20Poly1305,
}

impl fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBox(<redacted>)")
    }
}

impl SecretBox {
    pub fn from_key_bytes(key: &[u8; 32]) -> Self {
        SecretBox {
            cipher: ChaCha20Poly1305::new(Key::from_slice(key)),
        }
    }

    /// Parses a key given as standard base64 of 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, SecretBoxError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| SecretBoxError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| SecretBoxError::BadKey)?;
        Ok(Self::from_key_bytes(&key))
    }

    /// A new random key, base64-encoded.
    pub fn generate_key_base64() -> Secret {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Secret(base64::engine::general_purpose::STANDARD.encode(key))
    }

    pub fn seal(&self, plaintext: &[u8]) -> Sealed {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext)
            .expect("chacha20poly1305 encryption of an in-memory buffer cannot fail");
        let mut sealed = Vec::with_capacity(12 + ciphertext.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Sealed(sealed)
    }

    pub fn seal_str(&self, plaintext: &str) -> Sealed {
        self.seal(plaintext.as_bytes())
    }

    pub fn open(&self, sealed: &Sealed) -> Result<Vec<u8>, SecretBoxError> {
        if sealed.0.len() < 12 {
            return Err(SecretBoxError::Open);
        }
        let (nonce, ciphertext) = sealed.0.split_at(12);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| SecretBoxError::Open)
    }

    pub fn open_secret(&self, sealed: &Sealed) -> Result<Secret, SecretBoxError> {
        let bytes = self.open(sealed)?;
        String::from_utf8(bytes)
            .map(Secret)
            .map_err(|_| SecretBoxError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_prefix_and_256_bits() {
        let (token, hash) = generate_token(CONFIGURATION_TOKEN_PREFIX);
        let body = token.expose().strip_prefix("fzc_").unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(body).unwrap().len(), 32);
        assert_eq!(hash, TokenHash::of(token.expose()));
        assert_ne!(generate_token("x_").0, generate_token("x_").0);
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let (token, hash) = generate_token(ADMIN_KEY_PREFIX);
        let shown = format!("{token:?} {hash:?}");
        assert!(!shown.contains(token.expose()));
        assert!(!shown.contains(hash.as_hex()));
    }

    #[test]
    fn sealed_values_round_trip_and_detect_tampering() {
        let secret_box = SecretBox::from_base64(SecretBox::generate_key_base64().expose()).unwrap();
        let mut sealed = secret_box.seal_str("client-secret");
        assert!(!sealed.0.windows(13).any(|w| w == b"client-secret"));
        assert_eq!(
            secret_box.open_secret(&sealed).unwrap().expose(),
            "client-secret"
        );
        let last = sealed.0.len() - 1;
        sealed.0[last] ^= 1;
        assert!(secret_box.open(&sealed).is_err());
        let other = SecretBox::from_base64(SecretBox::generate_key_base64().expose()).unwrap();
        assert!(other.open(&secret_box.seal_str("x")).is_err());
    }

    #[test]
    fn bad_keys_are_rejected() {
        assert!(SecretBox::from_base64("short").is_err());
        assert!(SecretBox::from_base64("not base64 at all!!").is_err());
    }
}
