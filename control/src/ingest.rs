//! Deciding a `recording.completed`: the seed's rules in order, with the
//! store lookups they need (the account's install, the configuration's view
//! priority, the host's user). Shared by the webhook intake and by RetryJob,
//! so a retried job is decided exactly as a fresh event would be.
//!
//! Never stores anything itself; the caller commits the returned job.

use crate::email;
use crate::error::StoreError;
use crate::model::{JobState, NewJob, RecordingFile, SkipReason, Timestamp, ZoomAccount};
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

fn duration_text(ms: i64) -> String {
    let seconds = ms.max(0) / 1000;
    format!(
        "{}h{:02}m{:02}s",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// Applies steps 1 to 7 of the intake rules to `recording`.
pub async fn decide(
    store: &dyn Store,
    secret_box: &SecretBox,
    recording: &Recording,
    download_token: Option<&str>,
    caps: &Caps,
    event_time: Timestamp,
    now: Timestamp,
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
    let passed_over = if segment.skipped_segment_count > 0 {
        format!(
            "; passed over {} later segment(s) ({} file(s)) of a stop/start session",
            segment.skipped_segment_count, segment.skipped_file_count
        )
    } else {
        String::new()
    };
    let skip = |job: NewJob, reason: SkipReason, message: String| {
        Ok(skipped(job, reason, format!("{message}{passed_over}")))
    };

    // 3. Never recordings made before the install.
    if segment.start() < account.installed_at {
        let message = format!(
            "recording started at {}, before zoom account {} was installed at {}",
            segment.start(),
            account.zoom_account_id,
            account.installed_at
        );
        return skip(job, SkipReason::RecordedBeforeInstall, message);
    }

    // 4. The host must be an active user of the institution.
    let host = email::normalize(&recording.host_email);
    let Some(owner) = store
        .lookup_user_by_email(&account.institution_id, &host)
        .await?
    else {
        let message = format!(
            "no active user has the email or alternate zoom email {host}; add or fix the user, then retry the job"
        );
        return skip(job, SkipReason::NoMatchingUser, message);
    };
    job.owner_user_id = Some(owner.user_id);

    // 5. One view.
    let priority = view_priority(store, &account).await?;
    let Some(chosen) = rules::choose_view(&segment.files, &priority) else {
        let processing = segment
            .files
            .iter()
            .filter(|f| f.is_media() && !f.is_ready())
            .count();
        let message = format!(
            "the first segment has no completed MP4 or audio-only M4A ({} file(s), {processing} still processing)",
            segment.files.len()
        );
        return skip(job, SkipReason::NoDownloadableFile, message);
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
    match rules::check_caps(chosen, recording.duration_minutes, caps) {
        Some(SkipReason::TooLong) => {
            let file_ms = chosen
                .recording_end
                .map_or(0, |end| end.0 - chosen.recording_start.0);
            let longest = file_ms.max(recording.duration_minutes as i64 * 60_000);
            let message = format!(
                "the recording lasts {}, longer than the {} cap; download it from zoom and upload it by hand",
                duration_text(longest),
                duration_text(caps.max_duration_ms)
            );
            skip(job, SkipReason::TooLong, message)
        }
        Some(reason) => {
            let message = format!(
                "the file is {} bytes, larger than the {}-byte cap; download it from zoom and upload it by hand",
                chosen.file_size, caps.max_file_bytes
            );
            skip(job, reason, message)
        }
        // 7. Queued for transfer.
        None => {
            job.message = format!("chose {}{passed_over}", chosen.recording_type);
            Ok(Decision::Job(Box::new(job)))
        }
    }
}

fn skipped(mut job: NewJob, reason: SkipReason, message: String) -> Decision {
    job.state = JobState::Skipped;
    job.skip_reason = Some(reason);
    job.message = message;
    Decision::Job(Box::new(job))
}

async fn view_priority(
    store: &dyn Store,
    account: &ZoomAccount,
) -> Result<Vec<String>, StoreError> {
    match store
        .get_configuration(&account.institution_id, &account.configuration_id)
        .await
    {
        Ok(configuration) => Ok(configuration.view_priority),
        // An account outlives its deleted configuration only while being
        // uninstalled; the default order is right for it.
        Err(StoreError::NotFound(_)) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}
