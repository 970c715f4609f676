//! The multiplexed HTTP/2 scenarios (`h2`, `h2-100`) are driven by h2load
//! (nghttp2-client): a C client on nghttp2 and OpenSSL, independent of
//! moirai's codec, that keeps M streams open on each of N TLS connections
//! for a fixed duration. It runs on CPU 0 like the built-in generator
//! (`taskset -c 0`, one thread unless `--threads`), offers only `h2` by
//! ALPN and only TLS_AES_128_GCM_SHA256 (the suite the built-in client
//! offers), and writes every request to a log file, whose latencies fill
//! the same histogram the other scenarios report. Its summary must say
//! that every request succeeded with a 2xx status, or the run fails.

use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::gen::{Plan, Scenario};
use crate::stats::RunResult;

/// The only TLS 1.3 suite offered, as the built-in client does.
const SUITE: &str = "TLS_AES_128_GCM_SHA256";

/// Streams kept open per connection by `scenario`, if h2load drives it.
pub fn streams(scenario: Scenario) -> Option<usize> {
    match scenario {
        Scenario::H2 => Some(10),
        Scenario::H2x100 => Some(100),
        _ => None,
    }
}

/// The h2load binary: `$LOADTEST_H2LOAD`, else `h2load` on the PATH.
pub fn path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LOADTEST_H2LOAD") {
        return Some(PathBuf::from(p));
    }
    let dirs = std::env::var_os("PATH")?;
    std::env::split_paths(&dirs)
        .map(|d| d.join("h2load"))
        .find(|p| p.is_file())
}

/// The arguments of one run against `plan.target`, its log at `log`.
pub fn args(plan: &Plan, streams: usize, log: &Path) -> Vec<String> {
    let clients = plan.connections.max(1);
    vec![
        "-c".into(),
        clients.to_string(),
        "-m".into(),
        streams.to_string(),
        "-t".into(),
        plan.threads.clamp(1, clients).to_string(),
        "-D".into(),
        format!("{}ms", plan.duration.as_millis().max(1)),
        "--npn-list=h2".into(),
        format!("--tls13-ciphers={SUITE}"),
        format!("--log-file={}", log.display()),
        format!("https://{}/", plan.target),
    ]
}

/// What h2load's summary says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// "finished in": how long the measurement lasted.
    pub finished: Duration,
    /// Its requests per second (completed requests over the duration).
    pub rps: f64,
    /// "requests:": total, started, done, succeeded, failed, errored,
    /// timeout.
    pub total: u64,
    pub started: u64,
    pub done: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub errored: u64,
    pub timeout: u64,
    /// "status codes:": 2xx, 3xx, 4xx, 5xx.
    pub status: [u64; 4],
    /// "traffic:": bytes received, all told.
    pub traffic: u64,
    /// "Application protocol:", as ALPN chose it.
    pub protocol: Option<String>,
}

impl Summary {
    /// Why the run cannot count, if it cannot: not h2, a request that
    /// failed, or a status other than 2xx.
    pub fn problem(&self) -> Option<String> {
        if self.protocol.as_deref() != Some("h2") {
            return Some(format!(
                "h2load spoke {} instead of h2 (ALPN)",
                self.protocol.as_deref().unwrap_or("nothing")
            ));
        }
        let non_2xx = self.status[1] + self.status[2] + self.status[3];
        if self.failed + self.errored + self.timeout > 0 || non_2xx > 0 {
            return Some(format!(
                "h2load: {} failed, {} errored, {} timed out, {} 3xx, {} 4xx, {} 5xx of {} done",
                self.failed,
                self.errored,
                self.timeout,
                self.status[1],
                self.status[2],
                self.status[3],
                self.done
            ));
        }
        if self.done == 0 {
            return Some("h2load completed no request".into());
        }
        if self.succeeded != self.done || self.status[0] != self.done {
            return Some(format!(
                "h2load: {} done but {} succeeded and {} 2xx",
                self.done, self.succeeded, self.status[0]
            ));
        }
        None
    }
}

