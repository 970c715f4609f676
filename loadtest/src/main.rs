//! `loadtest`: the harness that measures moirai side by side with HAProxy.
//!
//! - `backend`: fast mio backends (http, echo, sink, source).
//! - `run`: load one target, closed or open loop, and report latency
//!   percentiles (hdrhistogram) and throughput.
//! - `compare`: the same load through moirai, HAProxy and directly,
//!   interleaved, with the balancer's CPU time and memory.
//! - `idle`: the memory cost of idle connections (TCP, HTTP/1.1, h2).
//! - `chart`: one SVG of work per CPU-second from several `compare`
//!   reports.
//!
//! Method and figures: docs/BENCHMARKS.md.

mod affinity;
mod backend;
mod cgroup;
mod chaos;
mod chart;
mod compare;
mod gen;
mod h2client;
mod h2load;
mod idle;
mod launch;
mod soak;
mod stats;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;

use crate::gen::{Plan, Scenario};
use crate::launch::System;

#[derive(Parser)]
#[command(
    name = "loadtest",
    version,
    about = "Measure moirai side by side with HAProxy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What a backend does with each connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// A fixed HTTP/1.1 response of --body-size bytes, with keep-alive.
    Http,
    /// Sends back everything it reads.
    Echo,
    /// Reads and discards.
    Sink,
    /// Sends an endless stream.
    Source,
}

/// A duration: bare seconds (`3`), or `10s`, `500ms`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration such as 3, 10s or 500ms");
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num.parse().map_err(|_| bad())?;
    if !(v.is_finite() && v > 0.0) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(v * scale))
}

