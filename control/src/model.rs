//! The domain model shared by the store, the services and the data plane.
//! These types are transport-neutral: conversion to and from the `ferry.v1`
//! messages lives in `service::convert`.

use std::fmt;

use crate::secrets::{Sealed, TokenHash};

mod choices;
mod companions;
mod sections;
pub use choices::*;
pub use companions::*;
pub use sections::*;

/// A point in time as Unix milliseconds (UTC). Millisecond precision is what
/// the store keeps, and is finer than any Zoom timestamp.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Self {
        let now = time::OffsetDateTime::now_utc();
        Timestamp((now.unix_timestamp_nanos() / 1_000_000) as i64)
    }

    pub fn from_unix_seconds(seconds: i64) -> Self {
        Timestamp(seconds.saturating_mul(1000))
    }

    pub fn as_millis(self) -> i64 {
        self.0
    }

    pub fn saturating_add_millis(self, millis: i64) -> Self {
        Timestamp(self.0.saturating_add(millis))
    }

    /// Parses RFC 3339 (`2023-12-01T20:02:01Z`), the form Zoom uses.
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        let parsed =
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .ok()?;
        Some(Timestamp(
            (parsed.unix_timestamp_nanos() / 1_000_000) as i64,
        ))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = i128::from(self.0) * 1_000_000;
        match time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            }) {
            Some(text) => f.write_str(&text),
            None => write!(f, "{}ms", self.0),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Institution {
    pub institution_id: String,
    pub display_name: String,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminKey {
    pub key_id: String,
    pub institution_id: String,
    pub name: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoomConfiguration {
    pub configuration_id: String,
    pub institution_id: String,
    pub display_name: String,
    /// Empty means the default order (`rules::DEFAULT_VIEW_PRIORITY`).
    pub view_priority: Vec<String>,
    pub created_at: Timestamp,
    pub token_issued_at: Timestamp,
    pub installed_account_count: u32,
    pub ingest_mode: IngestMode,
    pub after_copy: AfterCopy,
}

/// A change to a configuration; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct ConfigurationUpdate {
    pub display_name: Option<String>,
    pub view_priority: Option<Vec<String>>,
    pub ingest_mode: Option<IngestMode>,
    pub after_copy: Option<AfterCopy>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZoomPlan {
    Free,
    Pro,
    Business,
    Education,
    Api,
    Enterprise,
    /// A paid plan whose tier Zoom did not say: what a Marketplace install
    /// learns from `GET /v2/users/me` (a licensed user, `type` 2).
    Licensed,
}

impl ZoomPlan {
    pub const ALL: [ZoomPlan; 7] = [
        ZoomPlan::Free,
        ZoomPlan::Pro,
        ZoomPlan::Business,
        ZoomPlan::Education,
        ZoomPlan::Api,
        ZoomPlan::Enterprise,
        ZoomPlan::Licensed,
    ];

    /// Only paid plans may install (the seed's first requirement).
    pub fn is_paid(self) -> bool {
        !matches!(self, ZoomPlan::Free)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ZoomPlan::Free => "free",
            ZoomPlan::Pro => "pro",
            ZoomPlan::Business => "business",
            ZoomPlan::Education => "education",
            ZoomPlan::Api => "api",
            ZoomPlan::Enterprise => "enterprise",
            ZoomPlan::Licensed => "licensed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim().to_ascii_lowercase();
        Self::ALL.into_iter().find(|plan| plan.as_str() == text)
    }
}

/// Server-to-Server OAuth credentials as the store keeps them: the client
/// secret sealed with the daemon's encryption key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedOAuthCredentials {
    pub client_id: String,
    pub sealed_client_secret: Sealed,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoomAccount {
    pub zoom_account_id: String,
    pub institution_id: String,
    pub configuration_id: String,
    pub plan: ZoomPlan,
    pub installed_at: Timestamp,
    pub uninstalled_at: Option<Timestamp>,
    pub oauth: Option<SealedOAuthCredentials>,
}

impl ZoomAccount {
    pub fn is_installed(&self) -> bool {
        self.uninstalled_at.is_none()
    }
}

/// A new admin key of an institution; only the token's hash is stored.
#[derive(Clone, Debug)]
pub struct NewAdminKey {
    pub institution_id: String,
    pub name: String,
    pub hash: TokenHash,
    pub now: Timestamp,
}

/// A new Zoom configuration; only its token's hash is stored.
#[derive(Clone, Debug)]
pub struct NewConfiguration {
    pub institution_id: String,
    pub display_name: String,
    pub view_priority: Vec<String>,
    pub policy: ConfigurationPolicy,
    pub token_hash: TokenHash,
    pub now: Timestamp,
}

/// A new token for a configuration, replacing the old one at once.
#[derive(Clone, Debug)]
pub struct TokenRotation {
    pub institution_id: String,
    pub configuration_id: String,
    pub token_hash: TokenHash,
    pub now: Timestamp,
}

/// Uninstalls an account. With `institution_id` the account must belong to
/// it; without, any account (the `app_deauthorized` path).
#[derive(Clone, Debug)]
pub struct AccountUninstall {
    pub institution_id: Option<String>,
    pub zoom_account_id: String,
    pub now: Timestamp,
}

/// Validated directory records to apply in one transaction (see `SyncMode`).
#[derive(Clone, Debug)]
pub struct UserSync {
    pub institution_id: String,
    pub mode: SyncMode,
    pub records: Vec<UserRecord>,
    /// Records the caller found invalid: reported in the outcome, and in
    /// FULL mode their users are left as they are rather than deactivated.
    pub rejected_upfront: Vec<RejectedRecord>,
    pub now: Timestamp,
}

/// Gives a media item to another user of the same institution.
#[derive(Clone, Debug)]
pub struct OwnershipTransfer {
    pub institution_id: String,
    pub media_id: String,
    pub new_owner_user_id: String,
}

/// What `InstallZoomAccount` asks the store to do, after the service has
/// checked the plan and resolved the configuration token.
#[derive(Clone, Debug)]
pub struct AccountInstall {
    pub configuration_id: String,
    pub zoom_account_id: String,
    pub plan: ZoomPlan,
    pub oauth: Option<SealedOAuthCredentials>,
    pub now: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UserRole {
    Admin,
    Instructor,
    Student,
}

impl UserRole {
    pub fn as_str(self) -> &'static str {
        match self {
            UserRole::Admin => "admin",
            UserRole::Instructor => "instructor",
            UserRole::Student => "student",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "admin" => Some(UserRole::Admin),
            "instructor" => Some(UserRole::Instructor),
            "student" => Some(UserRole::Student),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub user_id: String,
    pub institution_id: String,
    pub external_id: String,
    /// Normalised: trimmed and lowercased.
    pub email: String,
    /// Normalised like `email`.
    pub alternate_zoom_email: Option<String>,
    pub display_name: String,
    pub role: UserRole,
    pub active: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub ingest_choice: IngestChoice,
}

impl User {
    /// Whether applying `record` (same external id) would change nothing:
    /// both backends count such a record as unchanged rather than updated.
    pub fn is_unchanged_by(&self, record: &UserRecord) -> bool {
        self.active
            && self.email == record.email
            && self.alternate_zoom_email == record.alternate_zoom_email
            && self.display_name == record.display_name
            && self.role == record.role
            && self.ingest_choice == record.ingest_choice
    }
}

/// One validated record of a directory sync: emails are already normalised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    /// Zero-based position in the sync stream, for the summary.
    pub record_index: u32,
    pub external_id: String,
    pub email: String,
    pub alternate_zoom_email: Option<String>,
    pub display_name: String,
    pub role: UserRole,
    pub ingest_choice: IngestChoice,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// Users absent from the stream are deactivated.
    Full,
    /// Only add and update.
    Upsert,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedRecord {
    pub record_index: u32,
    pub external_id: String,
    pub email: String,
    pub reason: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncOutcome {
    pub created: u32,
    pub updated: u32,
    pub unchanged: u32,
    pub deactivated: u32,
    pub rejected: Vec<RejectedRecord>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobState {
    Queued,
    Transferring,
    Completed,
    Skipped,
    Failed,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 6] = [
        JobState::Queued,
        JobState::Transferring,
        JobState::Completed,
        JobState::Skipped,
        JobState::Failed,
        JobState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Transferring => "transferring",
            JobState::Completed => "completed",
            JobState::Skipped => "skipped",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim().to_ascii_lowercase();
        Self::ALL.into_iter().find(|state| state.as_str() == text)
    }

    /// Final states: nothing moves the job on but an admin's retry.
    pub fn is_final(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Transferring)
    }
}

/// Jobs per state across every institution, for the metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobCounts {
    pub by_state: Vec<(JobState, u64)>,
    /// When the longest-waiting QUEUED job was last queued or updated.
    pub oldest_queued: Option<Timestamp>,
}

impl JobCounts {
    pub fn count(&self, state: JobState) -> u64 {
        self.by_state
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SkipReason {
    NoMatchingUser,
    RecordedBeforeInstall,
    TooLong,
    TooLarge,
    NoDownloadableFile,
    /// The host's user opted out, or has not opted in where the
    /// configuration ingests only users who did.
    UserOptedOut,
}

impl SkipReason {
    pub const ALL: [SkipReason; 6] = [
        SkipReason::NoMatchingUser,
        SkipReason::RecordedBeforeInstall,
        SkipReason::TooLong,
        SkipReason::TooLarge,
        SkipReason::NoDownloadableFile,
        SkipReason::UserOptedOut,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::NoMatchingUser => "no_matching_user",
            SkipReason::RecordedBeforeInstall => "recorded_before_install",
            SkipReason::TooLong => "too_long",
            SkipReason::TooLarge => "too_large",
            SkipReason::NoDownloadableFile => "no_downloadable_file",
            SkipReason::UserOptedOut => "user_opted_out",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim().to_ascii_lowercase();
        Self::ALL.into_iter().find(|reason| reason.as_str() == text)
    }
}

/// What found a job's recording: Zoom's webhook, the reconciler comparing
/// Zoom's recordings list with the jobs, or a backfill an admin asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum JobSource {
    #[default]
    Webhook,
    Reconcile,
    Backfill,
}

impl JobSource {
    pub const ALL: [JobSource; 3] = [
        JobSource::Webhook,
        JobSource::Reconcile,
        JobSource::Backfill,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobSource::Webhook => "webhook",
            JobSource::Reconcile => "reconcile",
            JobSource::Backfill => "backfill",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim().to_ascii_lowercase();
        Self::ALL.into_iter().find(|source| source.as_str() == text)
    }
}

/// The recording file a job copies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordingFile {
    pub file_id: String,
    pub recording_type: String,
    pub file_type: String,
    pub file_extension: String,
    pub file_size: u64,
    pub recording_start: Timestamp,
    pub recording_end: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub job_id: String,
    pub institution_id: String,
    pub zoom_account_id: String,
    pub meeting_uuid: String,
    pub meeting_id: u64,
    pub topic: String,
    pub host_email: String,
    pub meeting_start: Option<Timestamp>,
    pub state: JobState,
    pub skip_reason: Option<SkipReason>,
    pub message: String,
    pub owner_user_id: Option<String>,
    pub recording_file: Option<RecordingFile>,
    pub skipped_file_count: u32,
    pub skipped_segment_count: u32,
    pub bytes_transferred: u64,
    pub total_bytes: u64,
    pub attempt_count: u32,
    pub media_id: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub detected_mid_stream: bool,
    /// What found the recording; kept from the job's first decision.
    pub source: JobSource,
    /// The move of the meeting's recordings to Zoom's trash, for a job
    /// completed under `AfterCopy::Trash`.
    pub zoom_trash: Option<ZoomTrash>,
}

/// A job as the intake creates it. The download URL and token are sealed
/// before they reach the store; `recording` keeps what a later retry needs to
/// decide the recording again.
#[derive(Clone, Debug)]
pub struct NewJob {
    pub institution_id: String,
    pub zoom_account_id: String,
    pub meeting_uuid: String,
    pub meeting_id: u64,
    pub topic: String,
    pub host_email: String,
    pub meeting_start: Option<Timestamp>,
    pub state: JobState,
    pub skip_reason: Option<SkipReason>,
    pub message: String,
    pub owner_user_id: Option<String>,
    pub recording_file: Option<RecordingFile>,
    pub skipped_file_count: u32,
    pub skipped_segment_count: u32,
    pub sealed_download_url: Option<Sealed>,
    pub sealed_download_token: Option<Sealed>,
    /// The webhook's recording object, sealed (it holds download URLs).
    pub sealed_recording: Option<Sealed>,
    /// The event's own time (`event_ts`): of two deliveries, the download
    /// credentials of the later event win.
    pub event_time: Timestamp,
    pub now: Timestamp,
    /// What found the recording; an existing job keeps its own.
    pub source: JobSource,
}

/// A job an admin retries, with the new decision: who owns it and which
/// file (`None` keeps what the job has).
#[derive(Clone, Debug)]
pub struct JobRequeue {
    pub institution_id: String,
    pub job_id: String,
    pub now: Timestamp,
    pub owner_user_id: String,
    pub recording_file: Option<RecordingFile>,
    pub sealed_download_url: Option<Sealed>,
    /// The job's message once queued again (empty for an admin's retry).
    pub message: String,
}

/// Which jobs `list_jobs` returns; every set filter must hold.
#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    pub states: Vec<JobState>,
    pub skip_reason: Option<SkipReason>,
    pub zoom_account_id: Option<String>,
    /// Normalised like user emails.
    pub host_email: Option<String>,
    pub created_from: Option<Timestamp>,
    pub created_before: Option<Timestamp>,
    pub source: Option<JobSource>,
}

/// A change to a job, broadcast to `WatchJobs` subscribers.
#[derive(Clone, Debug)]
pub struct JobEvent {
    pub job: Job,
    pub progress_only: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Media {
    pub media_id: String,
    pub institution_id: String,
    pub owner_user_id: String,
    pub title: String,
    pub duration_ms: u64,
    pub size_bytes: u64,
    pub checksum: String,
    pub object_key: String,
    pub meeting_id: u64,
    pub meeting_uuid: String,
    pub recorded_at: Option<Timestamp>,
    pub job_id: String,
    pub created_at: Timestamp,
    pub content_type: String,
    /// The sections it is shared with, sorted.
    pub section_ids: Vec<String>,
}

/// What the transfer engine knows when a job's object is verified and stored;
/// the rest of the media record comes from the job.
#[derive(Clone, Debug)]
pub struct NewMedia {
    pub object_key: String,
    pub checksum: String,
    pub duration_ms: u64,
    pub size_bytes: u64,
    pub content_type: String,
    /// Recorded as the job's message (e.g. "not a valid MP4"); may be empty.
    pub job_note: String,
    /// The configuration's after-copy action when the object was verified:
    /// `Trash` leaves the job's move to Zoom's trash pending, committed with
    /// the completion so that a restart cannot lose it.
    pub after_copy: AfterCopy,
}

/// A job's sealed secrets: only the transfer engine and the retry path open
/// them; no API returns them.
#[derive(Clone, Debug, Default)]
pub struct JobSecrets {
    pub sealed_download_url: Option<Sealed>,
    pub sealed_download_token: Option<Sealed>,
    pub sealed_recording: Option<Sealed>,
}

/// Download credentials fetched from Zoom's API for a held job, sealed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FreshCredentials {
    pub sealed_download_token: Sealed,
    /// Set when Zoom's answer carried a download URL of its own.
    pub sealed_download_url: Option<Sealed>,
}

/// A multipart upload the transfer engine started for a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadRecord {
    pub upload_id: String,
    pub object_key: String,
    pub part_size: u64,
}

/// One uploaded part, as the sink acknowledged it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartRecord {
    pub part_number: u32,
    pub etag: String,
    pub crc32c: u32,
    pub offset: u64,
    pub len: u64,
    /// The MP4 scanner's state after the part's last byte (opaque to the
    /// store), so a transfer resuming after this part scans on from exactly
    /// where it stood. `None` for parts recorded before scan states were kept.
    pub scan_state: Option<Vec<u8>>,
}

/// What a restarted transfer resumes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadState {
    pub upload: UploadRecord,
    /// Ordered by part number.
    pub parts: Vec<PartRecord>,
}

