//! The verdict: every failure classified against the soak's own evidence
//! (its event log, the balancer's status each second, which clients
//! misbehaved), resources first minute against last, and a table.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

use super::clients::Failure;
use super::events::{Event, Kind};
use super::outcome::{Run, Sample};
use super::spec::ChaosOptions;

/// RSS may grow by this fraction plus [`RSS_SLACK_KIB`] and still be flat.
const RSS_GROWTH: f64 = 0.10;
const RSS_SLACK_KIB: u64 = 2048;
/// File descriptors at rest may differ by this many and still be flat.
const FD_SLACK: u64 = 16;

/// Why a failure was expected, or None.
fn expected(f: &Failure, run: &Run) -> Option<String> {
    if f.misbehaving {
        return Some("client misbehaved".into());
    }
    // In flight on a backend of its service at the moment that backend's
    // process was killed or stopped.
    if let Some(e) = run.events.iter().find(|e| {
        e.kind.ends_backend() && e.service == Some(f.service) && e.t <= f.end && e.t_end >= f.start
    }) {
        return Some(format!(
            "in flight on {} when it was {} at {:.3}s",
            e.target,
            if e.kind == Kind::BackendKill {
                "killed"
            } else {
                "stopped"
            },
            e.t
        ));
    }
    // Its service had no backend up: by the balancer's own status ...
    let port = run.ports.get(f.service).copied().unwrap_or(0);
    if let Some(s) = run
        .samples
        .iter()
        .find(|s| s.t >= f.start - 1.0 && s.t <= f.end + 1.0 && s.up.get(&port) == Some(&0))
    {
        return Some(format!(
            "{} had no backend up (status at {:.1}s)",
            f.service, s.t
        ));
    }
    // ... or by the event log: every backend out at the moment.
    if let Some(why) = every_backend_out(run, f.service, f.end) {
        return Some(format!(
            "no backend of {} could serve: {why} (event log)",
            f.service
        ));
    }
    None
}

/// How long a backend that came back (restarted, passing its checks
/// again, named by DNS again) takes to be up for the balancer: two checks
/// (`rise` 2) 2 s apart, and a moment.
const COMEBACK: f64 = 4.5;

/// Whether every backend of `service` was out at `t` by the event log
/// (process gone, failing its checks, disabled or draining, not named by
/// DNS or the metadata, or back for less than [`COMEBACK`]); each one's
/// reason when so.
fn every_backend_out(run: &Run, service: &str, t: f64) -> Option<String> {
    let members = run.members.get(service)?;
    let mut why = Vec::new();
    for name in members {
        // Each reason to be out is its own: DNS naming a backend again
        // does not make it pass its checks.
        let mut gone = false;
        let mut failing = false;
        let mut admin = false;
        let mut unnamed_dns = false;
        // The stream pool's third backend is named only while the
        // metadata is "wide".
        let mut unnamed_md = name == "e10";
        let mut back_at: Option<f64> = None;
        for e in run.events.iter().filter(|e| e.t <= t) {
            let about_me = &e.target == name;
            let was_out = gone || failing || admin || unnamed_dns || unnamed_md;
            let at = match e.kind {
                Kind::BackendKill | Kind::BackendStop if about_me => {
                    gone = true;
                    e.t
                }
                Kind::BackendStart if about_me => {
                    gone = false;
                    e.t_end
                }
                Kind::HealthDown if about_me => {
                    failing = true;
                    e.t
                }
                Kind::HealthUp if about_me => {
                    failing = false;
                    e.t
                }
                Kind::AdminDisable | Kind::AdminDrain if about_me && e.detail == "ok" => {
                    admin = true;
                    e.t
                }
                Kind::AdminEnable if about_me && e.detail == "ok" => {
                    // In force once the command returned, as for a start:
                    // the enable reaches the workers while it runs (seed
                    // 31 found a request begun 4 ms into one).
                    if e.t_end > t {
                        continue;
                    }
                    // Health state carried on meanwhile: back at once.
                    admin = false;
                    if !(gone || failing || unnamed_dns || unnamed_md) {
                        back_at = None;
                    }
                    continue;
                }
                Kind::MetadataValid if name == "e10" => {
                    unnamed_md = !e.detail.contains("wide");
                    e.t
                }
                Kind::DnsAnswer if service == "web" => {
                    let ip = super::world::WEB_IPS[["b2", "b3", "n4"]
                        .iter()
                        .position(|n| n == name)
                        .unwrap_or(0)];
                    unnamed_dns = !e.detail.split_whitespace().any(|w| w == ip);
                    e.t
                }
                _ => continue,
            };
            let is_out = gone || failing || admin || unnamed_dns || unnamed_md;
            if was_out && !is_out {
                back_at = Some(at);
            }
        }
        let mut reasons = Vec::new();
        for (flag, what) in [
            (gone, "process gone"),
            (failing, "failing its checks"),
            (admin, "disabled or draining"),
            (unnamed_dns, "not in the DNS answer"),
            (unnamed_md, "not in the metadata"),
        ] {
            if flag {
                reasons.push(what);
            }
        }
        match (reasons.is_empty(), back_at) {
            (false, _) => why.push(format!("{name} {}", reasons.join(" and "))),
            (true, Some(b)) if t - b < COMEBACK => {
                why.push(format!("{name} back {:.1}s ago", t - b))
            }
            _ => return None,
        }
    }
    Some(why.join(", "))
}

