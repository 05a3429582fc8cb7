//! AES-GCM throughput of the two crypto providers rustls offers, ring and
//! aws-lc-rs, measured on the machine the bench runs on: the evidence
//! behind the provider Ferry's TLS clients use
//! (`ferry_daemon::tls::PROVIDER_NAME`).
//!
//! Each provider seals (encrypts) and opens (decrypts) TLS-record-sized
//! buffers (16 KiB, the most plaintext one TLS record carries) with its own
//! `aead` module, the code its rustls provider runs for every record. Both
//! crates expose the same `aead` API, so one macro writes both measurements
//! and neither gets a different loop. Nothing here is secret: the key is
//! fixed and the nonce repeats, which is harmless for a timing loop and
//! wrong for anything else.

use std::time::{Duration, Instant};

/// The most plaintext one TLS record carries.
pub const RECORD_BYTES: usize = 16 * 1024;

/// One provider's figures for one algorithm, in bytes per second.
#[derive(Clone, Debug)]
pub struct AeadFigures {
    pub provider: &'static str,
    pub algorithm: &'static str,
    pub seal_bytes_per_second: f64,
    /// Each record is copied back to its ciphertext before it is opened
    /// (a 16 KiB memcpy per record, the same for both providers).
    pub open_bytes_per_second: f64,
}

/// Times `step` on records until `duration` has passed (at least one);
/// returns bytes per second.
fn bytes_per_second(duration: Duration, mut step: impl FnMut()) -> f64 {
    // A warm-up round, so that the first measured record does not pay for
    // CPU feature detection or cold caches.
    for _ in 0..64 {
        step();
    }
    let started = Instant::now();
    let mut records = 0u64;
    loop {
        for _ in 0..64 {
            step();
        }
        records += 64;
        let elapsed = started.elapsed();
        if elapsed >= duration {
            return (records * RECORD_BYTES as u64) as f64 / elapsed.as_secs_f64();
        }
    }
}

/// One provider's AES-128-GCM and AES-256-GCM, each sealed and opened for
/// `duration`. `$krate` is the provider's crate.
macro_rules! measure_provider {
    ($provider:literal, $krate:ident, $duration:expr) => {{
        use $krate::aead;
        let algorithms: [(&'static str, &'static aead::Algorithm, usize); 2] = [
            ("AES-128-GCM", &aead::AES_128_GCM, 16),
            ("AES-256-GCM", &aead::AES_256_GCM, 32),
        ];
        let mut figures = Vec::new();
        for (name, algorithm, key_len) in algorithms {
            let key_bytes = vec![0x42u8; key_len];
            let key = aead::LessSafeKey::new(
                aead::UnboundKey::new(algorithm, &key_bytes)
                    .map_err(|_| anyhow::anyhow!("{} rejects a {name} key", $provider))?,
            );
            let nonce = || aead::Nonce::assume_unique_for_key([7u8; 12]);
            let mut record = vec![0x5au8; RECORD_BYTES];
            let seal_bytes_per_second = bytes_per_second($duration, || {
                let tag = key
                    .seal_in_place_separate_tag(nonce(), aead::Aad::empty(), &mut record)
                    .expect("sealing a record cannot fail");
                let _sealed = std::hint::black_box(tag);
            });
            // One sealed record with its tag appended, opened again and again.
            let mut sealed = vec![0x5au8; RECORD_BYTES];
            key.seal_in_place_append_tag(nonce(), aead::Aad::empty(), &mut sealed)
                .map_err(|_| anyhow::anyhow!("{} cannot seal with {name}", $provider))?;
            let mut opened = sealed.clone();
            let open_bytes_per_second = bytes_per_second($duration, || {
                opened.copy_from_slice(&sealed);
                let plaintext = key
                    .open_in_place(nonce(), aead::Aad::empty(), &mut opened)
                    .expect("the record was sealed with this key and nonce");
                let _opened = std::hint::black_box(plaintext);
            });
            figures.push(AeadFigures {
                provider: $provider,
                algorithm: name,
                seal_bytes_per_second,
                open_bytes_per_second,
            });
        }
        figures
    }};
}

/// Both providers, both key sizes; each loop runs for `duration`.
pub fn measure(duration: Duration) -> anyhow::Result<Vec<AeadFigures>> {
    let mut figures = measure_provider!("ring", ring, duration);
    figures.extend(measure_provider!("aws-lc-rs", aws_lc_rs, duration));
    Ok(figures)
}

/// The provider with the higher sum of seal and open rates over both key
/// sizes (a transfer decrypts every byte once and encrypts it once).
pub fn faster_provider(figures: &[AeadFigures]) -> Option<&'static str> {
    let total = |provider: &str| -> f64 {
        figures
            .iter()
            .filter(|f| f.provider == provider)
            .map(|f| f.seal_bytes_per_second + f.open_bytes_per_second)
            .sum()
    };
    let mut providers: Vec<&'static str> = figures.iter().map(|f| f.provider).collect();
    providers.dedup();
    providers
        .into_iter()
        .max_by(|a, b| total(a).total_cmp(&total(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(provider: &'static str, rate: f64) -> AeadFigures {
        AeadFigures {
            provider,
            algorithm: "AES-256-GCM",
            seal_bytes_per_second: rate,
            open_bytes_per_second: rate,
        }
    }

    #[test]
    fn the_faster_provider_is_the_one_with_the_higher_total() {
        let measured = [figures("ring", 2.0), figures("aws-lc-rs", 3.0)];
        assert_eq!(faster_provider(&measured), Some("aws-lc-rs"));
        let measured = [figures("ring", 4.0), figures("aws-lc-rs", 3.0)];
        assert_eq!(faster_provider(&measured), Some("ring"));
        assert_eq!(faster_provider(&[]), None);
    }

    #[test]
    fn both_providers_seal_and_open_at_a_measurable_rate() {
        let measured = measure(Duration::from_millis(5)).unwrap();
        assert_eq!(measured.len(), 4);
        for figure in &measured {
            assert!(figure.seal_bytes_per_second > 0.0, "{figure:?}");
            assert!(figure.open_bytes_per_second > 0.0, "{figure:?}");
        }
    }
}
