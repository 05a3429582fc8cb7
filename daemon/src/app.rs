//! The running daemon: `Config` → `start()` → `RunningApp` → `shutdown()`.
//! Start-up opens and migrates the store, settles the operator token and the
//! encryption key, binds both listeners and serves until shut down.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use ferry_control::secrets::{OPERATOR_TOKEN_PREFIX, Secret, SecretBox, TokenHash, generate_token};
use ferry_control::service::{Authenticator, ControlContext, ControlServices, SERVICE_NAMES};
use ferry_control::store::{SqliteConfig, SqliteStore, Store};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;

/// A started daemon. Dropping it does not stop it; call `shutdown`.
pub struct RunningApp {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// The admin listener serving `/metrics`, when configured.
    pub metrics_addr: Option<SocketAddr>,
    pub store: Arc<dyn Store>,
    /// Set when this start generated the operator token: the one chance to
    /// show it.
    pub generated_operator_token: Option<Secret>,
    pub grpc_tls: bool,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl RunningApp {
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops accepting, lets in-flight requests finish, and waits.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Waits until something else cancels the shutdown token.
    pub async fn wait(self) {
        self.shutdown.cancelled().await;
        self.shutdown().await;
    }
}

pub async fn start(config: Config) -> anyhow::Result<RunningApp> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
    let mut sqlite = SqliteConfig::new(config.sqlite_path());
    sqlite.max_batch = config.store.max_batch;
    let store: Arc<dyn Store> = Arc::new(
        tokio::task::spawn_blocking(move || SqliteStore::open(&sqlite))
            .await
            .context("store open task")?
            .context("cannot open the store")?,
    );
    let secret_box = load_secret_box(&config)?;
    let (operator_hash, generated_operator_token) =
        settle_operator_token(&config, store.as_ref()).await?;

    for (name, listener) in [("grpc", &config.grpc), ("http", &config.http)] {
        if listener.insecure && !listener.tls_enabled() {
            tracing::warn!(listener = name, addr = %listener.addr,
                "serving plain TCP because {name}.insecure = true; credentials cross the network in clear text");
        }
    }
    let grpc_listener = TcpListener::bind(config.grpc.addr)
        .await
        .with_context(|| format!("cannot bind grpc.addr {}", config.grpc.addr))?;
    let http_listener = TcpListener::bind(config.http.addr)
        .await
        .with_context(|| format!("cannot bind http.addr {}", config.http.addr))?;
    let metrics_listener = match config.metrics.addr {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot bind metrics.addr {addr}"))?,
        ),
        None => None,
    };
    let grpc_addr = grpc_listener.local_addr()?;
    let http_addr = http_listener.local_addr()?;

    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let context = ControlContext {
        store: store.clone(),
        auth: Authenticator::new(store.clone(), operator_hash),
        secret_box: secret_box.clone(),
        max_sync_records: config.directory.max_sync_records,
        shutdown: shutdown.clone(),
        caps: config.caps(),
    };
    let grpc = grpc_server(&config, context, grpc_listener, shutdown.clone())?;
    tasks.spawn(async move {
        if let Err(e) = grpc.await {
            tracing::error!(error = %e, "grpc server stopped");
        }
    });
    if config.transfer.enabled {
        start_transfers(
            &config,
            store.clone(),
            secret_box.clone(),
            shutdown.clone(),
            tasks.clone(),
        )?;
    }
    let http_tls = match (&config.http.tls_cert, &config.http.tls_key) {
        (Some(cert), Some(key)) => Some(crate::tls::server_config(cert, key)?),
        _ => None,
    };
    let verifier = match &config.zoom.webhook_secret {
        Some(secret) => Some(crate::intake::WebhookVerifier::new(
            secret.clone(),
            config.zoom.webhook_secret_previous.clone(),
            std::time::Duration::from_secs(config.zoom.timestamp_tolerance_secs),
        )),
        None => {
            tracing::warn!("zoom.webhook_secret is not set: webhooks are answered 503 until it is");
            None
        }
    };
    let read_timeout = std::time::Duration::from_secs(config.http.read_timeout_secs);
    let metrics = crate::http::MetricsRoute {
        handle: crate::metrics::install(),
        store: store.clone(),
    };
    let routes = Arc::new(crate::http::Routes {
        intake: Some(Arc::new(crate::intake::Intake::new(
            store.clone(),
            secret_box,
            crate::intake::IntakeConfig {
                verifier,
                max_body_bytes: config.http.max_body_bytes,
                read_timeout,
                caps: config.caps(),
            },
        ))),
        metrics: metrics_listener.is_none().then(|| metrics.clone()),
        read_timeout,
    });
    tasks.spawn(crate::http::serve(
        http_listener,
        http_tls,
        routes,
        shutdown.clone(),
        tasks.clone(),
    ));
    let metrics_addr = match metrics_listener {
        Some(listener) => {
            let addr = listener.local_addr()?;
            let routes = Arc::new(crate::http::Routes {
                intake: None,
                metrics: Some(metrics),
                read_timeout,
            });
            tasks.spawn(crate::http::serve(
                listener,
                None,
                routes,
                shutdown.clone(),
                tasks.clone(),
            ));
            Some(addr)
        }
        None => None,
    };
    tracing::info!(%grpc_addr, %http_addr, metrics_addr = ?metrics_addr, data_dir = %config.data_dir.display(),
        "ferry is serving");
    Ok(RunningApp {
        grpc_addr,
        http_addr,
        metrics_addr,
        store,
        generated_operator_token,
        grpc_tls: config.grpc.tls_enabled(),
        shutdown,
        tasks,
    })
}

