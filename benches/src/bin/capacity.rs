//! Capacity planning: the full daemon (a separate process, S3 sink) copying
//! N simultaneous recordings of one size from the Zoom simulator into a
//! discarding S3 endpoint, for each N asked for. For each level it reports
//! throughput, daemon CPU seconds per GiB, peak RSS, p99 part-upload latency
//! and webhook-to-completion latency, as a table, as CSV and as an SVG plot
//! of throughput and memory against concurrency. Loopback only.
//!
//! `cargo run --release -p ferry-benches --bin capacity -- --transfers 1,8,32,128 --size 256MiB`
//!
//! Flags: `--transfers` (levels), `--size` (per recording), `--budget`
//! (`transfer.byte_budget_bytes`, default 256MiB as in the daemon),
//! `--out` (folder for capacity.csv and capacity.svg, default
//! `target/capacity`), `--store sqlite|postgres` (default sqlite; postgres
//! is a throwaway cluster on loopback with fsync on, a fresh database per
//! level) and `--replicas N` (default 1; more need `--store postgres`: N
//! daemons on one database, the webhooks sent to them in turn, each with
//! `max_concurrent` the level's count divided between them). With several
//! replicas the CPU is the sum over them, the RSS the largest of them, and
//! the part-upload p99 comes from their histograms added together.
//!
//! The binary is also the daemon it measures: started with `serve` it runs
//! `ferry serve`, so one `cargo run` builds everything the bench needs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use ferry_benches::transfer_rig::{
    FleetSettings, TransferBenchSettings, TransferRig, check_completed, finish_unix_millis,
    mib_per_second, now_unix_millis,
};
use ferry_benches::usage::{peak_rss_bytes, process_cpu_seconds};
use ferry_test_support::replicas::{SharedStore, StoreKind};
use ferry_test_support::{GIB, MIB};
use plotters::prelude::*;

const PART_SIZE: u64 = 16 * MIB;
const PARTS_IN_FLIGHT: usize = 4;
/// Longest one level may take before the bench gives up.
const LEVEL_TIMEOUT: Duration = Duration::from_secs(1800);

struct Options {
    levels: Vec<u64>,
    size: u64,
    budget: u64,
    out: PathBuf,
    store: StoreKind,
    replicas: usize,
}

/// `256MiB`, `1GiB`, `512KiB` or plain bytes.
fn parse_size(text: &str) -> anyhow::Result<u64> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, ""), |at| text.split_at(at));
    let number: u64 = number
        .parse()
        .with_context(|| format!("{text:?} is not a size like 256MiB"))?;
    let unit = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => MIB,
        "gib" | "g" => GIB,
        other => bail!("unknown size unit {other:?} (use KiB, MiB or GiB)"),
    };
    number
        .checked_mul(unit)
        .filter(|&n| n > 0)
        .with_context(|| format!("{text:?} is not a usable size"))
}

fn parse_options(args: &[String]) -> anyhow::Result<Options> {
    let mut options = Options {
        levels: vec![1, 8, 32, 128],
        size: 256 * MIB,
        budget: 256 * MIB,
        out: PathBuf::from("target/capacity"),
        store: StoreKind::Sqlite,
        replicas: 1,
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--transfers" => {
                options.levels = value
                    .split(',')
                    .map(|n| {
                        n.trim()
                            .parse::<u64>()
                            .ok()
                            .filter(|&n| n > 0)
                            .with_context(|| format!("--transfers: {n:?} is not a positive count"))
                    })
                    .collect::<anyhow::Result<_>>()?
            }
            "--size" => options.size = parse_size(value).context("--size")?,
            "--budget" => options.budget = parse_size(value).context("--budget")?,
            "--out" => options.out = PathBuf::from(value),
            "--store" => options.store = StoreKind::parse(value).context("--store")?,
            "--replicas" => {
                options.replicas = value
                    .parse()
                    .ok()
                    .filter(|&n: &usize| n > 0)
                    .with_context(|| format!("--replicas: {value:?} is not a positive count"))?
            }
            other => bail!(
                "unknown flag {other} (use --transfers, --size, --budget, --out, --store, --replicas)"
            ),
        }
    }
    if options.replicas > 1 && options.store != StoreKind::Postgres {
        bail!("--replicas {} needs --store postgres", options.replicas);
    }
    if options.budget < PART_SIZE {
        bail!(
            "--budget must hold at least one {} MiB part",
            PART_SIZE / MIB
        );
    }
    Ok(options)
}

