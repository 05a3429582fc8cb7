//! Webhook intake capacity: signed `recording.completed` webhooks posted to
//! the real `ferry` daemon as a separate process on loopback, first with
//! SQLite on disk, then with PostgreSQL (a throwaway cluster on loopback,
//! fsync and synchronous commit on, as a production server commits). Every
//! meeting is distinct, so every 200 is one job committed.
//!
//! Run: `cargo bench -p ferry-benches --bench webhooks` (both stores), or
//! `... --bench webhooks -- --store postgres` (or `sqlite`) for one.
//! Optional: FERRY_BENCH_SECS (default 5, per phase), FERRY_BENCH_CONCURRENCY
//! (default 64, phase A), FERRY_BENCH_RATE (default 1000 /s, phase B),
//! FERRY_BENCH_MAX_RATE (default 10000 /s: phase A pre-builds
//! `max rate × secs` webhooks and stops early if it runs out).
//!
//! Phase A is a closed loop (each sender posts its next webhook when the
//! last one is answered): it finds the acknowledged throughput. Phase B is an
//! open loop at a fixed rate: each webhook has a scheduled send time, is sent
//! on its own task, and its latency runs from the scheduled time to the
//! answer, so a slow answer cannot hide the ones queued behind it
//! (coordinated omission). The load generator shares the machine's cores with
//! the daemon, so the daemon's own CPU time per webhook is reported as well.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ferry_benches::env_number;
use ferry_benches::usage::process_tree_cpu_seconds;
use ferry_benches::webhook_load::{
    SignedWebhook, WebhookPoster, lecture, lecture_bodies, open_loop, sign_all,
};
use ferry_benches::{per_second, print_table, process_cpu_seconds};
use ferry_control::api;
use ferry_test_support::daemon::DaemonProcess;
use ferry_test_support::replicas::{SharedStore, borrowed};
use ferry_test_support::scene::Scene;

/// Signatures are made once per phase and must stay inside the daemon's
/// 300 s replay window until the phase ends.
const MAX_PHASE_SECS: u64 = 240;

fn main() -> anyhow::Result<()> {
    ferry_benches::block_on(run())
}

struct ThroughputResult {
    acknowledged: u64,
    elapsed: Duration,
    pool_exhausted: bool,
}

/// Phase A: `concurrency` senders, each posting the next unsent webhook as
/// soon as its last one is answered, until the deadline or the pool ends.
async fn closed_loop(
    poster: &WebhookPoster,
    webhooks: Vec<SignedWebhook>,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<ThroughputResult> {
    let webhooks = Arc::new(webhooks);
    let next = Arc::new(AtomicUsize::new(0));
    let acknowledged = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut senders = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (poster, webhooks, next, acknowledged) = (
            poster.clone(),
            webhooks.clone(),
            next.clone(),
            acknowledged.clone(),
        );
        senders.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let Some(webhook) = webhooks.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    break;
                };
                let result = poster.post(webhook).await;
                if result.is_ok() {
                    acknowledged.fetch_add(1, Ordering::Relaxed);
                }
                result?;
            }
            anyhow::Ok(())
        }));
    }
    for sender in senders {
        sender.await??;
    }
    Ok(ThroughputResult {
        acknowledged: acknowledged.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
        pool_exhausted: next.load(Ordering::Relaxed) >= webhooks.len(),
    })
}

/// Every job of the caller's institution, through paged ListJobs.
async fn count_jobs(
    jobs: &mut api::job_service_client::JobServiceClient<ferry_daemon::cli::client::AuthChannel>,
) -> anyhow::Result<u64> {
    let mut count = 0;
    let mut page_token = String::new();
    loop {
        let page = jobs
            .list_jobs(api::ListJobsRequest {
                page: Some(api::PageRequest {
                    page_size: 1000,
                    page_token,
                }),
                ..Default::default()
            })
            .await?
            .into_inner();
        count += page.jobs.len() as u64;
        page_token = page.page.map(|p| p.next_page_token).unwrap_or_default();
        if page_token.is_empty() {
            return Ok(count);
        }
    }
}

/// The phases' sizes, from FERRY_BENCH_*.
#[derive(Clone, Copy)]
struct Settings {
    secs: u64,
    concurrency: usize,
    rate: u64,
    max_rate: u64,
}

async fn run() -> anyhow::Result<()> {
    let settings = Settings {
        secs: env_number("FERRY_BENCH_SECS", 5),
        concurrency: env_number("FERRY_BENCH_CONCURRENCY", 64) as usize,
        rate: env_number("FERRY_BENCH_RATE", 1000),
        max_rate: env_number("FERRY_BENCH_MAX_RATE", 10_000),
    };
    anyhow::ensure!(
        (1..=MAX_PHASE_SECS).contains(&settings.secs),
        "FERRY_BENCH_SECS must be 1 to {MAX_PHASE_SECS}"
    );
    anyhow::ensure!(
        settings.concurrency >= 1,
        "FERRY_BENCH_CONCURRENCY must be at least 1"
    );
    anyhow::ensure!(
        (1..=1_000_000).contains(&settings.rate),
        "FERRY_BENCH_RATE must be 1 to 1000000"
    );
    for kind in ferry_benches::stores_flag()? {
        let store = SharedStore::start(kind)?;
        measure(&store, &settings).await?;
    }
    Ok(())
}

