//! Reconciling with Zoom's recordings API: Zoom's webhooks are best effort,
//! so the reconciler lists each account's recent cloud recordings and gives
//! every one no job knows the decision a webhook would have got; a backfill
//! does the same for a range of days an admin asks for, with the
//! before-install rule waived.
//!
//! It owns listing (one-month chunks, Zoom's pages, a persisted cursor, the
//! account's rate limit and `Retry-After`), the readiness rule (files still
//! processing, or completed within the grace period, are left for their
//! webhook) and the two runners. It never decides a recording itself: every
//! meeting goes through `ingest::decide` and the store's one-job-per-meeting
//! upsert, exactly as a webhook does. It never logs a download URL, token or
//! credential.

mod backfill;
pub(crate) mod duty;
mod listing;
mod runner;

use std::sync::Arc;
use std::time::Duration;

use ferry_control::model::{Day, ListingCursor, Timestamp};
use ferry_control::rules::CapsPolicy;
use ferry_control::secrets::SecretBox;
use ferry_control::store::Store;
use ferry_control::zoom::Recording;

use crate::transfer::zoom_api::ZoomApi;

pub use backfill::run_backfills;
pub use runner::run_reconciler;

/// How the reconciler and the backfill runner work.
#[derive(Clone, Debug)]
pub struct ReconcileSettings {
    /// Whether the reconciler runs (backfills run regardless).
    pub enabled: bool,
    pub interval: Duration,
    pub lookback_days: u32,
    pub grace: Duration,
    /// How often running backfills are looked for (and a failed listing retried).
    pub backfill_poll: Duration,
    /// Tries of one page when Zoom answers 429 or fails.
    pub page_attempts: u32,
    /// How long an account's listing or a backfill stays with a replica
    /// that stopped renewing it.
    pub lease: Duration,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        ReconcileSettings {
            enabled: true,
            interval: Duration::from_secs(3600),
            lookback_days: 3,
            grace: Duration::from_secs(900),
            backfill_poll: Duration::from_secs(1),
            page_attempts: 6,
            lease: Duration::from_secs(60),
        }
    }
}

/// What the runners share.
#[derive(Clone)]
pub struct ReconcileContext {
    pub store: Arc<dyn Store>,
    pub secret_box: SecretBox,
    pub api: Arc<ZoomApi>,
    /// The Marketplace app, whose tokens serve accounts installed through
    /// the web flow.
    pub marketplace: Option<Arc<crate::marketplace::Marketplace>>,
    pub caps: CapsPolicy,
    pub settings: ReconcileSettings,
    /// This daemon, for the duties that keep other replicas off an account.
    pub replica_id: String,
}

/// The last day of the chunk that starts on `chunk_from`: a month later
/// less a day, or `to` when that comes first. Zoom answers 400 to a range
/// longer than a month.
pub fn chunk_to(chunk_from: Day, to: Day) -> Day {
    chunk_from
        .plus_one_month()
        .minus_days(1)
        .min(to)
        .max(chunk_from)
}

/// Where a listing goes after a page whose answer carried
/// `next_page_token`: the chunk's next page, the next chunk, or nowhere.
pub fn advance(cursor: &ListingCursor, next_page_token: &str) -> Option<ListingCursor> {
    if !next_page_token.is_empty() {
        return Some(ListingCursor {
            next_page_token: next_page_token.to_string(),
            ..cursor.clone()
        });
    }
    let end = chunk_to(cursor.chunk_from, cursor.to);
    (end < cursor.to).then(|| ListingCursor {
        chunk_from: end.next(),
        next_page_token: String::new(),
        ..cursor.clone()
    })
}

/// Why a listed recording is left for now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotReady {
    /// A video or audio file is still `processing`.
    Processing,
    /// It completed less than the grace period ago: its webhook may still come.
    WithinGrace,
}

/// Whether a listed recording may be decided now: every MP4/M4A is done,
/// and its last file ended at least `grace` before `now`.
pub fn readiness(recording: &Recording, now: Timestamp, grace: Duration) -> Result<(), NotReady> {
    if recording
        .files
        .iter()
        .any(|f| f.is_media() && !f.is_ready())
    {
        return Err(NotReady::Processing);
    }
    let completed = recording
        .files
        .iter()
        .map(|f| f.recording_end.unwrap_or(f.recording_start))
        .max();
    let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
    match completed {
        Some(end) if end.saturating_add_millis(grace_ms) > now => Err(NotReady::WithinGrace),
        _ => Ok(()),
    }
}

