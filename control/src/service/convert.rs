//! Conversions between the domain model and the `ferry.v1` messages. Secrets
//! never pass through here: no model type carries one in plaintext.

use tonic::Status;

use crate::api;
use crate::model::*;

pub(crate) fn timestamp(t: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.0.div_euclid(1000),
        nanos: (t.0.rem_euclid(1000) * 1_000_000) as i32,
    }
}

fn optional_timestamp(t: Option<Timestamp>) -> Option<prost_types::Timestamp> {
    t.map(timestamp)
}

pub(crate) fn from_timestamp(field: &str, t: &prost_types::Timestamp) -> Result<Timestamp, Status> {
    if !(0..1_000_000_000).contains(&t.nanos) {
        return Err(Status::invalid_argument(format!(
            "{field}: nanos out of range"
        )));
    }
    let millis = t
        .seconds
        .checked_mul(1000)
        .and_then(|ms| ms.checked_add(i64::from(t.nanos / 1_000_000)))
        .ok_or_else(|| Status::invalid_argument(format!("{field}: out of range")))?;
    Ok(Timestamp(millis))
}

pub(crate) fn institution(i: Institution) -> api::Institution {
    api::Institution {
        institution_id: i.institution_id,
        display_name: i.display_name,
        create_time: Some(timestamp(i.created_at)),
    }
}

pub(crate) fn admin_key(k: AdminKey) -> api::AdminKey {
    api::AdminKey {
        key_id: k.key_id,
        institution_id: k.institution_id,
        name: k.name,
        create_time: Some(timestamp(k.created_at)),
        revoke_time: optional_timestamp(k.revoked_at),
    }
}

pub(crate) fn configuration(c: ZoomConfiguration) -> api::ZoomConfiguration {
    api::ZoomConfiguration {
        configuration_id: c.configuration_id,
        institution_id: c.institution_id,
        display_name: c.display_name,
        view_priority: c.view_priority,
        create_time: Some(timestamp(c.created_at)),
        token_issue_time: Some(timestamp(c.token_issued_at)),
        installed_account_count: c.installed_account_count,
        ingest_mode: ingest_mode_to_api(c.ingest_mode) as i32,
        after_copy: after_copy_to_api(c.after_copy) as i32,
    }
}

pub(crate) fn ingest_mode_to_api(mode: IngestMode) -> api::IngestMode {
    match mode {
        IngestMode::AllMatchingUsers => api::IngestMode::AllMatchingUsers,
        IngestMode::OptedInUsers => api::IngestMode::OptedInUsers,
    }
}

/// `None` for UNSPECIFIED (the default on create, no change on update).
pub(crate) fn ingest_mode_from_api(value: i32) -> Result<Option<IngestMode>, Status> {
    match api::IngestMode::try_from(value) {
        Ok(api::IngestMode::Unspecified) => Ok(None),
        Ok(api::IngestMode::AllMatchingUsers) => Ok(Some(IngestMode::AllMatchingUsers)),
        Ok(api::IngestMode::OptedInUsers) => Ok(Some(IngestMode::OptedInUsers)),
        Err(_) => Err(Status::invalid_argument(format!(
            "ingest_mode: unknown value {value}"
        ))),
    }
}

pub(crate) fn after_copy_to_api(action: AfterCopy) -> api::AfterCopy {
    match action {
        AfterCopy::Keep => api::AfterCopy::Keep,
        AfterCopy::Trash => api::AfterCopy::Trash,
    }
}

/// `None` for UNSPECIFIED (the default on create, no change on update).
pub(crate) fn after_copy_from_api(value: i32) -> Result<Option<AfterCopy>, Status> {
    match api::AfterCopy::try_from(value) {
        Ok(api::AfterCopy::Unspecified) => Ok(None),
        Ok(api::AfterCopy::Keep) => Ok(Some(AfterCopy::Keep)),
        Ok(api::AfterCopy::Trash) => Ok(Some(AfterCopy::Trash)),
        Err(_) => Err(Status::invalid_argument(format!(
            "after_copy: unknown value {value}"
        ))),
    }
}

