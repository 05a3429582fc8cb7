//! Replicas add transfer capacity: 1, 2 and 3 `ferry serve` processes on one
//! PostgreSQL database (a throwaway cluster on loopback) and one discarding
//! S3 endpoint copy the same 64 recordings from the Zoom simulator, their
//! webhooks sent to the replicas in turn as a load balancer would. Each
//! replica has a download bandwidth limit, so that what one replica moves is
//! set by its limit rather than by this machine's two cores (shared by all
//! replicas, the simulator and the endpoint): the figure is how close the
//! aggregate comes to N times one replica's, which shows that replicas share
//! the work (claims, leases, the per-account rate split between them) without
//! getting in each other's way.
//!
//! Run: `cargo bench -p ferry-benches --bench replicas`
//! Optional: FERRY_BENCH_RECORDINGS (default 64), FERRY_BENCH_MIB (default
//! 32, per recording), FERRY_BENCH_REPLICA_MIB_S (default 40: each
//! replica's bandwidth limit), FERRY_BENCH_MAX_CONCURRENT (default 2,
//! transfers per replica at once).
//!
//! Throughput runs from the first webhook sent to the last job's recorded
//! finish. The limiter lets a burst of one second's worth through at start
//! (so that one part always fits), which each replica has: a small head start
//! that grows with the number of replicas, reported beside the figures.

use std::path::Path;
use std::time::Duration;

use ferry_benches::transfer_rig::{
    FleetSettings, TransferBenchSettings, TransferRig, check_all_completed, mib_per_second,
    now_unix_millis,
};
use ferry_benches::usage::process_cpu_seconds;
use ferry_benches::{env_number, print_table};
use ferry_test_support::replicas::{SharedStore, StoreKind};
use ferry_test_support::{GIB, MIB};

const LEVEL_TIMEOUT: Duration = Duration::from_secs(600);
const LEVELS: [usize; 3] = [1, 2, 3];
/// The targets: aggregate throughput against one replica's.
const TARGETS: [(usize, f64); 2] = [(2, 1.8), (3, 2.6)];

fn main() -> anyhow::Result<()> {
    ferry_benches::block_on(run())
}

/// What one number of replicas measured.
struct Level {
    replicas: usize,
    throughput_mib_s: f64,
    cpu_s_per_gib: f64,
    moved: Vec<usize>,
}

async fn run() -> anyhow::Result<()> {
    let recordings = env_number("FERRY_BENCH_RECORDINGS", 64);
    let num_bytes = env_number("FERRY_BENCH_MIB", 32) * MIB;
    let limit = env_number("FERRY_BENCH_REPLICA_MIB_S", 40) * MIB;
    let max_concurrent = env_number("FERRY_BENCH_MAX_CONCURRENT", 2) as usize;
    anyhow::ensure!(limit > 0, "FERRY_BENCH_REPLICA_MIB_S must be at least 1");
    let settings = TransferBenchSettings {
        part_size_bytes: 16 * MIB,
        parts_in_flight: 4,
        byte_budget_bytes: 256 * MIB,
        max_concurrent,
        // High enough that request pacing, split between the replicas, does
        // not hide what the bandwidth limit allows.
        download_requests_per_second: 1000,
    };
    let store = SharedStore::start(StoreKind::Postgres)?;
    let mut levels = Vec::new();
    for replicas in LEVELS {
        eprintln!("replicas: {replicas} replica(s), {recordings} recordings ...");
        let fleet = FleetSettings {
            replicas,
            store_env: store.daemon_env().await?,
            bandwidth_bytes_per_second: limit,
        };
        levels.push(measure(settings, fleet, recordings, num_bytes).await?);
    }

    let one = levels[0].throughput_mib_s;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut rows = Vec::new();
    for level in &levels {
        let target = TARGETS
            .iter()
            .find(|(replicas, _)| *replicas == level.replicas)
            .map(|(_, ratio)| *ratio);
        let ratio = level.throughput_mib_s / one;
        rows.push((
            format!(
                "{} replica(s): aggregate throughput (ceiling {} MiB/s)",
                level.replicas,
                level.replicas as u64 * limit / MIB
            ),
            format!("{:.1} MiB/s", level.throughput_mib_s),
            "reference".into(),
        ));
        rows.push((
            format!("{} replica(s): against 1 replica", level.replicas),
            format!("{ratio:.2}x"),
            match target {
                Some(target) => format!(
                    ">= {target}x: {}",
                    if ratio >= target { "met" } else { "MISSED" }
                ),
                None => "1x by definition".into(),
            },
        ));
        rows.push((
            format!("{} replica(s): jobs moved by each", level.replicas),
            level
                .moved
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(" / "),
            format!("{recordings} in all"),
        ));
        rows.push((
            format!("{} replica(s): CPU per GiB, all replicas", level.replicas),
            format!("{:.2} s", level.cpu_s_per_gib),
            "reference".into(),
        ));
    }
    print_table(
        &format!(
            "replicas bench: {recordings} x {} MiB, each replica limited to {} MiB/s download, \
             {max_concurrent} transfers per replica at once, {}, discarding S3 endpoint, \
             {cores} cores shared by every process",
            num_bytes / MIB,
            limit / MIB,
            store.describe()
        ),
        &rows,
    );
    println!(
        "head start: each replica's limiter lets {} MiB through before pacing; \
         {:.1} % of the bytes with 1 replica, {:.1} % with 3",
        limit / MIB,
        100.0 * limit as f64 / (recordings * num_bytes) as f64,
        300.0 * limit as f64 / (recordings * num_bytes) as f64
    );
    Ok(())
}

async fn measure(
    settings: TransferBenchSettings,
    fleet: FleetSettings,
    recordings: u64,
    num_bytes: u64,
) -> anyhow::Result<Level> {
    let replicas = fleet.replicas;
    let mut rig = TransferRig::start_fleet(
        Path::new(env!("CARGO_BIN_EXE_ferry-bench-daemon")),
        settings,
        fleet,
    )
    .await?;
    let meetings: Vec<_> = (0..recordings).map(|_| rig.recording(num_bytes)).collect();
    let pids = rig.pids();
    let cpu = |pids: &[u32]| -> anyhow::Result<f64> {
        pids.iter().map(|&pid| process_cpu_seconds(pid)).sum()
    };
    let cpu_before = cpu(&pids)?;
    let sent_at = now_unix_millis();
    rig.queue_all(&meetings).await?;
    let finished = rig.wait_all_final(LEVEL_TIMEOUT).await?;
    let cpu_used = cpu(&pids)? - cpu_before;
    let last_finish = check_all_completed(&finished.jobs, &rig.s3, recordings, num_bytes)?;
    let elapsed = Duration::from_millis(u64::try_from(last_finish - sent_at)?.max(1));
    let moved = rig.jobs_moved_by_replica(&finished.jobs).await?;
    let total = recordings * num_bytes;
    Ok(Level {
        replicas,
        throughput_mib_s: mib_per_second(total, elapsed),
        cpu_s_per_gib: cpu_used * GIB as f64 / total as f64,
        moved,
    })
}
