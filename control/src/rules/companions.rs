//! The companion files' rules: which files belong with the chosen video
//! (the transcript, captions and chat of its segment), and the two checks a
//! companion's bytes must pass while they stream: under the companion size
//! cap whatever Zoom announced, and text (valid UTF-8 without NUL bytes;
//! WebVTT kinds start with `WEBVTT`). Pure, so the engine, the tests and the
//! property tests share one answer; the messages are what a job shows.

use crate::model::CompanionKind;
use crate::zoom::RecordingFileData;

/// The companions of `chosen` among `files`: the completed, downloadable
/// `TRANSCRIPT`, `CC` and `CHAT` files that start with it (the same
/// segment), one per kind (the smallest id when Zoom lists two), in kind
/// order, so the answer never depends on the order of `files`.
pub fn choose_companions<'a>(
    files: &'a [RecordingFileData],
    chosen: &RecordingFileData,
) -> Vec<(CompanionKind, &'a RecordingFileData)> {
    let mut chosen_companions: Vec<(CompanionKind, &RecordingFileData)> = Vec::new();
    for file in files {
        let Some(kind) = CompanionKind::of_file_type(&file.file_type) else {
            continue;
        };
        if file.recording_start != chosen.recording_start
            || !file.is_ready()
            || file.download_url.as_deref().is_none_or(str::is_empty)
        {
            continue;
        }
        match chosen_companions.iter_mut().find(|(k, _)| *k == kind) {
            Some(slot) if file.id < slot.1.id => slot.1 = file,
            Some(_) => {}
            None => chosen_companions.push((kind, file)),
        }
    }
    chosen_companions.sort_by_key(|(kind, _)| *kind);
    chosen_companions
}

/// The companion cap on the bytes received so far (or declared by the
/// answer's `Content-Length`): exactly at the cap passes.
pub fn check_companion_size(
    kind: CompanionKind,
    received_bytes: u64,
    announced_bytes: u64,
    max_bytes: u64,
) -> Result<(), String> {
    if received_bytes <= max_bytes {
        return Ok(());
    }
    Err(format!(
        "the {} file passed the {max_bytes}-byte companion cap ([companions] max_bytes; zoom \
         announced {announced_bytes} bytes); it was not copied",
        kind.as_str()
    ))
}

/// Bytes a WebVTT header check needs: a UTF-8 BOM, `WEBVTT` and the byte
/// after it.
const VTT_HEAD_BYTES: usize = 3 + 6 + 1;

/// Whether a companion's bytes are text, fed in whatever chunks they
/// arrive: the verdict on the whole file is the same however it is split.
#[derive(Clone, Debug)]
pub struct TextCheck {
    kind: CompanionKind,
    /// The start of an UTF-8 sequence cut by a chunk boundary (at most 3 bytes).
    carry: Vec<u8>,
    /// The file's first bytes, until the WebVTT header is decided.
    head: Vec<u8>,
    head_checked: bool,
}

impl TextCheck {
    pub fn new(kind: CompanionKind) -> Self {
        TextCheck {
            kind,
            carry: Vec::new(),
            head: Vec::new(),
            head_checked: !kind.is_vtt(),
        }
    }

    /// Checks the next bytes of the file.
    pub fn push(&mut self, mut bytes: &[u8]) -> Result<(), String> {
        if bytes.contains(&0) {
            return Err(self.not_text("it holds NUL bytes"));
        }
        if !self.head_checked {
            let take = (VTT_HEAD_BYTES - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..take]);
            if self.head.len() == VTT_HEAD_BYTES {
                self.check_head()?;
            }
        }
        // First complete a character that the last chunk cut.
        while !self.carry.is_empty() && !bytes.is_empty() {
            self.carry.push(bytes[0]);
            bytes = &bytes[1..];
            match std::str::from_utf8(&self.carry) {
                Ok(_) => self.carry.clear(),
                Err(e) if e.error_len().is_none() => {}
                Err(_) => return Err(self.not_text("it is not valid UTF-8")),
            }
        }
        match std::str::from_utf8(bytes) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                self.carry.extend_from_slice(&bytes[e.valid_up_to()..]);
                Ok(())
            }
            Err(_) => Err(self.not_text("it is not valid UTF-8")),
        }
    }

    /// The verdict at the end of the file.
    pub fn finish(mut self) -> Result<(), String> {
        if !self.carry.is_empty() {
            return Err(self.not_text("it ends inside a UTF-8 character"));
        }
        if !self.head_checked {
            self.check_head()?;
        }
        Ok(())
    }

    fn check_head(&mut self) -> Result<(), String> {
        self.head_checked = true;
        let head = self
            .head
            .strip_prefix(b"\xEF\xBB\xBF")
            .unwrap_or(&self.head);
        let header = head.strip_prefix(b"WEBVTT");
        match header.and_then(|rest| rest.first()) {
            None if header.is_some() => Ok(()),
            Some(b' ' | b'\t' | b'\n' | b'\r') => Ok(()),
            _ => Err(self.not_text("it does not start with the WEBVTT header")),
        }
    }

    fn not_text(&self, why: &str) -> String {
        format!(
            "the {} file is not {}: {why}; it was not copied",
            self.kind.as_str(),
            if self.kind.is_vtt() {
                "a WebVTT text file"
            } else {
                "text"
            }
        )
    }
}

