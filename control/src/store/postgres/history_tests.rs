//! Tests of what keeps the PostgreSQL backend fast after a year of
//! recordings, against a throwaway cluster: the trigger-kept job counts
//! (seeded by migration 6 from the jobs already stored, right after a
//! reopen, and right when two replicas change states at once while the
//! counts are folded, and after a bulk import), the query plans of every
//! job list and of the oldest queued job, and the bulk import's rows.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::{Client, NoTls};

use super::testing::TestCluster;
use super::tests::{new_job, open, tenant, two_replicas};
use super::*;
use crate::error::ErrorClass;
use crate::store::{JobStore, LeaseHolder, RetentionSweep, conformance};

/// A connection of the test's own, outside any store's pool.
async fn raw_client(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(connection);
    client
}

async fn recount(raw: &Client) -> Vec<(JobState, u64)> {
    raw.query(
        "SELECT state, COUNT(*) FROM jobs GROUP BY state ORDER BY state",
        &[],
    )
    .await
    .expect("recount jobs")
    .iter()
    .map(|row| {
        let state: String = row.get(0);
        let jobs: i64 = row.get(1);
        (JobState::parse(&state).expect("known state"), jobs as u64)
    })
    .collect()
}

fn sorted(mut counts: JobCounts) -> JobCounts {
    counts.by_state.sort_by_key(|(state, _)| state.as_str());
    counts
}

/// A database made by the migrations before the counts existed, with
/// jobs in it: opening it with this Ferry seeds the counts from them, and
/// the counts stay right across a reopen (new connections, new pids).
#[tokio::test]
async fn counts_are_seeded_from_existing_jobs_and_survive_reopen() {
    let url = TestCluster::shared().fresh_database().await;
    let raw = raw_client(&url).await;
    raw.batch_execute(
        "CREATE TABLE schema_migrations (
            version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await
    .expect("migrations table");
    let before_counts = schema::JOB_HISTORY_VERSION as usize - 1;
    for (version, sql) in &schema::MIGRATIONS[..before_counts] {
        raw.batch_execute(sql).await.expect("old migration");
        raw.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[version],
        )
        .await
        .expect("record migration");
    }
    raw.batch_execute(
        "INSERT INTO institutions (institution_id, display_name, created_ms) VALUES ('inst_old', 'Old', 0)",
    )
    .await
    .expect("institution");
    let insert = conformance::pre_counts_job_insert(|n| format!("${n}"));
    for (i, state) in conformance::PRE_COUNTS_JOB_STATES.iter().enumerate() {
        raw.execute(
            &insert,
            &[&format!("job_{i:032}"), state, &(1_000 + i as i64)],
        )
        .await
        .expect("old job");
    }
    let store = open(&url).await;
    conformance::pre_counts_seeded(&store, recount(&raw).await).await;
    drop(store);

    let reopened = open(&url).await;
    conformance::pre_counts_after_cancel(&reopened, recount(&raw).await).await;
}

/// Claims and finishes on both replicas until nothing is left to claim.
async fn work_off(store: &PostgresStore, worker_id: &str) {
    let mut finished = 0u32;
    while let Some(lease) = store
        .claim_job(worker_id, Duration::from_secs(60), Timestamp::now())
        .await
        .expect("claim")
    {
        let outcome = if finished.is_multiple_of(2) {
            JobOutcome::Failed {
                message: "broken".into(),
            }
        } else {
            JobOutcome::Skipped {
                reason: SkipReason::TooLarge,
                message: "too large".into(),
            }
        };
        let holder = LeaseHolder {
            job_id: &lease.job.job_id,
            worker_id,
        };
        // A job cancelled meanwhile (by `cancel_and_requeue`) is no longer held.
        match store.finish_job(holder, outcome, Timestamp::now()).await {
            Ok(_) => finished += 1,
            Err(e) => assert_eq!(e.class(), ErrorClass::FailedPrecondition, "{e}"),
        }
    }
}