pub(crate) fn ingest_choice_to_api(choice: IngestChoice) -> api::IngestChoice {
    match choice {
        IngestChoice::Default => api::IngestChoice::Default,
        IngestChoice::OptedIn => api::IngestChoice::OptedIn,
        IngestChoice::OptedOut => api::IngestChoice::OptedOut,
    }
}

/// UNSPECIFIED is DEFAULT: a record that says nothing puts the user back
/// to following the configuration's mode.
pub(crate) fn ingest_choice_from_api(value: i32) -> Result<IngestChoice, &'static str> {
    match api::IngestChoice::try_from(value) {
        Ok(api::IngestChoice::Unspecified | api::IngestChoice::Default) => {
            Ok(IngestChoice::Default)
        }
        Ok(api::IngestChoice::OptedIn) => Ok(IngestChoice::OptedIn),
        Ok(api::IngestChoice::OptedOut) => Ok(IngestChoice::OptedOut),
        Err(_) => Err("ingest_choice: not one of default, opted_in, opted_out"),
    }
}

fn zoom_trash(t: ZoomTrash) -> api::ZoomTrash {
    api::ZoomTrash {
        state: match t.state {
            ZoomTrashState::Pending => api::ZoomTrashState::Pending,
            ZoomTrashState::Trashed => api::ZoomTrashState::Trashed,
            ZoomTrashState::Failed => api::ZoomTrashState::Failed,
        } as i32,
        message: t.message,
        attempts: t.attempts,
        next_attempt_time: optional_timestamp(t.next_attempt_at),
    }
}

pub(crate) fn plan_to_api(plan: ZoomPlan) -> api::ZoomPlan {
    match plan {
        ZoomPlan::Free => api::ZoomPlan::Free,
        ZoomPlan::Pro => api::ZoomPlan::Pro,
        ZoomPlan::Business => api::ZoomPlan::Business,
        ZoomPlan::Education => api::ZoomPlan::Education,
        ZoomPlan::Api => api::ZoomPlan::Api,
        ZoomPlan::Enterprise => api::ZoomPlan::Enterprise,
        ZoomPlan::Licensed => api::ZoomPlan::Licensed,
    }
}

pub(crate) fn plan_from_api(value: i32) -> Result<ZoomPlan, Status> {
    match api::ZoomPlan::try_from(value) {
        Ok(api::ZoomPlan::Free) => Ok(ZoomPlan::Free),
        Ok(api::ZoomPlan::Pro) => Ok(ZoomPlan::Pro),
        Ok(api::ZoomPlan::Business) => Ok(ZoomPlan::Business),
        Ok(api::ZoomPlan::Education) => Ok(ZoomPlan::Education),
        Ok(api::ZoomPlan::Api) => Ok(ZoomPlan::Api),
        Ok(api::ZoomPlan::Enterprise) => Ok(ZoomPlan::Enterprise),
        Ok(api::ZoomPlan::Licensed) => Ok(ZoomPlan::Licensed),
        Ok(api::ZoomPlan::Unspecified) => Err(Status::invalid_argument("plan: required")),
        Err(_) => Err(Status::invalid_argument(format!(
            "plan: unknown value {value}"
        ))),
    }
}

pub(crate) fn account(a: ZoomAccount) -> api::ZoomAccount {
    api::ZoomAccount {
        zoom_account_id: a.zoom_account_id,
        institution_id: a.institution_id,
        configuration_id: a.configuration_id,
        plan: plan_to_api(a.plan) as i32,
        install_time: Some(timestamp(a.installed_at)),
        uninstall_time: optional_timestamp(a.uninstalled_at),
        has_oauth_credentials: a.oauth.is_some(),
        oauth_client_id: a.oauth.map(|o| o.client_id).unwrap_or_default(),
    }
}

pub(crate) fn role_to_api(role: UserRole) -> api::UserRole {
    match role {
        UserRole::Admin => api::UserRole::Admin,
        UserRole::Instructor => api::UserRole::Instructor,
        UserRole::Student => api::UserRole::Student,
    }
}