/// The events in force around a failure: the latest one before it ended
/// names its cause in the per-event counts.
fn nearby<'a>(f: &Failure, events: &'a [Event]) -> Vec<&'a Event> {
    events
        .iter()
        .filter(|e| e.t >= f.start - 3.0 && e.t <= f.end + 0.5)
        .collect()
}

/// Error lines the soak's own faults explain, each with the fault: the
/// metadata it breaks, the pre-flight an upgrade runs against broken
/// metadata, pebble and the syslog receiver it takes away. Any other
/// error line, or a panic, is unexpected.
const EXPLAINED_ERRORS: &[(&str, &str)] = &[
    ("cannot read metadata", "metadata-vanished"),
    (
        "config: cloud.tritoncompute:",
        "metadata-invalid or metadata-typo",
    ),
    ("cloud.tritoncompute:loadbalancer is", "metadata-typo"),
    (
        "upgrade refused",
        "an upgrade while the metadata was broken",
    ),
    ("acme", "pebble-down"),
    ("syslog", "syslog-down"),
];

/// The balancer's error lines no fault of the soak explains.
fn unexpected_log_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| {
            l.contains("panicked")
                || (l.split_whitespace().nth(1) == Some("ERROR")
                    && !EXPLAINED_ERRORS.iter().any(|(p, _)| l.contains(p)))
        })
        .map(|l| l.chars().take(300).collect())
        .collect()
}

/// Digits to `N`, so repeated log lines group.
fn shape(line: &str) -> String {
    let mut out = String::new();
    let mut digit = false;
    for c in line.chars() {
        if c.is_ascii_digit() {
            if !digit {
                out.push('N');
            }
            digit = true;
        } else {
            digit = false;
            out.push(c);
        }
    }
    out
}

/// Access-log lines by client port (moirai's evidence for a failure:
/// backend, timers and termination state).
fn access_by_port(run: &Run) -> HashMap<u16, Vec<String>> {
    let mut by = HashMap::new();
    let Some(text) = run
        .access_log
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
    else {
        return by;
    };
    for line in text.lines() {
        if let Some(port) = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("127.0.0.1:"))
            .and_then(|p| p.parse::<u16>().ok())
        {
            by.entry(port)
                .or_insert_with(Vec::new)
                .push(line.to_owned());
        }
    }
    by
}

fn window(samples: &[Sample], from: f64, to: f64) -> Vec<&Sample> {
    samples.iter().filter(|s| s.t >= from && s.t < to).collect()
}

