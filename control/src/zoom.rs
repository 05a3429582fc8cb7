//! Zoom's webhook payloads as they arrive on the wire, and their validation
//! into the typed `Recording` the ingest rules work on. Field names follow
//! Zoom's JSON exactly (see ZOOM.md); anything the rules need but the payload
//! lacks is a `PayloadError` naming the JSON path.

use serde::{Deserialize, Serialize};

use crate::model::Timestamp;

/// The outer shape of every Zoom event.
#[derive(Debug, Deserialize)]
pub struct WebhookEnvelope {
    pub event: String,
    /// Milliseconds since the epoch.
    #[serde(default)]
    pub event_ts: Option<i64>,
    /// Sits beside `payload` on `recording.completed`; valid for 24 hours.
    #[serde(default)]
    pub download_token: Option<String>,
    #[serde(default)]
    pub payload: serde_json::Value,
}

/// `payload` of `endpoint.url_validation`.
#[derive(Debug, Deserialize)]
pub struct UrlValidationPayload {
    #[serde(rename = "plainToken")]
    pub plain_token: String,
}

/// `payload` of `app_deauthorized`.
#[derive(Debug, Deserialize)]
pub struct DeauthorizedPayload {
    pub account_id: String,
}

#[derive(Debug, Deserialize)]
struct RecordingCompletedPayload {
    #[serde(default)]
    account_id: Option<String>,
    object: Option<WireMeeting>,
}

#[derive(Debug, Deserialize)]
struct WireMeeting {
    uuid: Option<String>,
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    account_id: Option<String>,
    host_email: Option<String>,
    #[serde(default)]
    topic: Option<String>,
    #[serde(default)]
    start_time: Option<String>,
    #[serde(default)]
    duration: Option<i64>,
    recording_files: Option<Vec<WireRecordingFile>>,
}

#[derive(Debug, Deserialize)]
struct WireRecordingFile {
    id: Option<String>,
    recording_start: Option<String>,
    #[serde(default)]
    recording_end: Option<String>,
    file_type: Option<String>,
    #[serde(default)]
    file_extension: Option<String>,
    #[serde(default)]
    file_size: Option<u64>,
    #[serde(default)]
    download_url: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    recording_type: Option<String>,
}

/// A `recording.completed` meeting, validated: everything the rules read is
/// present and typed. Kept (sealed) with the job so a retry can decide again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recording {
    pub account_id: String,
    pub meeting_uuid: String,
    pub meeting_id: u64,
    pub host_email: String,
    pub topic: String,
    pub start_time: Option<Timestamp>,
    /// Minutes, as Zoom reports it; 0 when Zoom did not know.
    pub duration_minutes: u64,
    pub files: Vec<RecordingFileData>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingFileData {
    pub id: String,
    pub recording_start: Timestamp,
    pub recording_end: Option<Timestamp>,
    /// Upper-cased: MP4, M4A, CHAT, TRANSCRIPT, ...
    pub file_type: String,
    pub file_extension: String,
    /// 0 when Zoom did not say.
    pub file_size: u64,
    pub download_url: Option<String>,
    /// Lower-cased; empty when Zoom did not say.
    pub status: String,
    pub recording_type: String,
}

impl RecordingFileData {
    /// A file Zoom has finished: status `completed` (or absent, as in older
    /// payloads). `processing` and anything else is not ready.
    pub fn is_ready(&self) -> bool {
        self.status.is_empty() || self.status == "completed"
    }

    /// The kinds of file the rules may copy: MP4 video, audio-only M4A.
    pub fn is_media(&self) -> bool {
        self.file_type == "MP4" || self.file_type == "M4A"
    }
}

/// Why a payload cannot be decided; the message names the JSON path.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct PayloadError(pub String);

fn missing(path: &str) -> PayloadError {
    PayloadError(format!("{path}: missing"))
}

fn timestamp(path: &str, text: &str) -> Result<Timestamp, PayloadError> {
    Timestamp::parse_rfc3339(text)
        .ok_or_else(|| PayloadError(format!("{path}: not an RFC 3339 time")))
}

/// serde quotes offending values in its messages (`invalid type: string
/// "…"`); a value may be a download URL or token, so drop every quoted part.
fn without_quoted_values(message: &str) -> String {
    let mut kept = String::with_capacity(message.len());
    let mut quoted = false;
    for c in message.chars() {
        if c == '"' {
            if !quoted {
                kept.push_str("<value>");
            }
            quoted = !quoted;
        } else if !quoted {
            kept.push(c);
        }
    }
    kept
}