pub(crate) fn role_from_api(value: i32) -> Result<UserRole, &'static str> {
    match api::UserRole::try_from(value) {
        Ok(api::UserRole::Admin) => Ok(UserRole::Admin),
        Ok(api::UserRole::Instructor) => Ok(UserRole::Instructor),
        Ok(api::UserRole::Student) => Ok(UserRole::Student),
        Ok(api::UserRole::Unspecified) => {
            Err("role: missing or not one of admin, instructor, student")
        }
        Err(_) => Err("role: unknown value"),
    }
}

pub(crate) fn user(u: User) -> api::User {
    api::User {
        user_id: u.user_id,
        institution_id: u.institution_id,
        external_id: u.external_id,
        email: u.email,
        alternate_zoom_email: u.alternate_zoom_email.unwrap_or_default(),
        display_name: u.display_name,
        role: role_to_api(u.role) as i32,
        active: u.active,
        create_time: Some(timestamp(u.created_at)),
        update_time: Some(timestamp(u.updated_at)),
        ingest_choice: ingest_choice_to_api(u.ingest_choice) as i32,
    }
}

pub(crate) fn sync_mode_to_api(mode: SyncMode) -> api::SyncMode {
    match mode {
        SyncMode::Full => api::SyncMode::Full,
        SyncMode::Upsert => api::SyncMode::Upsert,
    }
}

/// A sync header's mode: FULL or UPSERT, never unset.
pub(crate) fn sync_mode_from_api(value: i32) -> Result<SyncMode, Status> {
    match api::SyncMode::try_from(value) {
        Ok(api::SyncMode::Full) => Ok(SyncMode::Full),
        Ok(api::SyncMode::Upsert) => Ok(SyncMode::Upsert),
        _ => Err(Status::invalid_argument(
            "header.mode: required (FULL or UPSERT)",
        )),
    }
}

pub(crate) fn job_state_to_api(state: JobState) -> api::JobState {
    match state {
        JobState::Queued => api::JobState::Queued,
        JobState::Transferring => api::JobState::Transferring,
        JobState::Completed => api::JobState::Completed,
        JobState::Skipped => api::JobState::Skipped,
        JobState::Failed => api::JobState::Failed,
        JobState::Cancelled => api::JobState::Cancelled,
    }
}

pub(crate) fn job_state_from_api(value: i32) -> Result<JobState, Status> {
    match api::JobState::try_from(value) {
        Ok(api::JobState::Queued) => Ok(JobState::Queued),
        Ok(api::JobState::Transferring) => Ok(JobState::Transferring),
        Ok(api::JobState::Completed) => Ok(JobState::Completed),
        Ok(api::JobState::Skipped) => Ok(JobState::Skipped),
        Ok(api::JobState::Failed) => Ok(JobState::Failed),
        Ok(api::JobState::Cancelled) => Ok(JobState::Cancelled),
        Ok(api::JobState::Unspecified) | Err(_) => Err(Status::invalid_argument(format!(
            "states: unknown job state {value}"
        ))),
    }
}

pub(crate) fn skip_reason_to_api(reason: SkipReason) -> api::SkipReason {
    match reason {
        SkipReason::NoMatchingUser => api::SkipReason::NoMatchingUser,
        SkipReason::RecordedBeforeInstall => api::SkipReason::RecordedBeforeInstall,
        SkipReason::TooLong => api::SkipReason::TooLong,
        SkipReason::TooLarge => api::SkipReason::TooLarge,
        SkipReason::NoDownloadableFile => api::SkipReason::NoDownloadableFile,
        SkipReason::UserOptedOut => api::SkipReason::UserOptedOut,
    }
}

/// `None` for UNSPECIFIED (no filter).
pub(crate) fn skip_reason_from_api(value: i32) -> Result<Option<SkipReason>, Status> {
    match api::SkipReason::try_from(value) {
        Ok(api::SkipReason::Unspecified) => Ok(None),
        Ok(api::SkipReason::NoMatchingUser) => Ok(Some(SkipReason::NoMatchingUser)),
        Ok(api::SkipReason::RecordedBeforeInstall) => Ok(Some(SkipReason::RecordedBeforeInstall)),
        Ok(api::SkipReason::TooLong) => Ok(Some(SkipReason::TooLong)),
        Ok(api::SkipReason::TooLarge) => Ok(Some(SkipReason::TooLarge)),
        Ok(api::SkipReason::NoDownloadableFile) => Ok(Some(SkipReason::NoDownloadableFile)),
        Ok(api::SkipReason::UserOptedOut) => Ok(Some(SkipReason::UserOptedOut)),
        Err(_) => Err(Status::invalid_argument(format!(
            "skip_reason: unknown value {value}"
        ))),
    }
}