/// One system's report.
fn one(run: &Run) -> Value {
    let access = access_by_port(run);
    let mut unexpected = Vec::new();
    let mut expected_n = 0u64;
    let mut by_cause: BTreeMap<&str, BTreeMap<String, u64>> = BTreeMap::new();
    let mut by_event: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut all_by_event: BTreeMap<&'static str, (u64, u64)> = BTreeMap::new();
    let mut expected_list = Vec::new();
    for f in &run.failures {
        let near = nearby(f, &run.events);
        let evidence = access.get(&f.local_port).cloned().unwrap_or_default();
        let entry = json!({
            "service": f.service,
            "class": f.class,
            "start_s": (f.start * 1000.0).round() / 1000.0,
            "end_s": (f.end * 1000.0).round() / 1000.0,
            "cause": f.cause,
            "client_port": f.local_port,
            "access_log": evidence.iter().rev().take(2).collect::<Vec<_>>(),
            "events": near.iter().map(|e| format!("{:.3}s {} {} {}", e.t, e.kind.name(), e.target, e.detail)).collect::<Vec<_>>(),
        });
        // The failure's event: the latest one in force around it.
        let kind = near.last().map_or("none", |e| e.kind.name());
        let verdict = expected(f, run);
        let counts = all_by_event.entry(kind).or_default();
        if verdict.is_some() {
            counts.0 += 1;
        } else {
            counts.1 += 1;
        }
        match verdict {
            Some(why) => {
                expected_n += 1;
                let cause = why
                    .split(" at ")
                    .next()
                    .unwrap_or("")
                    .split(" (")
                    .next()
                    .unwrap_or("");
                *by_cause
                    .entry("expected")
                    .or_default()
                    .entry(shape(cause))
                    .or_default() += 1;
                if expected_list.len() < 40 {
                    let mut e = entry;
                    e["why"] = json!(why);
                    expected_list.push(e);
                }
            }
            None => {
                *by_cause
                    .entry("unexpected")
                    .or_default()
                    .entry(format!("{}/{}: {}", f.service, f.class, f.cause))
                    .or_default() += 1;
                *by_event.entry(kind).or_default() += 1;
                unexpected.push(entry);
            }
        }
    }
    let mut services: BTreeMap<&str, BTreeMap<&str, Value>> = BTreeMap::new();
    let (mut requests, mut ok, mut retried) = (0u64, 0u64, 0u64);
    for ((svc, class), t) in &run.tally {
        requests += t.ok + t.failed;
        ok += t.ok;
        retried += t.retried;
        services.entry(svc).or_default().insert(
            class,
            json!({"ok": t.ok, "failed": t.failed, "retried": t.retried}),
        );
    }
    let first = window(&run.samples, 0.0, 60.0);
    let last = window(&run.samples, run.duration - 60.0, run.duration + 1.0);
    // Medians: a minute's connections come and go (a long stream holds
    // two descriptors for up to 25 s); a leak moves the median too.
    let max = |w: &[&Sample], f: fn(&Sample) -> u64| {
        let mut v: Vec<u64> = w.iter().map(|s| f(s)).collect();
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or(0)
    };
    let rss = (max(&first, |s| s.rss_kib), max(&last, |s| s.rss_kib));
    let fds = (max(&first, |s| s.fds), max(&last, |s| s.fds));
    let threads = (max(&first, |s| s.threads), max(&last, |s| s.threads));
    // Under load the descriptor count follows the connections open and
    // the idle backend connections pooled (a few hundred either way);
    // a leak shows at rest: after the load, once every connection has
    // closed and the pool has expired, against before it.
    let ((fds_start, threads_start), (fds_end, threads_end)) = run.at_rest;
    let flat = rss.1 as f64 <= rss.0 as f64 * (1.0 + RSS_GROWTH) + RSS_SLACK_KIB as f64
        && fds_end <= fds_start + FD_SLACK
        && threads.1 <= threads.0
        && threads_end <= threads_start;
    let cpu = match (run.samples.first(), run.samples.last()) {
        (Some(a), Some(b)) if b.t > a.t => (b.cpu_s - a.cpu_s) / (b.t - a.t) * 100.0,
        _ => 0.0,
    };
    let panics = run.log.lines().filter(|l| l.contains("panicked")).count();
    let odd_lines = unexpected_log_lines(&run.log);
    let mut levels: BTreeMap<&str, BTreeMap<String, u64>> = BTreeMap::new();
    for l in run.log.lines() {
        let level = l.split_whitespace().nth(1).unwrap_or("");
        if level == "ERROR" || level == "WARN" {
            let msg = l.split_once(level).map_or(l, |(_, m)| m).trim();
            let msg: String = shape(msg).chars().take(160).collect();
            *levels
                .entry(if level == "ERROR" { "error" } else { "warn" })
                .or_default()
                .entry(msg)
                .or_default() += 1;
        }
    }
    let mut events: BTreeMap<&str, u64> = BTreeMap::new();
    for e in &run.events {
        *events.entry(e.kind.name()).or_default() += 1;
    }
    // What was lost within 3 s after each reload-like event.
    let reloads: Vec<f64> = run
        .events
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                Kind::Refresh
                    | Kind::Upgrade
                    | Kind::MetadataValid
                    | Kind::MetadataInvalid
                    | Kind::MetadataRestore
            )
        })
        .map(|e| e.t)
        .collect();
    let around_reloads = run
        .failures
        .iter()
        .filter(|f| !f.misbehaving && reloads.iter().any(|&t| f.end >= t && f.end <= t + 3.0))
        .count();
    let real_failures = run.failures.iter().filter(|f| !f.misbehaving).count() as f64;
    // Every 10 s: what the balancer held (the plateau, or not).
    let series: Vec<Value> = run
        .samples
        .iter()
        .step_by(10)
        .map(|s| json!([s.t.round(), s.rss_kib, s.fds, s.threads, s.open]))
        .collect();
    let status_at_end = run.status_at_end.as_ref().map(|s| json!({
        "generation": s["generation"],
        "metadata_error": s["metadata_error"],
        "services": s["services"].as_array().map(|v| v.iter().map(|svc| json!({
            "service": svc["service"],
            "connections": svc["connections"],
            "responses": svc["responses"],
            "backends": svc["backends"].as_array().map(|b| b.iter().map(|b| format!("{} {}", b["address"].as_str().unwrap_or(""), b["state"].as_str().unwrap_or(""))).collect::<Vec<_>>()),
        })).collect::<Vec<_>>()),
        "certificates": s["certificates"],
        }));
    let event_log: Vec<String> = run
        .events
        .iter()
        .map(|e| format!("{:.3}s {} {} {}", e.t, e.kind.name(), e.target, e.detail))
        .collect();
    let error_log_tail: Vec<&str> = run
        .errors_log
        .lines()
        .rev()
        .take(20)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let per_100k = |n: f64| {
        if requests == 0 {
            0.0
        } else {
            (n * 100_000.0 / requests as f64 * 10.0).round() / 10.0
        }
    };
    json!({
        "system": run.system,
        "duration_s": run.duration.round(),
        "requests": requests,
        "ok": ok,
        "retried_on_closed_keepalive": retried,
        "unexpected_failures": unexpected.len(),
        "expected_failures": expected_n,
        "failures_per_100k": per_100k(real_failures),
        "unexpected_per_100k": per_100k(unexpected.len() as f64),
        "lost_around_reloads": around_reloads,
        "reload_like_events": reloads.len(),
        "rss_kib_first_minute": rss.0,
        "rss_kib_last_minute": rss.1,
        "fds_first_minute": fds.0,
        "fds_last_minute": fds.1,
        "fds_at_rest_before_load": fds_start,
        "fds_at_rest_after_load": fds_end,
        "threads_at_rest": [threads_start, threads_end],
        "threads_first_minute": threads.0,
        "threads_last_minute": threads.1,
        "flat": flat,
        "series_t_rss_fds_threads_open": series,
        "cpu_percent_of_one_core": (cpu * 10.0).round() / 10.0,
        "panics": panics,
        "unexpected_log_lines": odd_lines,
        "log": levels,
        "services": services,
        "failures_by_cause": by_cause,
        "unexpected_by_event": by_event,
        "failures_by_event": all_by_event.iter().map(|(k, (e, u))| ((*k).to_owned(), json!({"expected": e, "unexpected": u}))).collect::<serde_json::Map<_, _>>(),
        "unexpected": unexpected.iter().take(200).collect::<Vec<_>>(),
        "expected_examples": expected_list,
        "events": events,
        "event_log": event_log,
        "metrics_scrapes": {"ok": run.scrapes.0, "failed": run.scrapes.1},
        "syslog_lines_received": run.syslog_lines,
        "connections_closed_after_load_s": run.drained_after.map(|d| (d * 10.0).round() / 10.0),
        "connections_open_at_end": run.open_at_end,
        "error_log_tail": error_log_tail,
        "status_at_end": status_at_end,
    })
}

