//! `loadtest compare`: the same load through moirai, HAProxy and straight to
//! the backend, interleaved run by run, with the balancer's CPU time and
//! memory, as a Markdown table, JSON and an SVG chart.
//!
//! Method (docs/BENCHMARKS.md): the backend and this load generator share
//! CPU 0, the balancer under test has CPU 1 alone; moirai runs one worker and
//! HAProxy one thread, both without logs, with 16 KiB buffers, configured
//! from one service description.
//!
//! Starting the systems is `launch.rs`'s (`loadtest soak` starts them the
//! same way); the SVG is `chart.rs`'s. The multiplexed HTTP/2 scenarios
//! (`h2`, `h2-100`) are driven by h2load on CPU 0 instead of the built-in
//! generator (`h2load.rs`), and measured and reported the same way.

use std::io::{self, Write as _};
use std::path::PathBuf;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::chart::{ChartSeries, CURVE_POINTS};
use crate::gen::{Plan, Scenario};
use crate::launch::{launch, moirai_path, CompareError, Launched, Setup, System};
use crate::stats::{self, median, RunResult};

/// What to compare.
#[derive(Debug, Clone)]
pub struct Options {
    pub scenario: Scenario,
    pub systems: Vec<System>,
    pub duration: Duration,
    pub repeat: usize,
    pub connections: usize,
    pub json: Option<PathBuf>,
    pub svg: Option<PathBuf>,
    pub moirai: Option<PathBuf>,
    pub baseline: Option<PathBuf>,
    pub haproxy: PathBuf,
    /// Each balancer capped at this fraction of one CPU.
    pub cpu_quota: Option<f64>,
    /// Open loop at this many requests per second (else closed loop).
    pub rate: Option<f64>,
}

impl Options {
    /// What [`launch`] starts for these options.
    pub(crate) fn setup(&self) -> Setup<'_> {
        Setup {
            scenario: self.scenario,
            systems: &self.systems,
            baseline: self.baseline.as_deref(),
            haproxy: &self.haproxy,
            cpu_quota: self.cpu_quota,
        }
    }
}

/// One system's measurements over the repetitions.
#[derive(Debug, Default)]
struct Series {
    rps: Vec<f64>,
    gbps: Vec<f64>,
    p50: Vec<f64>,
    p90: Vec<f64>,
    p99: Vec<f64>,
    p999: Vec<f64>,
    max: Vec<f64>,
    cpu_us_per_req: Vec<f64>,
    /// The part of it spent in the kernel (syscalls, the network stack).
    kernel_us_per_req: Vec<f64>,
    rss_kib: u64,
    errors: u64,
    latency: Option<Histogram<u64>>,
}

