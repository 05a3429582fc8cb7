//! The running daemon, in one lifecycle: `Config` → `build()` → `App` →
//! `spawn()` → `RunningApp` → `shutdown()`.
//!
//! `build` is fallible and does everything that can fail: it opens and
//! migrates the store, settles the operator token and the encryption key,
//! binds every listener, reads the TLS material, and constructs the gRPC
//! server, the HTTP routes, the sink and the transfer engine's connections.
//! It spawns nothing, so a failure leaves nothing running. `spawn` cannot
//! fail: it starts the tasks on one `CancellationToken` and one
//! `TaskTracker`, and `RunningApp::shutdown` is their one drain.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::Context;
use ferry_control::secrets::{OPERATOR_TOKEN_PREFIX, Secret, SecretBox, TokenHash, generate_token};
use ferry_control::service::{Authenticator, ControlContext, ControlServices};
use ferry_control::store::{PostgresStore, SqliteStore, Store};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, SinkKind, StoreBackend};
use crate::http::Routes;
use crate::transfer::engine::{Connections, TransferSettings};
use crate::transfer::trust::ClientTrust;

/// A started daemon. Dropping it does not stop it; call `shutdown`.
pub struct RunningApp {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// The admin listener serving `/metrics`, when configured.
    pub metrics_addr: Option<SocketAddr>,
    /// The admin console's own listener, when configured.
    pub console_addr: Option<SocketAddr>,
    pub store: Arc<dyn Store>,
    /// Set when this start generated the operator token: the one chance to
    /// show it.
    pub generated_operator_token: Option<Secret>,
    pub grpc_tls: bool,
    /// The transfer worker's id, as job attempts name it (`ferry-<pid>-…`);
    /// None when transfers are off.
    pub worker_id: Option<String>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl RunningApp {
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops accepting, lets in-flight requests finish, and waits; then
    /// closes the store unless someone else still holds it (closing the
    /// SQLite store checkpoints and truncates its WAL: file I/O, so it runs
    /// on the blocking pool).
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        let store = self.store;
        if tokio::task::spawn_blocking(move || drop(store))
            .await
            .is_err()
        {
            tracing::error!("closing the store panicked");
        }
    }

    /// Waits until something else cancels the shutdown token.
    pub async fn wait(self) {
        self.shutdown.cancelled().await;
        self.shutdown().await;
    }
}

type GrpcServer = Pin<Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>>;

/// One HTTP listener, bound, with what it serves.
struct HttpListener {
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    routes: Arc<Routes>,
}

/// A daemon built and bound, not yet running. Dropping it closes the
/// listeners and runs nothing.
pub struct App {
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    console_addr: Option<SocketAddr>,
    store: Arc<dyn Store>,
    generated_operator_token: Option<Secret>,
    grpc_tls: bool,
    data_dir: std::path::PathBuf,
    shutdown: CancellationToken,
    grpc: GrpcServer,
    http: HttpListener,
    metrics: Option<HttpListener>,
    console: Option<HttpListener>,
    transfers: Option<(Connections, TransferSettings)>,
    retention: crate::retention::RetentionSettings,
    reconcile: crate::reconcile::ReconcileContext,
    zoom_trash: crate::zoom_trash::ZoomTrashContext,
}

/// Builds and spawns: the daemon on `config`, serving.
pub async fn start(config: Config) -> anyhow::Result<RunningApp> {
    Ok(build(config).await?.spawn())
}