pub(crate) fn job(j: Job) -> api::Job {
    api::Job {
        job_id: j.job_id,
        institution_id: j.institution_id,
        zoom_account_id: j.zoom_account_id,
        meeting_uuid: j.meeting_uuid,
        meeting_id: j.meeting_id,
        topic: j.topic,
        host_email: j.host_email,
        meeting_start_time: optional_timestamp(j.meeting_start),
        state: job_state_to_api(j.state) as i32,
        skip_reason: j
            .skip_reason
            .map_or(api::SkipReason::Unspecified, skip_reason_to_api) as i32,
        message: j.message,
        owner_user_id: j.owner_user_id.unwrap_or_default(),
        recording_file: j.recording_file.map(|f| api::RecordingFile {
            file_id: f.file_id,
            recording_type: f.recording_type,
            file_type: f.file_type,
            file_extension: f.file_extension,
            file_size: f.file_size,
            recording_start_time: Some(timestamp(f.recording_start)),
            recording_end_time: Some(timestamp(f.recording_end)),
        }),
        skipped_file_count: j.skipped_file_count,
        skipped_segment_count: j.skipped_segment_count,
        bytes_transferred: j.bytes_transferred,
        total_bytes: j.total_bytes,
        attempt_count: j.attempt_count,
        media_id: j.media_id.unwrap_or_default(),
        create_time: Some(timestamp(j.created_at)),
        update_time: Some(timestamp(j.updated_at)),
        finish_time: optional_timestamp(j.finished_at),
        detected_mid_stream: j.detected_mid_stream,
        attempts: Vec::new(),
        source: job_source_to_api(j.source) as i32,
        zoom_trash: j.zoom_trash.map(zoom_trash),
        companions: Vec::new(),
    }
}

pub(crate) fn job_source_to_api(source: JobSource) -> api::JobSource {
    match source {
        JobSource::Webhook => api::JobSource::Webhook,
        JobSource::Reconcile => api::JobSource::Reconcile,
        JobSource::Backfill => api::JobSource::Backfill,
    }
}

/// `None` for UNSPECIFIED (no filter).
pub(crate) fn job_source_from_api(value: i32) -> Result<Option<JobSource>, Status> {
    match api::JobSource::try_from(value) {
        Ok(api::JobSource::Unspecified) => Ok(None),
        Ok(api::JobSource::Webhook) => Ok(Some(JobSource::Webhook)),
        Ok(api::JobSource::Reconcile) => Ok(Some(JobSource::Reconcile)),
        Ok(api::JobSource::Backfill) => Ok(Some(JobSource::Backfill)),
        Err(_) => Err(Status::invalid_argument(format!(
            "source: unknown value {value}"
        ))),
    }
}

pub(crate) fn backfill(b: Backfill) -> api::Backfill {
    let (total_days, days_done) = (b.total_days(), b.days_done());
    api::Backfill {
        backfill_id: b.backfill_id,
        institution_id: b.institution_id,
        zoom_account_id: b.zoom_account_id,
        from: b.cursor.from.to_string(),
        to: b.cursor.to.to_string(),
        state: match b.state {
            BackfillState::Running => api::BackfillState::Running,
            BackfillState::Completed => api::BackfillState::Completed,
            BackfillState::Failed => api::BackfillState::Failed,
            BackfillState::Cancelled => api::BackfillState::Cancelled,
        } as i32,
        message: b.message,
        meetings_seen: b.counts.meetings_seen,
        jobs_created: b.counts.jobs_created,
        duplicates: b.counts.duplicates,
        not_ready: b.counts.not_ready,
        skipped: b
            .counts
            .skipped
            .iter()
            .map(|(reason, count)| api::BackfillSkipCount {
                reason: skip_reason_to_api(*reason) as i32,
                count: *count,
            })
            .collect(),
        days_done,
        total_days,
        create_time: Some(timestamp(b.created_at)),
        update_time: Some(timestamp(b.updated_at)),
        finish_time: optional_timestamp(b.finished_at),
    }
}