/// The whole report: the system under test's figures at the top level
/// (moirai's when it ran), each system's in `systems`.
pub fn combine(opts: &ChaosOptions, runs: &[Run]) -> Value {
    let each: Vec<Value> = runs.iter().map(one).collect();
    let main = each
        .iter()
        .find(|r| r["system"] == "moirai")
        .or(each.first())
        .cloned()
        .unwrap_or(Value::Null);
    let pick = |k: &str| main.get(k).cloned().unwrap_or(Value::Null);
    json!({
        "seed": opts.seed,
        "duration_s": opts.duration.as_secs_f64(),
        "system": pick("system"),
        "unexpected_failures": pick("unexpected_failures"),
        "expected_failures": pick("expected_failures"),
        "requests": pick("requests"),
        "rss_kib_first_minute": pick("rss_kib_first_minute"),
        "rss_kib_last_minute": pick("rss_kib_last_minute"),
        "fds_first_minute": pick("fds_first_minute"),
        "fds_last_minute": pick("fds_last_minute"),
        "fds_at_rest_before_load": pick("fds_at_rest_before_load"),
        "fds_at_rest_after_load": pick("fds_at_rest_after_load"),
        "flat": pick("flat"),
        "panics": pick("panics"),
        "unexpected_log_lines": pick("unexpected_log_lines"),
        "systems": each,
    })
}

