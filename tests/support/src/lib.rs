//! `ferry-test-support`: the fixtures Ferry's end-to-end tests and benches
//! share, written once. A real daemon on loopback, in this process or as a
//! child process (`daemon`); the control-plane calls that set it up
//! (`control_plane`) and the scene most tests play on (`scene`); and the
//! three S3 stand-ins, each for its own job: a strict s3s-fs server for the
//! sink's behaviour (`strict_s3`), moto behind a fault-injecting proxy for
//! the engine's retries (`moto`, `s3_faults`), and a discarding endpoint for
//! the benches' throughput (`discard_s3`); and the store the benches' daemons
//! run on, one or several replicas sharing PostgreSQL (`replicas`); and a
//! CA made at run time for the stand-ins that speak HTTPS (`test_ca`).
//!
//! Everything here listens on 127.0.0.1 only and uses well-known test
//! credentials; none of it may ever be a dependency of the daemon itself.
//! (The demo, which is part of the `ferry` binary, uses only the simulator,
//! `ferry-zoomsim`.)

pub mod control_plane;
pub mod daemon;
pub mod discard_s3;
pub mod moto;
pub mod replicas;
pub mod s3_faults;
pub mod scene;
pub mod strict_s3;
pub mod test_ca;
pub mod web;

/// Sizes in bytes, as the simulator counts them.
pub use ferry_zoomsim::{GIB, MIB};
