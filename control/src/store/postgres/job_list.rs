//! How the PostgreSQL backend finds and counts jobs without scanning the
//! table: `ListJobs` as index-ordered range reads (the plan is shared with
//! SQLite: `store::job_plan`), the scrape's counts from `job_state_counts`
//! and the oldest queued job from the first entry of a partial index.
//!
//! PostgreSQL has no `INDEXED BY`, so each query is shaped so that only
//! the filter's index serves it without a sort: equality on the index's
//! leading columns, a range on `job_id`, `ORDER BY job_id LIMIT n`. A filter
//! that reads one range per state becomes one statement, a `UNION ALL` of
//! one such read per state (at most six), merged in id order by the outer
//! `ORDER BY ... LIMIT` without a sort (`Merge Append`).
//!
//! The list indexes keep `job_id` in the "POSIX" collation, and the lists
//! compare and order ids in it. It sorts exactly as the column's own "C"
//! (both are byte order), but the primary key, in "C", cannot serve such an
//! ORDER BY: otherwise the planner, counting on matches being spread evenly
//! over the ids, likes to walk the primary key and filter (a filter that
//! matches 5 % of the jobs reads 20 jobs per row of the page), and where the
//! matches are not spread evenly (an account that stopped recording months
//! ago) the last page of such a walk reads the rest of the table. With sorts
//! priced out as well (`NO_SORT_OF_MATCHES`), the only plan left is the
//! ordered walk of the filter's index from the cursor. `history_tests`
//! asserts the plans on a table large enough for the planner's choice to
//! mean something.
//!
//! Counts: every insert, state change and delete of a job adds its ±1 in
//! the same transaction (triggers of schema version 6) to the row
//! `(state, slot)` where `slot` is the writing backend's pid. A backend runs
//! one transaction at a time, so concurrent job writes never touch the same
//! counts row (no hot row, no lock wait, no deadlock between replicas); a
//! read sums the rows of each state, which at any snapshot equals a
//! `COUNT(*)` of that snapshot. `fold_job_counts` moves the rows of other
//! backends into slot 0 so they stay as few as states × live connections.

use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;

use super::jobs::{JOB_COLUMNS, job_from_row};
use super::{get, get_u64, page_of, pg_error};
use crate::model::*;
use crate::store::job_plan::{Access, admitted_states, id_bounds};
use crate::store::{Page, PageQuery, StoreResult};

/// The key of the advisory lock one folder of the counts holds ("ferrycnt").
const FOLD_LOCK_KEY: i64 = 0x6665_7272_7963_6e74;

/// The collation the lists compare and order job ids in, the list indexes'
/// (see the module docs).
const LIST_ORDER: &str = r#"COLLATE "POSIX""#;

/// The index a list reads on PostgreSQL and whether it reads one range per
/// state. As on SQLite (`Access::index`), except that the account index
/// leads with `institution_id` like every other list index (so that the
/// planner, which judges an index's heap order by its first column, never
/// finds another list index cheaper than the filter's own), and that an
/// unfiltered list reads `jobs_by_institution_state` one range
/// per state: an index on `(institution_id, job_id)` could serve every
/// filter with a state by walking and filtering, and the planner would
/// sometimes take it.
pub(super) fn index_of(access: Access) -> (&'static str, bool) {
    match access {
        Access::Institution => (Access::State.index(), true),
        other => (other.index(), other.per_state()),
    }
}

/// A value bound to a list query.
enum Param {
    Text(String),
    Int(i64),
}

/// The one statement that answers a page of a job list, and its values.
pub(super) struct ListQuery {
    pub(super) sql: String,
    values: Vec<Param>,
}

impl ListQuery {
    pub(super) fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.values
            .iter()
            .map(|value| match value {
                Param::Text(text) => text as &(dyn ToSql + Sync),
                Param::Int(int) => int as &(dyn ToSql + Sync),
            })
            .collect()
    }

    /// `condition` with its `?` numbered as the next parameter, `value`.
    fn bind(&mut self, condition: &str, value: Param) -> String {
        self.values.push(value);
        condition.replace('?', &format!("${}", self.values.len()))
    }
}

