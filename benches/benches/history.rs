//! Ferry after a year of recordings: the store filled with N jobs, then what
//! must not grow with N. The daemon runs in this process, first on a real
//! SQLite file, then on PostgreSQL (a throwaway cluster on loopback, fsync
//! and synchronous commit on); the load generator shares its cores.
//!
//! Run: `cargo bench -p ferry-benches --bench history` (N = 1,000,000, both
//! stores), `... -- --store sqlite` (or `postgres`) for one, and
//! `... -- --jobs 10000000`. Optional: FERRY_BENCH_SECS (default 5: the
//! latency phases), FERRY_BENCH_ACK_RATE (default 1000: their webhooks per
//! second), FERRY_BENCH_CAPACITY_SECS (default 10: the full-rate runs that
//! measure how many webhooks a second the store acknowledges at all),
//! FERRY_BENCH_BURST_SECS (default 60: the full-rate burst), FERRY_BENCH_DIR (where the SQLite database goes;
//! default the system temp dir; deleted at the end).
//!
//! 1. An empty store (one institution, its account and host): scrape,
//!    `ListJobs`, webhook acknowledgement at the latency phases' rate
//!    (1,000/s unless FERRY_BENCH_ACK_RATE says otherwise) and the webhooks
//!    a second it acknowledges at full rate, for reference (the jobs of that
//!    run, a few thousand, stay beside the N of step 2). When that capacity
//!    is below the latency phases' rate, the table says so: the latencies
//!    then measure a queue that grows for the whole phase, not the store.
//! 2. The daemon stopped, N jobs written through the store's own write path
//!    (SQLite: `upsert_job`, group-committed; PostgreSQL: `import_new_jobs`,
//!    the same rows by binary COPY, 10,000 per transaction, two at a time,
//!    the kept counts then checked against a recount): a year of meetings,
//!    mostly completed,
//!    some skipped, failed, cancelled or queued, over 20 accounts and 5,000
//!    hosts, 95 % from webhooks, 4 % found by the reconciler and 1 % by a
//!    backfill, download details kept only where retention would keep them.
//!    Bytes per job at rest: the database's growth over N (the SQLite file;
//!    on PostgreSQL `pg_database_size`, measured after a `VACUUM ANALYZE`
//!    as autovacuum would leave it).
//! 3. The daemon restarted on that file: `GET /metrics` (median of 5), each
//!    `ListJobs` filter's first and next page (median of 5), a sequential
//!    gRPC client (pages of 100, one call after the other: p50 and p99), the
//!    acknowledgement p50/p99 at that rate and the full-rate capacity against
//!    step 1's (on PostgreSQL with the blocks of `jobs` and of its busiest
//!    indexes read into shared buffers, and found there, per webhook of that
//!    phase), then a closed-loop
//!    burst at full rate while SQLite's WAL file is sampled every 5 ms
//!    (PostgreSQL bounds its own WAL by `max_wal_size`: no WAL rows there).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ferry_benches::webhook_load::{WebhookPoster, lecture, lecture_bodies, open_loop, sign_all};
use ferry_benches::{env_number, print_table};
use ferry_control::api;
use ferry_control::model::{JobSource, JobState, NewJob, RecordingFile, SkipReason, Timestamp};
use ferry_control::secrets::Sealed;
use ferry_control::secrets::Secret;
use ferry_control::store::{JobStore, PostgresConfig, PostgresStore, PostgresUrl};
use ferry_daemon::cli::client::Clients;
use ferry_daemon::config::{Config, StoreBackend};
use ferry_test_support::control_plane::{
    create_configuration, create_institution, install, sync, user,
};
use ferry_test_support::daemon::{OPERATOR_TOKEN, TestDaemon, connect, test_config};
use ferry_test_support::replicas::{ENCRYPTION_KEY, SharedStore, StoreKind, open_store};
use ferry_test_support::scene::ACCOUNT;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;
const HOSTS: u64 = 5_000;
const OTHER_ACCOUNTS: u64 = 19;

