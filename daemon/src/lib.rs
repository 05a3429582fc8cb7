//! The `ferry` binary's library: configuration, the running daemon, its HTTP
//! listener and webhook intake, the transfer engine, and the admin client.
//! `main.rs` only parses flags and maps errors to exit codes.
//!
//! `ferry demo` (`demo`) is the one module that plays Zoom, through the
//! `ferry-zoomsim` crate; no other module may use the simulator, and the
//! fixtures the tests share (`ferry-test-support`) are never a dependency
//! of this crate.

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
