//! Tests of the parent module.
use super::*;

use http_body_util::BodyExt as _;
use proptest::prelude::*;

fn part_bytes(part: &Part) -> Vec<u8> {
    part.chunks
        .iter()
        .flat_map(|chunk| chunk.iter().copied())
        .collect()
}

fn assemble(assembler: &mut PartAssembler, chunks: &[&[u8]]) -> Vec<Part> {
    let mut parts = Vec::new();
    for chunk in chunks {
        assembler.push(Bytes::copy_from_slice(chunk), &mut parts);
    }
    parts
}

fn summary(parts: &[Part]) -> Vec<(u32, u64, Vec<u8>)> {
    parts
        .iter()
        .map(|part| (part.number, part.offset, part_bytes(part)))
        .collect()
}

fn collect_body(body: PartBody) -> Bytes {
    futures::executor::block_on(body.collect())
        .expect("infallible")
        .to_bytes()
}

#[test]
fn part_size_for_unknown_size_uses_configured_clamped() {
    assert_eq!(part_size_for(0, DEFAULT_PART_SIZE), DEFAULT_PART_SIZE);
    assert_eq!(part_size_for(0, 0), MIN_PART_SIZE);
    assert_eq!(part_size_for(0, MIB), MIN_PART_SIZE);
    assert_eq!(part_size_for(0, 64 * MIB), 64 * MIB);
    assert_eq!(part_size_for(0, u64::MAX), MAX_PART_SIZE);
}

#[test]
fn part_size_for_boundaries() {
    assert_eq!(part_size_for(1, DEFAULT_PART_SIZE), DEFAULT_PART_SIZE);
    assert_eq!(part_size_for(1, 0), MIN_PART_SIZE);
    assert_eq!(part_size_for(3 * MIB, DEFAULT_PART_SIZE), DEFAULT_PART_SIZE);
    // Exactly MAX_PARTS parts of the configured size still fit ...
    let fits = MAX_PARTS * DEFAULT_PART_SIZE;
    assert_eq!(part_size_for(fits, DEFAULT_PART_SIZE), DEFAULT_PART_SIZE);
    // ... one byte more needs a bigger part, rounded up to the next MiB.
    assert_eq!(part_size_for(fits + 1, DEFAULT_PART_SIZE), 17 * MIB);
    assert_eq!(
        part_size_for(5 * 1024 * MIB, DEFAULT_PART_SIZE),
        DEFAULT_PART_SIZE
    );
    assert_eq!(part_size_for(5 * 1024 * MIB, MIN_PART_SIZE), MIN_PART_SIZE);
    // 50 GiB / 10,000 = 5.12 MiB.
    assert_eq!(part_size_for(50 * 1024 * MIB, MIN_PART_SIZE), 6 * MIB);
    assert_eq!(
        part_size_for(50 * 1024 * MIB, DEFAULT_PART_SIZE),
        DEFAULT_PART_SIZE
    );
    // A non-MiB configured size is rounded up once the file size is known.
    assert_eq!(part_size_for(MIB, 7_000_000), 7 * MIB);
}

#[test]
fn part_size_for_huge_values_is_clamped() {
    let largest_uploadable = MAX_PARTS * MAX_PART_SIZE;
    assert_eq!(
        part_size_for(largest_uploadable, DEFAULT_PART_SIZE),
        MAX_PART_SIZE
    );
    assert_eq!(part_size_for(largest_uploadable - MIB, 0), MAX_PART_SIZE);
    assert_eq!(
        part_size_for(largest_uploadable + 1, DEFAULT_PART_SIZE),
        MAX_PART_SIZE
    );
    assert_eq!(part_size_for(u64::MAX, DEFAULT_PART_SIZE), MAX_PART_SIZE);
    assert_eq!(part_size_for(u64::MAX, u64::MAX), MAX_PART_SIZE);
    assert_eq!(part_size_for(1, u64::MAX), MAX_PART_SIZE);
}

#[test]
fn chunks_exactly_at_boundaries_emit_parts_immediately() {
    let mut assembler = PartAssembler::new(4, 1, 0);
    let mut parts = Vec::new();
    assembler.push(Bytes::from_static(b"abcd"), &mut parts);
    assert_eq!(summary(&parts), vec![(1, 0, b"abcd".to_vec())]);
    assert_eq!(assembler.pending_len(), 0);
    assembler.push(Bytes::from_static(b"ef"), &mut parts);
    assembler.push(Bytes::from_static(b"gh"), &mut parts);
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[1].chunks.len(), 2);
    assert_eq!(assembler.offset(), 8);
    assert!(assembler.finish().is_none());
}

