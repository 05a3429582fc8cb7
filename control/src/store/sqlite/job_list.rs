//! How the SQLite backend finds jobs without scanning the table: `ListJobs`
//! as one or a few index-ordered range reads per filter (the plan, the id
//! scheme and the id bounds are shared with PostgreSQL: `store::job_plan`),
//! the scrape's counts and the claim's candidate.
//!
//! Each query names its index (`INDEXED BY`), so the plan cannot drift to a
//! full scan as the table grows; `history_tests` asserts the plans.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params};

use super::engine::sql_error;
use super::jobs::{JOB_COLUMNS, find_job_by_id, job_from_row};
use super::page_of;
use crate::model::*;
use crate::store::job_plan::{Access, REASON_KEY, Range, id_bounds, ranges};
use crate::store::{Page, PageQuery, StoreResult};

/// One index range read: the SQL (ids only, in id order) and its values.
pub(super) struct RangeRead {
    pub(super) sql: String,
    pub(super) values: Vec<Value>,
}

/// The range reads that together answer `filter` past `page.after`; their
/// merged first `limit + 1` ids are the page. One per range of the plan
/// (`job_plan::ranges`): the index's enumerated columns as equalities, so
/// every entry a read passes over matches the filter.
pub(super) fn range_reads(
    institution_id: &str,
    filter: &JobFilter,
    page: &PageQuery,
) -> Vec<RangeRead> {
    let access = Access::choose(filter);
    let bounds = id_bounds(filter, page);
    let read = |range: &Range| {
        let mut sql = format!(
            "SELECT job_id FROM jobs INDEXED BY {} WHERE institution_id = ?1 AND job_id > ?2",
            access.index()
        );
        let mut values = vec![
            Value::Text(institution_id.to_string()),
            Value::Text(bounds.lower.clone()),
        ];
        let mut bind = |sql: &mut String, condition: &str, value: Value| {
            values.push(value);
            sql.push_str(&condition.replace('?', &format!("?{}", values.len())));
        };
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
        if let Some(source) = range.source {
            bind(
                &mut sql,
                " AND source = ?",
                Value::Text(source.as_str().into()),
            );
        }
        if let Some(state) = range.state {
            bind(
                &mut sql,
                " AND state = ?",
                Value::Text(state.as_str().into()),
            );
        }
        if let Some(reason_key) = range.reason_key {
            bind(
                &mut sql,
                &format!(" AND {REASON_KEY} = ?"),
                Value::Text(reason_key.into()),
            );
        }
        if let Some(from) = filter.created_from {
            bind(&mut sql, " AND created_ms >= ?", Value::Integer(from.0));
        }
        if let Some(upper) = &bounds.upper {
            bind(&mut sql, " AND job_id < ?", Value::Text(upper.clone()));
        }
        if let Some(before) = filter.created_before {
            bind(&mut sql, " AND created_ms < ?", Value::Integer(before.0));
        }
        bind(
            &mut sql,
            " ORDER BY job_id LIMIT ?",
            Value::Integer(i64::from(page.limit()) + 1),
        );
        RangeRead { sql, values }
    };
    ranges(access, filter).iter().map(read).collect()
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
