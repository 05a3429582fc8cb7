//! The transfer core's throughput, without I/O: an in-memory source (the
//! simulator's synthetic MP4, handed out as zero-copy slices) through part
//! assembly with CRC32C and MP4 scanning into a part sink that discards.
//! memcpy of the same bytes is measured in the same run as the reference.
//!
//! Run: `cargo bench -p ferry-benches --bench core`
//! Optional: FERRY_BENCH_GIB (default 4), FERRY_BENCH_CHUNK_KIB (default 64).

use std::time::{Duration, Instant};

use ferry_benches::print_table;
use ferry_daemon::transfer::mp4::Mp4Scanner;
use ferry_daemon::transfer::parts::{DEFAULT_PART_SIZE, PartAssembler};
use ferry_zoomsim::{Mp4Layout, SyntheticMedia};

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn gib_per_second(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / (1u64 << 30) as f64 / elapsed.as_secs_f64()
}

fn main() {
    let gib = env_number("FERRY_BENCH_GIB", 4);
    let chunk = env_number("FERRY_BENCH_CHUNK_KIB", 64) as usize * 1024;
    let size = gib << 30;
    let media = SyntheticMedia::mp4(size, Duration::from_secs(3600), Mp4Layout::MoovAtEnd, 1);
    // The source's chunks are produced before timing: the network hands
    // Ferry buffers, and only what Ferry does with them is measured here.
    let chunks: Vec<bytes::Bytes> = (0..size.div_ceil(chunk as u64))
        .map(|i| media.chunk(i * chunk as u64, chunk))
        .collect();

    let mut best_core = Duration::MAX;
    let mut parts_seen = 0usize;
    for _ in 0..3 {
        let started = Instant::now();
        let mut assembler = PartAssembler::new(DEFAULT_PART_SIZE, 1, 0);
        let mut scanner = Mp4Scanner::new();
        let mut ready = Vec::new();
        parts_seen = 0;
        for chunk in &chunks {
            scanner.feed(chunk);
            assembler.push(chunk.clone(), &mut ready);
            parts_seen += ready.len();
            ready.clear(); // the discarding part sink
        }
        parts_seen += assembler.finish().is_some() as usize;
        assert!(
            scanner.duration().is_some(),
            "the scanner found the duration"
        );
        best_core = best_core.min(started.elapsed());
    }

    // memcpy of the same bytes into one reused 16 MiB buffer.
    let mut target = vec![0u8; DEFAULT_PART_SIZE as usize];
    let mut best_copy = Duration::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let mut at = 0usize;
        for chunk in &chunks {
            if at + chunk.len() > target.len() {
                at = 0;
            }
            target[at..at + chunk.len()].copy_from_slice(chunk);
            at += chunk.len();
        }
        std::hint::black_box(&target);
        best_copy = best_copy.min(started.elapsed());
    }

    let core = gib_per_second(size, best_core);
    let copy = gib_per_second(size, best_copy);
    print_table(
        &format!(
            "core bench: {gib} GiB in {} KiB chunks, 16 MiB parts ({parts_seen} parts), best of 3",
            chunk / 1024
        ),
        &[
            (
                "parts + CRC32C + MP4 scan into a discarding sink".into(),
                format!("{core:.2} GiB/s"),
                ">= 4 GiB/s".into(),
            ),
            (
                "memcpy of the same bytes (reference)".into(),
                format!("{copy:.2} GiB/s"),
                "reference".into(),
            ),
            (
                "core / memcpy".into(),
                format!("{:.2}", core / copy),
                "reference".into(),
            ),
        ],
    );
}