/// Both phases against one daemon on `store`; prints their table.
async fn measure(store: &SharedStore, settings: &Settings) -> anyhow::Result<()> {
    let Settings {
        secs,
        concurrency,
        rate,
        max_rate,
    } = *settings;
    let phase = Duration::from_secs(secs);
    let env = store.daemon_env().await?;
    let daemon = DaemonProcess::start(
        Path::new(env!("CARGO_BIN_EXE_ferry-bench-daemon")),
        &borrowed(&env),
    )?;
    let mut scene = Scene::with_daemon(daemon).await;
    let daemon_pid = scene.daemon.pid();
    let start = scene.after_install(0);
    let check = scene.zoom.recording_completed(&lecture(start)).await?;
    anyhow::ensure!(
        check.status == 200 && check.state() == Some("queued"),
        "set-up webhook answered {}: {}",
        check.status,
        check.body
    );

    let poster = WebhookPoster::new(scene.daemon.http_addr)?;
    let throughput_bodies = lecture_bodies(max_rate * secs, start);
    let latency_bodies = lecture_bodies(rate * secs, start);

    // Phase A: throughput, closed loop.
    let throughput_webhooks = sign_all(throughput_bodies)?;
    let database_cpu = || store.server_pid().map(process_tree_cpu_seconds).transpose();
    let database_cpu_before = database_cpu()?;
    let daemon_cpu_before = process_cpu_seconds(daemon_pid)?;
    let generator_cpu_before = process_cpu_seconds(std::process::id())?;
    let throughput = closed_loop(&poster, throughput_webhooks, concurrency, phase).await?;
    let daemon_cpu = process_cpu_seconds(daemon_pid)? - daemon_cpu_before;
    let generator_cpu = process_cpu_seconds(std::process::id())? - generator_cpu_before;
    let database_cpu = database_cpu()?
        .zip(database_cpu_before)
        .map(|(after, before)| after - before);

    // Phase B: latency at a fixed rate, open loop.
    let latency_webhooks = sign_all(latency_bodies)?;
    let latency = open_loop(&poster, latency_webhooks, rate).await?;

    // Every 200 promised a committed job; the daemon must hold exactly those.
    let acknowledged = 1 + throughput.acknowledged + latency.latencies.len() as u64;
    let jobs = count_jobs(&mut scene.admin.jobs).await?;
    anyhow::ensure!(
        jobs == acknowledged,
        "the daemon holds {jobs} jobs but acknowledged {acknowledged} distinct meetings"
    );
    drop(scene);

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let throughput_rate = per_second(throughput.acknowledged, throughput.elapsed);
    let daemon_cpu_per_thousand = daemon_cpu * 1000.0 / throughput.acknowledged as f64;
    let generator_cpu_per_thousand = generator_cpu * 1000.0 / throughput.acknowledged as f64;
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
    let database_rows = database_cpu.map(|cpu| {
        (
            "PostgreSQL CPU per 1,000 webhooks (phase A, all its processes)".to_string(),
            format!("{:.3} s", cpu * 1000.0 / throughput.acknowledged as f64),
            "reference".to_string(),
        )
    });
    let title = format!(
        "webhooks bench, {}: {secs} s per phase, {concurrency} closed-loop senders, \
         {rate} /s open loop, {cores} cores",
        store.describe()
    );
    let mut rows = vec![
        (
            format!(
                "acknowledged webhooks/s, closed loop, {concurrency} senders{}",
                if throughput.pool_exhausted {
                    " (ran out of pre-built webhooks; raise FERRY_BENCH_MAX_RATE)"
                } else {
                    ""
                }
            ),
            format!("{throughput_rate:.0} /s"),
            ">= 2,000 /s".into(),
        ),
        (
            "daemon CPU per 1,000 webhooks (phase A)".into(),
            format!("{daemon_cpu_per_thousand:.3} s"),
            "reference".into(),
        ),
        (
            "load generator CPU per 1,000 webhooks (same cores)".into(),
            format!("{generator_cpu_per_thousand:.3} s"),
            "reference".into(),
        ),
        (
            format!("webhooks/s the daemon's CPU would sustain on {cores} cores"),
            format!("{:.0} /s", cores as f64 * 1000.0 / daemon_cpu_per_thousand),
            "reference (derived)".into(),
        ),
        (
            format!("achieved send rate, open loop at {rate} /s"),
            format!(
                "{:.0} /s",
                per_second(latency.latencies.len() as u64, latency.sending)
            ),
            format!("{rate} /s"),
        ),
        (
            format!("answered 200 per second, open loop at {rate} /s (to last answer)"),
            format!(
                "{:.0} /s",
                per_second(latency.latencies.len() as u64, latency.elapsed)
            ),
            "reference".into(),
        ),
        (
            format!("latency p50 at {rate} /s (from scheduled send)"),
            ms(latency.percentile(50)),
            "reference".into(),
        ),
        (
            format!("latency p99 at {rate} /s (from scheduled send)"),
            ms(latency.percentile(99)),
            "< 50 ms".into(),
        ),
        (
            format!("latency max at {rate} /s (from scheduled send)"),
            ms(latency.percentile(100)),
            "reference".into(),
        ),
        (
            "jobs in the daemon = webhooks answered 200".into(),
            format!("{jobs} = {acknowledged}"),
            "equal".into(),
        ),
    ];
    // Beside the other processes' CPU, after the load generator's.
    if let Some(row) = database_rows {
        rows.insert(3, row);
    }
    print_table(&title, &rows);
    Ok(())
}
