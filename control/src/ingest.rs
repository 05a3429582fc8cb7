//! Deciding a `recording.completed`: the seed's rules in order, with the
//! store lookups they need (the account's install, the configuration's view
//! priority and ingest mode, the host's user and their ingest choice). Shared by the webhook intake and by RetryJob,
//! so a retried job is decided exactly as a fresh event would be.
//!
//! The reconciler and backfills decide the recordings they find here too,
//! so every source meets the same rules; only a backfill, which an admin
//! asked for, waives the before-install rule (`Origin::waiver`).
//!
//! The rules themselves, and the messages they skip with, live in `rules`;
//! this file only orders them and feeds them what the store knows. Never
//! stores anything itself; the caller commits the returned job.

use crate::error::StoreError;
use crate::model::{
    JobSource, JobState, NewJob, RecordingFile, SkipReason, Timestamp, ZoomAccount,
    ZoomConfiguration,
};
use crate::rules::{self, Caps};
use crate::secrets::SecretBox;
use crate::store::Store;
use crate::zoom::Recording;

/// What the rules made of a recording.
#[derive(Debug)]
pub enum Decision {
    /// Step 1: the account is not installed; nothing is recorded.
    NotInstalled,
    /// Every other outcome: a job to commit (QUEUED or SKIPPED).
    Job(Box<NewJob>),
}

/// Where a recording to decide came from.
#[derive(Clone, Copy, Debug, Default)]
pub struct Origin<'a> {
    pub source: JobSource,
    /// Who waived the before-install rule (`"backfill bf_…"`): set only for
    /// a backfill an admin asked for. The job's message names it.
    pub waiver: Option<&'a str>,
}

impl Origin<'static> {
    pub const WEBHOOK: Origin<'static> = Origin {
        source: JobSource::Webhook,
        waiver: None,
    };
}

