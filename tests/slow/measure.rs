//! What the slow tests read from outside the node: its memory and open descriptors from /proc,
//! latencies into an hdrhistogram, and sizes from the environment (`SLUICE_SLOW_*`).

use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;

/// A size of the load, from `SLUICE_SLOW_<NAME>` or the default.
pub fn size(name: &str, default: usize) -> usize {
    std::env::var(format!("SLUICE_SLOW_{name}"))
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Open file descriptors of a process.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| dir.count())
        .unwrap_or(0)
}

pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).unwrap()
}

/// `p50/p99/max` in milliseconds.
pub fn summary(histogram: &Histogram<u64>) -> String {
    format!(
        "n={} p50={:.2}ms p99={:.2}ms max={:.2}ms",
        histogram.len(),
        histogram.value_at_quantile(0.5) as f64 / 1000.0,
        histogram.value_at_quantile(0.99) as f64 / 1000.0,
        histogram.max() as f64 / 1000.0
    )
}
