//! The sections domain's decisions, made once for both backends: what a
//! section sync changes (given the institution's sections as stored and
//! the sync's records, which sections to create, update and deactivate, and
//! the outcome to report) and how a call that names unknown or inactive
//! sections is refused (`sections_checked`). Pure (the backends read, call
//! these, and write in the same transaction); it never touches a database.
//!
//! The rules: within one sync the first record of an external id wins and
//! later ones are rejected; a record equal to its active section is
//! unchanged; FULL deactivates every active section the stream did not name
//! (a record rejected up front names its section too, so a typo never
//! deactivates it). Deactivating never deletes: a section's shares stay.

use std::collections::{HashMap, HashSet};

use crate::error::StoreError;
use crate::model::{
    RejectedSection, Section, SectionRecord, SectionSync, SectionSyncOutcome, SyncMode,
};
use crate::store::StoreResult;

/// The writes of one sync and what to report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SectionSyncPlan {
    pub create: Vec<SectionRecord>,
    /// (section id, the record it takes: name, and active again).
    pub update: Vec<(String, SectionRecord)>,
    pub deactivate: Vec<String>,
    pub outcome: SectionSyncOutcome,
}

/// Plans `sync` against `existing`, the institution's sections keyed by
/// external id.
pub(crate) fn plan_section_sync(
    existing: &HashMap<String, Section>,
    sync: SectionSync,
) -> SectionSyncPlan {
    let mut plan = SectionSyncPlan {
        outcome: SectionSyncOutcome {
            rejected: sync.rejected_upfront,
            ..SectionSyncOutcome::default()
        },
        ..SectionSyncPlan::default()
    };
    let mut in_stream: HashSet<String> = plan
        .outcome
        .rejected
        .iter()
        .map(|r| r.external_id.clone())
        .collect();
    let mut first_with_external_id: HashMap<String, u32> = HashMap::new();
    for record in sync.records {
        in_stream.insert(record.external_id.clone());
        if let Some(first) = first_with_external_id.get(&record.external_id) {
            plan.outcome.rejected.push(RejectedSection {
                record_index: record.record_index,
                external_id: record.external_id.clone(),
                reason: format!("external_id: duplicate of record {first} in this sync"),
            });
            continue;
        }
        first_with_external_id.insert(record.external_id.clone(), record.record_index);
        match existing.get(&record.external_id) {
            Some(section) if section.is_unchanged_by(&record) => plan.outcome.unchanged += 1,
            Some(section) => {
                plan.outcome.updated += 1;
                plan.update.push((section.section_id.clone(), record));
            }
            None => {
                plan.outcome.created += 1;
                plan.create.push(record);
            }
        }
    }
    if sync.mode == SyncMode::Full {
        let mut gone: Vec<String> = existing
            .values()
            .filter(|s| s.active && !in_stream.contains(&s.external_id))
            .map(|s| s.section_id.clone())
            .collect();
        gone.sort();
        plan.outcome.deactivated = gone.len() as u32;
        plan.deactivate = gone;
    }
    plan.outcome.rejected.sort_by_key(|r| r.record_index);
    plan
}

