//! TLS for both listeners, with rustls, and the crypto provider every TLS
//! connection of Ferry runs on, in (the listeners) and out (both hops of a
//! transfer, `transfer::trust`).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The rustls crypto provider of every TLS connection, named as the
/// transfer bench's AES-GCM table names it (it measures both candidates,
/// ring and aws-lc-rs, on the machine it runs on; aws-lc-rs sealed and
/// opened AES-GCM about 1.45 x as fast as ring there).
pub const PROVIDER_NAME: &str = "aws-lc-rs";

pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Reads a PEM certificate chain and private key into a rustls server config
/// that speaks HTTP/2 and HTTP/1.1 (ALPN).
pub fn server_config(
    cert_path: &Path,
    key_path: &Path,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let certs = CertificateDer::pem_file_iter(cert_path)
        .with_context(|| format!("cannot read TLS certificate {}", cert_path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("TLS certificate {} is not valid PEM", cert_path.display()))?;
    if certs.is_empty() {
        anyhow::bail!(
            "TLS certificate {} holds no certificate",
            cert_path.display()
        );
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .with_context(|| format!("cannot read a PEM private key from {}", key_path.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("TLS certificate and key do not match or are unsupported")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
