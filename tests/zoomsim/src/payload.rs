//! `recording.completed` payloads, built like ZOOM.md's example, and the
//! later `recording.transcript_completed` of a meeting.

use ferry_control::model::Timestamp;
use rand::Rng;
use serde_json::{Value, json};

/// One file of a recording.
#[derive(Clone, Debug)]
pub struct FileSpec {
    pub id: String,
    /// Seconds after the meeting's start at which this file's segment began.
    pub start_offset_secs: i64,
    /// Length of the file's recording in seconds.
    pub length_secs: i64,
    pub file_type: String,
    pub recording_type: String,
    pub status: String,
    pub file_size: u64,
    pub download_url: Option<String>,
}

impl FileSpec {
    fn new(
        file_type: &str,
        recording_type: &str,
        start_offset_secs: i64,
        length_secs: i64,
        file_size: u64,
    ) -> Self {
        FileSpec {
            id: random_file_id(),
            start_offset_secs,
            length_secs,
            file_type: file_type.into(),
            recording_type: recording_type.into(),
            status: "completed".into(),
            file_size,
            download_url: None,
        }
    }

    pub fn mp4(
        recording_type: &str,
        start_offset_secs: i64,
        length_secs: i64,
        file_size: u64,
    ) -> Self {
        Self::new(
            "MP4",
            recording_type,
            start_offset_secs,
            length_secs,
            file_size,
        )
    }

    pub fn audio(start_offset_secs: i64, length_secs: i64, file_size: u64) -> Self {
        Self::new(
            "M4A",
            "audio_only",
            start_offset_secs,
            length_secs,
            file_size,
        )
    }

    pub fn chat(start_offset_secs: i64) -> Self {
        Self::new("CHAT", "chat_file", start_offset_secs, 0, 1200)
    }

    pub fn transcript(start_offset_secs: i64, length_secs: i64) -> Self {
        Self::new(
            "TRANSCRIPT",
            "audio_transcript",
            start_offset_secs,
            length_secs,
            5000,
        )
    }

    pub fn captions(start_offset_secs: i64, length_secs: i64) -> Self {
        Self::new("CC", "closed_caption", start_offset_secs, length_secs, 4000)
    }

    /// The extension Zoom gives the file's type: `VTT` for transcripts and
    /// captions, `TXT` for chat, the type itself for media.
    pub fn file_extension(&self) -> &str {
        match self.file_type.as_str() {
            "TRANSCRIPT" | "CC" => "VTT",
            "CHAT" => "TXT",
            other => other,
        }
    }

    pub fn processing(mut self) -> Self {
        self.status = "processing".into();
        self
    }
}

fn random_file_id() -> String {
    let bits: u128 = rand::rng().random();
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A meeting uuid as Zoom makes them: base64 of 16 bytes, so it may hold
/// `/` and `+`. This one always holds both.
pub fn random_meeting_uuid() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = rand::rng();
    let mut uuid: String = (0..20)
        .map(|_| ALPHABET[rng.random_range(0..64)] as char)
        .collect();
    uuid.insert(3, '/');
    uuid.insert(9, '+');
    uuid.push_str("==");
    uuid
}

/// A recorded meeting: what one `recording.completed` describes.
#[derive(Clone, Debug)]
pub struct Meeting {
    pub account_id: String,
    pub uuid: String,
    pub meeting_id: u64,
    pub host_email: String,
    pub topic: String,
    pub start: Timestamp,
    /// Zoom's `duration` in minutes; some webhooks say 0.
    pub duration_minutes: u64,
    pub files: Vec<FileSpec>,
    pub download_token: String,
    pub event_ts: i64,
    /// Where download URLs point: `{download_base}/rec/webhook_download/{file id}`.
    pub download_base: String,
}

impl Meeting {
    /// A one-hour lecture starting `start`, recorded as shared screen with
    /// speaker view, plus audio, chat and transcript (one segment).
    pub fn lecture(account_id: &str, host_email: &str, start: Timestamp) -> Self {
        Meeting {
            account_id: account_id.into(),
            uuid: random_meeting_uuid(),
            meeting_id: rand::rng().random_range(10_000_000_000..99_999_999_999),
            host_email: host_email.into(),
            topic: "Lecture 3: Streams / Bytes + Backpressure 🚀".into(),
            start,
            duration_minutes: 61,
            files: vec![
                FileSpec::mp4("shared_screen_with_speaker_view", 5, 3600, 3_400_000),
                FileSpec::audio(5, 3600, 900_000),
                FileSpec::chat(5),
                FileSpec::transcript(5, 3600),
            ],
            download_token: format!("eyJ0eXAiOiJKV1Qi.{}", random_file_id()),
            event_ts: start.0 + 3_700_000,
            download_base: "https://us06web.zoom.us".into(),
        }
    }

