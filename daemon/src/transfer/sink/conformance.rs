//! The sink conformance suite: the checks every `ObjectSink` must pass,
//! written against `&dyn ObjectSink` so that the local folder, S3 and any
//! sink to come run the same checks unchanged. It owns the rules the trait
//! documents (nothing visible before `complete_upload`, an aborted upload
//! leaves nothing, re-uploading a part replaces it, listings by prefix) and
//! must never depend on a particular sink or server.
//!
//! Each sink runs the suite from its own tests: the local sink beside its
//! code, the S3 sink in the end-to-end tests against a real S3-protocol
//! server (which this crate does not carry). The `conformance` feature
//! exports the suite, and the part helpers its callers share, outside this
//! crate.

use std::sync::Arc;

use bytes::Bytes;

use super::{CompletedPart, ObjectSink, SinkError};
use crate::transfer::parts::{MIB, Part, PartAssembler};

/// What the suite needs to know about where a sink keeps finished objects.
pub type ReadObject<'a> = &'a (dyn Fn(&str) -> Option<Vec<u8>> + Sync);

/// Runs every check on one sink. `read_object` reads a finished object's
/// bytes from wherever the sink keeps them (`None` if there is none).
pub async fn run_all(sink: &dyn ObjectSink, read_object: ReadObject<'_>) {
    multipart_upload_completes_with_the_input_bytes(sink, read_object).await;
    aborted_upload_is_unknown_and_leaves_no_object(sink, read_object).await;
    unfinished_uploads_are_listed_by_prefix(sink).await;
    assert_eq!(
        sink.object_size("suite/never/written.mp4").await.unwrap(),
        None
    );
}

/// 3 × 5 MiB + a short tail, uploaded in parallel, with part 2 first sent
/// with the wrong bytes and then replaced.
pub async fn multipart_upload_completes_with_the_input_bytes(
    sink: &dyn ObjectSink,
    read_object: ReadObject<'_>,
) {
    let key = "suite/meeting-1/recording.mp4";
    let input = pseudo_random_bytes(3 * 5 * MIB as usize + 123_457, 7);
    let parts = cut_into_parts(&input, 5 * MIB);
    assert_eq!(parts.len(), 4);
    let upload_id = sink.create_upload(key, "video/mp4").await.unwrap();
    assert_eq!(sink.object_size(key).await.unwrap(), None);

    let wrong_part_2 = part_of(2, 5 * MIB, Bytes::from(vec![0xEE; 1_000_000]));
    let wrong_etag = sink
        .upload_part(key, &upload_id, &wrong_part_2)
        .await
        .unwrap();
    let held = sink.list_parts(key, &upload_id).await.unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(
        (held[0].part_number, held[0].size, held[0].etag.as_str()),
        (2, 1_000_000, wrong_etag.as_str())
    );

    let etags = futures::future::try_join_all(
        parts
            .iter()
            .map(|part| sink.upload_part(key, &upload_id, part)),
    )
    .await
    .unwrap();
    assert_ne!(etags[1], wrong_etag, "part 2 was replaced by other bytes");

    let held = sink.list_parts(key, &upload_id).await.unwrap();
    let expected: Vec<(u32, u64, &str)> = parts
        .iter()
        .zip(&etags)
        .map(|(part, etag)| (part.number, part.len, etag.as_str()))
        .collect();
    let listed: Vec<(u32, u64, &str)> = held
        .iter()
        .map(|held| (held.part_number, held.size, held.etag.as_str()))
        .collect();
    assert_eq!(listed, expected);
    // Not visible before completion.
    assert_eq!(sink.object_size(key).await.unwrap(), None);
    assert!(read_object(key).is_none());

    let completed: Vec<CompletedPart> = parts
        .iter()
        .zip(&etags)
        .map(|(part, etag)| CompletedPart {
            part_number: part.number,
            etag: etag.clone(),
            crc32c: part.crc32c,
        })
        .collect();
    sink.complete_upload(key, &upload_id, &completed)
        .await
        .unwrap();

    assert_eq!(
        sink.object_size(key).await.unwrap(),
        Some(input.len() as u64)
    );
    let stored = read_object(key).expect("the completed object");
    assert!(stored == input[..], "stored bytes differ from the input");
    // A completed upload is no longer unfinished.
    assert!(matches!(
        sink.list_parts(key, &upload_id).await,
        Err(SinkError::NoSuchUpload(_))
    ));
}

