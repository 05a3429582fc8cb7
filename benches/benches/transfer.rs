//! One large recording end to end, Ferry against rclone in the same run,
//! twice: plain HTTP on both hops, then TLS on both hops.
//!
//! The simulator serves a 1 GiB synthetic MP4 over loopback. Ferry (the
//! real daemon as a separate process, S3 sink) copies it into a discarding
//! S3-protocol endpoint, from the signed webhook to the job's completion.
//! Then `rclone copyurl` copies the same file from the simulator's CDN URL
//! into the same endpoint, with the same part size and parts in flight.
//! The simulator and the endpoint live in this bench process and share the
//! machine's cores with whichever client runs; only the client's own CPU
//! time and memory are counted, each read from /proc the same way.
//!
//! In the TLS run the download hosts and the endpoint serve HTTPS with a
//! CA made at run time; Ferry trusts it through `transfer.extra_ca_file`,
//! rclone through `--ca-cert`, on the same URLs. The servers count TLS
//! handshakes, so the bench shows how many connections each client opened
//! (connection reuse across parts and hosts). Before both runs it measures
//! AES-GCM of the two rustls crypto providers on this CPU and names the one
//! Ferry's clients use.
//!
//! Run: `cargo bench -p ferry-benches --bench transfer`
//! Optional: FERRY_BENCH_MIB (default 1024), FERRY_BENCH_PART_MIB (default
//! 16), FERRY_BENCH_PARTS_IN_FLIGHT (default 4), FERRY_BENCH_RCLONE
//! (default `rclone`; `skip` runs Ferry alone).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use ferry_benches::aead::{self, AeadFigures, RECORD_BYTES};
use ferry_benches::transfer_rig::{
    ACCESS_KEY_ID, BUCKET, SECRET_ACCESS_KEY, TransferBenchSettings, TransferRig, check_completed,
    finish_unix_millis, mib_per_second, now_unix_millis, serve_recording,
};
use ferry_benches::usage::{peak_rss_bytes, process_cpu_seconds, run_measured};
use ferry_benches::{env_number, print_columns, print_table};
use ferry_daemon::tls::PROVIDER_NAME;
use ferry_test_support::discard_s3::DiscardS3;
use ferry_test_support::{GIB, MIB};
use ferry_zoomsim::downloads::DownloadServer;
use ferry_zoomsim::tls::ServerTls;

/// The longest either client may take for the whole file.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(900);
/// Memory the daemon may use beyond the parts it holds.
const RSS_ALLOWANCE: u64 = 64 * MIB;
/// How long each AES-GCM loop runs.
const AEAD_LOOP: Duration = Duration::from_millis(400);

/// What both hops speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hops {
    Plain,
    Tls,
}

impl Hops {
    fn title(self) -> &'static str {
        match self {
            Hops::Plain => "plain HTTP on both hops",
            Hops::Tls => "TLS on both hops",
        }
    }
}

/// TLS connections each server accepted (completed handshakes) while one
/// client ran.
#[derive(Clone, Copy, Debug, Default)]
struct Connections {
    zoom_host: u64,
    cdn_host: u64,
    s3: u64,
}

impl Connections {
    /// Handshakes so far (all 0 over plain HTTP).
    fn so_far(downloads: &DownloadServer, s3: &DiscardS3) -> Connections {
        let count = |tls: Option<&ServerTls>| tls.map_or(0, ServerTls::handshakes);
        Connections {
            zoom_host: count(downloads.zoom_tls()),
            cdn_host: count(downloads.cdn_tls()),
            s3: count(s3.tls()),
        }
    }

    fn since(self, before: Connections) -> Connections {
        Connections {
            zoom_host: self.zoom_host - before.zoom_host,
            cdn_host: self.cdn_host - before.cdn_host,
            s3: self.s3 - before.s3,
        }
    }
}

fn main() -> anyhow::Result<()> {
    ferry_benches::block_on(run())
}

