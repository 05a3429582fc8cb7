//! Ferry's control plane: the `ferry.v1` API types, the domain model, the
//! store, and the gRPC services with their authentication. The daemon
//! assembles these into a server; the data plane (webhook intake, transfer
//! engine) writes through the same store.
//!
//! Two things have exactly one home here, for every caller in both crates:
//! the seed's rules (`rules`: pure functions, each with its message, used by
//! the intake, the install handler, RetryJob and the transfer stream; `ingest`
//! only orders them) and the error classes (`error`: one table from
//! `ErrorClass` to gRPC code and HTTP status, used by the services and the
//! webhook intake alike).

pub mod email;
pub mod error;
pub mod ingest;
pub mod metrics;
pub mod model;
pub mod rules;
pub mod secrets;
pub mod service;
pub mod store;
pub mod zoom;

/// Code generated from `proto/ferry/v1/*.proto`.
#[allow(clippy::all, missing_docs)]
pub mod api {
    tonic::include_proto!("ferry.v1");

    /// The encoded descriptors, served by gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("ferry_v1_descriptor");
}