/// The statement reading `filter`'s page past `page.after`; None when the
/// filter admits no state (a skip reason with non-skipped states).
///
/// Where the index has `state` before `job_id`, the statement is one
/// parenthesised branch per admitted state, `state = $n` with the other
/// conditions, each an index range read stopping after `limit + 1` entries,
/// joined by `UNION ALL` and ordered by `job_id`: PostgreSQL merges the
/// already ordered branches (`Merge Append`) and stops at the page. The
/// state is a constant of each branch, not a value read from a joined
/// array, so the planner sees the whole index key of every branch.
pub(super) fn list_query(
    institution_id: &str,
    filter: &JobFilter,
    page: &PageQuery,
) -> Option<ListQuery> {
    let (_, per_state) = index_of(Access::choose(filter));
    let states = admitted_states(filter);
    if states.is_empty() {
        return None;
    }
    let bounds = id_bounds(filter, page);
    let mut query = ListQuery {
        sql: String::new(),
        values: vec![
            Param::Text(institution_id.to_string()),
            Param::Text(bounds.lower),
        ],
    };
    // A reason's index reads SKIPPED jobs only (only they have a reason), so
    // the state goes without saying; saying it would make the planner
    // multiply two selectivities that are one, expect almost no match, and
    // prefer reading every match and sorting them. Without a reason or a
    // state, every state is admitted.
    let mut conditions = String::new();
    if let Some(upper) = bounds.upper {
        let condition = format!(" AND job_id < ? {LIST_ORDER}");
        conditions += &query.bind(&condition, Param::Text(upper));
    }
    if let Some(reason) = filter.skip_reason {
        conditions += &query.bind(" AND skip_reason = ?", Param::Text(reason.as_str().into()));
    }
    if let Some(source) = filter.source {
        conditions += &query.bind(" AND source = ?", Param::Text(source.as_str().into()));
    }
    if let Some(account) = &filter.zoom_account_id {
        conditions += &query.bind(" AND zoom_account_id = ?", Param::Text(account.clone()));
    }
    if let Some(host) = &filter.host_email {
        conditions += &query.bind(" AND host_email_key = ?", Param::Text(host.clone()));
    }
    if let Some(from) = filter.created_from {
        conditions += &query.bind(" AND created_ms >= ?", Param::Int(from.0));
    }
    if let Some(before) = filter.created_before {
        conditions += &query.bind(" AND created_ms < ?", Param::Int(before.0));
    }
    let limit = query.bind(
        &format!(" ORDER BY job_id {LIST_ORDER} LIMIT ?"),
        Param::Int(i64::from(page.limit()) + 1),
    );
    let read = |state: &str| {
        format!(
            "SELECT {JOB_COLUMNS} FROM jobs
             WHERE institution_id = $1 AND job_id > $2 {LIST_ORDER}{state}{conditions}{limit}"
        )
    };
    query.sql = match states.as_slice() {
        [state] if per_state => {
            let state = query.bind(" AND state = ?", Param::Text(state.as_str().into()));
            read(&state)
        }
        states if per_state => {
            let branches: Vec<String> = states
                .iter()
                .map(|state| {
                    let state = query.bind(" AND state = ?", Param::Text(state.as_str().into()));
                    format!("({})", read(&state))
                })
                .collect();
            // A set operation's ORDER BY takes only column names: the
            // merge is ordered outside it.
            format!(
                "SELECT * FROM ({}) AS page{limit}",
                branches.join(" UNION ALL ")
            )
        }
        _ => read(""),
    };
    Some(query)
}

/// Sent before a list query inside its transaction (`SET LOCAL`: it ends
/// with it). Where few jobs match, or the planner believes so, it prefers
/// reading every match (through a bitmap, or a small partial index such as
/// `jobs_queued_since`) and sorting them, which is cheap only while the
/// matches are few; with sorts priced out, a page is always an ordered walk
/// of an index that stops after the page, whatever the estimates. No plan
/// of a list has a sort left (`history_tests` asserts it), but were one
/// forced in, its priced-out cost would cross the JIT threshold and add a
/// compilation of 100 ms or more to a read of a millisecond: JIT is off too.
pub(super) const NO_SORT_OF_MATCHES: &str = "SET LOCAL enable_sort = off; SET LOCAL jit = off";