/// What one client cost for the whole file.
struct Figures {
    elapsed: Duration,
    cpu_seconds: f64,
    peak_rss_bytes: u64,
    /// This bench process's CPU (simulator and endpoint) meanwhile.
    bench_cpu_seconds: f64,
    /// Requests the endpoint saw, by operation.
    operations: String,
    /// TLS connections the client opened meanwhile (0 over plain HTTP).
    connections: Connections,
}

impl Figures {
    fn mib_per_second(&self, num_bytes: u64) -> f64 {
        mib_per_second(num_bytes, self.elapsed)
    }

    fn cpu_seconds_per_gib(&self, num_bytes: u64) -> f64 {
        self.cpu_seconds * GIB as f64 / num_bytes as f64
    }
}

/// One run of both clients over the same hops.
struct Run {
    hops: Hops,
    idle_peak_rss: u64,
    /// TLS connections the daemon opened while starting (S3's start-up
    /// clean-up), before the webhook.
    start_up_connections: Connections,
    ferry: Figures,
    rclone: Option<Figures>,
}

/// Ferry: from posting the webhook to the job's recorded finish time.
async fn run_ferry(rig: &mut TransferRig, num_bytes: u64) -> anyhow::Result<Figures> {
    let meeting = rig.recording(num_bytes);
    let daemon_pid = rig.scene.daemon.pid();
    rig.s3.take_operation_counts();
    let connections_before = Connections::so_far(&rig.downloads, &rig.s3);
    let daemon_cpu_before = process_cpu_seconds(daemon_pid)?;
    let bench_cpu_before = process_cpu_seconds(std::process::id())?;
    let sent_at = now_unix_millis();
    rig.scene.queue(&meeting).await?;
    let jobs = rig.wait_all_final(TRANSFER_TIMEOUT).await?.jobs;
    let daemon_cpu = process_cpu_seconds(daemon_pid)? - daemon_cpu_before;
    let bench_cpu = process_cpu_seconds(std::process::id())? - bench_cpu_before;
    check_completed(&jobs, &rig.s3, num_bytes)?;
    let finished_at = finish_unix_millis(&jobs[0])?;
    Ok(Figures {
        elapsed: Duration::from_millis(u64::try_from(finished_at - sent_at)?),
        cpu_seconds: daemon_cpu,
        peak_rss_bytes: peak_rss_bytes(daemon_pid)?,
        bench_cpu_seconds: bench_cpu,
        operations: rig.s3.take_operation_counts(),
        connections: Connections::so_far(&rig.downloads, &rig.s3).since(connections_before),
    })
}