/// h2load's durations: `1.23s`, `45.67ms`, `890us`.
fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else {
        return None;
    };
    let v: f64 = num.trim().parse().ok()?;
    (v.is_finite() && v >= 0.0).then(|| Duration::from_secs_f64(v * scale))
}

/// `"56409 total, 56509 started, ..."` as (label, count) pairs.
fn counts(s: &str) -> impl Iterator<Item = (&str, u64)> {
    s.split(',').filter_map(|item| {
        let (n, label) = item.trim().split_once(' ')?;
        Some((label.trim(), n.parse().ok()?))
    })
}

/// Reads h2load's standard output.
pub fn parse_output(text: &str) -> Result<Summary, String> {
    let mut s = Summary::default();
    let (mut finished, mut requests, mut statuses) = (false, false, false);
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("finished in ") {
            let mut parts = rest.split(',');
            s.finished = parts
                .next()
                .and_then(parse_duration)
                .ok_or_else(|| format!("h2load: unreadable {line:?}"))?;
            s.rps = parts
                .next()
                .and_then(|p| p.trim().strip_suffix(" req/s"))
                .and_then(|p| p.trim().parse().ok())
                .ok_or_else(|| format!("h2load: unreadable {line:?}"))?;
            finished = true;
        } else if let Some(rest) = line.strip_prefix("requests: ") {
            for (label, n) in counts(rest) {
                match label {
                    "total" => s.total = n,
                    "started" => s.started = n,
                    "done" => s.done = n,
                    "succeeded" => s.succeeded = n,
                    "failed" => s.failed = n,
                    "errored" => s.errored = n,
                    "timeout" => s.timeout = n,
                    _ => {}
                }
            }
            requests = true;
        } else if let Some(rest) = line.strip_prefix("status codes: ") {
            for (label, n) in counts(rest) {
                match label {
                    "2xx" => s.status[0] = n,
                    "3xx" => s.status[1] = n,
                    "4xx" => s.status[2] = n,
                    "5xx" => s.status[3] = n,
                    _ => {}
                }
            }
            statuses = true;
        } else if let Some(rest) = line.strip_prefix("traffic: ") {
            // "9.15MB (9590020) total, ..."
            s.traffic = rest
                .split_once('(')
                .and_then(|(_, r)| r.split_once(')'))
                .and_then(|(n, _)| n.parse().ok())
                .unwrap_or(0);
        } else if let Some(rest) = line.strip_prefix("Application protocol:") {
            s.protocol = Some(rest.trim().to_owned());
        }
    }
    if !(finished && requests && statuses) {
        return Err(format!(
            "h2load printed no summary (finished/requests/status codes): {}",
            tail(text)
        ));
    }
    Ok(s)
}

/// What the per-request log (`--log-file`) holds: one line per request,
/// start time (µs since the epoch), status, µs to the end of the
/// response. Every latency goes into `latency`; returns (requests, those
/// without a 2xx status).
pub fn parse_log(text: &str, latency: &mut Histogram<u64>) -> Result<(u64, u64), String> {
    let (mut n, mut bad) = (0u64, 0u64);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut f = line.split('\t');
        let (Some(_start), Some(status), Some(us)) = (f.next(), f.next(), f.next()) else {
            return Err(format!("h2load log: unreadable line {line:?}"));
        };
        let status: i64 = status
            .trim()
            .parse()
            .map_err(|_| format!("h2load log: unreadable status in {line:?}"))?;
        let us: u64 = us
            .trim()
            .parse()
            .map_err(|_| format!("h2load log: unreadable latency in {line:?}"))?;
        if !(200..300).contains(&status) {
            bad += 1;
        }
        latency.saturating_record(us.max(1));
        n += 1;
    }
    Ok((n, bad))
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join(" / ")
}

