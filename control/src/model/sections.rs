//! Course sections and sharing: an institution's sections as its directory
//! names them (synced like users, by external id), the mapping rules that
//! say which of a configuration's meetings are shared with which sections
//! (by Zoom meeting id — a recurring meeting keeps its id all term — or by
//! topic prefix), and the shares themselves. The pure matching rule is
//! `rules::mapped_sections`; the store applies it when a job completes.

use super::{SyncMode, Timestamp};

/// The most sections one mapping, or one share call, may name.
pub const MAX_SECTIONS_PER_MAPPING: usize = 20;

/// What a mapping matches a meeting by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SectionMatcher {
    /// Zoom's numeric meeting id.
    MeetingId(u64),
    /// The start of the meeting's topic, compared case-insensitively after
    /// trimming both; never empty.
    TopicPrefix(String),
}

/// One mapping rule of a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectionMapping {
    pub mapping_id: String,
    pub configuration_id: String,
    pub matcher: SectionMatcher,
    /// The sections a matching meeting's media is shared with, sorted.
    pub section_ids: Vec<String>,
}

/// A course section of an institution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub section_id: String,
    pub institution_id: String,
    /// The directory's key, such as a course code; unique in the institution.
    pub external_id: String,
    pub name: String,
    /// False once a FULL sync left it out. An inactive section keeps the
    /// media already shared with it, but nothing new is shared with it and
    /// no mapping may name it, until a sync names it again.
    pub active: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Section {
    /// Whether applying `record` (same external id) would change nothing.
    pub fn is_unchanged_by(&self, record: &SectionRecord) -> bool {
        self.active && self.name == record.name
    }
}

/// One validated record of a section sync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectionRecord {
    /// Zero-based position in the sync stream, for the summary.
    pub record_index: u32,
    pub external_id: String,
    pub name: String,
}

/// A record a section sync did not apply, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedSection {
    pub record_index: u32,
    pub external_id: String,
    pub reason: String,
}

/// Validated section records to apply in one transaction (see `SyncMode`:
/// FULL deactivates the sections the stream did not name).
#[derive(Clone, Debug)]
pub struct SectionSync {
    pub institution_id: String,
    pub mode: SyncMode,
    pub records: Vec<SectionRecord>,
    /// Records the caller found invalid: reported in the outcome, and in
    /// FULL mode their sections are left as they are rather than deactivated.
    pub rejected_upfront: Vec<RejectedSection>,
    pub now: Timestamp,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SectionSyncOutcome {
    pub created: u32,
    pub updated: u32,
    pub unchanged: u32,
    pub deactivated: u32,
    pub rejected: Vec<RejectedSection>,
}

/// A mapping to create: the service has checked its shape; the store checks
/// that the configuration and every section are the institution's.
#[derive(Clone, Debug)]
pub struct NewSectionMapping {
    pub institution_id: String,
    pub configuration_id: String,
    pub matcher: SectionMatcher,
    pub section_ids: Vec<String>,
    pub now: Timestamp,
}

/// What re-applying a mapping to existing media did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MappingApplied {
    /// Media of the mapping's configuration that the mapping matches.
    pub media_matched: u32,
    /// Of those, media that gained at least one share.
    pub media_shared: u32,
    /// Shares added in all.
    pub shares_added: u32,
}

/// Shares a media item with sections, or stops sharing it.
#[derive(Clone, Debug)]
pub struct MediaSharing {
    pub institution_id: String,
    pub media_id: String,
    pub section_ids: Vec<String>,
    pub now: Timestamp,
}
