//! `recording.transcript_completed`: Zoom's later event carrying a meeting's
//! audio transcript (same envelope as `recording.completed`, with its own
//! download token). The transcript is attached to the meeting's job as a
//! pending companion file, whatever state the job is in: the transfer
//! engine copies it once the job has completed (at once, for a job already
//! completed). A redelivery attaches nothing twice; a transcript not yet
//! copied takes the fresher token. Never copies anything itself, and never
//! logs the URL or the token.

use ferry_control::model::{CompanionKind, NewCompanion, Timestamp};
use ferry_control::zoom::{self, WebhookEnvelope};
use serde_json::json;

use super::{Intake, IntakeError, store_failed};

impl Intake {
    pub(super) async fn transcript_completed(
        &self,
        envelope: WebhookEnvelope,
        now: Timestamp,
    ) -> Result<(&'static str, serde_json::Value), IntakeError> {
        if !self.config.companions.enabled {
            return Ok(("ignored", json!({ "status": "ignored" })));
        }
        let recording = zoom::parse_recording_completed(&envelope.payload)
            .map_err(|e| IntakeError::BadRequest(e.0))?;
        let transcript = recording.files.iter().find(|f| {
            CompanionKind::of_file_type(&f.file_type) == Some(CompanionKind::Transcript)
                && f.is_ready()
        });
        let Some((file, url)) = transcript
            .and_then(|f| Some((f, f.download_url.as_deref().filter(|u| !u.is_empty())?)))
        else {
            return Ok(("ignored", json!({ "status": "ignored" })));
        };
        let companion = NewCompanion {
            kind: CompanionKind::Transcript,
            file_id: file.id.clone(),
            file_size: file.file_size,
            sealed_download_url: self.secret_box.seal_str(url),
            sealed_download_token: envelope
                .download_token
                .as_deref()
                .filter(|t| !t.is_empty())
                .map(|t| self.secret_box.seal_str(t)),
        };
        let attached = self
            .store
            .attach_companion(
                &recording.account_id,
                &recording.meeting_uuid,
                companion,
                now,
            )
            .await
            .map_err(store_failed("attach a transcript"))?;
        match attached {
            None => Ok(("ignored", json!({ "status": "ignored" }))),
            Some(attached) => {
                tracing::info!(job = %attached.job_id, attached = attached.attached,
                    "late transcript received");
                let outcome = if attached.attached {
                    "transcript_attached"
                } else {
                    "duplicate"
                };
                Ok((
                    outcome,
                    json!({ "job_id": attached.job_id, "attached": attached.attached }),
                ))
            }
        }
    }
}