/// Applies steps 1 to 7 of the intake rules to `recording`.
#[allow(clippy::too_many_arguments)]
pub async fn decide(
    store: &dyn Store,
    secret_box: &SecretBox,
    recording: &Recording,
    download_token: Option<&str>,
    caps: &Caps,
    event_time: Timestamp,
    now: Timestamp,
    origin: Origin<'_>,
) -> Result<Decision, StoreError> {
    // 1. Only installed accounts are ingested.
    let Some(account) = store.installed_account(&recording.account_id).await? else {
        return Ok(Decision::NotInstalled);
    };
    let mut job = NewJob {
        institution_id: account.institution_id.clone(),
        zoom_account_id: recording.account_id.clone(),
        meeting_uuid: recording.meeting_uuid.clone(),
        meeting_id: recording.meeting_id,
        topic: recording.topic.clone(),
        host_email: recording.host_email.trim().to_string(),
        meeting_start: recording.start_time,
        state: JobState::Queued,
        skip_reason: None,
        message: String::new(),
        owner_user_id: None,
        recording_file: None,
        skipped_file_count: 0,
        skipped_segment_count: 0,
        sealed_download_url: None,
        sealed_download_token: download_token
            .filter(|t| !t.is_empty())
            .map(|t| secret_box.seal_str(t)),
        sealed_recording: Some(
            secret_box
                .seal(&serde_json::to_vec(recording).expect("a validated recording serialises")),
        ),
        event_time,
        now,
        source: origin.source,
    };
    // 2. The first segment of a stop/start session.
    let Some(segment) = rules::first_segment(&recording.files) else {
        return Ok(skipped(
            job,
            SkipReason::NoDownloadableFile,
            "the recording has no files".into(),
        ));
    };
    job.skipped_file_count = segment.skipped_file_count;
    job.skipped_segment_count = segment.skipped_segment_count;
    let mut passed_over = if segment.skipped_segment_count > 0 {
        format!(
            "; passed over {} later segment(s) ({} file(s)) of a stop/start session",
            segment.skipped_segment_count, segment.skipped_file_count
        )
    } else {
        String::new()
    };
    // 3. Never recordings made before the install, unless an admin's
    // backfill asked for them.
    if let Err(rule) = rules::check_recorded_after_install(
        segment.start(),
        &account.zoom_account_id,
        account.installed_at,
    ) {
        match origin.waiver {
            Some(waiver) => passed_over.push_str(&format!(
                "; recorded before the install, ingested because {waiver} asked"
            )),
            None => {
                return Ok(skipped(
                    job,
                    rule.reason,
                    format!("{}{passed_over}", rule.message),
                ));
            }
        }
    }
    let skip = |job: NewJob, rule: rules::Skip| {
        Ok(skipped(
            job,
            rule.reason,
            format!("{}{passed_over}", rule.message),
        ))
    };

    // 4. The host must be an active user of the institution.
    let host = rules::host_match_key(&recording.host_email);
    let found = store
        .lookup_user_by_email(&account.institution_id, &host)
        .await?;
    let owner = match rules::check_host_match(&host, found) {
        Ok(owner) => owner,
        Err(rule) => return skip(job, rule),
    };
    // ... and must not have opted out (nor, where the configuration ingests
    // only users who opted in, have said nothing).
    let configuration = configuration_of(store, &account).await?;
    let (ingest_mode, configuration_name, priority) = match &configuration {
        Some(c) => (
            c.ingest_mode,
            c.display_name.as_str(),
            c.view_priority.as_slice(),
        ),
        None => (
            Default::default(),
            account.configuration_id.as_str(),
            &[][..],
        ),
    };
    if let Err(rule) = rules::check_ingest_choice(
        ingest_mode,
        owner.ingest_choice,
        &owner.email,
        configuration_name,
    ) {
        return skip(job, rule);
    }
    job.owner_user_id = Some(owner.user_id);

    // 5. One view.
    let Some(chosen) = rules::choose_view(&segment.files, priority) else {
        let processing = segment
            .files
            .iter()
            .filter(|f| f.is_media() && !f.is_ready())
            .count();
        let message = format!(
            "the first segment has no completed MP4 or audio-only M4A ({} file(s), {processing} still processing)",
            segment.files.len()
        );
        return skip(
            job,
            rules::Skip {
                reason: SkipReason::NoDownloadableFile,
                message,
            },
        );
    };
    job.recording_file = Some(RecordingFile {
        file_id: chosen.id.clone(),
        recording_type: chosen.recording_type.clone(),
        file_type: chosen.file_type.clone(),
        file_extension: chosen.file_extension.clone(),
        file_size: chosen.file_size,
        recording_start: chosen.recording_start,
        recording_end: chosen.recording_end.unwrap_or(chosen.recording_start),
    });
    job.sealed_download_url = chosen
        .download_url
        .as_deref()
        .map(|url| secret_box.seal_str(url));

    // 6. Caps, from Zoom's metadata (the transfer enforces them again).
    if let Err(rule) = rules::check_metadata_caps(chosen, recording.duration_minutes, caps) {
        return skip(job, rule);
    }

    // 7. Queued for transfer.
    job.message = format!("chose {}{passed_over}", chosen.recording_type);
    Ok(Decision::Job(Box::new(job)))
}

fn skipped(mut job: NewJob, reason: SkipReason, message: String) -> Decision {
    job.state = JobState::Skipped;
    job.skip_reason = Some(reason);
    job.message = message;
    Decision::Job(Box::new(job))
}

/// The configuration the account installed with: its view priority and
/// ingest mode apply to the account's recordings.
async fn configuration_of(
    store: &dyn Store,
    account: &ZoomAccount,
) -> Result<Option<ZoomConfiguration>, StoreError> {
    match store
        .get_configuration(&account.institution_id, &account.configuration_id)
        .await
    {
        Ok(configuration) => Ok(Some(configuration)),
        // An account outlives its deleted configuration only while being
        // uninstalled; the defaults are right for it.
        Err(StoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}