fn grpc_server(
    config: &Config,
    context: ControlContext,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<impl std::future::Future<Output = Result<(), tonic::transport::Error>> + use<>>
{
    let services = ControlServices::new(context);
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(ferry_control::api::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("grpc reflection service")?;
    let mut builder = tonic::transport::Server::builder();
    if let (Some(cert), Some(key)) = (&config.grpc.tls_cert, &config.grpc.tls_key) {
        let identity = tonic::transport::Identity::from_pem(read(cert)?, read(key)?);
        builder = builder
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .context("grpc TLS configuration")?;
    }
    let router = builder
        .add_service(health_service)
        .add_service(reflection)
        .add_service(services.institutions)
        .add_service(services.configurations)
        .add_service(services.accounts)
        .add_service(services.users)
        .add_service(services.jobs)
        .add_service(services.media);
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    Ok(async move {
        for name in SERVICE_NAMES {
            health_reporter
                .set_service_status(name, tonic_health::ServingStatus::Serving)
                .await;
        }
        health_reporter
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
        router
            .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
            .await
    })
}

fn start_transfers(
    config: &Config,
    store: Arc<dyn Store>,
    secret_box: SecretBox,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) -> anyhow::Result<()> {
    use crate::transfer::download::Downloader;
    use crate::transfer::engine::{Connections, TransferEngine, TransferSettings};
    use crate::transfer::zoom_api::ZoomApi;
    use std::time::Duration;
    let transfer = &config.transfer;
    let sink: Arc<dyn crate::transfer::sink::ObjectSink> = match transfer.sink.as_str() {
        "s3" => {
            let settings = crate::transfer::sink::S3Settings {
                endpoint: config.s3.endpoint.clone(),
                region: config.s3.region.clone(),
                bucket: config.s3.bucket.clone(),
                path_style: config.s3.path_style,
                access_key_id: config.s3.access_key_id.clone(),
                secret_access_key: config
                    .s3
                    .secret_access_key
                    .clone()
                    .context("s3.secret_access_key")?,
                session_token: config.s3.session_token.clone(),
                checksums: config.s3.checksums,
            };
            Arc::new(
                crate::transfer::sink::S3Sink::new(settings)
                    .map_err(|e| anyhow::anyhow!("s3 sink: {e}"))?,
            )
        }
        _ => Arc::new(
            crate::transfer::sink::LocalSink::new(config.media_dir()).with_context(|| {
                format!(
                    "cannot create the media folder {}",
                    config.media_dir().display()
                )
            })?,
        ),
    };
    let downloader = Downloader::new(config.download_policy());
    let zoom_api = ZoomApi::new(
        downloader.clone(),
        &config.zoom.oauth_base_url,
        &config.zoom.api_base_url,
    );
    let settings = TransferSettings {
        worker_id: format!(
            "ferry-{}-{}",
            std::process::id(),
            ferry_control::store::new_id("w")
        ),
        max_concurrent: transfer.max_concurrent,
        byte_budget: transfer.byte_budget_bytes,
        part_size: transfer.part_size_bytes,
        parts_in_flight: transfer.parts_in_flight,
        lease: Duration::from_secs(transfer.lease_secs),
        heartbeat: Duration::from_secs(transfer.heartbeat_secs),
        max_attempts: transfer.max_attempts,
        backoff_base: Duration::from_millis(transfer.backoff_base_ms),
        stall_timeout: Duration::from_secs(transfer.stall_timeout_secs),
        download_requests_per_second: transfer.download_requests_per_second,
        bandwidth_bytes_per_second: Some(transfer.bandwidth_bytes_per_second).filter(|b| *b > 0),
        sink_requests_per_second: Some(transfer.sink_requests_per_second).filter(|r| *r > 0),
        key_prefix: transfer.key_prefix.clone(),
        caps: config.caps(),
        poll_interval: Duration::from_secs(2),
    };
    let connections = Connections {
        store,
        secret_box,
        sink,
        downloader,
        zoom_api,
    };
    TransferEngine::start(connections, settings, shutdown, tasks);
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// The configured key, or the one kept in `<data_dir>/encryption.key`
/// (generated with mode 0600 at first start).
fn load_secret_box(config: &Config) -> anyhow::Result<SecretBox> {
    if let Some(key) = &config.encryption_key {
        return SecretBox::from_base64(key.expose())
            .map_err(|e| anyhow::anyhow!("encryption_key: {e}"));
    }
    let path = config.data_dir.join("encryption.key");
    if !path.exists() {
        let key = SecretBox::generate_key_base64();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        file.write_all(key.expose().as_bytes())?;
        file.sync_all()?;
        tracing::info!(path = %path.display(), "generated an encryption key for stored secrets");
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    SecretBox::from_base64(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The configured operator token's hash; else the stored hash; else a newly
/// generated token whose hash is stored and which is returned to be shown once.
async fn settle_operator_token(
    config: &Config,
    store: &dyn Store,
) -> anyhow::Result<(TokenHash, Option<Secret>)> {
    if let Some(token) = &config.operator_token {
        return Ok((TokenHash::of(token.expose()), None));
    }
    if let Some(hash) = store.operator_token_hash().await? {
        return Ok((hash, None));
    }
    let (token, hash) = generate_token(OPERATOR_TOKEN_PREFIX);
    if store.init_operator_token_hash(hash.clone()).await? {
        Ok((hash, Some(token)))
    } else {
        // Another process sharing the database got there first.
        let hash = store
            .operator_token_hash()
            .await?
            .context("operator token hash vanished")?;
        Ok((hash, None))
    }
}
