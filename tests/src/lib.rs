//! Test support shared by the end-to-end tests, the demo and the benchmarks:
//! starting a real daemon on loopback (in-process or as a process) and
//! talking to it with the generated gRPC clients.

pub mod daemon;