/// Everything that can fail, and nothing that runs.
pub async fn build(config: Config) -> anyhow::Result<App> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
    let store: Arc<dyn Store> = match config.store.backend {
        StoreBackend::Sqlite => {
            let sqlite = config.store.sqlite(&config.data_dir);
            Arc::new(
                tokio::task::spawn_blocking(move || SqliteStore::open(&sqlite))
                    .await
                    .context("store open task")?
                    .context("cannot open the store")?,
            )
        }
        StoreBackend::Postgres => {
            let postgres = config
                .store
                .postgres()
                .context("store.postgres_url: required when store.backend is \"postgres\"")?;
            if config.transfer.sink == SinkKind::Local {
                tracing::warn!(
                    "store.backend is postgres but transfer.sink is local: replicas sharing the database \
                     must share the media folder too, or use the s3 sink"
                );
            }
            Arc::new(
                PostgresStore::open(&postgres)
                    .await
                    .context("cannot open the store")?,
            )
        }
    };
    let secret_box = load_secret_box(&config)?;
    // Read before anything listens, so a bad CA bundle stops start-up.
    let trust = config.transfer.trust()?;
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
    let console_listener = match config.console.addr {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot bind console.addr {addr}"))?,
        ),
        None => None,
    };
    let console_addr = console_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?;
    let grpc_addr = grpc_listener.local_addr()?;
    let http_addr = http_listener.local_addr()?;
    let metrics_addr = metrics_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?;

    let shutdown = CancellationToken::new();
    let context = ControlContext {
        store: store.clone(),
        auth: Authenticator::new(store.clone(), operator_hash),
        secret_box: secret_box.clone(),
        max_sync_records: config.directory.max_sync_records,
        shutdown: shutdown.clone(),
        caps: config.caps(),
    };
    let health = Arc::new(crate::health::Health::default());
    let web_context = context.clone();
    let grpc = grpc_server(
        &config,
        context,
        grpc_listener,
        health.clone(),
        shutdown.clone(),
    )?;
    let marketplace = match config.zoom.marketplace_app() {
        Some(app) => Some(Arc::new(crate::marketplace::Marketplace::new(
            app,
            crate::transfer::download::Downloader::new(config.download_policy(), &trust)?,
            &config.zoom.oauth_base_url,
            &config.zoom.api_base_url,
            store.clone(),
            secret_box.clone(),
        ))),
        None => None,
    };
    // One client of Zoom's API, so that every call of an account shares
    // its rate limit.
    let zoom_api = Arc::new(crate::transfer::zoom_api::ZoomApi::new(
        crate::transfer::download::Downloader::new(config.download_policy(), &trust)?,
        &config.zoom.oauth_base_url,
        &config.zoom.api_base_url,
        config.reconcile.api_requests_per_second,
    ));
    let reconcile = crate::reconcile::ReconcileContext {
        store: store.clone(),
        secret_box: secret_box.clone(),
        api: zoom_api.clone(),
        marketplace: marketplace.clone(),
        caps: config.caps(),
        settings: config.reconcile.settings(),
        replica_id: format!(
            "ferry-{}-{}",
            std::process::id(),
            ferry_control::store::new_id("r")
        ),
    };
    let zoom_trash = crate::zoom_trash::ZoomTrashContext {
        store: store.clone(),
        secret_box: secret_box.clone(),
        api: zoom_api.clone(),
        marketplace: marketplace.clone(),
        settings: config.after_copy.settings(),
        replica_id: reconcile.replica_id.clone(),
    };
    let transfers = if config.transfer.enabled {
        Some(transfer_engine(
            &config,
            &trust,
            store.clone(),
            secret_box.clone(),
            zoom_api,
            marketplace.clone(),
        )?)
    } else {
        None
    };
    let http_tls = match config.http.tls_files() {
        Some((cert, key)) => Some(crate::tls::server_config(cert, key)?),
        None => None,
    };
    let web = Arc::new(crate::web::Web::new(crate::web::WebParts {
        context: web_context,
        marketplace,
        settings: config.console.settings(),
        secure_cookies: http_tls.is_some()
            || config
                .zoom
                .public_url
                .as_deref()
                .is_some_and(|url| url.starts_with("https://")),
        shutdown: shutdown.clone(),
    }));
    let verifier = config.zoom.webhook_verifier();
    if verifier.is_none() {
        tracing::warn!("zoom.webhook_secret is not set: webhooks are answered 503 until it is");
    }
    let read_timeout = config.http.read_timeout();
    let metrics_route = crate::http::MetricsRoute {
        handle: crate::metrics::install(),
        store: store.clone(),
    };
    let http = HttpListener {
        listener: http_listener,
        tls: http_tls,
        routes: Arc::new(Routes {
            intake: Some(Arc::new(crate::intake::Intake::new(
                store.clone(),
                secret_box,
                crate::intake::IntakeConfig {
                    verifier,
                    max_body_bytes: config.http.max_body_bytes,
                    read_timeout,
                    caps: config.caps(),
                    companions: config.companions.settings(),
                },
            ))),
            metrics: metrics_listener.is_none().then(|| metrics_route.clone()),
            web: Some(web.clone()),
            console: console_listener.is_none(),
            health: health.clone(),
            read_timeout,
        }),
    };
    let metrics = metrics_listener.map(|listener| HttpListener {
        listener,
        tls: None,
        routes: Arc::new(Routes {
            intake: None,
            metrics: Some(metrics_route),
            web: None,
            console: false,
            health: health.clone(),
            read_timeout,
        }),
    });
    let console = console_listener.map(|listener| HttpListener {
        listener,
        tls: None,
        routes: Arc::new(Routes {
            intake: None,
            metrics: None,
            web: Some(web),
            console: true,
            health,
            read_timeout,
        }),
    });
    Ok(App {
        grpc_addr,
        http_addr,
        metrics_addr,
        console_addr,
        store,
        generated_operator_token,
        grpc_tls: config.grpc.tls_enabled(),
        data_dir: config.data_dir.clone(),
        shutdown,
        grpc,
        http,
        metrics,
        console,
        transfers,
        retention: config.retention.settings(),
        reconcile,
        zoom_trash,
    })
}

