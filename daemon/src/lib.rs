//! The `ferry` binary's library. One lifecycle: `config` (defaults, file,
//! `FERRY_*` variables derived from the types, validation) → `app::build`
//! (everything fallible: store, keys, listeners, TLS, gRPC server, sink,
//! engine; nothing spawned) → `App::spawn` (infallible) → `RunningApp` →
//! `shutdown` (one drain). The data plane is `intake` (webhooks) and
//! `transfer` (the copy engine), with `zoom_trash` (the after-copy move
//! to Zoom's trash); `http` and `tls` serve them; `cli` is the
//! admin client, one file per resource; `demo` plays Zoom through the
//! `ferry-zoomsim` crate (no other module may use the simulator, and the
//! tests' shared fixtures, `ferry-test-support`, are never a dependency of
//! this crate). Rules and error classes are not here:
//! they live once, in `ferry_control::rules` and `ferry_control::error`.
//! `main.rs` only hands over to `cli::main`, which parses flags and maps
//! errors to exit codes; `malloc` holds the crate's only `unsafe` (one
//! `mallopt` call, before the runtime starts).

pub mod app;
pub mod cli;
pub mod config;
pub mod demo;
pub mod health;
pub mod http;
pub mod intake;
pub mod malloc;
pub mod marketplace;
pub mod metrics;
pub mod reconcile;
pub mod retention;
pub mod telemetry;
pub mod tls;
pub mod transfer;
pub mod web;
pub mod zoom_trash;
