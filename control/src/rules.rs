//! The seed's rules, as pure functions, each with the message a person reads
//! when it refuses: which accounts may install (paid plans), which recordings
//! are ingested (made after the install, hosted by a known user), which
//! segment and which view, and the caps, both on Zoom's metadata and on what
//! a download turns out to hold while it streams; and which companion files
//! (transcript, captions, chat) go with the chosen video, with the checks
//! their bytes must pass (`rules/companions.rs`).
//!
//! This is the one home of each rule: the intake, the install handler,
//! RetryJob and the transfer stream call these functions and never restate a
//! rule or its message. No I/O here (the store lookups a rule needs are the
//! caller's), so every rule is tested exhaustively, with unit and property
//! tests in `rules/tests.rs`.

use crate::model::{IngestChoice, IngestMode, SkipReason, Timestamp, ZoomPlan};
use crate::zoom::RecordingFileData;

/// A rule's verdict that a recording is not copied: why, and a message a
/// person can act on (stored on the job).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skip {
    pub reason: SkipReason,
    pub message: String,
}

impl Skip {
    fn new(reason: SkipReason, message: String) -> Self {
        Skip { reason, message }
    }
}

/// A cap broken while a download streams: the job is skipped, not failed.
pub type CapExceeded = Skip;

/// Refusal of an install by a Zoom account on a free plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "plan: zoom {} accounts cannot install Ferry; a paid plan (pro, business, education, api or \
     enterprise) is required",
    .0.as_str()
)]
pub struct UnpaidPlan(pub ZoomPlan);

/// Only accounts on a paid plan may install (the seed's first requirement).
pub fn check_plan_can_install(plan: ZoomPlan) -> Result<(), UnpaidPlan> {
    if plan.is_paid() {
        Ok(())
    } else {
        Err(UnpaidPlan(plan))
    }
}

/// Step 3: never a recording made before its Zoom account was installed.
/// A recording that starts exactly at the install passes.
pub fn check_recorded_after_install(
    recording_start: Timestamp,
    zoom_account_id: &str,
    installed_at: Timestamp,
) -> Result<(), Skip> {
    if recording_start >= installed_at {
        return Ok(());
    }
    Err(Skip::new(
        SkipReason::RecordedBeforeInstall,
        format!(
            "recording started at {recording_start}, before zoom account {zoom_account_id} was \
             installed at {installed_at}"
        ),
    ))
}

/// Step 4, the address side: the form of a host's email that users are
/// matched by (their email or alternate Zoom email, normalised the same way).
pub fn host_match_key(host_email: &str) -> String {
    crate::email::normalize(host_email)
}

/// Step 4, the verdict: the recording's owner is the active user the store
/// found under `host_key` (see `host_match_key`); without one it is skipped.
pub fn check_host_match<U>(host_key: &str, found: Option<U>) -> Result<U, Skip> {
    found.ok_or_else(|| {
        Skip::new(
            SkipReason::NoMatchingUser,
            format!(
                "no active user has the email or alternate zoom email {host_key}; add or fix the \
                 user, then retry the job"
            ),
        )
    })
}

/// Step 4, the host's say: an opted-out user's recordings are never
/// ingested, and under `OptedInUsers` only an opted-in user's are. `user`
/// names the user in the message (their email); `configuration` names the
/// configuration whose mode applies.
pub fn check_ingest_choice(
    mode: IngestMode,
    choice: IngestChoice,
    user: &str,
    configuration: &str,
) -> Result<(), Skip> {
    match (mode, choice) {
        (_, IngestChoice::OptedIn) | (IngestMode::AllMatchingUsers, IngestChoice::Default) => {
            Ok(())
        }
        (_, IngestChoice::OptedOut) => Err(Skip::new(
            SkipReason::UserOptedOut,
            format!(
                "user {user} opted out of recording ingest; to copy their recordings, set their \
                 ingest_choice to default or opted_in in the directory (SyncUsers, or the \
                 ingest_choice column of `ferry users sync`), then retry the job"
            ),
        )),
        (IngestMode::OptedInUsers, IngestChoice::Default) => Err(Skip::new(
            SkipReason::UserOptedOut,
            format!(
                "configuration {configuration} ingests only users who opted in, and user {user} \
                 has not; set their ingest_choice to opted_in in the directory (SyncUsers, or the \
                 ingest_choice column of `ferry users sync`), or the configuration's ingest_mode \
                 to all_matching_users, then retry the job"
            ),
        )),
    }
}

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

