//! The `haproxy_*` families operators' dashboards read, from the same
//! counters as moirai's own: nothing is counted twice, nothing is touched
//! on the data path. Names, types and labels are HAProxy 2.6's exporter's
//! for the configuration Triton-Moirai renders (`fe0`/`be0`.., servers
//! `rs1`..); `tests/it/metrics.rs` compares them with a running HAProxy.
//!
//! A family is exported only where moirai counts what HAProxy counts, or
//! where HAProxy itself would report a constant for Moirai's configuration
//! (no queue, no compression, no cache, no ACL: 0; no per-server limit:
//! NaN). What cannot be counted honestly is left out and listed, with why,
//! in `docs/COMPATIBILITY.md`.

mod backend;
mod frontend;
mod process;
mod server;

use metrics::{counter, describe_counter, describe_gauge, gauge};

use super::names::Name;
use super::stats::since_moment;
use super::view::{ControlView, ServiceView};

/// HAProxy's check states, in its order; [`ServiceView`] backends name one.
pub const CHECK_STATES: [&str; 16] = [
    "HANA", "SOCKERR", "L4OK", "L4TOUT", "L4CON", "L6OK", "L6TOUT", "L6RSP", "L7TOUT", "L7RSP",
    "L7OK", "L7OKC", "L7STS", "PROCERR", "PROCTOUT", "PROCOK",
];

/// HAProxy's server states, in its order.
const SERVER_STATES: [&str; 5] = ["DOWN", "UP", "MAINT", "DRAIN", "NOLB"];

/// Labels of one series.
type Labels = Vec<(&'static str, String)>;

/// Records every family for `services`, which come in portmap order.
pub fn record(services: &[ServiceView<'_>], control: &ControlView<'_>) {
    let limits = process::Limits::now(control.workers);
    for (i, s) in services.iter().enumerate() {
        frontend::record(i, s, &limits);
        backend::record(i, s);
        for (k, b) in s.backends.iter().enumerate() {
            server::record(i, k, s, b);
        }
    }
    process::record(services, control, &limits);
}

/// Whether HAProxy would run the service in `mode http`: only those get
/// the HTTP families (HAProxy leaves them out for `mode tcp`).
fn is_http(s: &ServiceView<'_>) -> bool {
    s.kind.starts_with("http")
}

/// `labels` plus one more pair.
fn with(labels: &[(&'static str, String)], key: &'static str, value: &str) -> Labels {
    let mut l = labels.to_vec();
    l.push((key, value.to_owned()));
    l
}

/// A counter series.
fn count(n: Name, labels: &[(&'static str, String)], v: u64) {
    describe_counter!(n.0, n.1);
    counter!(n.0, labels).absolute(v);
}

/// A gauge series.
fn set(n: Name, labels: &[(&'static str, String)], v: f64) {
    describe_gauge!(n.0, n.1);
    gauge!(n.0, labels).set(v);
}

/// Counters HAProxy reports as 0 for Moirai's configuration because the
/// mechanism they count does not exist there (no ACL, no compression...):
/// moirai has none either, so 0 is the true value, not a placeholder.
fn zeros(names: &[Name], labels: &[(&'static str, String)]) {
    for n in names {
        count(*n, labels, 0);
    }
}

/// Gauges that are 0 for the same reason.
fn zero_gauges(names: &[Name], labels: &[(&'static str, String)]) {
    for n in names {
        set(*n, labels, 0.0);
    }
}

/// One-hot over `states`: 1 for `on`.
fn one_hot(n: Name, labels: &[(&'static str, String)], states: &[&str], on: Option<&str>) {
    for state in states {
        set(
            n,
            &with(labels, "state", state),
            f64::from(u8::from(on == Some(*state))),
        );
    }
}

/// `code="1xx"`.. `"5xx"` from moirai's classes, and `"other"` (none: a
/// status outside 100..599 never reaches a client).
fn codes(name: Name, labels: &[(&'static str, String)], classes: [u64; 5]) {
    use super::stats::CLASSES;
    for (class, n) in CLASSES.iter().zip(classes).chain([(&"other", 0)]) {
        count(name, &with(labels, "code", class), n);
    }
}

/// HAProxy's "seconds since": -1 for never.
fn seconds_since(moment: u64) -> f64 {
    since_moment(moment).map_or(-1.0, f64::floor)
}

/// HAProxy's server state for a backend, from its health: up or down.
fn server_state(up: bool) -> &'static str {
    if up {
        "UP"
    } else {
        "DOWN"
    }
}
