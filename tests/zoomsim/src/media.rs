//! Deterministic synthetic recordings for the simulator's download server,
//! the tests and the benchmarks, of any size (many GiB included) without
//! holding them in memory.
//!
//! A file is a handful of small box headers at known offsets over a filler
//! that is a function of the absolute offset alone: one pseudo-random block
//! of [`FILLER_PERIOD`] bytes, generated once per process and repeated. The
//! block is stored twice over, so any filler range up to a period long is one
//! contiguous slice and [`SyntheticMedia::chunk`] hands it out without
//! copying; that is what lets a benchmark stream several GiB/s of it.
//! Small text files (transcripts, captions, chat) are one region holding
//! every byte ([`SyntheticMedia::text`], [`SyntheticMedia::vtt`]).

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use sha2::{Digest, Sha256};

/// The filler repeats with this period; chunks no longer than this that
/// touch no box header are zero-copy.
pub const FILLER_PERIOD: usize = 1 << 20;
const FILLER_SEED: u64 = 0x5eed_f11e_7ba5_c0de;
/// Step of [`SyntheticMedia::sha256`].
const HASH_STEP: usize = 1 << 20;

/// mvhd timescales: milliseconds for version 0, the 90 kHz video clock for version 1.
const MVHD_V0_TIMESCALE: u32 = 1000;
const MVHD_V1_TIMESCALE: u32 = 90_000;
/// 2026-01-01T00:00:00Z in seconds since 1904-01-01, mvhd's epoch.
const MVHD_CREATION_TIME: u32 = 3_849_984_000;

/// The page Zoom serves instead of the file when a download token has expired.
const SIGN_IN_PAGE: &[u8] = b"<!DOCTYPE html>\n<html lang=\"en-US\"><head><meta charset=\"utf-8\">\
<title>Sign In | Zoom</title></head><body><div id=\"root\">Sign in to view this recording.\
</div></body></html>\n";

/// Where `moov` goes relative to `mdat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mp4Layout {
    /// ftyp, moov, mdat: the duration is readable from the first bytes.
    FastStart,
    /// ftyp, mdat, moov: the duration is readable only at the end, as Zoom's files often are.
    MoovAtEnd,
}

/// Fixed bytes at a fixed offset; everything between regions is filler.
#[derive(Clone, Debug)]
struct Region {
    start: u64,
    bytes: Vec<u8>,
}

impl Region {
    fn end(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }
}

/// A synthetic file: a description, not its bytes; see the module docs.
#[derive(Clone, Debug)]
pub struct SyntheticMedia {
    len: u64,
    /// Sorted by `start`, non-overlapping, all within `len`.
    regions: Vec<Region>,
}

impl SyntheticMedia {
    /// A structurally valid MP4 (ftyp, moov{mvhd}, mdat{filler}) of exactly
    /// `size` bytes whose mvhd says `duration`: version 0 with timescale 1000
    /// (milliseconds, truncated), version 1 with timescale 90000. mdat takes a
    /// 64-bit largesize once it no longer fits 32 bits.
    ///
    /// # Panics
    /// When `size` is below [`SyntheticMedia::mp4_min_len`], `mvhd_version`
    /// is not 0 or 1, or a version 0 `duration` does not fit 32-bit milliseconds.
    pub fn mp4(size: u64, duration: Duration, layout: Mp4Layout, mvhd_version: u8) -> Self {
        let ftyp = ftyp_box();
        let moov = moov_box(duration, mvhd_version);
        let min_len = Self::mp4_min_len(mvhd_version);
        assert!(
            size >= min_len,
            "a synthetic mp4 with mvhd version {mvhd_version} needs at least {min_len} bytes, got {size}"
        );
        let mdat_len = size - (ftyp.len() + moov.len()) as u64;
        let mdat_header = match u32::try_from(mdat_len) {
            Ok(mdat_len) => [&mdat_len.to_be_bytes()[..], b"mdat"].concat(),
            Err(_) => [&1u32.to_be_bytes()[..], b"mdat", &mdat_len.to_be_bytes()].concat(),
        };
        let after_ftyp = ftyp.len() as u64;
        let regions = match layout {
            Mp4Layout::FastStart => vec![
                Region {
                    start: after_ftyp + moov.len() as u64,
                    bytes: mdat_header,
                },
                Region {
                    start: after_ftyp,
                    bytes: moov,
                },
            ],
            Mp4Layout::MoovAtEnd => vec![
                Region {
                    start: size - moov.len() as u64,
                    bytes: moov,
                },
                Region {
                    start: after_ftyp,
                    bytes: mdat_header,
                },
            ],
        };
        let mut regions = [
            vec![Region {
                start: 0,
                bytes: ftyp,
            }],
            regions,
        ]
        .concat();
        regions.sort_by_key(|region| region.start);
        SyntheticMedia { len: size, regions }
    }