fn main() -> anyhow::Result<()> {
    ferry_benches::block_on(run())
}

/// `--jobs N` (or `--jobs=N`), else FERRY_BENCH_JOBS, else 1,000,000.
fn jobs_arg() -> anyhow::Result<u64> {
    match ferry_benches::flag("jobs") {
        Some(value) => value
            .replace('_', "")
            .parse()
            .map_err(|e| anyhow::anyhow!("--jobs {value}: {e}")),
        None => Ok(env_number("FERRY_BENCH_JOBS", 1_000_000)),
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn percentile(sorted: &[Duration], percent: usize) -> Duration {
    let rank = (sorted.len() * percent).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// The institution the bench plays: its admin key and the host as a user.
async fn set_up(daemon: &TestDaemon) -> anyhow::Result<(String, String)> {
    let mut operator = connect(&daemon.grpc_url(), Some(OPERATOR_TOKEN)).await?;
    let institution = create_institution(&mut operator, "History U").await?;
    let mut admin = connect(&daemon.grpc_url(), Some(&institution.admin_key)).await?;
    let configuration = create_configuration(&mut admin, "Main").await;
    install(
        &mut admin,
        &configuration.configuration_token,
        ACCOUNT,
        api::ZoomPlan::Education,
    )
    .await?;
    let user = user("e1", "elisa@example.edu", "", api::UserRole::Instructor);
    sync(&mut admin, api::SyncMode::Upsert, vec![user]).await?;
    Ok((institution.institution_id, institution.admin_key))
}

/// One job of the year: the mix the module docs describe.
fn year_job(institution_id: &str, i: u64, n: u64, now: Timestamp) -> NewJob {
    let year_start = now.0 - 365 * DAY_MS;
    let created = Timestamp(year_start + (i as i128 * 365 * DAY_MS as i128 / n as i128) as i64);
    let spread = i.wrapping_mul(2_654_435_761);
    let (state, skip_reason) = match spread % 1000 {
        0..850 => (JobState::Completed, None),
        850..950 => (
            JobState::Skipped,
            Some(SkipReason::ALL[(spread / 1000) as usize % SkipReason::ALL.len()]),
        ),
        950..980 => (JobState::Failed, None),
        980..999 => (JobState::Cancelled, None),
        _ => (JobState::Queued, None),
    };
    // What retention keeps: details only for jobs that may still be retried.
    let keeps_details = state != JobState::Completed && created.0 > now.0 - 30 * DAY_MS;
    let details = |len: usize| keeps_details.then(|| Sealed(vec![0x5a; len]));
    let account = if spread.is_multiple_of(2) {
        ACCOUNT.to_string()
    } else {
        format!("acct-{}", spread / 7 % OTHER_ACCOUNTS)
    };
    NewJob {
        institution_id: institution_id.to_string(),
        zoom_account_id: account,
        meeting_uuid: format!("{:016x}{:08x}==", spread, i),
        meeting_id: 80_000_000_000 + i,
        topic: format!("Lecture {} of Course {}", i % 40, spread % 300),
        host_email: format!("host{}@example.edu", spread / 3 % HOSTS),
        meeting_start: Some(created.saturating_add_millis(-3_600_000)),
        state,
        skip_reason,
        message: match state {
            JobState::Failed => "the download kept failing: connection reset".into(),
            JobState::Skipped => "skipped".into(),
            _ => String::new(),
        },
        owner_user_id: (state != JobState::Skipped).then(|| format!("usr_{:032x}", spread % 3000)),
        recording_file: Some(RecordingFile {
            file_id: format!("{:032x}", spread),
            recording_type: "shared_screen_with_speaker_view".into(),
            file_type: "MP4".into(),
            file_extension: "MP4".into(),
            file_size: 200_000_000 + spread % 500_000_000,
            recording_start: created.saturating_add_millis(-3_600_000),
            recording_end: created.saturating_add_millis(-60_000),
        }),
        skipped_file_count: 2,
        skipped_segment_count: 0,
        sealed_download_url: details(180),
        sealed_download_token: details(120),
        sealed_recording: details(1_400),
        event_time: created,
        now: created,
        source: match spread / 11 % 100 {
            0..4 => JobSource::Reconcile,
            4 => JobSource::Backfill,
            _ => JobSource::Webhook,
        },
    }
}

/// How many jobs one `import_new_jobs` transaction writes on PostgreSQL.
const IMPORT_BATCH: u64 = 10_000;

/// Writes N jobs through the store's own write path: on SQLite
/// `upsert_job`, 4,096 in flight (group commit); on PostgreSQL
/// `import_new_jobs`, a binary COPY of the rows `upsert_job` writes,
/// `IMPORT_BATCH` jobs per transaction, two transactions at a time (one `upsert_job` transaction per job
/// filled about 2,400 jobs/s: over an hour for 10 million). On PostgreSQL
/// the trigger-kept counts are then checked against a recount of the table.
async fn fill(
    env: &[(&str, String)],
    data_dir: &Path,
    institution_id: &str,
    n: u64,
) -> anyhow::Result<Duration> {
    let now = Timestamp::now();
    let started = Instant::now();
    let mut next_report = n / 10;
    let mut report = |filled: u64| {
        if filled >= next_report {
            eprintln!(
                "filled {filled} / {n} jobs in {:.0} s",
                started.elapsed().as_secs_f64()
            );
            next_report += n / 10;
        }
    };
    if let Some(url) = postgres_url(env) {
        let store = PostgresStore::open(&PostgresConfig::new(PostgresUrl::new(url))).await?;
        // Two transactions at a time: one server backend per core.
        let import = |batch_start: u64| {
            let batch_end = (batch_start + IMPORT_BATCH).min(n);
            let jobs: Vec<NewJob> = (batch_start..batch_end)
                .map(|i| year_job(institution_id, i, n, now))
                .collect();
            let store = &store;
            async move {
                let written = store.import_new_jobs(&jobs).await?;
                anyhow::ensure!(written == batch_end - batch_start, "a fill job was not new");
                Ok(batch_end)
            }
        };
        for pair_start in (0..n).step_by(2 * IMPORT_BATCH as usize) {
            let (first, second) = futures::join!(
                import(pair_start),
                import((pair_start + IMPORT_BATCH).min(n))
            );
            report(first?.max(second?));
        }
        let elapsed = started.elapsed();
        let mut counted = store.job_counts().await?.by_state;
        counted.sort_by_key(|(state, _)| state.as_str());
        let recounted = recount(url).await?;
        anyhow::ensure!(
            counted == recounted,
            "the kept counts {counted:?} are not a recount {recounted:?}"
        );
        eprintln!("the kept counts equal a recount: {counted:?}");
        return Ok(elapsed);
    }
    let store = open_store(env, data_dir).await?;
    for chunk_start in (0..n).step_by(4096) {
        let chunk_end = (chunk_start + 4096).min(n);
        let writes =
            (chunk_start..chunk_end).map(|i| store.upsert_job(year_job(institution_id, i, n, now)));
        for result in futures::future::join_all(writes).await {
            anyhow::ensure!(result?.1, "a fill job was not new");
        }
        report(chunk_end);
    }
    let elapsed = started.elapsed();
    // SQLite's close checkpoints: off the runtime's threads.
    tokio::task::spawn_blocking(move || drop(store)).await?;
    Ok(elapsed)
}

fn postgres_url<'a>(env: &'a [(&str, String)]) -> Option<&'a str> {
    env.iter()
        .find(|(key, _)| *key == "FERRY_STORE_POSTGRES_URL")
        .map(|(_, url)| url.as_str())
}

/// `work` on a connection of its own to the database at `url`, closed
/// (and its connection task ended) once `work` is done.
async fn with_postgres<T>(
    url: &str,
    work: impl AsyncFnOnce(&tokio_postgres::Client) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    let connection = tokio::spawn(connection);
    let result = work(&client).await;
    drop(client);
    let _ = connection.await;
    result
}

/// The jobs of each state as a `COUNT(*)` of the table sees them.
async fn recount(url: &str) -> anyhow::Result<Vec<(JobState, u64)>> {
    let rows = with_postgres(url, async |client| {
        Ok(client
            .query(
                "SELECT state, COUNT(*) FROM jobs GROUP BY state ORDER BY state",
                &[],
            )
            .await?)
    })
    .await?;
    rows.iter()
        .map(|row| {
            let state: String = row.get(0);
            let jobs: i64 = row.get(1);
            let state =
                JobState::parse(&state).ok_or_else(|| anyhow::anyhow!("unknown state {state}"))?;
            Ok((state, u64::try_from(jobs)?))
        })
        .collect()
}

/// Where the bench's daemons keep their jobs.
struct BenchStore {
    kind: StoreKind,
    /// `FERRY_STORE_*` of the PostgreSQL database; empty for SQLite.
    env: Vec<(&'static str, String)>,
    data_dir: PathBuf,
}

impl BenchStore {
    fn config(&self) -> Config {
        let mut config = test_config(&self.data_dir);
        if let Some(url) = postgres_url(&self.env) {
            config.store.backend = StoreBackend::Postgres;
            config.store.postgres_url = Some(Secret::new(url.to_string()));
            config.encryption_key = Some(Secret::new(ENCRYPTION_KEY));
        }
        config
    }

    fn db_file(&self) -> PathBuf {
        self.data_dir.join("ferry.db")
    }

    /// The bytes the store's jobs take at rest: the SQLite file, or the
    /// PostgreSQL database once vacuumed (dead rows and stale statistics as
    /// a settled autovacuum would leave them).
    async fn bytes_at_rest(&self) -> anyhow::Result<u64> {
        match self.kind {
            StoreKind::Sqlite => Ok(file_len(&self.db_file())),
            StoreKind::Postgres => {
                let url =
                    postgres_url(&self.env).ok_or_else(|| anyhow::anyhow!("no PostgreSQL url"))?;
                let size: i64 = with_postgres(url, async |client| {
                    client.batch_execute("VACUUM ANALYZE").await?;
                    Ok(client
                        .query_one("SELECT pg_database_size(current_database())", &[])
                        .await?
                        .get(0))
                })
                .await?;
                Ok(u64::try_from(size)?)
            }
        }
    }
}

/// Blocks of each `jobs` relation (the table and each index) that
/// PostgreSQL read into shared buffers, and found there, so far.
#[derive(Clone, Debug, Default)]
struct BlockCounts(Vec<(String, i64, i64)>);

impl BlockCounts {
    /// Per relation: (name, blocks read, blocks hit), from the statistics
    /// views; empty on SQLite.
    async fn take(store: &BenchStore) -> anyhow::Result<BlockCounts> {
        let Some(url) = postgres_url(&store.env) else {
            return Ok(BlockCounts::default());
        };
        let rows = with_postgres(url, async |client| {
            Ok(client
                .query(
                    "SELECT 'table' AS name, COALESCE(heap_blks_read, 0), COALESCE(heap_blks_hit, 0)
                       FROM pg_statio_user_tables WHERE relname = 'jobs'
                     UNION ALL
                     SELECT indexrelname::text, COALESCE(idx_blks_read, 0), COALESCE(idx_blks_hit, 0)
                       FROM pg_statio_user_indexes WHERE relname = 'jobs'",
                    &[],
                )
                .await?)
        })
        .await?;
        Ok(BlockCounts(
            rows.iter()
                .map(|row| (row.get(0), row.get(1), row.get(2)))
                .collect(),
        ))
    }

    /// What `self`, taken later, adds to `before`, per webhook, the relations
    /// that read the most first: one row each, "name: read / hit".
    fn per_webhook_since(&self, before: &BlockCounts, webhooks: u64) -> Vec<(String, f64, f64)> {
        let mut rows: Vec<(String, f64, f64)> = self
            .0
            .iter()
            .map(|(name, read, hit)| {
                let (read_before, hit_before) = before
                    .0
                    .iter()
                    .find(|(other, _, _)| other == name)
                    .map_or((0, 0), |(_, read, hit)| (*read, *hit));
                (
                    name.clone(),
                    (read - read_before) as f64 / webhooks.max(1) as f64,
                    (hit - hit_before) as f64 / webhooks.max(1) as f64,
                )
            })
            .collect();
        rows.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.2.total_cmp(&a.2)));
        rows
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn wal_of(db: &Path) -> PathBuf {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

/// One `GET /metrics`, on a fresh connection as Prometheus makes it.
async fn scrape(http_addr: SocketAddr) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(http_addr).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: ferry\r\nConnection: close\r\n\r\n")
        .await?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await?;
    anyhow::ensure!(text.starts_with("HTTP/1.1 200"), "scrape answered {text}");
    Ok(started.elapsed())
}

async fn scrape_median(http_addr: SocketAddr) -> anyhow::Result<Duration> {
    scrape(http_addr).await?;
    let mut samples = Vec::new();
    for _ in 0..5 {
        samples.push(scrape(http_addr).await?);
    }
    Ok(median(samples))
}

/// The `ListJobs` filters the CLI offers, alone and combined.
fn filters(now: Timestamp) -> Vec<(&'static str, api::ListJobsRequest)> {
    let week = Some(api::TimeRange {
        start_time: Some(prost_timestamp(now.saturating_add_millis(-7 * DAY_MS))),
        end_time: Some(prost_timestamp(now)),
    });
    let base = api::ListJobsRequest::default;
    vec![
        ("no filter", base()),
        (
            "state queued",
            api::ListJobsRequest {
                states: vec![api::JobState::Queued as i32],
                ..base()
            },
        ),
        (
            "state failed",
            api::ListJobsRequest {
                states: vec![api::JobState::Failed as i32],
                ..base()
            },
        ),
        (
            "states completed + skipped",
            api::ListJobsRequest {
                states: vec![
                    api::JobState::Completed as i32,
                    api::JobState::Skipped as i32,
                ],
                ..base()
            },
        ),
        (
            "skip reason too_large",
            api::ListJobsRequest {
                skip_reason: api::SkipReason::TooLarge as i32,
                ..base()
            },
        ),
        (
            "account",
            api::ListJobsRequest {
                zoom_account_id: "acct-3".into(),
                ..base()
            },
        ),
        (
            "host email",
            api::ListJobsRequest {
                host_email: "Host42@Example.edu".into(),
                ..base()
            },
        ),
        (
            "created in the last 7 days",
            api::ListJobsRequest {
                create_time: week,
                ..base()
            },
        ),
        (
            "source reconcile",
            api::ListJobsRequest {
                source: api::JobSource::Reconcile as i32,
                ..base()
            },
        ),
        (
            "source reconcile + state failed",
            api::ListJobsRequest {
                source: api::JobSource::Reconcile as i32,
                states: vec![api::JobState::Failed as i32],
                ..base()
            },
        ),
        (
            "account + state failed",
            api::ListJobsRequest {
                zoom_account_id: ACCOUNT.into(),
                states: vec![api::JobState::Failed as i32],
                ..base()
            },
        ),
        (
            "host + state completed",
            api::ListJobsRequest {
                host_email: "host42@example.edu".into(),
                states: vec![api::JobState::Completed as i32],
                ..base()
            },
        ),
        (
            "last 7 days + state skipped",
            api::ListJobsRequest {
                create_time: week,
                states: vec![api::JobState::Skipped as i32],
                ..base()
            },
        ),
    ]
}

fn prost_timestamp(t: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.0.div_euclid(1000),
        nanos: (t.0.rem_euclid(1000) * 1_000_000) as i32,
    }
}

async fn list(
    admin: &mut Clients,
    request: &api::ListJobsRequest,
    page_token: &str,
) -> anyhow::Result<(Duration, usize, String)> {
    let mut request = request.clone();
    request.page = Some(api::PageRequest {
        page_size: 100,
        page_token: page_token.to_string(),
    });
    let started = Instant::now();
    let response = admin.jobs.list_jobs(request).await?.into_inner();
    let elapsed = started.elapsed();
    let next = response.page.map(|p| p.next_page_token).unwrap_or_default();
    Ok((elapsed, response.jobs.len(), next))
}

/// Each filter's first page and next page, median of 5 each.
async fn list_figures(
    admin: &mut Clients,
    now: Timestamp,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut rows = Vec::new();
    for (name, request) in filters(now) {
        let (_, found, next) = list(admin, &request, "").await?;
        let mut first = Vec::new();
        let mut second = Vec::new();
        for _ in 0..5 {
            first.push(list(admin, &request, "").await?.0);
            if !next.is_empty() {
                second.push(list(admin, &request, &next).await?.0);
            }
        }
        let next_page = if second.is_empty() {
            "no next page".to_string()
        } else {
            format!("{:.2} ms", ms(median(second)))
        };
        rows.push((
            format!("ListJobs {name} ({found} on page 1): first / next page"),
            format!("{:.2} ms / {next_page}", ms(median(first))),
        ));
    }
    Ok(rows)
}

/// One call after another, pages of 100 followed by their next page.
async fn sequential_client(admin: &mut Clients, calls: usize) -> anyhow::Result<Vec<Duration>> {
    let request = api::ListJobsRequest::default();
    let mut token = String::new();
    let mut samples = Vec::with_capacity(calls);
    for _ in 0..calls {
        let (elapsed, _, next) = list(admin, &request, &token).await?;
        samples.push(elapsed);
        token = next;
    }
    samples.sort_unstable();
    Ok(samples)
}

/// Acknowledgement latency at `rate` for `secs`: p50 and p99.
async fn ack_latency(
    http_addr: SocketAddr,
    rate: u64,
    secs: u64,
) -> anyhow::Result<(Duration, Duration)> {
    let poster = WebhookPoster::new(http_addr)?;
    let start = Timestamp::from_unix_seconds(Timestamp::now().0 / 1000 + 1);
    let webhooks = sign_all(lecture_bodies(rate * secs, start))?;
    let result = open_loop(&poster, webhooks, rate).await?;
    Ok((result.percentile(50), result.percentile(99)))
}

/// 64 senders posting fresh webhooks as fast as they are answered for
/// `secs`, while a thread samples `wal` (SQLite's; a path that never exists
/// on PostgreSQL); returns (acknowledged, peak).
async fn burst(http_addr: SocketAddr, wal: PathBuf, secs: u64) -> anyhow::Result<(u64, u64)> {
    let poster = WebhookPoster::new(http_addr)?;
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while sampling.load(Ordering::Relaxed) {
                peak = peak.max(file_len(&wal));
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        })
    };
    let acknowledged = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Timestamp::from_unix_seconds(Timestamp::now().0 / 1000 + 1);
    let mut senders = Vec::new();
    for _ in 0..64 {
        let (poster, acknowledged) = (poster.clone(), acknowledged.clone());
        senders.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let body = bytes::Bytes::from(lecture(start).recording_completed_body());
                let webhook = sign_all(vec![body])?.remove(0);
                poster.post(&webhook).await?;
                acknowledged.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for sender in senders {
        sender.await??;
    }
    sampling.store(false, Ordering::Relaxed);
    let peak = sampler
        .join()
        .map_err(|_| anyhow::anyhow!("WAL sampler panicked"))?;
    Ok((acknowledged.load(Ordering::Relaxed), peak))
}

