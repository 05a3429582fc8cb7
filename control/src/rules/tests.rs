//! The rules' unit and property tests.

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
    let types = prop::sample::select(vec!["MP4", "M4A", "CHAT", "TRANSCRIPT", "CC", "TIMELINE"]);
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

const BY_HAND: &str = "download it from zoom and upload it by hand";

#[test]
fn only_paid_plans_install_and_the_refusal_names_the_plan() {
    for plan in ZoomPlan::ALL {
        assert_eq!(check_plan_can_install(plan).is_ok(), plan != ZoomPlan::Free);
    }
    assert_eq!(
        check_plan_can_install(ZoomPlan::Free)
            .unwrap_err()
            .to_string(),
        "plan: zoom free accounts cannot install Ferry; a paid plan (pro, business, education, \
         api or enterprise) is required"
    );
}

#[test]
fn a_recording_made_at_the_install_passes_and_one_before_it_is_skipped() {
    let installed = Timestamp::from_unix_seconds(1_700_000_000);
    assert_eq!(
        check_recorded_after_install(installed, "acct", installed),
        Ok(())
    );
    let before = Timestamp(installed.0 - 1);
    let skip = check_recorded_after_install(before, "acct", installed).unwrap_err();
    assert_eq!(skip.reason, SkipReason::RecordedBeforeInstall);
    assert_eq!(
        skip.message,
        format!(
            "recording started at {before}, before zoom account acct was installed at {installed}"
        )
    );
}

#[test]
fn the_host_is_matched_by_its_normalised_email_or_skipped_with_it() {
    assert_eq!(
        host_match_key("  Elisa@Example.EDU \t"),
        "elisa@example.edu"
    );
    assert_eq!(check_host_match("a@b.edu", Some(7)), Ok(7));
    let skip = check_host_match::<u32>("a@b.edu", None).unwrap_err();
    assert_eq!(skip.reason, SkipReason::NoMatchingUser);
    assert_eq!(
        skip.message,
        "no active user has the email or alternate zoom email a@b.edu; add or fix the user, then \
         retry the job"
    );
}

#[test]
fn metadata_caps_say_how_long_or_large_and_what_to_do() {
    let caps = Caps::default();
    let mut f = file("f", 0, "MP4", "speaker_view");
    f.recording_end = Some(Timestamp::from_unix_seconds(60));
    assert_eq!(check_metadata_caps(&f, 480, &caps), Ok(()));
    let skip = check_metadata_caps(&f, 481, &caps).unwrap_err();
    assert_eq!(skip.reason, SkipReason::TooLong);
    assert_eq!(
        skip.message,
        format!("the recording lasts 8h01m00s, longer than the 8h00m00s cap; {BY_HAND}")
    );
    f.recording_end = Some(Timestamp::from_unix_seconds(9 * 3600 + 61));
    let skip = check_metadata_caps(&f, 481, &caps).unwrap_err();
    assert!(skip.message.contains("lasts 9h01m01s"), "{}", skip.message);
    f.recording_end = Some(Timestamp::from_unix_seconds(60));
    f.file_size = 5_368_709_121;
    let skip = check_metadata_caps(&f, 0, &caps).unwrap_err();
    assert_eq!(skip.reason, SkipReason::TooLarge);
    assert_eq!(
        skip.message,
        format!("the file is 5368709121 bytes, larger than the 5368709120-byte cap; {BY_HAND}")
    );
    assert_eq!(duration_text(-5), "0h00m00s");
}

#[test]
fn streamed_caps_pass_exactly_at_the_limit_with_the_stream_messages() {
    let caps = Caps {
        max_duration_ms: 60_000,
        max_file_bytes: 1000,
    };
    assert_eq!(check_streamed_size(1000, 900, &caps), Ok(()));
    let skip = check_streamed_size(1001, 900, &caps).unwrap_err();
    assert_eq!(skip.reason, SkipReason::TooLarge);
    assert_eq!(
        skip.message,
        format!(
            "the download passed the 1000-byte cap while streaming (zoom announced 900 bytes); \
             {BY_HAND}"
        )
    );
    assert_eq!(check_declared_size(400, 600, 900, &caps), Ok(()));
    let skip = check_declared_size(400, 601, 900, &caps).unwrap_err();
    assert_eq!(skip.reason, SkipReason::TooLarge);
    assert_eq!(
        skip.message,
        format!(
            "the download's Content-Length makes the file 1001 bytes, larger than the 1000-byte \
             cap (zoom announced 900 bytes); nothing of it was streamed; {BY_HAND}"
        )
    );
    assert!(check_declared_size(u64::MAX, u64::MAX, 0, &caps).is_err());
    assert_eq!(check_streamed_duration(60_000, &caps), Ok(()));
    let skip = check_streamed_duration(61_999, &caps).unwrap_err();
    assert_eq!(skip.reason, SkipReason::TooLong);
    assert_eq!(
        skip.message,
        format!(
            "the MP4 says it lasts 61 s, longer than the 60 s cap (found while streaming); {BY_HAND}"
        )
    );
    // A duration past i64's range is over any cap, not wrapped below it.
    assert!(check_streamed_duration(u64::MAX, &Caps::default()).is_err());
}

