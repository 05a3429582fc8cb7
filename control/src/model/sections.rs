//! Course sections' mapping rules: which of a configuration's meetings are
//! shared with which sections, by Zoom meeting id (a recurring meeting
//! keeps its id all term) or by topic prefix. Only the types and the pure
//! matching rule (`rules::mapped_sections`) exist so far; the store, the
//! API and sharing on completion are still to come.

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
    /// The sections a matching meeting's media is shared with.
    pub section_ids: Vec<String>,
}
