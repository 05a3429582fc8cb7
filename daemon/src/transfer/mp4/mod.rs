//! Reads an MP4's duration from `moov/mvhd` while the download streams past,
//! so a transfer can check a recording's length without staging the file.
//!
//! The scanner walks top-level boxes by their headers alone: a box body it
//! does not need (above all the multi-GiB `mdat`) is skipped by arithmetic on
//! offsets, never looked at byte by byte. The only bytes it keeps are one box
//! header or the leading `mvhd` fields when they straddle chunk boundaries, in
//! a fixed buffer of [`MAX_BUFFERED`] bytes; memory does not grow with the file.

use std::time::Duration;

mod state;

pub use state::ScanStateError;

/// Box types a real MP4 (or fragmented MP4 / DASH segment) may open with.
const PLAUSIBLE_FIRST_BOXES: [&[u8; 4]; 11] = [
    b"ftyp", b"styp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pdin", b"uuid", b"moof",
    b"sidx",
];

/// A box header: 32-bit size and type, then a 64-bit largesize when size is 1.
const HEADER_LEN: usize = 8;
const LARGE_HEADER_LEN: usize = 16;
/// mvhd's version and flags.
const FULL_BOX_PREFIX_LEN: usize = 4;
/// version/flags, creation(4), modification(4), timescale(4), duration(4).
const MVHD_V0_FIELDS_LEN: usize = FULL_BOX_PREFIX_LEN + 16;
/// version/flags, creation(8), modification(8), timescale(4), duration(8).
const MVHD_V1_FIELDS_LEN: usize = FULL_BOX_PREFIX_LEN + 28;
/// The most the scanner ever holds back from a chunk.
pub const MAX_BUFFERED: usize = MVHD_V1_FIELDS_LEN;

/// What a stream turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mp4Verdict {
    /// `moov/mvhd` was read: the presentation lasts `duration / timescale` seconds.
    Duration { timescale: u32, duration: u64 },
    /// Not an MP4, or one too malformed to walk; `reason` says what was seen.
    NotMp4 { reason: String },
    /// It looked like an MP4 but gave no usable duration: the stream ended
    /// before (or inside) `mvhd`, there was no `mvhd`, or `mvhd` declared the
    /// duration unknown (all ones) or a zero timescale.
    NoDuration,
}

impl Mp4Verdict {
    /// The duration, when the verdict carries one with a non-zero timescale.
    pub fn duration(&self) -> Option<Duration> {
        match *self {
            Mp4Verdict::Duration {
                timescale,
                duration,
            } if timescale > 0 => {
                let timescale = u64::from(timescale);
                let whole_secs = duration / timescale;
                // remainder < timescale ≤ u32::MAX, so remainder × 1e9 fits in a u64.
                let nanos = (duration % timescale) * 1_000_000_000 / timescale;
                Some(Duration::new(whole_secs, nanos as u32))
            }
            _ => None,
        }
    }
}

/// Where box headers are being read.
#[derive(Clone, Copy, Debug)]
enum Level {
    TopLevel,
    /// Among `moov`'s children; `end` is moov's end offset, `None` when moov
    /// runs to the end of the stream.
    InsideMoov {
        end: Option<u64>,
    },
}

#[derive(Clone, Copy, Debug)]
enum State {
    /// Collecting a box header into `buf`.
    BoxHeader,
    /// Skipping a box body up to this absolute offset (`None`: to the end of the stream).
    SkipUntil(Option<u64>),
    /// Collecting mvhd's version, flags, times, timescale and duration into `buf`.
    MvhdFields { box_end: Option<u64> },
}

/// Feeds on a stream's chunks in order and decides what the stream is; see the module docs.
#[derive(Clone, Debug)]
pub struct Mp4Scanner {
    state: State,
    level: Level,
    /// Absolute stream offset of the next byte the box walk will look at;
    /// it stops moving once a verdict is reached.
    offset: u64,
    /// Every byte ever fed, verdict or not: where the stream is.
    fed: u64,
    buf: [u8; MAX_BUFFERED],
    buffered: usize,
    seen_first_header: bool,
    verdict: Option<Mp4Verdict>,
}

impl Default for Mp4Scanner {
    fn default() -> Self {
        Self::new()
    }
}

impl Mp4Scanner {
    pub fn new() -> Self {
        Mp4Scanner {
            state: State::BoxHeader,
            level: Level::TopLevel,
            offset: 0,
            fed: 0,
            buf: [0; MAX_BUFFERED],
            buffered: 0,
            seen_first_header: false,
            verdict: None,
        }
    }

