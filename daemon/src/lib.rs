//! The `ferry` binary's library: configuration, the running daemon, its HTTP
//! listener, and the admin client. `main.rs` only parses flags and maps
//! errors to exit codes.

pub mod app;
pub mod cli;
pub mod config;
pub mod demo;
pub mod http;
pub mod intake;
pub mod metrics;
pub mod telemetry;
pub mod tls;
pub mod transfer;
