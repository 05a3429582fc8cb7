//! Multipart parts: how large each part is, how a stream of downloaded chunks
//! is cut into parts, and how a part is replayed as an upload body.
//!
//! This module owns the part-size rule (S3's 5 MiB minimum, 5 GiB maximum and
//! 10,000-part limit), the grouping of chunks into parts with each part's
//! CRC32C, and the combination of part CRCs into the whole object's CRC. It
//! must never copy chunk bytes into a new buffer: a part is a list of the
//! downloaded `Bytes` themselves, split at part boundaries with
//! `Bytes::split_to` (a refcount, not a copy), and a retried part upload
//! replays those same chunks.

use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine as _;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

pub const MIB: u64 = 1024 * 1024;
/// S3's minimum size of every part but the last.
pub const MIN_PART_SIZE: u64 = 5 * MIB;
pub const DEFAULT_PART_SIZE: u64 = 16 * MIB;
/// S3's maximum number of parts in one upload.
pub const MAX_PARTS: u64 = 10_000;
/// S3's maximum size of one part.
pub const MAX_PART_SIZE: u64 = 5 * 1024 * MIB;

/// The part size for a file of `file_size` bytes (0 = unknown): at least
/// `configured` and [`MIN_PART_SIZE`], and large enough that the file needs at
/// most [`MAX_PARTS`] parts; rounded up to a whole MiB; never above
/// [`MAX_PART_SIZE`]. For an unknown size, `configured` clamped to
/// `[MIN_PART_SIZE, MAX_PART_SIZE]`.
///
/// A file larger than `MAX_PARTS × MAX_PART_SIZE` (about 48.8 TiB) cannot be
/// uploaded at all; it gets `MAX_PART_SIZE` and the size cap must reject it.
pub fn part_size_for(file_size: u64, configured: u64) -> u64 {
    let configured = configured.clamp(MIN_PART_SIZE, MAX_PART_SIZE);
    if file_size == 0 {
        return configured;
    }
    let needed = configured.max(file_size.div_ceil(MAX_PARTS));
    if needed >= MAX_PART_SIZE {
        return MAX_PART_SIZE;
    }
    // MAX_PART_SIZE is a whole MiB, so rounding up cannot pass it.
    needed.div_ceil(MIB) * MIB
}

/// One part: the downloaded chunks themselves (refcounted `Bytes`, never
/// copied), in order, with no empty chunk among them.
#[derive(Clone)]
pub struct Part {
    /// S3 part number, 1-based.
    pub number: u32,
    /// Offset of the part's first byte in the object.
    pub offset: u64,
    /// Sum of the chunks' lengths.
    pub len: u64,
    /// CRC32C of the part's bytes.
    pub crc32c: u32,
    pub chunks: Arc<[Bytes]>,
}

impl Part {
    /// A body replaying the same chunks; cloning a `Part` or making many
    /// bodies copies no bytes, so an S3 retry of the part costs no copy.
    pub fn body(&self) -> PartBody {
        PartBody {
            chunks: Arc::clone(&self.chunks),
            next_chunk: 0,
            remaining_bytes: self.chunks.iter().map(|chunk| chunk.len() as u64).sum(),
        }
    }

    /// The CRC32C as S3's `x-amz-checksum-crc32c` wants it: base64 of the
    /// big-endian 4 bytes.
    pub fn crc32c_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.crc32c.to_be_bytes())
    }
}

// By hand, because a derived `Debug` would print every byte of a 16 MiB part.
impl fmt::Debug for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Part")
            .field("number", &self.number)
            .field("offset", &self.offset)
            .field("len", &self.len)
            .field("crc32c", &format_args!("{:#010x}", self.crc32c))
            .field("num_chunks", &self.chunks.len())
            .finish()
    }
}

/// An [`http_body::Body`] yielding each chunk of a [`Part`] as a data frame,
/// with an exact size hint.
pub struct PartBody {
    chunks: Arc<[Bytes]>,
    next_chunk: usize,
    remaining_bytes: u64,
}

