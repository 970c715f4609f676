//! The `haproxy_*` families operators' dashboards read, from the same
//! counters as moirai's own: nothing is counted twice, nothing is touched
//! on the data path. Names, types and labels are HAProxy 2.6's exporter's
//! for the configuration Triton-Moirai renders (`fe0`/`be0`.., servers
//! `rs1`..); `tests/it/metrics.rs` compares them with a running HAProxy.

use metrics::{counter, describe_counter, describe_gauge, gauge};

use super::names::{self, Name};
use super::stats::CLASSES;
use super::view::ServiceView;

/// HAProxy's check states, in its order; [`ServiceView`] backends name one.
pub const CHECK_STATES: [&str; 16] = [
    "HANA", "SOCKERR", "L4OK", "L4TOUT", "L4CON", "L6OK", "L6TOUT", "L6RSP", "L7TOUT", "L7RSP",
    "L7OK", "L7OKC", "L7STS", "PROCERR", "PROCTOUT", "PROCOK",
];

const SERVER_STATES: [&str; 5] = ["DOWN", "UP", "MAINT", "DRAIN", "NOLB"];

fn up_down(up: bool) -> [(&'static str, f64); 2] {
    [
        ("DOWN", f64::from(u8::from(!up))),
        ("UP", f64::from(u8::from(up))),
    ]
}

/// Records every family for `services`, which come in portmap order.
pub fn record(services: &[ServiceView<'_>]) {
    let counters: [Name; 14] = [
        names::HA_FRONTEND_SESSIONS,
        names::HA_FRONTEND_CONNECTIONS,
        names::HA_FRONTEND_BYTES_IN,
        names::HA_FRONTEND_BYTES_OUT,
        names::HA_FRONTEND_HTTP_RESPONSES,
        names::HA_BACKEND_SESSIONS,
        names::HA_BACKEND_BYTES_IN,
        names::HA_BACKEND_BYTES_OUT,
        names::HA_BACKEND_HTTP_RESPONSES,
        names::HA_BACKEND_CONNECTION_ERRORS,
        names::HA_BACKEND_RETRY_WARNINGS,
        names::HA_SERVER_SESSIONS,
        names::HA_SERVER_BYTES_IN,
        names::HA_SERVER_BYTES_OUT,
    ];
    for n in counters.into_iter().chain([
        names::HA_SERVER_HTTP_RESPONSES,
        names::HA_SERVER_CONNECTION_ERRORS,
        names::HA_SERVER_CHECK_FAILURES,
    ]) {
        describe_counter!(n.0, n.1);
    }
    for n in [
        names::HA_FRONTEND_STATUS,
        names::HA_FRONTEND_CURRENT_SESSIONS,
        names::HA_BACKEND_STATUS,
        names::HA_BACKEND_CURRENT_SESSIONS,
        names::HA_BACKEND_ACTIVE_SERVERS,
        names::HA_BACKEND_RESPONSE_TIME,
        names::HA_BACKEND_QUEUE_TIME,
        names::HA_SERVER_STATUS,
        names::HA_SERVER_CURRENT_SESSIONS,
        names::HA_SERVER_CHECK_STATUS,
        names::HA_SERVER_CHECK_DURATION,
    ] {
        describe_gauge!(n.0, n.1);
    }
    for (i, s) in services.iter().enumerate() {
        let http = s.kind.starts_with("http");
        let t = s.stats.totals();
        let fe = [("proxy", format!("fe{i}"))];
        let be = [("proxy", format!("be{i}"))];
        for (state, v) in up_down(s.listening) {
            gauge!(
                names::HA_FRONTEND_STATUS.0,
                &[("proxy", fe[0].1.clone()), ("state", state.to_owned())]
            )
            .set(v);
        }
        gauge!(names::HA_FRONTEND_CURRENT_SESSIONS.0, &fe)
            .set(t.opened.saturating_sub(t.closed) as f64);
        counter!(names::HA_FRONTEND_SESSIONS.0, &fe).absolute(t.opened);
        counter!(names::HA_FRONTEND_CONNECTIONS.0, &fe).absolute(t.opened);
        counter!(names::HA_FRONTEND_BYTES_IN.0, &fe).absolute(t.bytes_in);
        counter!(names::HA_FRONTEND_BYTES_OUT.0, &fe).absolute(t.bytes_out);
        if http {
            codes(names::HA_FRONTEND_HTTP_RESPONSES, &fe, t.responses);
        }

        let up = s.backends.iter().filter(|b| b.up).count();
        for (state, v) in up_down(up > 0) {
            gauge!(
                names::HA_BACKEND_STATUS.0,
                &[("proxy", be[0].1.clone()), ("state", state.to_owned())]
            )
            .set(v);
        }
        gauge!(names::HA_BACKEND_ACTIVE_SERVERS.0, &be).set(up as f64);
        let (mut current, mut sessions, mut bytes_in, mut bytes_out) = (0, 0, 0, 0);
        let mut responses = [0u64; 5];
        for b in &s.backends {
            let bt = b.stats.totals();
            current += b.active;
            sessions += bt.opened;
            bytes_in += bt.bytes_in;
            bytes_out += bt.bytes_out;
            for (r, n) in responses.iter_mut().zip(bt.responses) {
                *r += n;
            }
        }
        gauge!(names::HA_BACKEND_CURRENT_SESSIONS.0, &be).set(current as f64);
        counter!(names::HA_BACKEND_SESSIONS.0, &be).absolute(sessions);
        counter!(names::HA_BACKEND_BYTES_IN.0, &be).absolute(bytes_in);
        counter!(names::HA_BACKEND_BYTES_OUT.0, &be).absolute(bytes_out);
        counter!(names::HA_BACKEND_CONNECTION_ERRORS.0, &be).absolute(t.connect_errors);
        counter!(names::HA_BACKEND_RETRY_WARNINGS.0, &be).absolute(t.retries);
        gauge!(names::HA_BACKEND_RESPONSE_TIME.0, &be).set(s.response_average.unwrap_or(0.0));
        gauge!(names::HA_BACKEND_QUEUE_TIME.0, &be).set(0.0);
        if http {
            codes(names::HA_BACKEND_HTTP_RESPONSES, &be, responses);
        }

        for (k, b) in s.backends.iter().enumerate() {
            let bt = b.stats.totals();
            let sv = [
                ("proxy", be[0].1.clone()),
                ("server", format!("rs{}", k + 1)),
            ];
            for state in SERVER_STATES {
                let on = (state == "UP" && b.up) || (state == "DOWN" && !b.up);
                let l = [sv[0].clone(), sv[1].clone(), ("state", state.to_owned())];
                gauge!(names::HA_SERVER_STATUS.0, &l).set(f64::from(u8::from(on)));
            }
            gauge!(names::HA_SERVER_CURRENT_SESSIONS.0, &sv).set(b.active as f64);
            counter!(names::HA_SERVER_SESSIONS.0, &sv).absolute(bt.opened);
            counter!(names::HA_SERVER_BYTES_IN.0, &sv).absolute(bt.bytes_in);
            counter!(names::HA_SERVER_BYTES_OUT.0, &sv).absolute(bt.bytes_out);
            counter!(names::HA_SERVER_CONNECTION_ERRORS.0, &sv).absolute(bt.connect_errors);
            counter!(names::HA_SERVER_CHECK_FAILURES.0, &sv).absolute(b.checks.1);
            if let Some(d) = b.check_latency {
                gauge!(names::HA_SERVER_CHECK_DURATION.0, &sv).set(d.as_secs_f64());
            }
            for state in CHECK_STATES {
                let l = [sv[0].clone(), sv[1].clone(), ("state", state.to_owned())];
                let on = b.check_state == Some(state);
                gauge!(names::HA_SERVER_CHECK_STATUS.0, &l).set(f64::from(u8::from(on)));
            }
            if http {
                codes(names::HA_SERVER_HTTP_RESPONSES, &sv, bt.responses);
            }
        }
    }
}

/// `code="1xx"`.. `"5xx"` from moirai's classes, and `"other"` (none: a
/// status outside 100..599 never reaches a client).
fn codes(name: Name, labels: &[(&'static str, String)], classes: [u64; 5]) {
    for (class, n) in CLASSES.iter().zip(classes).chain([(&"other", 0)]) {
        let mut l: Vec<(&'static str, String)> = labels.to_vec();
        l.push(("code", (*class).to_owned()));
        counter!(name.0, &l).absolute(n);
    }
}
