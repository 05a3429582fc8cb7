//! Cuts the download into parts and feeds the MP4 scanner in step, so that
//! every part leaves carrying the scanner's state at its last byte.
//!
//! This is what lets a transfer that broke after part N scan on from exactly
//! where it stood at the end of part N, without downloading a byte twice:
//! the state stored with a part always describes the scan of every byte
//! from 0 to the part's end, whatever arrived in which chunk. It must never
//! copy chunk bytes (a chunk that straddles a part boundary is split with
//! `Bytes::split_to`, a refcount) and never let the scanner run ahead of or
//! behind the parts.

use bytes::Bytes;

use super::mp4::Mp4Scanner;
use super::parts::{Part, PartAssembler};

/// A finished part and the scanner's state after its last byte.
#[derive(Debug)]
pub struct CutPart {
    pub part: Part,
    pub scan_state: Vec<u8>,
}

/// The part assembler and the MP4 scanner, fed the same bytes in the same order.
#[derive(Debug)]
pub struct PartCutter {
    assembler: PartAssembler,
    scanner: Mp4Scanner,
    /// Reused between pushes; a chunk ends at most one part per split.
    finished: Vec<Part>,
}

impl PartCutter {
    /// Resumes after `start_offset` bytes already in parts numbered below
    /// `first_part_number`, with the scanner as it stood after them.
    ///
    /// # Panics
    /// If the scanner has not seen exactly `start_offset` bytes, or
    /// `part_size` is 0: the caller checks both before streaming.
    pub fn new(
        part_size: u64,
        first_part_number: u32,
        start_offset: u64,
        scanner: Mp4Scanner,
    ) -> Self {
        assert_eq!(
            scanner.bytes_seen(),
            start_offset,
            "the scan resumes where the parts end"
        );
        PartCutter {
            assembler: PartAssembler::new(part_size, first_part_number, start_offset),
            scanner,
            finished: Vec::with_capacity(1),
        }
    }

    /// Takes the next chunk; parts it completes are appended to `out`.
    pub fn push(&mut self, mut chunk: Bytes, out: &mut Vec<CutPart>) {
        while !chunk.is_empty() {
            let room = self.assembler.room();
            let piece = if chunk.len() as u64 > room {
                // `room < chunk.len()`, so it fits in a usize.
                chunk.split_to(room as usize)
            } else {
                std::mem::take(&mut chunk)
            };
            self.scanner.feed(&piece);
            self.assembler.push(piece, &mut self.finished);
            // The piece ends at or before the boundary: at most one part.
            if let Some(part) = self.finished.pop() {
                out.push(CutPart {
                    part,
                    scan_state: self.scanner.snapshot(),
                });
            }
        }
    }

    pub fn scanner(&self) -> &Mp4Scanner {
        &self.scanner
    }

    /// Bytes received so far, those of earlier attempts included.
    pub fn offset(&self) -> u64 {
        self.assembler.offset()
    }

    /// Bytes held in the part being assembled.
    pub fn pending_len(&self) -> u64 {
        self.assembler.pending_len()
    }

    /// The last, possibly short, part (if any bytes are pending) and the
    /// scanner that saw the whole stream.
    pub fn finish(self) -> (Option<CutPart>, Mp4Scanner) {
        let scanner = self.scanner;
        let last = self.assembler.finish().map(|part| CutPart {
            part,
            scan_state: scanner.snapshot(),
        });
        (last, scanner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Some bytes shaped like an MP4 (ftyp, then mdat) so the scanner walks them.
    fn file(len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len.max(32));
        out.extend_from_slice(&16u32.to_be_bytes());
        out.extend_from_slice(b"ftypisom\0\0\x02\0");
        out.extend_from_slice(&((len.max(32) - 16) as u32).to_be_bytes());
        out.extend_from_slice(b"mdat");
        out.extend((out.len()..len.max(32)).map(|i| (i * 31 % 251) as u8));
        out
    }

    proptest! {
        /// Whatever the chunking, each part's stored state is the state of a
        /// scanner fed exactly bytes 0..part end, and the bytes are the file's.
        #[test]
        fn every_part_carries_the_scan_of_exactly_its_prefix(
            len in 32usize..20_000,
            part_size in 1u64..3000,
            chunk_lens in prop::collection::vec(1usize..5000, 1..40),
        ) {
            let bytes = file(len);
            let mut cutter = PartCutter::new(part_size, 1, 0, Mp4Scanner::new());
            let mut parts = Vec::new();
            let mut rest = Bytes::from(bytes.clone());
            let mut lens = chunk_lens.iter().cycle();
            while !rest.is_empty() {
                let n = (*lens.next().unwrap()).min(rest.len());
                cutter.push(rest.split_to(n), &mut parts);
            }
            let (last, scanner) = cutter.finish();
            parts.extend(last);
            prop_assert_eq!(scanner.bytes_seen(), len as u64);
            let mut joined = Vec::new();
            for cut in &parts {
                for chunk in cut.part.chunks.iter() {
                    joined.extend_from_slice(chunk);
                }
                let end = (cut.part.offset + cut.part.len) as usize;
                let mut reference = Mp4Scanner::new();
                reference.feed(&bytes[..end]);
                prop_assert_eq!(&cut.scan_state, &reference.snapshot());
            }
            prop_assert_eq!(joined, bytes);
        }
    }

    #[test]
    fn a_resumed_cutter_carries_on_from_the_restored_scan() {
        let bytes = file(10_000);
        let mut first = PartCutter::new(1000, 1, 0, Mp4Scanner::new());
        let mut parts = Vec::new();
        first.push(Bytes::copy_from_slice(&bytes[..4500]), &mut parts);
        assert_eq!(parts.len(), 4);
        let stored = parts[3].scan_state.clone();
        let restored = Mp4Scanner::restore(&stored).unwrap();
        let mut resumed = PartCutter::new(1000, 5, 4000, restored);
        let mut more = Vec::new();
        resumed.push(Bytes::copy_from_slice(&bytes[4000..]), &mut more);
        assert_eq!(more[0].part.number, 5);
        assert_eq!(more[0].part.offset, 4000);
        let (last, scanner) = resumed.finish();
        assert!(last.is_none(), "10,000 is a whole number of parts");
        let mut reference = Mp4Scanner::new();
        reference.feed(&bytes);
        assert_eq!(scanner.snapshot(), reference.snapshot());
    }

    #[test]
    #[should_panic(expected = "the scan resumes where the parts end")]
    fn a_scanner_that_did_not_see_the_parts_is_refused() {
        PartCutter::new(1000, 3, 2000, Mp4Scanner::new());
    }
}
