//! Which sections a meeting's media is shared with: the union of the
//! sections of every mapping of the meeting's configuration that matches
//! it, by meeting id or by topic prefix. Pure, so that completion and an
//! admin's re-apply share one answer.

use crate::model::{SectionMapping, SectionMatcher};

/// Whether `matcher` matches a meeting. A topic prefix is compared
/// case-insensitively after trimming both sides; an empty prefix matches
/// nothing (it would share every meeting, which no admin means).
fn matches(matcher: &SectionMatcher, meeting_id: u64, topic: &str) -> bool {
    match matcher {
        SectionMatcher::MeetingId(id) => *id == meeting_id,
        SectionMatcher::TopicPrefix(prefix) => {
            let prefix = prefix.trim().to_lowercase();
            !prefix.is_empty() && topic.trim().to_lowercase().starts_with(&prefix)
        }
    }
}

/// The sections of the mappings of `configuration_id` that match the
/// meeting, each once, sorted (so the answer never depends on the order of
/// the mappings).
pub fn mapped_sections(
    mappings: &[SectionMapping],
    configuration_id: &str,
    meeting_id: u64,
    topic: &str,
) -> Vec<String> {
    let mut sections: Vec<String> = mappings
        .iter()
        .filter(|m| m.configuration_id == configuration_id)
        .filter(|m| matches(&m.matcher, meeting_id, topic))
        .flat_map(|m| m.section_ids.iter().cloned())
        .collect();
    sections.sort();
    sections.dedup();
    sections
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn mapping(
        id: &str,
        configuration: &str,
        matcher: SectionMatcher,
        sections: &[&str],
    ) -> SectionMapping {
        SectionMapping {
            mapping_id: id.into(),
            configuration_id: configuration.into(),
            matcher,
            section_ids: sections.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn meeting_ids_and_topic_prefixes_map_to_sections() {
        let mappings = vec![
            mapping(
                "m1",
                "cfg",
                SectionMatcher::MeetingId(87565330005),
                &["sec_b", "sec_a"],
            ),
            mapping(
                "m2",
                "cfg",
                SectionMatcher::TopicPrefix(" CHEM 101".into()),
                &["sec_a", "sec_c"],
            ),
            mapping(
                "m3",
                "other",
                SectionMatcher::MeetingId(87565330005),
                &["sec_x"],
            ),
            mapping(
                "m4",
                "cfg",
                SectionMatcher::TopicPrefix("  ".into()),
                &["sec_all"],
            ),
        ];
        assert_eq!(
            mapped_sections(&mappings, "cfg", 87565330005, "chem 101 — lecture 3"),
            vec!["sec_a", "sec_b", "sec_c"],
            "both rules match, each section once, sorted"
        );
        assert_eq!(
            mapped_sections(&mappings, "cfg", 1, "Chem 101: lab"),
            vec!["sec_a", "sec_c"]
        );
        assert_eq!(
            mapped_sections(&mappings, "cfg", 1, "Physics"),
            Vec::<String>::new(),
            "an empty prefix matches nothing"
        );
        assert_eq!(
            mapped_sections(&mappings, "other", 87565330005, "x"),
            vec!["sec_x"]
        );
    }

    fn any_mapping() -> impl Strategy<Value = SectionMapping> {
        (
            prop_oneof![Just("cfg"), Just("other")],
            prop_oneof![
                (1u64..5).prop_map(SectionMatcher::MeetingId),
                "[ a-cA-C]{0,3}".prop_map(SectionMatcher::TopicPrefix),
            ],
            proptest::collection::vec("sec_[a-d]", 0..3),
        )
            .prop_map(|(configuration, matcher, sections)| SectionMapping {
                mapping_id: "m".into(),
                configuration_id: configuration.into(),
                matcher,
                section_ids: sections,
            })
    }

    proptest! {
        /// The answer is sorted and repeats nothing, does not depend on the
        /// mappings' order, and holds exactly the sections of the mappings
        /// of the configuration that match.
        #[test]
        fn mapped_sections_is_the_sorted_union_of_the_matching_mappings(
            mut mappings in proptest::collection::vec(any_mapping(), 0..8),
            meeting_id in 1u64..5,
            topic in "[ a-cA-C]{0,6}",
        ) {
            let answer = mapped_sections(&mappings, "cfg", meeting_id, &topic);
            let mut sorted = answer.clone();
            sorted.sort();
            sorted.dedup();
            prop_assert_eq!(&answer, &sorted);
            for mapping in &mappings {
                let hit = mapping.configuration_id == "cfg"
                    && matches(&mapping.matcher, meeting_id, &topic);
                for section in &mapping.section_ids {
                    if hit {
                        prop_assert!(answer.contains(section));
                    }
                }
            }
            for section in &answer {
                prop_assert!(mappings.iter().any(|m| m.configuration_id == "cfg"
                    && matches(&m.matcher, meeting_id, &topic)
                    && m.section_ids.contains(section)));
            }
            mappings.reverse();
            prop_assert_eq!(mapped_sections(&mappings, "cfg", meeting_id, &topic), answer);
        }
    }
}