    /// Takes the next chunk of the stream. Once a verdict is reached the rest
    /// of the stream is ignored at no cost.
    pub fn feed(&mut self, mut chunk: &[u8]) {
        self.fed += chunk.len() as u64;
        while !chunk.is_empty() && self.verdict.is_none() {
            match self.state {
                State::SkipUntil(None) => {
                    self.offset += chunk.len() as u64;
                    return;
                }
                State::SkipUntil(Some(end)) => {
                    let num_bytes = (end - self.offset).min(chunk.len() as u64);
                    self.offset += num_bytes;
                    chunk = &chunk[num_bytes as usize..];
                    if self.offset == end {
                        self.expect_next_box();
                    }
                }
                State::BoxHeader => {
                    let wanted = if self.buffered >= HEADER_LEN && self.size_field() == 1 {
                        LARGE_HEADER_LEN
                    } else {
                        HEADER_LEN
                    };
                    chunk = self.buffer_up_to(wanted, chunk);
                    if self.buffered < wanted {
                        return;
                    }
                    if !self.seen_first_header {
                        self.seen_first_header = true;
                        if let Err(reason) = self.check_first_header() {
                            self.verdict = Some(Mp4Verdict::NotMp4 { reason });
                            return;
                        }
                    }
                    if wanted == HEADER_LEN && self.size_field() == 1 {
                        continue; // the 64-bit largesize follows
                    }
                    if let Err(reason) = self.on_box_header() {
                        self.verdict = Some(Mp4Verdict::NotMp4 { reason });
                    }
                }
                State::MvhdFields { box_end } => {
                    let wanted = match self.buffered.checked_sub(FULL_BOX_PREFIX_LEN) {
                        None => FULL_BOX_PREFIX_LEN,
                        Some(_) if self.buf[0] == 1 => MVHD_V1_FIELDS_LEN,
                        Some(_) => MVHD_V0_FIELDS_LEN,
                    };
                    chunk = self.buffer_up_to(wanted, chunk);
                    if self.buffered < wanted {
                        return;
                    }
                    if wanted == FULL_BOX_PREFIX_LEN {
                        if let Err(reason) = self.check_mvhd_room(box_end) {
                            self.verdict = Some(Mp4Verdict::NotMp4 { reason });
                        }
                        continue;
                    }
                    self.verdict = Some(self.read_mvhd_fields());
                }
            }
        }
    }

    /// How many bytes of the stream the scanner has been fed, in order from
    /// byte 0: a verdict covers the whole file only when this is its length.
    pub fn bytes_seen(&self) -> u64 {
        self.fed
    }

    /// The duration, as soon as `mvhd` has been read (and its timescale is not zero).
    pub fn duration(&self) -> Option<Duration> {
        self.verdict.as_ref().and_then(Mp4Verdict::duration)
    }

    /// The verdict once decided: a duration was found, or the stream is clearly not MP4.
    pub fn verdict(&self) -> Option<&Mp4Verdict> {
        self.verdict.as_ref()
    }

    /// The verdict at the end of the stream.
    pub fn finish(self) -> Mp4Verdict {
        if let Some(verdict) = self.verdict {
            return verdict;
        }
        if self.seen_first_header {
            return Mp4Verdict::NoDuration;
        }
        let reason = if self.offset == 0 {
            "stream is empty".to_string()
        } else {
            format!(
                "stream ends after {} bytes ({}), before the first box header",
                self.offset,
                printable(&self.buf[..self.buffered])
            )
        };
        Mp4Verdict::NotMp4 { reason }
    }