/// Cancels and requeues jobs on `store` while workers hold them; a job that
/// has moved on (final, or deleted by a sweep) is passed over.
async fn cancel_and_requeue(store: &PostgresStore, institution_id: &str, job_ids: &[String]) {
    for job_id in job_ids {
        for result in [
            store
                .cancel_job(institution_id, job_id, Timestamp::now())
                .await,
            store
                .requeue_job(JobRequeue {
                    institution_id: institution_id.to_string(),
                    job_id: job_id.clone(),
                    now: Timestamp::now(),
                    owner_user_id: String::new(),
                    recording_file: None,
                    sealed_download_url: None,
                    message: String::new(),
                })
                .await,
        ] {
            if let Err(e) = result {
                assert!(
                    matches!(
                        e.class(),
                        ErrorClass::FailedPrecondition | ErrorClass::NotFound
                    ),
                    "{e}"
                );
            }
        }
    }
}

/// Sweeps (folding the counts each time, deleting final jobs every third
/// pass) while the replicas work.
async fn fold_repeatedly(store: &PostgresStore) {
    for pass in 0..30 {
        store
            .sweep_retention(RetentionSweep {
                erase_secrets_finished_before: Timestamp(0),
                delete_jobs_finished_before: (pass % 3 == 2).then(Timestamp::now),
                max_jobs: 5,
            })
            .await
            .expect("sweep and fold");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Two replicas (two pools) create, claim, finish, cancel, requeue and
/// delete jobs at once while the counts are folded: no write waits on a
/// shared counts row or deadlocks, and both replicas' counts equal a
/// `COUNT(*)` afterwards, before and after a final fold empties every slot
/// but 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_changing_states_at_once_keep_counts_equal_to_a_recount() {
    let (a, b) = two_replicas().await;
    let (institution_id, _, account) = tenant(&a).await;
    let queued = |i: usize| NewJob {
        state: JobState::Queued,
        skip_reason: None,
        ..new_job(&institution_id, &account, &format!("counted-{i}"))
    };
    let creates = (0..240).map(|i| {
        let store = if i % 2 == 0 { &a } else { &b };
        store.upsert_job(queued(i))
    });
    let mut job_ids = Vec::new();
    for created in futures::future::join_all(creates).await {
        let (job, created) = created.expect("create");
        assert!(created);
        job_ids.push(job.job_id);
    }
    let raw = raw_client(&TestCluster::shared().url(&database_of(&a).await)).await;
    tokio::join!(
        work_off(&a, "worker-a1"),
        work_off(&a, "worker-a2"),
        work_off(&b, "worker-b1"),
        work_off(&b, "worker-b2"),
        cancel_and_requeue(&b, &institution_id, &job_ids[..60]),
        cancel_and_requeue(&a, &institution_id, &job_ids[60..120]),
        fold_repeatedly(&a),
        fold_repeatedly(&b),
    );
    // One more write through each pool, so both hold rows of their own.
    a.upsert_job(queued(1_000)).await.expect("create on a");
    b.upsert_job(queued(1_001)).await.expect("create on b");
    let expected = recount(&raw).await;
    assert!(expected.len() >= 3, "the work moved jobs: {expected:?}");
    for store in [&a, &b] {
        assert_eq!(
            sorted(store.job_counts().await.expect("counts")).by_state,
            expected
        );
    }
    assert!(
        backend_slots(&raw).await >= 2,
        "each backend writes its own rows"
    );
    a.sweep_retention(RetentionSweep {
        erase_secrets_finished_before: Timestamp(0),
        delete_jobs_finished_before: None,
        max_jobs: 5,
    })
    .await
    .expect("final fold");
    assert_eq!(
        backend_slots(&raw).await,
        0,
        "an idle fold leaves only slot 0"
    );
    for store in [&a, &b] {
        assert_eq!(
            sorted(store.job_counts().await.expect("counts")).by_state,
            expected
        );
    }
}

/// A bulk import writes the rows the intake's insert writes (each job reads
/// back as the same job would through `upsert_job`, and is listed), the
/// kept counts equal a recount after it, and a batch holding a job already
/// stored writes nothing of itself.
#[tokio::test]
async fn imported_jobs_read_back_as_upserted_ones_and_are_counted() {
    let url = TestCluster::shared().fresh_database().await;
    let store = open(&url).await;
    let raw = raw_client(&url).await;
    let (institution_id, _, account) = tenant(&store).await;
    let states = [
        (JobState::Completed, None),
        (JobState::Skipped, Some(SkipReason::TooLarge)),
        (JobState::Failed, None),
        (JobState::Queued, None),
    ];
    let jobs: Vec<NewJob> = (0..2_000)
        .map(|i| {
            let (state, skip_reason) = states[i % states.len()];
            NewJob {
                state,
                skip_reason,
                source: JobSource::ALL[i % 3],
                host_email: format!("Host{}@Example.edu", i % 7),
                ..new_job(&institution_id, &account, &format!("imported-{i}=="))
            }
        })
        .collect();
    assert_eq!(store.import_new_jobs(&jobs).await.expect("import"), 2_000);
    assert_eq!(
        sorted(store.job_counts().await.expect("counts")).by_state,
        recount(&raw).await,
        "the trigger counted the COPY"
    );

    let upserted = NewJob {
        meeting_uuid: "upserted==".into(),
        ..jobs[1].clone()
    };
    let (through_upsert, created) = store.upsert_job(upserted).await.expect("upsert");
    assert!(created);
    let listed = store
        .list_jobs(
            &institution_id,
            &JobFilter {
                host_email: Some("host1@example.edu".into()),
                skip_reason: Some(SkipReason::TooLarge),
                source: Some(JobSource::Reconcile),
                ..JobFilter::default()
            },
            &PageQuery::first(1_000),
        )
        .await
        .expect("list");
    let imported = listed
        .items
        .iter()
        .find(|job| job.meeting_uuid == "imported-1==")
        .expect("the imported job is listed by its host, reason and source");
    assert!(
        listed
            .items
            .iter()
            .any(|job| job.job_id == through_upsert.job_id)
    );
    let comparable = |job: &Job| Job {
        job_id: String::new(),
        meeting_uuid: String::new(),
        ..job.clone()
    };
    assert_eq!(comparable(imported), comparable(&through_upsert));

    let again = vec![
        jobs[0].clone(),
        new_job(&institution_id, &account, "fresh=="),
    ];
    let error = store
        .import_new_jobs(&again)
        .await
        .expect_err("a stored job");
    assert_eq!(error.class(), ErrorClass::AlreadyExists, "{error}");
    assert_eq!(
        recount(&raw).await.iter().map(|(_, n)| n).sum::<u64>(),
        2_001,
        "nothing of the failed batch was written"
    );
}

/// How many backends hold rows of their own in `job_state_counts`.
async fn backend_slots(raw: &Client) -> i64 {
    raw.query_one(
        "SELECT COUNT(DISTINCT slot) FROM job_state_counts WHERE slot <> 0",
        &[],
    )
    .await
    .expect("count slots")
    .get(0)
}

async fn database_of(store: &PostgresStore) -> String {
    store
        .client()
        .await
        .expect("client")
        .query_one("SELECT current_database()", &[])
        .await
        .expect("database name")
        .get(0)
}

/// `EXPLAIN (FORMAT JSON)` output: the driver decodes `json` only with a
/// feature Ferry does not need elsewhere.
struct PlanJson(serde_json::Value);

impl<'a> FromSql<'a> for PlanJson {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(PlanJson(serde_json::from_slice(raw)?))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSON
    }
}

