//! Test support shared by the end-to-end tests, the demo and the benchmarks:
//! starting a real daemon on loopback (in-process or as a process), talking
//! to it with the generated gRPC clients, and the Zoom simulator.

pub mod daemon;
pub mod zoomsim;