pub async fn aborted_upload_is_unknown_and_leaves_no_object(
    sink: &dyn ObjectSink,
    read_object: ReadObject<'_>,
) {
    let key = "suite/meeting-2/recording.mp4";
    let upload_id = sink.create_upload(key, "video/mp4").await.unwrap();
    let part = part_of(1, 0, pseudo_random_bytes(300_000, 9));
    sink.upload_part(key, &upload_id, &part).await.unwrap();
    assert_eq!(sink.list_parts(key, &upload_id).await.unwrap().len(), 1);

    sink.abort_upload(key, &upload_id).await.unwrap();

    let listed = sink.list_parts(key, &upload_id).await;
    assert!(
        matches!(listed, Err(SinkError::NoSuchUpload(_))),
        "{listed:?}"
    );
    let uploaded = sink.upload_part(key, &upload_id, &part).await;
    assert!(
        matches!(uploaded, Err(SinkError::NoSuchUpload(_))),
        "{uploaded:?}"
    );
    assert_eq!(sink.object_size(key).await.unwrap(), None);
    assert!(read_object(key).is_none());
    // Aborting twice, or an id the sink never issued, is not an error.
    sink.abort_upload(key, &upload_id).await.unwrap();
    let unknown = if sink.kind() == "local" {
        "0123456789abcdef0123456789abcdef".to_string()
    } else {
        "3f0a0b9e-0000-4000-8000-000000000000".to_string()
    };
    sink.abort_upload(key, &unknown).await.unwrap();
    assert!(
        !sink
            .list_uploads("suite/meeting-2/")
            .await
            .unwrap()
            .iter()
            .any(|u| u.upload_id == upload_id)
    );
}

/// Three uploads under one prefix (more than a server page) and one
/// elsewhere; only the three are listed.
pub async fn unfinished_uploads_are_listed_by_prefix(sink: &dyn ObjectSink) {
    let mut wanted = Vec::new();
    for key in [
        "suite/listing/a.mp4",
        "suite/listing/b.mp4",
        "suite/listing/b.mp4",
    ] {
        let upload_id = sink.create_upload(key, "video/mp4").await.unwrap();
        wanted.push((key.to_string(), upload_id));
    }
    let other_key = "suite/elsewhere/c.mp4";
    let other = sink.create_upload(other_key, "video/mp4").await.unwrap();

    let listed = sink.list_uploads("suite/listing/").await.unwrap();
    for upload in &listed {
        let age = upload
            .initiated
            .and_then(|t| std::time::SystemTime::now().duration_since(t).ok());
        assert!(
            age.is_some_and(|age| age < std::time::Duration::from_secs(60)),
            "each upload says when it started: {upload:?}"
        );
    }
    let mut listed: Vec<(String, String)> =
        listed.into_iter().map(|u| (u.key, u.upload_id)).collect();
    listed.sort();
    wanted.sort();
    assert_eq!(listed, wanted);

    for (key, upload_id) in wanted.iter().chain([&(other_key.to_string(), other)]) {
        sink.abort_upload(key, upload_id).await.unwrap();
    }
    assert_eq!(sink.list_uploads("suite/").await.unwrap(), Vec::new());
}

// --- parts and data ---------------------------------------------------------

/// Deterministic bytes that no two seeds share and no compressor shortens.
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Bytes {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    Bytes::from(bytes)
}

/// Cuts `input` as a download would: 64 KiB chunks, slices of one buffer.
pub fn cut_into_parts(input: &Bytes, part_size: u64) -> Vec<Part> {
    let mut assembler = PartAssembler::new(part_size, 1, 0);
    let mut parts = Vec::new();
    let mut offset = 0;
    while offset < input.len() {
        let end = (offset + 64 * 1024).min(input.len());
        assembler.push(input.slice(offset..end), &mut parts);
        offset = end;
    }
    parts.extend(assembler.finish());
    parts
}

pub fn part_of(number: u32, offset: u64, bytes: Bytes) -> Part {
    Part {
        number,
        offset,
        len: bytes.len() as u64,
        crc32c: crc32c::crc32c(&bytes),
        chunks: Arc::from(vec![bytes]),
    }
}
