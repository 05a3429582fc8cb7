//! How both backends answer `ListJobs` without scanning the jobs table: the
//! job id scheme that makes a creation-time range an id range, which index
//! a filter reads, and the id bounds of a page. The backends turn this plan
//! into SQL of their own (`sqlite/job_list.rs`, `postgres/job_list.rs`); it
//! never touches a database.
//!
//! Every job list is ordered by job id, and every index a list reads ends in
//! `job_id`, so a page is the first `limit + 1` entries past the cursor of
//! one index range, never a sort of the matching jobs. A filter on several
//! states (or on an account or a host with any state) reads one range per
//! state and merges them: at most six ranges of `limit + 1` entries. A
//! creation-time range becomes bounds on `job_id` (see [`new_job_id`]); the
//! exact `created_ms` condition is kept beside them.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::model::{JobFilter, JobState, Timestamp};
use crate::store::PageQuery;

/// How far a job's id time may lie from its `created_ms` for jobs stored
/// before ids carried it (their id was taken at insert, a moment after the
/// intake's clock reading): the id bounds of a time range are widened by
/// this much, and the exact `created_ms` condition decides.
pub(crate) const LEGACY_ID_SLACK_MS: i64 = 60_000;

static JOB_ID_SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// A job id that sorts by `created`: `job_` then 32 hex digits, the first 12
/// the creation time in Unix milliseconds (as in a UUIDv7), then a version
/// nibble, a per-process sequence (jobs created in the same millisecond by
/// one process keep their order) and 44 random bits (ids of replicas
/// sharing the database do not collide).
pub(crate) fn new_job_id(created: Timestamp) -> String {
    let millis = created.0.clamp(0, (1 << 48) - 1);
    let sequence = JOB_ID_SEQUENCE.fetch_add(1, Ordering::Relaxed) & 0xffff_ffff;
    let random = rand::random::<u64>() & 0xfff_ffff_ffff;
    format!("job_{millis:012x}7{sequence:08x}{random:011x}")
}

/// The smallest job id whose id time is `at` or later.
pub(crate) fn job_id_floor(at: i64) -> String {
    format!("job_{:012x}{}", at.clamp(0, (1 << 48) - 1), "0".repeat(20))
}

/// Which index a list reads, and whether it reads one range per state: the
/// SQLite indexes; PostgreSQL's differ a little (`postgres::job_list::index_of`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// `jobs_by_host_state (institution_id, host_email_key, state, job_id)`.
    Host,
    /// `jobs_by_account_state (zoom_account_id, state, job_id)`.
    Account,
    /// `jobs_by_institution_reason (institution_id, skip_reason, job_id)`.
    Reason,
    /// `jobs_by_institution_source (institution_id, source, state, job_id)`.
    Source,
    /// `jobs_by_institution_state (institution_id, state, job_id)`.
    State,
    /// `jobs_by_institution (institution_id, job_id)`.
    Institution,
}

impl Access {
    pub(crate) fn choose(filter: &JobFilter) -> Access {
        if filter.host_email.is_some() {
            Access::Host
        } else if filter.zoom_account_id.is_some() {
            Access::Account
        } else if filter.skip_reason.is_some() {
            Access::Reason
        } else if filter.source.is_some() {
            Access::Source
        } else if !filter.states.is_empty() {
            Access::State
        } else {
            Access::Institution
        }
    }

    pub(crate) fn index(self) -> &'static str {
        match self {
            Access::Host => "jobs_by_host_state",
            Access::Account => "jobs_by_account_state",
            Access::Reason => "jobs_by_institution_reason",
            Access::Source => "jobs_by_institution_source",
            Access::State => "jobs_by_institution_state",
            Access::Institution => "jobs_by_institution",
        }
    }

    /// Whether the index has `state` before `job_id`: then a page reads one
    /// range per admitted state.
    pub(crate) fn per_state(self) -> bool {
        matches!(
            self,
            Access::Host | Access::Account | Access::Source | Access::State
        )
    }
}

/// The states a filter admits: a skip reason admits only SKIPPED.
pub(crate) fn admitted_states(filter: &JobFilter) -> Vec<JobState> {
    let mut states: Vec<JobState> = if filter.states.is_empty() {
        JobState::ALL.to_vec()
    } else {
        JobState::ALL
            .into_iter()
            .filter(|s| filter.states.contains(s))
            .collect()
    };
    if filter.skip_reason.is_some() {
        states.retain(|s| *s == JobState::Skipped);
    }
    states
}

/// The ids a page of `filter` may hold: greater than `lower` (the cursor, or
/// the floor of the creation range) and, with an end to the range, less than
/// `upper`.
pub(crate) struct IdBounds {
    pub(crate) lower: String,
    pub(crate) upper: Option<String>,
}

pub(crate) fn id_bounds(filter: &JobFilter, page: &PageQuery) -> IdBounds {
    let mut lower = page.after.clone().unwrap_or_default();
    if let Some(from) = filter.created_from {
        lower = lower.max(job_id_floor(from.0.saturating_sub(LEGACY_ID_SLACK_MS)));
    }
    let upper = filter
        .created_before
        .map(|before| job_id_floor(before.0.saturating_add(LEGACY_ID_SLACK_MS)));
    IdBounds { lower, upper }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SkipReason;

    #[test]
    fn job_ids_sort_by_creation_time_then_by_creation_order() {
        let early = new_job_id(Timestamp(1_700_000_000_000));
        let later = new_job_id(Timestamp(1_700_000_000_001));
        let same_a = new_job_id(Timestamp(1_700_000_000_001));
        let same_b = new_job_id(Timestamp(1_700_000_000_001));
        assert!(early < later && later < same_a && same_a < same_b);
        assert_eq!(early.len(), "job_".len() + 32);
        assert!(job_id_floor(1_700_000_000_001) <= later);
        assert!(job_id_floor(1_700_000_000_001) > early);
        assert!(job_id_floor(1_700_000_000_002) > same_b);
    }

    #[test]
    fn a_creation_range_and_a_cursor_bound_the_ids_with_slack_for_legacy_ids() {
        let filter = JobFilter {
            created_from: Some(Timestamp(1_700_000_000_000)),
            created_before: Some(Timestamp(1_700_000_100_000)),
            ..JobFilter::default()
        };
        let bounds = id_bounds(&filter, &PageQuery::first(10));
        assert_eq!(bounds.lower, job_id_floor(1_700_000_000_000 - 60_000));
        assert_eq!(bounds.upper, Some(job_id_floor(1_700_000_100_000 + 60_000)));
        let past_the_floor = new_job_id(Timestamp(1_700_000_050_000));
        let page = PageQuery {
            after: Some(past_the_floor.clone()),
            size: 10,
        };
        assert_eq!(id_bounds(&filter, &page).lower, past_the_floor);
    }

    #[test]
    fn a_skip_reason_admits_only_skipped_jobs() {
        let filter = JobFilter {
            states: vec![JobState::Queued, JobState::Skipped],
            skip_reason: Some(SkipReason::TooLarge),
            ..JobFilter::default()
        };
        assert_eq!(admitted_states(&filter), vec![JobState::Skipped]);
        assert_eq!(Access::choose(&filter), Access::Reason);
        let none = JobFilter {
            states: vec![JobState::Queued],
            ..filter
        };
        assert!(admitted_states(&none).is_empty());
        assert_eq!(admitted_states(&JobFilter::default()).len(), 6);
    }
}