pub(crate) fn job_attempt(a: JobAttempt) -> api::JobAttempt {
    api::JobAttempt {
        attempt: a.attempt,
        worker_id: a.worker_id,
        start_time: Some(timestamp(a.started_at)),
        resumed_from_bytes: a.resumed_from_bytes,
        note: a.note,
    }
}

pub(crate) fn media(m: Media) -> api::Media {
    api::Media {
        media_id: m.media_id,
        institution_id: m.institution_id,
        owner_user_id: m.owner_user_id,
        title: m.title,
        duration_ms: m.duration_ms,
        size_bytes: m.size_bytes,
        checksum: m.checksum,
        object_key: m.object_key,
        meeting_id: m.meeting_id,
        meeting_uuid: m.meeting_uuid,
        recorded_time: optional_timestamp(m.recorded_at),
        job_id: m.job_id,
        create_time: Some(timestamp(m.created_at)),
        content_type: m.content_type,
        companions: Vec::new(),
        section_ids: m.section_ids,
    }
}

pub(crate) fn section(s: Section) -> api::Section {
    api::Section {
        section_id: s.section_id,
        institution_id: s.institution_id,
        external_id: s.external_id,
        name: s.name,
        active: s.active,
        create_time: Some(timestamp(s.created_at)),
        update_time: Some(timestamp(s.updated_at)),
    }
}

pub(crate) fn section_mapping(m: SectionMapping) -> api::SectionMapping {
    api::SectionMapping {
        mapping_id: m.mapping_id,
        configuration_id: m.configuration_id,
        matcher: Some(match m.matcher {
            SectionMatcher::MeetingId(id) => api::section_mapping::Matcher::MeetingId(id),
            SectionMatcher::TopicPrefix(prefix) => {
                api::section_mapping::Matcher::TopicPrefix(prefix)
            }
        }),
        section_ids: m.section_ids,
    }
}

pub(crate) fn companion_kind_to_api(kind: CompanionKind) -> api::CompanionKind {
    match kind {
        CompanionKind::Transcript => api::CompanionKind::Transcript,
        CompanionKind::ClosedCaptions => api::CompanionKind::ClosedCaptions,
        CompanionKind::Chat => api::CompanionKind::Chat,
    }
}

pub(crate) fn companion_state_to_api(state: CompanionState) -> api::CompanionState {
    match state {
        CompanionState::Pending => api::CompanionState::Pending,
        CompanionState::Copied => api::CompanionState::Copied,
        CompanionState::Missing => api::CompanionState::Missing,
        CompanionState::Refused => api::CompanionState::Refused,
        CompanionState::Failed => api::CompanionState::Failed,
    }
}

/// A job's companion, as GetJob shows it.
pub(crate) fn companion_status(c: Companion) -> api::CompanionStatus {
    api::CompanionStatus {
        kind: companion_kind_to_api(c.kind) as i32,
        state: companion_state_to_api(c.state) as i32,
        reason: c.reason,
        file_id: c.file_id,
        size_bytes: if c.state == CompanionState::Copied {
            c.size_bytes
        } else {
            c.file_size
        },
    }
}

/// A media's copied companions, as GetMedia lists them.
pub(crate) fn companion_files(companions: Vec<Companion>) -> Vec<api::CompanionFile> {
    companions
        .into_iter()
        .filter(|c| c.state == CompanionState::Copied)
        .map(|c| api::CompanionFile {
            kind: companion_kind_to_api(c.kind) as i32,
            object_key: c.object_key,
            size_bytes: c.size_bytes,
            checksum: c.checksum,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_including_before_1970() {
        for millis in [0, 1, 999, 1_701_461_023_456, -1, -1500] {
            let t = Timestamp(millis);
            assert_eq!(from_timestamp("t", &timestamp(t)).unwrap(), t);
        }
    }
}