/// Runs the comparison and prints the table; returns the JSON report.
pub fn run(opts: &Options) -> Result<Value, CompareError> {
    if opts.systems.contains(&System::Haproxy) && !opts.haproxy.exists() {
        return Err(CompareError::NoHaproxy(opts.haproxy.clone()));
    }
    check_h2(opts)?;
    let moirai_bin = if opts
        .systems
        .iter()
        .any(|s| matches!(s, System::Moirai | System::MoiraiMetrics))
    {
        Some(moirai_path(opts.moirai.as_deref())?)
    } else {
        None
    };
    let io = |what: &str| {
        let what = what.to_owned();
        move |e| CompareError::Io(what.clone(), e)
    };
    if let Some(q) = opts.cpu_quota {
        // Refuse before anything runs: a capped comparison never runs
        // uncapped.
        crate::cgroup::CpuCap::new(&format!("loadtest-{}-probe", std::process::id()), q)
            .map_err(CompareError::Cgroup)?;
    }
    let Launched {
        dir,
        backend: _backend,
        targets,
        scrapers,
        caps,
    } = launch(&opts.setup(), moirai_bin.as_ref(), 1)?;

    let mut series: Vec<Series> = targets.iter().map(|_| Series::default()).collect();
    for rep in 0..opts.repeat {
        for (k, (sys, addr, pid, _)) in targets.iter().enumerate() {
            let plan = Plan {
                target: *addr,
                scenario: opts.scenario,
                connections: opts.connections,
                duration: opts.duration,
                rate: opts.rate,
                threads: 1,
                progress: false,
            };
            let cpu0 = pid.and_then(stats::cpu_time);
            let r = crate::h2load::run_plan(&plan)
                .map_err(io(&format!("load through {}", sys.name())))?;
            let cpu1 = pid.and_then(stats::cpu_time);
            if opts.scenario.is_h2() && r.error_count() > 0 {
                // Every HTTP/2 request must succeed (h2load's runs fail
                // on their own).
                return Err(CompareError::Io(
                    format!("{} through {}", opts.scenario.name(), sys.name()),
                    io::Error::other(format!("failed requests: {:?}", r.errors)),
                ));
            }
            eprintln!(
                "run {}/{} {:>8}: {:>10.0} req/s  p99 {:>8.0} µs  errors {}",
                rep + 1,
                opts.repeat,
                sys.name(),
                r.rps(),
                r.percentile(99.0),
                r.error_count()
            );
            record(
                &mut series[k],
                &r,
                cpu0.zip(cpu1),
                pid.and_then(stats::rss_kib).map(|(_, hwm)| hwm),
            );
        }
    }
    drop(scrapers);
    drop(targets);
    // The cgroups go once their processes have ended.
    drop(caps);
    let _ = std::fs::remove_dir_all(&dir);

    let report = report(opts, &series);
    print_table(opts, &series);
    if let Some(p) = &opts.svg {
        let names: Vec<String> = opts
            .systems
            .iter()
            .map(|s| format!("{s:?}").to_lowercase())
            .collect();
        crate::chart::write(p, opts.scenario.name(), &names, &series_view(&series)).map_err(
            |e| {
                CompareError::Io(
                    format!("writing {}", p.display()),
                    io::Error::other(e.to_string()),
                )
            },
        )?;
    }
    if let Some(p) = &opts.json {
        std::fs::write(p, serde_json::to_string_pretty(&report).expect("json"))
            .map_err(io("writing the JSON"))?;
    }
    Ok(report)
}

/// What the h2 scenarios need before anything starts: a balancer to
/// speak HTTP/2 (the backend speaks HTTP/1.1 only), and h2load for the
/// multiplexed ones, which run closed-loop only.
fn check_h2(opts: &Options) -> Result<(), CompareError> {
    if !opts.scenario.is_h2() {
        return Ok(());
    }
    if opts.systems.contains(&System::Direct) {
        return Err(CompareError::Unsupported(
            "the h2 scenarios need a balancer in front (the backend speaks HTTP/1.1 only): \
             leave out direct, e.g. --systems moirai,haproxy",
        ));
    }
    if crate::h2load::streams(opts.scenario).is_some() {
        if crate::h2load::path().is_none() {
            return Err(CompareError::Unsupported(
                "h2load is not installed: apt-get install -y nghttp2-client \
                 (or set LOADTEST_H2LOAD to its path)",
            ));
        }
        if opts.rate.is_some() {
            return Err(CompareError::Unsupported(
                "--rate: h2load drives h2 and h2-100 closed-loop only",
            ));
        }
    }
    Ok(())
}

fn record(
    s: &mut Series,
    r: &RunResult,
    cpu: Option<(stats::CpuTime, stats::CpuTime)>,
    rss_peak: Option<u64>,
) {
    s.rps.push(r.rps());
    s.gbps.push(r.gbps());
    s.p50.push(r.percentile(50.0));
    s.p90.push(r.percentile(90.0));
    s.p99.push(r.percentile(99.0));
    s.p999.push(r.percentile(99.9));
    s.max.push(r.latency.max() as f64);
    if let Some((a, b)) = cpu {
        let per = |d: Duration| d.as_secs_f64() * 1e6 / (r.requests.max(1) as f64);
        s.cpu_us_per_req.push(per(b.total.saturating_sub(a.total)));
        s.kernel_us_per_req
            .push(per(b.kernel.saturating_sub(a.kernel)));
    }
    if let Some(k) = rss_peak {
        s.rss_kib = s.rss_kib.max(k);
    }
    s.errors += r.error_count();
    match &mut s.latency {
        Some(h) => h.add(&r.latency).expect("same bounds"),
        None => s.latency = Some(r.latency.clone()),
    }
}

