//! How both backends answer `ListJobs` without scanning the jobs table: the
//! job id scheme that makes a creation-time range an id range, which index
//! a filter reads, and the id bounds of a page. The backends turn this plan
//! into SQL of their own (`sqlite/job_list.rs`, `postgres/job_list.rs`); it
//! never touches a database.
//!
//! Every job list is ordered by job id, and every index a list reads ends in
//! `job_id`, so a page is the first `limit + 1` entries past the cursor of
//! one index range, never a sort of the matching jobs. Each filter reads the
//! index whose leading columns are exactly its host and account, and one
//! range per value of the small-domain columns after them (the state; in
//! the detailed indexes also the source and the skip reason key) that the
//! filter admits, merged in id order: at most 36 ranges, each stopping after
//! `limit + 1` entries, and every entry read matches the filter, so a
//! page's work is bounded by the page for every combination of filters (a
//! property test below holds the plan to it). A creation-time range becomes
//! bounds on `job_id` (see [`new_job_id`]); the exact `created_ms`
//! condition is kept beside them.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::model::{JobFilter, JobSource, JobState, SkipReason, Timestamp};
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

/// The expression the detailed list indexes hold after `state`: a skipped
/// job's skip reason ('' when it has none), '' for every other state. A
/// range of a state that is not SKIPPED is then one range of the index
/// (`= ''`, an equality the planners order by, where `IS NULL` would not
/// be one for PostgreSQL), whatever a job of that state may still carry in
/// `skip_reason`. Both backends write it exactly so: an index on an
/// expression serves only the same expression.
pub(crate) const REASON_KEY: &str =
    "(CASE WHEN state = 'skipped' THEN COALESCE(skip_reason, '') ELSE '' END)";

/// Which index a list reads: the one whose leading columns are exactly the
/// filter's host and account (each a value no list can enumerate), followed
/// by columns of small known domains (state; source and the skip reason key
/// in the detailed indexes) that a page reads one range per value of, and
/// `job_id`. So every filter the CLI offers reads only entries that match
/// it (the exact creation time aside, see the module docs): the work of a
/// page is bounded by the page, never by how many jobs a narrower range
/// holds. The SQLite indexes; PostgreSQL's differ a little
/// (`postgres::job_list::access_of`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// `jobs_by_host_account (institution_id, host_email_key,
    /// zoom_account_id, source, state, REASON_KEY, job_id)`.
    HostAccount,
    /// `jobs_by_host_source (institution_id, host_email_key, source, state,
    /// REASON_KEY, job_id)`.
    HostSource,
    /// `jobs_by_host_state (institution_id, host_email_key, state, job_id)`.
    Host,
    /// `jobs_by_account_source (institution_id, zoom_account_id, source,
    /// state, REASON_KEY, job_id)`.
    AccountSource,
    /// `jobs_by_account_state (zoom_account_id, state, job_id)`.
    Account,
    /// `jobs_by_institution_source (institution_id, source, state,
    /// REASON_KEY, job_id)`: a source, a skip reason or both.
    Source,
    /// `jobs_by_institution_state (institution_id, state, job_id)`.
    State,
    /// `jobs_by_institution (institution_id, job_id)`.
    Institution,
}

impl Access {
    pub(crate) fn choose(filter: &JobFilter) -> Access {
        let detailed = filter.source.is_some() || filter.skip_reason.is_some();
        match (
            filter.host_email.is_some(),
            filter.zoom_account_id.is_some(),
            detailed,
        ) {
            (true, true, _) => Access::HostAccount,
            (true, false, true) => Access::HostSource,
            (true, false, false) => Access::Host,
            (false, true, true) => Access::AccountSource,
            (false, true, false) => Access::Account,
            (false, false, true) => Access::Source,
            (false, false, false) if !filter.states.is_empty() => Access::State,
            (false, false, false) => Access::Institution,
        }
    }

    pub(crate) fn index(self) -> &'static str {
        match self {
            Access::HostAccount => "jobs_by_host_account",
            Access::HostSource => "jobs_by_host_source",
            Access::Host => "jobs_by_host_state",
            Access::AccountSource => "jobs_by_account_source",
            Access::Account => "jobs_by_account_state",
            Access::Source => "jobs_by_institution_source",
            Access::State => "jobs_by_institution_state",
            Access::Institution => "jobs_by_institution",
        }
    }

    /// Whether the index has `state` before `job_id`: then a page reads one
    /// range per admitted state.
    pub(crate) fn per_state(self) -> bool {
        self != Access::Institution
    }

    /// Whether the index has `source, state, REASON_KEY` before `job_id`:
    /// then a page reads one range per admitted (source, state, reason).
    pub(crate) fn detailed(self) -> bool {
        matches!(
            self,
            Access::HostAccount | Access::HostSource | Access::AccountSource | Access::Source
        )
    }
}

/// One range of a list's index: the values of its enumerated columns (None
/// where the index has no such column). Its other leading columns are the
/// filter's institution, host and account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Range {
    pub(crate) state: Option<JobState>,
    pub(crate) source: Option<JobSource>,
    /// The value of `REASON_KEY`.
    pub(crate) reason_key: Option<&'static str>,
}

