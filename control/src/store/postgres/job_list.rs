//! How the PostgreSQL backend finds and counts jobs without scanning the
//! table: `ListJobs` as index-ordered range reads (the plan is shared with
//! SQLite: `store::job_plan`), the scrape's counts from `job_state_counts`
//! and the oldest queued job from the first entry of a partial index.
//!
//! PostgreSQL has no `INDEXED BY`, so each query is shaped so that only
//! the filter's index serves it without a sort: equality on the index's
//! leading columns, a range on `job_id`, `ORDER BY job_id LIMIT n`. A filter
//! that reads several ranges (one per state, source and skip reason key it
//! admits, see `job_plan::ranges`) becomes one statement, a `UNION ALL` of
//! one such read per range, merged in id order by the outer
//! `ORDER BY ... LIMIT` without a sort (`Merge Append`), planned once per
//! connection for any values (`GENERIC_LIST_PLANS`) and sent with its
//! transaction's opening and commit in one round trip (`list_jobs`).
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
use tokio_postgres::types::{ToSql, Type};

use super::jobs::{JOB_COLUMNS, job_from_row};
use super::{get, get_u64, page_of, pg_error};
use crate::model::*;
use crate::store::job_plan::{Access, REASON_KEY, Range, id_bounds, ranges};
use crate::store::{Page, PageQuery, StoreResult};

/// The key of the advisory lock one folder of the counts holds ("ferrycnt").
const FOLD_LOCK_KEY: i64 = 0x6665_7272_7963_6e74;

/// The collation the lists compare and order job ids in, the list indexes'
/// (see the module docs).
const LIST_ORDER: &str = r#"COLLATE "POSIX""#;