/// Validates the `payload` of a `recording.completed` event.
pub fn parse_recording_completed(payload: &serde_json::Value) -> Result<Recording, PayloadError> {
    let payload: RecordingCompletedPayload =
        serde_json::from_value(payload.clone()).map_err(|e| {
            PayloadError(format!(
                "payload: {}",
                without_quoted_values(&e.to_string())
            ))
        })?;
    let object = payload.object.ok_or_else(|| missing("payload.object"))?;
    let account_id = payload
        .account_id
        .or(object.account_id)
        .filter(|id| !id.trim().is_empty())
        .ok_or_else(|| missing("payload.account_id"))?;
    let meeting_uuid = object
        .uuid
        .filter(|uuid| !uuid.is_empty())
        .ok_or_else(|| missing("payload.object.uuid"))?;
    let host_email = object
        .host_email
        .filter(|email| !email.trim().is_empty())
        .ok_or_else(|| missing("payload.object.host_email"))?;
    let meeting_id = match object.id {
        None | Some(serde_json::Value::Null) => 0,
        Some(serde_json::Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| PayloadError("payload.object.id: not a meeting number".into()))?,
        Some(serde_json::Value::String(s)) => s
            .parse()
            .map_err(|_| PayloadError("payload.object.id: not a meeting number".into()))?,
        Some(_) => {
            return Err(PayloadError(
                "payload.object.id: not a meeting number".into(),
            ));
        }
    };
    let start_time = object
        .start_time
        .as_deref()
        .map(|t| timestamp("payload.object.start_time", t))
        .transpose()?;
    let duration_minutes = match object.duration {
        Some(minutes) if minutes < 0 => {
            return Err(PayloadError("payload.object.duration: negative".into()));
        }
        Some(minutes) => minutes as u64,
        None => 0,
    };
    let wire_files = object
        .recording_files
        .ok_or_else(|| missing("payload.object.recording_files"))?;
    let mut files = Vec::with_capacity(wire_files.len());
    for (i, file) in wire_files.into_iter().enumerate() {
        let path = |field: &str| format!("payload.object.recording_files[{i}].{field}");
        let file_type = file
            .file_type
            .filter(|t| !t.is_empty())
            .ok_or_else(|| missing(&path("file_type")))?
            .to_ascii_uppercase();
        let data = RecordingFileData {
            id: file
                .id
                .filter(|id| !id.is_empty())
                .ok_or_else(|| missing(&path("id")))?,
            recording_start: timestamp(
                &path("recording_start"),
                file.recording_start
                    .as_deref()
                    .ok_or_else(|| missing(&path("recording_start")))?,
            )?,
            recording_end: file
                .recording_end
                .as_deref()
                .filter(|t| !t.is_empty())
                .map(|t| timestamp(&path("recording_end"), t))
                .transpose()?,
            file_type,
            file_extension: file.file_extension.unwrap_or_default().to_ascii_uppercase(),
            file_size: file.file_size.unwrap_or(0),
            download_url: file.download_url.filter(|u| !u.is_empty()),
            status: file.status.unwrap_or_default().to_ascii_lowercase(),
            recording_type: file.recording_type.unwrap_or_default(),
        };
        // What the rules need of a file that may be copied: its end (the
        // duration cap) and where to download it.
        if data.is_media() && data.is_ready() {
            if data.recording_end.is_none() {
                return Err(missing(&path("recording_end")));
            }
            if data.download_url.is_none() {
                return Err(missing(&path("download_url")));
            }
        }
        files.push(data);
    }
    Ok(Recording {
        account_id,
        meeting_uuid,
        meeting_id,
        host_email,
        topic: object.topic.unwrap_or_default(),
        start_time,
        duration_minutes,
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_errors_never_echo_values() {
        let payload = serde_json::json!({"account_id": "a", "object": {"uuid": "u", "host_email": "h@x.co",
            "recording_files": [{"id": "f", "recording_start": "2023-12-01T20:02:01Z", "file_type": "MP4",
            "file_size": "https://secret.example/download?token=abc"}]}});
        let error = parse_recording_completed(&payload).unwrap_err();
        assert!(!error.0.contains("secret.example"), "{error}");
        assert!(error.0.starts_with("payload:"), "{error}");
    }

    #[test]
    fn missing_fields_are_named_by_path() {
        let payload = serde_json::json!({"account_id": "a", "object": {"uuid": "u", "host_email": "h@x.co",
            "recording_files": [{"id": "f", "recording_start": "2023-12-01T20:02:01Z", "file_type": "MP4",
            "status": "completed", "download_url": "https://zoom.us/x"}]}});
        assert_eq!(
            parse_recording_completed(&payload).unwrap_err().0,
            "payload.object.recording_files[0].recording_end: missing"
        );
        let no_host =
            serde_json::json!({"account_id": "a", "object": {"uuid": "u", "recording_files": []}});
        assert_eq!(
            parse_recording_completed(&no_host).unwrap_err().0,
            "payload.object.host_email: missing"
        );
    }
}