#[derive(Subcommand)]
enum Command {
    /// A fast backend on mio.
    Backend {
        /// Address to listen on.
        #[arg(long)]
        listen: SocketAddr,
        /// What to do with connections.
        #[arg(long, value_enum)]
        kind: Kind,
        /// Body size of `http` responses.
        #[arg(long, default_value_t = 0)]
        body_size: usize,
        /// The body of `http` responses, instead of `--body-size` bytes
        /// (the quickstart's backends say who they are).
        #[arg(long)]
        body: Option<String>,
        /// Print the PROXY v2 header each connection starts with.
        #[arg(long)]
        report_proxy: bool,
    },
    /// Load one target and report throughput and latency.
    Run {
        /// Where to send the load.
        #[arg(long)]
        target: SocketAddr,
        /// What each request does.
        #[arg(long, value_enum)]
        scenario: Scenario,
        /// Concurrent connections.
        #[arg(long, default_value_t = 50)]
        connections: usize,
        /// How long (`10`, `10s`, `500ms`).
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        duration: Duration,
        /// Open loop at this many requests per second (latency counted from
        /// when each request was due); closed loop without it.
        #[arg(long)]
        rate: Option<f64>,
        /// Load generator threads.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Also write the result as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Compare moirai, HAProxy and direct, interleaved.
    Compare {
        /// What each request does.
        #[arg(long, value_enum)]
        scenario: Scenario,
        /// Systems, in the order they take turns.
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "moirai,haproxy,direct"
        )]
        systems: Vec<System>,
        /// Length of each run (`10`, `10s`, `500ms`).
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        duration: Duration,
        /// Runs per system.
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// Concurrent connections.
        #[arg(long, default_value_t = 50)]
        connections: usize,
        /// Write the report as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Draw the latency curves and throughput as SVG.
        #[arg(long)]
        svg: Option<PathBuf>,
        /// The moirai binary [default: next to loadtest].
        #[arg(long)]
        moirai: Option<PathBuf>,
        /// Another moirai binary, run as the `baseline` system.
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// The HAProxy binary.
        #[arg(long, default_value = "/usr/sbin/haproxy")]
        haproxy: PathBuf,
        /// Cap each balancer at this fraction of one CPU (its own cgroup:
        /// v2 cpu.max, or v1 cpu.cfs_quota_us), so req/s compares
        /// balancers at equal CPU. Needs a writable cpu cgroup (root).
        #[arg(long)]
        cpu_quota: Option<f64>,
        /// Open loop: requests due at this rate (req/s), latency counted
        /// from when each was due, for tail latency below capacity.
        #[arg(long)]
        rate: Option<f64>,
    },
    /// Everything at once: load on five services while backends die,
    /// DNS flaps, the metadata changes and the balancer is refreshed and
    /// upgraded; every failure classified (docs/RELIABILITY.md).
    Chaos {
        /// How long the load and the chaos last (`60`, `3m` is not
        /// accepted: seconds, or `180s`).
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        duration: Duration,
        /// Seeds the schedule of faults and the clients' choices.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// `moirai`, `haproxy` or both (one after the other, same seed).
        #[arg(long, value_delimiter = ',', default_value = "moirai")]
        systems: Vec<String>,
        /// Write the report as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Keep the run's files (logs, configs) in this directory.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Multiplies every client class's rate.
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// The moirai binary [default: next to loadtest].
        #[arg(long)]
        moirai: Option<PathBuf>,
        /// The HAProxy binary.
        #[arg(long, default_value = "/usr/sbin/haproxy")]
        haproxy: PathBuf,
    },
    /// Millions of short connections through each balancer, its memory
    /// sampled as they pass (does it plateau?).
    Soak {
        /// `http-close` or `tcp-close`.
        #[arg(long, value_enum)]
        scenario: Scenario,
        /// Systems, one after the other.
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "moirai,haproxy"
        )]
        systems: Vec<System>,
        /// Connections through each system.
        #[arg(long, default_value_t = 2_000_000)]
        total: u64,
        /// Sample the memory every this many connections.
        #[arg(long, default_value_t = 100_000)]
        every: u64,
        /// Concurrent connections.
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Workers (moirai) or threads (HAProxy).
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Write the report as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        /// The moirai binary [default: next to loadtest].
        #[arg(long)]
        moirai: Option<PathBuf>,
        /// The HAProxy binary.
        #[arg(long, default_value = "/usr/sbin/haproxy")]
        haproxy: PathBuf,
    },
    /// Hold idle keep-alive connections; report the balancer's memory.
    Idle {
        /// The balancer's address (or start balancers with --systems).
        #[arg(long, required_unless_present = "systems")]
        target: Option<SocketAddr>,
        /// How many connections.
        #[arg(long)]
        connections: usize,
        /// The balancer's pid [default: whoever listens on the port].
        #[arg(long, conflicts_with = "systems")]
        pid: Option<u32>,
        /// Plain TCP connections instead of one HTTP request each.
        #[arg(long, conflicts_with_all = ["h2", "tls"])]
        tcp: bool,
        /// TLS connections (ALPN http/1.1), one HTTP/1.1 request each
        /// (the target is an `https-http` service).
        #[arg(long, conflicts_with = "h2")]
        tls: bool,
        /// TLS connections with ALPN h2, one HTTP/2 request each (the
        /// target is an `https-http` service).
        #[arg(long)]
        h2: bool,
        /// Start these balancers as `compare` does (one worker or thread,
        /// CPU 1; the service --tcp, --tls, --h2 or plain HTTP needs) and
        /// measure each in turn, instead of --target: moirai, haproxy.
        #[arg(long, value_enum, value_delimiter = ',', conflicts_with = "target")]
        systems: Option<Vec<System>>,
        /// The moirai binary, with --systems [default: next to loadtest].
        #[arg(long)]
        moirai: Option<PathBuf>,
        /// The HAProxy binary, with --systems.
        #[arg(long, default_value = "/usr/sbin/haproxy")]
        haproxy: PathBuf,
        /// Write the figures as JSON too.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Draw each system's work per CPU-second (req/s per CPU, Gbit/s per
    /// CPU for tcp-stream) from `compare --json` reports, one panel per
    /// report.
    Chart {
        /// Where to write the SVG.
        #[arg(long)]
        svg: PathBuf,
        /// The chart's title.
        #[arg(long, default_value = "Work per CPU-second")]
        title: String,
        /// `compare --json` reports, one panel each, in this order.
        #[arg(required = true)]
        reports: Vec<PathBuf>,
    },
    /// The chaos soak's backend: simple, stateless, killed and restarted
    /// by the soak (which starts it; not for use by hand).
    #[command(hide = true)]
    ChaosBackend {
        /// Address to listen on.
        #[arg(long)]
        listen: SocketAddr,
        /// Named in every answer.
        #[arg(long)]
        name: String,
        /// What to do with connections.
        #[arg(long, value_enum)]
        kind: chaos::backend::BackendKind,
        /// `GET /health` answers 503 while this file exists.
        #[arg(long)]
        health_file: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Backend {
            listen,
            kind,
            body_size,
            body,
            report_proxy,
        } => match backend::run(listen, kind, body_size, body, report_proxy) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&format!("backend: {e}")),
        },
        Command::ChaosBackend {
            listen,
            name,
            kind,
            health_file,
        } => match chaos::backend::run(listen, name, kind, health_file) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&format!("chaos-backend: {e}")),
        },
        Command::Run {
            target,
            scenario,
            connections,
            duration,
            rate,
            threads,
            json,
        } => {
            let plan = Plan {
                target,
                scenario,
                connections,
                duration,
                rate,
                threads,
                progress: true,
            };
            let r = match crate::h2load::run_plan(&plan) {
                Ok(r) => r,
                Err(e) => return fail(&format!("run: {e}")),
            };
            println!("| scenario | req/s | Gbit/s in | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | errors | bytes in | bytes out |");
            println!("|---|---|---|---|---|---|---|---|---|---|---|");
            let errors = if r.errors.is_empty() {
                "0".to_owned()
            } else {
                r.errors
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            println!(
                "| {} | {:.0} | {:.2} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {errors} | {} | {} |",
                scenario.name(),
                r.rps(),
                r.gbps(),
                r.percentile(50.0),
                r.percentile(90.0),
                r.percentile(99.0),
                r.percentile(99.9),
                r.latency.max(),
                r.bytes_in,
                r.bytes_out
            );
            if let Some(path) = json {
                let v = json!({
                    "scenario": scenario.name(),
                    "connections": connections,
                    "duration_s": duration.as_secs_f64(),
                    "rate": rate,
                    "requests": r.requests,
                    "rps": r.rps(),
                    "gbps": r.gbps(),
                    "p50_us": r.percentile(50.0),
                    "p90_us": r.percentile(90.0),
                    "p99_us": r.percentile(99.0),
                    "p999_us": r.percentile(99.9),
                    "max_us": r.latency.max(),
                    "errors": r.errors,
                    "bytes_in": r.bytes_in,
                    "bytes_out": r.bytes_out,
                });
                if let Err(e) =
                    std::fs::write(&path, serde_json::to_string_pretty(&v).expect("json"))
                {
                    return fail(&format!("writing {}: {e}", path.display()));
                }
            }
            ExitCode::SUCCESS
        }
        Command::Compare {
            scenario,
            systems,
            duration,
            repeat,
            connections,
            json,
            svg,
            moirai,
            baseline,
            haproxy,
            cpu_quota,
            rate,
        } => {
            let opts = compare::Options {
                scenario,
                systems,
                duration,
                repeat: repeat.max(1),
                connections,
                json,
                svg,
                moirai,
                baseline,
                haproxy,
                cpu_quota,
                rate,
            };
            match compare::run(&opts) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => fail(&e.to_string()),
            }
        }
        Command::Soak {
            scenario,
            systems,
            total,
            every,
            connections,
            workers,
            json,
            moirai,
            haproxy,
        } => {
            let opts = soak::SoakOptions {
                compare: compare::Options {
                    scenario,
                    systems,
                    duration: std::time::Duration::from_secs(1),
                    repeat: 1,
                    connections,
                    json: None,
                    svg: None,
                    moirai,
                    baseline: None,
                    haproxy,
                    cpu_quota: None,
                    rate: None,
                },
                total,
                every: every.max(1),
                workers: workers.max(1),
            };
            match soak::run(&opts) {
                Ok(report) => {
                    if let Some(p) = json {
                        if let Err(e) =
                            std::fs::write(&p, serde_json::to_string_pretty(&report).expect("json"))
                        {
                            return fail(&format!("writing {}: {e}", p.display()));
                        }
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e.to_string()),
            }
        }
        Command::Chaos {
            duration,
            seed,
            systems,
            json,
            dir,
            scale,
            moirai,
            haproxy,
        } => {
            let mut names = Vec::new();
            for s in &systems {
                match s.as_str() {
                    "moirai" => names.push("moirai"),
                    "haproxy" => names.push("haproxy"),
                    other => {
                        return fail(&format!("--systems: {other:?} is not moirai or haproxy"))
                    }
                }
            }
            let moirai = match moirai {
                Some(p) => p,
                None => match std::env::current_exe() {
                    Ok(exe) => exe.with_file_name("moirai"),
                    Err(e) => return fail(&format!("finding moirai: {e}")),
                },
            };
            if names.contains(&"moirai") && !moirai.exists() {
                return fail(&format!(
                    "no moirai at {}: build it (cargo build -p moirai) or pass --moirai",
                    moirai.display()
                ));
            }
            let opts = chaos::ChaosOptions {
                duration,
                seed,
                systems: names,
                moirai,
                haproxy,
                dir,
                scale,
            };
            match chaos::run(&opts) {
                Ok(report) => {
                    chaos::print(&report);
                    if let Some(p) = json {
                        if let Err(e) =
                            std::fs::write(&p, serde_json::to_string_pretty(&report).expect("json"))
                        {
                            return fail(&format!("writing {}: {e}", p.display()));
                        }
                    }
                    if chaos::passed(&report) {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => fail(&e),
            }
        }
        Command::Chart {
            svg,
            title,
            reports,
        } => match per_cpu_panels(&reports) {
            Ok(panels) => match chart::write_per_cpu(&svg, &title, &panels) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&format!("writing {}: {e}", svg.display())),
            },
            Err(e) => fail(&e),
        },
        Command::Idle {
            target,
            connections,
            pid,
            tcp,
            tls,
            h2,
            systems,
            moirai,
            haproxy,
            json,
        } => {
            let mode = match (tcp, tls, h2) {
                (true, _, _) => idle::Mode::Tcp,
                (_, true, _) => idle::Mode::Tls,
                (_, _, true) => idle::Mode::H2,
                _ => idle::Mode::Http,
            };
            let report = match (systems, target) {
                (Some(systems), _) => {
                    let opts = idle::SystemsOptions {
                        systems,
                        connections,
                        mode,
                        moirai,
                        haproxy,
                    };
                    match idle::run_systems(&opts) {
                        Ok(v) => v,
                        Err(e) => return fail(&format!("idle: {e}")),
                    }
                }
                (None, Some(target)) => {
                    let Some(pid) = pid.or_else(|| idle::listener_pid(target.port())) else {
                        return fail(&format!(
                            "no process found listening on port {}; pass --pid",
                            target.port()
                        ));
                    };
                    let (before, after) = match idle::run(target, connections, mode, pid) {
                        Ok(m) => m,
                        Err(e) => return fail(&format!("idle: {e}")),
                    };
                    println!("| connections | RSS before KiB | RSS after KiB | anonymous before KiB | anonymous after KiB | bytes per idle connection (anonymous) | (RSS) |");
                    println!("|---|---|---|---|---|---|---|");
                    println!(
                        "| {connections} | {}",
                        idle::cells(before, after, connections)
                    );
                    let mut v = idle::figures(before, after, connections);
                    v["target"] = target.to_string().into();
                    v["connections"] = connections.into();
                    v["http"] = (mode != idle::Mode::Tcp).into();
                    v["mode"] = mode.name().into();
                    v
                }
                (None, None) => return fail("idle: give --target or --systems"),
            };
            if let Some(p) = json {
                let text = serde_json::to_string_pretty(&report).expect("json");
                if let Err(e) = std::fs::write(&p, text) {
                    return fail(&format!("writing {}: {e}", p.display()));
                }
            }
            ExitCode::SUCCESS
        }
    }
}

/// The per-CPU panels of `reports`.
fn per_cpu_panels(reports: &[PathBuf]) -> Result<Vec<chart::PerCpu>, String> {
    reports
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
            chart::PerCpu::from_report(&v).ok_or_else(|| {
                format!(
                    "{}: not a compare report with balancers' CPU times",
                    p.display()
                )
            })
        })
        .collect()
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("loadtest: {msg}");
    ExitCode::from(2)
}
