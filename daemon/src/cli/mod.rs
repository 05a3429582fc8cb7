//! The command line: `ferry serve`, `ferry demo`, and the admin client
//! commands that call a running daemon's gRPC API (`commands/`, one file per
//! resource, mirroring `ferry_control::service`). Owns flags, output and
//! exit codes; never decides what the daemon decides.

pub mod client;
pub(crate) mod commands;
pub(crate) mod output;
pub(crate) mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;

#[derive(Parser, Debug)]
#[command(
    name = "ferry",
    version,
    about = "Copies Zoom cloud recordings into an institution's video library"
)]
pub struct Cli {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// How the admin client reaches the daemon.
#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    /// The daemon's gRPC address.
    #[arg(
        long,
        global = true,
        env = "FERRY_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    pub server: String,
    /// Operator token or institution admin key.
    #[arg(long, global = true, env = "FERRY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM CA certificate to trust for an https:// server.
    #[arg(long, global = true, env = "FERRY_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// The institution to act on (the operator must give it; an admin key
    /// defaults to its own).
    #[arg(long, global = true, env = "FERRY_INSTITUTION", default_value = "")]
    pub institution: String,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon.
    Serve {
        /// TOML configuration file (every key can also come from FERRY_* variables).
        #[arg(long, env = "FERRY_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Run Ferry end to end on the embedded defaults against a local Zoom
    /// simulator, one recording per rule; exits 0 only if every outcome is
    /// the expected one.
    Demo {
        /// Where the demo keeps its data (cleared first, if a demo made it).
        #[arg(long, default_value = "./ferry-demo")]
        data_dir: PathBuf,
        /// Leave the daemon up afterwards, to explore with the CLI, grpcurl
        /// and /metrics, until Ctrl-C.
        #[arg(long)]
        keep_running: bool,
        /// Run N replicas on one PostgreSQL database instead (a throwaway
        /// cluster the demo starts; needs PostgreSQL's initdb and pg_ctl),
        /// and show which replica moved each recording.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
        replicas: u16,
    },
    /// Institutions (create: operator only).
    #[command(subcommand)]
    Institutions(commands::InstitutionsCommand),
    /// Institution admin API keys (create and revoke: operator only).
    #[command(subcommand)]
    Keys(commands::KeysCommand),
    /// Zoom configurations and their tokens.
    #[command(subcommand)]
    Configurations(commands::ConfigurationsCommand),
    /// Zoom accounts bound to the institution.
    #[command(subcommand)]
    Accounts(commands::AccountsCommand),
    /// The user directory.
    #[command(subcommand)]
    Users(commands::UsersCommand),
    /// Ingest jobs.
    #[command(subcommand)]
    Jobs(commands::JobsCommand),
    /// The media library.
    #[command(subcommand)]
    Media(commands::MediaCommand),
    /// Course sections and the rules that share meetings with them.
    #[command(subcommand)]
    Sections(commands::SectionsCommand),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Serve { .. }) {
        // Before the runtime starts its threads (see `malloc`).
        crate::malloc::limit_arenas();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve { config } => serve(config).await,
            Command::Demo {
                data_dir,
                keep_running,
                replicas,
            } => crate::demo::run(&data_dir, keep_running, usize::from(replicas)).await,
            command => commands::run(command, cli.client).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, gRPC statuses as `CODE: message`.
fn one_line(error: &anyhow::Error) -> String {
    if let Some(status) = error.downcast_ref::<tonic::Status>() {
        return format!("{:?}: {}", status.code(), status.message());
    }
    format!("{error:#}")
}

async fn serve(config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let config = Config::load(config_path.as_deref(), std::env::vars())?;
    crate::telemetry::init(&config.log, config.log_format.as_str());
    let app = crate::app::start(config).await?;
    if let Some(token) = &app.generated_operator_token {
        // Printed, never logged: this is the only time it exists in clear.
        println!("Generated the operator token. It is shown only once; keep it safe:");
        println!("{}", token.expose());
    }
    println!(
        "ferry serving gRPC on {}://{} and HTTP on {}",
        if app.grpc_tls { "https" } else { "http" },
        app.grpc_addr,
        app.http_addr
    );
    let shutdown = app.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        shutdown.cancel();
    });
    let grace = std::time::Duration::from_secs(30);
    let token = app.shutdown_token();
    let wait = app.wait();
    tokio::pin!(wait);
    tokio::select! {
        () = &mut wait => Ok(()),
        () = async { token.cancelled().await; tokio::time::sleep(grace).await } => {
            anyhow::bail!("shutdown took longer than {}s; exiting anyway", grace.as_secs())
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