/// `h:mm:ss`-style text of a duration, as cap messages show it: `8h00m00s`.
pub fn duration_text(ms: i64) -> String {
    let seconds = ms.max(0) / 1000;
    format!(
        "{}h{:02}m{:02}s",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// Step 6: the caps on Zoom's metadata (`check_caps`), with the message a
/// person reads on the skipped job.
pub fn check_metadata_caps(
    file: &RecordingFileData,
    meeting_duration_minutes: u64,
    caps: &Caps,
) -> Result<(), Skip> {
    match check_caps(file, meeting_duration_minutes, caps) {
        None => Ok(()),
        Some(SkipReason::TooLong) => {
            let longest = file_length_ms(file).max(
                i64::try_from(meeting_duration_minutes)
                    .unwrap_or(i64::MAX)
                    .saturating_mul(60_000),
            );
            Err(Skip::new(
                SkipReason::TooLong,
                format!(
                    "the recording lasts {}, longer than the {} cap; download it from zoom and \
                     upload it by hand",
                    duration_text(longest),
                    duration_text(caps.max_duration_ms)
                ),
            ))
        }
        Some(reason) => Err(Skip::new(
            reason,
            format!(
                "the file is {} bytes, larger than the {}-byte cap; download it from zoom and \
                 upload it by hand",
                file.file_size, caps.max_file_bytes
            ),
        )),
    }
}

/// The size cap on the bytes a download has delivered so far
/// (`received_bytes`, counting any resumed prefix), checked before any of
/// them is sent on. Exactly at the cap passes.
pub fn check_streamed_size(
    received_bytes: u64,
    announced_bytes: u64,
    caps: &Caps,
) -> Result<(), CapExceeded> {
    if received_bytes <= caps.max_file_bytes {
        return Ok(());
    }
    Err(Skip::new(
        SkipReason::TooLarge,
        format!(
            "the download passed the {}-byte cap while streaming (zoom announced {announced_bytes} \
             bytes); download it from zoom and upload it by hand",
            caps.max_file_bytes
        ),
    ))
}

/// The size cap on the length a download's answer declares before any of
/// its body is read: `content_length` bytes from `first_byte` on (a resumed
/// download asks for the rest). A truthful `Content-Length` above the cap
/// skips the job without streaming a byte; an answer that lies or says
/// nothing is still caught by `check_streamed_size`. Exactly at the cap
/// passes, as there.
pub fn check_declared_size(
    first_byte: u64,
    content_length: u64,
    announced_bytes: u64,
    caps: &Caps,
) -> Result<(), CapExceeded> {
    let declared = first_byte.saturating_add(content_length);
    if declared <= caps.max_file_bytes {
        return Ok(());
    }
    Err(Skip::new(
        SkipReason::TooLarge,
        format!(
            "the download's Content-Length makes the file {declared} bytes, larger than the {}-byte \
             cap (zoom announced {announced_bytes} bytes); nothing of it was streamed; download it \
             from zoom and upload it by hand",
            caps.max_file_bytes
        ),
    ))
}

/// The duration cap on what the MP4 itself says it lasts, found while
/// streaming. Exactly at the cap passes.
pub fn check_streamed_duration(duration_ms: u64, caps: &Caps) -> Result<(), CapExceeded> {
    if i64::try_from(duration_ms).is_ok_and(|ms| ms <= caps.max_duration_ms) {
        return Ok(());
    }
    Err(Skip::new(
        SkipReason::TooLong,
        format!(
            "the MP4 says it lasts {} s, longer than the {} s cap (found while streaming); download \
             it from zoom and upload it by hand",
            duration_ms / 1000,
            caps.max_duration_ms / 1000
        ),
    ))
}

fn file_length_ms(file: &RecordingFileData) -> i64 {
    file.recording_end
        .map_or(0, |end| end.0 - file.recording_start.0)
}

/// The caps, from Zoom's metadata: the file's own length, the meeting's
/// `duration` when non-zero, and `file_size`. Exactly at a cap passes.
pub fn check_caps(
    file: &RecordingFileData,
    meeting_duration_minutes: u64,
    caps: &Caps,
) -> Option<SkipReason> {
    let file_ms = file_length_ms(file);
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

mod companions;
mod sections;
pub use companions::{TextCheck, check_companion_size, check_companion_text, choose_companions};
pub use sections::mapped_sections;

#[cfg(test)]
mod tests;