    /// Moves bytes from `chunk` into `buf` until it holds `wanted`; returns the rest of `chunk`.
    fn buffer_up_to<'a>(&mut self, wanted: usize, chunk: &'a [u8]) -> &'a [u8] {
        let num_bytes = (wanted - self.buffered).min(chunk.len());
        self.buf[self.buffered..self.buffered + num_bytes].copy_from_slice(&chunk[..num_bytes]);
        self.buffered += num_bytes;
        self.offset += num_bytes as u64;
        &chunk[num_bytes..]
    }

    fn size_field(&self) -> u32 {
        u32::from_be_bytes(self.buf[0..4].try_into().expect("4 bytes"))
    }

    fn box_type(&self) -> [u8; 4] {
        self.buf[4..8].try_into().expect("4 bytes")
    }

    fn check_first_header(&self) -> Result<(), String> {
        if PLAUSIBLE_FIRST_BOXES.contains(&&self.box_type()) {
            Ok(())
        } else {
            Err(format!(
                "first 8 bytes {} are not an MP4 box header",
                printable(&self.buf[..HEADER_LEN])
            ))
        }
    }

    /// Decides what to do with the box whose complete header sits in `buf`.
    fn on_box_header(&mut self) -> Result<(), String> {
        let box_type = self.box_type();
        let header_len = self.buffered as u64;
        let box_start = self.offset - header_len;
        let parent_end = match self.level {
            Level::TopLevel => None,
            Level::InsideMoov { end } => end,
        };
        if let Some(parent_end) = parent_end
            && self.offset > parent_end
        {
            return Err(format!(
                "box header {} at offset {box_start} runs past the end of moov at {parent_end}",
                printable(&self.buf[..self.buffered])
            ));
        }
        let box_end = match self.size_field() {
            0 => parent_end,
            1 => {
                let large_size = u64::from_be_bytes(self.buf[8..16].try_into().expect("8 bytes"));
                if large_size < LARGE_HEADER_LEN as u64 {
                    return Err(invalid_size(&box_type, box_start, large_size));
                }
                Some(box_start.checked_add(large_size).ok_or_else(|| {
                    format!(
                        "box {} at offset {box_start} has size {large_size}, past any stream",
                        printable(&box_type)
                    )
                })?)
            }
            size if (size as usize) < HEADER_LEN => {
                return Err(invalid_size(&box_type, box_start, u64::from(size)));
            }
            size => Some(box_start + u64::from(size)),
        };
        if let (Some(parent_end), Some(box_end)) = (parent_end, box_end)
            && box_end > parent_end
        {
            return Err(format!(
                "box {} at offset {box_start} ends at {box_end}, past the end of moov at {parent_end}",
                printable(&box_type)
            ));
        }
        self.buffered = 0;
        match (self.level, &box_type) {
            (Level::TopLevel, b"moov") => {
                self.level = Level::InsideMoov { end: box_end };
                self.expect_next_box();
            }
            (Level::InsideMoov { .. }, b"mvhd") => self.state = State::MvhdFields { box_end },
            _ => {
                self.state = State::SkipUntil(box_end);
                if box_end == Some(self.offset) {
                    self.expect_next_box();
                }
            }
        }
        Ok(())
    }

    /// Called at a box boundary: the next bytes are a box header, at moov's level
    /// or, when moov just ended, at the top level.
    fn expect_next_box(&mut self) {
        self.state = State::BoxHeader;
        self.buffered = 0;
        if let Level::InsideMoov { end: Some(end) } = self.level
            && end == self.offset
        {
            self.level = Level::TopLevel;
        }
    }

    /// With mvhd's version known, checks the box can hold that version's fields.
    fn check_mvhd_room(&self, box_end: Option<u64>) -> Result<(), String> {
        let version = self.buf[0];
        let fields_len = match version {
            0 => MVHD_V0_FIELDS_LEN,
            1 => MVHD_V1_FIELDS_LEN,
            _ => return Err(format!("mvhd version {version} is neither 0 nor 1")),
        };
        let fields_end = self.offset + (fields_len - FULL_BOX_PREFIX_LEN) as u64;
        match box_end {
            Some(box_end) if box_end < fields_end => Err(format!(
                "mvhd version {version} box ends at {box_end}, too short for its fields"
            )),
            _ => Ok(()),
        }
    }

    fn read_mvhd_fields(&self) -> Mp4Verdict {
        let be_u32 = |at: usize| u32::from_be_bytes(self.buf[at..at + 4].try_into().expect("4"));
        let be_u64 = |at: usize| u64::from_be_bytes(self.buf[at..at + 8].try_into().expect("8"));
        let (timescale, duration, unknown) = if self.buf[0] == 1 {
            (be_u32(20), be_u64(24), u64::MAX)
        } else {
            (be_u32(12), u64::from(be_u32(16)), u64::from(u32::MAX))
        };
        // ISO/IEC 14496-12 sets every duration bit when the duration is unknown.
        if timescale == 0 || duration == unknown {
            Mp4Verdict::NoDuration
        } else {
            Mp4Verdict::Duration {
                timescale,
                duration,
            }
        }
    }
}

fn invalid_size(box_type: &[u8; 4], box_start: u64, size: u64) -> String {
    format!(
        "box {} at offset {box_start} has invalid size {size}",
        printable(box_type)
    )
}

/// Bytes as a quoted string when they are printable ASCII, else as hex.
fn printable(bytes: &[u8]) -> String {
    if bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        format!("\"{}\"", String::from_utf8_lossy(bytes))
    } else {
        format!("0x{}", hex::encode(bytes))
    }
}

#[cfg(test)]
mod tests;
