//! `haproxy_backend_*`: one backend `beN` per service, its backends
//! together (HAProxy's servers).

use super::{
    codes, count, is_http, one_hot, seconds_since, server_state, set, with, zero_gauges, zeros,
    CHECK_STATES, SERVER_STATES,
};
use crate::metrics::names;
use crate::metrics::stats::Totals;
use crate::metrics::view::ServiceView;
use crate::proto::http1::errors::Status;

/// Records service `i`'s backend.
pub fn record(i: usize, s: &ServiceView<'_>) {
    let t = s.stats.totals();
    let be = [("proxy", format!("be{i}"))];
    let servers: Vec<Totals> = s.backends.iter().map(|b| b.stats.totals()).collect();
    let sum = |f: fn(&Totals) -> u64| servers.iter().map(f).sum::<u64>();
    let max = |f: fn(&Totals) -> u64| servers.iter().map(f).max().unwrap_or(0);

    let up: Vec<_> = s.backends.iter().filter(|b| b.up).collect();
    let state = if up.is_empty() { "DOWN" } else { "UP" };
    one_hot(names::HA_BACKEND_STATUS, &be, &["DOWN", "UP"], Some(state));
    set(names::HA_BACKEND_ACTIVE_SERVERS, &be, up.len() as f64);
    // The weight of the servers that take traffic, as HAProxy sums it.
    let weight: f64 = up.iter().map(|b| f64::from(b.weight)).sum();
    set(names::HA_BACKEND_WEIGHT, &be, weight);
    set(names::HA_BACKEND_UWEIGHT, &be, weight);
    for (n, states) in [
        (names::HA_BACKEND_AGG_SERVER_STATUS, &SERVER_STATES[..]),
        (
            names::HA_BACKEND_AGG_SERVER_CHECK_STATUS,
            &SERVER_STATES[..],
        ),
        (names::HA_BACKEND_AGG_CHECK_STATUS, &CHECK_STATES[..]),
    ] {
        for state in states {
            let servers = s
                .backends
                .iter()
                .filter(|b| {
                    if states.len() == CHECK_STATES.len() {
                        b.check_state == Some(*state)
                    } else {
                        server_state(b.up) == *state
                    }
                })
                .count();
            set(n, &with(&be, "state", state), servers as f64);
        }
    }

    set(
        names::HA_BACKEND_CURRENT_SESSIONS,
        &be,
        s.backends.iter().map(|b| b.active).sum::<usize>() as f64,
    );
    // HAProxy gives the backend a session per stream: each request in
    // http mode (a 503 for want of a server included), each connection in
    // tcp mode.
    let sessions = if is_http(s) { t.routed } else { t.opened };
    count(names::HA_BACKEND_SESSIONS, &be, sessions);
    count(names::HA_BACKEND_BYTES_IN, &be, sum(|t| t.bytes_in));
    count(names::HA_BACKEND_BYTES_OUT, &be, sum(|t| t.bytes_out));
    count(names::HA_BACKEND_CONNECTION_ERRORS, &be, t.connect_errors);
    count(names::HA_BACKEND_RETRY_WARNINGS, &be, t.retries);
    count(names::HA_BACKEND_REDISPATCH_WARNINGS, &be, t.redispatches);
    count(names::HA_BACKEND_LOADBALANCED, &be, sum(|t| t.balanced));
    count(names::HA_BACKEND_CLIENT_ABORTS, &be, t.client_aborts);
    count(names::HA_BACKEND_SERVER_ABORTS, &be, t.server_aborts);
    count(
        names::HA_BACKEND_CONNECTION_ATTEMPTS,
        &be,
        sum(|t| t.opened + t.connect_errors),
    );
    count(names::HA_BACKEND_CONNECTION_REUSES, &be, sum(|t| t.reuses));
    set(
        names::HA_BACKEND_LAST_SESSION_SECONDS,
        &be,
        seconds_since(max(|t| t.last_session)),
    );
    set(
        names::HA_BACKEND_RESPONSE_TIME,
        &be,
        s.response_average.unwrap_or(0.0),
    );
    set(
        names::HA_BACKEND_CONNECT_TIME_AVERAGE_SECONDS,
        &be,
        s.connect_average.unwrap_or(0.0),
    );
    set(
        names::HA_BACKEND_MAX_CONNECT_TIME_SECONDS,
        &be,
        max(|t| t.max_connect_us) as f64 / 1e6,
    );
    set(
        names::HA_BACKEND_MAX_RESPONSE_TIME_SECONDS,
        &be,
        max(|t| t.max_response_us) as f64 / 1e6,
    );
    // Moirai never queues (a connection goes to a backend or is refused)
    // and has no backup servers, no ACL and no header rewrite that can
    // fail: HAProxy reports these as 0 for this configuration.
    zero_gauges(
        &[
            names::HA_BACKEND_CURRENT_QUEUE,
            names::HA_BACKEND_MAX_QUEUE,
            names::HA_BACKEND_BACKUP_SERVERS,
            names::HA_BACKEND_QUEUE_TIME,
            names::HA_BACKEND_MAX_QUEUE_TIME_SECONDS,
        ],
        &be,
    );
    zeros(
        &[
            names::HA_BACKEND_REQUESTS_DENIED,
            names::HA_BACKEND_RESPONSES_DENIED,
            names::HA_BACKEND_FAILED_HEADER_REWRITING,
        ],
        &be,
    );
    if is_http(s) {
        let mut responses = [0u64; 5];
        for st in &servers {
            for (r, n) in responses.iter_mut().zip(st.responses) {
                *r += n;
            }
        }
        codes(names::HA_BACKEND_HTTP_RESPONSES, &be, responses);
        count(names::HA_BACKEND_HTTP_REQUESTS, &be, t.routed);
        // HAProxy's `eresp`: moirai's 502 (no or bad response) and 504
        // (none in time) stand for a backend's failed answer.
        let failed = t.own[Status::BadGateway.index()] + t.own[Status::GatewayTimeout.index()];
        count(names::HA_BACKEND_RESPONSE_ERRORS, &be, failed);
        zeros(
            &[
                names::HA_BACKEND_HTTP_COMP_BYTES_IN,
                names::HA_BACKEND_HTTP_COMP_BYTES_OUT,
                names::HA_BACKEND_HTTP_COMP_BYTES_BYPASSED,
                names::HA_BACKEND_HTTP_COMP_RESPONSES,
                names::HA_BACKEND_HTTP_CACHE_LOOKUPS,
                names::HA_BACKEND_HTTP_CACHE_HITS,
            ],
            &be,
        );
    }
}
