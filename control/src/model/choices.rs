//! Who decides what Ferry copies and what it does in Zoom afterwards: a
//! configuration's ingest mode and after-copy action, a directory user's
//! ingest choice, and where a job's move to Zoom's trash stands. Each kind
//! has one text form, used by the store, the CLI and the CSV alike.

/// Which hosts' recordings a configuration ingests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum IngestMode {
    /// Every host that matches an active user, except those who opted out
    /// (the seed's behaviour).
    #[default]
    AllMatchingUsers,
    /// Only hosts whose user opted in.
    OptedInUsers,
}

impl IngestMode {
    pub const ALL: [IngestMode; 2] = [IngestMode::AllMatchingUsers, IngestMode::OptedInUsers];

    pub fn as_str(self) -> &'static str {
        match self {
            IngestMode::AllMatchingUsers => "all_matching_users",
            IngestMode::OptedInUsers => "opted_in_users",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim().to_ascii_lowercase();
        Self::ALL.into_iter().find(|mode| mode.as_str() == text)
    }
}

/// A directory user's own say over the ingest of their recordings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum IngestChoice {
    /// Follows the configuration's ingest mode.
    #[default]
    Default,
    /// Ingested under either mode.
    OptedIn,
    /// Never ingested.
    OptedOut,
}

impl IngestChoice {
    pub const ALL: [IngestChoice; 3] = [
        IngestChoice::Default,
        IngestChoice::OptedIn,
        IngestChoice::OptedOut,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IngestChoice::Default => "default",
            IngestChoice::OptedIn => "opted_in",
            IngestChoice::OptedOut => "opted_out",
        }
    }

    /// An empty text is `default` (a CSV without the column, a blank cell).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim().to_ascii_lowercase();
        if text.is_empty() {
            return Some(IngestChoice::Default);
        }
        Self::ALL.into_iter().find(|choice| choice.as_str() == text)
    }
}

/// What happens to Zoom's copy of a meeting's recordings once Ferry's copy
/// is verified and recorded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AfterCopy {
    /// Zoom's copy is left alone (the seed never touches it).
    #[default]
    Keep,
    /// Moved to Zoom's trash (`DELETE .../recordings?action=trash`).
    Trash,
}

impl AfterCopy {
    pub const ALL: [AfterCopy; 2] = [AfterCopy::Keep, AfterCopy::Trash];

    pub fn as_str(self) -> &'static str {
        match self {
            AfterCopy::Keep => "keep",
            AfterCopy::Trash => "trash",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim().to_ascii_lowercase();
        Self::ALL.into_iter().find(|action| action.as_str() == text)
    }
}

/// A configuration's policy beyond its view priority, as set at creation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConfigurationPolicy {
    pub ingest_mode: IngestMode,
    pub after_copy: AfterCopy,
}

/// Where a completed job's move to Zoom's trash stands. Only jobs completed
/// under `AfterCopy::Trash` have one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ZoomTrashState {
    /// Still to do: the trash duty calls Zoom at `next_attempt_at`.
    Pending,
    /// Zoom moved the recordings to its trash (or no longer had them).
    Trashed,
    /// Zoom refused in a way a retry will not change; the message says why.
    Failed,
}

impl ZoomTrashState {
    pub const ALL: [ZoomTrashState; 3] = [
        ZoomTrashState::Pending,
        ZoomTrashState::Trashed,
        ZoomTrashState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ZoomTrashState::Pending => "pending",
            ZoomTrashState::Trashed => "trashed",
            ZoomTrashState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == text)
    }
}

/// A job's move to Zoom's trash: its state, what happened last (a message a
/// person can act on), how many calls were made and when the next is due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoomTrash {
    pub state: ZoomTrashState,
    pub message: String,
    pub attempts: u32,
    pub next_attempt_at: Option<super::Timestamp>,
}

impl ZoomTrash {
    /// The message of a move just left pending by a completion.
    pub const QUEUED_MESSAGE: &str =
        "the copy is complete; the meeting's recordings are to be moved to zoom's trash";

    /// A job's trash columns as both backends store them: no state means
    /// the job has nothing to move (kept, or not completed). Err names an
    /// unknown state.
    pub fn from_columns(
        state: Option<&str>,
        message: String,
        attempts: u32,
        next_attempt_ms: Option<i64>,
    ) -> Result<Option<ZoomTrash>, String> {
        let Some(state) = state else {
            return Ok(None);
        };
        let state = ZoomTrashState::parse(state)
            .ok_or_else(|| format!("unknown zoom trash state {state}"))?;
        Ok(Some(ZoomTrash {
            state,
            message,
            attempts,
            next_attempt_at: next_attempt_ms.map(super::Timestamp),
        }))
    }
}

/// The result of one call to Zoom's trash endpoint, as the trash duty
/// records it (`JobStore::record_zoom_trash`).
#[derive(Clone, Debug)]
pub struct ZoomTrashUpdate {
    pub job_id: String,
    pub state: ZoomTrashState,
    pub message: String,
    /// When to call again (Pending only).
    pub next_attempt_at: Option<super::Timestamp>,
    pub now: super::Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_text_form_parses_back() {
        for mode in IngestMode::ALL {
            assert_eq!(IngestMode::parse(mode.as_str()), Some(mode));
        }
        for choice in IngestChoice::ALL {
            assert_eq!(IngestChoice::parse(choice.as_str()), Some(choice));
        }
        for action in AfterCopy::ALL {
            assert_eq!(AfterCopy::parse(action.as_str()), Some(action));
        }
        for state in ZoomTrashState::ALL {
            assert_eq!(ZoomTrashState::parse(state.as_str()), Some(state));
        }
        assert_eq!(IngestChoice::parse(" "), Some(IngestChoice::Default));
        assert_eq!(
            IngestChoice::parse("Opted_Out"),
            Some(IngestChoice::OptedOut)
        );
        assert_eq!(IngestChoice::parse("yes"), None);
        assert_eq!(IngestMode::parse("everyone"), None);
        assert_eq!(AfterCopy::parse("delete"), None);
    }
}