/// A page of jobs; `c` must be a transaction (see `NO_SORT_OF_MATCHES`).
pub(super) async fn list_jobs(
    c: &impl GenericClient,
    institution_id: &str,
    filter: &JobFilter,
    page: &PageQuery,
) -> StoreResult<Page<Job>> {
    let Some(query) = list_query(institution_id, filter, page) else {
        return Ok(page_of(Vec::new(), page, |j: &Job| &j.job_id));
    };
    // The SET and the query go out together (the driver pipelines them).
    let params = query.params();
    let (set, rows) = futures::join!(
        c.batch_execute(NO_SORT_OF_MATCHES),
        c.query(query.sql.as_str(), &params)
    );
    set.map_err(pg_error)?;
    let rows = rows
        .map_err(pg_error)?
        .iter()
        .map(job_from_row)
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(page_of(rows, page, |j| &j.job_id))
}

/// The sums of `job_state_counts` (states × live connections rows at most,
/// see the module docs) and the first entry of the partial index of queued
/// jobs: constant work whatever the number of jobs.
pub(super) async fn job_counts(c: &impl GenericClient) -> StoreResult<JobCounts> {
    let rows = c
        .query(
            "SELECT state, SUM(jobs)::BIGINT FROM job_state_counts GROUP BY state",
            &[],
        )
        .await
        .map_err(pg_error)?;
    let mut by_state = Vec::with_capacity(rows.len());
    for row in &rows {
        let state: String = get(row, 0)?;
        let jobs = get_u64(row, 1)?;
        if let Some(state) = JobState::parse(&state).filter(|_| jobs > 0) {
            by_state.push((state, jobs));
        }
    }
    let oldest_queued = c
        .query_opt(OLDEST_QUEUED, &[])
        .await
        .map_err(pg_error)?
        .map(|row| get::<i64>(&row, 0).map(Timestamp))
        .transpose()?;
    Ok(JobCounts {
        by_state,
        oldest_queued,
    })
}

/// Served by `jobs_queued_since (updated_ms) WHERE state = 'queued'`, an
/// index-only read of its first entry.
pub(super) const OLDEST_QUEUED: &str =
    "SELECT updated_ms FROM jobs WHERE state = 'queued' ORDER BY updated_ms LIMIT 1";

/// Moves the counts rows of other backends into slot 0; returns how many it
/// moved. One replica folds at a time (the others skip), and the rows of a
/// backend inside a job write are left for the next fold (`SKIP LOCKED`),
/// so a fold never waits on a job write; a job write may wait for a fold to
/// commit, a few milliseconds. Slot 0 is written only here.
pub(super) async fn fold_job_counts(c: &impl GenericClient) -> StoreResult<u64> {
    let folding: bool = c
        .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&FOLD_LOCK_KEY])
        .await
        .map_err(pg_error)?
        .get(0);
    if !folding {
        return Ok(0);
    }
    let moved = c
        .query_one(
            "WITH taken AS (
                SELECT state, slot FROM job_state_counts WHERE slot <> 0
                FOR UPDATE SKIP LOCKED
             ), folded AS (
                DELETE FROM job_state_counts AS c USING taken
                WHERE c.state = taken.state AND c.slot = taken.slot
                RETURNING c.state, c.jobs
             ), summed AS (
                INSERT INTO job_state_counts AS c (state, slot, jobs)
                SELECT state, 0, SUM(jobs)::BIGINT FROM folded GROUP BY state
                ON CONFLICT (state, slot) DO UPDATE SET jobs = c.jobs + EXCLUDED.jobs
             )
             SELECT COUNT(*) FROM folded",
            &[],
        )
        .await
        .map_err(pg_error)?;
    get_u64(&moved, 0)
}
