//! Which servers Ferry's outgoing HTTPS connections trust: one place for
//! both hops of a transfer (the Zoom downloads
//! and API calls, through [`Downloader`](super::download::Downloader), and
//! the S3 sink).
//!
//! Each hop keeps its built-in roots (Mozilla's, compiled in, for Zoom; the
//! system's store for S3, as the AWS SDK reads it) and adds the CA bundle of
//! `transfer.extra_ca_file` when one is configured: a private CA in front of
//! an S3-compatible store, a TLS-inspecting proxy's CA, or a test CA.
//! Verification is never turned off, and there is no setting that could.
//!
//! The bundle is read and checked whole when the daemon starts, so a bad
//! file stops start-up with an error naming its path rather than failing
//! every transfer later (or panicking inside the SDK, which trusts its PEM
//! input blindly).

use std::fmt;
use std::path::{Path, PathBuf};

use aws_sdk_s3::config::SharedHttpClient;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::tls::crypto_provider;

/// The crypto provider of the AWS SDK's client, as the SDK names it: the
/// same as [`crypto_provider`]'s.
fn smithy_crypto_mode() -> CryptoMode {
    CryptoMode::AwsLc
}

/// Why an extra CA bundle cannot be used. Each message names the file.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a PEM certificate bundle: {detail}")]
    NotPem { path: String, detail: String },
    #[error("{path} holds no PEM certificate (no -----BEGIN CERTIFICATE----- block)")]
    Empty { path: String },
    #[error("{path}: certificate {number} cannot be a trust anchor: {detail}")]
    Unusable {
        path: String,
        number: usize,
        detail: String,
    },
    #[error("TLS client configuration: {0}")]
    Client(String),
}

/// The trust of both hops: the built-in roots and the extra CAs, if any.
#[derive(Clone, Default)]
pub struct ClientTrust {
    /// Where the extra CAs came from, for Debug output.
    source: Option<PathBuf>,
    extra_roots: Vec<CertificateDer<'static>>,
    /// The bundle as read, already checked: what the AWS SDK is given.
    extra_pem: Vec<u8>,
}

impl fmt::Debug for ClientTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTrust")
            .field("extra_ca_file", &self.source)
            .field("extra_roots", &self.extra_roots.len())
            .finish()
    }
}

impl ClientTrust {
    /// The built-in roots alone.
    pub fn builtin() -> ClientTrust {
        ClientTrust::default()
    }

    /// The built-in roots, plus the CAs in `extra_ca_file` when given.
    pub fn load(extra_ca_file: Option<&Path>) -> Result<ClientTrust, TrustError> {
        let Some(path) = extra_ca_file else {
            return Ok(ClientTrust::builtin());
        };
        let pem = std::fs::read(path).map_err(|source| TrustError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut trust = ClientTrust::from_pem(&path.display().to_string(), &pem)?;
        trust.source = Some(path.to_path_buf());
        Ok(trust)
    }

    /// The built-in roots plus every certificate of the PEM bundle `pem`
    /// (`name` says where it came from, in errors). Every certificate must
    /// be usable as a trust anchor; other PEM blocks (a key) are ignored.
    pub fn from_pem(name: &str, pem: &[u8]) -> Result<ClientTrust, TrustError> {
        let extra_roots = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TrustError::NotPem {
                path: name.to_string(),
                detail: e.to_string(),
            })?;
        if extra_roots.is_empty() {
            return Err(TrustError::Empty {
                path: name.to_string(),
            });
        }
        let mut roots = RootCertStore::empty();
        for (index, certificate) in extra_roots.iter().enumerate() {
            roots
                .add(certificate.clone())
                .map_err(|e| TrustError::Unusable {
                    path: name.to_string(),
                    number: index + 1,
                    detail: e.to_string(),
                })?;
        }
        Ok(ClientTrust {
            source: None,
            extra_roots,
            extra_pem: pem.to_vec(),
        })
    }

    /// How many CAs the extra bundle added.
    pub fn extra_roots(&self) -> usize {
        self.extra_roots.len()
    }

