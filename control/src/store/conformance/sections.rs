//! Conformance checks for course sections: syncs (FULL and UPSERT),
//! mapping rules, sharing on completion, share and unshare, re-applying a
//! mapping, and that every call stays inside its institution.

use crate::error::ErrorClass;
use crate::model::*;
use crate::store::{LeaseHolder, PageQuery, Store};

use super::{
    Tenant, assert_class, at, claim_expecting, create_job, create_tenant, new_media, queued_job,
};

fn section_record(record_index: u32, external_id: &str, name: &str) -> SectionRecord {
    SectionRecord {
        record_index,
        external_id: external_id.to_string(),
        name: name.to_string(),
    }
}

async fn sync(
    store: &dyn Store,
    institution_id: &str,
    mode: SyncMode,
    records: Vec<SectionRecord>,
    now: Timestamp,
) -> SectionSyncOutcome {
    store
        .sync_sections(SectionSync {
            institution_id: institution_id.to_string(),
            mode,
            records,
            rejected_upfront: Vec::new(),
            now,
        })
        .await
        .expect("sync sections")
}

/// The institution's sections by external id: (section id, name, active).
async fn sections_by_external_id(
    store: &dyn Store,
    institution_id: &str,
) -> std::collections::BTreeMap<String, (String, String, bool)> {
    store
        .list_sections(institution_id, true, &PageQuery::first(0))
        .await
        .expect("list sections")
        .items
        .into_iter()
        .map(|s| (s.external_id, (s.section_id, s.name, s.active)))
        .collect()
}

/// FULL deactivates what the stream left out (keeping it and its id);
/// UPSERT only adds and changes; a sync that names a section again
/// reactivates it; every read is scoped to the institution.
pub async fn section_sync_modes(store: &dyn Store) {
    let tenant = create_tenant(store, "sections sync").await;
    let other = create_tenant(store, "sections sync other").await;
    let a = &tenant.institution_id;
    let outcome = sync(
        store,
        a,
        SyncMode::Full,
        vec![
            section_record(0, "CHEM101", "Chemistry"),
            section_record(1, "PHYS101", "Physics"),
            section_record(2, "CHEM101", "Chemistry twice"),
        ],
        at(0),
    )
    .await;
    assert_eq!(
        (
            outcome.created,
            outcome.updated,
            outcome.unchanged,
            outcome.deactivated
        ),
        (2, 0, 0, 0)
    );
    assert_eq!(outcome.rejected.len(), 1, "{outcome:?}");
    assert_eq!(outcome.rejected[0].record_index, 2);
    let first = sections_by_external_id(store, a).await;
    assert_eq!(first["CHEM101"].1, "Chemistry", "the first record wins");

    let upsert = sync(
        store,
        a,
        SyncMode::Upsert,
        vec![
            section_record(0, "BIO101", "Biology"),
            section_record(1, "PHYS101", "Physics I"),
        ],
        at(1),
    )
    .await;
    assert_eq!(
        (
            upsert.created,
            upsert.updated,
            upsert.unchanged,
            upsert.deactivated
        ),
        (1, 1, 0, 0),
        "UPSERT keeps what it does not name"
    );
    let full = sync(
        store,
        a,
        SyncMode::Full,
        vec![section_record(0, "BIO101", "Biology")],
        at(2),
    )
    .await;
    assert_eq!(
        (full.created, full.updated, full.unchanged, full.deactivated),
        (0, 0, 1, 2)
    );
    let after_full = sections_by_external_id(store, a).await;
    assert_eq!(
        after_full["CHEM101"],
        (first["CHEM101"].0.clone(), "Chemistry".to_string(), false),
        "FULL deactivates, keeping the section and its id"
    );
    let active = store
        .list_sections(a, false, &PageQuery::first(0))
        .await
        .expect("list active sections");
    assert_eq!(
        active
            .items
            .iter()
            .map(|s| s.external_id.as_str())
            .collect::<Vec<_>>(),
        vec!["BIO101"]
    );

    let again = sync(
        store,
        a,
        SyncMode::Upsert,
        vec![section_record(0, "CHEM101", "Chemistry")],
        at(3),
    )
    .await;
    assert_eq!(again.updated, 1, "naming it again reactivates it");
    let chem = store
        .get_section(a, &first["CHEM101"].0)
        .await
        .expect("get section");
    assert!(chem.active);
    assert_eq!(chem.updated_at, at(3));
    assert_eq!(chem.created_at, at(0));

    assert_class(
        store
            .get_section(&other.institution_id, &chem.section_id)
            .await,
        ErrorClass::NotFound,
        "get a section through another institution",
    );
    assert!(
        sections_by_external_id(store, &other.institution_id)
            .await
            .is_empty(),
        "another institution sees none of them"
    );
    assert_class(
        store
            .sync_sections(SectionSync {
                institution_id: "inst_missing".into(),
                mode: SyncMode::Upsert,
                records: vec![section_record(0, "X", "X")],
                rejected_upfront: Vec::new(),
                now: at(4),
            })
            .await,
        ErrorClass::NotFound,
        "sync into an unknown institution",
    );
}

