//! `loadtest chaos`: everything at once. moirai (or HAProxy configured as
//! Triton's Moirai configures it) runs five services over real backends
//! while clients load every one of them at fixed rates and a seeded
//! schedule kills backends, flaps DNS, rewrites the metadata, refreshes,
//! upgrades, renews the certificate and takes the syslog receiver away.
//! Every failed request is then classified against the soak's own event
//! log: expected only with evidence, unexpected otherwise.
//!
//! - `world`: the processes around the balancer.
//! - `process`: one child process, and the port and HTTP helpers.
//! - `balancer`: moirai or HAProxy, and how each takes an event.
//! - `clients`: the load, and what each request must get; `misbehave`:
//!   the clients that misbehave beside it.
//! - `events`: the chaos schedule and its log.
//! - `report`: classification, JSON and the table.
//! - `outcome`: what one system's run leaves for the report.
//! - `backend`, `dns`, `haproxy`: the backend process, the flapping DNS
//!   front, HAProxy's configuration and reloads.

pub mod backend;
mod balancer;
mod clients;
pub mod dns;
mod events;
mod h2;
mod haproxy;
mod misbehave;
mod outcome;
mod process;
mod report;
mod rng;
mod spec;
mod world;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use self::balancer::{Balancer, Moirai};
use self::clients::{Shared, Target};
use self::outcome::{Run, Sample};
use self::rng::Rng;
pub use self::spec::ChaosOptions;
use self::world::World;

fn sample(lb: &Balancer, t: f64) -> Sample {
    let mut s = Sample {
        t,
        ..Sample::default()
    };
    for pid in lb.pids() {
        s.rss_kib += crate::stats::rss_kib(pid).map_or(0, |(r, _)| r);
        s.fds += std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
        s.threads += std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|st| {
                st.lines()
                    .find_map(|l| l.strip_prefix("Threads:"))
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0);
        s.cpu_s += crate::stats::cpu_time(pid).map_or(0.0, |c| c.total.as_secs_f64());
    }
    if let Ok((up, open)) = lb.observe() {
        s.up = up;
        s.open = open;
    }
    s
}

/// The default rates, per second, for one client class each.
struct Rates {
    keepalive: f64,
    closing: f64,
    uploads: f64,
    upgrades: f64,
    tls_resume: f64,
    tls_fresh: f64,
    tls_keepalive: f64,
    long_streams: f64,
    short_streams: f64,
    misbehaving: f64,
    /// Batches of one to four HTTP/2 streams.
    h2: f64,
}

impl Rates {
    fn scaled(k: f64) -> Rates {
        Rates {
            keepalive: 40.0 * k,
            closing: 20.0 * k,
            uploads: 8.0 * k,
            upgrades: 1.0 * k,
            tls_resume: 8.0 * k,
            tls_fresh: 4.0 * k,
            tls_keepalive: 15.0 * k,
            long_streams: 0.7 * k,
            short_streams: 10.0 * k,
            misbehaving: 0.5 * k,
            h2: 5.0 * k,
        }
    }
}

