//! The demo's course sections: the admin syncs two sections and maps the
//! normal lecture's Zoom meeting id to one of them before Zoom sends
//! anything, and once every job has finished the demo checks that the
//! lecture's media, and no other, landed shared with that section.

use ferry_control::api;
use ferry_zoomsim::Meeting;

use crate::cli::client::Clients;

/// The section the lecture is mapped to.
const LECTURE_SECTION: (&str, &str) = ("CS-240-01", "CS 240: Systems Programming");
/// A section no recording maps to.
const OTHER_SECTION: (&str, &str) = ("MATH-101-02", "MATH 101: Calculus I");

/// What the check needs: the section and the lecture it must hold.
pub struct LectureSection {
    pub section_id: String,
    pub meeting_uuid: String,
}

/// Syncs the sections and maps `lecture`'s meeting id, of the configuration
/// `configuration_id`, to one of them.
pub async fn map_lecture(
    admin: &mut Clients,
    configuration_id: &str,
    lecture: &Meeting,
) -> anyhow::Result<LectureSection> {
    let header = api::SyncSectionsRequest {
        item: Some(api::sync_sections_request::Item::Header(
            api::SyncSectionsHeader {
                institution_id: String::new(),
                mode: api::SyncMode::Full as i32,
            },
        )),
    };
    let records =
        [LECTURE_SECTION, OTHER_SECTION].map(|(external_id, name)| api::SyncSectionsRequest {
            item: Some(api::sync_sections_request::Item::Section(
                api::SectionRecord {
                    external_id: external_id.into(),
                    name: name.into(),
                },
            )),
        });
    let summary = admin
        .sections
        .sync_sections(tokio_stream::iter(std::iter::once(header).chain(records)))
        .await?
        .into_inner();
    let section = admin
        .sections
        .list_sections(api::ListSectionsRequest::default())
        .await?
        .into_inner()
        .sections
        .into_iter()
        .find(|s| s.external_id == LECTURE_SECTION.0)
        .ok_or_else(|| anyhow::anyhow!("the section {} was not synced", LECTURE_SECTION.0))?;
    let mapping = admin
        .sections
        .create_section_mapping(api::CreateSectionMappingRequest {
            configuration_id: configuration_id.into(),
            matcher: Some(api::create_section_mapping_request::Matcher::MeetingId(
                lecture.meeting_id,
            )),
            section_ids: vec![section.section_id.clone()],
            ..Default::default()
        })
        .await?
        .into_inner();
    println!(
        "   the admin synced {} course sections and mapped the lecture's Zoom meeting {} to {} \
         (\"{}\") with mapping {}",
        summary.applied, lecture.meeting_id, LECTURE_SECTION.0, section.name, mapping.mapping_id
    );
    Ok(LectureSection {
        section_id: section.section_id,
        meeting_uuid: lecture.uuid.clone(),
    })
}

/// The demo's line about the shares, or why they are wrong: the lecture's
/// media is shared with the section and nothing else is shared at all.
pub fn check(expected: &LectureSection, media: &[api::Media]) -> Result<String, String> {
    let lecture = media
        .iter()
        .find(|m| m.meeting_uuid == expected.meeting_uuid)
        .ok_or("the mapped lecture has no media")?;
    if lecture.section_ids != [expected.section_id.clone()] {
        return Err(format!(
            "the mapped lecture is shared with {:?}, not {}",
            lecture.section_ids, expected.section_id
        ));
    }
    if let Some(other) = media
        .iter()
        .find(|m| m.media_id != lecture.media_id && !m.section_ids.is_empty())
    {
        return Err(format!(
            "\"{}\" was shared with {:?} though no mapping matches it",
            other.title, other.section_ids
        ));
    }
    Ok(format!(
        "the lecture's media {} landed shared with course section {} by its mapping; \
         no other media is shared",
        lecture.media_id, LECTURE_SECTION.0
    ))
}