/// Creates and completes a job of `tenant` for a meeting; returns its media.
async fn complete_meeting(
    store: &dyn Store,
    tenant: &Tenant,
    meeting_uuid: &str,
    meeting_id: u64,
    topic: &str,
    now: Timestamp,
) -> Media {
    let mut new_job = queued_job(tenant, meeting_uuid, topic, now);
    new_job.meeting_id = meeting_id;
    let job = create_job(store, new_job).await;
    claim_expecting(store, "worker-sections", now, &job).await;
    let (_, media) = store
        .complete_job(
            LeaseHolder {
                job_id: &job.job_id,
                worker_id: "worker-sections",
            },
            new_media("sections"),
            now.saturating_add_millis(1),
        )
        .await
        .expect("complete job");
    media
}

fn mapping(
    tenant: &Tenant,
    matcher: SectionMatcher,
    section_ids: &[&str],
    now: Timestamp,
) -> NewSectionMapping {
    NewSectionMapping {
        institution_id: tenant.institution_id.clone(),
        configuration_id: tenant.configuration_id.clone(),
        matcher,
        section_ids: section_ids.iter().map(|s| s.to_string()).collect(),
        now,
    }
}

fn sharing(tenant: &Tenant, media_id: &str, section_ids: &[&str]) -> MediaSharing {
    MediaSharing {
        institution_id: tenant.institution_id.clone(),
        media_id: media_id.to_string(),
        section_ids: section_ids.iter().map(|s| s.to_string()).collect(),
        now: at(50_000),
    }
}

async fn section_media(store: &dyn Store, tenant: &Tenant, section_id: &str) -> Vec<String> {
    store
        .list_section_media(
            &tenant.institution_id,
            section_id,
            None,
            &PageQuery::first(0),
        )
        .await
        .expect("list section media")
        .items
        .into_iter()
        .map(|m| m.media_id)
        .collect()
}

