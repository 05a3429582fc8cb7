//! End-to-end tests (`ferry-tests`): the real daemon on 127.0.0.1, driven
//! over TCP with the generated gRPC clients and the Zoom simulator
//! (`ferry-zoomsim`), and the `ferry` binary for process-level tests. One
//! test binary with modules keeps link time down. The fixtures live in
//! `ferry-test-support`; this crate holds only tests and the assertions they
//! share (`support`).

mod after_copy;
mod browser;
mod cli;
mod companions;
mod control_plane;
mod demo;
mod directory;
mod durability;
mod history;
mod intake;
mod jobs_media;
mod latency;
mod metrics;
mod opt_out;
mod postgres;
mod reconcile;
mod reconcile_backfill;
mod replicas;
mod replicas_pg;
mod resume_scan;
mod s3;
mod s3_engine;
mod sections;
mod support;
mod tls;
mod transfer;
mod transfer_limits;
mod transfer_tls;
mod web_console;
mod web_install;
