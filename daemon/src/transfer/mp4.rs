//! Reads an MP4's duration from `moov/mvhd` while the download streams past,
//! so a transfer can check a recording's length without staging the file.
//!
//! The scanner walks top-level boxes by their headers alone: a box body it
//! does not need (above all the multi-GiB `mdat`) is skipped by arithmetic on
//! offsets, never looked at byte by byte. The only bytes it keeps are one box
//! header or the leading `mvhd` fields when they straddle chunk boundaries, in
//! a fixed buffer of [`MAX_BUFFERED`] bytes; memory does not grow with the file.

use std::time::Duration;

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
    /// Absolute stream offset of the next byte `feed` will see.
    offset: u64,
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
            buf: [0; MAX_BUFFERED],
            buffered: 0,
            seen_first_header: false,
            verdict: None,
        }
    }

    /// Takes the next chunk of the stream. Once a verdict is reached the rest
    /// of the stream is ignored at no cost.
    pub fn feed(&mut self, mut chunk: &[u8]) {
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
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn boxed(box_type: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = ((HEADER_LEN + body.len()) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(box_type);
        out.extend_from_slice(body);
        out
    }

    fn large_boxed(box_type: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = 1u32.to_be_bytes().to_vec();
        out.extend_from_slice(box_type);
        out.extend_from_slice(&((LARGE_HEADER_LEN + body.len()) as u64).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn ftyp() -> Vec<u8> {
        boxed(b"ftyp", b"isom\0\0\x02\0isommp41")
    }

    fn mvhd(version: u8, timescale: u32, duration: u64) -> Vec<u8> {
        let mut body = vec![version, 0, 0, 0];
        if version == 1 {
            body.extend_from_slice(&3_000_000_000u64.to_be_bytes());
            body.extend_from_slice(&3_000_000_001u64.to_be_bytes());
            body.extend_from_slice(&timescale.to_be_bytes());
            body.extend_from_slice(&duration.to_be_bytes());
        } else {
            body.extend_from_slice(&3_000_000_000u32.to_be_bytes());
            body.extend_from_slice(&3_000_000_001u32.to_be_bytes());
            body.extend_from_slice(&timescale.to_be_bytes());
            body.extend_from_slice(&u32::try_from(duration).unwrap().to_be_bytes());
        }
        // rate, volume, reserved, matrix, pre_defined, next_track_ID.
        body.extend_from_slice(&[0x5a; 80]);
        boxed(b"mvhd", &body)
    }

    fn moov(version: u8, timescale: u32, duration: u64) -> Vec<u8> {
        let mut children = boxed(b"udta", b"some user data");
        children.extend(mvhd(version, timescale, duration));
        children.extend(boxed(b"trak", &[7; 40]));
        boxed(b"moov", &children)
    }

    fn mdat(num_bytes: usize) -> Vec<u8> {
        boxed(b"mdat", &vec![0xa5; num_bytes])
    }

    fn scan(chunks: &[&[u8]]) -> Mp4Verdict {
        let mut scanner = Mp4Scanner::new();
        for chunk in chunks {
            scanner.feed(chunk);
        }
        scanner.finish()
    }

    fn scan_bytewise(file: &[u8]) -> Mp4Verdict {
        let mut scanner = Mp4Scanner::new();
        for byte in file {
            scanner.feed(std::slice::from_ref(byte));
        }
        scanner.finish()
    }

    fn not_mp4_reason(verdict: Mp4Verdict) -> String {
        match verdict {
            Mp4Verdict::NotMp4 { reason } => reason,
            other => panic!("expected NotMp4, got {other:?}"),
        }
    }

    #[test]
    fn faststart_v0_gives_the_duration_before_mdat() {
        let mut file = ftyp();
        file.extend(moov(0, 1000, 3_723_500));
        let moov_end = file.len();
        file.extend(mdat(5000));

        let mut scanner = Mp4Scanner::new();
        scanner.feed(&file[..moov_end]);
        assert_eq!(
            scanner.verdict(),
            Some(&Mp4Verdict::Duration {
                timescale: 1000,
                duration: 3_723_500
            })
        );
        assert_eq!(scanner.duration(), Some(Duration::from_millis(3_723_500)));
        scanner.feed(&file[moov_end..]);
        assert_eq!(
            scanner.finish().duration(),
            Some(Duration::from_millis(3_723_500))
        );
        assert_eq!(
            scan_bytewise(&file).duration(),
            Some(Duration::from_millis(3_723_500))
        );
    }

    #[test]
    fn moov_at_end_v1_gives_the_duration_only_at_the_end() {
        let nine_hours_ticks = 9 * 3600 * 90_000u64;
        let mut file = ftyp();
        file.extend(mdat(5000));
        let mdat_end = file.len();
        file.extend(moov(1, 90_000, nine_hours_ticks));

        let mut scanner = Mp4Scanner::new();
        scanner.feed(&file[..mdat_end]);
        assert_eq!(scanner.verdict(), None);
        assert_eq!(scanner.duration(), None);
        scanner.feed(&file[mdat_end..]);
        assert_eq!(scanner.duration(), Some(Duration::from_secs(9 * 3600)));
        assert_eq!(
            scan_bytewise(&file),
            Mp4Verdict::Duration {
                timescale: 90_000,
                duration: nine_hours_ticks
            }
        );
    }

    #[test]
    fn v1_durations_beyond_u32_and_fractional_seconds_are_exact() {
        let ticks = 100_000 * 48_000 + 12_000;
        assert!(ticks > u64::from(u32::MAX));
        let mut file = ftyp();
        file.extend(moov(1, 48_000, ticks));
        let expected = Some(Duration::from_millis(100_000_250));
        assert_eq!(scan(&[&file]).duration(), expected);
        assert_eq!(scan_bytewise(&file).duration(), expected);
    }

    #[test]
    fn largesize_mdat_is_skipped_by_its_64_bit_size() {
        let mut file = ftyp();
        file.extend(large_boxed(b"mdat", &[0x11; 3000]));
        file.extend(moov(0, 600, 600 * 75));
        assert_eq!(scan(&[&file]).duration(), Some(Duration::from_secs(75)));
        assert_eq!(
            scan_bytewise(&file).duration(),
            Some(Duration::from_secs(75))
        );
    }

    #[test]
    fn a_huge_largesize_is_skipped_without_reading_it() {
        // mdat claims 6 GiB; only its first bytes are fed, then moov directly after.
        let mdat_len = 6u64 << 30;
        let mut header = 1u32.to_be_bytes().to_vec();
        header.extend_from_slice(b"mdat");
        header.extend_from_slice(&mdat_len.to_be_bytes());
        let mut scanner = Mp4Scanner::new();
        scanner.feed(&ftyp());
        scanner.feed(&header);
        let filler = vec![0u8; 1 << 20];
        for _ in 0..(mdat_len - LARGE_HEADER_LEN as u64) >> 20 {
            scanner.feed(&filler);
        }
        scanner.feed(&filler[..(mdat_len as usize - LARGE_HEADER_LEN) % (1 << 20)]);
        assert_eq!(scanner.verdict(), None);
        scanner.feed(&moov(1, 90_000, 90_000 * 3600));
        assert_eq!(scanner.duration(), Some(Duration::from_secs(3600)));
    }

    #[test]
    fn size_zero_last_box_runs_to_the_end_of_the_stream() {
        let mut file = ftyp();
        file.extend(moov(0, 1000, 42_000));
        file.extend_from_slice(&0u32.to_be_bytes());
        file.extend_from_slice(b"mdat");
        file.extend_from_slice(&[0xee; 1000]);
        assert_eq!(
            scan_bytewise(&file).duration(),
            Some(Duration::from_secs(42))
        );

        // With moov before it nothing is decided until the stream ends, and the
        // size-0 mdat swallows whatever follows, even bytes shaped like a moov.
        let mut file = ftyp();
        file.extend_from_slice(&0u32.to_be_bytes());
        file.extend_from_slice(b"mdat");
        file.extend(moov(0, 1000, 42_000));
        assert_eq!(scan(&[&file]), Mp4Verdict::NoDuration);
    }

    #[test]
    fn size_zero_moov_walks_its_children_to_the_end() {
        let mut file = ftyp();
        file.extend_from_slice(&0u32.to_be_bytes());
        file.extend_from_slice(b"moov");
        file.extend(boxed(b"trak", &[1; 20]));
        file.extend(mvhd(0, 1000, 1500));
        assert_eq!(
            scan_bytewise(&file).duration(),
            Some(Duration::from_millis(1500))
        );
    }

    #[test]
    fn an_html_page_is_not_mp4_and_says_what_it_saw() {
        let page =
            b"<!DOCTYPE html><html><head><title>Zoom</title></head><body>Sign in</body></html>";
        let reason = not_mp4_reason(scan(&[page]));
        assert!(reason.contains("\"<!DOCTYP\""), "{reason}");
        assert_eq!(not_mp4_reason(scan_bytewise(page)), reason);

        let mut scanner = Mp4Scanner::new();
        scanner.feed(&page[..8]);
        assert!(
            matches!(scanner.verdict(), Some(Mp4Verdict::NotMp4 { .. })),
            "decided from the first 8 bytes"
        );
    }

    #[test]
    fn random_bytes_are_not_mp4_and_are_named_in_hex() {
        let bytes = [0x8b, 0x1f, 0x00, 0xff, 0x10, 0x20, 0x30, 0x40, 0x50];
        let reason = not_mp4_reason(scan(&[&bytes]));
        assert!(reason.contains("0x8b1f00ff10203040"), "{reason}");
    }

    #[test]
    fn tiny_and_empty_streams_are_not_mp4() {
        assert!(not_mp4_reason(scan(&[])).contains("empty"));
        assert!(not_mp4_reason(scan(&[b"\0\0\0"])).contains("after 3 bytes"));
    }

    #[test]
    fn invalid_box_sizes_are_not_mp4() {
        let mut file = 4u32.to_be_bytes().to_vec();
        file.extend_from_slice(b"ftyp");
        assert!(not_mp4_reason(scan(&[&file])).contains("invalid size 4"));

        let mut file = ftyp();
        file.extend_from_slice(&1u32.to_be_bytes());
        file.extend_from_slice(b"mdat");
        file.extend_from_slice(&8u64.to_be_bytes());
        assert!(not_mp4_reason(scan(&[&file])).contains("invalid size 8"));

        let mut file = ftyp();
        file.extend_from_slice(&1u32.to_be_bytes());
        file.extend_from_slice(b"mdat");
        file.extend_from_slice(&u64::MAX.to_be_bytes());
        assert!(not_mp4_reason(scan(&[&file])).contains("past any stream"));
    }

    #[test]
    fn a_child_overrunning_moov_is_not_mp4() {
        let mut children = mvhd(0, 1000, 1000);
        let mvhd_len = children.len() as u32;
        children[0..4].copy_from_slice(&(mvhd_len + 1).to_be_bytes());
        let mut file = ftyp();
        file.extend(boxed(b"moov", &children));
        assert!(not_mp4_reason(scan(&[&file])).contains("past the end of moov"));
    }

    #[test]
    fn a_child_header_straddling_the_end_of_moov_is_not_mp4() {
        // moov holds 4 bytes, so the next header takes 4 more from the box after it.
        for child_size in [0u32, 8, 1] {
            let mut file = ftyp();
            file.extend(boxed(b"moov", &child_size.to_be_bytes()));
            file.extend(mdat(100));
            let reason = not_mp4_reason(scan(&[&file]));
            assert!(reason.contains("past the end of moov"), "{reason}");
            assert_eq!(not_mp4_reason(scan_bytewise(&file)), reason);
        }
    }

    #[test]
    fn a_short_or_unknown_mvhd_is_not_mp4() {
        let mut file = ftyp();
        file.extend(boxed(b"moov", &boxed(b"mvhd", &[0, 0, 0, 0, 1, 2, 3])));
        assert!(not_mp4_reason(scan(&[&file])).contains("too short"));

        let mut file = ftyp();
        file.extend(boxed(b"moov", &boxed(b"mvhd", &[2; 100])));
        assert!(not_mp4_reason(scan(&[&file])).contains("version 2"));
    }

    #[test]
    fn unknown_duration_and_zero_timescale_give_no_duration() {
        for moov in [
            moov(0, 1000, u64::from(u32::MAX)),
            moov(1, 1000, u64::MAX),
            moov(0, 0, 1000),
        ] {
            let mut file = ftyp();
            file.extend(moov);
            let mut scanner = Mp4Scanner::new();
            scanner.feed(&file);
            assert_eq!(scanner.verdict(), Some(&Mp4Verdict::NoDuration));
            assert_eq!(scanner.duration(), None);
        }
    }

    #[test]
    fn truncated_files_give_no_duration() {
        let mut file = ftyp();
        file.extend(mdat(2000));
        file.extend(moov(0, 1000, 60_000));
        let mvhd_fields_end = file.len() - 40 - 8 - 80;
        for cut in [
            10,
            ftyp().len(),
            ftyp().len() + 3,
            ftyp().len() + 500,
            mvhd_fields_end - 1,
        ] {
            assert_eq!(
                scan(&[&file[..cut]]),
                Mp4Verdict::NoDuration,
                "cut at {cut}"
            );
            assert_eq!(
                scan_bytewise(&file[..cut]),
                Mp4Verdict::NoDuration,
                "cut at {cut}"
            );
        }
        assert_eq!(
            scan(&[&file[..mvhd_fields_end]]).duration(),
            Some(Duration::from_secs(60))
        );
    }

    #[test]
    fn moov_without_mvhd_then_more_boxes_gives_no_duration() {
        let mut file = ftyp();
        file.extend(boxed(b"moov", &boxed(b"trak", &[0; 30])));
        file.extend(mdat(100));
        // An mvhd outside moov does not count.
        file.extend(mvhd(0, 1000, 5000));
        assert_eq!(scan_bytewise(&file), Mp4Verdict::NoDuration);
    }

    #[test]
    fn every_plausible_first_box_is_accepted() {
        for box_type in PLAUSIBLE_FIRST_BOXES {
            let mut file = boxed(box_type, &[0; 16]);
            file.extend(moov(0, 1000, 2000));
            assert_eq!(scan(&[&file]).duration(), Some(Duration::from_secs(2)));
        }
    }

    /// A synthetic file: optional ftyp, some padding boxes, mdat (plain, 64-bit
    /// or size-0 last), moov before or after mdat.
    fn synthetic_file() -> impl Strategy<Value = Vec<u8>> {
        (
            any::<bool>(),
            0u8..=1,
            1u32..=u32::MAX,
            any::<u32>(),
            any::<bool>(),
            0usize..3,
            0usize..4000,
            0u8..3,
        )
            .prop_map(
                |(
                    with_ftyp,
                    version,
                    timescale,
                    duration,
                    faststart,
                    num_free,
                    mdat_len,
                    mdat_kind,
                )| {
                    let mut file = if with_ftyp { ftyp() } else { Vec::new() };
                    for _ in 0..num_free {
                        file.extend(boxed(b"free", &[0; 13]));
                    }
                    let moov = moov(version, timescale, u64::from(duration));
                    let payload = vec![0x42; mdat_len];
                    let mdat = match mdat_kind {
                        0 => boxed(b"mdat", &payload),
                        _ => large_boxed(b"mdat", &payload),
                    };
                    if faststart {
                        file.extend(moov);
                        if mdat_kind == 2 {
                            file.extend_from_slice(&0u32.to_be_bytes());
                            file.extend_from_slice(b"mdat");
                            file.extend(payload);
                        } else {
                            file.extend(mdat);
                        }
                    } else {
                        file.extend(mdat);
                        file.extend(moov);
                    }
                    file
                },
            )
    }

    /// Cut points for a file, as chunk lengths (the last chunk takes the rest).
    fn chunk_lengths() -> impl Strategy<Value = Vec<usize>> {
        prop::collection::vec(prop_oneof![1usize..=3, 1usize..=64, 1usize..=4096], 0..400)
    }

    fn scan_in_chunks(file: &[u8], lengths: &[usize]) -> Mp4Verdict {
        let mut scanner = Mp4Scanner::new();
        let mut rest = file;
        for &len in lengths {
            let (head, tail) = rest.split_at(len.min(rest.len()));
            scanner.feed(head);
            rest = tail;
        }
        scanner.feed(rest);
        scanner.finish()
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_same_verdict_as_the_whole(
            file in synthetic_file(),
            lengths in chunk_lengths(),
        ) {
            let whole = scan(&[&file]);
            let looked_like_mp4 = matches!(whole, Mp4Verdict::Duration { .. } | Mp4Verdict::NoDuration);
            prop_assert!(looked_like_mp4, "verdict {:?}", whole);
            prop_assert_eq!(scan_in_chunks(&file, &lengths), whole.clone());
            prop_assert_eq!(scan_bytewise(&file), whole);
        }

        #[test]
        fn any_chunking_of_a_damaged_file_gives_the_same_verdict(
            file in synthetic_file(),
            cut in any::<prop::sample::Index>(),
            garbage in prop::collection::vec(any::<u8>(), 0..16),
            overwrites in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
            lengths in chunk_lengths(),
        ) {
            let mut damaged = file[..cut.index(file.len() + 1)].to_vec();
            damaged.extend(garbage);
            // Within the first 300 bytes: box headers and mvhd, or mdat's payload.
            for (at, byte) in overwrites {
                if !damaged.is_empty() {
                    let at = at.index(damaged.len().min(300));
                    damaged[at] = byte;
                }
            }
            let whole = scan(&[&damaged]);
            prop_assert_eq!(scan_in_chunks(&damaged, &lengths), whole.clone());
            prop_assert_eq!(scan_bytewise(&damaged), whole);
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_chunking_does_not_matter(
            bytes in prop::collection::vec(any::<u8>(), 0..512),
            lengths in chunk_lengths(),
        ) {
            prop_assert_eq!(scan_in_chunks(&bytes, &lengths), scan(&[&bytes]));
        }
    }
}