    /// The rustls client configuration of the Zoom hop: Mozilla's roots and
    /// the extra CAs, TLS 1.2 and 1.3, no ALPN (the connector sets it).
    pub fn zoom_client_config(&self) -> Result<rustls::ClientConfig, TrustError> {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        for certificate in &self.extra_roots {
            roots
                .add(certificate.clone())
                .map_err(|e| TrustError::Client(e.to_string()))?;
        }
        Ok(
            rustls::ClientConfig::builder_with_provider(crypto_provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| TrustError::Client(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    /// The AWS SDK's HTTP client for the S3 hop: the system's roots and the
    /// extra CAs, on Ferry's crypto provider.
    pub fn s3_http_client(&self) -> Result<SharedHttpClient, TrustError> {
        let mut trust_store = TrustStore::default();
        if !self.extra_roots.is_empty() {
            // Parsed by the SDK the same way `from_pem` already did, so its
            // own `expect`s on the PEM cannot fire.
            trust_store = trust_store.with_pem_certificate(self.extra_pem.clone());
        }
        let context = TlsContext::builder()
            .with_trust_store(trust_store)
            .build()
            .map_err(|e| TrustError::Client(e.to_string()))?;
        // The smithy connector sets TCP_NODELAY on every socket it opens
        // (`enable_tcp_nodelay` defaults to true), so small control requests
        // (CreateMultipartUpload, CompleteMultipartUpload) never wait on a
        // delayed ACK.
        Ok(aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(smithy_crypto_mode()))
            .tls_context(context)
            .build_https())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use proptest::prelude::*;

    use super::*;

    /// A self-signed CA certificate made once per test run.
    fn ca_pem() -> &'static str {
        static PEM: OnceLock<String> = OnceLock::new();
        PEM.get_or_init(|| {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params.self_signed(&key).unwrap().pem()
        })
    }

    #[test]
    fn no_file_means_the_built_in_roots_alone() {
        let trust = ClientTrust::load(None).unwrap();
        assert_eq!(trust.extra_roots(), 0);
        let config = trust.zoom_client_config().unwrap();
        assert!(config.alpn_protocols.is_empty());
        trust.s3_http_client().unwrap();
    }

    #[test]
    fn a_bundle_adds_each_of_its_certificates() {
        let bundle = format!("{}\n{}", ca_pem(), ca_pem());
        let trust = ClientTrust::from_pem("bundle.pem", bundle.as_bytes()).unwrap();
        assert_eq!(trust.extra_roots(), 2);
        trust.zoom_client_config().unwrap();
        trust.s3_http_client().unwrap();
    }

    #[test]
    fn a_missing_file_is_named_in_the_error() {
        let error = ClientTrust::load(Some(Path::new("/nonexistent/ferry-ca.pem"))).unwrap_err();
        let text = error.to_string();
        assert!(
            text.starts_with("cannot read /nonexistent/ferry-ca.pem: "),
            "{text}"
        );
    }

    #[test]
    fn files_without_a_usable_certificate_are_refused_by_name() {
        let cases: [(&str, &[u8], &str); 4] = [
            ("empty.pem", b"", "holds no PEM certificate"),
            (
                "key.pem",
                b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                "holds no PEM certificate",
            ),
            (
                "cut.pem",
                b"-----BEGIN CERTIFICATE-----\nMIIB",
                "is not a PEM certificate bundle",
            ),
            (
                "garbage.pem",
                b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "certificate 1 cannot be a trust anchor",
            ),
        ];
        for (name, pem, expected) in cases {
            let error = ClientTrust::from_pem(name, pem).unwrap_err().to_string();
            assert!(error.starts_with(name), "{name}: {error}");
            assert!(error.contains(expected), "{name}: {error}");
        }
    }

    #[test]
    fn debug_names_the_file_and_the_count_not_the_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, ca_pem()).unwrap();
        let trust = ClientTrust::load(Some(&path)).unwrap();
        let printed = format!("{trust:?}");
        assert!(printed.contains("ca.pem"), "{printed}");
        assert!(printed.contains("extra_roots: 1"), "{printed}");
        assert!(!printed.contains("BEGIN"), "{printed}");
    }

    proptest! {
        /// Whatever a file holds, reading it ends in trust or an error
        /// naming it, never a panic; a whole certificate after some text
        /// (RFC 7468 allows explanatory text) is trusted.
        #[test]
        fn any_bytes_give_trust_or_a_named_error(
            prefix in "[a-zA-Z0-9 \n]{0,64}",
            noise in proptest::collection::vec(any::<u8>(), 0..64),
            cut in 0usize..700,
            whole in any::<bool>(),
        ) {
            let ca = ca_pem().as_bytes();
            let mut pem = prefix.into_bytes();
            if whole {
                pem.push(b'\n');
                pem.extend_from_slice(ca);
            } else {
                pem.extend_from_slice(&noise);
                pem.extend_from_slice(&ca[..cut.min(ca.len())]);
            }
            match ClientTrust::from_pem("fuzzed.pem", &pem) {
                Ok(trust) => {
                    prop_assert!(trust.extra_roots() >= 1);
                    prop_assert!(trust.zoom_client_config().is_ok());
                    prop_assert!(trust.s3_http_client().is_ok());
                }
                Err(error) => {
                    prop_assert!(!whole, "a whole certificate was refused: {error}");
                    prop_assert!(error.to_string().starts_with("fuzzed.pem"));
                }
            }
        }
    }
}
