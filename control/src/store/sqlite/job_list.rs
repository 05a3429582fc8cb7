//! How the SQLite backend finds jobs without scanning the table: the job id
//! scheme that makes a creation-time range an id range, `ListJobs` as one or
//! a few index-ordered range reads per filter, the scrape's counts and the
//! claim's candidate.
//!
//! Every job list is ordered by job id, and every index it reads ends in
//! `job_id`, so a page is the first `limit + 1` entries past the cursor of
//! one index range, never a sort. A filter on several states (or on an
//! account or a host with any state) reads one range per state and merges
//! them: at most six ranges of `limit + 1` entries. A creation-time range is
//! turned into bounds on `job_id` (see [`new_job_id`]); the exact
//! `created_ms` condition is kept beside them.
//!
//! Each query names its index (`INDEXED BY`), so the plan cannot drift to a
//! full scan as the table grows; `history_tests` asserts the plans.

use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params};

use super::engine::sql_error;
use super::jobs::{JOB_COLUMNS, find_job_by_id, job_from_row};
use super::page_of;
use crate::model::*;
use crate::store::{Page, PageQuery, StoreResult};

/// How far a job's id time may lie from its `created_ms` for jobs stored
/// before ids carried it (their id was taken at insert, a group commit after
/// the intake's clock reading): the id bounds of a time range are widened
/// by this much, and the exact `created_ms` condition decides.
const LEGACY_ID_SLACK_MS: i64 = 60_000;

static JOB_ID_SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// A job id that sorts by `created`: `job_` then 32 hex digits, the first 12
/// the creation time in Unix milliseconds (as in a UUIDv7), then a version
/// nibble, a per-process sequence (jobs created in the same millisecond by
/// one process keep their order) and 44 random bits (ids of replicas
/// sharing the file do not collide).
pub(super) fn new_job_id(created: Timestamp) -> String {
    let millis = created.0.clamp(0, (1 << 48) - 1);
    let sequence = JOB_ID_SEQUENCE.fetch_add(1, Ordering::Relaxed) & 0xffff_ffff;
    let random = rand::random::<u64>() & 0xfff_ffff_ffff;
    format!("job_{millis:012x}7{sequence:08x}{random:011x}")
}

/// The smallest job id whose id time is `at` or later.
fn job_id_floor(at: i64) -> String {
    format!("job_{:012x}{}", at.clamp(0, (1 << 48) - 1), "0".repeat(20))
}

/// Which index a list reads, and whether it reads one range per state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    /// `jobs_by_host_state (institution_id, host_email_key, state, job_id)`.
    Host,
    /// `jobs_by_account_state (zoom_account_id, state, job_id)`.
    Account,
    /// `jobs_by_institution_reason (institution_id, skip_reason, job_id)`.
    Reason,
    /// `jobs_by_institution_source (institution_id, source, job_id)`.
    Source,
    /// `jobs_by_institution_state (institution_id, state, job_id)`.
    State,
    /// `jobs_by_institution (institution_id, job_id)`.
    Institution,
}

impl Access {
    fn choose(filter: &JobFilter) -> Access {
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

    fn index(self) -> &'static str {
        match self {
            Access::Host => "jobs_by_host_state",
            Access::Account => "jobs_by_account_state",
            Access::Reason => "jobs_by_institution_reason",
            Access::Source => "jobs_by_institution_source",
            Access::State => "jobs_by_institution_state",
            Access::Institution => "jobs_by_institution",
        }
    }

    fn per_state(self) -> bool {
        matches!(self, Access::Host | Access::Account | Access::State)
    }
}