/// Starts every client class; returns their threads.
fn start_clients(
    shared: &Arc<Shared>,
    world: &World,
    rng: &mut Rng,
    rates: &Rates,
) -> Vec<std::thread::JoinHandle<()>> {
    let p = &world.ports;
    let at = |port: u16| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let web = Target {
        service: "web",
        addr: at(p.web),
        tls: false,
        pool: &["b2", "b3", "n4"],
    };
    let app = Target {
        service: "app",
        addr: at(p.app),
        tls: true,
        pool: &["a5"],
    };
    let secure = Target {
        service: "secure",
        addr: at(p.secure),
        tls: true,
        pool: &["t6", "t7"],
    };
    let stream = Target {
        service: "stream",
        addr: at(p.stream),
        tls: false,
        pool: &["e8", "e9", "e10"],
    };
    let proxied = Target {
        service: "proxied",
        addr: at(p.proxied),
        tls: false,
        pool: &["p11", "p12"],
    };
    let mut threads = Vec::new();
    let mut spawn = |f: Box<dyn FnOnce() + Send>| threads.push(std::thread::spawn(f));
    // Keep-alive load on two connections per service that has it.
    for _ in 0..2 {
        let (s, t, r) = (shared.clone(), web.clone(), rng.fork());
        let rate = rates.keepalive / 2.0;
        spawn(Box::new(move || {
            clients::requests(s, t, "keep-alive", rate, r, true, true)
        }));
    }
    let (s, t, r, rate) = (shared.clone(), web.clone(), rng.fork(), rates.closing);
    spawn(Box::new(move || {
        clients::requests(s, t, "closing", rate, r, false, true)
    }));
    let (s, t, r, rate) = (shared.clone(), web.clone(), rng.fork(), rates.uploads);
    spawn(Box::new(move || clients::uploads(s, t, "uploads", rate, r)));
    let (s, t, r, rate) = (shared.clone(), web.clone(), rng.fork(), rates.upgrades);
    spawn(Box::new(move || {
        clients::upgrades(s, t, "upgrades", rate, r)
    }));
    let (s, t, r, rate) = (shared.clone(), app.clone(), rng.fork(), rates.tls_resume);
    spawn(Box::new(move || {
        clients::requests(s, t, "tls-resumed", rate, r, false, true)
    }));
    let (s, t, r, rate) = (shared.clone(), app.clone(), rng.fork(), rates.tls_fresh);
    spawn(Box::new(move || {
        clients::requests(s, t, "tls-full", rate, r, false, false)
    }));
    let (s, t, r, rate) = (shared.clone(), app.clone(), rng.fork(), rates.uploads / 2.0);
    spawn(Box::new(move || {
        clients::uploads(s, t, "tls-uploads", rate, r)
    }));
    let (s, t, r, rate) = (
        shared.clone(),
        secure.clone(),
        rng.fork(),
        rates.tls_keepalive,
    );
    spawn(Box::new(move || {
        clients::requests(s, t, "tls-keep-alive", rate, r, true, true)
    }));
    let (s, t, r, rate) = (shared.clone(), secure.clone(), rng.fork(), rates.tls_resume);
    spawn(Box::new(move || {
        clients::requests(s, t, "tls-resumed", rate, r, false, true)
    }));
    let (s, t, r, rate) = (
        shared.clone(),
        stream.clone(),
        rng.fork(),
        rates.long_streams,
    );
    spawn(Box::new(move || {
        clients::streams(s, t, "long", rate, r, true, false)
    }));
    let (s, t, r, rate) = (
        shared.clone(),
        stream.clone(),
        rng.fork(),
        rates.short_streams,
    );
    spawn(Box::new(move || {
        clients::streams(s, t, "short", rate, r, false, false)
    }));
    let (s, t, r, rate) = (
        shared.clone(),
        proxied.clone(),
        rng.fork(),
        rates.short_streams,
    );
    spawn(Box::new(move || {
        clients::streams(s, t, "short", rate, r, false, true)
    }));
    let (s, t, r, rate) = (
        shared.clone(),
        proxied,
        rng.fork(),
        rates.long_streams / 2.0,
    );
    spawn(Box::new(move || {
        clients::streams(s, t, "long", rate, r, true, true)
    }));
    // HTTP/2 clients: h2c (the preface) on `web`, ALPN h2 on `app`.
    let (s, t, r, rate) = (shared.clone(), web.clone(), rng.fork(), rates.h2);
    spawn(Box::new(move || h2::requests(s, t, "h2c", rate, r)));
    let (s, t, r, rate) = (shared.clone(), app.clone(), rng.fork(), rates.h2);
    spawn(Box::new(move || h2::requests(s, t, "h2-tls", rate, r)));
    let (s, r, rate) = (shared.clone(), rng.fork(), rates.misbehaving);
    spawn(Box::new(move || {
        misbehave::misbehaving(s, web, stream, rate, r)
    }));
    threads
}

/// Scrapes the metrics endpoint every second; counts (ok, failed).
fn scraper(shared: Arc<Shared>, port: u16) -> std::thread::JoinHandle<(u64, u64)> {
    std::thread::spawn(move || {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let (mut ok, mut failed) = (0, 0);
        while !shared.stop.load(Ordering::Relaxed) {
            match process::http_get(addr, "/metrics", Duration::from_secs(5)) {
                Ok((200, body)) if !body.is_empty() => ok += 1,
                _ => failed += 1,
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        (ok, failed)
    })
}

/// Runs the soak on each system; returns the report.
pub fn run(opts: &ChaosOptions) -> Result<Value, String> {
    let base = match &opts.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("loadtest-chaos-{}", std::process::id())),
    };
    let _ = std::fs::remove_dir_all(&base);
    let mut runs = Vec::new();
    for system in &opts.systems {
        eprintln!("chaos: {system}, {:?}, seed {}", opts.duration, opts.seed);
        let r = run_one(opts, system, &base.join(system))?;
        runs.push(r);
    }
    let report = report::combine(opts, &runs);
    if opts.dir.is_none() {
        let _ = std::fs::remove_dir_all(&base);
    }
    Ok(report)
}