/// One run of h2load as `plan` says, on CPU 0, bounded by the plan's
/// duration and 30 s more (then killed).
pub fn run(plan: &Plan) -> io::Result<RunResult> {
    let streams = streams(plan.scenario)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an h2load scenario"))?;
    if plan.rate.is_some() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "--rate: h2load drives h2 and h2-100 closed-loop only",
        ));
    }
    let bin = path().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "h2load is not installed: apt-get install -y nghttp2-client",
        )
    })?;
    use std::sync::atomic::{AtomicU64, Ordering};
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let log = std::env::temp_dir().join(format!(
        "loadtest-h2load-{}-{}.tsv",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    let mut child = crate::affinity::pinned(&bin, 0)
        .args(args(plan, streams, &log))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("starting {}: {e}", bin.display())))?;
    let reader = |r: Option<Box<dyn io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let _ = r.read_to_string(&mut s);
            }
            s
        })
    };
    let out = reader(child.stdout.take().map(|s| Box::new(s) as _));
    let err = reader(child.stderr.take().map(|s| Box::new(s) as _));
    let deadline = Instant::now() + plan.duration + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_file(&log);
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "h2load ran 30 s past its duration and was killed",
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let log_text = std::fs::read_to_string(&log);
    let _ = std::fs::remove_file(&log);
    if !status.success() {
        return Err(io::Error::other(format!(
            "h2load exited with {status}: {}{}",
            tail(&stderr),
            tail(&stdout)
        )));
    }
    let summary = parse_output(&stdout).map_err(io::Error::other)?;
    if let Some(p) = summary.problem() {
        return Err(io::Error::other(p));
    }
    let mut r = RunResult::new();
    let log_text = log_text.map_err(|e| io::Error::new(e.kind(), format!("h2load's log: {e}")))?;
    let (logged, bad) = parse_log(&log_text, &mut r.latency).map_err(io::Error::other)?;
    if bad > 0 {
        return Err(io::Error::other(format!(
            "h2load's log: {bad} of {logged} requests without a 2xx status"
        )));
    }
    r.requests = summary.done;
    // h2load's own rate: completed requests over the configured duration.
    r.elapsed = if summary.rps > 0.0 {
        Duration::from_secs_f64(summary.done as f64 / summary.rps)
    } else {
        summary.finished
    };
    r.bytes_in = summary.traffic;
    Ok(r)
}