impl App {
    /// Starts every task on one token and one tracker.
    pub fn spawn(self) -> RunningApp {
        let App {
            grpc_addr,
            http_addr,
            metrics_addr,
            console_addr,
            store,
            generated_operator_token,
            grpc_tls,
            data_dir,
            shutdown,
            grpc,
            http,
            metrics,
            console,
            transfers,
            retention,
            reconcile,
            zoom_trash,
        } = self;
        let tasks = TaskTracker::new();
        tasks.spawn(crate::zoom_trash::run(zoom_trash, shutdown.clone()));
        tasks.spawn(crate::reconcile::run_reconciler(
            reconcile.clone(),
            shutdown.clone(),
        ));
        tasks.spawn(crate::reconcile::run_backfills(reconcile, shutdown.clone()));
        let worker_id = transfers
            .as_ref()
            .map(|(_, settings)| settings.worker_id.clone());
        tasks.spawn(crate::retention::run(
            store.clone(),
            retention,
            shutdown.clone(),
        ));
        tasks.spawn(async move {
            if let Err(e) = grpc.await {
                tracing::error!(error = %e, "grpc server stopped");
            }
        });
        if let Some((connections, settings)) = transfers {
            crate::transfer::engine::TransferEngine::start(
                connections,
                settings,
                shutdown.clone(),
                tasks.clone(),
            );
        }
        for listener in std::iter::once(http).chain(metrics).chain(console) {
            tasks.spawn(crate::http::serve(
                listener.listener,
                listener.tls,
                listener.routes,
                shutdown.clone(),
                tasks.clone(),
            ));
        }
        tracing::info!(%grpc_addr, %http_addr, metrics_addr = ?metrics_addr, data_dir = %data_dir.display(),
            "ferry is serving");
        RunningApp {
            grpc_addr,
            http_addr,
            metrics_addr,
            console_addr,
            store,
            generated_operator_token,
            grpc_tls,
            worker_id,
            shutdown,
            tasks,
        }
    }
}

/// The gRPC server, ready to be awaited: every service, health and
/// reflection, TLS when configured.
fn grpc_server(
    config: &Config,
    context: ControlContext,
    listener: TcpListener,
    health: Arc<crate::health::Health>,
    shutdown: CancellationToken,
) -> anyhow::Result<GrpcServer> {
    let store = context.store.clone();
    let services = ControlServices::new(context);
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    // Reflection in both versions: grpcurl and current tools speak `v1`,
    // older ones (and some IDE plugins) only `v1alpha`.
    let reflection_builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(ferry_control::api::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection = reflection_builder()
        .build_v1()
        .context("grpc reflection service")?;
    let reflection_v1alpha = reflection_builder()
        .build_v1alpha()
        .context("grpc reflection service (v1alpha)")?;
    let mut builder = tonic::transport::Server::builder();
    if let Some((cert, key)) = config.grpc.tls_files() {
        let identity = tonic::transport::Identity::from_pem(read(cert)?, read(key)?);
        builder = builder
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .context("grpc TLS configuration")?;
    }
    let router = builder
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(services.institutions)
        .add_service(services.configurations)
        .add_service(services.accounts)
        .add_service(services.users)
        .add_service(services.jobs)
        .add_service(services.media)
        .add_service(services.sections);
    // Accepted sockets get TCP_NODELAY here: tonic's `Server::tcp_nodelay`
    // applies only to listeners it binds itself, and without it a response
    // whose last small write waits on the client's delayed ACK stalls ~40 ms.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    Ok(Box::pin(async move {
        crate::health::report(&health_reporter, tonic_health::ServingStatus::Serving).await;
        // Ends with the server, on the same shutdown.
        tokio::spawn(crate::health::watch(
            store,
            health,
            health_reporter,
            shutdown.clone(),
        ));
        router
            .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
            .await
    }))
}

/// The transfer engine's connections (its sink included) and settings.
fn transfer_engine(
    config: &Config,
    trust: &ClientTrust,
    store: Arc<dyn Store>,
    secret_box: SecretBox,
    zoom_api: Arc<crate::transfer::zoom_api::ZoomApi>,
    marketplace: Option<Arc<crate::marketplace::Marketplace>>,
) -> anyhow::Result<(Connections, TransferSettings)> {
    use crate::transfer::download::Downloader;
    use crate::transfer::sink::{LocalSink, ObjectSink, S3Sink};
    let sink: Arc<dyn ObjectSink> = match config.transfer.sink {
        SinkKind::S3 => Arc::new(
            S3Sink::new(config.s3.settings(trust.clone())?)
                .map_err(|e| anyhow::anyhow!("s3 sink: {e}"))?,
        ),
        SinkKind::Local => Arc::new(LocalSink::new(config.media_dir()).with_context(|| {
            format!(
                "cannot create the media folder {}",
                config.media_dir().display()
            )
        })?),
    };
    let downloader = Downloader::new(config.download_policy(), trust)?;
    let worker_id = format!(
        "ferry-{}-{}",
        std::process::id(),
        ferry_control::store::new_id("w")
    );
    let connections = Connections {
        store,
        secret_box,
        sink,
        downloader,
        zoom_api,
        marketplace,
    };
    Ok((
        connections,
        config
            .transfer
            .settings(worker_id, config.caps(), config.companions.settings()),
    ))
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

#[cfg(test)]
mod tests;
