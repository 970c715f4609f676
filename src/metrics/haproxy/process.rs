//! `haproxy_process_*`: the figures of HAProxy's process that moirai has
//! of its own; the rest (task queues, SSL and pool statistics, rates)
//! are left out, see `docs/COMPATIBILITY.md`.

use std::time::SystemTime;

use super::{count, is_http, set, zero_gauges, zeros};
use crate::metrics::names;
use crate::metrics::view::{ControlView, ServiceView};

/// The connection limits the workers run under.
#[derive(Debug)]
pub struct Limits {
    /// The descriptor limit, if the system says.
    pub fds: Option<u64>,
    /// Connections the process may hold: every worker's share of the
    /// descriptor limit, as the workers were given it.
    pub connections: u64,
}

impl Limits {
    /// The limits now, for `workers` workers.
    pub fn now(workers: usize) -> Limits {
        let fds = crate::sys::process::stats().max_fds;
        let per_worker = crate::control::sessions_per_worker(fds.unwrap_or(1024), workers);
        Limits {
            fds,
            connections: (per_worker * workers.max(1)) as u64,
        }
    }
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Records the process families.
pub fn record(services: &[ServiceView<'_>], c: &ControlView<'_>, limits: &Limits) {
    let none: [(&'static str, String); 0] = [];
    set(names::HA_PROCESS_NBTHREAD, &none, c.workers as f64);
    // One process, as HAProxy since 2.5.
    set(names::HA_PROCESS_NBPROC, &none, 1.0);
    set(names::HA_PROCESS_RELATIVE_PROCESS_ID, &none, 1.0);
    if let Some(started) = c.started {
        set(
            names::HA_PROCESS_START_TIME_SECONDS,
            &none,
            unix_seconds(started).floor(),
        );
        let up = started.elapsed().map_or(0, |d| d.as_secs());
        set(names::HA_PROCESS_UPTIME_SECONDS, &none, up as f64);
    }
    if let Some(fds) = limits.fds {
        set(names::HA_PROCESS_MAX_FDS, &none, fds as f64);
    }
    // Moirai's limit is fixed at start: the configured and the hard one.
    set(
        names::HA_PROCESS_MAX_CONNECTIONS,
        &none,
        limits.connections as f64,
    );
    set(
        names::HA_PROCESS_HARD_MAX_CONNECTIONS,
        &none,
        limits.connections as f64,
    );
    let (mut current, mut connections, mut requests) = (0, 0, 0);
    for s in services {
        let t = s.stats.totals();
        current += t.opened.saturating_sub(t.closed);
        connections += t.opened;
        if is_http(s) {
            requests += t.requests;
        }
    }
    set(names::HA_PROCESS_CURRENT_CONNECTIONS, &none, current as f64);
    count(names::HA_PROCESS_CONNECTIONS, &none, connections);
    count(names::HA_PROCESS_REQUESTS, &none, requests);
    set(
        names::HA_PROCESS_STOPPING,
        &none,
        f64::from(u8::from(c.stopping)),
    );
    count(names::HA_PROCESS_DROPPED_LOGS, &none, c.syslog.1);
    // `haproxy_process_failed_resolutions` is left out: a counter without
    // `_total`, which `promtool check metrics` refuses (moirai's own
    // `moirai_dns_failures_total` counts the same).
    set(
        names::HA_PROCESS_BUILD_INFO,
        &[("version", format!("moirai-{}", env!("CARGO_PKG_VERSION")))],
        1.0,
    );
    // Moirai never splices, compresses, busy-polls, receives logs or has
    // peers, and sets no memory limit (0 is HAProxy's "none" too). The
    // pipe and compression limits are left out: their 0 means "unlimited".
    zeros(
        &[
            names::HA_PROCESS_PIPES_USED,
            names::HA_PROCESS_PIPES_FREE,
            names::HA_PROCESS_HTTP_COMP_BYTES_IN,
            names::HA_PROCESS_HTTP_COMP_BYTES_OUT,
            names::HA_PROCESS_SPLICED_BYTES_OUT,
            names::HA_PROCESS_RECV_LOGS,
        ],
        &none,
    );
    zero_gauges(
        &[
            names::HA_PROCESS_ACTIVE_PEERS,
            names::HA_PROCESS_CONNECTED_PEERS,
            names::HA_PROCESS_BUSY_POLLING_ENABLED,
            names::HA_PROCESS_MAX_MEMORY_BYTES,
        ],
        &none,
    );
}