/// Runs `plan`: with h2load if its scenario is one of h2load's, else with
/// our own generator.
pub fn run_plan(plan: &Plan) -> io::Result<RunResult> {
    if streams(plan.scenario).is_some() {
        run(plan)
    } else {
        crate::gen::run(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// h2load 1.52's output of a timing-based run, as it prints it.
    const OUTPUT: &str = "starting benchmark...
spawning thread #0: 10 total client(s). Timing-based test with 0s of warm-up time and 2s of main duration for measurements.
Warm-up started for thread #0.
progress: 10% of clients started
progress: 100% of clients started
Warm-up phase is over for thread #0.
Main benchmark duration is started for thread #0.
TLS Protocol: TLSv1.3
Cipher: TLS_AES_128_GCM_SHA256
Server Temp Key: X25519 253 bits
Application protocol: h2
Main benchmark duration is over for thread #0. Stopping all clients.
Stopped all clients for thread #0

finished in 2.01s, 28204.50 req/s, 4.57MB/s
requests: 56409 total, 56509 started, 56409 done, 56409 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 56409 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 9.15MB (9590020) total, 4.25MB (4456311) headers (space savings 36.80%), 3.44MB (3610176) data
                     min         max         mean         sd        +/- sd
time for request:      322us     11.31ms      3.27ms      1.40ms    73.89%
time for connect:     5.45ms     12.53ms      9.03ms      2.36ms    60.00%
time to 1st byte:    14.09ms     24.15ms     22.25ms      3.04ms    90.00%
req/s           :    2774.07     2872.62     2819.87       30.30    70.00%
";

    #[test]
    fn the_summary_is_read() {
        let s = parse_output(OUTPUT).unwrap();
        assert_eq!(s.finished, Duration::from_millis(2010));
        assert_eq!(s.rps, 28204.5);
        assert_eq!(
            (s.total, s.started, s.done, s.succeeded),
            (56409, 56509, 56409, 56409)
        );
        assert_eq!((s.failed, s.errored, s.timeout), (0, 0, 0));
        assert_eq!(s.status, [56409, 0, 0, 0]);
        assert_eq!(s.traffic, 9590020);
        assert_eq!(s.protocol.as_deref(), Some("h2"));
        assert_eq!(s.problem(), None);
    }

    #[test]
    fn failures_other_statuses_and_http1_fail_the_run() {
        let failed = OUTPUT.replace(
            "56409 succeeded, 0 failed, 0 errored",
            "56400 succeeded, 9 failed, 0 errored",
        );
        let p = parse_output(&failed).unwrap().problem().unwrap();
        assert!(p.contains("9 failed"), "{p}");
        let statuses = OUTPUT.replace(
            "56409 2xx, 0 3xx, 0 4xx, 0 5xx",
            "56000 2xx, 0 3xx, 0 4xx, 409 5xx",
        );
        let p = parse_output(&statuses).unwrap().problem().unwrap();
        assert!(p.contains("409 5xx"), "{p}");
        let h1 = OUTPUT.replace("Application protocol: h2", "Application protocol: http/1.1");
        let p = parse_output(&h1).unwrap().problem().unwrap();
        assert!(p.contains("http/1.1 instead of h2"), "{p}");
        let none = OUTPUT.replace("Application protocol: h2\n", "");
        assert!(parse_output(&none).unwrap().problem().is_some());
        let timeouts = OUTPUT.replace("0 errored, 0 timeout", "0 errored, 3 timeout");
        assert!(parse_output(&timeouts).unwrap().problem().is_some());
    }

    #[test]
    fn a_missing_summary_is_an_error() {
        let cut: String = OUTPUT
            .lines()
            .filter(|l| !l.starts_with("status codes"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(parse_output(&cut).is_err());
        assert!(parse_output("").is_err());
        assert!(parse_output(
            "finished in soon, 1 req/s, 0B/s\nrequests: 1 done\nstatus codes: 1 2xx"
        )
        .is_err());
    }

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(parse_duration("5.00s"), Some(Duration::from_secs(5)));
        assert_eq!(
            parse_duration("51.74ms"),
            Some(Duration::from_micros(51_740))
        );
        assert_eq!(parse_duration("890us"), Some(Duration::from_micros(890)));
        assert_eq!(parse_duration("5 minutes"), None);
    }

    #[test]
    fn the_log_fills_the_histogram_and_counts_bad_statuses() {
        let mut h = crate::stats::new_histogram();
        let log = "1796645628595129\t200\t1515\n1796645628595131\t200\t1553\n\
                   1796645628595131\t503\t90\n1796645628595140\t-1\t0\n";
        assert_eq!(parse_log(log, &mut h), Ok((4, 2)));
        assert_eq!(h.len(), 4);
        assert_eq!(h.max(), h.highest_equivalent(1553));
        assert!(parse_log("1\t200\n", &mut h).is_err());
        assert!(parse_log("1\tOK\t5\n", &mut h).is_err());
        assert_eq!(parse_log("", &mut h), Ok((0, 0)));
    }

    #[test]
    fn the_arguments_say_h2_only_one_suite_and_the_duration() {
        let plan = Plan {
            target: "127.0.0.1:8443".parse().unwrap(),
            scenario: Scenario::H2x100,
            connections: 50,
            duration: Duration::from_secs(5),
            rate: None,
            threads: 1,
            progress: false,
        };
        let a = args(&plan, 100, Path::new("/tmp/l.tsv")).join(" ");
        assert_eq!(
            a,
            "-c 50 -m 100 -t 1 -D 5000ms --npn-list=h2 \
             --tls13-ciphers=TLS_AES_128_GCM_SHA256 --log-file=/tmp/l.tsv \
             https://127.0.0.1:8443/"
        );
        assert_eq!(streams(Scenario::H2), Some(10));
        assert_eq!(streams(Scenario::H2x100), Some(100));
        assert_eq!(streams(Scenario::H2Handshake), None);
    }
}
