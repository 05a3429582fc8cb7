//! Ferry's control plane: the `ferry.v1` API types, the domain model, the
//! store, and the gRPC services with their authentication. The daemon
//! assembles these into a server; the data plane (webhook intake, transfer
//! engine) writes through the same store.

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