/// The answer to a check of the sections a call names: NotFound naming
/// every one that is not the institution's, else (when only active ones
/// may be named) FailedPrecondition naming every inactive one.
pub(crate) fn sections_checked(
    missing: &[&str],
    inactive: &[&str],
    active_only: bool,
) -> StoreResult<()> {
    if !missing.is_empty() {
        return Err(StoreError::not_found(format!(
            "section {}",
            missing.join(", ")
        )));
    }
    if active_only && !inactive.is_empty() {
        return Err(StoreError::FailedPrecondition(format!(
            "section {} is inactive (a FULL sync left it out); sync it again first",
            inactive.join(", ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::model::Timestamp;

    fn section(external_id: &str, name: &str, active: bool) -> Section {
        Section {
            section_id: format!("sec_{external_id}"),
            institution_id: "inst".into(),
            external_id: external_id.into(),
            name: name.into(),
            active,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        }
    }

    fn record(record_index: u32, external_id: &str, name: &str) -> SectionRecord {
        SectionRecord {
            record_index,
            external_id: external_id.into(),
            name: name.into(),
        }
    }

    fn sync(mode: SyncMode, records: Vec<SectionRecord>, rejected: &[&str]) -> SectionSync {
        SectionSync {
            institution_id: "inst".into(),
            mode,
            records,
            rejected_upfront: rejected
                .iter()
                .map(|external_id| RejectedSection {
                    record_index: 99,
                    external_id: external_id.to_string(),
                    reason: "name: required".into(),
                })
                .collect(),
            now: Timestamp(1),
        }
    }

    fn existing(sections: &[Section]) -> HashMap<String, Section> {
        sections
            .iter()
            .map(|s| (s.external_id.clone(), s.clone()))
            .collect()
    }

    #[test]
    fn full_deactivates_what_the_stream_left_out_and_upsert_does_not() {
        let stored = existing(&[
            section("CHEM101", "Chemistry", true),
            section("PHYS101", "Physics", true),
            section("BIO101", "Biology", true),
            section("OLD", "Old", false),
        ]);
        let records = vec![
            record(0, "CHEM101", "Chemistry"),
            record(1, "PHYS101", "Physics I"),
            record(2, "MATH101", "Maths"),
            record(3, "CHEM101", "Chemistry again"),
        ];
        let full = plan_section_sync(&stored, sync(SyncMode::Full, records.clone(), &[]));
        assert_eq!(
            (
                full.outcome.created,
                full.outcome.updated,
                full.outcome.unchanged,
                full.outcome.deactivated
            ),
            (1, 1, 1, 1)
        );
        assert_eq!(full.create, vec![record(2, "MATH101", "Maths")]);
        assert_eq!(
            full.update,
            vec![("sec_PHYS101".into(), record(1, "PHYS101", "Physics I"))]
        );
        assert_eq!(
            full.deactivate,
            vec!["sec_BIO101"],
            "an inactive one is not counted again"
        );
        assert_eq!(full.outcome.rejected.len(), 1);
        assert_eq!(full.outcome.rejected[0].record_index, 3);
        assert_eq!(
            full.outcome.rejected[0].reason,
            "external_id: duplicate of record 0 in this sync"
        );

        let upsert = plan_section_sync(&stored, sync(SyncMode::Upsert, records, &[]));
        assert!(upsert.deactivate.is_empty());
        assert_eq!(upsert.outcome.deactivated, 0);
    }

    #[test]
    fn a_record_rejected_up_front_keeps_its_section_and_a_sync_reactivates() {
        let stored = existing(&[
            section("CHEM101", "Chemistry", true),
            section("OLD", "Old", false),
        ]);
        let plan = plan_section_sync(
            &stored,
            sync(SyncMode::Full, vec![record(0, "OLD", "Old")], &["CHEM101"]),
        );
        assert!(plan.deactivate.is_empty(), "{plan:?}");
        assert_eq!(
            plan.update,
            vec![("sec_OLD".into(), record(0, "OLD", "Old"))],
            "an inactive section named again is updated (reactivated)"
        );
    }

    proptest! {
        /// Every record is counted exactly once (created, updated,
        /// unchanged or rejected), no section is both written and
        /// deactivated, and UPSERT never deactivates.
        #[test]
        fn every_record_is_counted_once(
            stored in proptest::collection::vec(("[a-d]", "[xy]", any::<bool>()), 0..5),
            records in proptest::collection::vec(("[a-f]", "[xy]"), 0..8),
            full in any::<bool>(),
        ) {
            let stored = existing(&stored.iter().map(|(e, n, a)| section(e, n, *a)).collect::<Vec<_>>());
            let records: Vec<_> = records
                .iter()
                .enumerate()
                .map(|(i, (e, n))| record(i as u32, e, n))
                .collect();
            let received = records.len() as u32;
            let mode = if full { SyncMode::Full } else { SyncMode::Upsert };
            let plan = plan_section_sync(&stored, sync(mode, records, &[]));
            let o = &plan.outcome;
            prop_assert_eq!(o.created + o.updated + o.unchanged + o.rejected.len() as u32, received);
            prop_assert_eq!(plan.create.len() as u32, o.created);
            prop_assert_eq!(plan.update.len() as u32, o.updated);
            for id in &plan.deactivate {
                prop_assert!(plan.update.iter().all(|(u, _)| u != id));
            }
            if !full {
                prop_assert!(plan.deactivate.is_empty());
            }
        }
    }
}
