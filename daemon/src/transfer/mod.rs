//! The transfer engine: turns every QUEUED job into exactly one verified
//! object and one media record, streaming the Zoom download straight into a
//! chunked multipart upload without staging the file.
//!
//! It must never hold more than `part_size × parts in flight` of one
//! transfer in memory, never copy a downloaded chunk into a new buffer, and
//! never complete an upload before every check has passed.

pub mod cutter;
pub mod download;
pub mod engine;
pub mod mp4;
pub mod parts;
pub mod sink;
pub mod stream;
pub mod zoom_api;