/// What one concurrency level measured.
struct Level {
    transfers: u64,
    throughput_mib_s: f64,
    cpu_s_per_gib: f64,
    peak_rss_mib: f64,
    part_p99_s: f64,
    completion_p50_s: f64,
    completion_p99_s: f64,
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve") {
        return ferry_daemon::cli::main();
    }
    let run = || -> anyhow::Result<()> {
        let options = parse_options(&args)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        runtime.block_on(run(options))
    };
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("capacity: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(options: Options) -> anyhow::Result<()> {
    let daemon = std::env::current_exe().context("the bench's own path")?;
    let store = SharedStore::start(options.store)?;
    let mut levels = Vec::new();
    for &transfers in &options.levels {
        eprintln!("capacity: {transfers} x {} MiB ...", options.size / MIB);
        let fleet = FleetSettings {
            replicas: options.replicas,
            store_env: store.daemon_env().await?,
            bandwidth_bytes_per_second: 0,
        };
        levels.push(measure(&daemon, transfers, &options, fleet).await?);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let title = format!(
        "capacity: {} MiB per recording, {} MiB byte budget, {} MiB parts x {PARTS_IN_FLIGHT} in flight, \
         {}, {} replica(s), {cores} cores (daemon CPU and RSS only; the simulator and endpoint run \
         in the bench process)",
        options.size / MIB,
        options.budget / MIB,
        PART_SIZE / MIB,
        store.describe(),
        options.replicas
    );
    println!("\n{title}");
    println!(
        "{:>9}  {:>11}  {:>9}  {:>12}  {:>12}  {:>14}  {:>14}",
        "transfers",
        "MiB/s",
        "CPU s/GiB",
        "peak RSS MiB",
        "part p99 s",
        "completion p50",
        "completion p99"
    );
    for l in &levels {
        println!(
            "{:>9}  {:>11.0}  {:>9.2}  {:>12.0}  {:>12.3}  {:>13.2}s  {:>13.2}s",
            l.transfers,
            l.throughput_mib_s,
            l.cpu_s_per_gib,
            l.peak_rss_mib,
            l.part_p99_s,
            l.completion_p50_s,
            l.completion_p99_s
        );
    }
    std::fs::create_dir_all(&options.out)
        .with_context(|| format!("cannot create {}", options.out.display()))?;
    let csv = options.out.join("capacity.csv");
    write_csv(&csv, &levels)?;
    let svg = options.out.join("capacity.svg");
    plot(&svg, &levels, &title, options.budget)?;
    println!("\nwrote {} and {}", csv.display(), svg.display());
    Ok(())
}

async fn measure(
    daemon: &Path,
    transfers: u64,
    options: &Options,
    fleet: FleetSettings,
) -> anyhow::Result<Level> {
    let settings = TransferBenchSettings {
        part_size_bytes: PART_SIZE,
        parts_in_flight: PARTS_IN_FLIGHT,
        byte_budget_bytes: options.budget,
        max_concurrent: usize::try_from(transfers)?.div_ceil(fleet.replicas),
        // High enough that request pacing does not hide the engine's limits.
        download_requests_per_second: 1000,
    };
    let mut rig = TransferRig::start_fleet(daemon, settings, fleet).await?;
    let meetings: Vec<_> = (0..transfers)
        .map(|_| rig.recording(options.size))
        .collect();
    let pids = rig.pids();
    let cpu_of = |pids: &[u32]| -> anyhow::Result<f64> {
        pids.iter().map(|&pid| process_cpu_seconds(pid)).sum()
    };
    let cpu_before = cpu_of(&pids)?;
    let sent_at = now_unix_millis();
    rig.queue_all(&meetings).await?;
    let finished = rig.wait_all_final(LEVEL_TIMEOUT).await?;
    let cpu = cpu_of(&pids)? - cpu_before;
    let peak_rss = pids
        .iter()
        .map(|&pid| peak_rss_bytes(pid))
        .collect::<anyhow::Result<Vec<_>>>()?
        .into_iter()
        .max()
        .unwrap_or(0);
    check_completed(&finished.jobs, &rig.s3, options.size)?;
    anyhow::ensure!(
        finished.jobs.len() as u64 == transfers,
        "{} jobs for {transfers} webhooks",
        finished.jobs.len()
    );
    let mut metrics = scrape(rig.scene.daemon.http_addr).await?;
    for replica in &rig.other_replicas {
        metrics.push_str(&scrape(replica.http_addr).await?);
    }
    let part_p99_s = histogram_quantile(&metrics, "ferry_part_upload_seconds", 0.99)
        .context("the daemon reported no part uploads")?;
    let mut completions: Vec<f64> = finished
        .jobs
        .iter()
        .map(|job| finish_unix_millis(job).map(|at| (at - sent_at) as f64 / 1000.0))
        .collect::<anyhow::Result<_>>()?;
    completions.sort_by(f64::total_cmp);
    let last = completions.last().copied().unwrap_or(0.0);
    let total = transfers * options.size;
    drop(rig);
    Ok(Level {
        transfers,
        throughput_mib_s: mib_per_second(total, Duration::from_secs_f64(last.max(0.001))),
        cpu_s_per_gib: cpu * GIB as f64 / total as f64,
        peak_rss_mib: peak_rss as f64 / MIB as f64,
        part_p99_s,
        completion_p50_s: percentile(&completions, 0.50),
        completion_p99_s: percentile(&completions, 0.99),
    })
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

async fn scrape(addr: std::net::SocketAddr) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: ferry\r\nConnection: close\r\n\r\n")
        .await?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await?;
    let body = text
        .find("\r\n\r\n")
        .context("a truncated /metrics answer")?;
    Ok(text[body + 4..].to_string())
}

/// A quantile of an unlabelled Prometheus histogram, interpolated inside
/// its bucket as PromQL's `histogram_quantile` does. A page that holds the
/// histogram several times (several replicas' pages) counts their sum.
fn histogram_quantile(page: &str, name: &str, q: f64) -> Option<f64> {
    let prefix = format!("{name}_bucket{{le=\"");
    let mut buckets: Vec<(f64, f64)> = page
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&prefix)?;
            let (le, value) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, value.trim().parse().ok()?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets.dedup_by(|later, earlier| {
        let same = later.0 == earlier.0;
        if same {
            earlier.1 += later.1;
        }
        same
    });
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(le, count) in &buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(lower.0);
            }
            let share = if count > lower.1 {
                (rank - lower.1) / (count - lower.1)
            } else {
                1.0
            };
            return Some(lower.0 + (le - lower.0) * share);
        }
        lower = (le, count);
    }
    None
}