/// Mappings by meeting id and by topic prefix share a completed job's media
/// in the completion's commit; share and unshare; a later mapping moves
/// nothing until re-applied, and re-applying is idempotent; another
/// institution's sections, mappings and media answer NotFound.
pub async fn section_mappings_and_shares(store: &dyn Store) {
    let tenant = create_tenant(store, "sections map").await;
    let other = create_tenant(store, "sections map other").await;
    let a = &tenant.institution_id;
    sync(
        store,
        a,
        SyncMode::Full,
        vec![
            section_record(0, "CHEM101-A", "Chemistry A"),
            section_record(1, "CHEM101-B", "Chemistry B"),
            section_record(2, "PHYS101", "Physics"),
            section_record(3, "RETIRED", "Retired"),
        ],
        at(0),
    )
    .await;
    sync(
        store,
        a,
        SyncMode::Upsert,
        vec![section_record(0, "RETIRED", "Retired")],
        at(0),
    )
    .await;
    sync(
        store,
        &other.institution_id,
        SyncMode::Full,
        vec![section_record(0, "ELSEWHERE", "Elsewhere")],
        at(0),
    )
    .await;
    let ids = sections_by_external_id(store, a).await;
    let (chem_a, chem_b, phys, retired) = (
        ids["CHEM101-A"].0.as_str(),
        ids["CHEM101-B"].0.as_str(),
        ids["PHYS101"].0.as_str(),
        ids["RETIRED"].0.as_str(),
    );
    let elsewhere = sections_by_external_id(store, &other.institution_id).await["ELSEWHERE"]
        .0
        .clone();
    // RETIRED goes inactive: a FULL sync leaves it out.
    sync(
        store,
        a,
        SyncMode::Full,
        vec![
            section_record(0, "CHEM101-A", "Chemistry A"),
            section_record(1, "CHEM101-B", "Chemistry B"),
            section_record(2, "PHYS101", "Physics"),
        ],
        at(1),
    )
    .await;

    // Refusals: unknown or foreign sections and configurations, inactive sections.
    match store
        .create_section_mapping(mapping(
            &tenant,
            SectionMatcher::MeetingId(1),
            &[chem_a, "sec_missing", &elsewhere],
            at(2),
        ))
        .await
    {
        Err(error) => {
            assert_eq!(error.class(), ErrorClass::NotFound, "{error}");
            let message = error.to_string();
            assert!(
                message.contains("sec_missing") && message.contains(&elsewhere),
                "names every unknown section: {message}"
            );
            assert!(!message.contains(chem_a), "{message}");
        }
        Ok(created) => panic!("a mapping to unknown sections was created: {created:?}"),
    }
    assert_class(
        store
            .create_section_mapping(NewSectionMapping {
                configuration_id: other.configuration_id.clone(),
                ..mapping(&tenant, SectionMatcher::MeetingId(1), &[chem_a], at(2))
            })
            .await,
        ErrorClass::NotFound,
        "a mapping of another institution's configuration",
    );
    assert_class(
        store
            .create_section_mapping(mapping(
                &tenant,
                SectionMatcher::MeetingId(1),
                &[retired],
                at(2),
            ))
            .await,
        ErrorClass::FailedPrecondition,
        "a mapping to an inactive section",
    );

    let by_meeting = store
        .create_section_mapping(mapping(
            &tenant,
            SectionMatcher::MeetingId(87_565_330_005),
            &[chem_b, chem_a],
            at(3),
        ))
        .await
        .expect("map a meeting id");
    let mut chem_both = vec![chem_a.to_string(), chem_b.to_string()];
    chem_both.sort();
    assert_eq!(
        by_meeting.section_ids, chem_both,
        "a mapping's sections read back sorted"
    );
    assert_eq!(by_meeting.configuration_id, tenant.configuration_id);
    let by_topic = store
        .create_section_mapping(mapping(
            &tenant,
            SectionMatcher::TopicPrefix("PHYS 101".into()),
            &[phys],
            at(4),
        ))
        .await
        .expect("map a topic prefix");
    assert_eq!(
        store
            .get_section_mapping(a, &by_topic.mapping_id)
            .await
            .expect("get mapping"),
        by_topic
    );
    let listed = store
        .list_section_mappings(
            a,
            Some(tenant.configuration_id.as_str()),
            &PageQuery::first(0),
        )
        .await
        .expect("list mappings");
    assert_eq!(listed.items, vec![by_meeting.clone(), by_topic.clone()]);
    assert!(
        store
            .list_section_mappings(
                a,
                Some(other.configuration_id.as_str()),
                &PageQuery::first(0)
            )
            .await
            .expect("list mappings of a foreign configuration")
            .items
            .is_empty()
    );
    assert_class(
        store
            .get_section_mapping(&other.institution_id, &by_meeting.mapping_id)
            .await,
        ErrorClass::NotFound,
        "get a mapping through another institution",
    );
    assert_class(
        store
            .delete_section_mapping(&other.institution_id, &by_meeting.mapping_id)
            .await,
        ErrorClass::NotFound,
        "delete a mapping through another institution",
    );
    assert_class(
        store
            .apply_section_mapping(&other.institution_id, &by_meeting.mapping_id, at(5))
            .await,
        ErrorClass::NotFound,
        "apply a mapping through another institution",
    );

    // Completion shares by the mappings, in the same commit.
    let lecture = complete_meeting(
        store,
        &tenant,
        "sections-lecture",
        87_565_330_005,
        "Chemistry 101 — lecture 3",
        at(10_000),
    )
    .await;
    assert_eq!(lecture.section_ids, chem_both, "mapped by meeting id");
    assert_eq!(
        store
            .get_media(a, &lecture.media_id)
            .await
            .expect("get media"),
        lecture,
        "the shares are stored with the media"
    );
    let physics = complete_meeting(
        store,
        &tenant,
        "sections-physics",
        1_234,
        "  phys 101: waves",
        at(11_000),
    )
    .await;
    assert_eq!(
        physics.section_ids,
        vec![phys.to_string()],
        "mapped by topic prefix"
    );
    let unmapped = complete_meeting(
        store,
        &tenant,
        "sections-unmapped",
        5_678,
        "Office hours",
        at(12_000),
    )
    .await;
    assert!(unmapped.section_ids.is_empty(), "{unmapped:?}");
    assert_eq!(
        section_media(store, &tenant, chem_a).await,
        vec![lecture.media_id.clone()]
    );
    let listed = store
        .list_media(a, None, &PageQuery::first(0))
        .await
        .expect("list media");
    let physics_listed = listed
        .items
        .iter()
        .find(|m| m.media_id == physics.media_id)
        .expect("physics media listed");
    assert_eq!(physics_listed.section_ids, vec![phys.to_string()]);

    // Share and unshare, each idempotent and all-or-nothing.
    let shared = store
        .share_media(sharing(&tenant, &unmapped.media_id, &[phys, phys]))
        .await
        .expect("share");
    assert_eq!(shared.section_ids, vec![phys.to_string()]);
    let shared_again = store
        .share_media(sharing(&tenant, &unmapped.media_id, &[phys]))
        .await
        .expect("share again");
    assert_eq!(shared_again, shared);
    assert_class(
        store
            .share_media(sharing(&tenant, &unmapped.media_id, &[chem_a, &elsewhere]))
            .await,
        ErrorClass::NotFound,
        "share with another institution's section",
    );
    assert_class(
        store
            .share_media(sharing(&tenant, &unmapped.media_id, &[chem_a, retired]))
            .await,
        ErrorClass::FailedPrecondition,
        "share with an inactive section",
    );
    assert_eq!(
        store
            .get_media(a, &unmapped.media_id)
            .await
            .expect("get media")
            .section_ids,
        vec![phys.to_string()],
        "a refused share applies nothing"
    );
    assert_class(
        store
            .share_media(MediaSharing {
                institution_id: other.institution_id.clone(),
                ..sharing(&tenant, &unmapped.media_id, &[&elsewhere])
            })
            .await,
        ErrorClass::NotFound,
        "share another institution's media",
    );
    assert_eq!(
        section_media(store, &tenant, phys).await,
        vec![physics.media_id.clone(), unmapped.media_id.clone()]
    );
    let owned = store
        .list_section_media(a, phys, Some("usr_nobody"), &PageQuery::first(0))
        .await
        .expect("list section media of an owner");
    assert!(owned.items.is_empty());
    let unshared = store
        .unshare_media(sharing(&tenant, &unmapped.media_id, &[phys, chem_a]))
        .await
        .expect("unshare");
    assert!(unshared.section_ids.is_empty(), "{unshared:?}");
    assert_class(
        store
            .unshare_media(sharing(&tenant, &unmapped.media_id, &[&elsewhere]))
            .await,
        ErrorClass::NotFound,
        "unshare another institution's section",
    );
    assert_class(
        store
            .list_section_media(&other.institution_id, phys, None, &PageQuery::first(0))
            .await,
        ErrorClass::NotFound,
        "list the media of another institution's section",
    );

    // A new mapping moves nothing until applied; applying twice adds nothing.
    let office = store
        .create_section_mapping(mapping(
            &tenant,
            SectionMatcher::TopicPrefix("office".into()),
            &[chem_a, phys],
            at(20_000),
        ))
        .await
        .expect("map office hours");
    assert!(
        store
            .get_media(a, &unmapped.media_id)
            .await
            .expect("get media")
            .section_ids
            .is_empty(),
        "creating a mapping does not move existing media"
    );
    let applied = store
        .apply_section_mapping(a, &office.mapping_id, at(21_000))
        .await
        .expect("apply");
    assert_eq!(
        applied,
        MappingApplied {
            media_matched: 1,
            media_shared: 1,
            shares_added: 2
        }
    );
    let again = store
        .apply_section_mapping(a, &office.mapping_id, at(22_000))
        .await
        .expect("apply again");
    assert_eq!(
        again,
        MappingApplied {
            media_matched: 1,
            media_shared: 0,
            shares_added: 0
        },
        "re-applying is idempotent"
    );

    // Deleting a mapping keeps what it shared.
    let deleted = store
        .delete_section_mapping(a, &by_meeting.mapping_id)
        .await
        .expect("delete mapping");
    assert_eq!(deleted, by_meeting);
    assert_class(
        store.get_section_mapping(a, &by_meeting.mapping_id).await,
        ErrorClass::NotFound,
        "a deleted mapping",
    );
    assert_eq!(
        store
            .get_media(a, &lecture.media_id)
            .await
            .expect("get media")
            .section_ids,
        chem_both,
        "deleting a mapping keeps its shares"
    );

    // A section a FULL sync left out keeps its media but gets no new ones.
    sync(
        store,
        a,
        SyncMode::Full,
        vec![
            section_record(0, "CHEM101-A", "Chemistry A"),
            section_record(1, "CHEM101-B", "Chemistry B"),
        ],
        at(30_000),
    )
    .await;
    assert_eq!(
        section_media(store, &tenant, phys).await,
        vec![physics.media_id.clone(), unmapped.media_id.clone()],
        "an inactive section keeps its media (the second shared by the applied mapping)"
    );
    let later = complete_meeting(
        store,
        &tenant,
        "sections-later",
        99,
        "Office hours",
        at(31_000),
    )
    .await;
    assert_eq!(
        later.section_ids,
        vec![chem_a.to_string()],
        "only active sections are shared on completion"
    );
}
