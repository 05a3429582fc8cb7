//! Companion files: the transcript, closed captions and chat that belong
//! with the video a job copies (the chosen segment's `TRANSCRIPT`, `CC` and
//! `CHAT` files), where each stands, and what the store keeps of it. Each
//! kind and state has one text form, used by the store, the CLI and the API.
//!
//! A companion never decides the fate of its job: the video completes
//! whatever its companions do, and a companion's own state says what is
//! missing and why. The choice of companions is `rules::choose_companions`'.

use crate::secrets::Sealed;

use super::{Job, Timestamp};

/// Which file belongs with the video.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CompanionKind {
    /// The audio transcript (`TRANSCRIPT`, WebVTT).
    Transcript,
    /// Closed captions (`CC`, WebVTT).
    ClosedCaptions,
    /// The in-meeting chat (`CHAT`, plain text).
    Chat,
}

impl CompanionKind {
    pub const ALL: [CompanionKind; 3] = [
        CompanionKind::Transcript,
        CompanionKind::ClosedCaptions,
        CompanionKind::Chat,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CompanionKind::Transcript => "transcript",
            CompanionKind::ClosedCaptions => "cc",
            CompanionKind::Chat => "chat",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim().to_ascii_lowercase();
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// The kind of a Zoom `file_type` (upper-cased), if it is a companion's.
    pub fn of_file_type(file_type: &str) -> Option<Self> {
        match file_type {
            "TRANSCRIPT" => Some(CompanionKind::Transcript),
            "CC" => Some(CompanionKind::ClosedCaptions),
            "CHAT" => Some(CompanionKind::Chat),
            _ => None,
        }
    }

    /// What follows the video's key stem: `{file id}.transcript.vtt`.
    pub fn key_suffix(self) -> &'static str {
        match self {
            CompanionKind::Transcript => "transcript.vtt",
            CompanionKind::ClosedCaptions => "cc.vtt",
            CompanionKind::Chat => "chat.txt",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            CompanionKind::Transcript | CompanionKind::ClosedCaptions => "text/vtt",
            CompanionKind::Chat => "text/plain",
        }
    }

    /// Whether the file must be WebVTT (start with `WEBVTT`).
    pub fn is_vtt(self) -> bool {
        !matches!(self, CompanionKind::Chat)
    }
}

/// Where a companion stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CompanionState {
    /// To be copied once its job has completed (or again, after a retry).
    Pending,
    /// In the library beside the video.
    Copied,
    /// Zoom listed it but no longer has it (HTTP 404 or 410).
    Missing,
    /// Larger than the companion cap, or not text: never copied.
    Refused,
    /// The copy failed for good (after the engine's retries).
    Failed,
}

impl CompanionState {
    pub const ALL: [CompanionState; 5] = [
        CompanionState::Pending,
        CompanionState::Copied,
        CompanionState::Missing,
        CompanionState::Refused,
        CompanionState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CompanionState::Pending => "pending",
            CompanionState::Copied => "copied",
            CompanionState::Missing => "missing",
            CompanionState::Refused => "refused",
            CompanionState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim().to_ascii_lowercase();
        Self::ALL.into_iter().find(|state| state.as_str() == text)
    }

    /// The states `RetryJob` sends back to pending: a refused companion is
    /// refused again by the same rules, so it stays.
    pub fn is_retriable(self) -> bool {
        matches!(self, CompanionState::Missing | CompanionState::Failed)
    }
}

/// A companion to copy for a job: planned by the engine from the job's
/// recording, or attached by a later `recording.transcript_completed`
/// (with that event's own download token).
#[derive(Clone, Debug)]
pub struct NewCompanion {
    pub kind: CompanionKind,
    pub file_id: String,
    /// 0 when Zoom did not say.
    pub file_size: u64,
    pub sealed_download_url: Sealed,
    pub sealed_download_token: Option<Sealed>,
}

/// What `attach_companion` did with a late companion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompanionAttached {
    /// The meeting's job.
    pub job_id: String,
    /// False when the job already had it copied, pending or refused (a
    /// redelivery attaches nothing twice; a pending one takes the fresher
    /// URL and token).
    pub attached: bool,
}

/// A companion as stored: its file, its state and, once copied, its object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Companion {
    pub job_id: String,
    pub kind: CompanionKind,
    pub file_id: String,
    /// What Zoom announced (0 when it did not say).
    pub file_size: u64,
    pub state: CompanionState,
    /// Why it is missing, refused or failed; empty otherwise.
    pub reason: String,
    /// Set once copied.
    pub object_key: String,
    pub size_bytes: u64,
    pub checksum: String,
    pub updated_at: Timestamp,
}

/// A pending companion of a completed job, claimed by a transfer worker
/// until `expires_at`, with what it needs to download the file (sealed).
#[derive(Clone, Debug)]
pub struct CompanionLease {
    pub job: Job,
    pub companion: Companion,
    pub sealed_download_url: Option<Sealed>,
    pub sealed_download_token: Option<Sealed>,
}

/// How a companion's copy ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompanionOutcome {
    Copied {
        object_key: String,
        size_bytes: u64,
        checksum: String,
    },
    Missing(String),
    Refused(String),
    Failed(String),
    /// Shutting down: pending again, for another worker.
    Released,
}

impl CompanionOutcome {
    pub fn state(&self) -> CompanionState {
        match self {
            CompanionOutcome::Copied { .. } => CompanionState::Copied,
            CompanionOutcome::Missing(_) => CompanionState::Missing,
            CompanionOutcome::Refused(_) => CompanionState::Refused,
            CompanionOutcome::Failed(_) => CompanionState::Failed,
            CompanionOutcome::Released => CompanionState::Pending,
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            CompanionOutcome::Missing(reason)
            | CompanionOutcome::Refused(reason)
            | CompanionOutcome::Failed(reason) => reason,
            CompanionOutcome::Copied { .. } | CompanionOutcome::Released => "",
        }
    }
}