/// The days a reconcile pass at `now` lists: the last `lookback_days`
/// days before today, and today.
pub fn lookback_range(now: Timestamp, lookback_days: u32) -> (Day, Day) {
    let today = Day::of(now);
    (today.minus_days(lookback_days), today)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_control::zoom::RecordingFileData;
    use proptest::prelude::*;

    fn day(text: &str) -> Day {
        Day::parse(text).unwrap()
    }

    #[test]
    fn chunks_span_at_most_a_month() {
        assert_eq!(
            chunk_to(day("2026-09-01"), day("2026-11-30")),
            day("2026-09-30")
        );
        assert_eq!(
            chunk_to(day("2026-01-31"), day("2026-12-31")),
            day("2026-02-27")
        );
        assert_eq!(
            chunk_to(day("2026-11-28"), day("2026-11-30")),
            day("2026-11-30")
        );
        assert_eq!(
            chunk_to(day("2026-11-30"), day("2026-11-30")),
            day("2026-11-30")
        );
    }

    #[test]
    fn a_listing_walks_pages_then_chunks_then_ends() {
        let start = ListingCursor::start(day("2026-09-10"), day("2026-11-01"));
        let paged = advance(&start, "p2").unwrap();
        assert_eq!(
            (paged.chunk_from, paged.next_page_token.as_str()),
            (day("2026-09-10"), "p2")
        );
        let next = advance(&paged, "").unwrap();
        assert_eq!(
            (next.chunk_from, next.next_page_token.as_str()),
            (day("2026-10-10"), "")
        );
        assert_eq!(chunk_to(next.chunk_from, next.to), day("2026-11-01"));
        assert_eq!(advance(&next, ""), None);
    }

    fn recording(files: Vec<(&str, &str, i64)>) -> Recording {
        Recording {
            account_id: "a".into(),
            meeting_uuid: "u".into(),
            meeting_id: 1,
            host_email: "h@example.edu".into(),
            topic: String::new(),
            start_time: None,
            duration_minutes: 0,
            files: files
                .into_iter()
                .map(|(file_type, status, end)| RecordingFileData {
                    id: "f".into(),
                    recording_start: Timestamp(end - 1_000),
                    recording_end: Some(Timestamp(end)),
                    file_type: file_type.into(),
                    file_extension: file_type.into(),
                    file_size: 1,
                    download_url: Some("https://zoom.us/x".into()),
                    status: status.into(),
                    recording_type: "speaker_view".into(),
                })
                .collect(),
        }
    }

    #[test]
    fn processing_or_recent_recordings_are_left_for_their_webhook() {
        let grace = Duration::from_secs(900);
        let now = Timestamp(10_000_000);
        let done = recording(vec![
            ("MP4", "completed", 1_000_000),
            ("CHAT", "completed", 1_000_000),
        ]);
        assert_eq!(readiness(&done, now, grace), Ok(()));
        let processing = recording(vec![("MP4", "processing", 1_000_000)]);
        assert_eq!(
            readiness(&processing, now, grace),
            Err(NotReady::Processing)
        );
        // A transcript still processing does not hold the video back.
        let transcript = recording(vec![
            ("MP4", "completed", 1_000_000),
            ("TRANSCRIPT", "processing", 1_000_000),
        ]);
        assert_eq!(readiness(&transcript, now, grace), Ok(()));
        let recent = recording(vec![("MP4", "completed", now.0 - 899_000)]);
        assert_eq!(readiness(&recent, now, grace), Err(NotReady::WithinGrace));
        let exactly = recording(vec![("MP4", "completed", now.0 - 900_000)]);
        assert_eq!(readiness(&exactly, now, grace), Ok(()));
        assert_eq!(readiness(&recent, now, Duration::ZERO), Ok(()));
    }

    #[test]
    fn a_pass_looks_back_whole_days() {
        let now = Timestamp::parse_rfc3339("2026-11-30T10:00:00Z").unwrap();
        assert_eq!(
            lookback_range(now, 3),
            (day("2026-11-27"), day("2026-11-30"))
        );
    }

    proptest! {
        /// Walking a range chunk by chunk lists every day exactly once, in
        /// order, and no chunk is a month long or more.
        #[test]
        fn chunks_cover_the_range_exactly(start in 0i64..3000, len in 0i64..800, pages in 0usize..3) {
            let base = time::Date::from_calendar_date(2020, time::Month::January, 1).unwrap();
            let from = Day(base + time::Duration::days(start));
            let to = Day(base + time::Duration::days(start + len));
            let mut cursor = ListingCursor::start(from, to);
            let mut expected_from = from;
            let mut chunks = 0;
            loop {
                let end = chunk_to(cursor.chunk_from, cursor.to);
                prop_assert_eq!(cursor.chunk_from, expected_from);
                prop_assert!(end >= cursor.chunk_from);
                prop_assert!(end < cursor.chunk_from.plus_one_month());
                for page in 0..pages {
                    cursor = advance(&cursor, &format!("page-{page}")).unwrap();
                    prop_assert_eq!(cursor.chunk_from, expected_from);
                }
                chunks += 1;
                match advance(&cursor, "") {
                    Some(next) => {
                        prop_assert_eq!(next.chunk_from, end.next());
                        expected_from = next.chunk_from;
                        cursor = next;
                    }
                    None => {
                        prop_assert_eq!(end, to);
                        break;
                    }
                }
            }
            prop_assert!(chunks <= (len / 28 + 1) as usize);
        }
    }
}