fn write_csv(path: &Path, levels: &[Level]) -> anyhow::Result<()> {
    let mut text = String::from(
        "transfers,throughput_mib_per_s,cpu_s_per_gib,peak_rss_mib,part_upload_p99_s,\
         webhook_to_completion_p50_s,webhook_to_completion_p99_s\n",
    );
    for l in levels {
        text.push_str(&format!(
            "{},{:.1},{:.3},{:.1},{:.4},{:.3},{:.3}\n",
            l.transfers,
            l.throughput_mib_s,
            l.cpu_s_per_gib,
            l.peak_rss_mib,
            l.part_p99_s,
            l.completion_p50_s,
            l.completion_p99_s
        ));
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Throughput and peak RSS against concurrency, side by side.
/// The RSS chart also draws the byte budget plus 64 MiB, the memory bound.
fn plot(path: &Path, levels: &[Level], title: &str, budget: u64) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (1200, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (top, body) = root.split_vertically(40);
    top.draw(&Text::new(
        title.split(" (").next().unwrap_or(title).to_string(),
        (10, 12),
        ("sans-serif", 16),
    ))
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (left, right) = body.split_horizontally(600);
    let max_x = levels.iter().map(|l| l.transfers).max().unwrap_or(1) as f64;
    let series = [
        (
            left,
            "throughput (MiB/s)",
            levels
                .iter()
                .map(|l| (l.transfers as f64, l.throughput_mib_s))
                .collect::<Vec<_>>(),
            BLUE,
        ),
        (
            right,
            "daemon peak RSS (MiB)",
            levels
                .iter()
                .map(|l| (l.transfers as f64, l.peak_rss_mib))
                .collect::<Vec<_>>(),
            RED,
        ),
    ];
    let bound = (budget + 64 * MIB) as f64 / MIB as f64;
    for (area, label, points, color) in series {
        let is_memory = color == RED;
        let top = points.iter().map(|p| p.1).fold(1.0, f64::max);
        let max_y = if is_memory { top.max(bound) } else { top } * 1.15;
        let mut chart = ChartBuilder::on(&area)
            .caption(label, ("sans-serif", 18))
            .margin(16)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d((0.5f64..max_x * 1.5).log_scale(), 0f64..max_y)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .x_desc("simultaneous transfers")
            .y_desc(label)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if is_memory {
            chart
                .draw_series(LineSeries::new(
                    [(0.5, bound), (max_x * 1.5, bound)],
                    BLACK.mix(0.5).stroke_width(1),
                ))
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .label("byte budget + 64 MiB")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.5)));
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK.mix(0.3))
                .draw()
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_flags_parse() {
        assert_eq!(parse_size("256MiB").unwrap(), 256 * MIB);
        assert_eq!(parse_size("1GiB").unwrap(), GIB);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("12XB").is_err());
        assert!(parse_size("0MiB").is_err());
        let args: Vec<String> = ["--transfers", "1,8", "--size", "64MiB"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let options = parse_options(&args).unwrap();
        assert_eq!(options.levels, vec![1, 8]);
        assert_eq!(options.size, 64 * MIB);
        assert!(parse_options(&["--transfers".into(), "0".into()]).is_err());
        let fleet: Vec<String> = ["--store", "postgres", "--replicas", "3"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let options = parse_options(&fleet).unwrap();
        assert_eq!((options.store, options.replicas), (StoreKind::Postgres, 3));
        let error = parse_options(&["--replicas".into(), "2".into()])
            .err()
            .expect("two replicas on SQLite are refused");
        assert!(error.to_string().contains("--store postgres"), "{error}");
    }

    #[test]
    fn quantiles_interpolate_inside_buckets() {
        let page = "x_bucket{le=\"0.1\"} 50\nx_bucket{le=\"0.2\"} 100\nx_bucket{le=\"+Inf\"} 100\n";
        assert_eq!(histogram_quantile(page, "x", 0.5), Some(0.1));
        let p99 = histogram_quantile(page, "x", 0.99).unwrap();
        assert!((p99 - 0.198).abs() < 1e-9, "{p99}");
        assert_eq!(histogram_quantile("", "x", 0.5), None);
        let two_replicas = format!("{page}{page}");
        assert_eq!(histogram_quantile(&two_replicas, "x", 0.5), Some(0.1));
        let skewed = format!(
            "{page}x_bucket{{le=\"0.1\"}} 0\nx_bucket{{le=\"0.2\"}} 100\nx_bucket{{le=\"+Inf\"}} 100\n"
        );
        // 50 of 200 up to 0.1, 150 more up to 0.2: the 100th is a third in.
        let median = histogram_quantile(&skewed, "x", 0.5).unwrap();
        assert!((median - (0.1 + 0.1 / 3.0)).abs() < 1e-9, "{median}");
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.5), 2.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.99), 4.0);
    }
}