impl Body for PartBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        while let Some(chunk) = this.chunks.get(this.next_chunk) {
            this.next_chunk += 1;
            // The assembler never makes empty chunks, but `Part` is plain data.
            if chunk.is_empty() {
                continue;
            }
            this.remaining_bytes -= chunk.len() as u64;
            return Poll::Ready(Some(Ok(Frame::data(chunk.clone()))));
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.remaining_bytes == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining_bytes)
    }
}

impl fmt::Debug for PartBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartBody")
            .field("next_chunk", &self.next_chunk)
            .field("num_chunks", &self.chunks.len())
            .field("remaining_bytes", &self.remaining_bytes)
            .finish()
    }
}

/// Groups a stream of chunks into parts of exactly `part_size` bytes (the
/// last may be shorter), splitting a chunk that straddles a boundary with
/// `Bytes::split_to` (a refcount, no copy). Each part's CRC32C is computed
/// incrementally as its chunks arrive, while they are still in cache.
#[derive(Debug)]
pub struct PartAssembler {
    part_size: u64,
    next_part_number: u32,
    /// Object offset of the pending part's first byte.
    pending_offset: u64,
    pending_len: u64,
    pending_crc32c: u32,
    pending_chunks: Vec<Bytes>,
}

impl PartAssembler {
    /// `first_part_number` and `start_offset` allow resuming after parts
    /// already uploaded.
    ///
    /// # Panics
    /// If `part_size` is 0.
    pub fn new(part_size: u64, first_part_number: u32, start_offset: u64) -> Self {
        assert!(part_size > 0, "part size must be positive");
        Self {
            part_size,
            next_part_number: first_part_number,
            pending_offset: start_offset,
            pending_len: 0,
            pending_crc32c: 0,
            pending_chunks: Vec::new(),
        }
    }

    /// Adds a chunk; completed parts are appended to `out` (usually 0 or 1;
    /// several if the chunk is huge). Empty chunks are ignored.
    pub fn push(&mut self, mut chunk: Bytes, out: &mut Vec<Part>) {
        while !chunk.is_empty() {
            let room = self.part_size - self.pending_len;
            if (chunk.len() as u64) < room {
                self.append(chunk);
                return;
            }
            // `room <= chunk.len()`, so it fits in a usize.
            let head = chunk.split_to(room as usize);
            self.append(head);
            out.push(self.take_part());
        }
    }

    /// Bytes received so far, `start_offset` included.
    pub fn offset(&self) -> u64 {
        self.pending_offset + self.pending_len
    }

    /// Bytes held in the part being assembled (not yet emitted).
    pub fn pending_len(&self) -> u64 {
        self.pending_len
    }

    /// Bytes still to come before the part being assembled is complete.
    pub fn room(&self) -> u64 {
        self.part_size - self.pending_len
    }

    /// The last, possibly short, part (`None` if nothing is pending).
    pub fn finish(mut self) -> Option<Part> {
        (self.pending_len > 0).then(|| self.take_part())
    }

    fn append(&mut self, chunk: Bytes) {
        self.pending_crc32c = crc32c::crc32c_append(self.pending_crc32c, &chunk);
        self.pending_len += chunk.len() as u64;
        self.pending_chunks.push(chunk);
    }

    fn take_part(&mut self) -> Part {
        let part = Part {
            number: self.next_part_number,
            offset: self.pending_offset,
            len: self.pending_len,
            crc32c: self.pending_crc32c,
            // Moves the handles out and keeps the Vec's capacity for the next part.
            chunks: self.pending_chunks.drain(..).collect(),
        };
        self.next_part_number += 1;
        self.pending_offset += self.pending_len;
        self.pending_len = 0;
        self.pending_crc32c = 0;
        part
    }
}

/// CRC32C of a whole object from its parts' CRCs and lengths, in order.
pub fn combine_crc32c(parts: impl IntoIterator<Item = (u32, u64)>) -> u32 {
    parts
        .into_iter()
        .fold(0, |object_crc32c, (part_crc32c, part_len)| {
            // A part is held in memory, so its length fits in a usize.
            let part_len = usize::try_from(part_len).expect("part length fits in memory");
            crc32c::crc32c_combine(object_crc32c, part_crc32c, part_len)
        })
}

#[cfg(test)]
mod tests;