/// One transfer attempt of a job, as its history shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobAttempt {
    /// 1 for the job's first attempt; the job's `attempt_count` is the last.
    pub attempt: u32,
    pub worker_id: String,
    pub started_at: Timestamp,
    /// Where the download started: 0 for a fresh start, else the first byte
    /// after the parts kept from earlier attempts.
    pub resumed_from_bytes: u64,
    /// Why the attempt starts where it does, when that is not the obvious.
    pub note: String,
}

/// The start of a transfer attempt, recorded by the lease holder.
#[derive(Clone, Debug)]
pub struct AttemptStart {
    pub job_id: String,
    pub worker_id: String,
    pub resumed_from_bytes: u64,
    pub note: String,
    pub now: Timestamp,
}

/// How a transfer that did not complete ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobOutcome {
    /// FAILED, with a message a person can act on.
    Failed { message: String },
    /// SKIPPED by a cap found while streaming.
    Skipped { reason: SkipReason, message: String },
    /// Back to QUEUED (shutdown): the upload state is kept for resuming.
    Released,
}

/// A calendar day in UTC, as Zoom's recordings list takes its `from` and
/// `to` (`YYYY-MM-DD`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(pub time::Date);

impl Day {
    pub fn parse(text: &str) -> Option<Day> {
        time::Date::parse(
            text.trim(),
            time::macros::format_description!("[year]-[month]-[day]"),
        )
        .ok()
        .map(Day)
    }

