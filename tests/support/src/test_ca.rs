//! A certificate authority made at run time, for tests and benches that
//! reach the simulator and the S3 stand-ins over HTTPS: a self-signed CA and
//! one server certificate it signed for `localhost` and `127.0.0.1` (the
//! names every loopback stand-in is reached by). Clients are given the CA
//! as a PEM file, exactly as an operator gives Ferry a private CA
//! (`transfer.extra_ca_file`); nothing ever turns verification off.
//!
//! The keys live only in memory (and in the PEM files a test writes into
//! its own temporary folder); they are worth nothing outside one run.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use ferry_zoomsim::tls::ServerTls;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The names the server certificate is valid for.
pub const SERVER_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// Which application protocols a TLS server offers (ALPN).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alpn {
    /// HTTP/1.1 only, as S3 speaks.
    Http1,
    /// HTTP/2 first, then HTTP/1.1, as a CDN offers.
    Http2AndHttp1,
}

pub struct TestCa {
    ca_pem: String,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: Vec<u8>,
}

impl TestCa {
    /// A fresh CA named `common_name` and a server certificate it signed.
    pub fn generate(common_name: &str) -> anyhow::Result<TestCa> {
        let ca_key = KeyPair::generate().context("CA key")?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).context("CA params")?;
        ca_params.distinguished_name = DistinguishedName::new();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).context("CA certificate")?;
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().context("server key")?;
        let mut server_params = CertificateParams::new(SERVER_NAMES.map(String::from).to_vec())
            .context("server params")?;
        server_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let server_cert = server_params
            .signed_by(&server_key, &issuer)
            .context("server certificate")?;
        Ok(TestCa {
            ca_pem: ca_cert.pem(),
            server_chain: vec![server_cert.der().clone(), ca_cert.der().clone()],
            server_key: server_key.serialize_der(),
        })
    }

    /// The CA certificate, PEM-encoded: what a client is told to trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Writes the CA certificate to `dir/ferry-test-ca.pem`; returns its path.
    pub fn write_ca_file(&self, dir: &Path) -> std::io::Result<PathBuf> {
        let path = dir.join("ferry-test-ca.pem");
        std::fs::write(&path, &self.ca_pem)?;
        Ok(path)
    }

    /// A server's TLS side presenting the server certificate (and the CA
    /// behind it), offering `alpn`.
    pub fn server_tls(&self, alpn: Alpn) -> anyhow::Result<ServerTls> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key.clone()));
        let provider = ferry_daemon::tls::crypto_provider();
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(self.server_chain.clone(), key)
            .context("the test server certificate")?;
        config.alpn_protocols = match alpn {
            Alpn::Http1 => vec![b"http/1.1".to_vec()],
            Alpn::Http2AndHttp1 => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        };
        Ok(ServerTls::new(Arc::new(config)))
    }
}