fn run_one(opts: &ChaosOptions, system: &'static str, dir: &Path) -> Result<Run, String> {
    let is_moirai = system == "moirai";
    let mut world = World::start(dir, is_moirai).map_err(|e| format!("starting the world: {e}"))?;
    let mut lb = if is_moirai {
        Balancer::Moirai(
            Moirai::start(&opts.moirai, &world, dir)
                .map_err(|e| format!("starting moirai: {e}"))?,
        )
    } else {
        Balancer::haproxy(&opts.haproxy, &world, &dir.join("haproxy"))
            .map_err(|e| format!("starting haproxy: {e}"))?
    };
    let mut rng = Rng::new(opts.seed);
    let shared = Shared::new().map_err(|e| format!("tls client: {e}"))?;
    let rates = Rates::scaled(opts.scale);
    // At rest before the load: what the balancer holds with no client.
    let at_start = sample(&lb, 0.0);
    let clients = start_clients(&shared, &world, &mut rng.fork(), &rates);
    let scrape = scraper(shared.clone(), world.ports.metrics);
    let until = shared.t0 + opts.duration;
    let mut chaos = events::Chaos::new(rng.fork(), shared.t0, opts.duration);
    let mut samples = Vec::new();
    let mut next_sample = Instant::now();
    let mut last_line = Instant::now();
    while Instant::now() < until {
        chaos.step(&mut world, &mut lb);
        if Instant::now() >= next_sample {
            samples.push(sample(&lb, shared.now()));
            next_sample += Duration::from_secs(1);
        }
        if last_line.elapsed() >= Duration::from_secs(10) {
            last_line = Instant::now();
            let tally = shared.tally.lock().map(|t| t.clone()).unwrap_or_default();
            let (ok, failed): (u64, u64) = tally
                .values()
                .fold((0, 0), |a, t| (a.0 + t.ok, a.1 + t.failed));
            eprintln!(
                "chaos: {system} {:>5.0}s  ok {ok}  failed {failed}  events {}",
                shared.now(),
                chaos.log.len()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // The load stops; every fault is undone; in-flight work finishes.
    shared.stop.store(true, Ordering::Relaxed);
    chaos.finish(&mut world, &mut lb);
    let duration = shared.now();
    for c in clients {
        let _ = c.join();
    }
    let scrapes = scrape.join().unwrap_or((0, 0));
    // Every client connection must close within its timeouts now.
    let stopped = Instant::now();
    let mut drained_after = None;
    let mut open_at_end = None;
    if is_moirai {
        while stopped.elapsed() < Duration::from_secs(70) {
            let s = sample(&lb, shared.now());
            open_at_end = s.open;
            if s.open == Some(0) {
                drained_after = Some(stopped.elapsed().as_secs_f64());
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    // At rest again: idle backend connections expire after 4 s (moirai's
    // pool; HAProxy closes its own); what is left beyond the start is held
    // by nothing the load still needs.
    std::thread::sleep(Duration::from_secs(6));
    let at_end = sample(&lb, shared.now());
    let (log, errors_log, status_at_end, access_log) = match &lb {
        Balancer::Moirai(m) => (
            std::fs::read_to_string(&m.log).unwrap_or_default(),
            std::fs::read_to_string(&m.errors).unwrap_or_default(),
            m.status().ok(),
            Some(m.access.clone()),
        ),
        Balancer::Haproxy(_) => (String::new(), String::new(), None, None),
    };
    let ports = world
        .services(false)
        .iter()
        .map(|s| (s.label, s.listen))
        .collect();
    let mut members: HashMap<&'static str, Vec<String>> = HashMap::new();
    for b in &world.backends {
        members.entry(b.service).or_default().push(b.name.clone());
    }
    let run = Run {
        system,
        duration,
        tally: shared.tally.lock().map(|t| t.clone()).unwrap_or_default(),
        failures: shared
            .failures
            .lock()
            .map(|f| f.clone())
            .unwrap_or_default(),
        events: chaos.log.clone(),
        samples,
        scrapes,
        syslog_lines: world.syslog.lines.load(Ordering::Relaxed),
        drained_after,
        open_at_end,
        log,
        errors_log,
        status_at_end,
        ports,
        members,
        access_log,
        at_rest: (
            (at_start.fds, at_start.threads),
            (at_end.fds, at_end.threads),
        ),
    };
    drop(lb);
    drop(world);
    Ok(run)
}

pub use self::report::{passed, print};