#[test]
fn straddling_chunks_are_split_at_boundaries() {
    let mut assembler = PartAssembler::new(4, 1, 0);
    let mut parts = assemble(&mut assembler, &[b"abc", b"def", b"ghi"]);
    assert_eq!(assembler.pending_len(), 1);
    assert_eq!(assembler.offset(), 9);
    parts.extend(assembler.finish());
    assert_eq!(
        summary(&parts),
        vec![
            (1, 0, b"abcd".to_vec()),
            (2, 4, b"efgh".to_vec()),
            (3, 8, b"i".to_vec())
        ]
    );
    let chunk_lens: Vec<Vec<usize>> = parts
        .iter()
        .map(|part| part.chunks.iter().map(Bytes::len).collect())
        .collect();
    assert_eq!(chunk_lens, vec![vec![3, 1], vec![2, 2], vec![1]]);
    assert_eq!(
        parts.iter().map(|part| part.len).collect::<Vec<_>>(),
        vec![4, 4, 1]
    );
}

#[test]
fn one_huge_chunk_spans_several_parts() {
    let mut assembler = PartAssembler::new(4, 1, 0);
    let mut parts = assemble(&mut assembler, &[b"0123456789a"]);
    assert_eq!(parts.len(), 2);
    parts.extend(assembler.finish());
    assert_eq!(
        summary(&parts),
        vec![
            (1, 0, b"0123".to_vec()),
            (2, 4, b"4567".to_vec()),
            (3, 8, b"89a".to_vec())
        ]
    );

    let mut assembler = PartAssembler::new(4, 1, 0);
    let parts = assemble(&mut assembler, &[b"x", b"0123456789a"]);
    assert_eq!(summary(&parts)[2], (3, 8, b"789a".to_vec()));
    assert!(assembler.finish().is_none());
}

#[test]
fn resume_continues_numbering_and_offsets() {
    let mut assembler = PartAssembler::new(4, 4, 12);
    assert_eq!(assembler.offset(), 12);
    let mut parts = assemble(&mut assembler, &[b"mnopqrst", b"", b"uv"]);
    assert_eq!(assembler.offset(), 22);
    parts.extend(assembler.finish());
    assert_eq!(
        summary(&parts),
        vec![
            (4, 12, b"mnop".to_vec()),
            (5, 16, b"qrst".to_vec()),
            (6, 20, b"uv".to_vec())
        ]
    );
}

#[test]
fn empty_chunks_are_ignored() {
    let mut assembler = PartAssembler::new(4, 1, 0);
    let parts = assemble(&mut assembler, &[b"", b"", b""]);
    assert!(parts.is_empty());
    assert_eq!(assembler.offset(), 0);
    assert!(assembler.finish().is_none());

    let mut assembler = PartAssembler::new(2, 1, 0);
    let mut parts = assemble(&mut assembler, &[b"a", b"", b"b", b""]);
    parts.extend(assembler.finish());
    assert_eq!(parts.len(), 1);
    assert!(parts[0].chunks.iter().all(|chunk| !chunk.is_empty()));
}

#[test]
fn parts_point_into_the_original_allocation() {
    let original = Bytes::from((0..10_000u32).map(|i| i as u8).collect::<Vec<u8>>());
    let start = original.as_ptr() as usize;
    let mut assembler = PartAssembler::new(1_000, 1, 0);
    let mut parts = Vec::new();
    let mut cut = 0;
    for chunk_len in [1, 999, 1_000, 1_500, 3_000, 7, 493, 3_000]
        .into_iter()
        .cycle()
    {
        let end = (cut + chunk_len).min(original.len());
        assembler.push(original.slice(cut..end), &mut parts);
        cut = end;
        if cut == original.len() {
            break;
        }
    }
    parts.extend(assembler.finish());
    assert_eq!(parts.len(), 10);
    for part in &parts {
        let mut expected_address = start + part.offset as usize;
        for chunk in part.chunks.iter() {
            assert_eq!(
                chunk.as_ptr() as usize,
                expected_address,
                "part {}",
                part.number
            );
            expected_address += chunk.len();
        }
        // The body hands out the very same memory.
        let mut body = part.body();
        let mut expected_address = start + part.offset as usize;
        while let Some(frame) = futures::executor::block_on(body.frame()) {
            let data = frame.expect("infallible").into_data().expect("data frame");
            assert_eq!(data.as_ptr() as usize, expected_address);
            expected_address += data.len();
        }
    }
}

#[test]
fn part_body_replays_the_part_any_number_of_times() {
    let mut assembler = PartAssembler::new(10, 1, 0);
    let parts = assemble(&mut assembler, &[b"abc", b"defg", b"hijklmn"]);
    let part = &parts[0];
    let expected = Bytes::from_static(b"abcdefghij");
    let first_body = part.body();
    let second_body = part.body();
    assert_eq!(collect_body(first_body), expected);
    assert_eq!(collect_body(second_body), expected);
    assert_eq!(collect_body(part.clone().body()), expected);
}