/// How a list reads on PostgreSQL. As on SQLite (`Access::index`),
/// except that the account index leads with `institution_id` like every
/// other list index (so that the planner, which judges an index's heap
/// order by its first column, never finds another list index cheaper than
/// the filter's own), and that an unfiltered list reads
/// `jobs_by_institution_state` one range per state: an index on
/// `(institution_id, job_id)` could serve every filter with a state by
/// walking and filtering, and the planner would sometimes take it.
pub(super) fn access_of(filter: &JobFilter) -> Access {
    match Access::choose(filter) {
        Access::Institution => Access::State,
        other => other,
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

    /// The values as SQL literals, for `EXECUTE` in the plan tests.
    #[cfg(test)]
    pub(super) fn literals(&self) -> Vec<String> {
        self.values
            .iter()
            .map(|value| match value {
                Param::Text(text) => format!("'{}'", text.replace('\'', "''")),
                Param::Int(int) => int.to_string(),
            })
            .collect()
    }

    /// The types of the values, for preparing the statement.
    pub(super) fn types(&self) -> Vec<Type> {
        self.values
            .iter()
            .map(|value| match value {
                Param::Text(_) => Type::TEXT,
                Param::Int(_) => Type::INT8,
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
/// Where the index has `state` (and in the detailed indexes the source and
/// the skip reason key) before `job_id`, the statement is one
/// parenthesised branch per range of the plan (`job_plan::ranges`), its
/// enumerated columns as `= $n` with the other conditions, each an index
/// range read stopping after `limit + 1` entries, joined by `UNION ALL` and
/// ordered by `job_id`: PostgreSQL merges the already ordered branches
/// (`Merge Append`) and stops at the page. The values are constants of each
/// branch, not values read from a joined array, so the planner sees the
/// whole index key of every branch.
pub(super) fn list_query(
    institution_id: &str,
    filter: &JobFilter,
    page: &PageQuery,
) -> Option<ListQuery> {
    let ranges = ranges(access_of(filter), filter);
    if ranges.is_empty() {
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
    let mut conditions = String::new();
    if let Some(upper) = bounds.upper {
        let condition = format!(" AND job_id < ? {LIST_ORDER}");
        conditions += &query.bind(&condition, Param::Text(upper));
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
    let mut read = |range: &Range| {
        let mut key = String::new();
        if let Some(source) = range.source {
            key += &query.bind(" AND source = ?", Param::Text(source.as_str().into()));
        }
        if let Some(state) = range.state {
            key += &query.bind(" AND state = ?", Param::Text(state.as_str().into()));
        }
        if let Some(reason_key) = range.reason_key {
            key += &query.bind(
                &format!(" AND {REASON_KEY} = ?"),
                Param::Text(reason_key.into()),
            );
        }
        format!(
            "SELECT {JOB_COLUMNS} FROM jobs
             WHERE institution_id = $1 AND job_id > $2 {LIST_ORDER}{key}{conditions}{limit}"
        )
    };
    let sql = match ranges.as_slice() {
        [range] => read(range),
        ranges => {
            let branches: Vec<String> = ranges
                .iter()
                .map(|range| format!("({})", read(range)))
                .collect();
            // A set operation's ORDER BY takes only column names: the
            // merge is ordered outside it.
            format!(
                "SELECT * FROM ({}) AS page{limit}",
                branches.join(" UNION ALL ")
            )
        }
    };
    query.sql = sql;
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

/// Why lists run generic plans. Planning a statement of several ranges
/// costs more than running it: each branch is planned against every index
/// of `jobs`, about 1 ms for six ranges and 20 ms for 36, where running any
/// of them takes well under a millisecond. So each statement is prepared
/// once per connection (`prepare_typed_cached`) and planned once, for any
/// values, at its first run (inside a list's transaction, so with
/// `NO_SORT_OF_MATCHES`). That plan cannot depend on the values: every
/// value of the filter is a parameter of the same index key, and the only
/// index whose key holds all of them is the filter's own; `history_tests`
/// asserts the generic plans. The text of a statement depends only on the
/// filter's shape (which of host, account, time bounds; how many ranges),
/// never on its values, so the shapes are bounded; a connection holding
/// more than `MAX_CACHED_STATEMENTS` forgets them all and prepares again.
pub(super) const GENERIC_LIST_PLANS: &str = "SET LOCAL plan_cache_mode = force_generic_plan";

/// Past this many prepared statements a connection drops them all.
const MAX_CACHED_STATEMENTS: usize = 512;

/// A page of jobs, in one round trip to the server once the connection has
/// prepared the filter's statement: the transaction's opening, the
/// statement and the commit are sent together (the driver pipelines
/// requests polled together) and run in order. All three are queued on the
/// connection at the first poll, so the commit reaches the server even when
/// the caller stops waiting (a client gone), and the connection goes back
/// to the pool outside any transaction; a failed statement leaves the
/// commit to end the aborted transaction. One statement is one snapshot,
/// however many ranges it merges.
pub(super) async fn list_jobs(
    c: &deadpool_postgres::ClientWrapper,
    institution_id: &str,
    filter: &JobFilter,
    page: &PageQuery,
) -> StoreResult<Page<Job>> {
    let Some(query) = list_query(institution_id, filter, page) else {
        return Ok(page_of(Vec::new(), page, |j: &Job| &j.job_id));
    };
    if c.statement_cache.size() > MAX_CACHED_STATEMENTS {
        c.statement_cache.clear();
    }
    let statement = c
        .prepare_typed_cached(&query.sql, &query.types())
        .await
        .map_err(pg_error)?;
    let params = query.params();
    // Read only, no sort of the matches, the statement's generic plan.
    let opening = format!("BEGIN READ ONLY; {NO_SORT_OF_MATCHES}; {GENERIC_LIST_PLANS}");
    let (begin, rows, commit) = futures::join!(
        c.batch_execute(&opening),
        c.query(&statement, &params),
        c.batch_execute("COMMIT")
    );
    begin.map_err(pg_error)?;
    let rows = rows
        .map_err(pg_error)?
        .iter()
        .map(job_from_row)
        .collect::<StoreResult<Vec<_>>>()?;
    commit.map_err(pg_error)?;
    Ok(page_of(rows, page, |j| &j.job_id))
}

/// The sums of `job_state_counts` (states × live connections rows at most,
/// see the module docs) and the first entry of the partial index of queued
/// jobs: constant work whatever the number of jobs.
pub(super) async fn job_counts(c: &impl GenericClient) -> StoreResult<JobCounts> {
    // Both statements prepared once per connection, then run together: one
    // round trip.
    let (sums, oldest) = futures::join!(
        c.prepare_cached(STATE_SUMS),
        c.prepare_cached(OLDEST_QUEUED)
    );
    let (sums, oldest) = (sums.map_err(pg_error)?, oldest.map_err(pg_error)?);
    let (rows, oldest) = futures::join!(c.query(&sums, &[]), c.query_opt(&oldest, &[]));
    let mut by_state = Vec::new();
    for row in &rows.map_err(pg_error)? {
        let state: String = get(row, 0)?;
        let jobs = get_u64(row, 1)?;
        if let Some(state) = JobState::parse(&state).filter(|_| jobs > 0) {
            by_state.push((state, jobs));
        }
    }
    let oldest_queued = oldest
        .map_err(pg_error)?
        .map(|row| get::<i64>(&row, 0).map(Timestamp))
        .transpose()?;
    Ok(JobCounts {
        by_state,
        oldest_queued,
    })
}

const STATE_SUMS: &str = "SELECT state, SUM(jobs)::BIGINT FROM job_state_counts GROUP BY state";

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