/// Whether the run met the goals: no unexpected failure, no panic, no
/// unexplained error line, flat.
pub fn passed(report: &Value) -> bool {
    report["unexpected_failures"] == 0
        && report["panics"] == 0
        && report["flat"] == true
        && report["unexpected_log_lines"]
            .as_array()
            .is_none_or(Vec::is_empty)
}

/// The readable table.
pub fn print(report: &Value) {
    for r in report["systems"].as_array().into_iter().flatten() {
        println!(
            "\n== {} ({} s, seed {})",
            r["system"].as_str().unwrap_or("?"),
            r["duration_s"],
            report["seed"]
        );
        println!(
            "{:<9} {:<16} {:>9} {:>7} {:>7}",
            "service", "class", "ok", "failed", "retried"
        );
        for (svc, classes) in r["services"].as_object().into_iter().flatten() {
            for (class, t) in classes.as_object().into_iter().flatten() {
                println!(
                    "{:<9} {:<16} {:>9} {:>7} {:>7}",
                    svc, class, t["ok"], t["failed"], t["retried"]
                );
            }
        }
        println!(
            "requests {}  unexpected {}  expected {}  failures/100k {}  lost around {} reloads: {}",
            r["requests"],
            r["unexpected_failures"],
            r["expected_failures"],
            r["failures_per_100k"],
            r["reload_like_events"],
            r["lost_around_reloads"]
        );
        for (kind, causes) in r["failures_by_cause"].as_object().into_iter().flatten() {
            for (cause, n) in causes.as_object().into_iter().flatten() {
                println!("  {kind:<10} {n:>6}  {cause}");
            }
        }
        if let Some(u) = r["unexpected"].as_array() {
            for f in u.iter().take(15) {
                println!("  UNEXPECTED {}", f);
            }
        }
        println!(
            "RSS KiB first/last minute {}/{}  fds {}/{} (at rest {}/{})  threads {}/{}  flat {}  CPU {}% of a core  panics {}",
            r["rss_kib_first_minute"],
            r["rss_kib_last_minute"],
            r["fds_first_minute"],
            r["fds_last_minute"],
            r["fds_at_rest_before_load"],
            r["fds_at_rest_after_load"],
            r["threads_first_minute"],
            r["threads_last_minute"],
            r["flat"],
            r["cpu_percent_of_one_core"],
            r["panics"]
        );
        for (kind, n) in r["failures_by_event"].as_object().into_iter().flatten() {
            println!(
                "  after {kind:<18} expected {:>5}  unexpected {:>3}",
                n["expected"], n["unexpected"]
            );
        }
        println!(
            "events {}  metrics scrapes {}  syslog lines {}  connections closed {}s after the load",
            r["events"],
            r["metrics_scrapes"],
            r["syslog_lines_received"],
            r["connections_closed_after_load_s"]
        );
        for l in r["unexpected_log_lines"].as_array().into_iter().flatten() {
            println!("  UNEXPECTED LOG LINE {}", l.as_str().unwrap_or(""));
        }
        if let Some(st) = r["status_at_end"].as_object() {
            println!(
                "status at the end: generation {}, metadata error {}",
                st["generation"], st["metadata_error"]
            );
            for svc in st["services"].as_array().into_iter().flatten() {
                println!("  {} backends {}", svc["service"], svc["backends"]);
            }
        }
        for l in r["error_log_tail"]
            .as_array()
            .into_iter()
            .flatten()
            .rev()
            .take(5)
        {
            println!("  error log: {}", l.as_str().unwrap_or(""));
        }
        for (level, msgs) in r["log"].as_object().into_iter().flatten() {
            for (m, n) in msgs.as_object().into_iter().flatten() {
                println!("  log {level} x{n}: {m}");
            }
        }
    }
    let systems = report["systems"].as_array().cloned().unwrap_or_default();
    if systems.len() > 1 {
        println!("\n== side by side (same seed; each system gets the events it can take)");
        println!(
            "{:<8} {:>9} {:>13} {:>13} {:>10} {:>15}",
            "system", "requests", "failed/100k", "unexpected", "reloads", "lost at reloads"
        );
        for r in &systems {
            println!(
                "{:<8} {:>9} {:>13} {:>13} {:>10} {:>15}",
                r["system"].as_str().unwrap_or("?"),
                r["requests"],
                r["failures_per_100k"],
                r["unexpected_failures"],
                r["reload_like_events"],
                r["lost_around_reloads"]
            );
        }
    }
    println!(
        "\nverdict: {}",
        if passed(report) { "PASS" } else { "FAIL" }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unexplained_error_lines_and_panics_are_unexpected() {
        let log = "\
2026-12-07T03:16:07.890Z ERROR config: cloud.tritoncompute:portmap entry 5 at byte 211: unknown service type \"bogus\"
2026-12-07T03:16:08.000Z WARN  health: service :1 backend 127.0.0.2:80 is down
2026-12-07T03:16:55.582Z ERROR cannot read metadata (x: No such file); keeping the running configuration
2026-12-07T03:17:00.000Z ERROR worker 1 exited unexpectedly (3 sessions open)
thread 'worker-0' panicked at src/engine/worker.rs:1:1:
";
        let odd = unexpected_log_lines(log);
        assert_eq!(odd.len(), 2, "{odd:?}");
        assert!(odd[0].contains("worker 1 exited"));
        assert!(odd[1].contains("panicked"));
    }

    fn event(t: f64, kind: Kind, target: &str, service: &'static str, detail: &str) -> Event {
        Event {
            t,
            kind,
            target: target.to_owned(),
            service: Some(service),
            detail: detail.to_owned(),
            t_end: t + 0.01,
        }
    }

    fn run(events: Vec<Event>) -> Run {
        Run {
            system: "moirai",
            duration: 60.0,
            tally: BTreeMap::new(),
            failures: Vec::new(),
            events,
            samples: Vec::new(),
            scrapes: (0, 0),
            syslog_lines: 0,
            drained_after: None,
            open_at_end: None,
            log: String::new(),
            errors_log: String::new(),
            status_at_end: None,
            ports: HashMap::from([("web", 80)]),
            members: HashMap::from([(
                "web",
                vec!["b2".to_owned(), "b3".to_owned(), "n4".to_owned()],
            )]),
            access_log: None,
            at_rest: ((40, 7), (40, 7)),
        }
    }

    fn failure(start: f64, end: f64, misbehaving: bool) -> Failure {
        Failure {
            service: "web",
            class: "closing",
            start,
            end,
            cause: "status 503".into(),
            local_port: 1,
            misbehaving,
        }
    }

    #[test]
    fn a_failure_is_expected_only_with_evidence() {
        // Nothing happened: unexpected.
        let quiet = run(vec![]);
        assert_eq!(expected(&failure(10.0, 10.1, false), &quiet), None);
        // A misbehaving client's failure is its own.
        assert!(expected(&failure(10.0, 10.1, true), &quiet).is_some());
        // In flight while a backend of its service died.
        let kill = run(vec![event(
            10.05,
            Kind::BackendKill,
            "b2",
            "web",
            "SIGKILL",
        )]);
        let why = expected(&failure(10.0, 10.1, false), &kill).unwrap();
        assert!(why.contains("in flight on b2"), "{why}");
        // Started after the kill was over, with b3 and n4 up: unexpected.
        assert_eq!(expected(&failure(11.0, 11.1, false), &kill), None);
        // Another service's backend dying is no excuse.
        let other = run(vec![event(
            10.05,
            Kind::BackendKill,
            "e8",
            "stream",
            "SIGKILL",
        )]);
        assert_eq!(expected(&failure(10.0, 10.1, false), &other), None);
    }

    #[test]
    fn a_service_is_out_when_every_backend_is_out_by_the_event_log() {
        let all_out = run(vec![
            event(1.0, Kind::DnsAnswer, "dns", "web", "127.0.0.2 127.0.0.3 ok"),
            event(5.0, Kind::HealthDown, "b3", "web", "checks answer 503"),
            event(8.0, Kind::BackendKill, "b2", "web", "SIGKILL"),
        ]);
        let why = expected(&failure(9.0, 9.1, false), &all_out).unwrap();
        assert!(why.contains("n4 not in the DNS answer"), "{why}");
        assert!(why.contains("b3 failing its checks"), "{why}");
        // Before the kill, b2 could serve.
        assert_eq!(expected(&failure(7.0, 7.1, false), &all_out), None);
        // A backend back for less than two checks does not count yet ...
        let mut back = all_out.events.clone();
        back.push(event(9.0, Kind::HealthUp, "b3", "web", ""));
        let back = run(back);
        assert!(expected(&failure(10.0, 10.1, false), &back).is_some());
        // ... but it does after them.
        assert_eq!(expected(&failure(20.0, 20.1, false), &back), None);
    }

    /// An operator's enable is in force once its command returned: a
    /// request that failed while it ran had no backend.
    #[test]
    fn an_enable_counts_once_its_command_returned() {
        let mut events = vec![
            event(1.0, Kind::DnsAnswer, "dns", "web", "127.0.0.2 127.0.0.3 ok"),
            event(2.0, Kind::AdminDisable, "b3", "web", "ok"),
            event(3.0, Kind::BackendKill, "b2", "web", "SIGKILL"),
        ];
        let mut enable = event(5.0, Kind::AdminEnable, "b3", "web", "ok");
        enable.t_end = 5.05;
        events.push(enable);
        let r = run(events);
        let why = expected(&failure(5.02, 5.02, false), &r).unwrap();
        assert!(why.contains("b3 disabled or draining"), "{why}");
        assert_eq!(expected(&failure(5.1, 5.1, false), &r), None);
    }

    /// Seed 6 found it: DNS naming a backend again does not make it pass
    /// the checks it was failing.
    #[test]
    fn each_reason_to_be_out_holds_on_its_own() {
        let r = run(vec![
            event(41.6, Kind::HealthDown, "n4", "web", "checks answer 503"),
            event(
                44.1,
                Kind::DnsAnswer,
                "dns",
                "web",
                "127.0.0.2 127.0.0.4 ok",
            ),
            event(45.2, Kind::BackendStop, "b2", "web", "SIGTERM"),
        ]);
        let why = expected(&failure(48.6, 48.7, false), &r).unwrap();
        assert!(why.contains("n4 failing its checks"), "{why}");
        assert!(why.contains("b3 not in the DNS answer"), "{why}");
        assert!(why.contains("b2 process gone"), "{why}");
    }

    #[test]
    fn shapes_group_numbers() {
        assert_eq!(shape("t6 back 0.3s ago"), "tN back N.Ns ago");
    }
}
