//! The local error log: what went wrong, per service, per interval, in a
//! file of its own (rotated with `logadm`), whether or not remote syslog
//! is set. The HAProxy image always logged locally; without this, a
//! client's 503 would leave no trace on the box.
//!
//! One line per service and interval, and only when something went wrong:
//! `2026-11-27T14:50:00Z service :443 (https-http): 37 × 503 no backend,
//! 2 × connect failed in the last 10 s`. The numbers are differences of
//! the counters the metrics export, so nothing is counted twice and the
//! data path pays nothing.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use crate::metrics::stats::Totals;
use crate::proto::http1::errors::Status;

/// The errors of one service between two readings, as one line (without
/// the timestamp); none when nothing went wrong.
pub fn summary(
    port: u16,
    kind: &str,
    before: &Totals,
    now: &Totals,
    interval: Duration,
) -> Option<String> {
    let d = |a: u64, b: u64| a.saturating_sub(b);
    let mut parts: Vec<String> = Vec::new();
    for s in Status::ALL {
        let n = d(now.own[s.index()], before.own[s.index()]);
        if n > 0 {
            parts.push(format!("{n} × {} {}", s.code(), s.meaning()));
        }
    }
    for (n, what) in [
        (d(now.no_backend, before.no_backend), "closed: no backend"),
        (
            d(now.connect_errors, before.connect_errors),
            "connect failed",
        ),
        (d(now.timeouts, before.timeouts), "timeout"),
        (d(now.resets, before.resets), "reset"),
    ] {
        if n > 0 {
            parts.push(format!("{n} × {what}"));
        }
    }
    if parts.is_empty() {
        return None;
    }
    let mut line = format!("service :{port} ({kind}): {}", parts.join(", "));
    let _ = write!(line, " in the last {} s", interval.as_secs().max(1));
    Some(line)
}

/// The file and what was last read from the counters.
#[derive(Debug)]
pub struct ErrorLog {
    path: Option<PathBuf>,
    interval: Duration,
    next: Instant,
    last: HashMap<u16, Totals>,
    /// The file could not be written; said once.
    failing: bool,
}

impl ErrorLog {
    /// Writes to `path` (none: off) every `interval`.
    pub fn new(path: Option<PathBuf>, interval: Duration) -> ErrorLog {
        ErrorLog {
            path,
            interval: interval.max(Duration::from_secs(1)),
            next: Instant::now() + interval,
            last: HashMap::new(),
            failing: false,
        }
    }

    /// When due, compares `services` (port, type, counters now) with the
    /// last reading and appends a line per service that had errors.
    pub fn tick(&mut self, now: Instant, services: &[(u16, &str, Totals)]) {
        if now < self.next {
            return;
        }
        self.next = now + self.interval;
        let mut lines = String::new();
        let stamp = humantime::format_rfc3339_seconds(SystemTime::now());
        for (port, kind, totals) in services {
            // A service not seen before started from zero.
            let before = self.last.get(port).cloned().unwrap_or_default();
            if let Some(l) = summary(*port, kind, &before, totals, self.interval) {
                let _ = writeln!(lines, "{stamp} {l}");
            }
        }
        self.last = services.iter().map(|(p, _, t)| (*p, t.clone())).collect();
        if lines.is_empty() {
            return;
        }
        let Some(path) = &self.path else { return };
        // Opened for each write (logadm may have moved the file), as
        // every log file is: owner-only, never through a link.
        let written = crate::sys::logfile::open_log(path)
            .map_err(|e| e.to_string())
            .and_then(|mut f| f.write_all(lines.as_bytes()).map_err(|e| e.to_string()));
        match written {
            Ok(()) => self.failing = false,
            Err(e) if !self.failing => {
                self.failing = true;
                log::error!(
                    "error log {}: {e}; errors go to this log only",
                    path.display()
                );
            }
            Err(_) => {}
        }
        // The same lines in the service log, for whoever reads that.
        for l in lines.lines() {
            log::warn!("{}", l.split_once(' ').map_or(l, |(_, rest)| rest));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_service_with_what_went_wrong() {
        let before = Totals::default();
        let mut now = Totals::default();
        assert_eq!(
            summary(443, "https-http", &before, &now, Duration::from_secs(10)),
            None
        );
        now.own[Status::Unavailable.index()] = 37;
        now.connect_errors = 2;
        now.responses[1] = 1000;
        assert_eq!(
            summary(443, "https-http", &before, &now, Duration::from_secs(10)).unwrap(),
            "service :443 (https-http): 37 × 503 no backend, 2 × connect failed in the last 10 s"
        );
        let tcp = Totals {
            no_backend: 3,
            resets: 1,
            ..Totals::default()
        };
        assert_eq!(
            summary(5432, "tcp", &before, &tcp, Duration::from_secs(10)).unwrap(),
            "service :5432 (tcp): 3 × closed: no backend, 1 × reset in the last 10 s"
        );
    }
}
