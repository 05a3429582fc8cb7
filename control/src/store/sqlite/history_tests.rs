//! Tests of what keeps the SQLite backend fast and small after a year of
//! recordings, on real database files: the trigger-kept job counts (right
//! after a reopen, seeded by the migration from the jobs already stored) and
//! the query plans of every job list and of the scrape and claim queries,
//! and the WAL's bound under a sustained burst and at close.

use rusqlite::Connection;

use super::*;
use crate::store::{JobStore, conformance};

fn recount(conn: &Connection) -> Vec<(JobState, u64)> {
    let mut counts: Vec<(JobState, u64)> = conn
        .prepare("SELECT state, COUNT(*) FROM jobs GROUP BY state")
        .and_then(|mut statement| {
            statement
                .query_map([], |row| {
                    Ok((
                        JobState::parse(&row.get::<_, String>(0)?).expect("known state"),
                        row.get::<_, i64>(1)? as u64,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .expect("recount jobs");
    counts.sort_by_key(|(state, _)| state.as_str());
    counts
}

/// A database made by the three migrations before the counts existed, with
/// jobs in it: opening it with this Ferry seeds the counts from them, and
/// the counts stay right across a reopen.
#[tokio::test]
async fn counts_are_seeded_from_existing_jobs_and_survive_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ferry.db");
    {
        let conn = Connection::open(&path).expect("open raw");
        conn.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL)",
        )
        .expect("migrations table");
        for (version, sql) in &schema::MIGRATIONS[..3] {
            conn.execute_batch(sql).expect("old migration");
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_ms) VALUES (?1, 0)",
                [version],
            )
            .expect("record migration");
        }
        conn.execute(
            "INSERT INTO institutions (institution_id, display_name, created_ms) VALUES ('inst_old', 'Old', 0)",
            [],
        )
        .expect("institution");
        let insert = conformance::pre_counts_job_insert(|n| format!("?{n}"));
        for (i, state) in conformance::PRE_COUNTS_JOB_STATES.iter().enumerate() {
            conn.execute(
                &insert,
                rusqlite::params![format!("job_{i:032}"), state, 1_000 + i as i64],
            )
            .expect("old job");
        }
    }
    let store = SqliteStore::open(&SqliteConfig::new(&path)).expect("open and migrate");
    let conn = Connection::open(&path).expect("open raw");
    conformance::pre_counts_seeded(&store, recount(&conn)).await;
    drop(store);

    let reopened = SqliteStore::open(&SqliteConfig::new(&path)).expect("reopen");
    conformance::pre_counts_after_cancel(&reopened, recount(&conn)).await;
}

/// What SQLite plans for `sql` with `values`, one line per step.
fn query_plan(conn: &Connection, sql: &str, values: &[rusqlite::types::Value]) -> Vec<String> {
    conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .and_then(|mut statement| {
            statement
                .query_map(rusqlite::params_from_iter(values), |row| {
                    row.get::<_, String>(3)
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .unwrap_or_else(|e| panic!("cannot plan {sql}: {e}"))
}

/// Every step reads `jobs` through an index range, none sorts, and the
/// range's key holds every condition of the filter but the exact creation
/// time (`columns`, each an equality): every
/// entry the read passes over matches, so the work is bounded by the page,
/// not by the table or by a narrower range that a condition filters.
#[track_caller]
fn assert_index_only_plan(plan: &[String], columns: &[&str], what: &str) {
    assert!(!plan.is_empty(), "{what}: no plan");
    for step in plan {
        assert!(
            step.starts_with("SEARCH jobs USING") && !step.contains("TEMP B-TREE"),
            "{what}: step {step:?} of {plan:?} scans or sorts"
        );
        for column in columns {
            assert!(
                step.contains(&format!("{column}=?")),
                "{what}: {column} is not in the key of {step:?}"
            );
        }
    }
}

#[test]
fn every_job_list_filter_reads_an_index_range_without_sorting() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ferry.db");
    let writer = open_writer(&path, std::time::Duration::from_secs(1)).expect("open");
    migrate(&writer).expect("migrate");
    let state_sets = [
        vec![],
        vec![JobState::Failed],
        vec![JobState::Skipped],
        vec![
            JobState::Queued,
            JobState::Transferring,
            JobState::Completed,
        ],
    ];
    let mut plans = 0;
    for states in &state_sets {
        for mask in 0..64u32 {
            let filter = JobFilter {
                states: states.clone(),
                skip_reason: (mask & 1 != 0).then_some(SkipReason::TooLarge),
                zoom_account_id: (mask & 2 != 0).then(|| "acct".to_string()),
                host_email: (mask & 4 != 0).then(|| "host@example.edu".to_string()),
                created_from: (mask & 8 != 0).then_some(Timestamp(1_700_000_000_000)),
                created_before: (mask & 16 != 0).then_some(Timestamp(1_800_000_000_000)),
                source: (mask & 32 != 0).then_some(JobSource::Backfill),
            };
            for after in [None, Some("job_0190".to_string())] {
                let page = PageQuery { after, size: 100 };
                let columns: Vec<&str> = [
                    (filter.host_email.is_some(), "host_email_key"),
                    (filter.zoom_account_id.is_some(), "zoom_account_id"),
                    (filter.source.is_some(), "source"),
                    (filter.skip_reason.is_some(), "<expr>"),
                    (!filter.states.is_empty(), "state"),
                ]
                .into_iter()
                .filter_map(|(filtered, column)| filtered.then_some(column))
                .collect();
                for read in job_list::range_reads("inst_a", &filter, &page) {
                    let what = format!("{filter:?}");
                    let plan = query_plan(&writer, &read.sql, &read.values);
                    assert_index_only_plan(&plan, &columns, &what);
                    assert!(
                        plan.iter().all(|step| step.contains("job_id>?")),
                        "{what}: {plan:?} does not seek the cursor"
                    );
                    plans += 1;
                }
            }
        }
    }
    assert!(plans > 512, "{plans} plans checked");
    // The oldest queued job is the first entry of the partial index (its
    // `LIMIT 1` stops the index walk at once).
    let oldest = "SELECT updated_ms FROM jobs INDEXED BY jobs_queued_since
        WHERE state = 'queued' ORDER BY updated_ms LIMIT 1";
    assert_eq!(
        query_plan(&writer, oldest, &[]),
        vec!["SCAN jobs USING COVERING INDEX jobs_queued_since".to_string()]
    );
    // The retention sweep walks its partial indexes in finish order.
    for (sql, index) in [
        (
            "SELECT job_id FROM jobs INDEXED BY jobs_holding_secrets
             WHERE state IN ('completed', 'skipped', 'failed', 'cancelled')
               AND (download_url_sealed IS NOT NULL OR download_token_sealed IS NOT NULL
                    OR length(recording_sealed) > 0)
               AND (state = 'completed' OR finished_ms < 5)
             ORDER BY finished_ms LIMIT 100",
            "jobs_holding_secrets",
        ),
        (
            "SELECT job_id FROM jobs INDEXED BY jobs_expirable
             WHERE state IN ('skipped', 'failed', 'cancelled') AND finished_ms < 5
             ORDER BY finished_ms LIMIT 100",
            "jobs_expirable",
        ),
    ] {
        let plan = query_plan(&writer, sql, &[]);
        assert!(
            plan.iter()
                .all(|step| step.contains(index) && !step.contains("TEMP B-TREE")),
            "{plan:?}"
        );
    }
    for sql in [
        "SELECT job_id FROM jobs INDEXED BY jobs_by_state WHERE state = 'queued' ORDER BY job_id LIMIT 1",
        "SELECT job_id FROM jobs INDEXED BY jobs_by_state WHERE state = 'transferring' AND lease_expires_ms < 5 ORDER BY job_id LIMIT 1",
    ] {
        assert_index_only_plan(&query_plan(&writer, sql, &[]), &["state"], sql);
    }
}

fn burst_job(institution_id: &str, i: u64) -> NewJob {
    NewJob {
        institution_id: institution_id.to_string(),
        zoom_account_id: format!("acct-{}", i % 7),
        meeting_uuid: format!("burst-{i}"),
        meeting_id: i,
        topic: format!("Lecture {i} with a topic long enough to look real"),
        host_email: format!("host{}@example.edu", i % 101),
        meeting_start: Some(Timestamp(1_700_000_000_000)),
        state: JobState::Queued,
        skip_reason: None,
        message: String::new(),
        owner_user_id: None,
        recording_file: None,
        skipped_file_count: 0,
        skipped_segment_count: 0,
        sealed_download_url: Some(crate::secrets::Sealed(vec![7; 300])),
        sealed_download_token: Some(crate::secrets::Sealed(vec![8; 200])),
        sealed_recording: Some(crate::secrets::Sealed(vec![9; 1_500])),
        event_time: Timestamp(1_700_000_000_000),
        now: Timestamp(1_700_000_000_000 + i as i64),
        source: JobSource::Webhook,
    }
}

fn file_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Writes in groups, without pause, until `wal_budget` bytes would have
/// gone into a WAL that is never reset, watching the WAL's size; returns its
/// peak. The WAL's frames are counted by the database file's growth plus
/// what `wal_checkpoint` reports, which a reset does not lose.
async fn burst(
    store: &SqliteStore,
    path: &std::path::Path,
    institution_id: &str,
    jobs: u64,
) -> u64 {
    let wal = engine::wal_path(path);
    let watching = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = {
        let (wal, watching) = (wal.clone(), watching.clone());
        std::thread::spawn(move || {
            let mut peak = 0;
            while watching.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(file_len(&wal));
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            peak
        })
    };
    for chunk in (0..jobs).collect::<Vec<_>>().chunks(256) {
        let writes = chunk
            .iter()
            .map(|i| store.upsert_job(burst_job(institution_id, *i)));
        for result in futures::future::join_all(writes).await {
            result.expect("burst write");
        }
    }
    watching.store(false, std::sync::atomic::Ordering::Relaxed);
    watcher.join().expect("watcher")
}

async fn store_with_wal_limit(
    path: &std::path::Path,
    wal_limit_bytes: u64,
) -> (SqliteStore, String) {
    let config = SqliteConfig {
        wal_limit_bytes,
        ..SqliteConfig::new(path)
    };
    let store = SqliteStore::open(&config).expect("open");
    let institution =
        crate::store::TenantStore::create_institution(&store, "Burst U", Timestamp(0))
            .await
            .expect("institution");
    (store, institution.institution_id)
}

const BURST_JOBS: u64 = 40_000;

/// A sustained burst keeps the WAL near its limit (the slack is what is
/// written between two checkpoint ticks), and a clean close empties it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sustained_burst_keeps_the_wal_bounded_and_a_clean_close_empties_it() {
    const LIMIT: u64 = 4 * 1024 * 1024;
    const SLACK: u64 = 12 * 1024 * 1024;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ferry.db");
    let (store, institution_id) = store_with_wal_limit(&path, LIMIT).await;
    let peak = burst(&store, &path, &institution_id, BURST_JOBS).await;
    assert!(peak > 0, "the burst went through the WAL");
    assert!(
        peak <= LIMIT + SLACK,
        "the WAL peaked at {peak} bytes, past {LIMIT} + {SLACK}"
    );
    drop(store);
    let wal = engine::wal_path(&path);
    assert_eq!(
        file_len(&wal),
        0,
        "a clean close leaves the WAL empty or gone"
    );
    let reopened = SqliteStore::open(&SqliteConfig::new(&path)).expect("reopen");
    assert_eq!(
        reopened
            .job_counts()
            .await
            .expect("counts")
            .count(JobState::Queued),
        BURST_JOBS,
        "every acknowledged write is in the database file"
    );
}

/// The same burst with no limit: the WAL grows far past the bound above,
/// which is what makes that bound a test of the reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_limit_the_same_burst_grows_the_wal_past_the_bound() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ferry.db");
    let (store, institution_id) = store_with_wal_limit(&path, u64::MAX).await;
    let peak = burst(&store, &path, &institution_id, BURST_JOBS).await;
    assert!(
        peak > 16 * 1024 * 1024,
        "the WAL peaked at only {peak} bytes"
    );
}
