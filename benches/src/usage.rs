//! What a process costs, read from Linux's /proc: CPU seconds and peak
//! resident set size, for the daemon (alive, read before and after a phase)
//! and for a child run to its end (another tool measured the same way).

use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::Context;

/// How often [`run_measured`] looks at a running child.
const CHILD_POLL_INTERVAL: Duration = Duration::from_millis(5);

/// The fields of /proc/<pid>/stat after the parenthesised command name
/// (which may itself hold spaces and parentheses): field 3, the state,
/// comes first.
fn stat_fields(pid: u32) -> anyhow::Result<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat"))?;
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    Ok(after_name.split_whitespace().map(str::to_string).collect())
}

/// User plus system CPU seconds a process has used so far (Linux /proc).
pub fn process_cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    cpu_seconds_of(&stat_fields(pid)?, pid)
}

fn cpu_seconds_of(fields: &[String], pid: u32) -> anyhow::Result<f64> {
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i)
            .ok_or_else(|| anyhow::anyhow!("/proc/{pid}/stat is too short"))?
            .parse::<f64>()?)
    };
    // utime and stime are fields 14 and 15 of the line, in clock ticks;
    // the fields here start at field 3, so utime is index 11.
    let clock_ticks_per_second = 100.0;
    Ok((ticks(11)? + ticks(12)?) / clock_ticks_per_second)
}

/// CPU seconds of a process and of all its children, those it has reaped
/// and those alive (one level down, as PostgreSQL's postmaster and its
/// backends are), so far.
pub fn process_tree_cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let fields = stat_fields(pid)?;
    let reaped = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i)
            .with_context(|| format!("/proc/{pid}/stat is too short"))?
            .parse::<f64>()?
            / 100.0)
    };
    // cutime and cstime are fields 16 and 17: indexes 13 and 14 here.
    let mut total = cpu_seconds_of(&fields, pid)? + reaped(13)? + reaped(14)?;
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // A child may exit between the listing and the read: skip it.
        let Ok(child_fields) = stat_fields(child) else {
            continue;
        };
        // The parent's pid is field 4: index 1 here.
        if child_fields.get(1).map(String::as_str) == Some(pid.to_string().as_str()) {
            total += cpu_seconds_of(&child_fields, child)?;
        }
    }
    Ok(total)
}

/// The most resident memory a live process has had so far (VmHWM), in bytes.
pub fn peak_rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().strip_suffix("kB"))
        .and_then(|value| value.trim().parse::<u64>().ok())
        .with_context(|| format!("/proc/{pid}/status has no VmHWM"))?;
    Ok(kib * 1024)
}

/// A child process run to its end.
#[derive(Debug)]
pub struct ChildUsage {
    pub status: ExitStatus,
    /// Spawn to exit.
    pub elapsed: Duration,
    /// User plus system CPU seconds of all its threads.
    pub cpu_seconds: f64,
    pub peak_rss_bytes: u64,
}

/// Runs `command` to its end and reads what it cost, as [`process_cpu_seconds`]
/// and [`peak_rss_bytes`] read the daemon, so both are measured alike.
///
/// The figures are read from /proc while the child lives: its VmHWM every
/// few milliseconds (a high-water mark, so no peak between two looks is
/// missed), and its CPU time once it has exited but is not yet reaped. A
/// zombie keeps its whole thread group's CPU times in /proc/<pid>/stat until
/// `wait` reaps it; its memory figures are gone by then, which is why the
/// peak is sampled while it runs. Only growth in its last few milliseconds
/// could go unseen. This is what `wait4`'s rusage would say, without the
/// unsafe code a direct call needs.
pub fn run_measured(command: &mut Command) -> anyhow::Result<ChildUsage> {
    let started = Instant::now();
    let mut child = command.spawn().context("cannot start the child process")?;
    let pid = child.id();
    let mut peak_rss = 0;
    let cpu_seconds = loop {
        let fields = stat_fields(pid)?;
        if fields.first().map(String::as_str) == Some("Z") {
            break cpu_seconds_of(&fields, pid)?;
        }
        // Between the stat and the status read the child may have exited.
        if let Ok(peak) = peak_rss_bytes(pid) {
            peak_rss = peak_rss.max(peak);
        }
        std::thread::sleep(CHILD_POLL_INTERVAL);
    };
    let elapsed = started.elapsed();
    let status = child.wait()?;
    Ok(ChildUsage {
        status,
        elapsed,
        cpu_seconds,
        peak_rss_bytes: peak_rss,
    })
}
