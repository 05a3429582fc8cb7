//! Where a job's file lands and what it is: the object key (built from ids
//! only, never from the topic or a raw meeting uuid) and its MIME type, and
//! where its companion files land beside it (the video's key stem).

use base64::Engine as _;
use ferry_control::model::{CompanionKind, Job};

/// `{prefix}/{institution}/{account}/{meeting uuid, base64url}/{file id}.{ext}`:
/// ids only, never the topic; the uuid may hold `/` and `+`, so it is encoded.
pub fn object_key(prefix: &str, job: &Job) -> String {
    let file = job.recording_file.as_ref();
    let extension = file
        .map(|f| f.file_extension.to_ascii_lowercase())
        .filter(|e| !e.is_empty() && e.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or_else(|| "mp4".into());
    let file_id: String = file
        .map(|f| f.file_id.as_str())
        .unwrap_or("file")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    let uuid = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(job.meeting_uuid.as_bytes());
    let prefix = prefix.trim_matches('/');
    let parts = [
        job.institution_id.as_str(),
        job.zoom_account_id.as_str(),
        &uuid,
    ];
    let safe = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let mut key = String::new();
    if !prefix.is_empty() {
        key.push_str(prefix);
        key.push('/');
    }
    for part in parts {
        key.push_str(&safe(part));
        key.push('/');
    }
    key.push_str(&format!("{file_id}.{extension}"));
    key
}

/// A companion's key: the video's key with its extension replaced by the
/// kind's suffix, `.../{file id}.mp4` beside `.../{file id}.transcript.vtt`.
pub fn companion_key(prefix: &str, job: &Job, kind: CompanionKind) -> String {
    let video = object_key(prefix, job);
    let stem = video
        .rsplit_once('.')
        .map_or(video.as_str(), |(stem, _)| stem);
    format!("{stem}.{}", kind.key_suffix())
}

/// The MIME type of the job's file: audio-only M4A, or MP4 video.
pub fn content_type(job: &Job) -> &'static str {
    match &job.recording_file {
        Some(file) if file.file_type == "M4A" => "audio/mp4",
        _ => "video/mp4",
    }
}