fn series_view(series: &[Series]) -> Vec<ChartSeries> {
    series
        .iter()
        .map(|s| ChartSeries {
            rps: median(&s.rps),
            gbps: median(&s.gbps),
            curve: CURVE_POINTS
                .iter()
                .map(|p| {
                    let v = s
                        .latency
                        .as_ref()
                        .map_or(0, |h| h.value_at_quantile(p / 100.0));
                    (*p, v as f64)
                })
                .collect(),
        })
        .collect()
}

fn report(opts: &Options, series: &[Series]) -> Value {
    let mut systems = serde_json::Map::new();
    let stream = opts.scenario == Scenario::TcpStream;
    for (sys, s) in opts.systems.iter().zip(series) {
        let balancer = *sys != System::Direct;
        systems.insert(
            sys.name().to_owned(),
            json!({
                "rps": s.rps,
                "rps_median": median(&s.rps),
                "p50_us": median(&s.p50),
                "p99_us": median(&s.p99),
                "p999_us": median(&s.p999),
                "cpu_us_per_req": if balancer { json!(median(&s.cpu_us_per_req)) } else { Value::Null },
                "kernel_us_per_req": if balancer { json!(median(&s.kernel_us_per_req)) } else { Value::Null },
                "rss_kib": if balancer { json!(s.rss_kib) } else { Value::Null },
                "errors": s.errors,
                "gbps": if stream { json!(median(&s.gbps)) } else { Value::Null },
            }),
        );
    }
    let pick = |name: &str, key: &str| systems.get(name).and_then(|v| v[key].as_f64());
    let ratio = |key: &str| match (pick("moirai", key), pick("haproxy", key)) {
        (Some(m), Some(h)) if h > 0.0 => json!(m / h),
        _ => Value::Null,
    };
    let ratios = json!({
        "rps": ratio("rps_median"),
        "p99_us": ratio("p99_us"),
        "cpu_us_per_req": ratio("cpu_us_per_req"),
        "rss_kib": ratio("rss_kib"),
    });
    json!({
        "scenario": opts.scenario.name(),
        "duration_s": opts.duration.as_secs_f64(),
        "repeat": opts.repeat,
        "cpu_quota": opts.cpu_quota,
        "rate": opts.rate,
        "systems": systems,
        "ratio_vs_haproxy": ratios,
    })
}

fn range(v: &[f64], digits: usize) -> String {
    if v.is_empty() {
        return "-".to_owned();
    }
    let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    format!("{:.d$} ({:.d$}–{:.d$})", median(v), lo, hi, d = digits)
}

fn print_table(opts: &Options, series: &[Series]) {
    let mut out = io::stdout().lock();
    let stream = opts.scenario == Scenario::TcpStream;
    let streams = crate::h2load::streams(opts.scenario)
        .map(|m| format!(" × {m} streams"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "\n`{}`, {} connections{streams}, {} × {:.0} s per system{}, medians (min–max)\n",
        opts.scenario.name(),
        opts.connections,
        opts.repeat,
        opts.duration.as_secs_f64(),
        opts.cpu_quota
            .map(|q| format!(", each balancer capped at {q} CPU"))
            .unwrap_or_default()
            + &opts
                .rate
                .map(|r| format!(", open loop at {r:.0} req/s"))
                .unwrap_or_default()
    );
    let unit = if stream { "Gbit/s" } else { "req/s" };
    let per = if stream {
        "CPU µs/64 KiB"
    } else {
        "CPU µs/req"
    };
    let _ = writeln!(out, "| system | {unit} | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | {per} | of which kernel | peak RSS KiB | errors |");
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
    // A bulk stream has no per-request latency.
    let lat = |v: &[f64]| if stream { "-".to_owned() } else { range(v, 0) };
    for (sys, s) in opts.systems.iter().zip(series) {
        let balancer = *sys != System::Direct;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            sys.name(),
            if stream {
                range(&s.gbps, 2)
            } else {
                range(&s.rps, 0)
            },
            lat(&s.p50),
            lat(&s.p90),
            lat(&s.p99),
            lat(&s.p999),
            lat(&s.max),
            if balancer {
                range(&s.cpu_us_per_req, 2)
            } else {
                "-".into()
            },
            if balancer {
                range(&s.kernel_us_per_req, 2)
            } else {
                "-".into()
            },
            if balancer {
                s.rss_kib.to_string()
            } else {
                "-".into()
            },
            s.errors
        );
    }
}
