//! Build, then spawn: a daemon that cannot be built leaves nothing running.

use crate::config::Config;

fn free_loopback_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn a_build_that_fails_on_tls_leaves_no_listener_serving() {
    let dir = tempfile::tempdir().unwrap();
    let grpc_port = free_loopback_port();
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    config.grpc.addr = format!("127.0.0.1:{grpc_port}").parse().unwrap();
    config.http.addr = "127.0.0.1:0".parse().unwrap();
    config.http.tls_cert = Some(dir.path().join("missing-cert.pem"));
    config.http.tls_key = Some(dir.path().join("missing-key.pem"));
    config.transfer.enabled = false;
    config.validate().unwrap();

    let error = match super::start(config).await {
        Ok(_) => panic!("a daemon without its TLS certificate started"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains("missing-cert.pem"), "{error}");
    // The gRPC listener was bound before the TLS files were read; failing
    // the build dropped it rather than leaving a server behind.
    let connect = tokio::net::TcpStream::connect(("127.0.0.1", grpc_port)).await;
    assert!(connect.is_err(), "the grpc port still accepts connections");
}

#[tokio::test]
async fn a_built_app_serves_once_spawned_and_shutdown_drains_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    config.grpc.addr = "127.0.0.1:0".parse().unwrap();
    config.http.addr = "127.0.0.1:0".parse().unwrap();
    config.transfer.enabled = false;
    let app = super::build(config).await.unwrap();
    let running = app.spawn();
    assert!(running.generated_operator_token.is_some());
    let http_addr = running.http_addr;
    tokio::net::TcpStream::connect(http_addr).await.unwrap();
    running.shutdown().await;
    assert!(tokio::net::TcpStream::connect(http_addr).await.is_err());
}
