//! The scanner's state as a few dozen bytes, so that it can be stored with
//! each uploaded part and restored when a transfer resumes after that part.
//!
//! The encoding is versioned and self-checking: [`Mp4Scanner::restore`]
//! refuses anything it did not write (a wrong version, an unknown tag, a
//! length past the fixed buffer, trailing bytes), so a damaged record makes
//! the transfer rescan rather than trust a scanner that never saw the bytes.
//! It must never grow with the file: it holds offsets and at most
//! [`MAX_BUFFERED`] pending header bytes.

use super::{
    FULL_BOX_PREFIX_LEN, HEADER_LEN, LARGE_HEADER_LEN, Level, MAX_BUFFERED, MVHD_V0_FIELDS_LEN,
    MVHD_V1_FIELDS_LEN, Mp4Scanner, Mp4Verdict, State,
};

/// The first byte of every encoded state; bump it when the layout changes.
const VERSION: u8 = 1;

/// Why a stored state cannot be restored.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("stored MP4 scan state is unreadable: {0}")]
pub struct ScanStateError(&'static str);

impl Mp4Scanner {
    /// The whole scanner state, to be stored beside the part that ends at
    /// [`Mp4Scanner::bytes_seen`].
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.push(VERSION);
        out.extend_from_slice(&self.fed.to_be_bytes());
        out.extend_from_slice(&self.offset.to_be_bytes());
        let (state_tag, state_offset) = match self.state {
            State::BoxHeader => (0, None),
            State::SkipUntil(end) => (1, end),
            State::MvhdFields { box_end } => (2, box_end),
        };
        out.push(state_tag);
        put_optional(&mut out, state_offset);
        let (level_tag, level_end) = match self.level {
            Level::TopLevel => (0, None),
            Level::InsideMoov { end } => (1, end),
        };
        out.push(level_tag);
        put_optional(&mut out, level_end);
        out.push(self.buffered as u8);
        out.extend_from_slice(&self.buf[..self.buffered]);
        out.push(u8::from(self.seen_first_header));
        match &self.verdict {
            None => out.push(0),
            Some(Mp4Verdict::Duration {
                timescale,
                duration,
            }) => {
                out.push(1);
                out.extend_from_slice(&timescale.to_be_bytes());
                out.extend_from_slice(&duration.to_be_bytes());
            }
            Some(Mp4Verdict::NotMp4 { reason }) => {
                out.push(2);
                // Reasons are short sentences of this module's own making.
                let reason = &reason.as_bytes()[..reason.len().min(u16::MAX as usize)];
                out.extend_from_slice(&(reason.len() as u16).to_be_bytes());
                out.extend_from_slice(reason);
            }
            Some(Mp4Verdict::NoDuration) => out.push(3),
        }
        out
    }

    /// A scanner in exactly the state [`Mp4Scanner::snapshot`] recorded.
    pub fn restore(encoded: &[u8]) -> Result<Mp4Scanner, ScanStateError> {
        let mut input = Reader(encoded);
        if input.u8()? != VERSION {
            return Err(ScanStateError("unknown version"));
        }
        let fed = input.u64()?;
        let offset = input.u64()?;
        if offset > fed {
            return Err(ScanStateError("box offset past the bytes seen"));
        }
        let state_tag = input.u8()?;
        let state_offset = input.optional()?;
        let state = match state_tag {
            0 if state_offset.is_none() => State::BoxHeader,
            1 => State::SkipUntil(state_offset),
            2 => State::MvhdFields {
                box_end: state_offset,
            },
            _ => return Err(ScanStateError("unknown scanner state")),
        };
        let level_tag = input.u8()?;
        let level_end = input.optional()?;
        let level = match level_tag {
            0 if level_end.is_none() => Level::TopLevel,
            1 => Level::InsideMoov { end: level_end },
            _ => return Err(ScanStateError("unknown box level")),
        };
        let buffered = usize::from(input.u8()?);
        if buffered > MAX_BUFFERED {
            return Err(ScanStateError("more pending bytes than the scanner holds"));
        }
        let mut buf = [0; MAX_BUFFERED];
        buf[..buffered].copy_from_slice(input.take(buffered)?);
        let seen_first_header = match input.u8()? {
            0 => false,
            1 => true,
            _ => return Err(ScanStateError("bad flag")),
        };
        let verdict = match input.u8()? {
            0 => None,
            1 => Some(Mp4Verdict::Duration {
                timescale: input.u32()?,
                duration: input.u64()?,
            }),
            2 => {
                let len = usize::from(input.u16()?);
                let reason = std::str::from_utf8(input.take(len)?)
                    .map_err(|_| ScanStateError("reason is not UTF-8"))?;
                Some(Mp4Verdict::NotMp4 {
                    reason: reason.to_string(),
                })
            }
            3 => Some(Mp4Verdict::NoDuration),
            _ => return Err(ScanStateError("unknown verdict")),
        };
        if !input.0.is_empty() {
            return Err(ScanStateError("trailing bytes"));
        }
        let scanner = Mp4Scanner {
            state,
            level,
            offset,
            fed,
            buf,
            buffered,
            seen_first_header,
            verdict,
        };
        scanner.check_invariants()?;
        Ok(scanner)
    }

    /// What `feed` relies on and a scanner it ran itself always satisfies,
    /// checked for a state that comes from storage.
    fn check_invariants(&self) -> Result<(), ScanStateError> {
        // No stream comes near this; it keeps every offset sum far from overflow.
        const MAX_STREAM: u64 = 1 << 60;
        if self.fed > MAX_STREAM {
            return Err(ScanStateError("more bytes seen than any stream holds"));
        }
        let holds_at_most = match self.state {
            State::SkipUntil(Some(end)) if end < self.offset => {
                return Err(ScanStateError("skipping to an offset already passed"));
            }
            State::SkipUntil(_) => 0,
            State::BoxHeader if self.buffered >= HEADER_LEN && self.size_field() == 1 => {
                LARGE_HEADER_LEN
            }
            State::BoxHeader => HEADER_LEN,
            State::MvhdFields { .. } if self.buffered < FULL_BOX_PREFIX_LEN => FULL_BOX_PREFIX_LEN,
            State::MvhdFields { .. } if self.buf[0] == 1 => MVHD_V1_FIELDS_LEN,
            State::MvhdFields { .. } => MVHD_V0_FIELDS_LEN,
        };
        if self.buffered > holds_at_most || self.buffered as u64 > self.offset {
            return Err(ScanStateError("pending bytes do not fit the scanner state"));
        }
        Ok(())
    }
}

fn put_optional(out: &mut Vec<u8>, value: Option<u64>) {
    match value {
        None => out.push(0),
        Some(value) => {
            out.push(1);
            out.extend_from_slice(&value.to_be_bytes());
        }
    }
}

/// Big-endian fields off the front of a slice, each read checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], ScanStateError> {
        if self.0.len() < len {
            return Err(ScanStateError("truncated"));
        }
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ScanStateError> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    fn u8(&mut self) -> Result<u8, ScanStateError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, ScanStateError> {
        self.array().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Result<u32, ScanStateError> {
        self.array().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Result<u64, ScanStateError> {
        self.array().map(u64::from_be_bytes)
    }

    fn optional(&mut self) -> Result<Option<u64>, ScanStateError> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.u64().map(Some),
            _ => Err(ScanStateError("bad optional flag")),
        }
    }
}