proptest! {
    #[test]
    fn the_install_rule_is_a_strict_order(start in any::<i64>(), installed in any::<i64>()) {
        let verdict = check_recorded_after_install(Timestamp(start), "a", Timestamp(installed));
        prop_assert_eq!(verdict.is_ok(), start >= installed);
        if let Err(skip) = verdict {
            prop_assert_eq!(skip.reason, SkipReason::RecordedBeforeInstall);
            prop_assert!(skip.message.contains("zoom account a was installed at"));
        }
    }

    #[test]
    fn host_keys_ignore_case_and_surrounding_space(email in "[A-Za-z0-9._]{1,12}@[A-Za-z0-9.]{1,12}", pad in "[ \t]{0,3}") {
        let key = host_match_key(&email);
        prop_assert_eq!(&host_match_key(&format!("{pad}{}{pad}", email.to_ascii_uppercase())), &key);
        prop_assert_eq!(&host_match_key(&key), &key);
        let skip = check_host_match::<()>(&key, None).unwrap_err();
        prop_assert_eq!(skip.reason, SkipReason::NoMatchingUser);
        prop_assert!(skip.message.contains(&key));
    }

    #[test]
    fn metadata_caps_skip_exactly_when_check_caps_does(
        length_s in 0i64..40_000,
        minutes in 0u64..700,
        size in 0u64..6_000_000_000,
    ) {
        let caps = Caps::default();
        let mut f = file("f", 0, "MP4", "speaker_view");
        f.recording_end = Some(Timestamp::from_unix_seconds(length_s));
        f.file_size = size;
        let verdict = check_metadata_caps(&f, minutes, &caps);
        prop_assert_eq!(verdict.as_ref().err().map(|s| s.reason), check_caps(&f, minutes, &caps));
        if let Err(skip) = verdict {
            prop_assert!(skip.message.ends_with(BY_HAND));
        }
    }

    #[test]
    fn streamed_caps_match_their_definition(
        received in any::<u64>(),
        announced in any::<u64>(),
        duration_ms in any::<u64>(),
        max_file_bytes in 1u64..u64::MAX,
        max_duration_ms in 1i64..i64::MAX,
    ) {
        let caps = Caps { max_duration_ms, max_file_bytes };
        let size = check_streamed_size(received, announced, &caps);
        prop_assert_eq!(size.is_ok(), received <= max_file_bytes);
        if let Err(skip) = size {
            prop_assert_eq!(skip.reason, SkipReason::TooLarge);
            let announced_text = format!("zoom announced {announced} bytes");
            prop_assert!(skip.message.contains(&announced_text));
        }
        // A declared length is refused exactly when streaming all of it
        // would be; it never refuses what the stream would let through.
        let first_byte = received / 2;
        let declared = check_declared_size(first_byte, received - first_byte, announced, &caps);
        prop_assert_eq!(declared.is_ok(), received <= max_file_bytes);
        if let Err(skip) = declared {
            prop_assert_eq!(skip.reason, SkipReason::TooLarge);
            prop_assert!(skip.message.ends_with(BY_HAND));
        }
        let duration = check_streamed_duration(duration_ms, &caps);
        prop_assert_eq!(duration.is_ok(), u128::from(duration_ms) <= max_duration_ms as u128);
        if let Err(skip) = duration {
            prop_assert_eq!(skip.reason, SkipReason::TooLong);
            prop_assert!(skip.message.ends_with(BY_HAND));
        }
    }
}

#[test]
fn ingest_choice_follows_the_mode_and_the_users_say() {
    use crate::model::{IngestChoice as C, IngestMode as M};
    let verdict = |mode, choice| check_ingest_choice(mode, choice, "ada@example.edu", "Main");
    assert_eq!(verdict(M::AllMatchingUsers, C::Default), Ok(()));
    assert_eq!(verdict(M::AllMatchingUsers, C::OptedIn), Ok(()));
    assert_eq!(verdict(M::OptedInUsers, C::OptedIn), Ok(()));
    let out = verdict(M::AllMatchingUsers, C::OptedOut).unwrap_err();
    assert_eq!(out.reason, SkipReason::UserOptedOut);
    assert!(
        out.message.contains("ada@example.edu opted out"),
        "{}",
        out.message
    );
    assert!(out.message.contains("ingest_choice to default or opted_in"));
    let not_in = verdict(M::OptedInUsers, C::Default).unwrap_err();
    assert_eq!(not_in.reason, SkipReason::UserOptedOut);
    assert!(
        not_in
            .message
            .contains("configuration Main ingests only users who opted in")
    );
    assert!(not_in.message.contains("ingest_mode to all_matching_users"));
    assert_eq!(
        verdict(M::OptedInUsers, C::OptedOut).unwrap_err().reason,
        SkipReason::UserOptedOut
    );
}

fn any_ingest_mode() -> impl Strategy<Value = crate::model::IngestMode> {
    proptest::sample::select(crate::model::IngestMode::ALL.to_vec())
}

fn any_ingest_choice() -> impl Strategy<Value = crate::model::IngestChoice> {
    proptest::sample::select(crate::model::IngestChoice::ALL.to_vec())
}

proptest! {
    /// Opting out always wins, opting in always passes, and a user who
    /// said nothing follows the mode; every refusal says how to change it.
    #[test]
    fn ingest_choice_rule_holds_for_every_mode_and_choice(
        mode in any_ingest_mode(),
        choice in any_ingest_choice(),
        user in "[a-z]{1,8}@[a-z]{1,8}\\.edu",
        configuration in "[A-Za-z ]{1,20}",
    ) {
        use crate::model::{IngestChoice as C, IngestMode as M};
        let verdict = check_ingest_choice(mode, choice, &user, &configuration);
        let expected_pass = match choice {
            C::OptedOut => false,
            C::OptedIn => true,
            C::Default => mode == M::AllMatchingUsers,
        };
        prop_assert_eq!(verdict.is_ok(), expected_pass);
        if let Err(skip) = verdict {
            prop_assert_eq!(skip.reason, SkipReason::UserOptedOut);
            prop_assert!(skip.message.contains(&user));
            prop_assert!(skip.message.contains("then retry the job"));
        }
    }
}