    /// The UTC day `at` falls on.
    pub fn of(at: Timestamp) -> Day {
        let nanos = i128::from(at.0) * 1_000_000;
        let moment = time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        Day(moment.date())
    }

    pub fn next(self) -> Day {
        Day(self.0.next_day().unwrap_or(self.0))
    }

    pub fn minus_days(self, days: u32) -> Day {
        Day(self
            .0
            .checked_sub(time::Duration::days(i64::from(days)))
            .unwrap_or(self.0))
    }

    /// Days from `self` to `later` (0 when `later` is not later).
    pub fn days_until(self, later: Day) -> u32 {
        u32::try_from((later.0 - self.0).whole_days()).unwrap_or(0)
    }

    /// The same day of the next month, or that month's last day when it
    /// has no such day (31 January → 28 or 29 February).
    pub fn plus_one_month(self) -> Day {
        let (year, month) = match self.0.month() {
            time::Month::December => (self.0.year() + 1, time::Month::January),
            month => (self.0.year(), month.next()),
        };
        let last = time::util::days_in_month(month, year);
        Day(time::Date::from_calendar_date(year, month, self.0.day().min(last)).unwrap_or(self.0))
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}",
            self.0.year(),
            u8::from(self.0.month()),
            self.0.day()
        )
    }
}

