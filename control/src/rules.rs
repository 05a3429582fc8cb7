//! The seed's rules for one Zoom meeting recording, as pure functions:
//! which segment, which view, and the caps. No I/O here, so every rule is
//! tested exhaustively (unit and property tests below).

use crate::model::SkipReason;
use crate::zoom::RecordingFileData;

/// Recording types in Ferry's default order (ZOOM.md), highest first.
pub const DEFAULT_VIEW_PRIORITY: [&str; 6] = [
    "shared_screen_with_speaker_view",
    "shared_screen_with_gallery_view",
    "speaker_view",
    "active_speaker",
    "gallery_view",
    "shared_screen",
];

/// The seed's caps: meetings over 8 hours, files over 5 GiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    pub max_duration_ms: i64,
    pub max_file_bytes: u64,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            max_duration_ms: 8 * 3600 * 1000,
            max_file_bytes: 5 * 1024 * 1024 * 1024,
        }
    }
}

/// The caps, with overrides for some Zoom accounts (e.g. a lower size cap
/// for one account while trying a new storage tier).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CapsPolicy {
    pub default: Caps,
    pub accounts: std::collections::HashMap<String, Caps>,
}

impl CapsPolicy {
    pub fn uniform(caps: Caps) -> Self {
        CapsPolicy {
            default: caps,
            accounts: Default::default(),
        }
    }

    /// The caps that hold for recordings of `zoom_account_id`.
    pub fn for_account(&self, zoom_account_id: &str) -> Caps {
        self.accounts
            .get(zoom_account_id)
            .copied()
            .unwrap_or(self.default)
    }
}

/// The first segment of a stop/start session: the files sharing the
/// smallest `recording_start`, and what was passed over.
#[derive(Debug, PartialEq, Eq)]
pub struct FirstSegment<'a> {
    pub files: Vec<&'a RecordingFileData>,
    pub skipped_file_count: u32,
    pub skipped_segment_count: u32,
}

impl FirstSegment<'_> {
    pub fn start(&self) -> crate::model::Timestamp {
        self.files[0].recording_start
    }
}

/// `None` when there are no files at all.
pub fn first_segment(files: &[RecordingFileData]) -> Option<FirstSegment<'_>> {
    let start = files.iter().map(|f| f.recording_start).min()?;
    let (first, later): (Vec<_>, Vec<_>) = files.iter().partition(|f| f.recording_start == start);
    let mut later_starts: Vec<_> = later.iter().map(|f| f.recording_start).collect();
    later_starts.sort();
    later_starts.dedup();
    Some(FirstSegment {
        files: first,
        skipped_file_count: later.len() as u32,
        skipped_segment_count: later_starts.len() as u32,
    })
}

/// `recording_type` without a trailing `(CC)` (any case, spaces allowed).
pub fn base_recording_type(recording_type: &str) -> &str {
    let trimmed = recording_type.trim();
    let lower = trimmed.to_ascii_lowercase();
    match lower.strip_suffix("(cc)") {
        Some(_) => trimmed[..trimmed.len() - 4].trim_end(),
        None => trimmed,
    }
}

/// The one file of a segment to copy: among completed MP4s, the
/// highest-priority view (types outside `priority` rank after it, by name);
/// without an MP4, a completed `audio_only` M4A. Ties go to the file without
/// `(CC)`, then to the smaller id, so the choice never depends on order.
pub fn choose_view<'a>(
    files: &[&'a RecordingFileData],
    priority: &[String],
) -> Option<&'a RecordingFileData> {
    let rank = |file: &RecordingFileData| {
        let base = base_recording_type(&file.recording_type);
        let position = if priority.is_empty() {
            DEFAULT_VIEW_PRIORITY
                .iter()
                .position(|t| t.eq_ignore_ascii_case(base))
        } else {
            priority.iter().position(|t| t.eq_ignore_ascii_case(base))
        };
        (
            position.unwrap_or(usize::MAX),
            base.to_ascii_lowercase(),
            base.len() != file.recording_type.trim().len(),
            file.id.clone(),
        )
    };
    let ready = || files.iter().copied().filter(|f| f.is_ready());
    ready()
        .filter(|f| f.file_type == "MP4")
        .min_by_key(|f| rank(f))
        .or_else(|| {
            ready()
                .filter(|f| {
                    f.file_type == "M4A"
                        && base_recording_type(&f.recording_type).eq_ignore_ascii_case("audio_only")
                })
                .min_by_key(|f| f.id.clone())
        })
}