/// rclone: `copyurl` of the same bytes from the simulator's CDN URL, with
/// Ferry's part size and parts in flight, configured through environment
/// variables alone (no config file, no proxy: the environment is cleared),
/// trusting `ca_file` (`--ca-cert`) when the hops speak TLS.
async fn run_rclone(
    downloads: &DownloadServer,
    s3: &DiscardS3,
    program: &str,
    num_bytes: u64,
    settings: TransferBenchSettings,
    ca_file: Option<&Path>,
) -> anyhow::Result<Figures> {
    let file_id = "rclone-copyurl-recording";
    serve_recording(downloads, file_id, "rclone-needs-no-token", num_bytes);
    let home = tempfile::tempdir()?;
    let key = format!("rclone/{file_id}.mp4");
    let mut command = Command::new(program);
    command
        .env_clear()
        .env("HOME", home.path())
        .env("RCLONE_CONFIG", home.path().join("rclone.conf"))
        .env("RCLONE_CONFIG_BENCH_TYPE", "s3")
        .env("RCLONE_CONFIG_BENCH_PROVIDER", "Other")
        .env("RCLONE_CONFIG_BENCH_ENDPOINT", s3.endpoint())
        .env("RCLONE_CONFIG_BENCH_REGION", "us-east-1")
        .env("RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE", "true")
        .env("RCLONE_CONFIG_BENCH_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        .arg("copyurl")
        .arg(downloads.cdn_url(file_id))
        .arg(format!("bench:{BUCKET}/{key}"))
        // A bare number would mean KiB to rclone.
        .arg(format!(
            "--s3-chunk-size={}M",
            settings.part_size_bytes / MIB
        ))
        .arg(format!(
            "--s3-upload-concurrency={}",
            settings.parts_in_flight
        ))
        // A failure shows as one, not as a slower run that retried.
        .args(["--retries=1", "--quiet"])
        .stdin(Stdio::null());
    if let Some(ca_file) = ca_file {
        command.arg(format!("--ca-cert={}", ca_file.display()));
    }
    s3.take_operation_counts();
    let connections_before = Connections::so_far(downloads, s3);
    let bench_cpu_before = process_cpu_seconds(std::process::id())?;
    let usage = tokio::task::spawn_blocking(move || run_measured(&mut command))
        .await?
        .with_context(|| format!("cannot run {program}"))?;
    let bench_cpu = process_cpu_seconds(std::process::id())? - bench_cpu_before;
    anyhow::ensure!(usage.status.success(), "{program} failed: {}", usage.status);
    let stored = s3.object_size(BUCKET, &key);
    anyhow::ensure!(
        stored == Some(num_bytes),
        "{program} stored {stored:?} bytes of {num_bytes}"
    );
    Ok(Figures {
        elapsed: usage.elapsed,
        cpu_seconds: usage.cpu_seconds,
        peak_rss_bytes: usage.peak_rss_bytes,
        bench_cpu_seconds: bench_cpu,
        operations: s3.take_operation_counts(),
        connections: Connections::so_far(downloads, s3).since(connections_before),
    })
}

/// Ferry, then (with the daemon stopped, so that rclone has the machine to
/// itself) rclone, both over `hops`.
async fn run_both(
    hops: Hops,
    num_bytes: u64,
    settings: TransferBenchSettings,
    rclone_program: &str,
) -> anyhow::Result<Run> {
    let daemon = Path::new(env!("CARGO_BIN_EXE_ferry-bench-daemon"));
    let mut rig = match hops {
        Hops::Plain => TransferRig::start(daemon, settings).await?,
        Hops::Tls => TransferRig::start_tls(daemon, settings).await?,
    };
    let idle_peak_rss = peak_rss_bytes(rig.scene.daemon.pid())?;
    let start_up_connections = Connections::so_far(&rig.downloads, &rig.s3);
    let ferry = run_ferry(&mut rig, num_bytes).await?;
    let TransferRig {
        tls,
        scene,
        other_replicas,
        downloads,
        s3,
        ..
    } = rig;
    drop((scene, other_replicas));
    let ca_file = tls.as_ref().map(|tls| tls.ca_file.as_path());
    let rclone = match rclone_program {
        "skip" => None,
        program => Some(run_rclone(&downloads, &s3, program, num_bytes, settings, ca_file).await?),
    };
    Ok(Run {
        hops,
        idle_peak_rss,
        start_up_connections,
        ferry,
        rclone,
    })
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

async fn run() -> anyhow::Result<()> {
    let num_bytes = env_number("FERRY_BENCH_MIB", 1024) * MIB;
    let settings = TransferBenchSettings {
        part_size_bytes: env_number("FERRY_BENCH_PART_MIB", 16) * MIB,
        parts_in_flight: env_number("FERRY_BENCH_PARTS_IN_FLIGHT", 4) as usize,
        byte_budget_bytes: 256 * MIB,
        max_concurrent: 4,
        download_requests_per_second: 10,
    };
    let rclone_program = std::env::var("FERRY_BENCH_RCLONE").unwrap_or_else(|_| "rclone".into());
    let aead = aead::measure(AEAD_LOOP)?;
    print_aead(&aead);
    let mut runs = Vec::new();
    for hops in [Hops::Plain, Hops::Tls] {
        eprintln!("transfer: {} ...", hops.title());
        let run = run_both(hops, num_bytes, settings, &rclone_program).await?;
        print_results(num_bytes, settings, &run);
        runs.push(run);
    }
    print_side_by_side(num_bytes, &runs);
    Ok(())
}

/// The AES-GCM table and which provider Ferry's TLS clients use.
fn print_aead(figures: &[AeadFigures]) {
    let mib_s = |bytes_per_second: f64| format!("{:.0} MiB/s", bytes_per_second / MIB as f64);
    let rows: Vec<Vec<String>> = figures
        .iter()
        .map(|f| {
            vec![
                f.provider.to_string(),
                f.algorithm.to_string(),
                mib_s(f.seal_bytes_per_second),
                mib_s(f.open_bytes_per_second),
            ]
        })
        .collect();
    print_columns(
        &format!(
            "AES-GCM on this CPU, one core, {} KiB records (what TLS encrypts), both rustls \
             providers",
            RECORD_BYTES / 1024
        ),
        &["provider", "algorithm", "seal", "open"],
        &rows,
    );
    let faster = aead::faster_provider(figures).unwrap_or("none");
    println!(
        "faster here: {faster}; Ferry's TLS clients use: {PROVIDER_NAME}{}",
        if faster == PROVIDER_NAME {
            ""
        } else {
            " (NOT the faster one)"
        }
    );
}

fn print_results(num_bytes: u64, settings: TransferBenchSettings, run: &Run) {
    let (ferry, rclone) = (&run.ferry, run.rclone.as_ref());
    let mib = |bytes: u64| bytes as f64 / MIB as f64;
    let rss_target = RSS_ALLOWANCE + settings.part_size_bytes * settings.parts_in_flight as u64;
    let ferry_rate = ferry.mib_per_second(num_bytes);
    let ferry_cpu = ferry.cpu_seconds_per_gib(num_bytes);
    let mut rows = vec![
        (
            "Ferry throughput (webhook to job completed)".to_string(),
            format!("{ferry_rate:.0} MiB/s"),
            match rclone {
                Some(rclone) => format!(
                    ">= 3 x rclone = {:.0} MiB/s",
                    3.0 * rclone.mib_per_second(num_bytes)
                ),
                None => "3 x rclone".into(),
            },
        ),
        (
            "Ferry CPU per GiB (daemon process)".to_string(),
            format!("{ferry_cpu:.2} s"),
            match rclone {
                Some(rclone) => format!(
                    "<= rclone / 4 = {:.2} s",
                    rclone.cpu_seconds_per_gib(num_bytes) / 4.0
                ),
                None => "rclone / 4".into(),
            },
        ),
        (
            "Ferry peak RSS (daemon VmHWM)".to_string(),
            format!("{:.0} MiB", mib(ferry.peak_rss_bytes)),
            format!(
                "< 64 MiB + {} MiB x {} = {:.0} MiB: {}",
                settings.part_size_bytes / MIB,
                settings.parts_in_flight,
                mib(rss_target),
                verdict(ferry.peak_rss_bytes < rss_target)
            ),
        ),
        (
            "Ferry peak RSS before the webhook (start-up)".to_string(),
            format!("{:.0} MiB", mib(run.idle_peak_rss)),
            "reference".into(),
        ),
        (
            "bench process CPU meanwhile (simulator + endpoint)".to_string(),
            format!("{:.2} s", ferry.bench_cpu_seconds),
            "reference".into(),
        ),
    ];
    if let Some(rclone) = rclone {
        let rclone_rate = rclone.mib_per_second(num_bytes);
        let rclone_cpu = rclone.cpu_seconds_per_gib(num_bytes);
        rows.extend([
            (
                "rclone copyurl throughput (process start to exit)".to_string(),
                format!("{rclone_rate:.0} MiB/s"),
                "reference".into(),
            ),
            (
                "rclone CPU per GiB (whole process)".to_string(),
                format!("{rclone_cpu:.2} s"),
                "reference".into(),
            ),
            (
                "rclone peak RSS".to_string(),
                format!("{:.0} MiB", mib(rclone.peak_rss_bytes)),
                "reference".into(),
            ),
            (
                "bench process CPU meanwhile (simulator + endpoint)".to_string(),
                format!("{:.2} s", rclone.bench_cpu_seconds),
                "reference".into(),
            ),
            (
                "throughput, Ferry / rclone".to_string(),
                format!("{:.2} x", ferry_rate / rclone_rate),
                format!(">= 3 x: {}", verdict(ferry_rate >= 3.0 * rclone_rate)),
            ),
            (
                "CPU per byte, rclone / Ferry".to_string(),
                format!("{:.2} x", rclone_cpu / ferry_cpu),
                format!(">= 4 x: {}", verdict(rclone_cpu >= 4.0 * ferry_cpu)),
            ),
        ]);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    print_table(
        &format!(
            "transfer bench, {}: {:.0} MiB over loopback into a discarding S3 endpoint, {} MiB \
             parts, {} in flight, {cores} cores",
            run.hops.title(),
            mib(num_bytes),
            settings.part_size_bytes / MIB,
            settings.parts_in_flight,
        ),
        &rows,
    );
    println!("requests seen, Ferry:  {}", ferry.operations);
    if let Some(rclone) = rclone {
        println!("requests seen, rclone: {}", rclone.operations);
    }
    if run.hops == Hops::Tls {
        let line = |c: &Connections| {
            format!(
                "Zoom host {}, CDN host {}, S3 endpoint {}",
                c.zoom_host, c.cdn_host, c.s3
            )
        };
        println!(
            "TLS connections opened, Ferry:  {} (and {} at start-up)",
            line(&ferry.connections),
            line(&run.start_up_connections)
        );
        if let Some(rclone) = rclone {
            println!(
                "TLS connections opened, rclone: {}",
                line(&rclone.connections)
            );
        }
    }
}

/// A row of the side-by-side table: `name`, then `figure` of each run
/// (`-` where a run has no such figure).
fn side_by_side_row(
    name: &str,
    runs: &[Run],
    figure: impl Fn(&Run) -> Option<String>,
) -> Vec<String> {
    std::iter::once(name.to_string())
        .chain(
            runs.iter()
                .map(|run| figure(run).unwrap_or_else(|| "-".into())),
        )
        .collect()
}

/// Each run's figures in a column of their own.
fn print_side_by_side(num_bytes: u64, runs: &[Run]) {
    let rate = |f: &Figures| format!("{:.0} MiB/s", f.mib_per_second(num_bytes));
    let cpu = |f: &Figures| format!("{:.2} s", f.cpu_seconds_per_gib(num_bytes));
    let rss = |f: &Figures| format!("{:.0} MiB", f.peak_rss_bytes as f64 / MIB as f64);
    let rows = vec![
        side_by_side_row("Ferry throughput", runs, |run| Some(rate(&run.ferry))),
        side_by_side_row("Ferry CPU per GiB", runs, |run| Some(cpu(&run.ferry))),
        side_by_side_row("Ferry peak RSS", runs, |run| Some(rss(&run.ferry))),
        side_by_side_row("rclone throughput", runs, |run| {
            run.rclone.as_ref().map(rate)
        }),
        side_by_side_row("rclone CPU per GiB", runs, |run| {
            run.rclone.as_ref().map(cpu)
        }),
        side_by_side_row("rclone peak RSS", runs, |run| run.rclone.as_ref().map(rss)),
        side_by_side_row("throughput, Ferry / rclone", runs, |run| {
            let rclone = run.rclone.as_ref()?;
            Some(format!(
                "{:.2} x",
                run.ferry.mib_per_second(num_bytes) / rclone.mib_per_second(num_bytes)
            ))
        }),
        side_by_side_row("CPU per byte, rclone / Ferry", runs, |run| {
            let rclone = run.rclone.as_ref()?;
            Some(format!(
                "{:.2} x",
                rclone.cpu_seconds_per_gib(num_bytes) / run.ferry.cpu_seconds_per_gib(num_bytes)
            ))
        }),
    ];
    let headers: Vec<&str> = std::iter::once("figure")
        .chain(runs.iter().map(|run| match run.hops {
            Hops::Plain => "plain HTTP",
            Hops::Tls => "TLS",
        }))
        .collect();
    print_columns(
        "transfer bench, side by side: plain HTTP and TLS on both hops (targets: throughput >= 3 x, \
         CPU per byte >= 4 x)",
        &headers,
        &rows,
    );
}