async fn run() -> anyhow::Result<()> {
    let n = jobs_arg()?;
    anyhow::ensure!(n >= 1, "--jobs must be at least 1");
    for kind in ferry_benches::stores_flag()? {
        let shared = SharedStore::start(kind)?;
        let parent =
            std::env::var_os("FERRY_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
        let dir = tempfile::tempdir_in(parent)?;
        let store = BenchStore {
            kind,
            env: shared.daemon_env().await?,
            data_dir: dir.path().to_path_buf(),
        };
        measure(&store, shared.describe(), n).await?;
        drop(dir);
    }
    Ok(())
}

/// Steps 1-3 of the module docs on `store`; prints their table.
async fn measure(store: &BenchStore, describe: &str, n: u64) -> anyhow::Result<()> {
    let secs = env_number("FERRY_BENCH_SECS", 5);
    let burst_secs = env_number("FERRY_BENCH_BURST_SECS", 60);
    let rate = env_number("FERRY_BENCH_ACK_RATE", 1_000);
    let capacity_secs = env_number("FERRY_BENCH_CAPACITY_SECS", 10);
    let db = store.db_file();
    let mut rows: Vec<(String, String, String)> = Vec::new();
    let mut row = |figure: String, measured: String, target: &str| {
        rows.push((figure, measured, target.to_string()));
    };

    // 1. The empty store.
    let daemon = TestDaemon::start_with(store.config()).await?;
    let (institution_id, admin_key) = set_up(&daemon).await?;
    let mut admin = connect(&daemon.grpc_url(), Some(&admin_key)).await?;
    let empty_scrape = scrape_median(daemon.app.http_addr).await?;
    let empty_list = list(&mut admin, &api::ListJobsRequest::default(), "")
        .await?
        .0;
    let (empty_p50, empty_p99) = ack_latency(daemon.app.http_addr, rate, secs).await?;
    let (empty_capacity, _) = burst(
        daemon.app.http_addr,
        wal_of(&store.db_file()),
        capacity_secs,
    )
    .await?;
    drop(admin);
    let _ = daemon.stop().await;

    // 2. A year of jobs through the store's write path.
    let size_before = store.bytes_at_rest().await?;
    eprintln!("filling {n} jobs into {describe}");
    let fill_time = fill(&store.env, &store.data_dir, &institution_id, n).await?;
    let size_after = store.bytes_at_rest().await?;
    let bytes_per_job = size_after.saturating_sub(size_before) as f64 / n as f64;

    // 3. The daemon on the full store.
    let daemon = TestDaemon::start_with(store.config()).await?;
    let http_addr = daemon.app.http_addr;
    let mut admin = connect(&daemon.grpc_url(), Some(&admin_key)).await?;
    let full_scrape = scrape_median(http_addr).await?;
    let list_rows = list_figures(&mut admin, Timestamp::now()).await?;
    let sequential = sequential_client(&mut admin, 200).await?;
    let blocks_before = BlockCounts::take(store).await?;
    let (full_p50, full_p99) = ack_latency(http_addr, rate, secs).await?;
    if store.kind == StoreKind::Postgres {
        // A backend's statistics reach the views within PostgreSQL's idle
        // flush interval (10 s) once its connection is idle.
        tokio::time::sleep(Duration::from_secs(11)).await;
    }
    let blocks_per_webhook = BlockCounts::take(store)
        .await?
        .per_webhook_since(&blocks_before, rate * secs);
    let (full_capacity, _) = burst(http_addr, wal_of(&db), capacity_secs).await?;
    let (burst_acknowledged, wal_peak) = burst(http_addr, wal_of(&db), burst_secs).await?;
    drop(admin);
    let _ = daemon.stop().await;
    let wal_after_shutdown = file_len(&wal_of(&db));
    let database_bytes = store.bytes_at_rest().await?;

    let mib = |bytes: u64| format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0));
    row(
        match store.kind {
            StoreKind::Sqlite => "jobs written through upsert_job".to_string(),
            StoreKind::Postgres => format!(
                "jobs written through import_new_jobs ({IMPORT_BATCH} per transaction, 2 at a time)"
            ),
        },
        format!("{n} in {:.0} s", fill_time.as_secs_f64()),
        "reference",
    );
    row(
        "GET /metrics, empty store (median of 5)".into(),
        format!("{:.2} ms", ms(empty_scrape)),
        "reference",
    );
    row(
        format!("GET /metrics at {n} jobs (median of 5)"),
        format!("{:.2} ms", ms(full_scrape)),
        "<= 5 ms",
    );
    row(
        "ListJobs first page, empty store".into(),
        format!("{:.2} ms", ms(empty_list)),
        "reference",
    );
    for (figure, measured) in list_rows {
        row(figure, measured, "<= 5 ms each");
    }
    row(
        "sequential ListJobs client, pages of 100: p50 / p99 (200 calls)".into(),
        format!(
            "{:.2} ms / {:.2} ms",
            ms(percentile(&sequential, 50)),
            ms(percentile(&sequential, 99))
        ),
        "about 1 ms (was 44 ms: Nagle)",
    );
    row(
        format!("webhook ack at {rate}/s, empty store: p50 / p99"),
        format!("{:.2} ms / {:.2} ms", ms(empty_p50), ms(empty_p99)),
        "reference",
    );
    row(
        format!("webhook ack at {rate}/s, {n} jobs: p50 / p99"),
        format!("{:.2} ms / {:.2} ms", ms(full_p50), ms(full_p99)),
        "p99 <= 1.5x empty",
    );
    row(
        "p99 ratio, full / empty".into(),
        format!("{:.2}x", full_p99.as_secs_f64() / empty_p99.as_secs_f64()),
        "<= 1.5x",
    );
    let per_second = |acknowledged: u64| acknowledged as f64 / capacity_secs as f64;
    row(
        format!("webhooks acknowledged at full rate ({capacity_secs} s): empty / {n} jobs"),
        format!(
            "{:.0}/s / {:.0}/s",
            per_second(empty_capacity),
            per_second(full_capacity)
        ),
        "reference",
    );
    row(
        "full-rate ratio, full / empty".into(),
        format!(
            "{:.2}x",
            per_second(full_capacity) / per_second(empty_capacity)
        ),
        "reference",
    );
    if per_second(empty_capacity) < rate as f64 {
        // Above capacity the latencies measure a growing queue, not the store.
        row(
            format!("{rate}/s is above what this store acknowledges on this machine"),
            "latencies above are queueing".into(),
            "reference",
        );
    }
    // Where PostgreSQL's acknowledgements waited: the blocks of `jobs` and
    // of each of its indexes that were not in shared buffers (read from the
    // operating system's cache or the disk) per webhook of the latency phase.
    for (relation, read, hit) in blocks_per_webhook.iter().take(8) {
        row(
            format!("jobs {relation}: blocks read / found in shared buffers, per webhook"),
            format!("{read:.2} / {hit:.2}"),
            "reference",
        );
    }
    row(
        "bytes per job at rest (database growth / N)".into(),
        format!("{bytes_per_job:.0} B"),
        "reference",
    );
    row(
        "database size after the run".into(),
        mib(database_bytes),
        "reference",
    );
    let burst_rate = format!(
        "{burst_acknowledged} webhooks, {:.0}/s",
        burst_acknowledged as f64 / burst_secs as f64
    );
    if store.kind == StoreKind::Sqlite {
        row(
            format!("WAL peak during a {burst_secs} s burst at full rate"),
            format!("{} ({burst_rate})", mib(wal_peak)),
            "<= 256 MiB",
        );
        row(
            "WAL after a clean shutdown".into(),
            format!("{wal_after_shutdown} B"),
            "0",
        );
    } else {
        row(
            format!("{burst_secs} s burst at full rate, {n} jobs"),
            burst_rate,
            "reference",
        );
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    print_table(
        &format!(
            "history bench, {describe}: {n} jobs, {secs} s latency phases at {rate}/s, \
             {burst_secs} s burst, {cores} cores"
        ),
        &rows,
    );
    Ok(())
}
