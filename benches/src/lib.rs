//! Helpers shared by Ferry's bench binaries: a plain table, rates, what a
//! process costs (`usage`), and for the transfer benches the rig around the
//! daemon and the discarding S3 endpoint (`transfer_rig`). The fixtures the
//! benches share with the tests (the daemon as a process, the scene, the S3
//! endpoint) are `ferry-test-support`'s. Nothing here measures by itself:
//! a bench binary decides what is timed.

pub mod aead;
pub mod transfer_rig;
pub mod usage;
pub mod webhook_load;

use std::time::Duration;

use ferry_test_support::replicas::StoreKind;
pub use usage::process_cpu_seconds;

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

/// A bench setting from the environment (`FERRY_BENCH_*`), or `default`.
pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `--NAME VALUE` or `--NAME=VALUE` among the bench's arguments (cargo adds
/// `--bench` to them, which no bench takes as a flag).
pub fn flag(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let prefix = format!("--{name}");
    args.iter()
        .enumerate()
        .find_map(|(i, arg)| match arg.strip_prefix(&prefix) {
            Some("") => args.get(i + 1).cloned(),
            Some(rest) => rest.strip_prefix('=').map(str::to_string),
            None => None,
        })
}

/// The stores `--store sqlite|postgres` names, or both in that order.
pub fn stores_flag() -> anyhow::Result<Vec<StoreKind>> {
    match flag("store") {
        Some(name) => Ok(vec![StoreKind::parse(&name)?]),
        None => Ok(vec![StoreKind::Sqlite, StoreKind::Postgres]),
    }
}

/// Runs a bench's body on a multi-threaded tokio runtime.
pub fn block_on(body: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(body)
}

pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// Prints `rows` under `headers` as an aligned table: the first column
/// left-aligned, the others right-aligned (figures side by side).
pub fn print_columns(title: &str, headers: &[&str], rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..headers.len())
        .map(|column| {
            rows.iter()
                .filter_map(|row| row.get(column))
                .map(String::len)
                .chain([headers[column].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (column, cell) in cells.iter().enumerate() {
            let width = widths.get(column).copied().unwrap_or(0);
            if column == 0 {
                text.push_str(&format!("{cell:<width$}"));
            } else {
                text.push_str(&format!("  {cell:>width$}"));
            }
        }
        println!("{}", text.trim_end());
    };
    println!("\n{title}");
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}
