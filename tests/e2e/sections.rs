//! Course sections end to end through the real daemon: syncs (FULL and
//! UPSERT) and their validation, mapping rules, every call isolated by
//! institution, a webhook for a mapped meeting landing shared (by meeting
//! id and by topic prefix) while an unmapped one lands unshared, share and
//! unshare, re-applying a mapping idempotently, and the `ferry sections` /
//! `ferry media share` commands.

use std::time::Duration;

use ferry_control::api;
use ferry_daemon::cli::client::Clients;
use ferry_zoomsim::{Meeting, Mp4Layout, SyntheticMedia};
use tonic::Code;

use crate::cli::{ferry, json};
use crate::support::*;
use crate::transfer::{Transfers, transfers};

fn section(external_id: &str, name: &str) -> api::SyncSectionsRequest {
    api::SyncSectionsRequest {
        item: Some(api::sync_sections_request::Item::Section(
            api::SectionRecord {
                external_id: external_id.into(),
                name: name.into(),
            },
        )),
    }
}

async fn sync_sections(
    clients: &mut Clients,
    institution_id: &str,
    mode: api::SyncMode,
    sections: Vec<api::SyncSectionsRequest>,
) -> Result<api::SyncSectionsSummary, tonic::Status> {
    let header = api::SyncSectionsRequest {
        item: Some(api::sync_sections_request::Item::Header(
            api::SyncSectionsHeader {
                institution_id: institution_id.into(),
                mode: mode as i32,
            },
        )),
    };
    let messages: Vec<_> = std::iter::once(header).chain(sections).collect();
    clients
        .sections
        .sync_sections(tokio_stream::iter(messages))
        .await
        .map(|r| r.into_inner())
}

