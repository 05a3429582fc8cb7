//! Tests of what keeps the SQLite backend fast and small after a year of
//! recordings, on real database files: the trigger-kept job counts (right
//! after a reopen, seeded by the migration from the jobs already stored).

use rusqlite::Connection;

use super::*;
use crate::store::JobStore;

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

fn sorted(mut counts: JobCounts) -> JobCounts {
    counts.by_state.sort_by_key(|(state, _)| state.as_str());
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
        for (i, state) in [
            "queued",
            "queued",
            "completed",
            "skipped",
            "completed",
            "failed",
        ]
        .iter()
        .enumerate()
        {
            conn.execute(
                "INSERT INTO jobs (job_id, institution_id, zoom_account_id, meeting_uuid, meeting_id, topic,
                    host_email, host_email_key, state, message, skipped_file_count, skipped_segment_count,
                    created_ms, updated_ms)
                 VALUES (?1, 'inst_old', 'acct', ?1, 1, 't', 'h@x.edu', 'h@x.edu', ?2, '', 0, 0, ?3, ?3)",
                rusqlite::params![format!("job_{i:032}"), state, 1_000 + i as i64],
            )
            .expect("old job");
        }
    }
    let store = SqliteStore::open(&SqliteConfig::new(&path)).expect("open and migrate");
    let conn = Connection::open(&path).expect("open raw");
    let seeded = sorted(store.job_counts().await.expect("counts"));
    assert_eq!(seeded.by_state, recount(&conn));
    assert_eq!(seeded.oldest_queued, Some(Timestamp(1_000)));
    store
        .cancel_job("inst_old", &format!("job_{:032}", 0), Timestamp(9_000))
        .await
        .expect("cancel");
    drop(store);

    let reopened = SqliteStore::open(&SqliteConfig::new(&path)).expect("reopen");
    let counts = sorted(reopened.job_counts().await.expect("counts"));
    assert_eq!(counts.by_state, recount(&conn));
    assert_eq!(counts.oldest_queued, Some(Timestamp(1_001)));
}