/// Where one pass over an account's recordings list stands: the pass's
/// whole range, the one-month chunk being listed and the page to ask for
/// next. Saved after every page, so a restart continues where it stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListingCursor {
    pub from: Day,
    pub to: Day,
    /// The first day of the chunk being listed.
    pub chunk_from: Day,
    /// Zoom's `next_page_token` within the chunk; empty for its first page.
    pub next_page_token: String,
}

impl ListingCursor {
    pub fn start(from: Day, to: Day) -> Self {
        ListingCursor {
            from,
            to,
            chunk_from: from,
            next_page_token: String::new(),
        }
    }
}

/// The reconciler's place in an account's recordings list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReconcileCursor {
    pub zoom_account_id: String,
    pub cursor: ListingCursor,
    pub pass_started: Timestamp,
    /// Set once the pass listed its whole range.
    pub finished_at: Option<Timestamp>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackfillState {
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl BackfillState {
    pub const ALL: [BackfillState; 4] = [
        BackfillState::Running,
        BackfillState::Completed,
        BackfillState::Failed,
        BackfillState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BackfillState::Running => "running",
            BackfillState::Completed => "completed",
            BackfillState::Failed => "failed",
            BackfillState::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim().to_ascii_lowercase();
        Self::ALL.into_iter().find(|state| state.as_str() == text)
    }
}

/// What a backfill has met so far. After a crash the page being listed is
/// listed again, so its meetings count twice in `meetings_seen`, and the
/// jobs it had made count again as duplicates; jobs are never made twice.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackfillCounts {
    pub meetings_seen: u64,
    pub jobs_created: u64,
    /// Meetings that already had a job (a webhook's, the reconciler's, an
    /// earlier backfill's).
    pub duplicates: u64,
    /// Meetings Zoom still processes, left for their webhook or a later pass.
    pub not_ready: u64,
    /// Jobs this backfill created SKIPPED, per reason.
    pub skipped: Vec<(SkipReason, u64)>,
}