/// The caller's sections, inactive ones too, by external id.
async fn section_ids(clients: &mut Clients) -> std::collections::BTreeMap<String, api::Section> {
    clients
        .sections
        .list_sections(api::ListSectionsRequest {
            include_inactive: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .sections
        .into_iter()
        .map(|s| (s.external_id.clone(), s))
        .collect()
}

fn map_meeting(meeting_id: u64, sections: &[&str]) -> api::CreateSectionMappingRequest {
    api::CreateSectionMappingRequest {
        matcher: Some(api::create_section_mapping_request::Matcher::MeetingId(
            meeting_id,
        )),
        section_ids: sections.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn map_topic(prefix: &str, sections: &[&str]) -> api::CreateSectionMappingRequest {
    api::CreateSectionMappingRequest {
        matcher: Some(api::create_section_mapping_request::Matcher::TopicPrefix(
            prefix.into(),
        )),
        section_ids: sections.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

#[tokio::test]
async fn sections_sync_full_and_upsert_validate_and_stay_inside_their_institution() {
    let mut scene = Scene::new().await;
    let admin = &mut scene.admin;
    let summary = sync_sections(
        admin,
        "",
        api::SyncMode::Full,
        vec![
            section("CHEM101", "Chemistry 101"),
            section("PHYS101", "Physics 101"),
            section("", "No key"),
            section("BIO101", ""),
            section("CHEM101", "Twice"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        (summary.received, summary.applied, summary.created),
        (5, 2, 2)
    );
    let reasons: Vec<(u32, &str)> = summary
        .rejected
        .iter()
        .map(|r| (r.record_index, r.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (2, "external_id: required"),
            (3, "name: required"),
            (4, "external_id: duplicate of record 0 in this sync"),
        ]
    );

    let upsert = sync_sections(
        admin,
        "",
        api::SyncMode::Upsert,
        vec![
            section("MATH101", "Maths 101"),
            section("PHYS101", "Physics I"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        (upsert.created, upsert.updated, upsert.deactivated),
        (1, 1, 0),
        "UPSERT only adds and changes"
    );
    let full = sync_sections(
        admin,
        "",
        api::SyncMode::Full,
        vec![section("MATH101", "Maths 101")],
    )
    .await
    .unwrap();
    assert_eq!(
        (full.unchanged, full.deactivated),
        (1, 2),
        "FULL deactivates what it left out"
    );
    let sections = section_ids(admin).await;
    assert!(!sections["CHEM101"].active && !sections["PHYS101"].active);
    assert!(sections["MATH101"].active);
    assert_status(
        sync_sections(admin, "", api::SyncMode::Full, vec![]).await,
        Code::InvalidArgument,
        "a FULL sync needs at least one record",
    );
    assert_status(
        sync_sections(admin, "", api::SyncMode::Unspecified, vec![]).await,
        Code::InvalidArgument,
        "header.mode",
    );

    // Mapping validation.
    let maths = sections["MATH101"].section_id.clone();
    let chem = sections["CHEM101"].section_id.clone();
    for (request, code, needle) in [
        (
            map_meeting(0, &[&maths]),
            Code::InvalidArgument,
            "meeting_id: must not be 0",
        ),
        (
            map_topic("  ", &[&maths]),
            Code::InvalidArgument,
            "topic_prefix: required",
        ),
        (
            map_meeting(1, &[]),
            Code::InvalidArgument,
            "section_ids: between 1 and 20",
        ),
        (
            api::CreateSectionMappingRequest {
                section_ids: (0..21).map(|i| format!("sec_{i}")).collect(),
                ..map_meeting(1, &[])
            },
            Code::InvalidArgument,
            "got 21",
        ),
        (
            api::CreateSectionMappingRequest {
                matcher: None,
                ..map_meeting(1, &[&maths])
            },
            Code::InvalidArgument,
            "one of meeting_id or topic_prefix",
        ),
        (
            map_meeting(1, &[&maths, "sec_nope"]),
            Code::NotFound,
            "section sec_nope",
        ),
        (
            map_meeting(1, &[&chem]),
            Code::FailedPrecondition,
            "inactive",
        ),
    ] {
        assert_status(
            admin
                .sections
                .create_section_mapping(request)
                .await
                .map(|r| r.into_inner()),
            code,
            needle,
        );
    }
    let mapping = admin
        .sections
        .create_section_mapping(map_meeting(87_565_330_005, &[&maths]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mapping.configuration_id, scene.configuration_id);
    assert_eq!(mapping.section_ids, vec![maths.clone()]);

    // Another institution's admin: every id of this one answers NOT_FOUND.
    let mut operator = connect(&scene.daemon.grpc_url(), Some(OPERATOR_TOKEN))
        .await
        .unwrap();
    let other = create_institution(&mut operator, "Other U").await.unwrap();
    let mut intruder = connect(&scene.daemon.grpc_url(), Some(&other.admin_key))
        .await
        .unwrap();
    create_configuration(&mut intruder, "Theirs").await;
    sync_sections(
        &mut intruder,
        "",
        api::SyncMode::Full,
        vec![section("MATH101", "Their maths")],
    )
    .await
    .unwrap();
    assert_ne!(
        section_ids(&mut intruder).await["MATH101"].section_id,
        maths,
        "the same external id is another section in another institution"
    );
    assert_status(
        intruder
            .sections
            .create_section_mapping(map_meeting(1, &[&maths]))
            .await,
        Code::NotFound,
        &maths,
    );
    assert_status(
        intruder
            .sections
            .delete_section_mapping(api::DeleteSectionMappingRequest {
                mapping_id: mapping.mapping_id.clone(),
                ..Default::default()
            })
            .await,
        Code::NotFound,
        &mapping.mapping_id,
    );
    assert_status(
        intruder
            .sections
            .apply_section_mapping(api::ApplySectionMappingRequest {
                mapping_id: mapping.mapping_id.clone(),
                ..Default::default()
            })
            .await,
        Code::NotFound,
        &mapping.mapping_id,
    );
    assert_status(
        intruder
            .media
            .list_media(api::ListMediaRequest {
                section_id: maths.clone(),
                ..Default::default()
            })
            .await,
        Code::NotFound,
        &maths,
    );
    assert!(
        intruder
            .sections
            .list_section_mappings(api::ListSectionMappingsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .mappings
            .is_empty()
    );
    assert_status(
        intruder
            .sections
            .list_sections(api::ListSectionsRequest {
                institution_id: sections["MATH101"].institution_id.clone(),
                ..Default::default()
            })
            .await,
        Code::NotFound,
        "not found",
    );
    assert_status(
        operator
            .sections
            .list_sections(api::ListSectionsRequest::default())
            .await,
        Code::InvalidArgument,
        "institution_id: required",
    );
    let _ = scene.daemon.stop().await;
}

/// A lecture served by the scene's download server, with its own meeting
/// id and topic.
fn lecture(t: &Transfers, media: &SyntheticMedia, meeting_id: u64, topic: &str) -> Meeting {
    let mut meeting = t.meeting(media, media.len(), |_| {});
    meeting.meeting_id = meeting_id;
    meeting.topic = topic.into();
    meeting
}

async fn completed_media(t: &mut Transfers, meeting: &Meeting) -> api::Media {
    let job = t.scene.ingest(meeting).await;
    let done = t.wait_final(&job.job_id).await;
    assert_eq!(
        api::JobState::try_from(done.state).unwrap(),
        api::JobState::Completed,
        "{}",
        done.message
    );
    t.scene
        .admin
        .media
        .get_media(api::GetMediaRequest {
            media_id: done.media_id,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

async fn media_of_section(admin: &mut Clients, section_id: &str) -> Vec<String> {
    admin
        .media
        .list_media(api::ListMediaRequest {
            section_id: section_id.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .media
        .into_iter()
        .map(|m| m.media_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapped_lecture_lands_shared_with_its_sections_and_an_unmapped_one_does_not() {
    let mut t = transfers(|_| {}).await;
    let admin = &mut t.scene.admin;
    sync_sections(
        admin,
        "",
        api::SyncMode::Full,
        vec![
            section("CHEM101-A", "Chemistry 101 A"),
            section("CHEM101-B", "Chemistry 101 B"),
            section("PHYS101", "Physics 101"),
        ],
    )
    .await
    .unwrap();
    let ids = section_ids(admin).await;
    let (chem_a, chem_b, phys) = (
        ids["CHEM101-A"].section_id.clone(),
        ids["CHEM101-B"].section_id.clone(),
        ids["PHYS101"].section_id.clone(),
    );
    admin
        .sections
        .create_section_mapping(map_meeting(87_565_330_005, &[&chem_a, &chem_b]))
        .await
        .unwrap();
    admin
        .sections
        .create_section_mapping(map_topic("physics 101", &[&phys]))
        .await
        .unwrap();

    let media = SyntheticMedia::mp4(2 * MIB, Duration::from_secs(120), Mp4Layout::FastStart, 0);
    let chemistry = lecture(&t, &media, 87_565_330_005, "Chemistry — week 3");
    let physics = lecture(&t, &media, 11_111_111_111, "  PHYSICS 101: waves");
    let office = lecture(&t, &media, 22_222_222_222, "Office hours");
    let chemistry = completed_media(&mut t, &chemistry).await;
    let physics = completed_media(&mut t, &physics).await;
    let office = completed_media(&mut t, &office).await;
    let mut chem_both = vec![chem_a.clone(), chem_b.clone()];
    chem_both.sort();
    assert_eq!(chemistry.section_ids, chem_both, "mapped by meeting id");
    assert_eq!(
        physics.section_ids,
        vec![phys.clone()],
        "mapped by topic prefix"
    );
    assert!(office.section_ids.is_empty(), "unmapped: {office:?}");
    let admin = &mut t.scene.admin;
    assert_eq!(
        media_of_section(admin, &chem_a).await,
        vec![chemistry.media_id.clone()]
    );
    assert_eq!(
        media_of_section(admin, &phys).await,
        vec![physics.media_id.clone()]
    );

    // Share and unshare by hand.
    let shared = admin
        .sections
        .share_media(api::ShareMediaRequest {
            media_id: office.media_id.clone(),
            section_ids: vec![phys.clone()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(shared.section_ids, vec![phys.clone()]);
    let mut physics_media = vec![physics.media_id.clone(), office.media_id.clone()];
    physics_media.sort();
    assert_eq!(media_of_section(admin, &phys).await, physics_media);
    let unshared = admin
        .sections
        .unshare_media(api::UnshareMediaRequest {
            media_id: office.media_id.clone(),
            section_ids: vec![phys.clone()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(unshared.section_ids.is_empty());

    // A mapping made later moves nothing until it is applied, once.
    let later = admin
        .sections
        .create_section_mapping(map_meeting(22_222_222_222, &[&chem_a]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        media_of_section(admin, &chem_a).await,
        vec![chemistry.media_id.clone()]
    );
    let apply = || api::ApplySectionMappingRequest {
        mapping_id: later.mapping_id.clone(),
        ..Default::default()
    };
    let applied = admin
        .sections
        .apply_section_mapping(apply())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            applied.media_matched,
            applied.media_shared,
            applied.shares_added
        ),
        (1, 1, 1)
    );
    let again = admin
        .sections
        .apply_section_mapping(apply())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (again.media_matched, again.media_shared, again.shares_added),
        (1, 0, 0),
        "re-applying is idempotent"
    );
    let mut chem_a_media = vec![chemistry.media_id.clone(), office.media_id.clone()];
    chem_a_media.sort();
    assert_eq!(media_of_section(admin, &chem_a).await, chem_a_media);
    let _ = t.scene.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_syncs_sections_maps_a_meeting_applies_and_shares() {
    let mut t = transfers(|_| {}).await;
    let media = SyntheticMedia::mp4(MIB, Duration::from_secs(60), Mp4Layout::FastStart, 0);
    let meeting = lecture(&t, &media, 87_565_330_005, "Chemistry — week 1");
    let landed = completed_media(&mut t, &meeting).await;
    assert!(landed.section_ids.is_empty(), "no mapping yet");

    let url = t.scene.daemon.grpc_url();
    let key = t.scene.admin_key.clone();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("sections.csv");
    std::fs::write(
        &csv,
        "external_id,name\nCHEM101,Chemistry 101\n,No key\nPHYS101,Physics 101\n",
    )
    .unwrap();
    let summary = json(&ferry(
        &url,
        &key,
        &[
            "sections",
            "sync",
            csv.to_str().unwrap(),
            "--mode",
            "full",
            "--json",
        ],
    ));
    assert_eq!(summary["created"], 2);
    assert_eq!(summary["rejected"][0]["line"], 3);
    let listed = json(&ferry(&url, &key, &["sections", "list", "--json"]));
    let section_id = |external_id: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["external_id"] == external_id)
            .unwrap()["section_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (chem, phys) = (section_id("CHEM101"), section_id("PHYS101"));
    let mapping = json(&ferry(
        &url,
        &key,
        &[
            "sections",
            "map",
            "--meeting",
            "87565330005",
            "--section",
            &chem,
            "--json",
        ],
    ));
    let mapping_id = mapping["mapping_id"].as_str().unwrap().to_string();
    let mappings = json(&ferry(&url, &key, &["sections", "mappings", "--json"]));
    assert_eq!(mappings[0]["meeting_id"], 87_565_330_005u64);

    let applied = ferry(&url, &key, &["sections", "apply", "--mapping", &mapping_id]);
    assert!(applied.status.success());
    assert_eq!(
        String::from_utf8_lossy(&applied.stdout).trim(),
        "1 media matched, 1 gained a share (1 shares added)"
    );
    let again = ferry(&url, &key, &["sections", "apply", "--mapping", &mapping_id]);
    assert_eq!(
        String::from_utf8_lossy(&again.stdout).trim(),
        "1 media matched, 0 gained a share (0 shares added)"
    );
    let in_chem = json(&ferry(
        &url,
        &key,
        &["media", "list", "--section", &chem, "--json"],
    ));
    assert_eq!(in_chem[0]["media_id"], landed.media_id.as_str());

    let shared = json(&ferry(
        &url,
        &key,
        &[
            "media",
            "share",
            &landed.media_id,
            "--section",
            &phys,
            "--json",
        ],
    ));
    let mut both = [chem.clone(), phys.clone()];
    both.sort();
    assert_eq!(shared["section_ids"], both.join(" "));
    let unshared = json(&ferry(
        &url,
        &key,
        &[
            "media",
            "unshare",
            &landed.media_id,
            "--section",
            &phys,
            "--json",
        ],
    ));
    assert_eq!(unshared["section_ids"], chem.as_str());
    let unmapped = json(&ferry(
        &url,
        &key,
        &["sections", "unmap", &mapping_id, "--json"],
    ));
    assert_eq!(unmapped["mapping_id"], mapping_id.as_str());
    assert_eq!(
        json(&ferry(&url, &key, &["sections", "mappings", "--json"])),
        serde_json::json!([])
    );

    let refused = ferry(
        &url,
        &key,
        &["sections", "map", "--meeting", "0", "--section", &chem],
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("meeting_id: must not be 0"));
    let _ = t.scene.daemon.stop().await;
}