/// The whole-file verdict of `TextCheck`, for one buffer.
pub fn check_companion_text(kind: CompanionKind, bytes: &[u8]) -> Result<(), String> {
    let mut check = TextCheck::new(kind);
    check.push(bytes)?;
    check.finish()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::model::Timestamp;

    fn file(id: &str, start_s: i64, file_type: &str) -> RecordingFileData {
        RecordingFileData {
            id: id.into(),
            recording_start: Timestamp::from_unix_seconds(start_s),
            recording_end: Some(Timestamp::from_unix_seconds(start_s + 3600)),
            file_type: file_type.into(),
            file_extension: if file_type == "CHAT" { "TXT" } else { "VTT" }.into(),
            file_size: 1000,
            download_url: Some(format!("https://zoom.us/rec/{id}")),
            status: "completed".into(),
            recording_type: String::new(),
        }
    }

    fn kinds_and_ids(
        chosen: &[(CompanionKind, &RecordingFileData)],
    ) -> Vec<(CompanionKind, String)> {
        chosen.iter().map(|(k, f)| (*k, f.id.clone())).collect()
    }

    #[test]
    fn the_chosen_segments_transcript_captions_and_chat_are_companions() {
        let video = file("video", 1000, "MP4");
        let files = vec![
            video.clone(),
            file("chat", 1000, "CHAT"),
            file("cc", 1000, "CC"),
            file("transcript", 1000, "TRANSCRIPT"),
            file("later-transcript", 2000, "TRANSCRIPT"),
            file("timeline", 1000, "TIMELINE"),
            file("summary", 1000, "SUMMARY"),
        ];
        assert_eq!(
            kinds_and_ids(&choose_companions(&files, &video)),
            vec![
                (CompanionKind::Transcript, "transcript".into()),
                (CompanionKind::ClosedCaptions, "cc".into()),
                (CompanionKind::Chat, "chat".into()),
            ]
        );
    }

    #[test]
    fn files_not_ready_or_without_a_url_are_not_companions() {
        let video = file("video", 1000, "MP4");
        let mut processing = file("transcript", 1000, "TRANSCRIPT");
        processing.status = "processing".into();
        let mut no_url = file("cc", 1000, "CC");
        no_url.download_url = None;
        let mut empty_url = file("chat", 1000, "CHAT");
        empty_url.download_url = Some(String::new());
        let files = vec![video.clone(), processing, no_url, empty_url];
        assert!(choose_companions(&files, &video).is_empty());
    }

    #[test]
    fn two_files_of_one_kind_give_the_smaller_id() {
        let video = file("video", 1000, "MP4");
        let files = vec![file("b", 1000, "CHAT"), file("a", 1000, "CHAT")];
        assert_eq!(
            kinds_and_ids(&choose_companions(&files, &video)),
            vec![(CompanionKind::Chat, "a".into())]
        );
    }

    #[test]
    fn the_size_cap_passes_exactly_at_the_cap() {
        let kind = CompanionKind::Transcript;
        assert!(check_companion_size(kind, 100, 10, 100).is_ok());
        let refused = check_companion_size(kind, 101, 10, 100).unwrap_err();
        assert!(refused.contains("100-byte companion cap"), "{refused}");
        assert!(refused.contains("transcript"), "{refused}");
    }

    #[test]
    fn webvtt_needs_its_header_and_chat_only_text() {
        use CompanionKind::*;
        assert!(
            check_companion_text(Transcript, b"WEBVTT\n\n1\n00:00.000 --> 00:01.000\nhi\n").is_ok()
        );
        assert!(check_companion_text(ClosedCaptions, b"\xEF\xBB\xBFWEBVTT - captions\n").is_ok());
        assert!(check_companion_text(Transcript, b"WEBVTT").is_ok());
        assert!(check_companion_text(Transcript, b"WEBVTTX\n").is_err());
        assert!(check_companion_text(Transcript, b"1\n00:00.000 --> 00:01.000\n").is_err());
        assert!(check_companion_text(Transcript, b"").is_err());
        assert!(check_companion_text(Chat, b"").is_ok());
        assert!(check_companion_text(Chat, "10:00:01 From Élisa : bonjour ✓\n".as_bytes()).is_ok());
        let binary = check_companion_text(Chat, b"\x00\x00\x00\x18ftypmp42").unwrap_err();
        assert!(binary.contains("NUL"), "{binary}");
        let latin1 = check_companion_text(Chat, b"caf\xE9\n").unwrap_err();
        assert!(latin1.contains("UTF-8"), "{latin1}");
        assert!(check_companion_text(Chat, "✓".as_bytes().split_at(2).0).is_err());
    }

    fn any_kind() -> impl Strategy<Value = CompanionKind> {
        proptest::sample::select(CompanionKind::ALL.to_vec())
    }

    fn any_file() -> impl Strategy<Value = RecordingFileData> {
        (
            "[a-d]{1,2}",
            prop_oneof![Just(1000i64), Just(2000i64)],
            prop_oneof![
                Just("MP4"),
                Just("TRANSCRIPT"),
                Just("CC"),
                Just("CHAT"),
                Just("TIMELINE")
            ],
            any::<bool>(),
        )
            .prop_map(|(id, start, file_type, ready)| {
                let mut f = file(&id, start, file_type);
                if !ready {
                    f.status = "processing".into();
                }
                f
            })
    }

    proptest! {
        #[test]
        fn companions_never_depend_on_order_and_stay_in_the_segment(
            files in proptest::collection::vec(any_file(), 0..12),
            seed in any::<u64>(),
        ) {
            let video = file("video", 1000, "MP4");
            let chosen = kinds_and_ids(&choose_companions(&files, &video));
            let mut shuffled = files.clone();
            let len = shuffled.len().max(1) as u64;
            for i in 0..shuffled.len() {
                let j = ((seed.wrapping_mul(i as u64 + 7)) % len) as usize;
                shuffled.swap(i, j);
            }
            prop_assert_eq!(&kinds_and_ids(&choose_companions(&shuffled, &video)), &chosen);
            let mut kinds: Vec<_> = chosen.iter().map(|(k, _)| *k).collect();
            kinds.dedup();
            prop_assert_eq!(kinds.len(), chosen.len(), "one companion per kind");
            for (kind, id) in &chosen {
                let listed = files.iter().filter(|f| &f.id == id
                    && CompanionKind::of_file_type(&f.file_type) == Some(*kind)
                    && f.is_ready() && f.recording_start == video.recording_start);
                prop_assert!(listed.count() > 0);
            }
        }

        #[test]
        fn the_text_verdict_does_not_depend_on_how_the_bytes_are_cut(
            kind in any_kind(),
            text in prop_oneof![
                "WEBVTT\n[\\PC\n]{0,40}".prop_map(String::into_bytes),
                "[\\PC\n]{0,40}".prop_map(String::into_bytes),
                proptest::collection::vec(any::<u8>(), 0..40),
            ],
            cuts in proptest::collection::vec(any::<usize>(), 0..6),
        ) {
            let whole = check_companion_text(kind, &text).is_ok();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (text.len() + 1)).collect();
            cuts.sort();
            let mut check = TextCheck::new(kind);
            let mut from = 0;
            let mut verdict = Ok(());
            for cut in cuts.into_iter().chain([text.len()]) {
                verdict = verdict.and_then(|()| check.push(&text[from..cut]));
                from = cut;
            }
            let chunked = verdict.and_then(|()| check.finish()).is_ok();
            prop_assert_eq!(chunked, whole);
            if whole && !kind.is_vtt() {
                prop_assert!(std::str::from_utf8(&text).is_ok());
            }
        }
    }
}
