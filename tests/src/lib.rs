//! Test support shared by the end-to-end tests and the benchmarks: starting a
//! real daemon on loopback (in-process or as a process) and talking to it
//! with the generated gRPC clients; moto's S3 server as a child process, and
//! a fault-injecting proxy in front of it.

pub mod daemon;
pub mod moto;
pub mod s3_faults;
