//! Both listeners serve TLS when a certificate and key are configured.

use std::sync::Arc;

use ferry_control::api;
use ferry_daemon::cli::client::Connection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

#[tokio::test]
async fn grpc_and_http_listeners_serve_tls() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).unwrap();

    let mut config = test_config(&dir.path().join("data"));
    for listener in [&mut config.grpc, &mut config.http] {
        listener.tls_cert = Some(cert_path.clone());
        listener.tls_key = Some(key_path.clone());
    }
    let daemon = TestDaemon::start_with(config).await.unwrap();

    let url = format!("https://localhost:{}", daemon.app.grpc_addr.port());
    let mut operator = Connection {
        server: url.clone(),
        token: Some(OPERATOR_TOKEN.into()),
        ca_cert: Some(cert_path.clone()),
    }
    .connect()
    .await
    .unwrap();
    operator
        .institutions
        .create_institution(api::CreateInstitutionRequest {
            display_name: "Over TLS".into(),
        })
        .await
        .unwrap();
    // Plain HTTP/2 to a TLS listener fails.
    let plain = connect(
        &format!("http://{}", daemon.app.grpc_addr),
        Some(OPERATOR_TOKEN),
    )
    .await;
    if let Ok(mut plain) = plain {
        assert!(
            plain
                .institutions
                .list_institutions(api::ListInstitutionsRequest::default())
                .await
                .is_err()
        );
    }

    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let client_config =
        rustls::ClientConfig::builder_with_provider(ferry_daemon::tls::crypto_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
    let tcp = tokio::net::TcpStream::connect(daemon.app.http_addr)
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    tls.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let _ = daemon.stop().await;
}