impl BackfillCounts {
    pub fn skipped(&self, reason: SkipReason) -> u64 {
        self.skipped
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    }

    pub fn add_skipped(&mut self, reason: SkipReason) {
        match self.skipped.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => self.skipped.push((reason, 1)),
        }
    }

    /// `skipped` as stored: `reason=count` pairs joined by commas.
    pub fn skipped_text(&self) -> String {
        self.skipped
            .iter()
            .map(|(r, n)| format!("{}={n}", r.as_str()))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn parse_skipped(text: &str) -> Vec<(SkipReason, u64)> {
        text.split(',')
            .filter_map(|pair| {
                let (reason, count) = pair.split_once('=')?;
                Some((SkipReason::parse(reason)?, count.parse().ok()?))
            })
            .collect()
    }
}

/// An admin's request to ingest an account's recordings of a range of days,
/// the before-install rule waived; see `BackfillStore`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backfill {
    pub backfill_id: String,
    pub institution_id: String,
    pub zoom_account_id: String,
    pub state: BackfillState,
    pub message: String,
    pub counts: BackfillCounts,
    pub cursor: ListingCursor,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

impl Backfill {
    /// Days in the backfill's range.
    pub fn total_days(&self) -> u32 {
        self.cursor.from.days_until(self.cursor.to) + 1
    }

    /// Days listed so far: those before the chunk being listed (all of
    /// them once it completed).
    pub fn days_done(&self) -> u32 {
        match self.state {
            BackfillState::Completed => self.total_days(),
            _ => self
                .cursor
                .from
                .days_until(self.cursor.chunk_from)
                .min(self.total_days()),
        }
    }
}

#[derive(Clone, Debug)]
pub struct NewBackfill {
    pub institution_id: String,
    pub zoom_account_id: String,
    pub from: Day,
    pub to: Day,
    pub now: Timestamp,
}

/// A running backfill's progress after a page, and its end when `end` is
/// set. Applies only while the backfill runs (a cancel wins).
#[derive(Clone, Debug)]
pub struct BackfillProgress {
    pub backfill_id: String,
    pub counts: BackfillCounts,
    pub cursor: ListingCursor,
    pub end: Option<(BackfillState, String)>,
    pub now: Timestamp,
}

/// Zoom says a meeting's recordings were trashed or deleted: its job, if it
/// is still queued or transferring, fails with `message`.
#[derive(Clone, Debug)]
pub struct RecordingGone {
    pub zoom_account_id: String,
    pub meeting_uuid: String,
    pub message: String,
    pub now: Timestamp,
}
