//! The transfer engine: turns every QUEUED job into exactly one verified
//! object and one media record, streaming the Zoom download straight into a
//! chunked multipart upload without staging the file.
//!
//! It must never hold more than `part_size × parts in flight` of one
//! transfer in memory, never copy a downloaded chunk into a new buffer, and
//! never complete an upload before every check has passed.
//!
//! The engine (`engine`) schedules jobs under leases and retries attempts;
//! an attempt (`attempt`) is a chain of stages, each in its own module:
//! `source` (credentials and the download request) → `resume` (the stored
//! upload reconciled with the sink, the MP4 scan restored) → `body` (stall
//! timeout and size cap) → `cutter` (parts and the MP4 scan in step) →
//! `uploader` (parallel part uploads under `budget`) → `finalize` (verify,
//! complete, record). `retry`, `error`, `caps`, `object` and `token` serve
//! them all; `context` is what they share; `trust` is the TLS of both hops'
//! clients. `companion` copies the files that belong with a completed
//! job's video (transcript, captions, chat) through the same stages.

mod attempt;
mod body;
pub mod budget;
mod caps;
pub mod companion;
pub mod context;
pub mod cutter;
pub mod download;
pub mod engine;
pub mod error;
mod finalize;
pub mod mp4;
pub mod object;
pub mod parts;
mod resume;
pub mod retry;
pub mod sink;
mod source;
mod stream;
mod token;
pub mod trust;
mod uploader;
pub mod zoom_api;