    /// A file of exactly `bytes` (a transcript, captions, a chat; or any
    /// bytes a test wants served).
    pub fn text(bytes: impl Into<Vec<u8>>) -> Self {
        let bytes = bytes.into();
        SyntheticMedia {
            len: bytes.len() as u64,
            regions: vec![Region { start: 0, bytes }],
        }
    }

    /// A WebVTT file of `cues` numbered cues, two seconds each, as Zoom's
    /// transcripts and captions are (with non-ASCII text in every cue).
    pub fn vtt(cues: usize) -> Self {
        let mut text = String::from("WEBVTT\n");
        for cue in 0..cues {
            let (from, to) = (cue * 2, cue * 2 + 2);
            text.push_str(&format!(
                "\n{}\n00:{:02}:{:02}.000 --> 00:{:02}:{:02}.000\nÉlisa: sentence {cue} of the lecture ✓\n",
                cue + 1,
                from / 60,
                from % 60,
                to / 60,
                to % 60
            ));
        }
        Self::text(text.into_bytes())
    }

    /// The smallest size [`SyntheticMedia::mp4`] accepts: ftyp, moov and an empty mdat.
    pub fn mp4_min_len(mvhd_version: u8) -> u64 {
        (ftyp_box().len() + moov_box(Duration::ZERO, mvhd_version).len() + 8) as u64
    }