/// The caps, from Zoom's metadata: the file's own length, the meeting's
/// `duration` when non-zero, and `file_size`. Exactly at a cap passes.
pub fn check_caps(
    file: &RecordingFileData,
    meeting_duration_minutes: u64,
    caps: &Caps,
) -> Option<SkipReason> {
    let file_ms = file
        .recording_end
        .map(|end| end.0 - file.recording_start.0)
        .unwrap_or(0);
    let meeting_ms = i64::try_from(meeting_duration_minutes)
        .unwrap_or(i64::MAX)
        .saturating_mul(60_000);
    if file_ms > caps.max_duration_ms
        || (meeting_duration_minutes > 0 && meeting_ms > caps.max_duration_ms)
    {
        return Some(SkipReason::TooLong);
    }
    if file.file_size > caps.max_file_bytes {
        return Some(SkipReason::TooLarge);
    }
    None
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::model::Timestamp;

    fn file(id: &str, start_s: i64, file_type: &str, recording_type: &str) -> RecordingFileData {
        RecordingFileData {
            id: id.into(),
            recording_start: Timestamp::from_unix_seconds(start_s),
            recording_end: Some(Timestamp::from_unix_seconds(start_s + 3600)),
            file_type: file_type.into(),
            file_extension: file_type.into(),
            file_size: 1000,
            download_url: Some(format!("https://zoom.us/rec/{id}")),
            status: "completed".into(),
            recording_type: recording_type.into(),
        }
    }

    #[test]
    fn first_segment_is_the_smallest_start_and_counts_the_rest() {
        let files = vec![
            file("late-1", 2000, "MP4", "speaker_view"),
            file("first-mp4", 1000, "MP4", "speaker_view"),
            file("first-chat", 1000, "CHAT", "chat_file"),
            file("late-2", 2000, "M4A", "audio_only"),
            file("later", 3000, "MP4", "speaker_view"),
        ];
        let segment = first_segment(&files).unwrap();
        let ids: Vec<&str> = segment.files.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, vec!["first-mp4", "first-chat"]);
        assert_eq!(
            (segment.skipped_file_count, segment.skipped_segment_count),
            (3, 2)
        );
        assert_eq!(segment.start(), Timestamp::from_unix_seconds(1000));
        assert!(first_segment(&[]).is_none());
    }

    #[test]
    fn view_priority_follows_the_default_order_after_stripping_cc() {
        let files = [
            file("g", 0, "MP4", "gallery_view"),
            file("s", 0, "MP4", "speaker_view(CC)"),
            file("a", 0, "M4A", "audio_only"),
            file("ss", 0, "MP4", "shared_screen"),
        ];
        let refs: Vec<_> = files.iter().collect();
        assert_eq!(choose_view(&refs, &[]).unwrap().id, "s");
        let custom = vec!["gallery_view".to_string(), "speaker_view".to_string()];
        assert_eq!(choose_view(&refs, &custom).unwrap().id, "g");
    }

    #[test]
    fn processing_files_are_never_chosen_and_audio_is_the_fallback() {
        let mut best = file("best", 0, "MP4", "shared_screen_with_speaker_view");
        best.status = "processing".into();
        let files = [
            best,
            file("audio", 0, "M4A", "audio_only"),
            file("chat", 0, "CHAT", "chat_file"),
        ];
        let refs: Vec<_> = files.iter().collect();
        assert_eq!(choose_view(&refs, &[]).unwrap().id, "audio");
        let mut audio = file("audio", 0, "M4A", "audio_only");
        audio.status = "processing".into();
        let none = [audio, file("t", 0, "TRANSCRIPT", "audio_transcript")];
        let refs: Vec<_> = none.iter().collect();
        assert!(choose_view(&refs, &[]).is_none());
    }

    #[test]
    fn unknown_views_rank_after_known_ones_and_cc_loses_ties() {
        let files = [
            file("x", 0, "MP4", "some_future_view"),
            file("cc", 0, "MP4", "active_speaker (CC)"),
            file("plain", 0, "MP4", "active_speaker"),
        ];
        let refs: Vec<_> = files.iter().collect();
        assert_eq!(choose_view(&refs, &[]).unwrap().id, "plain");
        assert_eq!(base_recording_type("Speaker_View(cc)"), "Speaker_View");
        assert_eq!(base_recording_type("gallery_view"), "gallery_view");
    }

    #[test]
    fn caps_pass_exactly_at_the_limit_and_fail_one_past_it() {
        let caps = Caps::default();
        let mut f = file("f", 0, "MP4", "speaker_view");
        f.recording_end = Some(Timestamp::from_unix_seconds(8 * 3600));
        assert_eq!(check_caps(&f, 0, &caps), None);
        f.recording_end = Some(Timestamp::from_unix_seconds(8 * 3600 + 1));
        assert_eq!(check_caps(&f, 0, &caps), Some(SkipReason::TooLong));
        f.recording_end = Some(Timestamp::from_unix_seconds(60));
        assert_eq!(check_caps(&f, 480, &caps), None);
        assert_eq!(check_caps(&f, 481, &caps), Some(SkipReason::TooLong));
        f.file_size = 5_368_709_120;
        assert_eq!(check_caps(&f, 0, &caps), None);
        f.file_size = 5_368_709_121;
        assert_eq!(check_caps(&f, 0, &caps), Some(SkipReason::TooLarge));
    }

    fn arb_file() -> impl Strategy<Value = RecordingFileData> {
        let types =
            prop::sample::select(vec!["MP4", "M4A", "CHAT", "TRANSCRIPT", "CC", "TIMELINE"]);
        let views = prop::sample::select(vec![
            "shared_screen_with_speaker_view",
            "shared_screen_with_gallery_view",
            "speaker_view",
            "active_speaker",
            "gallery_view",
            "shared_screen",
            "audio_only",
            "chat_file",
            "other_view",
        ]);
        (
            "[a-f0-9]{1,6}",
            0i64..4,
            types,
            views,
            any::<bool>(),
            prop::sample::select(vec!["completed", "processing", ""]),
        )
            .prop_map(|(id, segment, file_type, view, cc, status)| {
                let mut f = file(&id, 1000 + segment * 600, file_type, view);
                if cc {
                    f.recording_type.push_str("(CC)");
                }
                f.status = status.into();
                f
            })
    }

    proptest! {
        #[test]
        fn first_segment_partitions_the_files(files in prop::collection::vec(arb_file(), 0..12)) {
            match first_segment(&files) {
                None => prop_assert!(files.is_empty()),
                Some(segment) => {
                    let start = segment.start();
                    prop_assert!(files.iter().all(|f| f.recording_start >= start));
                    prop_assert!(segment.files.iter().all(|f| f.recording_start == start));
                    prop_assert_eq!(segment.files.len() + segment.skipped_file_count as usize, files.len());
                    let mut starts: Vec<_> = files.iter().map(|f| f.recording_start).collect();
                    starts.sort();
                    starts.dedup();
                    prop_assert_eq!(segment.skipped_segment_count as usize, starts.len() - 1);
                }
            }
        }

        #[test]
        fn the_chosen_view_is_ready_media_and_no_ready_mp4_ranks_higher(
            files in prop::collection::vec(arb_file(), 0..10),
        ) {
            let refs: Vec<_> = files.iter().collect();
            let rank = |f: &RecordingFileData| DEFAULT_VIEW_PRIORITY
                .iter()
                .position(|t| *t == base_recording_type(&f.recording_type))
                .unwrap_or(usize::MAX);
            match choose_view(&refs, &[]) {
                Some(chosen) => {
                    prop_assert!(chosen.is_ready());
                    prop_assert!(chosen.file_type == "MP4" || chosen.file_type == "M4A");
                    let ready_mp4: Vec<_> = files.iter().filter(|f| f.is_ready() && f.file_type == "MP4").collect();
                    if chosen.file_type == "M4A" {
                        prop_assert!(ready_mp4.is_empty());
                        prop_assert_eq!(base_recording_type(&chosen.recording_type), "audio_only");
                    } else {
                        prop_assert!(ready_mp4.iter().all(|f| rank(f) >= rank(chosen)));
                    }
                    // The choice does not depend on the order files arrive in.
                    let mut reversed = refs.clone();
                    reversed.reverse();
                    prop_assert_eq!(choose_view(&reversed, &[]).map(|f| &f.id), Some(&chosen.id));
                }
                None => prop_assert!(!files.iter().any(|f| f.is_ready()
                    && (f.file_type == "MP4"
                        || (f.file_type == "M4A" && base_recording_type(&f.recording_type) == "audio_only")))),
            }
        }

        #[test]
        fn caps_match_their_definition(
            length_s in 0i64..40_000,
            minutes in 0u64..700,
            size in 0u64..6_000_000_000,
        ) {
            let caps = Caps::default();
            let mut f = file("f", 0, "MP4", "speaker_view");
            f.recording_end = Some(Timestamp::from_unix_seconds(length_s));
            f.file_size = size;
            let too_long = length_s > 8 * 3600 || minutes > 480;
            let expected = if too_long {
                Some(SkipReason::TooLong)
            } else if size > 5 * 1024 * 1024 * 1024 {
                Some(SkipReason::TooLarge)
            } else {
                None
            };
            prop_assert_eq!(check_caps(&f, minutes, &caps), expected);
        }
    }
}