/// The states a filter admits: a skip reason admits only SKIPPED.
fn admitted_states(filter: &JobFilter) -> Vec<JobState> {
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

/// One index range read: the SQL (ids only, in id order) and its values.
pub(super) struct RangeRead {
    pub(super) sql: String,
    pub(super) values: Vec<Value>,
}

/// The range reads that together answer `filter` past `page.after`; their
/// merged first `limit + 1` ids are the page.
pub(super) fn range_reads(
    institution_id: &str,
    filter: &JobFilter,
    page: &PageQuery,
) -> Vec<RangeRead> {
    let access = Access::choose(filter);
    let states = admitted_states(filter);
    if states.is_empty() {
        return Vec::new();
    }
    let mut lower = page.after.clone().unwrap_or_default();
    if let Some(from) = filter.created_from {
        lower = lower.max(job_id_floor(from.0.saturating_sub(LEGACY_ID_SLACK_MS)));
    }
    let read = |state: Option<JobState>| {
        let mut sql = format!(
            "SELECT job_id FROM jobs INDEXED BY {} WHERE institution_id = ?1 AND job_id > ?2",
            access.index()
        );
        let mut values = vec![
            Value::Text(institution_id.to_string()),
            Value::Text(lower.clone()),
        ];
        let mut bind = |sql: &mut String, condition: &str, value: Value| {
            values.push(value);
            sql.push_str(&condition.replace('?', &format!("?{}", values.len())));
        };
        if let Some(state) = state {
            bind(
                &mut sql,
                " AND state = ?",
                Value::Text(state.as_str().into()),
            );
        } else if !filter.states.is_empty() || filter.skip_reason.is_some() {
            for (i, state) in states.iter().enumerate() {
                let prefix = if i == 0 { " AND state IN (?" } else { ", ?" };
                bind(&mut sql, prefix, Value::Text(state.as_str().into()));
            }
            sql.push(')');
        }
        if let Some(reason) = filter.skip_reason {
            bind(
                &mut sql,
                " AND skip_reason = ?",
                Value::Text(reason.as_str().into()),
            );
        }
        if let Some(source) = filter.source {
            bind(
                &mut sql,
                " AND source = ?",
                Value::Text(source.as_str().into()),
            );
        }
        if let Some(account) = &filter.zoom_account_id {
            bind(
                &mut sql,
                " AND zoom_account_id = ?",
                Value::Text(account.clone()),
            );
        }
        if let Some(host) = &filter.host_email {
            bind(
                &mut sql,
                " AND host_email_key = ?",
                Value::Text(host.clone()),
            );
        }
        if let Some(from) = filter.created_from {
            bind(&mut sql, " AND created_ms >= ?", Value::Integer(from.0));
        }
        if let Some(before) = filter.created_before {
            let bound = before.0.saturating_add(LEGACY_ID_SLACK_MS);
            bind(
                &mut sql,
                " AND job_id < ?",
                Value::Text(job_id_floor(bound)),
            );
            bind(&mut sql, " AND created_ms < ?", Value::Integer(before.0));
        }
        bind(
            &mut sql,
            " ORDER BY job_id LIMIT ?",
            Value::Integer(i64::from(page.limit()) + 1),
        );
        RangeRead { sql, values }
    };
    if access.per_state() {
        states.iter().map(|state| read(Some(*state))).collect()
    } else {
        vec![read(None)]
    }
}

pub(super) fn list_jobs(
    conn: &Connection,
    institution_id: &str,
    filter: &JobFilter,
    page: &PageQuery,
) -> StoreResult<Page<Job>> {
    let reads = range_reads(institution_id, filter, page);
    let limit = page.limit() as usize + 1;
    if let [read] = reads.as_slice() {
        // One range: read the rows themselves in the same pass.
        let sql = read
            .sql
            .replacen("SELECT job_id", &format!("SELECT {JOB_COLUMNS}"), 1);
        let rows = conn
            .prepare_cached(&sql)
            .map_err(sql_error)?
            .query_map(rusqlite::params_from_iter(&read.values), job_from_row)
            .map_err(sql_error)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(sql_error)?;
        return Ok(page_of(rows, page, |j| &j.job_id));
    }
    let mut ids = Vec::new();
    for read in &reads {
        let mut statement = conn.prepare_cached(&read.sql).map_err(sql_error)?;
        let found = statement
            .query_map(rusqlite::params_from_iter(&read.values), |row| {
                row.get::<_, String>(0)
            })
            .map_err(sql_error)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(sql_error)?;
        ids.extend(found);
    }
    ids.sort_unstable();
    ids.truncate(limit);
    let rows = ids
        .iter()
        .map(|job_id| find_job_by_id(conn, job_id))
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(page_of(rows, page, |j| &j.job_id))
}

/// Reads the counts the triggers keep (`job_state_counts`, six rows) and
/// the first entry of the partial index of queued jobs: constant work
/// whatever the number of jobs.
pub(super) fn job_counts(c: &Connection) -> StoreResult<JobCounts> {
    let mut statement = c
        .prepare_cached("SELECT state, jobs FROM job_state_counts")
        .map_err(sql_error)?;
    let by_state = statement
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })
        .map_err(sql_error)?
        .filter_map(|row| match row {
            Ok((_, 0)) => None,
            Ok((state, n)) => JobState::parse(&state).map(|s| Ok((s, n.max(0) as u64))),
            Err(e) => Some(Err(sql_error(e))),
        })
        .collect::<StoreResult<Vec<_>>>()?;
    let oldest_queued = c
        .prepare_cached(
            "SELECT updated_ms FROM jobs INDEXED BY jobs_queued_since
             WHERE state = 'queued' ORDER BY updated_ms LIMIT 1",
        )
        .map_err(sql_error)?
        .query_row([], |row| row.get::<_, i64>(0))
        .optional()
        .map_err(sql_error)?
        .map(Timestamp);
    Ok(JobCounts {
        by_state,
        oldest_queued,
    })
}

/// The oldest claimable job: the first QUEUED one, or the first
/// TRANSFERRING one whose lease has expired, whichever has the lower id.
/// Two index seeks (transferring jobs are as few as the workers), where one
/// `state = 'queued' OR ...` query would sort every queued job.
pub(super) fn claim_candidate(conn: &Connection, now: Timestamp) -> StoreResult<Option<String>> {
    let queued: Option<String> = conn
        .prepare_cached(
            "SELECT job_id FROM jobs INDEXED BY jobs_by_state
             WHERE state = 'queued' ORDER BY job_id LIMIT 1",
        )
        .map_err(sql_error)?
        .query_row([], |row| row.get(0))
        .optional()
        .map_err(sql_error)?;
    let expired: Option<String> = conn
        .prepare_cached(
            "SELECT job_id FROM jobs INDEXED BY jobs_by_state
             WHERE state = 'transferring' AND lease_expires_ms < ?1 ORDER BY job_id LIMIT 1",
        )
        .map_err(sql_error)?
        .query_row(params![now.0], |row| row.get(0))
        .optional()
        .map_err(sql_error)?;
    Ok(match (queued, expired) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

#[cfg(test)]
mod tests {
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
}