/// The plan PostgreSQL makes for `sql` with `params` after `settings` (run
/// too when `options` is `"ANALYZE, "`, in a transaction rolled back), as
/// the store sends them (in one transaction, the statement planned with
/// its values bound).
async fn plan(
    raw: &mut Client,
    settings: &str,
    options: &str,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> serde_json::Value {
    let tx = raw.transaction().await.expect("begin");
    tx.batch_execute(settings).await.expect("settings");
    let row = tx
        .query_one(&format!("EXPLAIN ({options}FORMAT JSON) {sql}"), params)
        .await
        .unwrap_or_else(|e| panic!("cannot plan {sql}: {e}"));
    tx.rollback().await.expect("rollback");
    let PlanJson(mut json) = row.get(0);
    json[0]["Plan"].take()
}

/// The plan the store runs for a list statement, run: its generic plan
/// (prepared with its types, planned under the list's settings for any
/// values, then executed with these), as `job_list::list_jobs` runs it.
async fn generic_plan(raw: &mut Client, query: &job_list::ListQuery) -> serde_json::Value {
    let tx = raw.transaction().await.expect("begin");
    let types: Vec<&str> = query
        .types()
        .iter()
        .map(|t| if *t == Type::INT8 { "bigint" } else { "text" })
        .collect();
    tx.batch_execute(&format!(
        "{}; {}; PREPARE list_page ({}) AS {}",
        job_list::NO_SORT_OF_MATCHES,
        job_list::GENERIC_LIST_PLANS,
        types.join(", "),
        query.sql
    ))
    .await
    .unwrap_or_else(|e| panic!("cannot prepare {}: {e:?}", query.sql));
    let row = tx
        .query_one(
            &format!(
                "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE list_page ({})",
                query.literals().join(", ")
            ),
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("cannot plan {}: {e:?}", query.sql));
    // A prepared statement outlives the transaction.
    tx.batch_execute("DEALLOCATE list_page")
        .await
        .expect("deallocate");
    tx.rollback().await.expect("rollback");
    let PlanJson(mut json) = row.get(0);
    json[0]["Plan"].take()
}

/// The plan reads `jobs` by `ranges` index scans, each of one of `indexes`
/// (the one used is returned), each seeking the page's lower id bound in
/// the index (`job_id > ...` in its Index Cond, and `state = ...` when it is
/// one range of several states) and stopped by a `Limit`; nothing in the
/// plan sorts, hashes or collects the matches (several ranges are merged by
/// a `Merge Append` of ordered inputs). No condition of the filter but the
/// exact creation time is a `Filter` of a scan (each is in the index key),
/// and, run, each scan returned at most the page and one more and passed
/// over at most `MAX_PASSED_OVER` entries: its work is bounded by the page,
/// not by the table, by all the matches or by a narrower range.
#[track_caller]
fn assert_bounded_plan(
    node: &serde_json::Value,
    indexes: &[&str],
    (ranges, limit): (usize, u64),
    what: &str,
) -> String {
    fn walk(
        node: &serde_json::Value,
        limited: bool,
        (indexes, ranges, limit): (&[&str], usize, u64),
        what: &str,
        scans: &mut Vec<String>,
    ) {
        let node_type = node["Node Type"].as_str().unwrap_or_default();
        assert!(
            !matches!(
                node_type,
                "Sort" | "Incremental Sort" | "Hash" | "Aggregate" | "Materialize" | "Seq Scan"
            ) && !node_type.starts_with("Bitmap"),
            "{what}: {node_type} in {node:#}"
        );
        if node["Relation Name"] == "jobs" {
            assert!(
                matches!(node_type, "Index Scan" | "Index Only Scan"),
                "{what}: {node_type} on jobs"
            );
            let index = node["Index Name"].as_str().unwrap_or_default();
            assert!(
                indexes.contains(&index),
                "{what}: index {index}, not one of {indexes:?}"
            );
            let condition = node["Index Cond"].as_str().unwrap_or_default();
            assert!(
                condition.contains("(job_id >"),
                "{what}: the cursor is not an index bound: {condition}"
            );
            assert!(
                ranges == 1 || condition.contains("(state ="),
                "{what}: one range of several states is not bounded by its state: {condition}"
            );
            assert!(limited, "{what}: index scan not stopped by a Limit");
            let filter = node["Filter"].as_str().unwrap_or_default();
            for column in [
                "state",
                "source",
                "skip_reason",
                "host_email_key",
                "zoom_account_id",
            ] {
                assert!(
                    !filter.contains(column),
                    "{what}: {column} is filtered, not a key of {index}: {filter}"
                );
            }
            let returned = node["Actual Rows"].as_u64().unwrap_or_default();
            let passed_over = node["Rows Removed by Filter"].as_u64().unwrap_or_default();
            assert!(
                returned <= limit + 1 && passed_over <= MAX_PASSED_OVER,
                "{what}: {index} read {returned} entries and passed over {passed_over} \
                 for a page of {limit}: {node:#}"
            );
            scans.push(index.to_string());
        }
        let limited = limited || node_type == "Limit";
        for child in node["Plans"].as_array().into_iter().flatten() {
            walk(child, limited, (indexes, ranges, limit), what, scans);
        }
    }
    assert_eq!(
        node["Node Type"], "Limit",
        "{what}: the page is not a Limit"
    );
    let mut scans = Vec::new();
    for child in node["Plans"].as_array().into_iter().flatten() {
        walk(
            child,
            ranges == 1,
            (indexes, ranges, limit),
            what,
            &mut scans,
        );
    }
    assert_eq!(
        scans.len(),
        ranges,
        "{what}: {scans:?} read jobs in {node:#}"
    );
    scans.remove(0)
}

/// How many entries a range may pass over without returning them: only the
/// exact creation-time condition filters (every other condition of a
/// filter is in the index's key), and only within
/// `job_plan::LEGACY_ID_SLACK_MS` of a time range's ends, where this table
/// holds one job a minute. A filter whose index does not hold one of its
/// conditions passes over entries that do not match, as many as the table
/// puts between two matches (the test fails).
const MAX_PASSED_OVER: u64 = 2;

const PLAN_JOBS: i64 = 200_000;
const PLAN_START_MS: i64 = 1_700_000_000_000;
const PLAN_STEP_MS: i64 = 60_000;

/// A year-like history written straight into the table: ids in the store's
/// scheme, two institutions, 20 accounts, 2,000 hosts, 85 % completed, 10 %
/// skipped over five reasons, 3 % failed, 2 % cancelled, 0.05 % queued and
/// 0.05 % transferring; 95 % from webhooks, 4 % found by the reconciler
/// and 1 % by a backfill. Every state is present, as in a running daemon: the
/// planner prices an index range its statistics hold empty the same in
/// every index that can read it, and may then read the state's range of the
/// institution and filter it (bounded by that state's jobs, few for the
/// transferring ones, but not by the page).
async fn fill_history(raw: &Client) {
    raw.batch_execute(&format!(
        "INSERT INTO institutions (institution_id, display_name, created_ms)
            VALUES ('inst_a', 'A', 0), ('inst_b', 'B', 0);
         INSERT INTO jobs (job_id, institution_id, zoom_account_id, meeting_uuid, meeting_id, topic,
            host_email, host_email_key, state, skip_reason, message, skipped_file_count,
            skipped_segment_count, created_ms, updated_ms, finished_ms, source)
         SELECT 'job_' || lpad(to_hex(created), 12, '0') || '7' || lpad(to_hex(i), 19, '0'),
            CASE WHEN i % 10 = 0 THEN 'inst_b' ELSE 'inst_a' END,
            'acct-' || spread % 20, 'meeting-' || i, i, 'Lecture ' || i % 40 || ' of Course ' || spread % 300,
            'host' || spread / 3 % 2000 || '@example.edu', 'host' || spread / 3 % 2000 || '@example.edu',
            state,
            CASE WHEN state = 'skipped' THEN (ARRAY['no_matching_user', 'recorded_before_install',
                'too_long', 'too_large', 'no_downloadable_file'])[(1 + spread / 1000 % 5)::int] END,
            '', 2, 0, created, created, CASE WHEN state <> 'queued' THEN created END,
            CASE WHEN spread / 7 % 100 < 4 THEN 'reconcile'
                 WHEN spread / 7 % 100 < 5 THEN 'backfill'
                 ELSE 'webhook' END
         FROM generate_series(1, {PLAN_JOBS}) AS i,
         LATERAL (SELECT {PLAN_START_MS} + i * {PLAN_STEP_MS}::bigint AS created,
                         i * 2654435761 % 1000000007 AS spread) AS picked,
         LATERAL (SELECT CASE WHEN spread % 1000 < 850 THEN 'completed'
                              WHEN spread % 1000 < 950 THEN 'skipped'
                              WHEN spread % 1000 < 980 THEN 'failed'
                              WHEN spread % 1000 < 999 THEN 'cancelled'
                              WHEN i % 2 = 0 THEN 'queued'
                              ELSE 'transferring' END AS state) AS kind;"
    ))
    .await
    .expect("fill the history");
    raw.batch_execute("VACUUM ANALYZE jobs")
        .await
        .expect("vacuum analyze");
}

/// Asserting plans means something only where the planner has a choice: on
/// an empty or tiny table it may read everything whatever the indexes. So
/// the table holds 200,000 jobs with a realistic mix and is analyzed, and
/// the planner keeps every option (`enable_seqscan` and the rest as the
/// server has them): if it preferred a full scan, a bitmap read of every
/// match or a sort of the matches for any filter, at this size it would
/// prefer it at ten million too, and the test fails. Each statement is the
/// one the store sends, planned as the store plans it (once, for any
/// values: `generic_plan`) and run with its values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_job_list_filter_reads_one_index_range_per_state_without_sorting() {
    let url = TestCluster::shared().fresh_database().await;
    let store = open(&url).await;
    let mut raw = raw_client(&url).await;
    fill_history(&raw).await;
    assert_eq!(
        sorted(store.job_counts().await.expect("counts")).by_state,
        recount(&raw).await,
        "the triggers counted the bulk insert"
    );
    let at = |i: i64| Timestamp(PLAN_START_MS + i * PLAN_STEP_MS);
    let state_sets = [
        vec![],
        vec![JobState::Failed],
        vec![JobState::Skipped],
        vec![JobState::Queued],
        vec![
            JobState::Queued,
            JobState::Transferring,
            JobState::Completed,
        ],
    ];
    let mut planned = BTreeMap::<String, u32>::new();
    // The big institution (90 % of the jobs) and a small one (10 %).
    for institution_id in ["inst_a", "inst_b"] {
        for states in &state_sets {
            for mask in 0..64u32 {
                let filter = JobFilter {
                    states: states.clone(),
                    skip_reason: (mask & 1 != 0).then_some(SkipReason::TooLarge),
                    zoom_account_id: (mask & 2 != 0).then(|| "acct-3".to_string()),
                    host_email: (mask & 4 != 0).then(|| "host42@example.edu".to_string()),
                    created_from: (mask & 8 != 0).then(|| at(100_000)),
                    created_before: (mask & 16 != 0).then(|| at(150_000)),
                    source: (mask & 32 != 0).then_some(JobSource::Reconcile),
                };
                let middle = crate::store::job_plan::job_id_floor(at(120_000).0);
                for after in [None, Some(middle)] {
                    let page = PageQuery { after, size: 100 };
                    let Some(query) = job_list::list_query(institution_id, &filter, &page) else {
                        continue;
                    };
                    let index = job_list::access_of(&filter).index();
                    // The planner may read another list index when it
                    // judges it narrower (a state its statistics hold
                    // almost empty in either): what the test holds it to is
                    // reading only matching entries, measured.
                    let indexes = [
                        "jobs_by_host_account",
                        "jobs_by_host_source",
                        "jobs_by_host_state",
                        "jobs_by_account_source",
                        "jobs_by_account_state",
                        "jobs_by_institution_state",
                        "jobs_by_institution_source",
                    ];
                    debug_assert!(indexes.contains(&index));
                    let what = format!("{institution_id} {filter:?} after {:?}", page.after);
                    let plan = generic_plan(&mut raw, &query).await;
                    let ranges =
                        crate::store::job_plan::ranges(job_list::access_of(&filter), &filter).len();
                    let index =
                        assert_bounded_plan(&plan, &indexes, (ranges, page.size.into()), &what);
                    *planned.entry(index).or_default() += 1;
                }
            }
        }
    }
    assert_eq!(planned.len(), 7, "every index planned: {planned:?}");
    // 2 institutions × 5 state sets × 64 combinations, twice each (first
    // and next page), less those a skip reason makes empty (no state
    // admitted: 3 state sets × 32 combinations with a reason).
    assert_eq!(planned.values().sum::<u32>(), 1280 - 384, "{planned:?}");

    // The oldest queued job: the first entry of the partial index, read
    // without the table.
    let oldest = plan(&mut raw, "", "", job_list::OLDEST_QUEUED, &[]).await;
    assert_eq!(oldest["Node Type"], "Limit", "{oldest:#}");
    let scan = &oldest["Plans"][0];
    assert_eq!(scan["Node Type"], "Index Only Scan", "{oldest:#}");
    assert_eq!(scan["Index Name"], "jobs_queued_since", "{oldest:#}");

    // The claim: the first queued job and the first expired lease, each the
    // first entry of an index range (no walk of the primary key until a
    // match, which is the whole table when nothing is queued).
    for (sql, index, state) in [
        (leases::CLAIM_QUEUED, "jobs_queued_by_id", None),
        (leases::CLAIM_EXPIRED, "jobs_by_state", Some("transferring")),
    ] {
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = if state.is_some() {
            vec![&"clock", &0i64]
        } else {
            vec![]
        };
        let claim = plan(&mut raw, "", "", sql, &params).await;
        assert_eq!(claim["Node Type"], "Limit", "{claim:#}");
        let scan = &claim["Plans"][0]["Plans"][0];
        assert_eq!(claim["Plans"][0]["Node Type"], "LockRows", "{claim:#}");
        assert_eq!(scan["Node Type"], "Index Scan", "{claim:#}");
        assert_eq!(scan["Index Name"], index, "{claim:#}");
        if let Some(state) = state {
            let condition = scan["Index Cond"].as_str().unwrap_or_default();
            assert!(
                condition.contains(&format!("(state = '{state}'")),
                "{claim:#}"
            );
        }
    }
}
