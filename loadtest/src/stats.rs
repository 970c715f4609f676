//! Statistics: latency histograms and their merging, the summary every
//! report prints, and the balancer's CPU time and memory read from /proc.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Latencies are recorded in microseconds, from 1 µs to 60 s.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

/// What one load run measured.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// Completed requests (or echoes).
    pub requests: u64,
    /// Failures by kind.
    pub errors: BTreeMap<&'static str, u64>,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Latency of each completed request, in µs.
    pub latency: Histogram<u64>,
    /// How long the run lasted.
    pub elapsed: Duration,
}

impl RunResult {
    /// An empty result.
    pub fn new() -> RunResult {
        RunResult {
            requests: 0,
            errors: BTreeMap::new(),
            bytes_in: 0,
            bytes_out: 0,
            latency: new_histogram(),
            elapsed: Duration::ZERO,
        }
    }

    /// Adds another thread's result (same run, same duration).
    pub fn merge(&mut self, other: &RunResult) {
        self.requests += other.requests;
        for (k, v) in &other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.latency.add(&other.latency).expect("same bounds");
        self.elapsed = self.elapsed.max(other.elapsed);
    }

    /// Counts one failure.
    pub fn error(&mut self, kind: &'static str) {
        *self.errors.entry(kind).or_default() += 1;
    }

    /// All failures.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Requests per second.
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Received throughput in Gbit/s.
    pub fn gbps(&self) -> f64 {
        self.bytes_in as f64 * 8.0 / 1e9 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// A latency percentile (0..=100) in µs.
    pub fn percentile(&self, p: f64) -> f64 {
        self.latency.value_at_quantile(p / 100.0) as f64
    }
}

impl Default for RunResult {
    fn default() -> Self {
        RunResult::new()
    }
}

/// Records one latency, measured from when the request was *meant* to be
/// sent. In an open-loop run that is its slot in the fixed schedule, not
/// the moment a connection was free to send it, so time spent queued behind
/// a slow response counts (coordinated omission, as wrk2 corrects it).
pub fn record(h: &mut Histogram<u64>, intended: Instant, done: Instant) {
    let us = done.saturating_duration_since(intended).as_micros().max(1) as u64;
    h.saturating_record(us);
}

/// (utime, stime) of a process, in clock ticks, from the text of
/// `/proc/PID/stat` (the command name may hold spaces and parentheses).
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<(u64, u64)> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: state is field 3; utime and stime are 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime, stime))
}

/// CPU time a process has used, and how much of it in the kernel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuTime {
    pub total: Duration,
    pub kernel: Duration,
}

/// CPU time a process has used.
pub fn cpu_time(pid: u32) -> Option<CpuTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (user, sys) = parse_stat_cpu_ticks(&stat)?;
    let hz = clock_ticks() as f64;
    Some(CpuTime {
        total: Duration::from_secs_f64((user + sys) as f64 / hz),
        kernel: Duration::from_secs_f64(sys as f64 / hz),
    })
}

fn clock_ticks() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(hz)) if hz > 0 => hz as u64,
        _ => 100,
    }
}

/// A `Vm*:` line of `/proc/PID/status`, in KiB.
pub fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Resident anonymous memory now (`RssAnon`), in KiB: what the process
/// allocated, without the file pages of its binary and libraries, which
/// move with readahead rather than with load.
pub fn anon_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kib(&status, "RssAnon")
}

/// Resident memory now (`VmRSS`) and at its peak (`VmHWM`), in KiB.
pub fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some((
        parse_status_kib(&status, "VmRSS")?,
        parse_status_kib(&status, "VmHWM")?,
    ))
}

/// The median of some runs.
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_percentiles_are_those_of_all_samples() {
        let mut a = RunResult::new();
        let mut b = RunResult::new();
        for v in 1..=900u64 {
            a.latency.record(v).unwrap();
        }
        for v in 901..=1000u64 {
            b.latency.record(v * 10).unwrap();
        }
        a.requests = 900;
        b.requests = 100;
        b.error("connect");
        a.merge(&b);
        assert_eq!(a.requests, 1000);
        assert_eq!(a.latency.len(), 1000);
        // p50 comes from the first thread, p99 from the second's tail.
        assert!(
            (a.percentile(50.0) - 500.0).abs() <= 1.0,
            "{}",
            a.percentile(50.0)
        );
        assert!(a.percentile(99.0) >= 9_800.0, "{}", a.percentile(99.0));
        assert_eq!(a.error_count(), 1);
    }

    #[test]
    fn open_loop_latency_counts_time_queued() {
        let mut h = new_histogram();
        let t0 = Instant::now();
        // A request meant for t0, sent late at t0+90ms because every
        // connection was busy, answered 10 ms after sending.
        record(&mut h, t0, t0 + Duration::from_millis(100));
        assert!(
            h.value_at_quantile(1.0) >= 99_000,
            "the 90 ms queued must count"
        );
        // Measuring from the actual send (coordinated omission) would say 10 ms.
        let mut naive = new_histogram();
        record(
            &mut naive,
            t0 + Duration::from_millis(90),
            t0 + Duration::from_millis(100),
        );
        assert!(naive.value_at_quantile(1.0) < 11_000);
    }

    #[test]
    fn cpu_ticks_from_proc_stat() {
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 1000 0 0 0 37 5 0 0 20 0 3 0 100 2000000 500 18446744073709551615";
        assert_eq!(parse_stat_cpu_ticks(stat), Some((37, 5)));
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(parse_stat_cpu_ticks(&own).is_some());
    }

    #[test]
    fn rss_from_proc_status() {
        let status = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(1024));
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(2048));
        assert!(rss_kib(std::process::id()).is_some());
        assert!(anon_kib(std::process::id()).is_some_and(|k| k > 0));
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }
}
