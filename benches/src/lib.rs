//! Helpers shared by Ferry's bench binaries: timing and a plain table.

use std::time::Duration;

/// Prints rows of (figure, value, target) as an aligned table.
pub fn print_table(title: &str, rows: &[(String, String, String)]) {
    let headers = ("figure", "measured", "target");
    let w0 = rows
        .iter()
        .map(|r| r.0.len())
        .chain([headers.0.len()])
        .max()
        .unwrap_or(0);
    let w1 = rows
        .iter()
        .map(|r| r.1.len())
        .chain([headers.1.len()])
        .max()
        .unwrap_or(0);
    println!("\n{title}");
    println!("{:<w0$}  {:>w1$}  {}", headers.0, headers.1, headers.2);
    for (figure, measured, target) in rows {
        println!("{figure:<w0$}  {measured:>w1$}  {target}");
    }
}

pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// User plus system CPU seconds a process has used so far (Linux /proc).
pub fn process_cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line, in clock ticks.
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i)
            .ok_or_else(|| anyhow::anyhow!("/proc/{pid}/stat is too short"))?
            .parse::<f64>()?)
    };
    // after_name starts at field 3 (state), so utime (14) is index 11.
    let clock_ticks_per_second = 100.0;
    Ok((ticks(11)? + ticks(12)?) / clock_ticks_per_second)
}