    /// `size` bytes that are not MP4: Zoom's sign-in page (cut short when
    /// `size` is smaller) followed by filler.
    pub fn not_mp4(size: u64) -> Self {
        let page_len = SIGN_IN_PAGE
            .len()
            .min(usize::try_from(size).unwrap_or(usize::MAX));
        SyntheticMedia {
            len: size,
            regions: vec![Region {
                start: 0,
                bytes: SIGN_IN_PAGE[..page_len].to_vec(),
            }],
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes at `[offset, offset + len)`, clamped at the end of the file.
    /// A range of at most [`FILLER_PERIOD`] bytes that touches no box header
    /// is a zero-copy slice of the shared filler; anything else is assembled.
    pub fn chunk(&self, offset: u64, len: usize) -> Bytes {
        let start = offset.min(self.len);
        let end = start.saturating_add(len as u64).min(self.len);
        let num_bytes = (end - start) as usize;
        let filler = filler();
        let touches_region = self
            .regions
            .iter()
            .any(|region| region.start < end && start < region.end());
        if num_bytes <= FILLER_PERIOD && !touches_region {
            let at = (start % FILLER_PERIOD as u64) as usize;
            return filler.slice(at..at + num_bytes);
        }

        let mut out = Vec::with_capacity(num_bytes);
        let mut at = start;
        while at < end {
            let region = self
                .regions
                .iter()
                .find(|region| region.start <= at && at < region.end());
            if let Some(region) = region {
                let from = (at - region.start) as usize;
                let to = (end.min(region.end()) - region.start) as usize;
                out.extend_from_slice(&region.bytes[from..to]);
                at += (to - from) as u64;
                continue;
            }
            let filler_end = self
                .regions
                .iter()
                .map(|region| region.start)
                .filter(|&region_start| region_start > at)
                .fold(end, u64::min);
            while at < filler_end {
                let phase = (at % FILLER_PERIOD as u64) as usize;
                let piece = (filler_end - at).min((FILLER_PERIOD - phase) as u64) as usize;
                out.extend_from_slice(&filler[phase..phase + piece]);
                at += piece as u64;
            }
        }
        Bytes::from(out)
    }

    /// SHA-256 of the whole content, streamed through [`SyntheticMedia::chunk`].
    pub fn sha256(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        let mut offset = 0;
        while offset < self.len {
            let chunk = self.chunk(offset, HASH_STEP);
            hasher.update(&chunk);
            offset += chunk.len() as u64;
        }
        hasher.finalize().into()
    }
}

/// The filler block, twice over; see the module docs.
fn filler() -> &'static Bytes {
    static FILLER: OnceLock<Bytes> = OnceLock::new();
    FILLER.get_or_init(|| {
        // splitmix64: fixed here, so the content never changes with a dependency's version.
        let mut state = FILLER_SEED;
        let mut block = Vec::with_capacity(2 * FILLER_PERIOD);
        while block.len() < FILLER_PERIOD {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            block.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        block.extend_from_within(..FILLER_PERIOD);
        Bytes::from(block)
    })
}

fn mp4_box(box_type: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(8 + body.len()).expect("header boxes are small");
    [&len.to_be_bytes()[..], box_type, body].concat()
}

fn ftyp_box() -> Vec<u8> {
    // major brand, minor version, compatible brands.
    mp4_box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2avc1mp41")
}

fn moov_box(duration: Duration, mvhd_version: u8) -> Vec<u8> {
    let mut mvhd = vec![mvhd_version, 0, 0, 0];
    match mvhd_version {
        0 => {
            let millis = u32::try_from(duration.as_millis())
                .ok()
                .filter(|&millis| millis != u32::MAX)
                .unwrap_or_else(|| {
                    panic!("{duration:?} does not fit mvhd version 0; use version 1")
                });
            mvhd.extend_from_slice(&MVHD_CREATION_TIME.to_be_bytes());
            mvhd.extend_from_slice(&MVHD_CREATION_TIME.to_be_bytes());
            mvhd.extend_from_slice(&MVHD_V0_TIMESCALE.to_be_bytes());
            mvhd.extend_from_slice(&millis.to_be_bytes());
        }
        1 => {
            let ticks = duration.as_nanos() * u128::from(MVHD_V1_TIMESCALE) / 1_000_000_000;
            let ticks = u64::try_from(ticks).expect("duration fits 64-bit 90 kHz ticks");
            mvhd.extend_from_slice(&u64::from(MVHD_CREATION_TIME).to_be_bytes());
            mvhd.extend_from_slice(&u64::from(MVHD_CREATION_TIME).to_be_bytes());
            mvhd.extend_from_slice(&MVHD_V1_TIMESCALE.to_be_bytes());
            mvhd.extend_from_slice(&ticks.to_be_bytes());
        }
        _ => panic!("mvhd version {mvhd_version} is neither 0 nor 1"),
    }
    mvhd.extend_from_slice(&0x0001_0000u32.to_be_bytes()); // rate 1.0
    mvhd.extend_from_slice(&0x0100u16.to_be_bytes()); // volume 1.0
    mvhd.extend_from_slice(&[0; 10]); // reserved
    for matrix_entry in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
        mvhd.extend_from_slice(&matrix_entry.to_be_bytes());
    }
    mvhd.extend_from_slice(&[0; 24]); // pre_defined
    mvhd.extend_from_slice(&2u32.to_be_bytes()); // next_track_ID
    mp4_box(b"moov", &mp4_box(b"mvhd", &mvhd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{GIB, MIB};
    use ferry_daemon::transfer::mp4::{Mp4Scanner, Mp4Verdict};
    use proptest::prelude::*;

    const NINE_HOURS: Duration = Duration::from_secs(9 * 3600);

    fn every_kind(size: u64) -> Vec<SyntheticMedia> {
        let duration = Duration::from_millis(1_234_500);
        vec![
            SyntheticMedia::mp4(size, duration, Mp4Layout::FastStart, 0),
            SyntheticMedia::mp4(size, duration, Mp4Layout::FastStart, 1),
            SyntheticMedia::mp4(size, duration, Mp4Layout::MoovAtEnd, 0),
            SyntheticMedia::mp4(size, duration, Mp4Layout::MoovAtEnd, 1),
            SyntheticMedia::not_mp4(size),
        ]
    }

    fn scan(media: &SyntheticMedia, step: usize) -> Mp4Verdict {
        let mut scanner = Mp4Scanner::new();
        let mut offset = 0;
        while offset < media.len() {
            let chunk = media.chunk(offset, step);
            scanner.feed(&chunk);
            offset += chunk.len() as u64;
        }
        scanner.finish()
    }

    fn be_u32(bytes: &Bytes, at: usize) -> u32 {
        u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn chunks_at_arbitrary_offsets_are_slices_of_the_whole() {
        // 3 MiB: ranges cross the filler's period and the header boxes.
        let size = 3 * FILLER_PERIOD as u64 + 77;
        for media in every_kind(size) {
            let whole = media.chunk(0, size as usize);
            assert_eq!(whole.len() as u64, size);
            let mut offset = 0u64;
            let mut len = 1usize;
            while offset < size {
                let chunk = media.chunk(offset, len);
                let end = (offset as usize + len).min(size as usize);
                assert_eq!(
                    chunk,
                    whole[offset as usize..end],
                    "{media:?} at {offset}+{len}"
                );
                offset += 7919 * len as u64 % 65_521 + 1;
                len = len * 3 % 2_500_000 + 1;
            }
            let period_boundary = FILLER_PERIOD as u64;
            assert_eq!(
                media.chunk(period_boundary - 5, 10),
                whole[FILLER_PERIOD - 5..FILLER_PERIOD + 5]
            );
            assert!(media.chunk(size, 10).is_empty());
            assert!(media.chunk(size + 100, 10).is_empty());
            assert_eq!(
                media.chunk(size - 3, usize::MAX),
                whole[size as usize - 3..]
            );
        }
    }

    proptest! {
        #[test]
        fn any_range_of_a_small_file_is_the_slice_of_the_whole(
            size in 300u64..5000,
            faststart in any::<bool>(),
            version in 0u8..=1,
            offset in 0u64..6000,
            len in 0usize..6000,
        ) {
            let layout = if faststart { Mp4Layout::FastStart } else { Mp4Layout::MoovAtEnd };
            let media = SyntheticMedia::mp4(size, Duration::from_secs(61), layout, version);
            let whole = media.chunk(0, size as usize);
            let start = offset.min(size) as usize;
            let end = (start + len).min(size as usize);
            prop_assert_eq!(media.chunk(offset, len), whole.slice(start..end));
        }
    }

    #[test]
    fn identical_inputs_give_identical_content() {
        let a = SyntheticMedia::mp4(10_000_000, NINE_HOURS, Mp4Layout::MoovAtEnd, 1);
        let b = SyntheticMedia::mp4(10_000_000, NINE_HOURS, Mp4Layout::MoovAtEnd, 1);
        assert_eq!(a.sha256(), b.sha256());
        assert_eq!(
            a.sha256(),
            <[u8; 32]>::from(Sha256::digest(a.chunk(0, usize::MAX)))
        );
        let fast_start = SyntheticMedia::mp4(10_000_000, NINE_HOURS, Mp4Layout::FastStart, 1);
        assert_ne!(a.sha256(), fast_start.sha256());
        let shorter = SyntheticMedia::mp4(10_000_000, NINE_HOURS / 2, Mp4Layout::MoovAtEnd, 1);
        assert_ne!(a.sha256(), shorter.sha256());
    }

    #[test]
    fn the_boxes_tile_the_file_exactly() {
        for version in [0, 1] {
            let min_len = SyntheticMedia::mp4_min_len(version);
            for size in [min_len, min_len + 1, 100_000] {
                let media = SyntheticMedia::mp4(size, NINE_HOURS, Mp4Layout::FastStart, version);
                let bytes = media.chunk(0, size as usize);
                assert_eq!(bytes.len() as u64, size);
                let mut at = 0;
                let mut types = Vec::new();
                while at < bytes.len() {
                    types.push(String::from_utf8_lossy(&bytes[at + 4..at + 8]).into_owned());
                    at += be_u32(&bytes, at) as usize;
                }
                assert_eq!(at, bytes.len());
                assert_eq!(types, ["ftyp", "moov", "mdat"]);
            }
        }
    }

    #[test]
    #[should_panic(expected = "needs at least")]
    fn an_mp4_smaller_than_its_boxes_is_refused() {
        let too_small = SyntheticMedia::mp4_min_len(0) - 1;
        SyntheticMedia::mp4(too_small, NINE_HOURS, Mp4Layout::FastStart, 0);
    }

    #[test]
    fn mdat_switches_to_largesize_when_it_outgrows_32_bits() {
        for layout in [Mp4Layout::FastStart, Mp4Layout::MoovAtEnd] {
            let ftyp_and_moov = SyntheticMedia::mp4_min_len(0) - 8;
            let mdat_header_at = match layout {
                Mp4Layout::FastStart => ftyp_and_moov as usize,
                Mp4Layout::MoovAtEnd => ftyp_box().len(),
            };
            let largest_small = ftyp_and_moov + u64::from(u32::MAX);
            let media = SyntheticMedia::mp4(largest_small, NINE_HOURS, layout, 0);
            let header = media.chunk(mdat_header_at as u64, 16);
            assert_eq!(be_u32(&header, 0), u32::MAX);
            assert_eq!(&header[4..8], b"mdat");

            let media = SyntheticMedia::mp4(largest_small + 1, NINE_HOURS, layout, 0);
            let header = media.chunk(mdat_header_at as u64, 16);
            assert_eq!(be_u32(&header, 0), 1);
            assert_eq!(&header[4..8], b"mdat");
            let large_size = u64::from_be_bytes(header[8..16].try_into().unwrap());
            assert_eq!(large_size, u64::from(u32::MAX) + 1);
        }
    }

    #[test]
    fn the_scanner_finds_exactly_the_configured_duration() {
        let durations = [
            Duration::from_millis(1),
            Duration::from_millis(61_500),
            NINE_HOURS,
        ];
        for size in [1000, 3 * FILLER_PERIOD as u64 + 1, 4 * GIB + 512 * MIB] {
            for layout in [Mp4Layout::FastStart, Mp4Layout::MoovAtEnd] {
                for version in [0, 1] {
                    for duration in durations {
                        let media = SyntheticMedia::mp4(size, duration, layout, version);
                        let verdict = scan(&media, FILLER_PERIOD);
                        assert_eq!(
                            verdict.duration(),
                            Some(duration),
                            "{size} bytes, {layout:?}, v{version}: {verdict:?}"
                        );
                        let expected_timescale = [MVHD_V0_TIMESCALE, MVHD_V1_TIMESCALE];
                        assert!(matches!(
                            verdict,
                            Mp4Verdict::Duration { timescale, .. }
                                if timescale == expected_timescale[usize::from(version)]
                        ));
                    }
                }
            }
        }
    }

    #[test]
    fn odd_chunk_sizes_find_the_same_duration() {
        for layout in [Mp4Layout::FastStart, Mp4Layout::MoovAtEnd] {
            let media = SyntheticMedia::mp4(200_000, NINE_HOURS, layout, 1);
            for step in [1, 3, 7, 4096, 65_537] {
                assert_eq!(scan(&media, step).duration(), Some(NINE_HOURS), "{step}");
            }
        }
    }

    #[test]
    fn not_mp4_is_rejected_at_any_size() {
        for size in [8, 100, 5 * FILLER_PERIOD as u64] {
            match scan(&SyntheticMedia::not_mp4(size), 4096) {
                Mp4Verdict::NotMp4 { reason } => assert!(reason.contains("<!DOCTYP"), "{reason}"),
                other => panic!("{size} bytes: {other:?}"),
            }
        }
        for size in [0, 5] {
            let verdict = scan(&SyntheticMedia::not_mp4(size), 4096);
            assert!(matches!(verdict, Mp4Verdict::NotMp4 { .. }), "{verdict:?}");
        }
        assert!(SyntheticMedia::not_mp4(0).is_empty());
        assert_eq!(SyntheticMedia::not_mp4(5).chunk(0, 100), &b"<!DOC"[..]);
    }
}
