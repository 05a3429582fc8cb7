//! Many transfers at once under one byte budget: 64 recordings of 64 MiB,
//! each announced by its own signed webhook, all sent at once, copied by
//! the real daemon (a separate process, S3 sink, `max_concurrent` 64) into
//! a discarding S3-protocol endpoint. The byte budget is what bounds the
//! daemon's memory, whatever the number of transfers: the daemon's peak RSS
//! must stay under the budget plus 64 MiB.
//!
//! The per-account download rate limit is raised to 100 requests/s, so that
//! all 64 downloads can start together; at its default of 10/s the starts
//! alone would be spread over 6 s.
//!
//! Run: `cargo bench -p ferry-benches --bench transfer_concurrency`
//! Optional: FERRY_BENCH_TRANSFERS (default 64), FERRY_BENCH_MIB (default 64,
//! per transfer), FERRY_BENCH_BUDGET_MIB (default 256).

use std::path::Path;
use std::time::Duration;

use ferry_benches::env_number;
use ferry_benches::print_table;
use ferry_benches::transfer_rig::{
    TransferBenchSettings, TransferRig, check_all_completed, mib_per_second, now_unix_millis,
};
use ferry_benches::usage::{peak_rss_bytes, process_cpu_seconds};
use ferry_test_support::{GIB, MIB};

const TRANSFER_TIMEOUT: Duration = Duration::from_secs(900);
/// Memory the daemon may use beyond its byte budget.
const RSS_ALLOWANCE: u64 = 64 * MIB;

fn main() -> anyhow::Result<()> {
    ferry_benches::block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let transfers = env_number("FERRY_BENCH_TRANSFERS", 64);
    let num_bytes = env_number("FERRY_BENCH_MIB", 64) * MIB;
    let settings = TransferBenchSettings {
        part_size_bytes: 16 * MIB,
        parts_in_flight: 4,
        byte_budget_bytes: env_number("FERRY_BENCH_BUDGET_MIB", 256) * MIB,
        max_concurrent: usize::try_from(transfers)?,
        download_requests_per_second: 100,
    };
    let mut rig = TransferRig::start(
        Path::new(env!("CARGO_BIN_EXE_ferry-bench-daemon")),
        settings,
    )
    .await?;
    let meetings: Vec<_> = (0..transfers).map(|_| rig.recording(num_bytes)).collect();

    let daemon_pid = rig.scene.daemon.pid();
    let idle_peak_rss = peak_rss_bytes(daemon_pid)?;
    let daemon_cpu_before = process_cpu_seconds(daemon_pid)?;
    let bench_cpu_before = process_cpu_seconds(std::process::id())?;
    let sent_at = now_unix_millis();
    // All webhooks at once, as Zoom would send them for recordings that
    // finished together.
    let deliveries = meetings.iter().map(|meeting| rig.scene.queue(meeting));
    futures::future::try_join_all(deliveries).await?;
    let webhooks_sent_in = Duration::from_millis(u64::try_from(now_unix_millis() - sent_at)?);
    let finished = rig.wait_all_final(TRANSFER_TIMEOUT).await?;
    let daemon_cpu = process_cpu_seconds(daemon_pid)? - daemon_cpu_before;
    let bench_cpu = process_cpu_seconds(std::process::id())? - bench_cpu_before;
    let peak_rss = peak_rss_bytes(daemon_pid)?;
    let last_finish = check_all_completed(&finished.jobs, &rig.s3, transfers, num_bytes)?;
    let elapsed = Duration::from_millis(u64::try_from(last_finish - sent_at)?);
    let total_bytes = transfers * num_bytes;
    let operations = rig.s3.take_operation_counts();
    drop(rig);

    let mib = |bytes: u64| bytes as f64 / MIB as f64;
    let rss_target = settings.byte_budget_bytes + RSS_ALLOWANCE;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    print_table(
        &format!(
            "transfer concurrency bench: {transfers} x {:.0} MiB at once, {:.0} MiB byte budget, \
             16 MiB parts, 4 in flight, {cores} cores",
            mib(num_bytes),
            mib(settings.byte_budget_bytes)
        ),
        &[
            (
                "total throughput (first webhook to last job completed)".into(),
                format!("{:.0} MiB/s", mib_per_second(total_bytes, elapsed)),
                "reference".into(),
            ),
            (
                "Ferry CPU per GiB (daemon process)".into(),
                format!("{:.2} s", daemon_cpu * GIB as f64 / total_bytes as f64),
                "reference".into(),
            ),
            (
                "Ferry peak RSS (daemon VmHWM)".into(),
                format!("{:.0} MiB", mib(peak_rss)),
                format!(
                    "< budget + 64 MiB = {:.0} MiB: {}",
                    mib(rss_target),
                    if peak_rss < rss_target {
                        "met"
                    } else {
                        "MISSED"
                    }
                ),
            ),
            (
                "Ferry peak RSS before the webhooks (start-up)".into(),
                format!("{:.0} MiB", mib(idle_peak_rss)),
                "reference".into(),
            ),
            (
                "most jobs seen transferring at once (100 ms polls)".into(),
                finished.most_transferring_at_once.to_string(),
                format!("up to {transfers}"),
            ),
            (
                format!("time to deliver the {transfers} webhooks"),
                format!("{:.2} s", webhooks_sent_in.as_secs_f64()),
                "reference".into(),
            ),
            (
                "bench process CPU meanwhile (simulator + endpoint)".into(),
                format!("{bench_cpu:.2} s"),
                "reference".into(),
            ),
        ],
    );
    println!("requests seen: {operations}");
    Ok(())
}
