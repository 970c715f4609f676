//! `loadtest soak`: millions of short connections through each balancer,
//! its resident memory sampled as they pass. Memory must follow the
//! connections open, not the connections served: the verdict compares the
//! last sample with the one after the first 200,000 connections (a plateau
//! is within 1.2×).
//!
//! Systems run one after the other (each needs minutes), with the same
//! backend, CPU layout and configuration as `loadtest compare`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::compare::Options;
use crate::gen::{self, Plan, Scenario};
use crate::launch::{self, CompareError, Launched, System};
use crate::stats;

/// The connections after which the reference sample is taken.
pub const WARM: u64 = 200_000;
/// The most the last sample may exceed the reference for a plateau.
pub const PLATEAU: f64 = 1.2;

/// What to soak.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    pub compare: Options,
    /// Connections to drive through each system.
    pub total: u64,
    /// Sample every this many connections.
    pub every: u64,
    /// Workers (moirai) or threads (HAProxy).
    pub workers: usize,
}

/// One system's samples: (connections so far, RSS KiB).
#[derive(Debug, Default, Clone)]
pub struct Samples {
    pub points: Vec<(u64, u64)>,
    pub errors: u64,
}

impl Samples {
    /// The sample at or just after `WARM` connections, and the last one.
    pub fn verdict(&self) -> Option<(u64, u64, f64)> {
        let warm = self.points.iter().find(|(n, _)| *n >= WARM)?.1;
        let last = self.points.last()?.1;
        Some((warm, last, last as f64 / warm.max(1) as f64))
    }
}

/// Runs the soak; returns the report.
pub fn run(opts: &SoakOptions) -> Result<Value, CompareError> {
    let scenario = opts.compare.scenario;
    if !matches!(scenario, Scenario::HttpClose | Scenario::TcpClose) {
        return Err(CompareError::Unsupported(
            "soak drives new connections: --scenario http-close or tcp-close",
        ));
    }
    let moirai_bin = if opts.compare.systems.contains(&System::Moirai) {
        Some(launch::moirai_path(opts.compare.moirai.as_deref())?)
    } else {
        None
    };
    let Launched {
        dir,
        backend: _backend,
        targets,
        ..
    } = launch::launch(&opts.compare.setup(), moirai_bin.as_ref(), opts.workers)?;
    let mut all = Vec::new();
    for (sys, addr, pid, _) in &targets {
        let Some(pid) = *pid else { continue };
        let mut s = Samples::default();
        let mut done = 0u64;
        let mut next = opts.every;
        let start = Instant::now();
        if let Some((rss, _)) = stats::rss_kib(pid) {
            s.points.push((0, rss));
        }
        while done < opts.total {
            let plan = Plan {
                target: *addr,
                scenario,
                connections: opts.compare.connections,
                duration: Duration::from_millis(500),
                rate: None,
                threads: 1,
                progress: false,
            };
            let r = gen::run(&plan).map_err(|e| CompareError::Io("load".into(), e))?;
            done += r.requests;
            s.errors += r.error_count();
            if done >= next || done >= opts.total {
                if let Some((rss, _)) = stats::rss_kib(pid) {
                    s.points.push((done, rss));
                    eprintln!(
                        "{:>8}: {:>9} connections  RSS {:>7} KiB  ({:.0} s)",
                        sys_name(*sys),
                        done,
                        rss,
                        start.elapsed().as_secs_f64()
                    );
                }
                next = (done / opts.every + 1) * opts.every;
            }
        }
        all.push((*sys, s));
    }
    drop(targets);
    let _ = std::fs::remove_dir_all(&dir);
    print(scenario, &all);
    Ok(report(scenario, opts, &all))
}

fn sys_name(s: System) -> &'static str {
    match s {
        System::Moirai => "moirai",
        System::MoiraiMetrics => "moirai-metrics",
        System::Baseline => "baseline",
        System::Haproxy => "haproxy",
        System::Direct => "direct",
    }
}

fn print(scenario: Scenario, all: &[(System, Samples)]) {
    println!(
        "`{}` soak: resident memory (KiB) by connections served",
        scenario.name()
    );
    println!();
    print!("| connections |");
    for (sys, _) in all {
        print!(" {} |", sys_name(*sys));
    }
    println!();
    print!("|---|");
    for _ in all {
        print!("---|");
    }
    println!();
    let rows = all.iter().map(|(_, s)| s.points.len()).max().unwrap_or(0);
    for i in 0..rows {
        let n = all
            .iter()
            .find_map(|(_, s)| s.points.get(i).map(|p| p.0))
            .unwrap_or(0);
        print!("| {n} |");
        for (_, s) in all {
            match s.points.get(i) {
                Some((_, rss)) => print!(" {rss} |"),
                None => print!(" |"),
            }
        }
        println!();
    }
    println!();
    for (sys, s) in all {
        match s.verdict() {
            Some((warm, last, ratio)) => println!(
                "{}: {warm} KiB after {WARM} connections, {last} KiB at the end: {ratio:.2}x ({}), {} errors",
                sys_name(*sys),
                if ratio <= PLATEAU { "plateau" } else { "STILL GROWING" },
                s.errors
            ),
            None => println!("{}: too few connections for a verdict", sys_name(*sys)),
        }
    }
}

fn report(scenario: Scenario, opts: &SoakOptions, all: &[(System, Samples)]) -> Value {
    json!({
        "scenario": scenario.name(),
        "connections": opts.compare.connections,
        "workers": opts.workers,
        "total": opts.total,
        "systems": all.iter().map(|(sys, s)| {
            let v = s.verdict();
            json!({
                "system": sys_name(*sys),
                "samples": s.points.iter().map(|(n, r)| json!({"connections": n, "rss_kib": r})).collect::<Vec<_>>(),
                "errors": s.errors,
                "warm_kib": v.map(|x| x.0),
                "last_kib": v.map(|x| x.1),
                "ratio": v.map(|x| x.2),
                "plateau": v.map(|x| x.2 <= PLATEAU),
            })
        }).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_compares_the_last_sample_with_the_warm_one() {
        let s = Samples {
            points: vec![
                (0, 5000),
                (100_000, 9000),
                (200_000, 10_000),
                (2_000_000, 11_500),
            ],
            errors: 0,
        };
        let (warm, last, ratio) = s.verdict().unwrap();
        assert_eq!((warm, last), (10_000, 11_500));
        assert!(ratio <= PLATEAU);
        let growing = Samples {
            points: vec![(200_000, 10_000), (2_000_000, 36_000)],
            errors: 0,
        };
        assert!(growing.verdict().unwrap().2 > PLATEAU);
        assert!(Samples::default().verdict().is_none());
    }
}
