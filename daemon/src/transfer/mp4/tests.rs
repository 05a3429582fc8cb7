//! Tests of the parent module.
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
    let page = b"<!DOCTYPE html><html><head><title>Zoom</title></head><body>Sign in</body></html>";
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

/// Scans `file` cut at `cuts` (chunk lengths, the last chunk takes the
/// rest), storing the scanner's state at every cut and carrying on from the
/// restored copy, as a transfer that breaks at each part boundary does.
fn scan_with_restores(file: &[u8], cuts: &[usize]) -> (Mp4Verdict, u64) {
    let mut scanner = Mp4Scanner::new();
    let mut rest = file;
    for &len in cuts {
        let (head, tail) = rest.split_at(len.min(rest.len()));
        scanner.feed(head);
        rest = tail;
        let stored = scanner.snapshot();
        // Offsets, at most 32 pending bytes and a short reason: never the file.
        assert!(
            stored.len() <= 256,
            "the state stays small: {} bytes",
            stored.len()
        );
        scanner = Mp4Scanner::restore(&stored).expect("a state the scanner wrote restores");
        assert_eq!(scanner.snapshot(), stored, "restoring loses nothing");
    }
    scanner.feed(rest);
    let seen = scanner.bytes_seen();
    (scanner.finish(), seen)
}

/// Part-sized cuts: from a few bytes (inside one header) to beyond the file.
fn part_cuts() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(prop_oneof![1usize..=20, 1usize..=300, 1usize..=5000], 0..60)
}

proptest! {
    #[test]
    fn a_scan_stored_and_restored_at_every_cut_matches_one_uninterrupted_scan(
        file in synthetic_file(),
        cuts in part_cuts(),
    ) {
        let whole = scan(&[&file]);
        prop_assert_eq!(scan_with_restores(&file, &cuts), (whole, file.len() as u64));
    }

    #[test]
    fn a_damaged_or_foreign_file_restored_at_every_cut_keeps_its_verdict(
        file in synthetic_file(),
        cut in any::<prop::sample::Index>(),
        garbage in prop::collection::vec(any::<u8>(), 0..64),
        foreign in any::<bool>(),
        cuts in part_cuts(),
    ) {
        let mut damaged = if foreign {
            garbage.clone()
        } else {
            file[..cut.index(file.len() + 1)].to_vec()
        };
        damaged.extend(garbage);
        let whole = scan(&[&damaged]);
        prop_assert_eq!(scan_with_restores(&damaged, &cuts), (whole, damaged.len() as u64));
    }

    #[test]
    fn a_damaged_state_is_refused_or_restored_whole_never_a_panic(
        file in synthetic_file(),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
        truncate in any::<bool>(),
    ) {
        let mut scanner = Mp4Scanner::new();
        scanner.feed(&file[..file.len() / 2]);
        let mut stored = scanner.snapshot();
        let at = at.index(stored.len());
        if truncate {
            stored.truncate(at);
            prop_assert!(Mp4Scanner::restore(&stored).is_err());
        } else {
            stored[at] ^= flip;
            if let Ok(restored) = Mp4Scanner::restore(&stored) {
                // A flipped offset or buffered byte can still decode; it must
                // then say exactly what it decoded, and carry on without panicking.
                prop_assert_eq!(restored.snapshot(), stored);
                let mut restored = restored;
                restored.feed(&file[file.len() / 2..]);
                let _ = restored.finish();
            }
        }
    }
}

#[test]
fn a_restored_scan_of_a_moov_at_end_file_finds_the_duration_after_the_break() {
    let nine_hours_ticks = 9 * 3600 * 90_000u64;
    let mut file = ftyp();
    file.extend(mdat(50_000));
    file.extend(moov(1, 90_000, nine_hours_ticks));
    let mut first = Mp4Scanner::new();
    first.feed(&file[..20_000]);
    assert_eq!(first.verdict(), None);
    let mut resumed = Mp4Scanner::restore(&first.snapshot()).unwrap();
    assert_eq!(resumed.bytes_seen(), 20_000);
    resumed.feed(&file[20_000..]);
    assert_eq!(resumed.duration(), Some(Duration::from_secs(9 * 3600)));
}

#[test]
fn states_from_elsewhere_are_refused_with_a_reason() {
    for (bytes, needle) in [
        (&b""[..], "truncated"),
        (&[9u8][..], "unknown version"),
        (&[1u8, 0, 0][..], "truncated"),
    ] {
        let error = Mp4Scanner::restore(bytes).unwrap_err();
        assert!(error.to_string().contains(needle), "{error}");
    }
    let mut stored = Mp4Scanner::new().snapshot();
    stored.push(0);
    assert_eq!(
        Mp4Scanner::restore(&stored).unwrap_err().to_string(),
        "stored MP4 scan state is unreadable: trailing bytes"
    );
}