#[test]
fn part_body_size_hint_and_end_of_stream_track_progress() {
    let mut assembler = PartAssembler::new(10, 1, 0);
    let parts = assemble(&mut assembler, &[b"abc", b"defg", b"hijklmn"]);
    let mut body = parts[0].body();
    let mut remaining_sizes = vec![body.size_hint().exact()];
    assert!(!body.is_end_stream());
    while let Some(frame) = futures::executor::block_on(body.frame()) {
        assert!(frame.expect("infallible").is_data());
        remaining_sizes.push(body.size_hint().exact());
    }
    assert_eq!(remaining_sizes, vec![Some(10), Some(7), Some(3), Some(0)]);
    assert!(body.is_end_stream());

    let empty = Part {
        number: 1,
        offset: 0,
        len: 0,
        crc32c: 0,
        chunks: Arc::new([]),
    };
    assert!(empty.body().is_end_stream());
    assert_eq!(collect_body(empty.body()), Bytes::new());
}

#[test]
fn part_crc32c_matches_its_bytes_and_combines_to_the_object_crc32c() {
    let data: Vec<u8> = (0..5_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut assembler = PartAssembler::new(1_024, 1, 0);
    let mut parts = Vec::new();
    for chunk in data.chunks(300) {
        assembler.push(Bytes::copy_from_slice(chunk), &mut parts);
    }
    parts.extend(assembler.finish());
    assert_eq!(parts.len(), 5);
    for part in &parts {
        assert_eq!(part.crc32c, crc32c::crc32c(&part_bytes(part)));
    }
    let object_crc32c = combine_crc32c(parts.iter().map(|part| (part.crc32c, part.len)));
    assert_eq!(object_crc32c, crc32c::crc32c(&data));
    assert_eq!(combine_crc32c([]), crc32c::crc32c(b""));
}

#[test]
fn crc32c_base64_is_the_big_endian_checksum_header_value() {
    let mut assembler = PartAssembler::new(MIB, 1, 0);
    assembler.push(Bytes::from_static(b"Hello world!"), &mut Vec::new());
    let part = assembler.finish().expect("a pending part");
    assert_eq!(part.crc32c, 0x7B98_E751);
    assert_eq!(part.crc32c_base64(), "e5jnUQ==");
}

proptest! {
    #[test]
    fn any_chunking_reproduces_the_input_in_full_parts(
        data in proptest::collection::vec(any::<u8>(), 0..4_096),
        chunk_lens in proptest::collection::vec(0usize..600, 1..40),
        part_size in 1u64..700,
        first_part_number in 1u32..10_000,
        start_offset in 0u64..(1 << 40),
    ) {
        let mut assembler = PartAssembler::new(part_size, first_part_number, start_offset);
        let mut parts = Vec::new();
        let mut cut = 0;
        // Bounded, because the lengths may all be 0; the rest goes in one last chunk.
        let last_chunk_len = data.len();
        for chunk_len in chunk_lens.iter().cycle().take(100).chain([&last_chunk_len]) {
            let end = (cut + chunk_len).min(data.len());
            assembler.push(Bytes::copy_from_slice(&data[cut..end]), &mut parts);
            cut = end;
            prop_assert_eq!(assembler.offset(), start_offset + cut as u64);
        }
        prop_assert_eq!(cut, data.len());
        parts.extend(assembler.finish());

        let rebuilt: Vec<u8> = parts.iter().flat_map(part_bytes).collect();
        prop_assert_eq!(&rebuilt, &data);
        prop_assert_eq!(parts.len() as u64, (data.len() as u64).div_ceil(part_size));
        let mut expected_offset = start_offset;
        for (index, part) in parts.iter().enumerate() {
            prop_assert_eq!(part.number, first_part_number + index as u32);
            prop_assert_eq!(part.offset, expected_offset);
            prop_assert_eq!(part.len, part_bytes(part).len() as u64);
            prop_assert!(part.chunks.iter().all(|chunk| !chunk.is_empty()));
            prop_assert_eq!(part.crc32c, crc32c::crc32c(&part_bytes(part)));
            if index + 1 < parts.len() {
                prop_assert_eq!(part.len, part_size);
            } else {
                prop_assert!(part.len > 0 && part.len <= part_size);
            }
            expected_offset += part.len;
        }
        let object_crc32c = combine_crc32c(parts.iter().map(|part| (part.crc32c, part.len)));
        prop_assert_eq!(object_crc32c, crc32c::crc32c(&data));
    }

    #[test]
    fn part_size_for_is_the_smallest_valid_whole_mib(
        file_size in 1u64..=(MAX_PARTS * MAX_PART_SIZE),
        configured in prop_oneof![any::<u64>(), 0..=(64 * MIB)],
    ) {
        let part_size = part_size_for(file_size, configured);
        prop_assert!((MIN_PART_SIZE..=MAX_PART_SIZE).contains(&part_size));
        prop_assert_eq!(part_size % MIB, 0);
        prop_assert!(part_size >= configured.min(MAX_PART_SIZE));
        prop_assert!(file_size.div_ceil(part_size) <= MAX_PARTS);
        // One MiB less would break a rule.
        let smaller = part_size - MIB;
        prop_assert!(
            smaller < configured.max(MIN_PART_SIZE)
                || file_size.div_ceil(smaller) > MAX_PARTS
        );
    }
}