/// The ranges whose merged first entries past the cursor are a page of
/// `filter` read through `access`; none when the filter admits no state.
/// At most 3 sources × (5 states + 7 reason keys of SKIPPED) = 36, for a
/// host and an account without a state, a source or a reason.
pub(crate) fn ranges(access: Access, filter: &JobFilter) -> Vec<Range> {
    let states = admitted_states(filter);
    if !access.per_state() {
        return if states.is_empty() {
            Vec::new()
        } else {
            vec![Range {
                state: None,
                source: None,
                reason_key: None,
            }]
        };
    }
    if !access.detailed() {
        return states
            .into_iter()
            .map(|state| Range {
                state: Some(state),
                source: None,
                reason_key: None,
            })
            .collect();
    }
    let sources = filter.source.map_or(JobSource::ALL.to_vec(), |s| vec![s]);
    let mut ranges = Vec::new();
    for source in sources {
        for &state in &states {
            let reason_keys: Vec<&'static str> = match (state, filter.skip_reason) {
                (JobState::Skipped, Some(reason)) => vec![reason.as_str()],
                (JobState::Skipped, None) => std::iter::once("")
                    .chain(SkipReason::ALL.map(SkipReason::as_str))
                    .collect(),
                _ => vec![""],
            };
            ranges.extend(reason_keys.into_iter().map(|reason_key| Range {
                state: Some(state),
                source: Some(source),
                reason_key: Some(reason_key),
            }));
        }
    }
    ranges
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
    use proptest::prelude::*;

    use super::*;

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
        assert_eq!(Access::choose(&filter), Access::Source);
        let none = JobFilter {
            states: vec![JobState::Queued],
            ..filter
        };
        assert!(admitted_states(&none).is_empty());
        assert!(ranges(Access::choose(&none), &none).is_empty());
        assert_eq!(admitted_states(&JobFilter::default()).len(), 6);
    }

    #[test]
    fn a_host_and_an_account_without_more_read_at_most_36_ranges() {
        let filter = JobFilter {
            host_email: Some("host@example.edu".into()),
            zoom_account_id: Some("acct".into()),
            ..JobFilter::default()
        };
        assert_eq!(Access::choose(&filter), Access::HostAccount);
        assert_eq!(ranges(Access::HostAccount, &filter).len(), 36);
        let unfiltered = JobFilter::default();
        assert_eq!(ranges(Access::choose(&unfiltered), &unfiltered).len(), 1);
    }

    /// What a list index holds of a job: the columns a range constrains.
    #[derive(Clone, Debug)]
    struct Entry {
        host: bool,
        account: bool,
        state: JobState,
        source: JobSource,
        skip_reason: Option<SkipReason>,
    }

    /// `REASON_KEY` as the databases compute it.
    fn reason_key(entry: &Entry) -> &'static str {
        match (entry.state, entry.skip_reason) {
            (JobState::Skipped, Some(reason)) => reason.as_str(),
            _ => "",
        }
    }

    /// Whether the job is in the filter's answer (the institution and the
    /// creation time aside: the index prefix and the id bounds take them).
    fn matches(filter: &JobFilter, entry: &Entry) -> bool {
        (filter.host_email.is_none() || entry.host)
            && (filter.zoom_account_id.is_none() || entry.account)
            && (filter.states.is_empty() || filter.states.contains(&entry.state))
            && filter.source.is_none_or(|source| source == entry.source)
            && filter.skip_reason.is_none_or(|reason| {
                entry.state == JobState::Skipped && entry.skip_reason == Some(reason)
            })
    }

    /// Whether the entry lies in the range of the index `access` reads:
    /// the index's leading host and account equal the filter's, and its
    /// enumerated columns the range's values. Nothing else is checked: an
    /// entry inside a range is read, whatever the query's other conditions.
    fn in_range(access: Access, range: &Range, entry: &Entry) -> bool {
        let host_leads = matches!(
            access,
            Access::HostAccount | Access::HostSource | Access::Host
        );
        let account_leads = matches!(
            access,
            Access::HostAccount | Access::AccountSource | Access::Account
        );
        (!host_leads || entry.host)
            && (!account_leads || entry.account)
            && range.state.is_none_or(|state| state == entry.state)
            && range.source.is_none_or(|source| source == entry.source)
            && range.reason_key.is_none_or(|key| key == reason_key(entry))
    }

    fn any_filter() -> impl Strategy<Value = JobFilter> {
        (
            proptest::sample::subsequence(JobState::ALL.to_vec(), 0..=6),
            proptest::option::of(proptest::sample::select(SkipReason::ALL.to_vec())),
            any::<bool>(),
            any::<bool>(),
            proptest::option::of(proptest::sample::select(JobSource::ALL.to_vec())),
        )
            .prop_map(|(states, skip_reason, account, host, source)| JobFilter {
                states,
                skip_reason,
                zoom_account_id: account.then(|| "acct".into()),
                host_email: host.then(|| "host@example.edu".into()),
                source,
                ..JobFilter::default()
            })
    }

    fn any_entry() -> impl Strategy<Value = Entry> {
        (
            any::<bool>(),
            any::<bool>(),
            proptest::sample::select(JobState::ALL.to_vec()),
            proptest::sample::select(JobSource::ALL.to_vec()),
            proptest::option::of(proptest::sample::select(SkipReason::ALL.to_vec())),
        )
            .prop_map(|(host, account, state, source, skip_reason)| Entry {
                host,
                account,
                state,
                source,
                skip_reason,
            })
    }

    proptest! {
        /// Every entry a page reads matches the filter (so a page reads
        /// its own rows and the one past it, whatever the table holds), and
        /// every matching job is in exactly one range (none is missed, none
        /// listed twice).
        #[test]
        fn the_ranges_of_a_filter_hold_exactly_its_jobs(
            filter in any_filter(),
            entries in proptest::collection::vec(any_entry(), 1..40),
        ) {
            let access = Access::choose(&filter);
            let ranges = ranges(access, &filter);
            prop_assert!(ranges.len() <= 36);
            for entry in &entries {
                let holding = ranges.iter().filter(|r| in_range(access, r, entry)).count();
                prop_assert_eq!(
                    holding,
                    usize::from(matches(&filter, entry)),
                    "{:?} through {:?} ({:?}): {:?}", filter, access, ranges, entry
                );
            }
        }
    }
}