    pub fn with_files(mut self, files: Vec<FileSpec>) -> Self {
        self.files = files;
        self
    }

    /// The `recording.completed` event, serialised.
    pub fn recording_completed_body(&self) -> Vec<u8> {
        self.recording_completed().to_string().into_bytes()
    }

    pub fn recording_completed(&self) -> Value {
        self.event("recording.completed", &self.files, &self.download_token)
    }

    /// `recording.transcript_completed` for this meeting: the same envelope,
    /// with its own `download_token` and only the transcript file.
    pub fn transcript_completed_body(
        &self,
        transcript: &FileSpec,
        download_token: &str,
    ) -> Vec<u8> {
        let mut event = self.event(
            "recording.transcript_completed",
            std::slice::from_ref(transcript),
            download_token,
        );
        event["event_ts"] = json!(self.event_ts + 600_000);
        event.to_string().into_bytes()
    }

    fn event(&self, name: &str, files: &[FileSpec], download_token: &str) -> Value {
        let total_size: u64 = files.iter().map(|f| f.file_size).sum();
        let files: Vec<Value> = files
            .iter()
            .map(|f| {
                let start = self.start.saturating_add_millis(f.start_offset_secs * 1000);
                let end = start.saturating_add_millis(f.length_secs * 1000);
                let url = f.download_url.clone().unwrap_or_else(|| {
                    format!("{}/rec/webhook_download/{}", self.download_base, f.id)
                });
                json!({
                    "id": f.id,
                    "meeting_id": self.uuid,
                    "recording_start": start.to_string(),
                    "recording_end": end.to_string(),
                    "file_type": f.file_type,
                    "file_extension": f.file_extension(),
                    "file_size": f.file_size,
                    "play_url": format!("{}/rec/play/{}", self.download_base, f.id),
                    "download_url": url,
                    "status": f.status,
                    "recording_type": f.recording_type,
                })
            })
            .collect();
        json!({
            "event": name,
            "event_ts": self.event_ts,
            "download_token": download_token,
            "payload": {
                "account_id": self.account_id,
                "object": {
                    "uuid": self.uuid,
                    "id": self.meeting_id,
                    "account_id": self.account_id,
                    "host_id": "z8yCxTTTTSiw02QgCAp8uQ",
                    "host_email": self.host_email,
                    "topic": self.topic,
                    "type": 2,
                    "start_time": self.start.to_string(),
                    "timezone": "America/New_York",
                    "duration": self.duration_minutes,
                    "total_size": total_size,
                    "recording_count": files.len(),
                    "share_url": format!("{}/rec/share/{}", self.download_base, self.meeting_id),
                    "recording_files": files,
                }
            }
        })
    }

    /// The meeting as Zoom's recordings list shows it: the webhook's
    /// `object`, hosted by `host_id`, without `host_email` when
    /// `with_host_email` is false (Zoom's list may omit it).
    pub fn listed(&self, host_id: &str, with_host_email: bool) -> Value {
        let mut object = self.recording_completed()["payload"]["object"].clone();
        object["host_id"] = Value::String(host_id.to_string());
        if !with_host_email && let Some(map) = object.as_object_mut() {
            map.remove("host_email");
        }
        object
    }

    /// `recording.deleted` or `recording.trashed` (`event`) for this meeting.
    pub fn removed_body(&self, event: &str) -> Vec<u8> {
        json!({
            "event": event,
            "event_ts": self.event_ts + 60_000,
            "payload": {
                "account_id": self.account_id,
                "operator": "admin@example.edu",
                "object": { "uuid": self.uuid, "id": self.meeting_id, "account_id": self.account_id,
                    "host_id": "z8yCxTTTTSiw02QgCAp8uQ", "topic": self.topic },
            }
        })
        .to_string()
        .into_bytes()
    }
}
